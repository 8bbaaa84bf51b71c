/*
 * fields.cc: the field registry.
 */
#include "policy/fields.h"

#include "util/text.h"

namespace portcullis::policy {

namespace {

/* Each result field takes the words its check can give it (the checks'
 * result names; tests/unit/daemon/result_words_test.cc holds the two
 * together), so that a comparison that could never be true is a load
 * error: softfail and neutral are SPF's alone, and the dkim field is a
 * summary of the signatures that is never neutral. */
const std::vector<std::string_view> kSpfResults{"pass", "fail", "softfail", "neutral", "none", "temperror",
                                                "permerror"};
const std::vector<std::string_view> kDkimResults{"pass", "fail", "none", "temperror", "permerror"};
const std::vector<std::string_view> kDmarcResults{"pass", "fail", "none", "temperror", "permerror"};
const std::vector<std::string_view> kDmarcPolicies{"none", "quarantine", "reject"};

std::vector<FieldInfo> make_registry() {
    using T = ValueType;
    using S = Stage;
    return {
        {FieldId::client_ip, "client.ip", T::ip, S::connect, false, {}},
        {FieldId::client_host, "client.host", T::name, S::connect, false, {}},
        {FieldId::client_port, "client.port", T::number, S::connect, false, {}},
        {FieldId::helo, "helo", T::name, S::helo, false, {}},
        {FieldId::tls, "tls", T::boolean, S::helo, false, {}},
        {FieldId::authenticated, "authenticated", T::boolean, S::mail, false, {}},
        {FieldId::auth_user, "auth.user", T::string, S::mail, false, {}},
        {FieldId::sender, "sender", T::address, S::mail, false, {}},
        {FieldId::sender_local, "sender.local", T::name, S::mail, false, {}},
        {FieldId::sender_domain, "sender.domain", T::domain, S::mail, false, {}},
        {FieldId::size, "size", T::size, S::mail, false, {}},
        {FieldId::rcpt, "rcpt", T::address, S::rcpt, false, {}},
        {FieldId::rcpt_local, "rcpt.local", T::name, S::rcpt, false, {}},
        {FieldId::rcpt_domain, "rcpt.domain", T::domain, S::rcpt, false, {}},
        {FieldId::rcpt_count, "rcpt.count", T::number, S::rcpt, false, {}},
        {FieldId::from, "from", T::address, S::eom, false, {}},
        {FieldId::from_domain, "from.domain", T::domain, S::eom, false, {}},
        {FieldId::header, "header", T::string, S::eom, true, {}},
        {FieldId::spf, "spf", T::result, S::mail, false, kSpfResults},
        {FieldId::spf_domain, "spf.domain", T::domain, S::mail, false, {}},
        {FieldId::dkim, "dkim", T::result, S::eom, false, kDkimResults},
        {FieldId::dkim_domain, "dkim.domain", T::domain, S::eom, false, {}},
        {FieldId::dmarc, "dmarc", T::result, S::eom, false, kDmarcResults},
        {FieldId::dmarc_policy, "dmarc.policy", T::result, S::eom, false, kDmarcPolicies},
        {FieldId::dmarc_domain, "dmarc.domain", T::domain, S::eom, false, {}},
        {FieldId::greylist_wait, "greylist.wait", T::number, S::rcpt, false, {}},
        {FieldId::dnsbl, "dnsbl", T::ip, S::connect, true, {}},
    };
}

}  // namespace

const std::vector<FieldInfo>& all_fields() {
    static const std::vector<FieldInfo> registry = make_registry();
    return registry;
}

const FieldInfo* find_field(std::string_view name) {
    for (const auto& info : all_fields()) {
        if (equals_nocase(info.name, name)) return &info;
    }
    return nullptr;
}

const FieldInfo& field_info(FieldId id) { return all_fields().at(static_cast<size_t>(id)); }

std::vector<std::string> field_names() {
    std::vector<std::string> names;
    for (const auto& info : all_fields()) names.emplace_back(info.name);
    return names;
}

std::string_view value_type_name(ValueType type) {
    switch (type) {
        case ValueType::ip: return "ip";
        case ValueType::number: return "number";
        case ValueType::size: return "size";
        case ValueType::boolean: return "boolean";
        case ValueType::string: return "string";
        case ValueType::name: return "name";
        case ValueType::address: return "address";
        case ValueType::domain: return "domain";
        case ValueType::result: return "result";
    }
    return "?";
}

}  // namespace portcullis::policy
