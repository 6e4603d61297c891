// libFuzzer target for the safetensors reader: any input must either parse or throw
// traincb::FormatError; no crash, no sanitizer report, no other exception. A file that parses
// must also survive a write/read round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <span>
#include <traincb/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    traincb::io::SafetensorsFile file;
    try {
        file = traincb::io::parse_safetensors(bytes, "fuzz");
    } catch (const traincb::FormatError&) {
        return 0;  // rejected cleanly: the expected outcome for most inputs
    }
    // Whatever the reader accepts, the writer must write back to an equivalent file (the
    // checksum, if any, is recomputed over the same bytes).
    const bool had_checksum = file.metadata.count(std::string(traincb::io::kChecksumKey)) != 0;
    const auto again = traincb::io::serialize_safetensors(file.tensors, file.metadata, {.checksum = had_checksum});
    const auto back = traincb::io::parse_safetensors(again, "fuzz-roundtrip");
    if (!(back.tensors == file.tensors) || back.metadata != file.metadata) __builtin_trap();
    return 0;
}
