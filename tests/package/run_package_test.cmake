# Installs traincb into a temporary prefix, then builds and runs two separate consumers against
# it: one with find_package(traincb CONFIG REQUIRED) (header-only, and again with traincb::compiled),
# one with `pkg-config --cflags traincb`.
# Invoked by ctest with -DSOURCE_DIR -DWORK_DIR -DGENERATOR -DCXX.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix with space")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX} -DTRAINCB_BUILD_TESTS=OFF -DTRAINCB_BUILD_EXAMPLES=OFF
    "-DCMAKE_INSTALL_PREFIX=${WORK_DIR}/unused")
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
# Installed somewhere other than CMAKE_INSTALL_PREFIX: everything must be relocatable.
run("${CMAKE_COMMAND}" --install "${WORK_DIR}/build" --prefix "${prefix}")

# 1. find_package consumer.
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/package/consumer_cmake" -B "${WORK_DIR}/consumer_cmake"
    -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_PREFIX_PATH=${prefix}")
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer_cmake")
run("${WORK_DIR}/consumer_cmake/consumer")
message(STATUS "find_package consumer: ${last_output}")
run("${WORK_DIR}/consumer_cmake/consumer_compiled")
message(STATUS "find_package consumer, compiled mode (traincb::compiled): ${last_output}")

# 2. pkg-config consumer (plain compiler command line).
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
run("${PKG_CONFIG}" --cflags traincb)
string(STRIP "${last_output}" cflags)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
run("${CXX}" ${cflags} "${SOURCE_DIR}/tests/package/consumer.cpp" -o "${WORK_DIR}/consumer_pkgconfig")
run("${WORK_DIR}/consumer_pkgconfig")
message(STATUS "pkg-config consumer: ${last_output}")
