# The ctest tests of traincb_tests: one per Catch2 test case, named "<file>: <case>", listed file by
# file (each case is tagged [#<file>] by --filenames-as-tags) in one CMake process after each link,
# instead of one process per file as catch_discover_tests does (37 of them cost 10 s per link).
# Invoked with -DEXE -DWORKING_DIR -DCTEST_FILE -DFILES (file stems, separated by |)
# -DCATCH_VERSION (2 or 3) -DSKIP_REGEX.
if(CATCH_VERSION EQUAL 3)
  set(_list_args --list-tests --verbosity quiet)
else()
  set(_list_args --list-test-names-only)
endif()
string(REPLACE "|" ";" _files "${FILES}")
string(ASCII 1 _lb)
string(ASCII 2 _rb)
string(ASCII 3 _sc)
set(_script "")
set(_count 0)
foreach(_file IN LISTS _files)
  execute_process(COMMAND "${EXE}" "-#" "[#${_file}]" ${_list_args}
    OUTPUT_VARIABLE _out RESULT_VARIABLE _rc WORKING_DIRECTORY "${WORKING_DIR}")
  # Catch2 exits with the number of tests listed; a negative or non-numeric code is a crash.
  if(NOT _rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "traincb_tests: listing the cases of ${_file} failed (${_rc}):\n${_out}")
  endif()
  # One list element per line: brackets and semicolons, which a CMake list does not split or keeps
  # as separators, stand in as control characters until each line is taken apart.
  string(REPLACE "[" "${_lb}" _out "${_out}")
  string(REPLACE "]" "${_rb}" _out "${_out}")
  string(REPLACE ";" "${_sc}" _out "${_out}")
  string(REPLACE "\n" ";" _lines "${_out}")
  set(_found 0)
  foreach(_case IN LISTS _lines)
    if(_case STREQUAL "")
      continue()
    endif()
    string(REPLACE "${_lb}" "[" _case "${_case}")
    string(REPLACE "${_rb}" "]" _case "${_case}")
    string(REPLACE "${_sc}" ";" _case "${_case}")
    # Characters that a Catch2 test spec reads as syntax are escaped to select the case by name.
    set(_spec "${_case}")
    foreach(_char IN ITEMS "\\" "," "[" "]")
      string(REPLACE "${_char}" "\\${_char}" _spec "${_spec}")
    endforeach()
    string(APPEND _script
      "add_test([==[${_file}: ${_case}]==] [==[${EXE}]==] [==[${_spec}]==])\n"
      "set_tests_properties([==[${_file}: ${_case}]==] PROPERTIES WORKING_DIRECTORY [==[${WORKING_DIR}]==]"
      " SKIP_REGULAR_EXPRESSION [==[${SKIP_REGEX}]==])\n")
    math(EXPR _found "${_found} + 1")
  endforeach()
  if(_found EQUAL 0)
    message(FATAL_ERROR "traincb_tests: no test case is tagged [#${_file}]")
  endif()
  math(EXPR _count "${_count} + ${_found}")
endforeach()
file(WRITE "${CTEST_FILE}.tmp" "${_script}")
file(RENAME "${CTEST_FILE}.tmp" "${CTEST_FILE}")
message(STATUS "traincb_tests: ${_count} test cases")
