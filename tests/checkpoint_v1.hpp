#pragma once
// Rewrites a checkpoint into the layout of state format version 1, as traincb wrote it before the
// History and bulk metric states moved to tensors: the History as JSON inside "traincb.state"
// (epoch indices, every value a round-trip string), each training metric state as pure JSON
// (metrics::Metric::save_state: RocAuc's scores as arrays of strings), and LearningCurveReport's
// state as its version 1 JSON (epochs, every column, marks). The tests resume from such files to
// show that checkpoints written before the change still load and resume exactly.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <traincb/detail/hash.hpp>
#include <traincb/detail/strings.hpp>
#include <traincb/io/checkpoint.hpp>
#include <traincb/state.hpp>
#include <vector>

namespace ckpt_v1 {

namespace fs = std::filesystem;

// The doubles of a rank-1 F64 tensor (the test's own reading, not the library's).
inline std::vector<double> doubles_of(const traincb::Tensor& t) {
    std::vector<double> v(t.data.size() / sizeof(double));
    if (!v.empty()) std::memcpy(v.data(), t.data.data(), t.data.size());
    return v;
}

// A version-2 LearningCurveReport state (of `tensors`, names relative to the report's key) as
// version 1 JSON, with the shared values taken from the History.
inline nlohmann::json report_state_v1(const nlohmann::json& j, const traincb::StateDict& tensors,
                                      const traincb::History& h) {
    const auto rows = j.at("rows").get<std::size_t>();
    const auto offset = j.at("history").at("offset").get<std::size_t>();
    nlohmann::json epochs = nlohmann::json::array();
    for (std::size_t i = 0; i < rows; ++i) epochs.push_back(h.epoch.at(offset + i));
    nlohmann::json columns = nlohmann::json::object();
    for (const auto& key : j.at("history").at("keys")) {
        nlohmann::json col = nlohmann::json::array();
        for (std::size_t i = 0; i < rows; ++i)
            col.push_back(traincb::detail::format_double(h.at(key.get<std::string>()).at(offset + i)));
        columns[key.get<std::string>()] = std::move(col);
    }
    for (const auto& key : j.at("columns")) {
        const std::string k = key.get<std::string>();
        const std::vector<double> values = doubles_of(*tensors.find("values/" + k));
        const traincb::Tensor& present = *tensors.find("present/" + k);
        nlohmann::json col = nlohmann::json::array();
        for (std::size_t i = 0; i < rows; ++i)
            col.push_back(present.data.at(i) != std::byte{0} ? nlohmann::json(traincb::detail::format_double(values[i]))
                                                             : nlohmann::json());
        columns[k] = std::move(col);
    }
    return {{"epochs", std::move(epochs)}, {"columns", std::move(columns)}, {"marks", j.at("marks")}};
}

// Writes the checkpoint at `in` (format version 2, full) to `out` in the version-1 layout.
inline void write_as_v1(const fs::path& in, const fs::path& out) {
    namespace io = traincb::io;
    const io::Checkpoint c = io::load_checkpoint(in);
    const io::SafetensorsFile raw = io::load_safetensors(in);
    nlohmann::json state = nlohmann::json::parse(raw.metadata.at("traincb.state"));
    state["format_version"] = 1;
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [key, col] : c.history.history) {
        nlohmann::json arr = nlohmann::json::array();
        for (const double v : col) arr.push_back(traincb::detail::format_double(v));
        values[key] = std::move(arr);
    }
    state["history"] = {{"epoch", c.history.epoch}, {"values", std::move(values)}};
    // RocAuc's scores back into JSON arrays.
    if (state.contains("train_metrics") && state["train_metrics"].is_object())
        for (auto& [key, m] : state["train_metrics"].items()) {
            if (!m.is_object() || !m.contains("positive_count")) continue;
            const traincb::StateDict& t = c.train_metric_tensors.at(key);
            for (const char* name : {"positives", "negatives"}) {
                nlohmann::json arr = nlohmann::json::array();
                for (const double v : doubles_of(*t.find(name))) arr.push_back(traincb::detail::format_double(v));
                m[name] = std::move(arr);
            }
            m.erase("positive_count");
            m.erase("negative_count");
        }
    std::vector<std::string> report_keys;
    for (auto& [key, cb] : state["callbacks"].items())
        if (cb.at("version") == 2 && cb.at("json").contains("rows")) {  // a LearningCurveReport
            cb["json"] = report_state_v1(cb.at("json"), c.callbacks.at(key).tensors, c.history);
            cb["version"] = 1;
            report_keys.push_back("callbacks/" + key + "/");
        }
    traincb::StateDict kept;
    for (const auto& t : raw.tensors.tensors()) {
        bool drop = t.name.starts_with("history/") || t.name.starts_with("train_metrics/");
        for (const auto& p : report_keys) drop = drop || t.name.starts_with(p);
        if (!drop) kept.put(t);
    }
    std::map<std::string, std::string> meta = raw.metadata;
    const std::string text = state.dump();
    meta["traincb.state"] = text;
    meta["traincb.state.checksum"] = "xxh64:" + traincb::detail::hex64(traincb::detail::xxh64(text));
    io::save_safetensors(out, kept, meta, io::SaveOptions{.checksum = true});
}

}  // namespace ckpt_v1
