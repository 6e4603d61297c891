# The ctest tests of a Catch2 test program: one per test case, listed after each link in one CMake
# process (catch_discover_tests runs one per file, 37 of them cost 10 s per link of traincb_tests,
# and splits a case name that contains ';' into two tests that select nothing and pass).
#   FILES given (file stems, separated by |): each case is named "<file>: <case>", listed through
#     the tag [#<file>] that --filenames-as-tags gives it; every case of the program must belong to
#     one of the files (a case defined in a shared header would otherwise be dropped unseen).
#   FILES empty: each case is named "<PREFIX>: <case>".
# Invoked with -DEXE -DWORKING_DIR -DCTEST_FILE -DFILES -DPREFIX -DCATCH_VERSION (2 or 3)
# -DPROPERTIES (ctest properties for every test, name|value|name|value...).
cmake_minimum_required(VERSION 3.25)  # the policies of the project (CMP0007: lists keep empty elements)
if(CATCH_VERSION EQUAL 3)
  set(_list_args --list-tests --verbosity quiet)
else()
  set(_list_args --list-test-names-only)
endif()
string(ASCII 1 _lb)
string(ASCII 2 _rb)
string(ASCII 3 _sc)

# The case names EXE lists with the extra arguments, one list element per name.
function(list_cases out)
  execute_process(COMMAND "${EXE}" ${ARGN} ${_list_args}
    OUTPUT_VARIABLE _out RESULT_VARIABLE _rc WORKING_DIRECTORY "${WORKING_DIR}")
  # Catch2 exits with the number of cases listed; a non-numeric code is a crash.
  if(NOT _rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "discover_tests: listing the cases of ${EXE} ${ARGN} failed (${_rc}):\n${_out}")
  endif()
  # Brackets and semicolons, which a CMake list does not split or treats as separators, stand in as
  # control characters while the output is cut into lines.
  string(REPLACE "[" "${_lb}" _out "${_out}")
  string(REPLACE "]" "${_rb}" _out "${_out}")
  string(REPLACE ";" "${_sc}" _out "${_out}")
  string(REPLACE "\n" ";" _lines "${_out}")
  list(REMOVE_ITEM _lines "")
  set(${out} "${_lines}" PARENT_SCOPE)
endfunction()

set(_properties "WORKING_DIRECTORY [==[${WORKING_DIR}]==]")
string(REPLACE "|" ";" _props "${PROPERTIES}")
foreach(_p IN LISTS _props)
  string(APPEND _properties " [==[${_p}]==]")
endforeach()

set(_script "")
set(_count 0)
function(add_cases prefix)  # ARGN: the listing's filter
  list_cases(_cases ${ARGN})
  list(LENGTH _cases _n)
  if(_n EQUAL 0)
    message(FATAL_ERROR "discover_tests: ${EXE} ${ARGN} lists no test case")
  endif()
  foreach(_case IN LISTS _cases)
    string(REPLACE "${_lb}" "[" _case "${_case}")
    string(REPLACE "${_rb}" "]" _case "${_case}")
    string(REPLACE "${_sc}" ";" _case "${_case}")
    # Characters that a Catch2 test spec reads as syntax are escaped to select the case by name.
    set(_spec "${_case}")
    foreach(_char IN ITEMS "\\" "," "[" "]")
      string(REPLACE "${_char}" "\\${_char}" _spec "${_spec}")
    endforeach()
    string(APPEND _script "add_test([==[${prefix}: ${_case}]==] [==[${EXE}]==] [==[${_spec}]==])\n"
                          "set_tests_properties([==[${prefix}: ${_case}]==] PROPERTIES ${_properties})\n")
  endforeach()
  math(EXPR _count "${_count} + ${_n}")
  set(_script "${_script}" PARENT_SCOPE)
  set(_count "${_count}" PARENT_SCOPE)
endfunction()

if(FILES)
  string(REPLACE "|" ";" _files "${FILES}")
  foreach(_file IN LISTS _files)
    add_cases("${_file}" "-#" "[#${_file}]")
  endforeach()
  list_cases(_all)
  list(LENGTH _all _total)
  if(NOT _total EQUAL _count)
    message(FATAL_ERROR "discover_tests: ${EXE} has ${_total} test cases, but only ${_count} are tagged with "
      "one of its test files; define every TEST_CASE in a tests/test_*.cpp file")
  endif()
else()
  add_cases("${PREFIX}")
endif()
file(WRITE "${CTEST_FILE}.tmp" "${_script}")
file(RENAME "${CTEST_FILE}.tmp" "${CTEST_FILE}")
message(STATUS "discover_tests: ${_count} test cases of ${EXE}")
