# Finds traincb's two dependencies. Debian's Eigen 3.4.0 ships a config-version file that rejects
# any version range (its "3.4.0" is compared as "3.3" compatibility), so look it up without a
# version and check the version ourselves.
include(CMakeFindDependencyMacro)

if(NOT TARGET Eigen3::Eigen)
  find_package(Eigen3 CONFIG REQUIRED NO_MODULE)
  if(DEFINED Eigen3_VERSION AND Eigen3_VERSION VERSION_LESS 3.3)
    message(FATAL_ERROR "traincb needs Eigen 3.3 or newer (found ${Eigen3_VERSION}); "
                        "install it with: apt-get install libeigen3-dev")
  endif()
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.10 CONFIG REQUIRED)
endif()
# ModelCheckpoint's background saves (async_save) run a std::thread.
if(NOT TARGET Threads::Threads)
  find_package(Threads REQUIRED)
endif()
