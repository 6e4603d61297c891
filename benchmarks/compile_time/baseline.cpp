// Compile-time baseline: what any user of traincb already pays for its two dependencies, Eigen and
// nlohmann::json, included and used trivially (no serialisation, no parsing).
// scripts/compile-times.sh compares every other file here with it.
#include <Eigen/Core>
#include <iostream>
#include <nlohmann/json.hpp>

int main() {
    const Eigen::MatrixXd m = Eigen::MatrixXd::Identity(3, 3);
    nlohmann::json j;
    j["trace"] = m.trace();
    const double trace = j["trace"].get<double>();
    std::cout << "trace " << trace << '\n';
    return trace == 3.0 ? 0 : 1;
}
