# MPI tests: real Open MPI processes under mpirun at np 1 to 4, each with two time limits (mpirun's
# --timeout inside, ctest's TIMEOUT outside), so a hang fails the test instead of the CI run. Most
# collective logic is tested without mpirun, in test_distributed.cpp (threads as ranks). Without
# MPI one test reports them skipped and says how to enable them.
if(NOT TARGET traincb::mpi)
  add_test(NAME "mpi: tests skipped"
    COMMAND "${CMAKE_COMMAND}" -E echo
      "traincb-test: SKIPPED: MPI not found; install it with: apt-get install openmpi-bin libopenmpi-dev")
  set_tests_properties("mpi: tests skipped" PROPERTIES SKIP_REGULAR_EXPRESSION "traincb-test: SKIPPED: ")
  return()
endif()

# Open MPI refuses root without --allow-run-as-root, and more ranks than cores without
# --oversubscribe (both flags are Open MPI's; MPICH has neither and needs neither).
execute_process(COMMAND "${MPIEXEC_EXECUTABLE}" --version OUTPUT_VARIABLE _mpiexec_version ERROR_QUIET)
set(TRAINCB_MPIEXEC_FLAGS ${MPIEXEC_PREFLAGS})
if(_mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND TRAINCB_MPIEXEC_FLAGS --allow-run-as-root --oversubscribe)
  set(TRAINCB_MPI_TIMEOUT_FLAG --timeout)
endif()

# Under the sanitizer presets, the ranks run without LeakSanitizer: Open MPI keeps allocations
# from MPI_Init until exit in components it has unloaded by then, so no suppression can name them.
# traincb's own collective code is leak-checked in-process (test_distributed.cpp, threads as ranks).
set(_lsan_off "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1")

# mpirun -np NP [flags] --timeout INNER PROGRAM ARGS..., with ctest's TIMEOUT at OUTER seconds.
function(traincb_mpi_test name np inner outer)
  set(_cmd "${MPIEXEC_EXECUTABLE}" ${MPIEXEC_NUMPROC_FLAG} ${np} ${TRAINCB_MPIEXEC_FLAGS})
  if(TRAINCB_MPI_TIMEOUT_FLAG)
    list(APPEND _cmd ${TRAINCB_MPI_TIMEOUT_FLAG} ${inner})
  endif()
  add_test(NAME "mpi: ${name}" COMMAND ${_cmd} ${ARGN} ${MPIEXEC_POSTFLAGS})
  set_tests_properties("mpi: ${name}" PROPERTIES TIMEOUT ${outer} LABELS mpi RESOURCE_LOCK mpi
    WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}"
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;${_lsan_off}")
endfunction()

# The MPI test programs have their own Catch2 main (mpi/mpi_main.cpp, v2 or v3), compiled once; they
# link TRAINCB_OWN_LIBRARY, as traincb_tests does (every object of a program in the same mode).
add_library(traincb_mpi_catch_main OBJECT mpi/mpi_main.cpp)
target_link_libraries(traincb_mpi_catch_main PUBLIC traincb::mpi ${TRAINCB_OWN_LIBRARY} traincb_warnings Threads::Threads
  ${TRAINCB_CATCH_LIBRARY})
target_include_directories(traincb_mpi_catch_main PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}")
target_compile_definitions(traincb_mpi_catch_main PUBLIC TRAINCB_CATCH_VERSION=${TRAINCB_CATCH_VERSION})

add_executable(test_mpi mpi/test_mpi.cpp)
target_link_libraries(test_mpi PRIVATE traincb_mpi_catch_main)
foreach(_np 1 2 3 4)
  traincb_mpi_test("collectives and exact metric reduction at np ${_np}" ${_np} 60 120 $<TARGET_FILE:test_mpi>)
endforeach()

# The EarlyStopping vectors replayed over the ranks, from metrics reduced over uneven shards.
add_executable(test_mpi_es_vectors mpi/test_mpi_es_vectors.cpp)
target_link_libraries(test_mpi_es_vectors PRIVATE traincb_mpi_catch_main)
target_compile_definitions(test_mpi_es_vectors PRIVATE TRAINCB_SPEC_DIR="${PROJECT_SOURCE_DIR}/tests/spec")
foreach(_np 1 2 3 4)
  traincb_mpi_test("EarlyStopping vectors from metrics reduced over the ranks at np ${_np}" ${_np} 60 120
    $<TARGET_FILE:test_mpi_es_vectors>)
