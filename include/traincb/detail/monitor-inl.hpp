#pragma once
// The bodies of traincb/detail/monitor.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/detail/monitor.hpp"

namespace traincb::inline v0 {
namespace detail {

TRAINCB_INLINE bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

TRAINCB_INLINE std::optional<Direction> direction_from_name(
    std::string_view monitor, const std::vector<std::pair<std::string, Direction>>& declared) {
    for (const auto& [k, d] : declared)
        if (k == monitor) return d;
    std::string_view n = monitor;
    if (n.starts_with("val_")) n.remove_prefix(4);
    for (const auto& [k, d] : declared)
        if (k == n) return d;
    if (n == "loss" || ends_with(n, "loss") || ends_with(n, "crossentropy") || ends_with(n, "_error"))
        return Direction::Min;
    static constexpr std::string_view mins[] = {"mse",
                                                "mae",
                                                "mape",
                                                "msle",
                                                "rmse",
                                                "mean_squared_error",
                                                "mean_absolute_error",
                                                "mean_absolute_percentage_error",
                                                "mean_squared_logarithmic_error",
                                                "root_mean_squared_error",
                                                "hinge",
                                                "squared_hinge",
                                                "categorical_hinge",
                                                "logcosh",
                                                "kl_divergence",
                                                "poisson"};
    for (auto m : mins)
        if (n == m) return Direction::Min;
    if (ends_with(n, "accuracy")) return Direction::Max;
    static constexpr std::string_view maxs[] = {"acc",      "precision", "recall",   "auc",         "roc_auc",
                                                "prc",      "f1",        "f1_score", "fbeta_score", "r2",
                                                "r2_score", "iou",       "mean_iou"};
    for (auto m : maxs)
        if (n == m) return Direction::Max;
    return std::nullopt;
}

TRAINCB_INLINE Direction resolve_mode(std::string_view component, Mode mode, std::string_view monitor,
                                      const std::vector<std::pair<std::string, Direction>>& declared) {
    if (mode == Mode::Min) return Direction::Min;
    if (mode == Mode::Max) return Direction::Max;
    if (auto d = direction_from_name(monitor, declared)) return *d;
    throw InvalidArgument("traincb: " + std::string(component) + ": cannot infer whether monitor '" +
                          std::string(monitor) +
                          "' should be minimised or maximised; pass mode = traincb::Mode::Min or traincb::Mode::Max");
}

}  // namespace detail
}  // namespace traincb::inline v0
