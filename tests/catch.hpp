#pragma once
// One include for Catch2 v2 (Debian's catch2 package) and v3.
#if TRAINCB_CATCH_VERSION >= 3
#include <catch2/catch_all.hpp>
#define TRAINCB_SKIP(msg) SKIP(msg)
using Catch::Approx;
#else
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
// Catch2 v2 has no SKIP: report it and exit with ctest's SKIP_RETURN_CODE (4) so ctest counts the
// test as skipped rather than passed.
#define TRAINCB_SKIP(msg)                               \
    do {                                                \
        std::cout << "SKIPPED: " << (msg) << std::endl; \
        std::exit(4);                                   \
    } while (0)
#endif
