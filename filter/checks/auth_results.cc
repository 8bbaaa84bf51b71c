/*
 * auth_results.cc: writing our Authentication-Results value and reading
 * the authserv-id of the ones a message brings.
 */
#include "checks/auth_results.h"

#include <algorithm>

#include "util/text.h"

namespace portcullis::auth_results {

namespace {

/* A signature's b= prefix may not be shorter than this (RFC 6008). */
constexpr size_t kMinSignaturePrefix = 8;
/* No value we write from a message gets longer than this. */
constexpr size_t kMaxValue = 256;

std::string without_controls(std::string_view text) {
    std::string clean;
    for (const char c : text.substr(0, kMaxValue)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= ' ' && byte != 0x7f) clean += c;
    }
    return clean;
}

/* local@domain with an atom local part (possibly empty) and a token
 * domain: RFC 8601's pvalue takes it as it is. */
bool is_plain_address(std::string_view text) {
    const auto at = text.rfind('@');
    if (at == std::string_view::npos) return false;
    const std::string_view local = text.substr(0, at);
    const bool local_ok = local.empty() || (is_mime_token(local) && local.find('.') != 0);
    return local_ok && is_mime_token(text.substr(at + 1));
}

/* TEXT as an RFC 8601 pvalue: as it is when it can be, else quoted. */
std::string property_value(std::string_view text) {
    std::string clean = without_controls(text);
    if (is_mime_token(clean) || is_plain_address(clean)) return clean;
    std::string quoted = "\"";
    for (const char c : clean) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
    }
    return quoted + "\"";
}

/* TEXT inside a comment: no parentheses or backslashes to balance. */
std::string comment_text(std::string_view text) {
    std::string clean = without_controls(text);
    std::erase_if(clean, [](char c) { return c == '(' || c == ')' || c == '\\'; });
    return clean;
}

/* Appends " NAME=VALUE", a result's property, to ENTRY, on a line of its
 * own when the entry's line would pass RFC 5322's 998 bytes (a value of
 * 256 bytes quoted can be twice as long, and a signature has five). */
void add_property(std::string& entry, std::string_view name, std::string_view value) {
    constexpr size_t kMaxLine = 998;
    const std::string text = std::string(name) + '=' + property_value(value);
    const size_t line_start = entry.rfind('\n');
    // The tab each entry's line starts with counts too.
    const size_t line = 1 + entry.size() - (line_start == std::string::npos ? 0 : line_start + 1);
    entry += line + 1 + text.size() + 1 > kMaxLine ? "\n\t" : " ";
    entry += text;
}

std::string spf_entry(const Spf& spf) {
    std::string entry = "spf=" + spf.result;
    if (!spf.domain.empty()) add_property(entry, spf.helo ? "smtp.helo" : "smtp.mailfrom", spf.domain);
    return entry;
}

/* The shortest prefix of SIGNATURES[INDEX].b, at least 8 characters, that
 * no other signature's b= starts with. */
std::string signature_prefix(const std::vector<dkim::Signature>& signatures, size_t index) {
    const std::string& b = signatures[index].b;
    size_t length = std::min(kMinSignaturePrefix, b.size());
    for (size_t other = 0; other < signatures.size(); ++other) {
        if (other == index) continue;
        const std::string& them = signatures[other].b;
        size_t common = 0;
        while (common < b.size() && common < them.size() && b[common] == them[common]) ++common;
        length = std::max(length, std::min(common + 1, b.size()));
    }
    return b.substr(0, length);
}

std::string dkim_entry(const std::vector<dkim::Signature>& signatures, size_t index) {
    const dkim::Signature& signature = signatures[index];
    std::string entry = "dkim=";
    entry += dkim::result_name(signature.result);
    std::string comment;
    if (signature.key_bits > 0) comment = std::to_string(signature.key_bits) + "-bit key";
    if (!signature.reason.empty()) comment += (comment.empty() ? "" : "; ") + comment_text(signature.reason);
    if (!comment.empty()) entry += " (" + comment + ")";
    if (!signature.domain.empty()) add_property(entry, "header.d", signature.domain);
    if (!signature.identity.empty()) add_property(entry, "header.i", signature.identity);
    if (!signature.selector.empty()) add_property(entry, "header.s", signature.selector);
    if (!signature.algorithm.empty()) add_property(entry, "header.a", signature.algorithm);
    if (!signature.b.empty()) add_property(entry, "header.b", signature_prefix(signatures, index));
    return entry;
}

