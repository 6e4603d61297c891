// traincb-replay: "when would this EarlyStopping configuration have stopped that run?", answered
// from a logged CSV history without training anything (docs/early-stopping-rules.md, "The replay
// tool").
//
//   traincb-replay --history FILE.csv [--monitor NAME] [--mode auto|min|max] [--patience N]
//                  [--min-delta X] [--min-delta-mode abs|rel] [--baseline X] [--start-from-epoch N]
//                  [--stopping-threshold X] [--divergence-threshold X]
//                  [--check-finite true|false] [--restore-best-weights]
//
// Several monitors (stop only when none improves): repeat --monitor KEY[:auto|min|max[:MIN_DELTA]],
// the first one primary; each then has its own mode and margin, so --mode and --min-delta are
// not given.
//
// On success: exit 0 and one JSON object on stdout. On bad input: exit 2, nothing on stdout, and
// one line on stderr naming the option or the line of the file at fault.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <traincb/callbacks/early_stopping.hpp>
#include <vector>

namespace {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr const char* kUsage =
    "usage: traincb-replay --history FILE.csv [--monitor NAME] [--mode auto|min|max] [--patience N]\n"
    "                      [--min-delta X] [--min-delta-mode abs|rel] [--baseline X] [--start-from-epoch N]\n"
    "                      [--stopping-threshold X] [--divergence-threshold X]\n"
    "                      [--check-finite true|false] [--restore-best-weights]\n"
    "Several monitors: repeat --monitor KEY[:auto|min|max[:MIN_DELTA]] (the first is the primary one;\n"
    "no --mode or --min-delta then). Training stops when none of them improves.\n"
    "Replays traincb's EarlyStopping rules over a CSV history (as traincb's CSV sink or Keras's CSVLogger\n"
    "write it) and prints one JSON object: mode, stopped_epoch, stop_reason, best_epoch, best, wait,\n"
    "epochs_run, restored_from_epoch (the primary monitor's), and with several monitors a list\n"
    "monitors of {key, mode, best_epoch, best, wait}.\n";

// Parses a whole string as a double, exactly (shortest round-trip decimal -> the same double).
std::optional<double> parse_number(std::string_view s) {
    if (s == "nan" || s == "NaN" || s == "-nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf" || s == "Infinity" || s == "+inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf" || s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    double v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

int parse_int(const std::string& flag, const std::string& s) {
    int v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty())
        throw UsageError(flag + ": '" + s + "' is not an integer");
    return v;
}
double parse_double(const std::string& flag, const std::string& s) {
    auto v = parse_number(s);
    if (!v) throw UsageError(flag + ": '" + s + "' is not a number");
    return *v;
}

// Splits a CSV text (RFC 4180: quoted cells, doubled quotes, \n or \r\n line ends) into rows.
std::vector<std::vector<std::string>> read_csv(const std::string& text, const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string cell;
    bool quoted = false, in_quotes = false, any = false;
    std::size_t line = 1;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_quotes) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    cell += '"';
                    ++i;
                } else {
                    in_quotes = false;
                }
            } else {
                if (c == '\n') ++line;
                cell += c;
            }
            continue;
        }
        if (c == '"') {
            if (!cell.empty())
                throw UsageError(path + ":" + std::to_string(line) + ": a quote inside an unquoted cell");
            in_quotes = quoted = any = true;
        } else if (c == ',') {
            row.push_back(std::move(cell));
            cell.clear();
            quoted = false;
            any = true;
        } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            continue;
        } else if (c == '\n') {
            row.push_back(std::move(cell));
            cell.clear();
            rows.push_back(std::move(row));
            row.clear();
            quoted = any = false;
            ++line;
        } else {
            cell += c;
            any = true;
        }
    }
    if (in_quotes) throw UsageError(path + ":" + std::to_string(line) + ": unterminated quoted cell");
    if (any || !cell.empty() || quoted) {
        row.push_back(std::move(cell));
        rows.push_back(std::move(row));
    }
    return rows;
}

nlohmann::ordered_json number_or_string(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return v;
}

