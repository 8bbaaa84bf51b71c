/*
 * values.cc: reading fields out of the session facts.
 */
#include "policy/values.h"

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

FieldValue ip_value(const std::optional<IpAddress>& ip) {
    FieldValue value;
    if (ip) {
        value.kind = FieldValue::Kind::ip;
        value.ip = *ip;
    }
    return value;
}

}  // namespace

std::string FieldValue::str() const {
    switch (kind) {
        case Kind::absent: return "";
        case Kind::flag: return flag ? "true" : "false";
        case Kind::number: return std::to_string(number);
        case Kind::ip: return ip.str();
        case Kind::text: return text;
    }
    return "";
}

std::string first_header(const Facts& facts, std::string_view name) {
    for (const auto& header : facts.headers) {
        if (equals_nocase(header.name, name)) return std::string(trim(header.value));
    }
    return "";
}

std::string from_address(const Facts& facts) {
    const std::string value = first_header(facts, "From");
    const auto open = value.find('<');
    if (open != std::string::npos) {
        const auto close = value.find('>', open);
        if (close != std::string::npos) return std::string(trim(std::string_view(value).substr(open + 1, close - open - 1)));
    }
    // No angle brackets: "user@example.com" or "user@example.com (Name)".
    size_t start = 0;
    while (start < value.size()) {
        const auto end = value.find_first_of(" \t,", start);
        const std::string_view word = std::string_view(value).substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (word.find('@') != std::string_view::npos) return std::string(word);
        if (end == std::string::npos) break;
        start = end + 1;
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
        case FieldId::from: return text_value(from_address(facts));
        case FieldId::from_domain: return text_value(split_address(from_address(facts)).domain);
        case FieldId::header: return text_value(first_header(facts, argument));
        case FieldId::greylist_wait: return facts.greylist_wait ? number_value(*facts.greylist_wait) : FieldValue{};
        // Facts that later checks compute (SPF, DKIM, DMARC, DNSBL); the
        // loader refuses policies that name them until then.
        case FieldId::spf:
        case FieldId::spf_domain:
        case FieldId::dkim:
        case FieldId::dkim_domain:
        case FieldId::dmarc:
        case FieldId::dmarc_policy:
        case FieldId::dmarc_domain:
        case FieldId::dnsbl:
            return {};
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
    queue_id.clear();
}

}  // namespace portcullis::policy
