#pragma once
// The bodies of traincb/callbacks/learning_curve_report.hpp's non-template functions: included at
// the end of that header when traincb is header-only, compiled once into traincb::compiled in the
// compiled mode (traincb/detail/config.hpp).
#include "traincb/callbacks/learning_curve_report.hpp"

namespace traincb::inline v0 {

namespace detail::lcr {

TRAINCB_INLINE std::string escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (const char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

TRAINCB_INLINE std::string css_ident(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            out += c;
        else if (c >= 'A' && c <= 'Z')
            out += static_cast<char>(c - 'A' + 'a');
        else if (!out.empty() && out.back() != '-')
            out += '-';
    }
    while (!out.empty() && out.back() == '-') out.pop_back();
    return out.empty() ? std::string("other") : out;
}

TRAINCB_INLINE std::string fixed(double v, int decimals) {
    if (v == 0) v = 0;  // no "-0.0"
    char buf[400];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
    return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("0");
}

TRAINCB_INLINE std::string sig(double v, int digits) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (v == 0) v = 0;
    char buf[64];  // 17 significant digits (a double's most) and an exponent always fit
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, std::clamp(digits, 1, 17));
    return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}

TRAINCB_INLINE double text_width(std::string_view s, double font_px) {
    std::size_t chars = 0;
    for (const char c : s)
        if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) ++chars;  // count UTF-8 code points
    return static_cast<double>(chars) * font_px * 0.6;
}

TRAINCB_INLINE double nice_step(double range, double target) {
    const double raw = range / target;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

TRAINCB_INLINE Axis value_axis(double mn, double mx) {
    Axis a;
    if (!(mn <= mx)) mn = mx = 0;
    if (mn == mx) {  // a flat curve or a single point: open a small range around it
        const double pad = mn == 0 ? 1.0 : std::abs(mn) * 0.1;
        mn -= pad;
        mx += pad;
    }
    const double range = mx - mn;
    if (!std::isfinite(range) || !(range > 0)) {  // beyond double's range: label the ends only
        a.lo = mn;
        a.hi = mx;
        a.ticks = {mn, mx};
        a.labels = {sig(mn, 3), sig(mx, 3)};
        return a;
    }
    const double step = nice_step(range, 5);
    const double first = std::floor(mn / step);
    const double last = std::ceil(mx / step);
    a.lo = first * step;
    a.hi = last * step;
    if (!std::isfinite(a.lo) || !std::isfinite(a.hi)) {  // rounding out to a tick overflowed (near DBL_MAX)
        a.lo = mn;
        a.hi = mx;
        a.ticks = {mn, mx};
        a.labels = {sig(mn, 3), sig(mx, 3)};
        return a;
    }
    const int k = static_cast<int>(std::floor(std::log10(step) + 1e-9));  // step = m * 10^k
    const double big = std::max(std::abs(a.lo), std::abs(a.hi));
    const bool plain = big < 1e6 && (big >= 1e-3 || big == 0) && step >= 1e-4;
    const int decimals = std::max(0, -k);
    const int digits = std::max(1, static_cast<int>(std::floor(std::log10(big))) - k + 1);
    const double n = last - first;
    for (int i = 0; i <= static_cast<int>(std::min(n, 40.0)); ++i) {
        const double t = (first + i) * step;
        a.ticks.push_back(t);
        a.labels.push_back(plain ? fixed(t, decimals) : sig(t, digits));
    }
    return a;
}

TRAINCB_INLINE Axis epoch_axis(int first, int last) {
    Axis a;
    a.lo = first;
    a.hi = last;
    // A little room at both ends so the first and last points do not sit on the frame.
    const double pad = std::max(0.5, 0.02 * (last - first));
    a.lo -= pad;
    a.hi += pad;
    const double step = std::max(1.0, nice_step(std::max(1.0, static_cast<double>(last - first)), 8));
    // Only epochs that exist in the run: no "0" tick when epochs are numbered from 1.
    const long long istep = std::llround(step);  // a whole 1, 2, 5, 10, ... here
    for (long long t = (first + istep - 1) / istep * istep; t <= last; t += istep) {
        a.ticks.push_back(static_cast<double>(t));
        a.labels.push_back(std::to_string(t));
    }
    return a;
}

}  // namespace detail::lcr

TRAINCB_INLINE LearningCurveReport::LearningCurveReport(LearningCurveReportOptions options) : opt_(std::move(options)) {
    auto bad = [](const std::string& what) { throw InvalidArgument("traincb: LearningCurveReport: " + what); };
    if (opt_.path.empty()) bad("path is empty; pass the HTML file to write, e.g. \"report.html\"");
    if (!opt_.path.has_filename())
        bad("path '" + opt_.path.string() + "' names a directory; pass a file name, e.g. \"" +
            (opt_.path / "report.html").string() + "\"");
    if (opt_.learning_rate_key.empty()) bad("learning_rate_key is empty; pass the log key, e.g. \"learning_rate\"");
    if (opt_.max_lr_markers < 0) bad("max_lr_markers must be >= 0, got " + std::to_string(opt_.max_lr_markers));
    if (opt_.refresh_seconds < 0)
        bad("refresh_seconds must be >= 0 (0 = no reload), got " + std::to_string(opt_.refresh_seconds));
    if (opt_.write_every < 0) bad("write_every must be >= 0 (0 = adaptive), got " + std::to_string(opt_.write_every));
    probe_path();
}

TRAINCB_INLINE void LearningCurveReport::mark(int epoch, std::string kind, std::string label) {
    if (epoch < 0)
        throw InvalidArgument("traincb: LearningCurveReport: mark() got epoch " + std::to_string(epoch) +
                              "; pass the 0-based epoch the event happened in (ctx.epoch())");
    if (kind.empty())
        throw InvalidArgument(
            "traincb: LearningCurveReport: mark() got an empty kind; pass a word such as "
            "\"checkpoint\"");
    marks_.push_back({epoch, std::move(kind), std::move(label)});
}

