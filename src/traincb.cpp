// traincb::compiled: the one translation unit that compiles traincb's non-template functions (the
// checkpoint and safetensors reader and writer, the JSON state codecs, CallbackList's hooks, the
// callbacks' and sinks' virtual functions), so that a program's other translation units compile only
// the templates they use. See traincb/detail/config.hpp. The optional integrations (mpi.hpp,
// torch.hpp) are not part of it: they stay header-only.
#ifndef TRAINCB_COMPILED_SOURCE
#define TRAINCB_COMPILED_SOURCE
#endif
#include "traincb/traincb.hpp"
