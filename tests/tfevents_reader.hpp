#pragma once
// An independent TFRecord + TensorBoard Event reader for tests (shares only the CRC with the code
// under test, and the CRC is pinned to the check values of docs/tensorboard-format.md in
// test_tensorboard.cpp). Every
// record's two masked CRCs are checked; a torn or corrupt file fails the test.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <traincb/detail/crc32c.hpp>
#include <vector>

#include "catch.hpp"
#include "test_support.hpp"

namespace tfevents {
namespace fs = std::filesystem;

using traincb_test::read_bytes;

// ---- an independent TFRecord + Event reader ------------------------------------------------

inline std::uint64_t le(std::string_view s, std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
    return v;
}

inline std::uint64_t get_varint(std::string_view s, std::size_t& pos) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        REQUIRE(pos < s.size());
        const auto b = static_cast<unsigned char>(s[pos++]);
        v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
        if (!(b & 0x80)) return v;
    }
    FAIL("varint longer than 10 bytes");
    return 0;
}

struct Field {
    std::uint32_t number;
    int wire;
    std::uint64_t scalar;      // VARINT, I64, I32
    std::string_view payload;  // LEN
};

inline std::vector<Field> parse_fields(std::string_view s) {
    std::vector<Field> out;
    std::size_t pos = 0;
    while (pos < s.size()) {
        const std::uint64_t key = get_varint(s, pos);
        Field f{static_cast<std::uint32_t>(key >> 3), static_cast<int>(key & 7), 0, {}};
        switch (f.wire) {
            case 0:
                f.scalar = get_varint(s, pos);
                break;
            case 1:
                REQUIRE(pos + 8 <= s.size());
                f.scalar = le(s, pos, 8);
                pos += 8;
                break;
            case 2: {
                const std::uint64_t n = get_varint(s, pos);
                REQUIRE(pos + n <= s.size());
                f.payload = s.substr(pos, n);
                pos += n;
                break;
            }
            case 5:
                REQUIRE(pos + 4 <= s.size());
                f.scalar = le(s, pos, 4);
                pos += 4;
                break;
            default:
                FAIL("unexpected wire type " << f.wire);
        }
        out.push_back(f);
    }
    return out;
}

struct Event {
    double wall_time = 0;
    std::int64_t step = 0;
    std::string file_version;
    std::string writer;
    std::vector<std::pair<std::string, float>> values;
    int session_status = -1;  // -1: no session_log
};

inline Event parse_event(std::string_view data) {
    Event e;
    for (const Field& f : parse_fields(data)) {
        if (f.number == 1 && f.wire == 1) e.wall_time = std::bit_cast<double>(f.scalar);
        if (f.number == 2 && f.wire == 0) e.step = static_cast<std::int64_t>(f.scalar);
        if (f.number == 3 && f.wire == 2) e.file_version = std::string(f.payload);
        if (f.number == 10 && f.wire == 2) {
            for (const Field& g : parse_fields(f.payload)) {
                if (g.number == 1 && g.wire == 2) e.writer = std::string(g.payload);
            }
        }
        if (f.number == 7 && f.wire == 2) {
            e.session_status = 0;
            for (const Field& g : parse_fields(f.payload)) {
                if (g.number == 1 && g.wire == 0) e.session_status = static_cast<int>(g.scalar);
            }
        }
        if (f.number == 5 && f.wire == 2) {
            for (const Field& v : parse_fields(f.payload)) {
                REQUIRE(v.number == 1);
                std::string tag;
                std::optional<float> value;
                for (const Field& g : parse_fields(v.payload)) {
                    if (g.number == 1 && g.wire == 2) tag = std::string(g.payload);
                    if (g.number == 2 && g.wire == 5)
                        value = std::bit_cast<float>(static_cast<std::uint32_t>(g.scalar));
                }
                REQUIRE(value.has_value());
                e.values.emplace_back(tag, *value);
            }
        }
    }
    return e;
}

// Every record's two masked CRCs are checked; a torn or corrupt file fails the test.
inline std::vector<Event> read_events(const fs::path& file) {
    const std::string data = read_bytes(file);
    std::vector<Event> events;
    std::size_t pos = 0;
    while (pos < data.size()) {
        REQUIRE(data.size() - pos >= 16);
        const std::string_view view(data);
        const std::uint64_t length = le(view, pos, 8);
        REQUIRE(le(view, pos + 8, 4) == traincb::detail::masked_crc32c(view.substr(pos, 8)));
        REQUIRE(data.size() - pos - 16 >= length);
        const std::string_view payload = view.substr(pos + 12, length);
        REQUIRE(le(view, pos + 12 + length, 4) == traincb::detail::masked_crc32c(payload));
        events.push_back(parse_event(payload));
        pos += 16 + length;
    }
    return events;
}

inline std::vector<fs::path> event_files(const fs::path& run_dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(run_dir)) {
        if (entry.path().filename().string().find("tfevents") != std::string::npos) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());  // the order TensorBoard's legacy loader reads them in
    return files;
}

using Series = std::map<std::string, std::vector<std::pair<std::int64_t, float>>>;

// A run's points as TensorBoard's legacy loader keeps them: files in name order, and a
// SessionLog START at step S drops every earlier point with step >= S (docs/tensorboard-format.md,
// "What a file holds").
inline Series load_run(const fs::path& run_dir) {
    Series series;
    for (const fs::path& file : event_files(run_dir)) {
        const auto events = read_events(file);
        REQUIRE(!events.empty());
        REQUIRE(events.front().file_version == "brain.Event:2");
        for (const Event& e : events) {
            if (e.session_status == 1) {
                for (auto& [tag, points] : series) {
                    std::erase_if(points, [&](const auto& p) { return p.first >= e.step; });
                }
            }
            for (const auto& [tag, value] : e.values) series[tag].emplace_back(e.step, value);
        }
    }
    return series;
}

}  // namespace tfevents