std::string dmarc_entry(const Dmarc& dmarc) {
    const dmarc::Verdict& verdict = dmarc.verdict;
    std::string entry = "dmarc=";
    entry += dmarc::result_name(verdict.result);
    if (!verdict.published.empty()) entry += " (p=" + verdict.published + " dis=" + dmarc.disposition + ")";
    if (!verdict.from_domain.empty()) add_property(entry, "header.from", verdict.from_domain);
    return entry;
}

/* Past white space and comments (nested, with quoted pairs) from AT. */
size_t skip_cfws(std::string_view text, size_t at) {
    int depth = 0;
    while (at < text.size()) {
        const char c = text[at];
        if (depth > 0 && c == '\\') {
            at += 2;
            continue;
        }
        if (c == '(') ++depth;
        else if (c == ')' && depth > 0) --depth;
        else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n') break;
        ++at;
    }
    return at;
}

bool is_cfws_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The authserv-id as the lenient readers downstream take it (OpenDMARC's,
 * OpenDKIM's and OpenARC's tokenizers skip comments, join the pieces of a
 * name across '.' and white space, and drop quote marks): the text before
 * the first ';' outside quoted strings and comments, less comments, quote
 * marks and the backslash of quoted pairs, each run of white space or
 * comments made one space (none at either end). */
std::string squeezed_authserv_id(std::string_view value) {
    std::string squeezed;
    bool gap = false;
    const auto add = [&](char c) {
        if (is_cfws_space(c)) {
            gap = true;
            return;
        }
        if (gap && !squeezed.empty()) squeezed += ' ';
        gap = false;
        squeezed += c;
    };
    bool in_quotes = false;
    int depth = 0;   // of comments
    for (size_t at = 0; at < value.size(); ++at) {
        char c = value[at];
        const bool quoted_pair = c == '\\' && at + 1 < value.size();
        if (quoted_pair) c = value[++at];
        if (depth > 0) {
            if (!quoted_pair) depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        } else if (quoted_pair) {
            add(c);
        } else if (c == '"') {
            in_quotes = !in_quotes;
        } else if (!in_quotes && c == ';') {
            break;
        } else if (!in_quotes && c == '(') {
            depth = 1;
            gap = true;
        } else {
            add(c);
        }
    }
    return squeezed;
}

/* The name a lenient reader takes for the authserv-id of VALUE: its
 * squeezed text less a final RFC 8601 authres-version (digits after white
 * space or a comment), the spaces left dropped. */
std::string lenient_authserv_id(std::string_view value) {
    std::string id = squeezed_authserv_id(value);
    const size_t last_gap = id.rfind(' ');
    if (last_gap != std::string::npos &&
        std::all_of(id.begin() + static_cast<std::ptrdiff_t>(last_gap) + 1, id.end(), [](char c) {
            return c >= '0' && c <= '9';
        })) {
        id.erase(last_gap);
    }
    std::erase(id, ' ');
    return id;
}

}  // namespace

std::string header_value(std::string_view authserv_id, const Results& results) {
    std::vector<std::string> entries;
    if (results.spf) entries.push_back(spf_entry(*results.spf));
    if (results.dkim) {
        const auto& signatures = results.dkim->signatures;
        if (signatures.empty()) entries.emplace_back("dkim=none");
        for (size_t i = 0; i < signatures.size(); ++i) entries.push_back(dkim_entry(signatures, i));
    }
    if (results.dmarc) entries.push_back(dmarc_entry(*results.dmarc));

    std::string value(authserv_id);
    value += ';';
    if (entries.empty()) return value + " none";
    for (size_t i = 0; i < entries.size(); ++i) {
        value += "\n\t" + entries[i];
        if (i + 1 < entries.size()) value += ';';
    }
    return value;
}

std::string authserv_id_of(std::string_view value) {
    size_t at = skip_cfws(value, 0);
    if (at >= value.size()) return "";
    std::string id;
    if (value[at] == '"') {
        for (++at; at < value.size() && value[at] != '"'; ++at) {
            if (value[at] == '\\' && at + 1 < value.size()) ++at;
            id += value[at];
        }
        return id;
    }
    for (; at < value.size(); ++at) {
        const char c = value[at];
        if (c == ';' || c == '(' || c == ' ' || c == '\t' || c == '\r' || c == '\n') break;
        id += c;
    }
    return id;
}

bool is_ours(std::string_view value, std::string_view authserv_id) {
    return !authserv_id.empty() &&
           (equals_nocase(authserv_id_of(value), authserv_id) ||
            equals_nocase(lenient_authserv_id(value), authserv_id));
}

}  // namespace portcullis::auth_results
