#pragma once
// Precompiled header of traincb_tests: what nearly every test file parses anyway (Catch2, Eigen,
// nlohmann/json, the standard library), parsed once instead of in each of its translation units.
// traincb's own headers stay out of it, so a change to one header rebuilds only the test files
// that include it. Each test file still includes what it uses.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
