# Install rules: headers, CMake package (config, version, exported targets) and a pkg-config file
# whose prefix is relative to its own location, so `cmake --install --prefix X` works anywhere.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TRAINCB_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/cmake/traincb" CACHE STRING
    "Where traincbConfig.cmake is installed (relative to the prefix)")
set(TRAINCB_PKGCONFIG_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
    "Where traincb.pc is installed (relative to the prefix)")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/traincb" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS traincb EXPORT traincbTargets)
if(TARGET traincb_compiled)
  install(TARGETS traincb_compiled EXPORT traincbTargets ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
endif()
install(EXPORT traincbTargets NAMESPACE traincb:: DESTINATION "${TRAINCB_CMAKE_INSTALL_DIR}")
if(TARGET traincb_mpi)
  # A separate export set: a consumer without MPI still loads traincbTargets.cmake.
  install(TARGETS traincb_mpi EXPORT traincbMpiTargets)
  install(EXPORT traincbMpiTargets NAMESPACE traincb:: DESTINATION "${TRAINCB_CMAKE_INSTALL_DIR}")
endif()

if(TARGET traincb_torch)
  # Likewise for LibTorch: a consumer without it still loads traincbTargets.cmake.
  install(TARGETS traincb_torch EXPORT traincbTorchTargets)
  install(EXPORT traincbTorchTargets NAMESPACE traincb:: DESTINATION "${TRAINCB_CMAKE_INSTALL_DIR}")
endif()

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/traincbConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/traincbConfig.cmake"
  INSTALL_DESTINATION "${TRAINCB_CMAKE_INSTALL_DIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/traincbConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/traincbConfig.cmake"
  "${PROJECT_BINARY_DIR}/traincbConfigVersion.cmake"
  DESTINATION "${TRAINCB_CMAKE_INSTALL_DIR}")

# pkg-config: prefix relative to the .pc file's directory (${pcfiledir}).
file(RELATIVE_PATH _traincb_pc_to_prefix
  "/prefix/${TRAINCB_PKGCONFIG_INSTALL_DIR}" "/prefix")
string(REGEX REPLACE "/$" "" _traincb_pc_to_prefix "${_traincb_pc_to_prefix}")
set(TRAINCB_PC_PREFIX "\${pcfiledir}/${_traincb_pc_to_prefix}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/traincb.pc.in" "${PROJECT_BINARY_DIR}/traincb.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/traincb.pc" DESTINATION "${TRAINCB_PKGCONFIG_INSTALL_DIR}")
