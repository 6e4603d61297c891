// Catch2's session, compiled once for every test program's main (catch_main.cpp with Catch2 v2, and
// the MPI tests' mpi/mpi_main.cpp with v2 or v3). With v2 this file also compiles Catch2's
// implementation; v3 ships it as a library.
#if TRAINCB_CATCH_VERSION >= 3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include "catch_run.hpp"

int traincb_catch_run(int argc, char* argv[], const char* output_file) {
    Catch::Session session;
    if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    if (output_file != nullptr) session.configData().outputFilename = output_file;
    return session.run();
}
