#pragma once
/// @file traincb.hpp
/// The umbrella header: one include for all of traincb.

#include "traincb/version.hpp"
#include "traincb/errors.hpp"
#include "traincb/diagnostics.hpp"
#include "traincb/direction.hpp"
#include "traincb/logs.hpp"
#include "traincb/state.hpp"
#include "traincb/model.hpp"
#include "traincb/communicator.hpp"
#include "traincb/callback.hpp"
#include "traincb/sinks/sink.hpp"
