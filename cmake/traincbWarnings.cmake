# Warning flags for traincb's own targets (tests, examples, benchmarks); never imposed on users.
add_library(traincb_warnings INTERFACE)
target_compile_options(traincb_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra -Wpedantic>
  $<$<AND:$<CXX_COMPILER_ID:GNU,Clang,AppleClang>,$<BOOL:${TRAINCB_WERROR}>>:-Werror>)
