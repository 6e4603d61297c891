// Catch2 v2's main, compiled once for every test executable (v3 ships Catch2WithMain).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
