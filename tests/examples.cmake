# Tests that run the example programs (included from tests/CMakeLists.txt).
if(TARGET test_replay)
  add_dependencies(test_replay traincb-replay)
  target_compile_definitions(test_replay PRIVATE TRAINCB_REPLAY_EXE="$<TARGET_FILE:traincb-replay>")
endif()
