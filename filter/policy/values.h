/*
 * values.h: the value of a field in one session, and how values compare.
 *
 * resolve_field() reads a field (header("Name") takes its argument) from
 * a Facts.  A FieldValue is absent (the MTA did not say: no client
 * address for local submission), a flag, a number, an IP address or text.
 * str() renders any value for templates and logs.  Text comparisons fold
 * case unless the field's type is `string`, as the language says.
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/facts.h"
#include "policy/fields.h"
#include "util/ip.h"

namespace portcullis::policy {

struct FieldValue {
    enum class Kind { absent, flag, number, ip, text };
    Kind kind = Kind::absent;
    bool flag = false;
    uint64_t number = 0;
    IpAddress ip;
    std::string text;

    std::string str() const;
};

FieldValue resolve_field(FieldId field, std::string_view argument, const Facts& facts);

/* The From address of the message (RFC 5322 From header): the addr-spec
 * inside the first <...>, else the first word with an '@'; "" if none. */
std::string from_address(const Facts& facts);

/* The first header named NAME (case-insensitive), without its leading
 * white space; "" when there is none. */
std::string first_header(const Facts& facts, std::string_view name);

}  // namespace portcullis::policy
