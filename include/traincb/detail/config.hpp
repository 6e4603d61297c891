#pragma once
// How traincb's non-template functions are defined: inline in the headers (the default: traincb is
// header-only), or compiled once into a static library (the compiled mode, as spdlog's
// SPDLOG_COMPILED_LIB).
//
// In the compiled mode a translation unit that includes traincb compiles only the templates it
// instantiates (Trainer<Model>::fit's steps that call the model, the model-typed helpers); the bodies
// that cost compile time without depending on the user's types (the checkpoint and safetensors
// reader and writer, the JSON state codecs, CallbackList's hooks, the callbacks' and sinks' virtual
// functions, and fit's model-independent steps, detail::FitSteps, explicitly instantiated for float
// and double) are compiled once, in the library:
//   - with CMake, link traincb::compiled instead of traincb::traincb (it defines TRAINCB_COMPILED
//     for its users);
//   - by hand, compile one file that does `#define TRAINCB_COMPILED_SOURCE` then
//     `#include <traincb/traincb.hpp>`, with TRAINCB_COMPILED defined, link it, and define
//     TRAINCB_COMPILED in every translation unit that includes traincb.
// Every translation unit of a program must agree on TRAINCB_COMPILED (the same rule as spdlog's):
// mixing the modes breaks the one-definition rule (the same functions then have inline definitions
// in some translation units and one in the library). A program compiled with TRAINCB_COMPILED that
// does not link the library fails to link, with undefined references to traincb's functions.
//
// The layout, as spdlog's `-inl.h` files: a header `X.hpp` declares such a function TRAINCB_INLINE,
// and its body lives in `X-inl.hpp`, which `X.hpp` includes at its end when TRAINCB_DEFINITIONS is 1
// (header-only, or the by-hand source above). traincb::compiled's sources (src/*.cpp) include each
// `-inl.hpp` directly, with TRAINCB_COMPILED defined. So in the compiled mode a change to a body
// rebuilds one file of the library and relinks, instead of recompiling every file that includes
// the header. A virtual function whose body is in `-inl.hpp` is declared TRAINCB_INLINE in its
// class too: otherwise, header-only, it is the class's key function, defined in every translation
// unit that includes the header, which then emits the vtable and everything it reaches even where
// the class is unused (tests/tools/check_no_vtables.cmake checks this).

#if defined(TRAINCB_COMPILED_SOURCE) && !defined(TRAINCB_COMPILED)
#define TRAINCB_COMPILED
#endif

#if defined(TRAINCB_COMPILED)
#define TRAINCB_INLINE
#if defined(TRAINCB_COMPILED_SOURCE)
#define TRAINCB_DEFINITIONS 1
#else
#define TRAINCB_DEFINITIONS 0
#endif
#else
#define TRAINCB_INLINE inline
#define TRAINCB_DEFINITIONS 1
#endif
