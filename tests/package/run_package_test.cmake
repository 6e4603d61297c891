# Installs traincb from the build tree under test (BINARY_DIR: what its install rules copy, the
# traincb::compiled library that build compiled included) into a temporary prefix other than its
# CMAKE_INSTALL_PREFIX, then builds and runs two separate consumers against it: one with
# find_package(traincb CONFIG REQUIRED) (header-only, and again with traincb::compiled), one with
# `pkg-config --cflags traincb`.
# Invoked by ctest with -DSOURCE_DIR -DBINARY_DIR -DWORK_DIR -DGENERATOR -DCXX -DCOMPILED (ON when the
# build has traincb::compiled), and the build's CXX_FLAGS and LINKER_FLAGS (a sanitizer build's
# library links only into code compiled the same way).
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix with space")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# Installed somewhere other than CMAKE_INSTALL_PREFIX: everything must be relocatable.
run("${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}")

# 1. find_package consumer.
run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/package/consumer_cmake" -B "${WORK_DIR}/consumer_cmake"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}" -DCOMPILED=${COMPILED}
    -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_PREFIX_PATH=${prefix}")
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer_cmake")
run("${WORK_DIR}/consumer_cmake/consumer")
message(STATUS "find_package consumer: ${last_output}")
if(COMPILED)
  run("${WORK_DIR}/consumer_cmake/consumer_compiled")
  message(STATUS "find_package consumer, compiled mode (traincb::compiled): ${last_output}")
endif()

# 2. pkg-config consumer (plain compiler command line).
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
run("${PKG_CONFIG}" --cflags traincb)
string(STRIP "${last_output}" cflags)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
run("${CXX}" ${cflags} "${SOURCE_DIR}/tests/package/consumer.cpp" -o "${WORK_DIR}/consumer_pkgconfig")
run("${WORK_DIR}/consumer_pkgconfig")
message(STATUS "pkg-config consumer: ${last_output}")
