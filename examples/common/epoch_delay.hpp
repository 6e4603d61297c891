#pragma once
/// @file epoch_delay.hpp
/// For crash tests (the examples' --epoch-delay-ms): a callback that makes each epoch last longer,
/// so that a run can be killed several times before it completes.
#include <chrono>
#include <thread>
#include <traincb/callback.hpp>

namespace traincb_examples {

/// Sleeps `ms` milliseconds at the end of each epoch.
class EpochDelay final : public traincb::Callback {
public:
    /// @param ms the sleep per epoch
    explicit EpochDelay(int ms) : ms_(ms) {}
    /// Sleeps.
    void on_epoch_end(traincb::Context&) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms_)); }

private:
    int ms_;
};

}  // namespace traincb_examples
