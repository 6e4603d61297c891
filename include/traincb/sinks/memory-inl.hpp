#pragma once
// The bodies of traincb/sinks/memory.hpp's non-template functions: included at the end of that
// header when traincb is header-only, compiled once into traincb::compiled in the compiled mode
// (traincb/detail/config.hpp).
#include "traincb/sinks/memory.hpp"

namespace traincb::inline v0::sinks {

TRAINCB_INLINE void MemorySink::begin(const RunInfo& info) {
    run_ = info;
    rows_.clear();
    batches_.clear();
    run_events_.clear();
    end_.reset();
    events_.clear();
    events_.push_back("begin");
}

TRAINCB_INLINE void MemorySink::write_epoch(int epoch, const Logs& logs) {
    rows_.emplace_back(epoch, logs);
    events_.push_back("epoch " + std::to_string(epoch));
}

TRAINCB_INLINE bool MemorySink::wants_batches() const {
    return opt_.batches;
}

TRAINCB_INLINE void MemorySink::write_batch(const BatchInfo& info, const Logs& logs) {
    batches_.emplace_back(info, logs);
    events_.push_back("batch " + std::to_string(info.epoch) + "." + std::to_string(info.batch));
}

TRAINCB_INLINE void MemorySink::write_event(const RunEvent& event) {
    run_events_.push_back(event);
    events_.push_back(std::string("event ").append(event.kind));
}

TRAINCB_INLINE void MemorySink::end(const TrainEnd& end) {
    end_ = end;
    events_.push_back(std::string("end ") + to_string(end.kind));
}

TRAINCB_INLINE void MemorySink::flush() {
    events_.push_back("flush");
}

TRAINCB_INLINE bool MemorySink::on_every_rank() const {
    return true;
}

}  // namespace traincb::inline v0::sinks
