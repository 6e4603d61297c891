#pragma once
// One include for Catch2 v2 (Debian's catch2 package) and v3.
#if TRAINCB_CATCH_VERSION >= 3
#include <catch2/catch_all.hpp>
#include <iostream>
// The marker line tells ctest the case was skipped (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt).
#define TRAINCB_SKIP(msg)                                             \
    do {                                                              \
        std::cout << "traincb-test: SKIPPED: " << (msg) << std::endl; \
        SKIP(msg);                                                    \
    } while (0)
using Catch::Approx;
#else
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
// Catch2 v2 has no SKIP: print the marker line that tells ctest the case was skipped
// (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt) and end the process. A marker rather than an
// exit code: Catch2 exits with the number of failed assertions, so any skip code would also be the
// exit code of a case with that many failures.
#define TRAINCB_SKIP(msg)                                             \
    do {                                                              \
        std::cout << "traincb-test: SKIPPED: " << (msg) << std::endl; \
        std::exit(4);                                                 \
    } while (0)
#endif
