# A translation unit that includes metrics.hpp in the compiled mode and uses no metric compiles none
# of the built-in metrics' virtual functions (their constructors are in metrics-inl.hpp, and
# detail::MetricImpl's destructor is defined outside its class). g++'s -fkeep-inline-functions emits
# every inline function a translation unit compiled, so nm sees what was compiled even if unused.
#   cmake -DCXX=g++ -DFLAGS=<|-separated> -DNM=nm -DSOURCE=metrics_unused.cpp -DWORK_DIR=dir -P this
string(REPLACE "|" ";" FLAGS "${FLAGS}")
file(MAKE_DIRECTORY "${WORK_DIR}")
include("${CMAKE_CURRENT_LIST_DIR}/nm_symbols.cmake")

function(metric_members out)
  set(object "${WORK_DIR}/probe.o")
  execute_process(COMMAND "${CXX}" ${FLAGS} -O0 -fkeep-inline-functions -DTRAINCB_COMPILED ${ARGN}
                          -c "${SOURCE}" -o "${object}"
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_metric_instantiations: ${CXX} failed (${rc}):\n${err}")
  endif()
  # Defined functions (T, W) of detail::MetricImpl<...>.
  traincb_defined_symbols("${object}" "[0-9a-fA-F]+ [TtWw] traincb::v0::detail::MetricImpl<[^\n]*" found
                          check_metric_instantiations)
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

metric_members(control -DTRAINCB_PROBE_USE_METRIC)
if(NOT control)
  message(FATAL_ERROR "check_metric_instantiations: the control (a Precision constructed and destroyed) "
                      "defines no MetricImpl function; the check cannot see what it looks for")
endif()
metric_members(found)
if(found)
  list(LENGTH found n)
  list(GET found 0 first)
  message(FATAL_ERROR "check_metric_instantiations: a translation unit that includes metrics.hpp and uses no "
                      "metric compiles ${n} functions of the metrics, e.g.\n  ${first}\nKeep each metric's "
                      "constructor in metrics-inl.hpp and no destructor defined inside a metric class template.")
endif()
list(LENGTH control n_control)
message(STATUS "check_metric_instantiations: none compiled; the control compiles ${n_control}")
