#pragma once
// The bodies of traincb/io/safetensors.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/io/safetensors.hpp"

namespace traincb::inline v0::detail {

TRAINCB_INLINE bool is_valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const unsigned c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        std::size_t len = 0;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;  // no overlong forms
            if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;  // no overlong forms
            if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
        } else {
            return false;  // continuation byte, overlong 2-byte lead (C0, C1), or F5..FF
        }
        if (static_cast<std::size_t>(end - p) < len) return false;
        if (p[1] < lo || p[1] > hi) return false;
        for (std::size_t i = 2; i < len; ++i)
            if (p[i] < 0x80 || p[i] > 0xBF) return false;
        p += len;
    }
    return true;
}

TRAINCB_INLINE void safetensors_error(std::string_view source, std::string_view check, const std::string& why) {
    throw FormatError("traincb: safetensors: '" + std::string(source) + "': " + std::string(check) + ": " + why);
}

TRAINCB_INLINE std::string checksum_digits(const Xxh64& hash) {
    return hex64(hash.digest());
}

TRAINCB_INLINE SafetensorsPlan plan_safetensors(const StateDict& dict,
                                                const std::map<std::string, std::string>& metadata,
                                                const io::SaveOptions& options) {
    auto invalid = [](const std::string& why) { throw InvalidArgument("traincb: safetensors: " + why); };
    SafetensorsPlan plan;
    plan.order.reserve(dict.size());
    for (const Tensor& t : dict.tensors()) plan.order.push_back(&t);
    std::sort(plan.order.begin(), plan.order.end(), [](const Tensor* a, const Tensor* b) {
        const int ra = safetensors_write_rank(a->dtype), rb = safetensors_write_rank(b->dtype);
        return ra != rb ? ra > rb : a->name < b->name;
    });
    for (const Tensor* tp : plan.order) {
        const Tensor& t = *tp;
        if (t.name == "__metadata__")
            invalid("a tensor cannot be named '__metadata__' (the format reserves it); rename it");
        if (!is_valid_utf8(t.name)) invalid("tensor name '" + t.name + "' is not valid UTF-8");
        std::uint64_t n = 1;
        for (std::int64_t d : t.shape) {
            if (d < 0) invalid("tensor '" + t.name + "' has a negative dimension in shape " + shape_string(t.shape));
            if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(d))
                invalid("tensor '" + t.name + "' shape " + shape_string(t.shape) + " overflows");
            n *= static_cast<std::uint64_t>(d);
        }
        if (n > std::numeric_limits<std::uint64_t>::max() / dtype_size(t.dtype) ||
            n * dtype_size(t.dtype) != t.data.size())
            invalid("tensor '" + t.name + "' (" + dtype_name(t.dtype) + " " + shape_string(t.shape) + ") needs " +
                    std::to_string(n) + " x " + std::to_string(dtype_size(t.dtype)) + " bytes but holds " +
                    std::to_string(t.data.size()));
    }
    if (plan.order.size() > 1) {
        std::vector<std::string_view> names;
        names.reserve(plan.order.size());
        for (const Tensor* t : plan.order) names.emplace_back(t->name);
        std::sort(names.begin(), names.end());
        if (const auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end())
            invalid("two tensors are named '" + std::string(*dup) + "'; tensor names must be unique");
    }

    std::map<std::string, std::string> meta = metadata;
    // A stale checksum (copied from a loaded file) must never be written next to new data.
    meta.erase(std::string(io::kChecksumKey));
    // The checksum's value has a fixed width, so the header's size (and every offset) is known
    // before the data is hashed.
    if (options.checksum) meta.emplace(std::string(io::kChecksumKey), "xxh64:" + std::string(16, '0'));
    for (const auto& [k, v] : meta)
        if (!is_valid_utf8(k) || !is_valid_utf8(v)) invalid("metadata entry '" + k + "' is not valid UTF-8");

    // The top level is assembled by hand (each piece is an nlohmann::ordered_json dump, which is
    // what one ordered_json of the whole header would print): inserting n keys into one
    // ordered_json costs O(n^2), which a model with many tensors would feel.
    std::string header = "{";
    if (!meta.empty()) {
        nlohmann::ordered_json m = nlohmann::ordered_json::object();
        for (const auto& [k, v] : meta) m[k] = v;
        header += "\"__metadata__\":" + m.dump();
        if (options.checksum) {
            // Unique: inside a JSON string every quote is escaped, so this key-value opening can
            // only be the checksum entry itself.
            const std::string key = "\"" + std::string(io::kChecksumKey) + "\":\"xxh64:";
            plan.checksum_at = 8 + header.find(key) + key.size();
        }
    }
    std::uint64_t offset = 0;
    for (const Tensor* t : plan.order) {
        nlohmann::ordered_json e = nlohmann::ordered_json::object();
        e["dtype"] = dtype_name(t->dtype);
        nlohmann::ordered_json shape = nlohmann::ordered_json::array();
        for (std::int64_t d : t->shape) shape.push_back(static_cast<std::uint64_t>(d));
        e["shape"] = std::move(shape);
        const std::uint64_t end = offset + t->data.size();
        e["data_offsets"] = {offset, end};
        offset = end;
        if (header.size() > 1) header += ',';
        header += nlohmann::ordered_json(t->name).dump() + ':' + e.dump();
    }
    header += '}';
    header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-aligned, as Python writes
    if (header.size() > io::kMaxHeaderSize)
        invalid("the header would be " + std::to_string(header.size()) +
                " bytes, above the format's limit of 100000000; save fewer tensors per file");
    plan.head.resize(8);
    std::uint64_t n = header.size();
    for (std::size_t i = 0; i < 8; ++i, n >>= 8) plan.head[i] = static_cast<char>(n & 0xFFU);
    plan.head += header;
    return plan;
}

