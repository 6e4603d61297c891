# Runs check_doc_coverage on its fixture and requires exit code 1 and exactly the expected output:
# the checker must report every entity marked BAD in the fixture, and nothing else.
#   cmake -DCHECKER=... -DEXPECTED=file -DARGS="headers|include" -P run_doc_coverage_fixture.cmake
# (run in tests/tools/doc_coverage_fixture, so that the printed paths are relative to it)
string(REPLACE "|" ";" ARGS "${ARGS}")
execute_process(COMMAND "${CHECKER}" ${ARGS}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ "${EXPECTED}" expected)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "check_doc_coverage ${ARGS} exited with '${rc}', expected 1 (findings)\n${err}")
endif()
if(NOT out STREQUAL expected)
  message(FATAL_ERROR "check_doc_coverage ${ARGS}: output differs from ${EXPECTED}\n"
    "--- expected ---\n${expected}--- got ---\n${out}--- stderr ---\n${err}")
endif()
message(STATUS "check_doc_coverage ${ARGS}: the expected findings, and only those\n${err}")
