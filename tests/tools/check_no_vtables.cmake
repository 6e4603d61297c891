# Lists the symbols of two objects with nm: CONTROL must define a vtable of namespace traincb_probe
# (proof that the check sees one), OBJECT must define no vtable of namespace traincb.
#   cmake -DNM=nm -DOBJECT=includes_only.o -DCONTROL=vtable_probe_control.o -P check_no_vtables.cmake
include("${CMAKE_CURRENT_LIST_DIR}/nm_symbols.cmake")
# Defined symbols only (V weak object, W weak, D/R data).
function(defined_vtables object namespace out)
  traincb_defined_symbols("${object}" "[0-9a-fA-F]+ [VWDdRr] vtable for ${namespace}::[^\n]*" found check_no_vtables)
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

defined_vtables("${CONTROL}" traincb_probe control)
if(NOT control)
  message(FATAL_ERROR "check_no_vtables: the control object defines no traincb_probe vtable; "
                      "the check cannot see what it looks for with this compiler or nm")
endif()
defined_vtables("${OBJECT}" traincb found)
if(found)
  string(REPLACE ";" "\n  " found "${found}")
  message(FATAL_ERROR "check_no_vtables: a translation unit that includes traincb and uses nothing "
                      "defines these vtables:\n  ${found}\nDeclare each virtual function of those classes "
                      "TRAINCB_INLINE in the class when its body is in the header's -inl.hpp file "
                      "(traincb/detail/config.hpp).")
endif()
message(STATUS "check_no_vtables: no traincb vtable defined; the control defines ${control}")
