/*
 * from_header.cc: an RFC 5322 address-list parser (section 3.4 and the
 * obsolete syntax of 4.4), and the From header of a message over it (see
 * from_header.h).
 *
 * The parser descends the grammar over one cursor.  Where the grammar
 * needs to look ahead (is "Team" the display name of a mailbox, of a
 * group, or the local part of an address?) it reads the phrase and goes
 * back to where it began if what follows does not fit, so each list
 * member is read a few times at most.  Comments nest by counting, not by
 * recursion, so no input can exhaust the stack.
 */
#include "util/from_header.h"

#include <algorithm>

#include "util/text.h"

namespace portcullis {

namespace {

constexpr size_t kMaxLabelBytes = 63;
constexpr size_t kMaxDomainBytes = 253;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

bool is_letter_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* RFC 5322 atext, with RFC 6532's UTF-8 (any byte above 127). */
bool is_atext(char c) {
    return is_letter_or_digit(c) || static_cast<unsigned char>(c) >= 0x80 ||
           std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

class AddressListParser {
public:
    explicit AddressListParser(std::string_view text) : text_(text) {}

    std::optional<std::vector<std::string>> parse() {
        std::vector<std::string> addresses;
        if (!members(addresses, false)) return std::nullopt;
        return addresses;
    }

private:
    using Item = std::optional<std::string> (AddressListParser::*)();

    bool at_end() const { return pos_ >= text_.size(); }
    bool at(char c) const { return !at_end() && text_[pos_] == c; }
    bool eat(char c) {
        if (!at(c)) return false;
        ++pos_;
        return true;
    }

    size_t line_break_at(size_t at) const;
    size_t fold_at(size_t at) const;
    void skip_fws();
    bool skip_cfws();
    std::optional<std::string> enclosed(char open, char close, bool nests);
    std::optional<std::string> atom();
    std::optional<std::string> atom_in_cfws();
    std::optional<std::string> word();
    std::optional<std::string> dotted(Item item);
    bool phrase();
    std::optional<std::string> domain();
    std::optional<std::string> addr_spec();
    bool skip_route();
    std::optional<std::string> angle_addr();
    bool mailbox(std::vector<std::string>& out);
    bool group(std::vector<std::string>& out);
    bool address(std::vector<std::string>& out);
    bool members(std::vector<std::string>& out, bool in_group);

    std::string_view text_;
    size_t pos_ = 0;
};

/* The length of the CRLF or bare LF at AT; 0 if there is none. */
size_t AddressListParser::line_break_at(size_t at) const {
    if (text_.substr(at, 2) == "\r\n") return 2;
    return text_.substr(at, 1) == "\n" ? 1 : 0;
}

/* The length of the line break at AT when white space follows it (a
 * fold); 0 otherwise. */
size_t AddressListParser::fold_at(size_t at) const {
    const size_t length = line_break_at(at);
    return length != 0 && at + length < text_.size() && is_wsp(text_[at + length]) ? length : 0;
}

/* White space and folds; a line break that ends the value counts too. */
void AddressListParser::skip_fws() {
    while (!at_end()) {
        if (is_wsp(text_[pos_])) {
            ++pos_;
        } else if (const size_t fold = fold_at(pos_); fold != 0) {
            pos_ += fold;
        } else if (const size_t end = line_break_at(pos_); end != 0 && pos_ + end == text_.size()) {
            pos_ += end;
        } else {
            return;
        }
    }
}

/* CFWS: false on a comment that does not end. */
bool AddressListParser::skip_cfws() {
    for (;;) {
        skip_fws();
        if (!at('(')) return true;
        if (!enclosed('(', ')', true)) return false;
    }
}

/* A quoted string, comment or domain literal from its OPEN to its CLOSE,
 * both kept, quoted pairs kept as written, folds unfolded; comments NEST.
 * nullopt when it does not end or a line break is not a fold. */
std::optional<std::string> AddressListParser::enclosed(char open, char close, bool nests) {
    std::string text(1, text_[pos_++]);
    size_t depth = 1;
    while (!at_end()) {
        const char c = text_[pos_];
        if (c == '\r' || c == '\n') {
            const size_t fold = fold_at(pos_);
            if (fold == 0) return std::nullopt;
            pos_ += fold;
            continue;
        }
        if (c == '\\') {
            if (pos_ + 1 == text_.size()) return std::nullopt;
            text.append(text_.substr(pos_, 2));
            pos_ += 2;
            continue;
        }
        text += c;
        ++pos_;
        if (c == close) --depth;
        else if (c == open && nests) ++depth;
        if (depth == 0) return text;
    }
    return std::nullopt;
}

std::optional<std::string> AddressListParser::atom() {
    const size_t start = pos_;
    while (!at_end() && is_atext(text_[pos_])) ++pos_;
    if (pos_ == start) return std::nullopt;
    return std::string(text_.substr(start, pos_ - start));
}

std::optional<std::string> AddressListParser::atom_in_cfws() {
    if (!skip_cfws()) return std::nullopt;
    auto found = atom();
    if (!found || !skip_cfws()) return std::nullopt;
    return found;
}

/* An atom or a quoted string, with the CFWS around it. */
std::optional<std::string> AddressListParser::word() {
    if (!skip_cfws()) return std::nullopt;
    auto found = at('"') ? enclosed('"', '"', false) : atom();
    if (!found || !skip_cfws()) return std::nullopt;
    return found;
}

/* ITEM *("." ITEM): a local part (of words) or a domain (of atoms), CFWS
 * around the dots allowed (obs-local-part, obs-domain). */
std::optional<std::string> AddressListParser::dotted(Item item) {
    auto text = (this->*item)();
    while (text && eat('.')) {
        const auto next = (this->*item)();
        if (!next) return std::nullopt;
        *text += "." + *next;
    }
    return text;
}

/* A display name: words, and after the first one the dots of obs-phrase
 * ("John Q. Public").  False when there is no word. */
bool AddressListParser::phrase() {
    if (!word()) return false;
    for (;;) {
        const size_t before = pos_;
        if (eat('.')) continue;
        if (!word()) {
            pos_ = before;
            return true;
        }
    }
}

std::optional<std::string> AddressListParser::domain() {
    if (!skip_cfws()) return std::nullopt;
    auto found = at('[') ? enclosed('[', ']', false) : dotted(&AddressListParser::atom_in_cfws);
    if (!found || !skip_cfws()) return std::nullopt;
    return to_lower(*found);
}

std::optional<std::string> AddressListParser::addr_spec() {
    const auto local = dotted(&AddressListParser::word);
    if (!local || !eat('@')) return std::nullopt;
    const auto found = domain();
    if (!found) return std::nullopt;
    return *local + "@" + *found;
}

/* obs-route ("@relay1,@relay2:") before the address in angle brackets:
 * read and dropped.  True, reading nothing, when there is none. */
bool AddressListParser::skip_route() {
    const size_t start = pos_;
    while (skip_cfws() && eat(',')) {
    }
    if (!at('@')) {
        pos_ = start;
        return true;
    }
    while (eat('@')) {
        if (!domain()) return false;
        while (eat(',')) {
            if (!skip_cfws()) return false;
        }
    }
    return eat(':');
}

std::optional<std::string> AddressListParser::angle_addr() {
    if (!skip_cfws() || !eat('<') || !skip_route()) return std::nullopt;
    auto found = addr_spec();
    if (!found || !eat('>') || !skip_cfws()) return std::nullopt;
    return found;
}

/* A name-addr (display name optional) or a bare addr-spec. */
bool AddressListParser::mailbox(std::vector<std::string>& out) {
    const size_t start = pos_;
    phrase();
    auto found = angle_addr();
    if (!found) {
        pos_ = start;
        found = addr_spec();
    }
    if (!found) return false;
    out.push_back(std::move(*found));
    return true;
}

bool AddressListParser::group(std::vector<std::string>& out) {
    std::vector<std::string> group_addresses;
    if (!phrase() || !eat(':') || !members(group_addresses, true) || !eat(';') || !skip_cfws()) return false;
    out.insert(out.end(), group_addresses.begin(), group_addresses.end());
    return true;
}

bool AddressListParser::address(std::vector<std::string>& out) {
    const size_t start = pos_;
    if (group(out)) return true;
    pos_ = start;
    return mailbox(out);
}

/* The members of the list or of a group (IN_GROUP: mailboxes up to the
 * ';'), separated by commas, empty ones allowed (obs-addr-list,
 * obs-mbox-list). */
bool AddressListParser::members(std::vector<std::string>& out, bool in_group) {
    for (;;) {
        if (!skip_cfws()) return false;
        const bool empty = at(',') || (in_group ? at(';') : at_end());
        if (!empty && !(in_group ? mailbox(out) : address(out))) return false;
        if (!eat(',')) return in_group ? at(';') : at_end();
    }
}

}  // namespace

std::optional<std::vector<std::string>> parse_addresses(std::string_view value) {
    if (value.size() > kMaxFromBytes || value.find('\0') != std::string_view::npos) return std::nullopt;
    return AddressListParser(value).parse();
}

void FromHeader::add_field(std::string_view value) {
    if (++fields_ > kMaxFromFields) {
        note("more than " + std::to_string(kMaxFromFields) + " From fields");
        read_leniently(value);
        return;
    }
    const auto parsed = parse_addresses(value);
    if (!parsed) {
        note("From is not an address list");
        read_leniently(value);
        return;
    }
    for (const std::string& address : *parsed) {
        const std::string_view domain = split_address(address).domain;
        if (!is_mail_domain(domain)) {
            note("From domain " + in_quotes(domain) + " is not a host name");
            read_leniently(address);
        } else if (seen_domains_.insert(std::string(domain)).second) {
            domains_.emplace_back(domain);
        }
        addresses_.push_back(address);
    }
}

void FromHeader::clear() { *this = FromHeader(); }

/* The lenient reading of VALUE, a field that is not parsed or an address
 * whose domain is not a host name (from_header.h says what it finds):
 * each '@' and the name after it are looked at once. */
void FromHeader::read_leniently(std::string_view value) {
    const auto is_name_byte = [](char c) { return is_letter_or_digit(c) || c == '-' || c == '.'; };
    size_t at = value.find('@');
    while (at != std::string_view::npos && domains_.size() + lenient_domains_.size() < kMaxAuthorDomains) {
        const size_t start = at + 1;
        size_t end = start;
        while (end < value.size() && is_name_byte(value[end])) ++end;
        std::string_view name = value.substr(start, end - start);
        if (name.ends_with('.')) name.remove_suffix(1);
        if (is_mail_domain(name)) {
            std::string domain = to_lower(name);
            if (seen_domains_.count(domain) == 0 &&
                std::find(lenient_domains_.begin(), lenient_domains_.end(), domain) == lenient_domains_.end()) {
                lenient_domains_.push_back(std::move(domain));
            }
        }
        at = value.find('@', end);
    }
}

void FromHeader::note(std::string problem) {
    if (problem_.empty()) problem_ = std::move(problem);
}

std::string FromHeader::problem() const {
    if (fields_ == 0) return "no From field";
    if (!problem_.empty()) return problem_;
    if (addresses_.empty()) return "no address in From";
    return "";
}

std::optional<std::string> FromHeader::domain() const {
    if (domains_.size() != 1 || !problem().empty()) return std::nullopt;
    return domains_.front();
}

std::optional<std::string> FromHeader::address() const {
    if (!domain()) return std::nullopt;
    const std::string& first = addresses_.front();
    if (!std::all_of(addresses_.begin(), addresses_.end(), [&](const std::string& a) { return a == first; })) {
        return std::nullopt;
    }
    return first;
}

bool is_mail_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > kMaxDomainBytes) return false;
    size_t labels = 0;
    std::string_view last;
    for (size_t start = 0; start <= domain.size(); ++labels) {
        const size_t end = std::min(domain.find('.', start), domain.size());
        last = domain.substr(start, end - start);
        if (last.empty() || last.size() > kMaxLabelBytes || last.front() == '-' || last.back() == '-') return false;
        if (!std::all_of(last.begin(), last.end(), [](char c) { return is_letter_or_digit(c) || c == '-'; })) {
            return false;
        }
        start = end + 1;
    }
    return labels >= 2 && !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace portcullis
