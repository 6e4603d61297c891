// Compile-time cost of a user who trains a tiny model with Trainer and EarlyStopping, including
// only their two headers: umbrella.cpp's code without the umbrella header
// (scripts/compile-times.sh).
#include <traincb/callbacks/early_stopping.hpp>
#include <traincb/trainer.hpp>

#include "fit_tiny_model.inc"
