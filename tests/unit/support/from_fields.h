/*
 * from_fields.h: a message's From header as the session would parse it,
 * from the values of its From fields, for a test.
 */
#pragma once

#include <string>
#include <vector>

#include "util/from_header.h"

namespace portcullis::test_support {

inline FromHeader from_fields(const std::vector<std::string>& values) {
    FromHeader from;
    for (const auto& value : values) from.add_field(value);
    return from;
}

}  // namespace portcullis::test_support