TRAINCB_INLINE std::uint64_t safetensors_header_size(std::span<const std::byte> prefix, std::uint64_t file_size,
                                                     std::string_view source) {
    if (file_size < 8 || prefix.size() < 8)
        safetensors_error(source, "HeaderTooSmall",
                          "the file has " + std::to_string(file_size) +
                              " bytes, fewer than the 8-byte header length; it is empty or truncated");
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(prefix[i]) << (8 * i);
    if (n > io::kMaxHeaderSize)
        safetensors_error(
            source, "HeaderTooLarge",
            "the header length is " + std::to_string(n) +
                " bytes, above the limit of 100000000; this is not a safetensors file or it is corrupted");
    if (n > file_size - 8)
        safetensors_error(source, "InvalidHeaderLength",
                          "the header length is " + std::to_string(n) + " bytes but only " +
                              std::to_string(file_size - 8) + " bytes follow; the file is truncated");
    return n;
}

TRAINCB_INLINE SafetensorsLayout parse_safetensors_header(std::span<const std::byte> header, std::uint64_t file_size,
                                                          std::string_view source) {
    SafetensorsLayout layout;
    layout.header_size = header.size();
    const std::string_view text(reinterpret_cast<const char*>(header.data()), header.size());
    if (!is_valid_utf8(text)) safetensors_error(source, "InvalidHeader", "the JSON header is not valid UTF-8");

    auto bad = [&](const std::string& why) { safetensors_error(source, "InvalidHeaderDeserialization", why); };
    // serde_json (the reference) rejects a byte order mark; nlohmann would skip it.
    if (text.starts_with("\xEF\xBB\xBF")) bad("the header starts with a UTF-8 byte order mark");
    // A valid header nests at most three levels ({ name: { shape: [ ] } }); refusing deeper input
    // while parsing bounds the memory a hostile header can make us allocate. Duplicate keys are
    // refused as serde refuses duplicate fields (the format disallows them everywhere).
    struct Reject {
        std::string why;
    };
    std::vector<std::set<std::string>> keys;
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(
            text.begin(), text.end(), [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
                using E = nlohmann::json::parse_event_t;
                if ((event == E::object_start || event == E::array_start) && depth >= 3)
                    throw Reject{"the header nests deeper than a safetensors header can"};
                if (event == E::object_start)
                    keys.emplace_back();
                else if (event == E::object_end)
                    keys.pop_back();
                else if (event == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
                    throw Reject{"the key '" + parsed.get<std::string>() + "' appears twice"};
                return true;
            });
    } catch (const Reject& r) {
        bad(r.why);
    } catch (const nlohmann::json::exception& e) {
        bad(std::string("the header is not valid JSON (") + e.what() + ")");
    }
    if (!root.is_object()) bad("the header is a JSON " + std::string(root.type_name()) + ", not an object");

    auto u64 = [](const nlohmann::json& v) -> std::optional<std::uint64_t> {
        // Only non-negative integers: nlohmann types them as unsigned (as serde's usize wants).
        if (!v.is_number_unsigned()) return std::nullopt;
        return v.get<std::uint64_t>();
    };
    for (auto& [name, value] : root.items()) {
        if (name == "__metadata__") {
            if (value.is_null()) continue;  // serde reads null as an absent Option
            if (!value.is_object()) bad("'__metadata__' is a " + std::string(value.type_name()) + ", not an object");
            for (auto& [k, v] : value.items()) {
                if (!v.is_string())
                    bad("metadata value '" + k + "' is a " + std::string(v.type_name()) +
                        "; the format allows only strings (stringify numbers and JSON)");
                layout.metadata.emplace(k, v.get<std::string>());
            }
            continue;
        }
        const std::string where = "tensor '" + name + "'";
        if (!value.is_object()) bad(where + " is a " + std::string(value.type_name()) + ", not an object");
        SafetensorsEntry e;
        e.name = name;
        const auto d = value.find("dtype");
        if (d == value.end() || !d->is_string()) bad(where + " has no string 'dtype'");
        const auto& dname = d->get_ref<const std::string&>();
        for (const auto& known : kSafetensorsDtypes)
            if (known.name == dname) e.dtype = &known;
        if (e.dtype == nullptr) {
            std::string why = where;
            why.append(" has unknown dtype '").append(dname).append("'");
            bad(why);
        }
        const auto s = value.find("shape");
        if (s == value.end() || !s->is_array()) bad(where + " has no 'shape' array");
        for (const auto& dim : *s) {
            const auto v = u64(dim);
            if (!v) bad(where + " has a shape entry " + dim.dump() + " that is not a non-negative integer");
            e.shape.push_back(*v);
        }
        const auto o = value.find("data_offsets");
        if (o == value.end() || !o->is_array() || o->size() != 2 || !u64((*o)[0]) || !u64((*o)[1]))
            bad(where + " has no 'data_offsets' pair of non-negative integers");
        e.begin = *u64((*o)[0]);
        e.end = *u64((*o)[1]);
        layout.entries.push_back(std::move(e));
    }

    // Metadata::validate: the entries, sorted by offsets, must tile the buffer from 0.
    std::stable_sort(layout.entries.begin(), layout.entries.end(), [](const auto& a, const auto& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t start = 0;
    for (const auto& e : layout.entries) {
        const std::string where = "tensor '" + e.name + "'";
        if (e.begin != start || e.end < e.begin)
            safetensors_error(source, "InvalidOffset(" + e.name + ")",
                              where + " has data_offsets [" + std::to_string(e.begin) + "," + std::to_string(e.end) +
                                  "] but must start at " + std::to_string(start) +
                                  " (tensors must tile the buffer without gaps or overlaps)");
        start = e.end;
        std::uint64_t n = 1;
        for (std::uint64_t dim : e.shape) {
            if (dim != 0 && n > std::numeric_limits<std::uint64_t>::max() / dim)
                safetensors_error(source, "ValidationOverflow",
                                  where + " shape " + shape_string(e.shape) + " overflows");
            n *= dim;
        }
        if (n > std::numeric_limits<std::uint64_t>::max() / e.dtype->bits)
            safetensors_error(source, "ValidationOverflow", where + " shape " + shape_string(e.shape) + " overflows");
        const std::uint64_t bits = n * e.dtype->bits;
        if (bits % 8 != 0)
            safetensors_error(source, "MisalignedSlice",
                              where + " (" + std::string(e.dtype->name) + " " + shape_string(e.shape) +
                                  ") does not fill a whole number of bytes");
        if (e.end - e.begin != bits / 8)
            safetensors_error(source, "TensorInvalidInfo",
                              where + " (" + std::string(e.dtype->name) + " " + shape_string(e.shape) + ") needs " +
                                  std::to_string(bits / 8) + " bytes but its data_offsets span " +
                                  std::to_string(e.end - e.begin));
    }
    const std::uint64_t available = file_size - 8 - layout.header_size;
    if (start != available)
        safetensors_error(source, "MetadataIncompleteBuffer",
                          "the header describes " + std::to_string(start) + " bytes of tensor data but " +
                              std::to_string(available) + " bytes follow the header; the file is " +
                              (start > available ? "truncated" : "longer than its data (trailing bytes)"));
    return layout;
}

}  // namespace traincb::inline v0::detail

namespace traincb::inline v0::io {

TRAINCB_INLINE std::vector<std::byte> serialize_safetensors(const StateDict& dict,
                                                            const std::map<std::string, std::string>& metadata,
                                                            const SaveOptions& options) {
    detail::SafetensorsPlan plan = detail::plan_safetensors(dict, metadata, options);
    std::size_t total = plan.head.size();
    for (const Tensor* t : plan.order) total += t->data.size();
    detail::Xxh64 hash;
    if (plan.checksum_at != std::string::npos) {
        for (const Tensor* t : plan.order) hash.update(t->data);
        plan.head.replace(plan.checksum_at, 16, detail::checksum_digits(hash));
    }
    std::vector<std::byte> out;
    out.reserve(total);
    const auto head = std::as_bytes(std::span(plan.head));
    out.insert(out.end(), head.begin(), head.end());
    for (const Tensor* t : plan.order) out.insert(out.end(), t->data.begin(), t->data.end());
    return out;
}

TRAINCB_INLINE void save_safetensors(const std::filesystem::path& path, const StateDict& dict,
                                     const std::map<std::string, std::string>& metadata, const SaveOptions& options,
                                     std::string_view component) {
    const detail::SafetensorsPlan plan = detail::plan_safetensors(dict, metadata, options);
    AtomicFile f(path, component);
    f.write(std::as_bytes(std::span(plan.head)));
    const bool checksum = plan.checksum_at != std::string::npos;
    detail::Xxh64 hash;
    for (const Tensor* t : plan.order) {
        const std::span<const std::byte> data(t->data);
        for (std::size_t off = 0; off < data.size(); off += detail::kSaveChunk) {
            const auto chunk = data.subspan(off, std::min(detail::kSaveChunk, data.size() - off));
            f.write(chunk);
            if (checksum) hash.update(chunk);  // from cache: write() just read the chunk
        }
    }
    if (checksum) {
        // The file is flushed only in commit(), so the header is complete on disk before the
        // rename can make it visible.
        const std::string digits = detail::checksum_digits(hash);
        f.overwrite(plan.checksum_at, std::as_bytes(std::span(digits)));
    }
    f.commit_keeping_previous(options.keep_previous);
}

TRAINCB_INLINE SafetensorsFile parse_safetensors(std::span<const std::byte> bytes, std::string_view source_name) {
    const std::uint64_t n = detail::safetensors_header_size(bytes, bytes.size(), source_name);
    detail::SafetensorsLayout layout =
        detail::parse_safetensors_header(bytes.subspan(8, static_cast<std::size_t>(n)), bytes.size(), source_name);
    std::size_t pos = 8 + static_cast<std::size_t>(n);
    return detail::read_safetensors_data(layout, source_name, [&](std::span<std::byte> dst) {
        std::memcpy(dst.data(), bytes.data() + pos, dst.size());
        pos += dst.size();
    });
}

TRAINCB_INLINE SafetensorsFile load_safetensors(const std::filesystem::path& path, std::string_view component) {
    detail::FileReader in(path, std::string(component));
    const std::string source = path.string();
    std::array<std::byte, 8> prefix{};
    const std::size_t got = in.read(prefix);
    const std::uint64_t n = detail::safetensors_header_size(std::span(prefix).first(got), in.size(), source);
    std::vector<std::byte> header(static_cast<std::size_t>(n));
    if (in.read(header) != header.size())
        detail::safetensors_error(source, "InvalidHeaderLength", "the file shrank while it was being read");
    detail::SafetensorsLayout layout = detail::parse_safetensors_header(header, in.size(), source);
    return detail::read_safetensors_data(layout, source, [&](std::span<std::byte> dst) {
        if (in.read(dst) != dst.size())
            detail::safetensors_error(source, "MetadataIncompleteBuffer", "the file shrank while it was being read");
    });
}

}  // namespace traincb::inline v0::io
