/*
 * values.h: the value of a field in one session, and how values compare.
 *
 * resolve_field() reads a field (header("Name") takes its argument) from
 * a Facts.  A FieldValue is absent (the MTA did not say: no client
 * address for local submission), a flag, a number, an IP address or text,
 * or pending: a fact that takes a lookup (lookups.h) and is not known
 * yet; asking for it started the work.
 * str() renders any value for templates and logs.  Text comparisons fold
 * case unless the field's type is `string`, as the language says.  from
 * and from.domain are Facts::from's address() and domain(): without a
 * value unless the From header names one author (util/from_header.h).
 *
 * DNSBL: dnsbl_name() is the name to look up for SUBJECT in ZONE (an
 * IPv4 address's octets reversed, an IPv6 address's 32 nibbles reversed,
 * a domain as it is, then the zone), nullopt for an absent or empty
 * subject, or one that makes no host name (is_host_name()): it is not
 * listed, and nothing is looked up.  dnsbl_codes() are the list's return codes for SUBJECT: the A
 * records in 127.0.0.0/8, less 127.255.255.0/24 (what lists answer to a
 * refused query, not a listing), smallest first; empty when the subject
 * is not listed or the lookup failed (temperror); nullopt while the
 * answer is awaited.  The value dnsbl("zone") is the smallest code for
 * client.ip.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/facts.h"
#include "policy/fields.h"
#include "util/ip.h"

namespace portcullis::policy {

struct FieldValue {
    enum class Kind { absent, flag, number, ip, text, pending };
    Kind kind = Kind::absent;
    bool flag = false;
    uint64_t number = 0;
    IpAddress ip;
    std::string text;

    std::string str() const;
};

FieldValue resolve_field(FieldId field, std::string_view argument, const Facts& facts);

std::optional<std::string> dnsbl_name(const FieldValue& subject, std::string_view zone);
std::optional<std::vector<IpAddress>> dnsbl_codes(const FieldValue& subject, std::string_view zone,
                                                  const Facts& facts);

/* The first header named NAME (case-insensitive), without its leading
 * white space; "" when there is none. */
std::string first_header(const Facts& facts, std::string_view name);

}  // namespace portcullis::policy
