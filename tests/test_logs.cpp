// Tests for traincb/logs.hpp: ordering, lookup, History alignment.
#include "catch.hpp"

#include <cmath>
#include <traincb/logs.hpp>

namespace test_logs {

TEST_CASE("Logs keep keys sorted and update in place") {
    traincb::Logs logs;
    logs.set("val_loss", 0.5);
    logs.set("accuracy", 0.9);
    logs.set("loss", 0.7);
    REQUIRE(logs.keys() == std::vector<std::string>{"accuracy", "loss", "val_loss"});
    logs.set("loss", 0.6);
    REQUIRE(logs.size() == 3);
    REQUIRE(logs.at("loss") == 0.6);
    REQUIRE_FALSE(logs.get("val_accuracy").has_value());
    REQUIRE(logs.find("nope") == nullptr);
}

TEST_CASE("Logs::at on a missing key names the keys and the closest one") {
    traincb::Logs logs{{"val_loss", 1.0}, {"loss", 2.0}};
    try {
        (void)logs.at("val_los");
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        REQUIRE(msg.find("val_los") != std::string::npos);
        REQUIRE(msg.find("did you mean 'val_loss'") != std::string::npos);
    }
}

TEST_CASE("History keeps every column aligned with the epochs, NaN where a key was absent") {
    traincb::History h;
    h.record(0, traincb::Logs{{"loss", 1.0}});
    h.record(1, traincb::Logs{{"loss", 0.5}, {"val_loss", 0.7}});
    h.record(2, traincb::Logs{{"loss", 0.25}});
    REQUIRE(h.epoch == std::vector<int>{0, 1, 2});
    REQUIRE(h.at("loss") == std::vector<double>{1.0, 0.5, 0.25});
    const auto& v = h.at("val_loss");
    REQUIRE(v.size() == 3);
    REQUIRE(std::isnan(v[0]));
    REQUIRE(v[1] == 0.7);
    REQUIRE(std::isnan(v[2]));
    REQUIRE_THROWS_AS(h.at("acc"), std::invalid_argument);
}

}  // namespace test_logs
