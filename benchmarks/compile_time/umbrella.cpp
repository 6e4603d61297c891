// Compile-time cost of a user who includes the umbrella header and trains a tiny model with
// Trainer and EarlyStopping (scripts/compile-times.sh).
#include <traincb/traincb.hpp>

#include "fit_tiny_model.inc"
