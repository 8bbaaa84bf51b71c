/*
 * values.cc: reading fields out of the session facts.
 */
#include "policy/values.h"

#include <algorithm>

#include "policy/lookups.h"
#include "util/text.h"

namespace portcullis::policy {

namespace {

FieldValue text_value(std::string_view text) {
    FieldValue value;
    value.kind = FieldValue::Kind::text;
    value.text = text;
    return value;
}

FieldValue number_value(uint64_t number) {
    FieldValue value;
    value.kind = FieldValue::Kind::number;
    value.number = number;
    return value;
}

FieldValue flag_value(bool flag) {
    FieldValue value;
    value.kind = FieldValue::Kind::flag;
    value.flag = flag;
    return value;
}

FieldValue optional_text(const std::optional<std::string>& text) { return text ? text_value(*text) : FieldValue{}; }

FieldValue ip_value(const std::optional<IpAddress>& ip) {
    FieldValue value;
    if (ip) {
        value.kind = FieldValue::Kind::ip;
        value.ip = *ip;
    }
    return value;
}

/* "5.113.0.203" or the 32 nibbles of an IPv6 address, lowest first. */
std::string reversed_address(const IpAddress& ip) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string name;
    if (ip.is_v4()) {
        for (int i = 3; i >= 0; --i) {
            if (!name.empty()) name += '.';
            name += std::to_string(ip.bytes[static_cast<size_t>(i)]);
        }
        return name;
    }
    for (int i = 15; i >= 0; --i) {
        const uint8_t byte = ip.bytes[static_cast<size_t>(i)];
        name += kHex[byte & 0xf];
        name += '.';
        name += kHex[byte >> 4];
        if (i > 0) name += '.';
    }
    return name;
}

/* A return code, not a listing: outside 127/8 (a resolver that answers
 * every name), or 127.255.255.x (the list refused the query). */
bool is_listing_code(const IpAddress& ip) {
    return ip.is_v4() && ip.bytes[0] == 127 && !(ip.bytes[1] == 255 && ip.bytes[2] == 255);
}

FieldValue pending_value() {
    FieldValue value;
    value.kind = FieldValue::Kind::pending;
    return value;
}

/* A part of the message's SPF answer, checked on first use. */
FieldValue spf_value(const Facts& facts, std::string SpfAnswer::*part) {
    if (!facts.spf) return {};
    const SpfAnswer* answer = facts.spf->spf({facts.client_ip, facts.helo, facts.sender});
    return answer ? text_value(answer->*part) : pending_value();
}

/* A part of the message's DKIM or DMARC answer, worked out on first use. */
template <typename Answer>
FieldValue auth_value(const Facts& facts, const Answer* (MessageAuthentication::*get)(), std::string Answer::*part) {
    if (!facts.auth) return {};
    const Answer* answer = (facts.auth->*get)();
    return answer ? text_value(answer->*part) : pending_value();
}

}  // namespace

std::optional<std::string> dnsbl_name(const FieldValue& subject, std::string_view zone) {
    std::string name;
    if (subject.kind == FieldValue::Kind::ip) name = reversed_address(subject.ip);
    else if (subject.kind == FieldValue::Kind::text) name = to_lower(without_outer_dots(trim(subject.text)));
    if (name.empty()) return std::nullopt;
    name += '.';
    name += without_outer_dots(zone);
    // A name no DNS query can carry: libunbound would read '\' as an
    // escape, and refuses a label over 63 bytes as a temperror.
    if (!is_host_name(name)) return std::nullopt;
    return name;
}

std::optional<std::vector<IpAddress>> dnsbl_codes(const FieldValue& subject, std::string_view zone,
                                                  const Facts& facts) {
    if (subject.kind == FieldValue::Kind::pending) return std::nullopt;
    const auto name = dnsbl_name(subject, zone);
    if (!name || !facts.lookups) return std::vector<IpAddress>{};
    const AddressAnswer* answer = facts.lookups->addresses(*name);
    if (!answer) return std::nullopt;
    std::vector<IpAddress> codes;
    for (const IpAddress& address : answer->addresses) {
        if (is_listing_code(address)) codes.push_back(address);
    }
    std::sort(codes.begin(), codes.end(), [](const IpAddress& a, const IpAddress& b) { return a.bytes < b.bytes; });
    return codes;
}

std::string FieldValue::str() const {
    switch (kind) {
        case Kind::absent: return "";
        case Kind::flag: return flag ? "true" : "false";
        case Kind::number: return std::to_string(number);
        case Kind::ip: return ip.str();
        case Kind::text: return text;
        case Kind::pending: return "";
    }
    return "";
}

std::string first_header(const Facts& facts, std::string_view name) {
    for (const auto& header : facts.headers) {
        if (equals_nocase(header.name, name)) return std::string(trim(header.value));
    }
    return "";
}

FieldValue resolve_field(FieldId field, std::string_view argument, const Facts& facts) {
    switch (field) {
        case FieldId::client_ip: return ip_value(facts.client_ip);
        case FieldId::client_host: return text_value(facts.client_host);
        case FieldId::client_port: return number_value(facts.client_port);
        case FieldId::helo: return text_value(facts.helo);
        case FieldId::tls: return flag_value(facts.tls);
        case FieldId::authenticated: return flag_value(facts.authenticated);
        case FieldId::auth_user: return text_value(facts.auth_user);
        case FieldId::sender: return text_value(facts.sender);
        case FieldId::sender_local: return text_value(split_address(facts.sender).local);
        case FieldId::sender_domain: return text_value(split_address(facts.sender).domain);
        case FieldId::size: return number_value(facts.size);
        case FieldId::rcpt: return text_value(facts.rcpt);
        case FieldId::rcpt_local: return text_value(split_address(facts.rcpt).local);
        case FieldId::rcpt_domain: return text_value(split_address(facts.rcpt).domain);
        case FieldId::rcpt_count: return number_value(facts.rcpt_count);
        case FieldId::from: return optional_text(facts.from.address());
        case FieldId::from_domain: return optional_text(facts.from.domain());
        case FieldId::header: return text_value(first_header(facts, argument));
        case FieldId::greylist_wait: return facts.greylist_wait ? number_value(*facts.greylist_wait) : FieldValue{};
        case FieldId::dnsbl: {
            const auto codes = dnsbl_codes(ip_value(facts.client_ip), argument, facts);
            if (!codes) return pending_value();
            return codes->empty() ? FieldValue{} : ip_value(codes->front());
        }
        case FieldId::spf: return spf_value(facts, &SpfAnswer::result);
        case FieldId::spf_domain: return spf_value(facts, &SpfAnswer::domain);
        case FieldId::dkim: return auth_value(facts, &MessageAuthentication::dkim, &DkimAnswer::result);
        case FieldId::dkim_domain: return auth_value(facts, &MessageAuthentication::dkim, &DkimAnswer::domain);
        case FieldId::dmarc: return auth_value(facts, &MessageAuthentication::dmarc, &DmarcAnswer::result);
        case FieldId::dmarc_policy: return auth_value(facts, &MessageAuthentication::dmarc, &DmarcAnswer::policy);
        case FieldId::dmarc_domain: return auth_value(facts, &MessageAuthentication::dmarc, &DmarcAnswer::domain);
    }
    return {};
}

void Facts::reset_message() {
    authenticated = false;
    auth_user.clear();
    sender.clear();
    size = 0;
    rcpt.clear();
    rcpt_count = 0;
    headers.clear();
    from.clear();
    queue_id.clear();
}

}  // namespace portcullis::policy