endforeach()

add_executable(mpi_abort_probe mpi/abort_probe.cpp)
target_link_libraries(mpi_abort_probe PRIVATE traincb::mpi traincb_warnings)
set(_probe_cmd "${MPIEXEC_EXECUTABLE}" ${MPIEXEC_NUMPROC_FLAG} 3 ${TRAINCB_MPIEXEC_FLAGS})
if(TRAINCB_MPI_TIMEOUT_FLAG)
  list(APPEND _probe_cmd ${TRAINCB_MPI_TIMEOUT_FLAG} 30)
endif()
list(APPEND _probe_cmd $<TARGET_FILE:mpi_abort_probe> ${MPIEXEC_POSTFLAGS})
set(_probe_test "mpi: an exception on one rank ends the job through MpiSession's MPI_Abort")
add_test(NAME "${_probe_test}"
  COMMAND "${CMAKE_COMMAND}" "-DCOMMAND=${_probe_cmd}" -P "${CMAKE_CURRENT_SOURCE_DIR}/mpi/expect_abort.cmake")
set_tests_properties("${_probe_test}" PROPERTIES TIMEOUT 60 LABELS mpi RESOURCE_LOCK mpi
  WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}"
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;${_lsan_off}")

# example_distributed under mpirun, run and checked by tests/mpi/example_distributed.py (python3):
# each mpirun has its own --timeout inside the script, ctest's TIMEOUT bounds the whole test.
if(TARGET example_distributed AND TRAINCB_PYTHON3)
  set(_ex_script "${CMAKE_CURRENT_SOURCE_DIR}/mpi/example_distributed.py")
  set(_ex_args --exe $<TARGET_FILE:example_distributed> --single $<TARGET_FILE:example_breast_cancer>
      --data "${PROJECT_SOURCE_DIR}/examples/data/breast_cancer.csv" --np-flag=${MPIEXEC_NUMPROC_FLAG} --timeout 40)
  if(TRAINCB_MPI_TIMEOUT_FLAG)
    list(APPEND _ex_args --timeout-flag=${TRAINCB_MPI_TIMEOUT_FLAG})
  endif()
  # name, script case and its arguments, ctest TIMEOUT
  function(traincb_mpi_example_test name case outer)
    string(MAKE_C_IDENTIFIER "${name}" _dir)
    add_test(NAME "mpi: example_distributed ${name}"
      COMMAND "${TRAINCB_PYTHON3}" "${_ex_script}" ${case} ${ARGN} ${_ex_args}
        --work "${CMAKE_CURRENT_BINARY_DIR}/mpi_runs/${_dir}" -- "${MPIEXEC_EXECUTABLE}" ${TRAINCB_MPIEXEC_FLAGS})
    set_tests_properties("mpi: example_distributed ${name}" PROPERTIES TIMEOUT ${outer} LABELS mpi RESOURCE_LOCK mpi
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;${_lsan_off}")
  endfunction()
  foreach(_np 1 2 3 4)
    traincb_mpi_example_test("at np ${_np}: 0.95 test accuracy, equal weights, the single-process files" run 120
      --np ${_np})
  endforeach()
  traincb_mpi_example_test("SIGTERM to one rank interrupts every rank at the same step, --resume completes"
    sigterm 180)
  traincb_mpi_example_test("a failed write on rank 0 fails every rank, the checkpoint stays intact" failed-write 180)
  traincb_mpi_example_test("resumes at np 2 from a run interrupted at np 4" resume-4-2 120)
elseif(TARGET example_distributed)
  add_test(NAME "mpi: example_distributed tests skipped"
    COMMAND "${CMAKE_COMMAND}" -E echo
      "traincb-test: SKIPPED: python3 not found (it runs and checks example_distributed); install it with: apt-get install python3")
  set_tests_properties("mpi: example_distributed tests skipped" PROPERTIES SKIP_REGULAR_EXPRESSION "traincb-test: SKIPPED: ")
endif()