TRAINCB_INLINE std::string LearningCurveReport::render() const {
    namespace L = detail::lcr;
    using L::escape;
    std::string o;
    o.reserve(16384 + epochs_.size() * cols_.size() * 64);

    const auto best_mark = best();
    const auto stop = stopped();
    const auto changes = lr_changes();
    const bool lr_marked = static_cast<int>(changes.size()) <= opt_.max_lr_markers;
    bool any_nonfinite = false;
    for (const auto& [k, col] : cols_)
        for (const auto& v : col) any_nonfinite = any_nonfinite || (v && !std::isfinite(*v));

    // Status: waiting, running, or how it ended.
    std::string status = "waiting";
    std::string status_text = "waiting for the first epoch";
    if (ended_) {
        status = to_string(end_.kind);
        status_text = std::string("training ") + to_string(end_.kind);
        if (!end_.source.empty()) status_text += " by " + end_.source;
        if (!end_.reason.empty()) status_text += ": " + end_.reason;
    } else if (!epochs_.empty()) {
        status = "running";
        status_text = "running: epoch " + std::to_string(epochs_.back() + 1) +
                      (total_epochs_ > 0 ? " of " + std::to_string(total_epochs_) : std::string());
    }

    o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
    o += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n";
    o += "<meta name=\"generator\" content=\"traincb LearningCurveReport\"/>\n";
    if (opt_.refresh_seconds > 0 && !ended_)
        detail::lcr::put(o, "<meta http-equiv=\"refresh\" content=\"", std::to_string(opt_.refresh_seconds), "\"/>\n");
    detail::lcr::put(o, "<title>", escape(opt_.title), "</title>\n");
    o += R"(<style>
:root{--train:#1f77b4;--val:#ff7f0e;--best:#16a34a;--stop:#dc2626;--lr:#7c3aed;--ckpt:#475569;--mark:#b45309;--ink:#111827;--muted:#6b7280;--rule:#e5e7eb}
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:26px 22px 36px}
h1{font-size:22px;margin:0 0 8px;font-weight:650}
h2{font-size:15px;margin:0 0 10px;font-weight:650}
.status{margin:0;color:#374151}
.pill{display:inline-block;margin-right:8px;padding:1px 10px;border-radius:999px;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.05em;vertical-align:1px}
.pill.completed{background:#dcfce7;color:#166534}.pill.stopped{background:#fef3c7;color:#92400e}
.pill.exception,.pill.interrupted{background:#fee2e2;color:#991b1b}.pill.running,.pill.waiting{background:#dbeafe;color:#1e40af}
.facts{display:flex;flex-wrap:wrap;gap:10px 34px;margin:16px 0 0}
.facts dt{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.facts dd{margin:0;font-weight:600}
.legend-key{display:flex;flex-wrap:wrap;gap:6px 20px;margin:18px 0 14px;font-size:12px;color:#4b5563}
.legend-key span{white-space:nowrap}.legend-key svg{vertical-align:-2px;margin-right:5px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:14px}
figure.chart{margin:0;background:#fff;border:1px solid var(--rule);border-radius:8px;padding:6px 6px 2px}
figure.chart svg{display:block;width:100%;height:auto}
svg text{font-size:11px;fill:#4b5563}
.ctitle{font-size:13px;font-weight:650;fill:var(--ink)}
.grid line{stroke:#eceef1;stroke-width:1}
.axis{stroke:#9ca3af;stroke-width:1}
.ytick{text-anchor:end}.xtick,.xlabel,.evl{text-anchor:middle}
.xlabel{fill:var(--muted)}
.series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.s-train{stroke:var(--train)}.s-val{stroke:var(--val)}.s-lr{stroke:var(--lr)}
.d-train{fill:var(--train)}.d-val{fill:var(--val)}.d-lr{fill:var(--lr)}
.ev{stroke-width:1.4;stroke-dasharray:5 4}.ev-lr{stroke-dasharray:2 3}
line.ev-best{stroke:var(--best)}line.ev-stopped{stroke:var(--stop)}line.ev-lr{stroke:var(--lr)}
text.ev-best{fill:var(--best)}text.ev-stopped{fill:var(--stop)}text.ev-lr{fill:var(--lr)}
.evl{font-weight:600}
.best-ring{fill:none;stroke:var(--best);stroke-width:2}
.nonfinite{fill:none;stroke:var(--stop);stroke-width:2}
.mark{fill:var(--mark)}.mark-checkpoint{fill:var(--ckpt)}
.tables{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:14px;margin-top:22px;align-items:start}
.card{background:#fff;border:1px solid var(--rule);border-radius:8px;padding:14px 16px;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;text-align:left;border-bottom:1px solid var(--rule);vertical-align:top}
tr:last-child td{border-bottom:0}
th{font-size:11px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
td.key{font-weight:600;overflow-wrap:break-word}
td.num{white-space:nowrap}
.at{color:var(--muted);font-size:11px}
.bad{color:var(--stop);font-weight:700}
.empty{color:var(--muted);font-style:italic}
.tag{display:inline-block;min-width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.t-best{background:var(--best)}.t-stopped{background:var(--stop)}.t-lr{background:var(--lr)}.t-checkpoint{background:var(--ckpt)}.t-mark{background:var(--mark)}
td.detail{overflow-wrap:anywhere;color:#374151}
footer{margin-top:22px;font-size:11px;color:var(--muted)}
</style>
</head>
<body>
<main>
)";
    detail::lcr::put(o, "<header>\n<h1>", escape(opt_.title), "</h1>\n");
    detail::lcr::put(o, "<p class=\"status\" data-status=\"", escape(status), "\" data-source=\"", escape(end_.source),
                     "\" data-reason=\"", escape(end_.reason), "\"><span class=\"pill ", escape(status), "\">",
                     escape(status), "</span>", escape(status_text), "</p>\n");

    // Key facts.
    o += "<dl class=\"facts\">";
    auto fact = [&o](const std::string& dt, const std::string& dd_html) {
        detail::lcr::put(o, "<div><dt>", escape(dt), "</dt><dd>", dd_html, "</dd></div>");
    };
    if (!epochs_.empty())
        fact("epochs", std::to_string(epochs_.size()) + " <span class=\"at\">(" + std::to_string(epochs_.front() + 1) +
                           "&#8211;" + std::to_string(epochs_.back() + 1) + ")</span>");
    if (best_mark)
        fact("best " + best_mark->key, escape(L::sig(best_mark->value, 6)) + " <span class=\"at\">at epoch " +
                                           std::to_string(best_mark->epoch + 1) + "</span>");
    if (stop) fact(stop->word, "epoch " + std::to_string(stop->epoch + 1));
    if (const auto it = cols_.find(opt_.learning_rate_key); it != cols_.end()) {
        std::optional<double> last;
        for (const auto& v : it->second)
            if (v) last = v;
        if (last)
            fact("final " + opt_.learning_rate_key, escape(L::sig(*last, 6)) + " <span class=\"at\">(" +
                                                        std::to_string(changes.size()) +
                                                        (changes.size() == 1 ? " change" : " changes") + ")</span>");
    }
    std::size_t checkpoints = 0;
    for (const auto& m : marks_) checkpoints += m.kind == "checkpoint";
    if (checkpoints > 0) fact("checkpoints", std::to_string(checkpoints));
    o += "</dl>\n</header>\n";

    if (epochs_.empty()) {
        o += "<p class=\"empty\">No epoch has ended yet.</p>\n";
    } else {
        // What the lines and markers mean.
        o += "<div class=\"legend-key\">";
        auto swatch = [&o](const std::string& svg, const std::string& text) {
            detail::lcr::put(o, "<span><svg width=\"22\" height=\"10\" viewBox=\"0 0 22 10\">", svg, "</svg>", text,
                             "</span>");
        };
        swatch(R"(<line class="series s-train" x1="1" y1="5" x2="21" y2="5"/>)", "training");
        swatch(R"(<line class="series s-val" x1="1" y1="5" x2="21" y2="5"/>)", "validation");
        if (best_mark) swatch(R"(<line class="ev ev-best" x1="1" y1="5" x2="21" y2="5"/>)", "best epoch");
        if (stop) swatch(R"(<line class="ev ev-stopped" x1="1" y1="5" x2="21" y2="5"/>)", stop->word);
        if (lr_marked && !changes.empty())
            swatch(R"(<line class="ev ev-lr" x1="1" y1="5" x2="21" y2="5"/>)", "learning-rate change");
        if (checkpoints > 0) swatch(R"(<path class="mark mark-checkpoint" d="M11 1l-5 8h10z"/>)", "checkpoint saved");
        if (checkpoints < marks_.size()) swatch(R"(<path class="mark" d="M11 1l-5 8h10z"/>)", "other mark");
        if (any_nonfinite) swatch(R"(<path class="nonfinite" d="M7 1l8 8m0 -8l-8 8"/>)", "nan / inf (not plotted)");
        o += "</div>\n";

        int first = epochs_.front();
        int last = epochs_.front();
        for (const int e : epochs_) {
            first = std::min(first, e);
            last = std::max(last, e);
        }
        for (const auto& m : marks_) last = std::max(last, m.epoch);
        const L::Axis xa = L::epoch_axis(first + 1, last + 1);

        std::vector<Event> events;
        auto add_event = [&](int epoch, std::string cls, std::string label, std::string tip) {
            Event e;
            e.epoch = epoch;
            e.cls = std::move(cls);
            e.label = std::move(label);
            e.tip = std::move(tip);
            e.x = x_of(epoch + 1, xa);
            events.push_back(std::move(e));
        };
        if (best_mark)
            add_event(best_mark->epoch, "best", "best " + std::to_string(best_mark->epoch + 1),
                      "best " + best_mark->key + " = " + L::sig(best_mark->value, 6) + " at epoch " +
                          std::to_string(best_mark->epoch + 1));
        if (stop)
            add_event(stop->epoch, "stopped", stop->word + " " + std::to_string(stop->epoch + 1),
                      stop->word + (stop->reason.empty() ? "" : " (" + stop->reason + ")") + " at epoch " +
                          std::to_string(stop->epoch + 1));
        if (lr_marked)
            for (const auto& [e, ab] : changes)
                add_event(e, "lr", "lr \xE2\x86\x92 " + L::sig(ab.second, 4),
                          "learning rate " + L::sig(ab.first, 6) + " \xE2\x86\x92 " + L::sig(ab.second, 6) +
                              " from epoch " + std::to_string(e + 1));
        // Lanes are laid out once so every chart has the same height and the rows line up.
        const int lanes = layout_lanes(events);
        o += "<section class=\"charts\">\n";
        for (const auto& g : groups()) render_chart(o, g, xa, events, lanes, best_mark);
        o += "</section>\n";

        // Final values of every key: the last logged value, and the extremes over the run.
        o += "<div class=\"tables\">\n<section class=\"card\">\n<h2>Final values</h2>\n<table class=\"values\">\n"
             "<thead><tr><th>key</th><th class=\"num\">last</th><th class=\"num\">epoch</th>"
             "<th class=\"num\">min</th><th class=\"num\">max</th></tr></thead>\n<tbody>\n";
        auto cell = [](double v) {
            const std::string s = L::sig(v, 6);
            return std::isfinite(v) ? "<td class=\"num\">" + s + "</td>" : "<td class=\"num bad\">" + s + "</td>";
        };
        for (const auto& [k, col] : cols_) {
            std::optional<std::size_t> last_i;
            std::optional<std::size_t> mn_i;
            std::optional<std::size_t> mx_i;
            for (std::size_t i = 0; i < col.size(); ++i) {
                if (!col[i]) continue;
                last_i = i;
                if (!std::isfinite(*col[i])) continue;
                if (!mn_i || *col[i] < *col[*mn_i]) mn_i = i;
                if (!mx_i || *col[i] > *col[*mx_i]) mx_i = i;
            }
            detail::lcr::put(o, "<tr data-key=\"", escape(k), "\"><td class=\"key\">", escape(k), "</td>");
            o += last_i ? cell(*col[*last_i]) + "<td class=\"num\">" + std::to_string(epochs_[*last_i] + 1) + "</td>"
                        : std::string("<td class=\"num\">&#8212;</td><td class=\"num\"></td>");
            for (const auto& ext : {mn_i, mx_i}) {
                if (ext)
                    detail::lcr::put(o, "<td class=\"num\">", L::sig(*col[*ext], 6), " <span class=\"at\">@",
                                     std::to_string(epochs_[*ext] + 1), "</span></td>");
                else
                    o += "<td class=\"num\">&#8212;</td>";
            }
            o += "</tr>\n";
        }
        o += "</tbody>\n</table>\n</section>\n";

        // Events, in epoch order.
        struct Row {
            int epoch;
            std::string tag;
            std::string what;
            std::string detail;
        };
        std::vector<Row> rows;
        if (best_mark)
            rows.push_back(
                {best_mark->epoch, "best", "best epoch", best_mark->key + " = " + L::sig(best_mark->value, 6)});
        if (stop) {
            std::string detail = stop->reason;
            if (ended_ && !end_.source.empty())
                detail = end_.source + (end_.reason.empty() ? "" : ": " + end_.reason);
            else if (opt_.early_stopping)
                detail = "EarlyStopping: " + detail;
            rows.push_back({stop->epoch, "stopped", "training " + stop->word, detail});
        }
        if (lr_marked) {
            for (const auto& [e, ab] : changes)
                rows.push_back(
                    {e, "lr", "learning rate", L::sig(ab.first, 6) + " \xE2\x86\x92 " + L::sig(ab.second, 6)});
        } else if (!changes.empty()) {  // one row for a schedule that changes it all the time
            rows.push_back({changes.front().first, "lr", "learning rate",
                            std::to_string(changes.size()) + " changes, " + L::sig(changes.front().second.first, 6) +
                                " \xE2\x86\x92 " + L::sig(changes.back().second.second, 6) + " (see its chart)"});
        }
        for (const auto& m : marks_)
            rows.push_back({m.epoch, m.kind == "checkpoint" ? "checkpoint" : "mark", m.kind, m.label});
        std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.epoch < b.epoch; });
        o += "<section class=\"card\">\n<h2>Events</h2>\n";
        if (rows.empty()) {
            o += "<p class=\"empty\">None yet.</p>\n";
        } else {
            o += "<table class=\"events\">\n<thead><tr><th class=\"num\">epoch</th><th>event</th><th>detail</th></tr>"
                 "</thead>\n<tbody>\n";
            for (const auto& r : rows)
                detail::lcr::put(o, "<tr data-epoch=\"", std::to_string(r.epoch), "\"><td class=\"num\">",
                                 std::to_string(r.epoch + 1), "</td><td><span class=\"tag t-", r.tag, "\"></span>",
                                 escape(r.what), "</td><td class=\"detail\">", escape(r.detail), "</td></tr>\n");
            o += "</tbody>\n</table>\n";
        }
        o += "</section>\n</div>\n";
    }
    o += "<footer>Written by traincb LearningCurveReport after each epoch. Self-contained: no scripts, no "
         "network. Epochs are numbered from 1, as Keras prints them.</footer>\n</main>\n</body>\n</html>\n";
    return o;
}

TRAINCB_INLINE void LearningCurveReport::write() {
    const std::string html = render();
    try {
        io::write_file_atomic(opt_.path, html, name(), io::AtomicFileOptions{.keep_permissions = true});
    } catch (const IoError& e) {
        if (e.path() == opt_.path) throw;
        // A failing parent directory: name the report too, which is what the user configured.
        throw IoError(name(), "cannot write (failed at '" + e.path().string() + "')", opt_.path, e.code());
    }
    ++writes_;
    written_rows_ = epochs_.size();
    written_marks_ = marks_.size();
}

TRAINCB_INLINE std::string LearningCurveReport::name() const {
    return "LearningCurveReport";
}

TRAINCB_INLINE void LearningCurveReport::on_train_begin(Context& ctx) {
    epochs_.clear();
    cols_.clear();
    marks_.clear();
    ended_ = false;
    end_ = {};
    writes_ = 0;
    history_ = ctx.history();
    linked_ = history_ != nullptr;
    history_offset_ = linked_ ? history_->size() : 0;  // a resumed run's History already holds epochs
    verified_ = 0;
    own_.clear();
    total_epochs_ = ctx.params().epochs;
    declared_ = ctx.params().metric_directions;
    if (!opt_.early_stopping && !opt_.monitor.empty())
        dir_ = detail::resolve_mode(name(), opt_.mode, opt_.monitor, declared_);
    write_on_primary(ctx);
}

TRAINCB_INLINE void LearningCurveReport::on_epoch_end(Context& ctx) {
    record(ctx.epoch(), ctx.logs());
    const std::size_t n = epochs_.size();
    const std::size_t every =
        opt_.write_every > 0 ? static_cast<std::size_t>(opt_.write_every) : (n + kAdaptiveWrites - 1) / kAdaptiveWrites;
    if (marks_.size() != written_marks_ || n - written_rows_ >= every) write_on_primary(ctx);
}

TRAINCB_INLINE void LearningCurveReport::on_train_end(Context& ctx) {
    if (!epochs_.empty() && ctx.epoch() == epochs_.back()) {
        const std::size_t n = epochs_.size();
        for (const auto& [k, v] : ctx.logs()) {
            if (n > 1 && !cols_.contains(k)) own_.insert(k);  // absent before: not the History's NaN
            auto& col = cols_[k];
            col.resize(n);
            col.back() = v;
        }
    }
    sync_history();
    history_ = nullptr;  // the driver's History may be gone after the run
    ended_ = true;
    end_.kind = ctx.end().kind;
    end_.source = ctx.end().source;
    end_.reason = ctx.end().reason;
    write_on_primary(ctx);
}

TRAINCB_INLINE std::string LearningCurveReport::state_key() const {
    return opt_.id.empty() ? std::string(name()) : opt_.id;
}

TRAINCB_INLINE void LearningCurveReport::save_state(CallbackState& state) const {
    sync_history();
    state.version = kStateVersion;
    state.json = nlohmann::json::object();
    state.tensors.clear();
    nlohmann::json marks = nlohmann::json::array();
    for (const auto& m : marks_) marks.push_back({{"epoch", m.epoch}, {"kind", m.kind}, {"label", m.label}});
    const bool from_history = linked_ && verified_ == epochs_.size();
    nlohmann::json shared = nlohmann::json::array();
    nlohmann::json own = nlohmann::json::array();
    for (const auto& [key, col] : cols_) {
        if (from_history && !own_.contains(key)) {
            shared.push_back(key);
            continue;
        }
        own.push_back(key);
        std::vector<double> values(col.size());
        std::vector<std::uint8_t> present(col.size());
        for (std::size_t i = 0; i < col.size(); ++i) {
            values[i] = col[i].value_or(0.0);
            present[i] = col[i] ? 1 : 0;
        }
        state.tensors.put(vector_tensor<double>("values/" + key, values));
        state.tensors.put(vector_tensor<std::uint8_t>("present/" + key, present));
    }
    if (!from_history) {
        const std::vector<std::int64_t> epochs(epochs_.begin(), epochs_.end());
        state.tensors.put(vector_tensor<std::int64_t>("epochs", epochs));
    }
    state.json = {{"rows", epochs_.size()},
                  {"history", from_history ? nlohmann::json{{"offset", history_offset_}, {"keys", std::move(shared)}}
                                           : nlohmann::json()},
                  {"columns", std::move(own)},
                  {"marks", std::move(marks)}};
}

TRAINCB_INLINE void LearningCurveReport::load_state(const CallbackState& state, Context& ctx) {
    const std::string c = "traincb: LearningCurveReport: checkpointed state (key '" + state_key() + "'): ";
    if (state.version != 1 && state.version != kStateVersion)
        throw FormatError(c + "version " + std::to_string(state.version) +
                          " is not readable; this traincb reads versions 1 and " + std::to_string(kStateVersion) +
                          " (use the traincb version that wrote it)");
    const nlohmann::json& j = state.json;
    if (!j.is_object()) throw FormatError(c + "expected a JSON object, got " + j.dump());
    Parsed p = state.version == 1 ? parse_v1(j, c) : parse_v2(state, ctx.history(), c);
    std::vector<ReportMark> marks;
    for (const auto& m : field(j, "marks", false, c)) {
        const auto kind = m.is_object() ? m.find("kind") : m.end();
        const auto label = m.is_object() ? m.find("label") : m.end();
        if (!m.is_object() || !m.contains("epoch") || kind == m.end() || !kind->is_string() ||
            kind->get_ref<const std::string&>().empty() || label == m.end() || !label->is_string())
            throw FormatError(c +
                              "a mark must be {\"epoch\": int, \"kind\": non-empty string, \"label\": "
                              "string}, got " +
                              m.dump());
        marks.push_back(
            {epoch_of(m.at("epoch"), "a mark's 'epoch'", c), kind->get<std::string>(), label->get<std::string>()});
    }
    epochs_ = std::move(p.epochs);
    cols_ = std::move(p.cols);
    marks_ = std::move(marks);
    link_history(ctx.history());
    write_on_primary(ctx);
}

TRAINCB_INLINE const nlohmann::json& LearningCurveReport::field(const nlohmann::json& j, const char* key,
                                                                bool want_object, const std::string& c) {
    const auto it = j.find(key);
    if (it == j.end()) throw FormatError(c + "the field '" + key + "' is missing");
    if (want_object ? !it->is_object() : !it->is_array())
        throw FormatError(c + "'" + key + "' must be " + (want_object ? "an object" : "an array") + ", got " +
                          it->dump());
    return *it;
}

TRAINCB_INLINE int LearningCurveReport::epoch_of(const nlohmann::json& e, const std::string& where,
                                                 const std::string& c) {
    if (!e.is_number_integer() || e.get<long long>() < 0 || e.get<long long>() > std::numeric_limits<int>::max())
        throw FormatError(c + where + " must be an epoch (an integer >= 0), got " + e.dump());
    return static_cast<int>(e.get<long long>());
}

TRAINCB_INLINE std::size_t LearningCurveReport::count_of(const nlohmann::json& j, const char* key,
                                                         const std::string& c) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || (!it->is_number_unsigned() && it->get<long long>() < 0))
        throw FormatError(c + "'" + key + "' must be a count (an integer >= 0), got " +
                          (it == j.end() ? std::string("nothing") : it->dump()));
    return it->get<std::size_t>();
}

TRAINCB_INLINE LearningCurveReport::Parsed LearningCurveReport::parse_v1(const nlohmann::json& j,
                                                                         const std::string& c) {
    Parsed p;
    for (const auto& e : field(j, "epochs", false, c)) p.epochs.push_back(epoch_of(e, "an entry of 'epochs'", c));
    for (const auto& [key, arr] : field(j, "columns", true, c).items()) {
        const std::string where = "column '" + key + "'";
        if (!arr.is_array() || arr.size() != p.epochs.size())
            throw FormatError(c + where + " must be an array of " + std::to_string(p.epochs.size()) +
                              " values (one per epoch), got " + arr.dump());
        Column col;
        col.reserve(arr.size());
        for (const auto& v : arr) {
            if (v.is_null()) {
                col.emplace_back();
                continue;
            }
            const std::optional<double> d = v.is_string() ? parse(v.get_ref<const std::string&>()) : std::nullopt;
            if (!d) throw FormatError(c + where + " holds " + v.dump() + "; expected a number as a string or null");
            col.emplace_back(d);
        }
        p.cols.emplace(key, std::move(col));
    }
    return p;
}

TRAINCB_INLINE LearningCurveReport::Parsed LearningCurveReport::parse_v2(const CallbackState& state, const History* h,
                                                                         const std::string& c) {
    const nlohmann::json& j = state.json;
    const std::size_t rows = count_of(j, "rows", c);
    Parsed p;
    const auto tensor = [&](const std::string& name) -> const Tensor& {
        const Tensor* t = state.tensors.find(name);
        if (t == nullptr) throw FormatError(c + "the tensor '" + name + "' is missing");
        return *t;
    };
    const auto bad_tensor = [&](const Tensor& t, const char* want) {
        throw FormatError(c + "the tensor '" + t.name + "' is " + dtype_name(t.dtype) + " of " +
                          std::to_string(t.data.size()) + " bytes, expected " + want + " [" + std::to_string(rows) +
                          "] (one value per epoch)");
    };
    const auto history_it = j.find("history");
    if (history_it == j.end()) throw FormatError(c + "the field 'history' is missing");
    if (history_it->is_null()) {
        std::vector<std::int64_t> e;
        const Tensor& t = tensor("epochs");
        if (!read_vector_tensor(t, rows, e)) bad_tensor(t, "I64");
        for (const std::int64_t v : e) p.epochs.push_back(epoch_of(v, "an entry of tensor 'epochs'", c));
    } else {
        if (!history_it->is_object())
            throw FormatError(c + "'history' must be an object or null, got " + history_it->dump());
        const std::size_t offset = count_of(*history_it, "offset", c);
        const std::size_t have = h != nullptr ? h->size() : 0;
        if (h == nullptr || have < offset || have - offset < rows)
            throw FormatError(
                c + "it takes its " + std::to_string(rows) + " epochs from the run's History (from row " +
                std::to_string(offset) + "), which " +
                (h == nullptr ? std::string("is not available") : "has " + std::to_string(have) + " rows") +
                "; load it after the History of the same checkpoint is in place (Trainer does "
                "this; a hand-written loop calls CallbackList::set_history first)");
        p.epochs.assign(h->epoch.begin() + static_cast<std::ptrdiff_t>(offset),
                        h->epoch.begin() + static_cast<std::ptrdiff_t>(offset + rows));
        for (const auto& key : field(*history_it, "keys", false, c)) {
            if (!key.is_string()) throw FormatError(c + "'history.keys' holds " + key.dump() + ", not a key");
            const auto it = h->history.find(key.get_ref<const std::string&>());
            if (it == h->history.end())
                throw FormatError(c + "the run's History has no '" + key.get<std::string>() +
                                  "', which the state takes from it");
            const auto first = it->second.begin() + static_cast<std::ptrdiff_t>(offset);
            p.cols[it->first] = Column(first, first + static_cast<std::ptrdiff_t>(rows));
        }
    }
    for (const auto& key : field(j, "columns", false, c)) {
        if (!key.is_string()) throw FormatError(c + "'columns' holds " + key.dump() + ", not a key");
        const std::string& k = key.get_ref<const std::string&>();
        std::vector<double> values;
        std::vector<std::uint8_t> present;
        const Tensor& tv = tensor("values/" + k);
        const Tensor& tp = tensor("present/" + k);
        if (!read_vector_tensor(tv, rows, values)) bad_tensor(tv, "F64");
        if (!read_vector_tensor(tp, rows, present)) bad_tensor(tp, "U8");
        Column col(rows);
        for (std::size_t i = 0; i < rows; ++i)
            if (present[i] != 0) col[i] = values[i];
        if (!p.cols.emplace(k, std::move(col)).second)
            throw FormatError(c + "the key '" + k + "' is both in 'columns' and in 'history.keys'");
    }
    return p;
}

TRAINCB_INLINE bool LearningCurveReport::same_as_history(const std::optional<double>& v, const History& h,
                                                         std::string_view key, std::size_t row) {
    if (!v) return false;
    const auto it = h.history.find(key);
    return it != h.history.end() && row < it->second.size() &&
           std::bit_cast<std::uint64_t>(*v) == std::bit_cast<std::uint64_t>(it->second[row]);
}

TRAINCB_INLINE void LearningCurveReport::sync_history() const {
    for (; linked_ && history_ != nullptr && verified_ < epochs_.size(); ++verified_) {
        const std::size_t row = history_offset_ + verified_;
        linked_ = row < history_->size() && history_->epoch[row] == epochs_[verified_];
        for (const auto& [key, col] : cols_)
            if (linked_ && !own_.contains(key) && !same_as_history(col[verified_], *history_, key, row))
                own_.insert(key);
    }
}

TRAINCB_INLINE void LearningCurveReport::link_history(const History* h) {
    history_ = h;
    verified_ = epochs_.size();
    own_.clear();
    linked_ = h != nullptr && h->size() >= epochs_.size();
    if (!linked_) return;
    history_offset_ = h->size() - epochs_.size();
    for (std::size_t i = 0; i < epochs_.size() && linked_; ++i) linked_ = h->epoch[history_offset_ + i] == epochs_[i];
    for (const auto& [key, col] : cols_)
        for (std::size_t i = 0; i < col.size(); ++i)
            if (!same_as_history(col[i], *h, key, history_offset_ + i)) {
                own_.insert(key);
                break;
            }
}

TRAINCB_INLINE void LearningCurveReport::write_on_primary(Context& ctx) {
    if (ctx.comm().is_primary()) {
        write();
        return;
    }
    written_rows_ = epochs_.size();
    written_marks_ = marks_.size();
}

TRAINCB_INLINE void LearningCurveReport::probe_path() const {
    namespace os = detail::os;
    os::FileStatus st;
    if (os::status(opt_.path, st) == 0 && st.type == os::FileType::Directory)
        throw IoError(name(), "cannot write", opt_.path, EISDIR);
    // The nearest existing ancestor must be a directory; a regular file there can never work.
    std::filesystem::path p = opt_.path.parent_path();
    while (!p.empty()) {
        const int err = os::status(p, st);
        if (err == 0) {
            if (st.type != os::FileType::Directory)
                throw IoError(name(), "cannot write (not a directory: '" + p.string() + "')", opt_.path, ENOTDIR);
            return;
        }
        if (err != ENOENT) throw IoError(name(), "cannot write", opt_.path, err);
        if (p == p.parent_path()) return;
        p = p.parent_path();
    }
}

TRAINCB_INLINE void LearningCurveReport::record(int epoch, const Logs& logs) {
    const std::size_t n = epochs_.size();
    epochs_.push_back(epoch);
    for (const auto& [k, v] : logs) {
        if (n > 0 && !cols_.contains(k)) own_.insert(k);  // absent before: not the History's NaN
        auto& col = cols_[k];
        col.resize(n);
        col.push_back(v);
    }
    for (auto& [k, col] : cols_) col.resize(n + 1);
}

TRAINCB_INLINE std::string LearningCurveReport::monitor_key() const {
    if (opt_.early_stopping) return opt_.early_stopping->options().monitor;
    if (!opt_.monitor.empty()) return opt_.monitor;
    return cols_.count("val_loss") ? "val_loss" : "loss";
}

TRAINCB_INLINE std::optional<LearningCurveReport::Best> LearningCurveReport::best() const {
    const std::string key = monitor_key();
    const auto it = cols_.find(key);
    if (opt_.early_stopping) {
        const auto be = opt_.early_stopping->best_epoch();
        const auto bv = opt_.early_stopping->best();
        if (!be || !bv) return std::nullopt;
        return Best{key, *be, *bv};
    }
    if (it == cols_.end()) return std::nullopt;
    std::optional<Direction> dir = dir_;
    if (!dir && opt_.mode == Mode::Min) dir = Direction::Min;
    if (!dir && opt_.mode == Mode::Max) dir = Direction::Max;
    if (!dir) dir = detail::direction_from_name(key, declared_);
    if (!dir) return std::nullopt;
    std::optional<Best> b;
    for (std::size_t i = 0; i < epochs_.size(); ++i) {
        const auto& v = it->second[i];
        if (!v || std::isnan(*v)) continue;
        if (!b || detail::better(*dir, *v, b->value, 0.0)) b = Best{key, epochs_[i], *v};
    }
    return b;
}

TRAINCB_INLINE std::optional<LearningCurveReport::Stop> LearningCurveReport::stopped() const {
    if (opt_.early_stopping) {
        if (const auto se = opt_.early_stopping->stopped_epoch())
            return Stop{*se, "stopped", to_string(opt_.early_stopping->stop_reason())};
    }
    if (ended_ && end_.kind != EndKind::Completed && !epochs_.empty())
        return Stop{epochs_.back(), to_string(end_.kind), end_.reason};
    return std::nullopt;
}

TRAINCB_INLINE std::vector<std::pair<int, std::pair<double, double>>> LearningCurveReport::lr_changes() const {
    std::vector<std::pair<int, std::pair<double, double>>> out;
    const auto it = cols_.find(opt_.learning_rate_key);
    if (it == cols_.end()) return out;
    std::optional<double> prev;
    for (std::size_t i = 0; i < epochs_.size(); ++i) {
        const auto& v = it->second[i];
        if (!v || !std::isfinite(*v)) continue;
        if (prev && *v != *prev) out.push_back({epochs_[i], {*prev, *v}});
        prev = v;
    }
    return out;
}

TRAINCB_INLINE std::vector<LearningCurveReport::Group> LearningCurveReport::groups() const {
    std::map<std::string, Group> by_base;
    for (const auto& [k, col] : cols_) {
        const bool is_val = k.size() > 4 && k.starts_with("val_") && k != "val_" + opt_.learning_rate_key;
        const std::string base = is_val ? k.substr(4) : k;
        Group& g = by_base[base];
        g.base = base;
        (is_val ? g.val : g.train) = k;
    }
    // loss first (what everyone looks at), the learning rate last, the rest by name.
    std::vector<Group> out;
    if (auto it = by_base.find("loss"); it != by_base.end()) out.push_back(it->second);
    for (const auto& [b, g] : by_base)
        if (b != "loss" && b != opt_.learning_rate_key) out.push_back(g);
    if (auto it = by_base.find(opt_.learning_rate_key); it != by_base.end()) out.push_back(it->second);
    return out;
}

TRAINCB_INLINE int LearningCurveReport::layout_lanes(std::vector<Event>& events) {
    std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) { return a.x < b.x; });
    std::vector<double> lane_end;
    for (auto& e : events) {
        const double w = detail::lcr::text_width(e.label, 11) + 6;
        e.lx = std::clamp(e.x, 4 + w / 2, kWidth - 4 - w / 2);
        int lane = -1;
        for (std::size_t i = 0; i < lane_end.size(); ++i)
            if (lane_end[i] <= e.lx - w / 2) {
                lane = static_cast<int>(i);
                break;
            }
        if (lane < 0 && static_cast<int>(lane_end.size()) < kMaxLanes) {
            lane = static_cast<int>(lane_end.size());
            lane_end.push_back(0);
        }
        if (lane < 0)  // every row is taken: overlap in the row that frees up first
            lane = static_cast<int>(std::min_element(lane_end.begin(), lane_end.end()) - lane_end.begin());
        e.lane = lane;
        lane_end[static_cast<std::size_t>(lane)] = e.lx + w / 2;
    }
    return static_cast<int>(lane_end.size());
}

TRAINCB_INLINE void LearningCurveReport::render_chart(std::string& o, const Group& g, const detail::lcr::Axis& xa,
                                                      const std::vector<Event>& events, int lanes,
                                                      const std::optional<Best>& best_mark) const {
    namespace L = detail::lcr;
    using L::escape;
    using L::px;
    const double top = kTitleH + lanes * kLaneH + (lanes > 0 ? 6 : 0);
    const double height = top + kPlotH + kBottom;
    const double plot_w = kWidth - kLeft - kRight;
    const double bottom = top + kPlotH;
    const bool is_lr = g.base == opt_.learning_rate_key;

    struct S {
        std::string key;
        std::string cls;
        std::string legend;
    };
    std::vector<S> series;
    const bool both = !g.train.empty() && !g.val.empty();
    if (!g.train.empty()) series.push_back({g.train, is_lr ? "lr" : "train", both ? "training" : g.train});
    if (!g.val.empty()) series.push_back({g.val, "val", both ? "validation" : g.val});

    double mn = std::numeric_limits<double>::infinity();
    double mx = -mn;
    for (const auto& s : series)
        for (const auto& v : cols_.at(s.key))
            if (v && std::isfinite(*v)) {
                mn = std::min(mn, *v);
                mx = std::max(mx, *v);
            }
    const L::Axis ya = L::value_axis(mn, mx);
    auto y_of = [&](double v) { return bottom - (v - ya.lo) / (ya.hi - ya.lo) * kPlotH; };

    detail::lcr::put(o, "<figure class=\"chart\" data-metric=\"", escape(g.base), "\">\n");
    detail::lcr::put(o, "<svg viewBox=\"0 0 ", px(kWidth), ' ', px(height), "\" width=\"", px(kWidth), "\" height=\"",
                     px(height), "\" role=\"img\" aria-label=\"", escape(g.base), " by epoch\">\n");
    detail::lcr::put(o, "<text class=\"ctitle\" x=\"14\" y=\"19\">", escape(g.base), "</text>\n");
    // Legend, right-aligned on the title row.
    double lx = kWidth - kRight;
    for (auto it = series.rbegin(); it != series.rend(); ++it) {
        const double w = L::text_width(it->legend, 11);
        lx -= w;
        detail::lcr::put(o, "<text class=\"legend\" x=\"", px(lx), "\" y=\"19\">", escape(it->legend), "</text>");
        lx -= 24;
        detail::lcr::put(o, "<line class=\"series s-", it->cls, "\" x1=\"", px(lx), "\" y1=\"15\" x2=\"", px(lx + 18),
                         "\" y2=\"15\"/>\n");
        lx -= 14;
    }
    // Grid and ticks.
    o += "<g class=\"grid\">";
    for (std::size_t i = 0; i < ya.ticks.size(); ++i) {
        const std::string y = px(y_of(ya.ticks[i]));
        detail::lcr::put(o, "<line x1=\"", px(kLeft), "\" y1=\"", y, "\" x2=\"", px(kLeft + plot_w), "\" y2=\"", y,
                         "\"/>");
    }
    for (const double t : xa.ticks) {
        const std::string x = px(x_of(t, xa));
        detail::lcr::put(o, "<line x1=\"", x, "\" y1=\"", px(top), "\" x2=\"", x, "\" y2=\"", px(bottom), "\"/>");
    }
    o += "</g>\n<g class=\"ticks\">";
    for (std::size_t i = 0; i < ya.ticks.size(); ++i)
        detail::lcr::put(o, "<text class=\"ytick\" x=\"", px(kLeft - 7), "\" y=\"", px(y_of(ya.ticks[i]) + 4), "\">",
                         escape(ya.labels[i]), "</text>");
    for (std::size_t i = 0; i < xa.ticks.size(); ++i)
        detail::lcr::put(o, "<text class=\"xtick\" x=\"", px(x_of(xa.ticks[i], xa)), "\" y=\"", px(bottom + 16), "\">",
                         escape(xa.labels[i]), "</text>");
    o += "</g>\n";
    detail::lcr::put(o, "<line class=\"axis\" x1=\"", px(kLeft), "\" y1=\"", px(bottom), "\" x2=\"", px(kLeft + plot_w),
                     "\" y2=\"", px(bottom), "\"/>");
    detail::lcr::put(o, "<line class=\"axis\" x1=\"", px(kLeft), "\" y1=\"", px(top), "\" x2=\"", px(kLeft), "\" y2=\"",
                     px(bottom), "\"/>\n");
    detail::lcr::put(o, "<text class=\"xlabel\" x=\"", px(kLeft + plot_w / 2), "\" y=\"", px(height - 6),
                     "\">epoch (from 1)</text>\n");

    // Event lines (best, stopped, learning-rate changes) with their labels above the plot.
    o += "<g class=\"events\">";
    for (const auto& e : events) {
        const std::string x = px(e.x);
        detail::lcr::put(o, "<line class=\"ev ev-", e.cls, "\" data-epoch=\"", std::to_string(e.epoch), "\" x1=\"", x,
                         "\" y1=\"", px(top), "\" x2=\"", x, "\" y2=\"", px(bottom), "\"><title>", escape(e.tip),
                         "</title></line>");
        detail::lcr::put(o, "<text class=\"evl ev-", e.cls, "\" x=\"", px(e.lx), "\" y=\"",
                         px(kTitleH + (e.lane + 1) * kLaneH - 2), "\">", escape(e.label), "</text>\n");
    }
    o += "</g>\n";

    // The curves: every finite point, in epoch order; non-finite values are skipped and flagged.
    for (const auto& s : series) {
        const Column& col = cols_.at(s.key);
        std::string pts;
        int n = 0;
        for (std::size_t i = 0; i < epochs_.size(); ++i) {
            if (!col[i] || !std::isfinite(*col[i])) continue;
            if (n++ > 0) pts += ' ';
            detail::lcr::put(pts, px(x_of(epochs_[i] + 1, xa)), ',', px(y_of(*col[i])));
        }
        detail::lcr::put(o, "<polyline class=\"series s-", s.cls, "\" data-key=\"", escape(s.key), "\" data-points=\"",
                         std::to_string(n), "\" points=\"", pts, "\"/>\n");
        if (n <= 60) {  // dots help read short runs; on long ones they would only thicken the line
            detail::lcr::put(o, "<g class=\"dots d-", s.cls, "\">");
            for (std::size_t i = 0; i < epochs_.size(); ++i) {
                if (!col[i] || !std::isfinite(*col[i])) continue;
                detail::lcr::put(o, "<circle cx=\"", px(x_of(epochs_[i] + 1, xa)), "\" cy=\"", px(y_of(*col[i])),
                                 "\" r=\"2.6\"><title>epoch ", std::to_string(epochs_[i] + 1), ": ", escape(s.key),
                                 " = ", L::sig(*col[i], 6), "</title></circle>");
            }
            o += "</g>\n";
        }
        for (std::size_t i = 0; i < epochs_.size(); ++i) {
            if (!col[i] || std::isfinite(*col[i])) continue;
            const double x = x_of(epochs_[i] + 1, xa);
            const double y = top + 7;
            detail::lcr::put(o, "<path class=\"nonfinite\" data-key=\"", escape(s.key), "\" data-epoch=\"",
                             std::to_string(epochs_[i]), "\" d=\"M", px(x - 4), ' ', px(y - 4),
                             "l8 8m0 -8l-8 8\"><title>epoch ", std::to_string(epochs_[i] + 1), ": ", escape(s.key),
                             " = ", L::sig(*col[i], 6), "</title></path>\n");
        }
    }
    // A ring on the best value of the monitored metric.
    if (best_mark && (best_mark->key == g.train || best_mark->key == g.val) && std::isfinite(best_mark->value)) {
        detail::lcr::put(o, "<circle class=\"best-ring\" data-epoch=\"", std::to_string(best_mark->epoch), "\" cx=\"",
                         px(x_of(best_mark->epoch + 1, xa)), "\" cy=\"", px(y_of(best_mark->value)), "\" r=\"6\"/>\n");
    }
    // Marks (checkpoints, ...) as small triangles on the x axis.
    for (const auto& m : marks_) {
        const double x = x_of(m.epoch + 1, xa);
        detail::lcr::put(o, "<path class=\"mark mark-", L::css_ident(m.kind), "\" data-epoch=\"",
                         std::to_string(m.epoch), "\" d=\"M", px(x), ' ', px(bottom - 8), "l-5 8h10z\"><title>epoch ",
                         std::to_string(m.epoch + 1), ": ", escape(m.kind),
                         (m.label.empty() ? "" : " " + escape(m.label)), "</title></path>\n");
    }
    o += "</svg>\n</figure>\n";
}

}  // namespace traincb::inline v0
