# Tests that run the example programs (included from tests/CMakeLists.txt): each is built and run
# with small settings, answers --help, rejects an unknown flag, and prints its JSON summary last.
function(traincb_example_test name target)
  cmake_parse_arguments(PARSE_ARGV 2 E "" "EXIT;REGEX;STDERR_REGEX" "ARGS;JSON_KEYS;JSON_MIN")
  if(NOT DEFINED E_EXIT)
    set(E_EXIT 0)
  endif()
  # Lists passed through -D need their ';' escaped, or add_test splits them into arguments.
  string(REPLACE ";" "\\;" E_ARGS "${E_ARGS}")
  string(REPLACE ";" "\\;" E_JSON_KEYS "${E_JSON_KEYS}")
  string(REPLACE ";" "\\;" E_JSON_MIN "${E_JSON_MIN}")
  set(cmd "${CMAKE_COMMAND}" "-DEXE=$<TARGET_FILE:${target}>" "-DARGS=${E_ARGS}" "-DEXPECT_EXIT=${E_EXIT}"
      "-DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/example_runs/${target}_${name}")
  if(DEFINED E_REGEX)
    list(APPEND cmd "-DEXPECT_REGEX=${E_REGEX}")
  endif()
  if(DEFINED E_STDERR_REGEX)
    list(APPEND cmd "-DSTDERR_REGEX=${E_STDERR_REGEX}")
  endif()
  if(DEFINED E_JSON_KEYS)
    list(APPEND cmd "-DJSON_KEYS=${E_JSON_KEYS}" "-DJSON_MIN=${E_JSON_MIN}")
  endif()
  add_test(NAME "example: ${target} ${name}" COMMAND ${cmd} -P "${CMAKE_CURRENT_SOURCE_DIR}/run_example.cmake")
endfunction()

foreach(ex IN ITEMS example_seed example_custom_loop example_breast_cancer example_digits)
  traincb_example_test("--help" ${ex} ARGS --help REGEX "usage: ${ex}")
  traincb_example_test("rejects an unknown flag" ${ex} ARGS --no-such-flag EXIT 2 STDERR_REGEX "unknown flag '--no-such-flag'")
endforeach()
traincb_example_test("--help" traincb-replay ARGS --help REGEX "usage: traincb-replay")
# Every example that takes --resume also offers --start-over (docs/checkpoints.md).
traincb_example_test("--help lists --start-over" example_breast_cancer ARGS --help REGEX "--start-over +with --resume")

traincb_example_test("short run" example_seed ARGS --epochs 3 --patience 2 --json
  JSON_KEYS epochs_run stopped_epoch best_epoch stop_reason val_loss)
# On random labels val_loss stops improving quickly: EarlyStopping must end the run early.
traincb_example_test("stops early on random labels" example_seed ARGS --epochs 300 --patience 5 --json
  REGEX "\"stop_reason\":\"patience\"" JSON_KEYS epochs_run stopped_epoch)
traincb_example_test("short run" example_custom_loop ARGS --epochs 400 --json
  JSON_KEYS epochs_run stopped_epoch best_epoch test_accuracy JSON_MIN "test_accuracy=0.9")
traincb_example_test("reaches 0.95 test accuracy" example_breast_cancer ARGS --out run --quiet --json
  JSON_KEYS test_accuracy test_precision test_recall test_f1 test_auc best_epoch stopped_epoch epochs_run
  JSON_MIN "test_accuracy=0.95")
traincb_example_test("reaches 0.95 test accuracy" example_digits ARGS --quiet --json
  JSON_KEYS test_accuracy test_macro_f1 epochs_run JSON_MIN "test_accuracy=0.95")
# example_distributed parses its flags before MPI starts, so these run without mpirun (its runs
# are MPI tests, tests/mpi.cmake).
if(TARGET example_distributed)
  traincb_example_test("--help" example_distributed ARGS --help REGEX "usage: example_distributed")
  traincb_example_test("rejects an unknown flag" example_distributed ARGS --no-such-flag EXIT 2
    STDERR_REGEX "unknown flag '--no-such-flag'")
endif()
