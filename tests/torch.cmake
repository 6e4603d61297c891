# LibTorch tests (included from tests/CMakeLists.txt): one program, test_torch, holds every test
# that includes torch (each such translation unit costs about a minute and 2 GB to compile), plus
# the examples' runs and a compile-fail check. All carry the label `torch`. Without LibTorch one
# test reports them skipped and says how to enable them.
if(NOT TARGET traincb::torch)
  add_test(NAME "torch: tests skipped"
    COMMAND "${CMAKE_COMMAND}" -E echo
      "traincb-test: SKIPPED: traincb::torch is not built (LibTorch not found: apt-get install libtorch-dev, or a clang build, or TRAINCB_TORCH=OFF)")
  set_tests_properties("torch: tests skipped" PROPERTIES SKIP_REGULAR_EXPRESSION "traincb-test: SKIPPED: ")
  return()
endif()

add_executable(test_torch torch/test_torch.cpp)
traincb_test_target(test_torch ${TRAINCB_OWN_LIBRARY})
target_link_libraries(test_torch PRIVATE traincb::torch)
target_compile_definitions(test_torch PRIVATE TRAINCB_TORCH_EXAMPLE_EXE="$<TARGET_FILE:example_torch>")
add_dependencies(test_torch example_torch)
traincb_discover_tests(test_torch PROPERTIES LABELS torch TIMEOUT 300)

foreach(ex IN ITEMS example_torch example_torch_loop)
  traincb_example_test("--help" ${ex} ARGS --help REGEX "usage: ${ex}")
  traincb_example_test("rejects an unknown flag" ${ex} ARGS --no-such-flag EXIT 2
    STDERR_REGEX "unknown flag '--no-such-flag'")
  traincb_example_test("reaches 0.95 test accuracy" ${ex} ARGS --out run --quiet --json
    JSON_KEYS test_accuracy test_macro_f1 epochs_run stopped_epoch best_epoch JSON_MIN "test_accuracy=0.95")
  set_tests_properties("example: ${ex} --help" "example: ${ex} rejects an unknown flag"
    "example: ${ex} reaches 0.95 test accuracy" PROPERTIES LABELS torch)
endforeach()

# An optimizer whose state traincb cannot save is a compile error naming it (a syntax-only compile
# with LibTorch's include directories, TRAINCB_TORCH_SYNTAX_FLAGS).
add_test(NAME "compile-fail: TorchModel with an unsupported optimizer names it"
  COMMAND "${CMAKE_CXX_COMPILER}" ${TRAINCB_SYNTAX_FLAGS} ${TRAINCB_TORCH_SYNTAX_FLAGS}
    "${CMAKE_CURRENT_SOURCE_DIR}/torch/unsupported_optimizer.cpp"
  COMMAND_EXPAND_LISTS)
set_tests_properties("compile-fail: TorchModel with an unsupported optimizer names it" PROPERTIES
  LABELS torch TIMEOUT 300
  PASS_REGULAR_EXPRESSION "torch_optimizer_traits<torch::optim::RMSprop>.*this optimizer is not supported|this optimizer is not supported.*torch_optimizer_traits<torch::optim::RMSprop>")