// The monitors of `--monitor KEY[:auto|min|max[:MIN_DELTA]]` given several times, or in that form.
std::vector<traincb::MonitorSpec> monitor_specs(const std::vector<std::string>& given) {
    std::vector<traincb::MonitorSpec> specs;
    for (const std::string& g : given) {
        std::vector<std::string> parts;
        for (std::size_t at = 0;;) {
            const std::size_t colon = g.find(':', at);
            parts.push_back(g.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
            if (colon == std::string::npos) break;
            at = colon + 1;
        }
        const std::string flag = "--monitor " + g;
        if (parts.size() > 3) throw UsageError(flag + ": expected KEY[:auto|min|max[:MIN_DELTA]]");
        traincb::MonitorSpec m{.key = parts[0]};
        if (parts.size() > 1) {
            try {
                m.mode = traincb::parse_mode(parts[1]);
            } catch (const std::invalid_argument& e) {
                throw UsageError(flag + ": " + e.what());
            }
        }
        if (parts.size() > 2) m.min_delta = parse_double(flag, parts[2]);
        specs.push_back(std::move(m));
    }
    return specs;
}

int run(int argc, char** argv) {
    std::map<std::string, std::string> args;
    std::vector<std::string> monitors;  // every --monitor, in order
    bool restore = false;
    const std::vector<std::string> valued = {"--history",
                                             "--monitor",
                                             "--mode",
                                             "--patience",
                                             "--min-delta",
                                             "--min-delta-mode",
                                             "--baseline",
                                             "--start-from-epoch",
                                             "--stopping-threshold",
                                             "--divergence-threshold",
                                             "--check-finite"};
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << kUsage;
            return 0;
        }
        if (a == "--restore-best-weights") {
            restore = true;
            continue;
        }
        std::string value;
        bool has_value = false;
        if (auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
            value = a.substr(eq + 1);
            a = a.substr(0, eq);
            has_value = true;
        }
        if (std::find(valued.begin(), valued.end(), a) == valued.end())
            throw UsageError("unknown option '" + a + "' (see --help)");
        if (!has_value) {
            if (i + 1 >= argc) throw UsageError(a + " needs a value");
            value = argv[++i];
        }
        if (a == "--monitor") monitors.push_back(value);
        args[a] = value;
    }
    if (!args.count("--history")) throw UsageError("--history FILE.csv is required (see --help)");

    traincb::EarlyStoppingOptions o;
    // One plain --monitor NAME is EarlyStoppingOptions::monitor, with --mode and --min-delta;
    // anything else is EarlyStoppingOptions::monitors, each with its own mode and margin.
    const bool several = monitors.size() > 1 || (monitors.size() == 1 && monitors[0].find(':') != std::string::npos);
    if (several) {
        for (const char* flag : {"--mode", "--min-delta"})
            if (args.count(flag))
                throw UsageError(std::string(flag) +
                                 ": each monitor has its own with several --monitor (or KEY:MODE): "
                                 "use --monitor KEY:MODE:MIN_DELTA instead");
        o.monitors = monitor_specs(monitors);
    } else {
        o.monitor = monitors.empty() ? "val_loss" : monitors[0];
    }
    o.restore_best_weights = false;  // replay has no model; restored_from_epoch is computed below
    o.strict = true;
    try {
        if (args.count("--mode")) o.mode = traincb::parse_mode(args["--mode"]);
    } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--mode: ") + e.what());
    }
    try {
        if (args.count("--min-delta-mode")) o.min_delta_mode = traincb::parse_delta_mode(args["--min-delta-mode"]);
    } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--min-delta-mode: ") + e.what());
    }
    if (args.count("--patience")) o.patience = parse_int("--patience", args["--patience"]);
    if (args.count("--min-delta")) o.min_delta = parse_double("--min-delta", args["--min-delta"]);
    if (args.count("--baseline")) o.baseline = parse_double("--baseline", args["--baseline"]);
    if (args.count("--start-from-epoch"))
        o.start_from_epoch = parse_int("--start-from-epoch", args["--start-from-epoch"]);
    if (args.count("--stopping-threshold"))
        o.stopping_threshold = parse_double("--stopping-threshold", args["--stopping-threshold"]);
    if (args.count("--divergence-threshold"))
        o.divergence_threshold = parse_double("--divergence-threshold", args["--divergence-threshold"]);
    if (args.count("--check-finite")) {
        const auto& v = args["--check-finite"];
        if (v != "true" && v != "false") throw UsageError("--check-finite: '" + v + "' must be true or false");
        o.check_finite = v == "true";
    }
    std::optional<traincb::EarlyStopping> es;
    try {
        es.emplace(o);
    } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
    }

    const std::string path = args["--history"];
    std::ifstream in(path, std::ios::binary);
    if (!in) throw UsageError("--history: cannot open '" + path + "': " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    const auto rows = read_csv(ss.str(), path);
    if (rows.empty()) throw UsageError(path + ": the file is empty; expected a header row");
    const auto& header = rows[0];
    std::ptrdiff_t epoch_col = -1;
    for (std::size_t c = 0; c < header.size(); ++c)
        if (header[c] == "epoch") epoch_col = static_cast<std::ptrdiff_t>(c);
    const std::vector<std::string> keys = es->monitor_keys();
    std::vector<std::size_t> mon_cols;
    for (const std::string& key : keys) {
        const auto it = std::find(header.begin(), header.end(), key);
        if (it == header.end()) {
            std::string msg = path + ": no column '" + key + "'; the columns are: " + traincb::detail::join(header);
            if (auto c = traincb::detail::closest_match(key, header); !c.empty()) msg += "; did you mean '" + c + "'?";
            throw UsageError(msg);
        }
        mon_cols.push_back(static_cast<std::size_t>(it - header.begin()));
    }
    try {
        es->resolve();  // after the column check, so a typo gets a did-you-mean, not "cannot infer"
    } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
    }
    int epochs_run = 0;
    std::vector<std::optional<double>> values(keys.size());
    for (std::size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        const std::string where = path + ":" + std::to_string(r + 1);
        if (row.size() == 1 && row[0].empty()) continue;  // a blank line
        if (row.size() != header.size())
            throw UsageError(where + ": " + std::to_string(row.size()) + " cells, but the header has " +
                             std::to_string(header.size()));
        int epoch = static_cast<int>(r - 1);
        if (epoch_col >= 0) {
            const auto& cell = row[static_cast<std::size_t>(epoch_col)];
            auto v = parse_number(cell);
            if (!v || !std::isfinite(*v) || *v != std::floor(*v) || *v < 0)
                throw UsageError(where + ": epoch '" + cell + "' is not a non-negative whole number");
            epoch = static_cast<int>(*v);
        }
        ++epochs_run;
        for (std::size_t m = 0; m < keys.size(); ++m) {
            const auto& cell = row[mon_cols[m]];
            values[m].reset();
            if (cell.empty() || cell == "NA") continue;  // not logged that epoch: this monitor skips it
            values[m] = parse_number(cell);
            if (!values[m]) throw UsageError(where + ": " + keys[m] + " '" + cell + "' is not a number");
        }
        const auto d = es->decide(values, epoch);
        if (d.stop != traincb::StopReason::None) break;
    }
    nlohmann::ordered_json out;
    out["mode"] = traincb::to_string(*es->direction());
    out["stopped_epoch"] =
        es->stopped_epoch() ? nlohmann::ordered_json(*es->stopped_epoch()) : nlohmann::ordered_json();
    out["stop_reason"] =
        es->stopped_epoch() ? nlohmann::ordered_json(traincb::to_string(es->stop_reason())) : nlohmann::ordered_json();
    out["best_epoch"] = es->best_epoch() ? nlohmann::ordered_json(*es->best_epoch()) : nlohmann::ordered_json();
    out["best"] = es->best() ? number_or_string(*es->best()) : nlohmann::ordered_json();
    out["wait"] = es->wait();
    out["epochs_run"] = epochs_run;
    out["restored_from_epoch"] =
        restore && es->best_epoch() ? nlohmann::ordered_json(*es->best_epoch()) : nlohmann::ordered_json();
    if (keys.size() > 1) {
        nlohmann::ordered_json list = nlohmann::ordered_json::array();
        for (const std::string& key : keys) {
            nlohmann::ordered_json m;
            m["key"] = key;
            m["mode"] = traincb::to_string(*es->direction(key));
            m["best_epoch"] =
                es->best_epoch(key) ? nlohmann::ordered_json(*es->best_epoch(key)) : nlohmann::ordered_json();
            m["best"] = es->best(key) ? number_or_string(*es->best(key)) : nlohmann::ordered_json();
            m["wait"] = es->wait(key);
            list.push_back(std::move(m));
        }
        out["monitors"] = std::move(list);
    }
    std::cout << out.dump() << '\n';
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "traincb-replay: error: " << e.what() << '\n';
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "traincb-replay: error: " << e.what() << '\n';
        return 2;
    }
}
