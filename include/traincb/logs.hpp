#pragma once
/// @file logs.hpp
/// Logs (the ordered key -> value record each hook sees) and History (every epoch's logs).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traincb/detail/strings.hpp"
#include "traincb/errors.hpp"

namespace traincb::inline v0 {

/// An ordered map from metric name to value, kept sorted by key as Keras sorts its logs.
/// Updating an existing key never allocates, so batch logs cost nothing on the hot path.
class Logs {
public:
    /// One entry, (key, value), so that `for (const auto& [key, value] : logs)` works.
    using value_type = std::pair<std::string, double>;
    /// Iterates the entries in sorted key order; the logs are read-only through iteration.
    using const_iterator = std::vector<value_type>::const_iterator;

    Logs() = default;
    /// Builds logs from `{{"loss", 0.5}, {"accuracy", 0.9}}`.
    Logs(std::initializer_list<value_type> init) {
        for (const auto& [k, v] : init) set(k, v);
    }

    /// Sets `key` to `value`, inserting it in sorted position if it is new.
    void set(std::string_view key, double value) {
        auto it = lower(key);
        if (it != items_.end() && it->first == key) {
            it->second = value;
        } else {
            items_.insert(it, value_type(std::string(key), value));
        }
    }
    /// Pointer to the value of `key`, or nullptr when it is absent (no allocation, no throw).
    [[nodiscard]] const double* find(std::string_view key) const noexcept {
        auto it = lower(key);
        return (it != items_.end() && it->first == key) ? &it->second : nullptr;
    }
    /// The value of `key`, or nullopt.
    [[nodiscard]] std::optional<double> get(std::string_view key) const noexcept {
        const double* p = find(key);
        return p ? std::optional<double>(*p) : std::nullopt;
    }
    /// The value of `key`. @throws InvalidArgument naming the keys present and the closest one.
    [[nodiscard]] double at(std::string_view key) const {
        if (const double* p = find(key)) return *p;
        throw InvalidArgument(missing_key_message("Logs", key));
    }
    /// True when `key` is present.
    [[nodiscard]] bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }
    /// Removes `key` if present.
    void erase(std::string_view key) {
        auto it = lower(key);
        if (it != items_.end() && it->first == key) items_.erase(it);
    }
    /// Removes every key (keeps capacity).
    void clear() noexcept { items_.clear(); }
    /// Number of keys.
    [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
    /// True when there is no key.
    [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
    /// Iteration in sorted key order.
    [[nodiscard]] const_iterator begin() const noexcept { return items_.begin(); }
    /// End of iteration.
    [[nodiscard]] const_iterator end() const noexcept { return items_.end(); }
    /// The keys in sorted order.
    [[nodiscard]] std::vector<std::string> keys() const {
        std::vector<std::string> out;
        out.reserve(items_.size());
        for (const auto& kv : items_) out.push_back(kv.first);
        return out;
    }
    /// "traincb: <component>: no key 'x' in the logs; present: a, b; did you mean 'y'?"
    [[nodiscard]] std::string missing_key_message(std::string_view component, std::string_view key) const {
        const auto ks = keys();
        std::string msg = "traincb: " + std::string(component) + ": '" + std::string(key) +
                          "' is not in the logs; available keys: " + detail::join(ks);
        if (auto c = detail::closest_match(key, ks); !c.empty()) msg += "; did you mean '" + c + "'?";
        return msg;
    }

    friend bool operator==(const Logs&, const Logs&) = default;

private:
    [[nodiscard]] std::vector<value_type>::iterator lower(std::string_view key) {
        return std::lower_bound(items_.begin(), items_.end(), key,
                                [](const value_type& kv, std::string_view k) { return kv.first < k; });
    }
    [[nodiscard]] std::vector<value_type>::const_iterator lower(std::string_view key) const {
        return std::lower_bound(items_.begin(), items_.end(), key,
                                [](const value_type& kv, std::string_view k) { return kv.first < k; });
    }
    std::vector<value_type> items_{};
};

/// How a training run ended.
enum class EndKind {
    Completed,    ///< every epoch ran
    Stopped,      ///< a callback requested a stop (see TrainEnd::source / reason)
    Exception,    ///< an exception escaped; it is rethrown after on_train_end
    Interrupted,  ///< SIGINT/SIGTERM with the graceful-interruption handler installed
};

/// Why training ended, as on_train_end and History report it.
struct TrainEnd {
    EndKind kind = EndKind::Completed;  ///< completed, stopped, exception or interrupted
    std::string source{};               ///< the component that stopped training ("EarlyStopping"), if any
    std::string reason{};               ///< its reason ("patience", "non_finite", the exception's what(), ...)
    std::exception_ptr exception{};     ///< set when kind == Exception
};

/// Something that happened during a run and that a callback reports for the record (a loss spike
/// rolled back, ...): Context::report hands it to every callback's on_run_event, and MetricLogger
/// to its sinks (Sink::write_event).
struct RunEvent {
    std::string source{};          ///< the component that reports it ("SpikeDetection")
    std::string kind{};            ///< what happened, a short identifier ("loss_spike")
    std::string message{};         ///< one line for people, starting with "traincb: <source>: "
    int epoch = -1;                ///< 0-based absolute epoch (-1: outside an epoch)
    int batch = -1;                ///< 0-based batch within the epoch (-1: outside a batch)
    std::int64_t global_step = 0;  ///< batches completed in the run when it happened
    Logs values{};                 ///< the numbers behind it (e.g. loss, median, mad)
};

/// "completed", "stopped", "exception", "interrupted".
[[nodiscard]] inline const char* to_string(EndKind k) noexcept {
    switch (k) {
        case EndKind::Completed:
            return "completed";
        case EndKind::Stopped:
            return "stopped";
        case EndKind::Exception:
            return "exception";
        case EndKind::Interrupted:
            return "interrupted";
    }
    return "?";
}

/// Every epoch's logs, as Keras's History: `epoch` holds the 0-based epoch indices and
/// `history[key]` one value per epoch. Unlike Keras, every column stays aligned with `epoch`:
/// a key missing in an epoch holds NaN there (Keras appends only present keys, misaligning them).
class History {
public:
    /// 0-based absolute epoch indices, one per recorded epoch.
    std::vector<int> epoch{};
    /// key -> one value per recorded epoch (NaN where the key was not logged).
    std::map<std::string, std::vector<double>, std::less<>> history{};
    /// Why training ended (set by Trainer::fit).
    TrainEnd end;

    /// Appends one epoch's logs.
    void record(int epoch_index, const Logs& logs) {
        const std::size_t n = epoch.size();
        epoch.push_back(epoch_index);
        for (const auto& [k, v] : logs) {
            auto& col = history[k];
            col.resize(n, std::nan(""));
            col.push_back(v);
        }
        for (auto& [k, col] : history) col.resize(n + 1, std::nan(""));
    }
    /// Forgets every epoch.
    void clear() {
        epoch.clear();
        history.clear();
        end = {};
    }
    /// The values of `key`. @throws InvalidArgument naming the recorded keys.
    [[nodiscard]] const std::vector<double>& at(std::string_view key) const {
        auto it = history.find(key);
        if (it == history.end()) {
            std::vector<std::string> ks;
            for (const auto& kv : history) ks.push_back(kv.first);
            std::string msg = "traincb: History: no key '" + std::string(key) + "'; recorded keys: " + detail::join(ks);
            if (auto c = detail::closest_match(key, ks); !c.empty()) msg += "; did you mean '" + c + "'?";
            throw InvalidArgument(msg);
        }
        return it->second;
    }
    /// Number of recorded epochs.
    [[nodiscard]] std::size_t size() const noexcept { return epoch.size(); }
};

}  // namespace traincb::inline v0
