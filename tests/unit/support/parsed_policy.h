/*
 * parsed_policy.h: a policy parsed from text for a test, as "test.rules";
 * any error fails the test (and is printed).
 */
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy/loader.h"

namespace portcullis::test_support {

inline std::shared_ptr<const policy::Policy> parse(const std::string& text) {
    auto result = policy::parse_policy(text, "test.rules", ".");
    std::string errors;
    for (const auto& error : result.errors) errors += error.str() + "\n";
    EXPECT_TRUE(result.ok()) << errors;
    return result.policy;
}

}  // namespace portcullis::test_support
