/*
 * fields.h: the registry of session facts a policy can name.
 *
 * Each field has a name, a value type, the first stage at which the MTA
 * has told us its value, whether it takes an argument (header("..."),
 * dnsbl("...")), and for a result field the words it can hold.  The
 * parser uses the registry to reject unknown fields (with a suggestion),
 * fields used before their stage, and comparisons of a result field with
 * a word it never holds.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/stage.h"

namespace portcullis::policy {

/* How values of a field compare and match lists. */
enum class ValueType {
    ip,       // an IpAddress
    number,   // an unsigned integer (ports, counts, seconds)
    size,     // bytes; written with k/M/G suffixes
    boolean,
    string,   // compared exactly
    name,     // a host name or word: compared without regard to case
    address,  // user@domain: compared without regard to case
    domain,   // compared without regard to case, matched as a domain
    result,   // pass, fail, ...: compared without regard to case
};

std::string_view value_type_name(ValueType type);

enum class FieldId {
    client_ip, client_host, client_port,
    helo, tls,
    authenticated, auth_user,
    sender, sender_local, sender_domain, size,
    rcpt, rcpt_local, rcpt_domain, rcpt_count,
    from, from_domain,
    header,        // header("Name"): the argument is kept in the expression
    spf, spf_domain,
    dkim, dkim_domain,
    dmarc, dmarc_policy, dmarc_domain,
    greylist_wait,
    dnsbl,         // dnsbl("zone"): the argument is kept in the expression
};

struct FieldInfo {
    FieldId id;
    std::string_view name;      // as written in policies, lower case
    ValueType type;
    Stage stage;                // first stage at which it is known
    bool takes_argument;        // header("..."), dnsbl("...")
    /* Words a comparison against this field may use unquoted (results and
     * policies: pass, fail, reject, ...); empty when any word is fine. */
    std::vector<std::string_view> words;
};

const std::vector<FieldInfo>& all_fields();
const FieldInfo* find_field(std::string_view name);   // case-insensitive
const FieldInfo& field_info(FieldId id);
std::vector<std::string> field_names();

}  // namespace portcullis::policy
