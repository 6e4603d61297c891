# The SIGKILL crash/resume test (tests/test_crash_resume.cpp) drives example_breast_cancer:
# building the test builds the example, and the test is told where it is.
if(TARGET test_crash_resume AND TARGET example_breast_cancer)
  add_dependencies(test_crash_resume example_breast_cancer)
  target_compile_definitions(test_crash_resume PRIVATE
    TRAINCB_BREAST_CANCER_EXE="$<TARGET_FILE:example_breast_cancer>")
endif()
