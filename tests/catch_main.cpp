// The main of traincb's test programs with Catch2 v2 (v3 ships Catch2WithMain); Catch2 itself is
// compiled once, in catch_impl.cpp.
#include "catch_run.hpp"

int main(int argc, char* argv[]) {
    return traincb_catch_run(argc, argv, nullptr);
}
