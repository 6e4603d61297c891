// Includes every header of traincb's core, header-only, and uses nothing: the object must define no
// vtable of a traincb class (tests/tools/check_no_vtables.cmake). A virtual function declared in
// its class without `inline` and defined later (as the header's -inl.hpp file does) becomes the class's key function,
// and the compiler then emits the vtable, and every function it reaches, in each translation unit that includes the
// header; traincb/detail/config.hpp says how to declare such functions.
#include "traincb/traincb.hpp"
