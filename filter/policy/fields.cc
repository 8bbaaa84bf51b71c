/*
 * fields.cc: the field registry.  Fields whose check a later part of the
 * project brings (DKIM, DMARC) are listed with
 * available = false, so the parser can say "not available yet".
 */
#include "policy/fields.h"

#include "util/text.h"

namespace portcullis::policy {

namespace {

const std::vector<std::string_view> kAuthResults{"pass", "fail", "softfail", "neutral", "none", "temperror",
                                                 "permerror"};
const std::vector<std::string_view> kDmarcPolicies{"none", "quarantine", "reject"};

std::vector<FieldInfo> make_registry() {
    using T = ValueType;
    using S = Stage;
    return {
        {FieldId::client_ip, "client.ip", T::ip, S::connect, true, false, {}},
        {FieldId::client_host, "client.host", T::name, S::connect, true, false, {}},
        {FieldId::client_port, "client.port", T::number, S::connect, true, false, {}},
        {FieldId::helo, "helo", T::name, S::helo, true, false, {}},
        {FieldId::tls, "tls", T::boolean, S::helo, true, false, {}},
        {FieldId::authenticated, "authenticated", T::boolean, S::mail, true, false, {}},
        {FieldId::auth_user, "auth.user", T::string, S::mail, true, false, {}},
        {FieldId::sender, "sender", T::address, S::mail, true, false, {}},
        {FieldId::sender_local, "sender.local", T::name, S::mail, true, false, {}},
        {FieldId::sender_domain, "sender.domain", T::domain, S::mail, true, false, {}},
        {FieldId::size, "size", T::size, S::mail, true, false, {}},
        {FieldId::rcpt, "rcpt", T::address, S::rcpt, true, false, {}},
        {FieldId::rcpt_local, "rcpt.local", T::name, S::rcpt, true, false, {}},
        {FieldId::rcpt_domain, "rcpt.domain", T::domain, S::rcpt, true, false, {}},
        {FieldId::rcpt_count, "rcpt.count", T::number, S::rcpt, true, false, {}},
        {FieldId::from, "from", T::address, S::eom, true, false, {}},
        {FieldId::from_domain, "from.domain", T::domain, S::eom, true, false, {}},
        {FieldId::header, "header", T::string, S::eom, true, true, {}},
        {FieldId::spf, "spf", T::result, S::mail, true, false, kAuthResults},
        {FieldId::spf_domain, "spf.domain", T::domain, S::mail, true, false, {}},
        {FieldId::dkim, "dkim", T::result, S::eom, false, false, kAuthResults},
        {FieldId::dkim_domain, "dkim.domain", T::domain, S::eom, false, false, {}},
        {FieldId::dmarc, "dmarc", T::result, S::eom, false, false, kAuthResults},
        {FieldId::dmarc_policy, "dmarc.policy", T::result, S::eom, false, false, kDmarcPolicies},
        {FieldId::dmarc_domain, "dmarc.domain", T::domain, S::eom, false, false, {}},
        {FieldId::greylist_wait, "greylist.wait", T::number, S::rcpt, true, false, {}},
        {FieldId::dnsbl, "dnsbl", T::ip, S::connect, true, true, {}},
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
