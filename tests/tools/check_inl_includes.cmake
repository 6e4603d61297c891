# The -inl.hpp layout (traincb/detail/config.hpp): in the compiled mode, a translation unit that
# includes every traincb header depends on no -inl.hpp file (so a change to a body rebuilds the
# library, not the user's code); header-only, the same translation unit includes every one of them.
# Invoked with -DCXX -DFLAGS (|-separated) -DSOURCE (includes every header) -DINCLUDE_DIR.
string(REPLACE "|" ";" FLAGS "${FLAGS}")
file(GLOB_RECURSE all_inl RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/traincb/*-inl.hpp")
list(LENGTH all_inl n_all)
if(n_all EQUAL 0)
  message(FATAL_ERROR "check_inl_includes: no -inl.hpp file under ${INCLUDE_DIR}")
endif()

function(included_inl out)
  execute_process(COMMAND "${CXX}" ${FLAGS} ${ARGN} -M "${SOURCE}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE deps ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_inl_includes: ${CXX} -M ${ARGN} failed:\n${err}")
  endif()
  string(REGEX MATCHALL "traincb/[A-Za-z0-9_/]*-inl\\.hpp" found "${deps}")
  list(REMOVE_DUPLICATES found)
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

included_inl(compiled -DTRAINCB_COMPILED)
if(compiled)
  string(REPLACE ";" "\n  " compiled "${compiled}")
  message(FATAL_ERROR "check_inl_includes: in the compiled mode these -inl.hpp files are still included:\n"
    "  ${compiled}\nA header includes its -inl.hpp only under `#if TRAINCB_DEFINITIONS` (traincb/detail/config.hpp).")
endif()
included_inl(header_only)
list(LENGTH header_only n_header_only)
if(NOT n_header_only EQUAL n_all)
  set(missing ${all_inl})
  list(REMOVE_ITEM missing ${header_only})
  string(REPLACE ";" "\n  " missing "${missing}")
  message(FATAL_ERROR "check_inl_includes: header-only, ${n_header_only} of ${n_all} -inl.hpp files are included; "
    "missing:\n  ${missing}\nEach X.hpp ends with `#if TRAINCB_DEFINITIONS #include \"X-inl.hpp\" #endif`.")
endif()
message(STATUS "check_inl_includes: compiled mode includes no -inl.hpp; header-only includes all ${n_all}")
