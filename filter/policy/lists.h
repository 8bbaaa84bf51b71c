/*
 * lists.h: the named sets and maps of a policy.
 *
 * A List has one kind and answers contains() for a value already turned
 * into text (addresses and names) or an IpAddress.  Items are validated
 * when added: add() returns an error message for an item that does not
 * fit the kind ("not an IP address or CIDR prefix").  A Map holds
 * KEY VALUE... lines and looks addresses up the way Postfix's
 * smtpd_sender_login_maps does: the whole address, then @domain.
 *
 * How each kind matches (lookups run per message, so each is a few hash
 * look-ups, whatever the size of the list):
 *   ip       the address lies in any prefix; a plain address is a host
 *            prefix.  Prefixes are kept per family and length, so a
 *            lookup costs one hash probe per distinct length present.
 *   domain   the value equals an item or is a subdomain of one; an item
 *            written =example.com matches only itself.  ASCII case and a
 *            trailing dot are ignored.
 *   address  user@domain matches the whole address, @domain its domain
 *            part (that domain only, not its subdomains), user@ its local
 *            part; ASCII case is ignored.
 *   regex    any regex matches somewhere in the value (RE2, linear time).
 *   string   the value equals an item.  contains_text() compares exactly
 *            and contains_text_nocase() without regard to ASCII case: the
 *            evaluator uses the latter for name and result values (host
 *            names, pass/fail words) and the former for string values.
 *            For the other kinds the two are the same.
 */
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/ip.h"

namespace re2 { class RE2; }

namespace portcullis::policy {

enum class ListKind { ip, domain, address, regex, string };
std::string_view list_kind_name(ListKind kind);
std::optional<ListKind> parse_list_kind(std::string_view name);
std::vector<std::string> list_kind_names();

/* Compile PATTERN the way every policy regex is compiled: UTF-8, no
 * logging to stderr, case-insensitive when CASELESS.  Returns null and
 * sets ERROR ("bad regex /PATTERN/: " and RE2's message) when the
 * pattern is bad. */
std::unique_ptr<re2::RE2> compile_regex(std::string_view pattern, bool caseless, std::string& error);

/* Hashing std::string keys so that look-ups take a string_view without
 * building a string. */
struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using TextSet = std::unordered_set<std::string, TextHash, std::equal_to<>>;

/* A set of CIDR prefixes of both families with a lookup that does not
 * grow with the number of prefixes. */
class IpPrefixSet {
public:
    void add(const IpPrefix& prefix);
    bool contains(const IpAddress& ip) const;

private:
    struct Bits {   // an address as two big-endian halves
        uint64_t high = 0, low = 0;
        friend bool operator==(const Bits&, const Bits&) = default;
    };
    struct BitsHash {
        size_t operator()(const Bits& bits) const;
    };
    struct Level {   // every network of one prefix length
        unsigned length = 0;
        Bits mask;
        std::unordered_set<Bits, BitsHash> networks;
    };
    static Bits bits_of(const IpAddress& ip);
    static Bits mask_of(unsigned length);
    std::vector<Level>& levels(IpAddress::Family family);

    std::vector<Level> v4_, v6_;   // longest prefix length first
};

class List {
public:
    explicit List(ListKind kind);
    ~List();
    List(List&&) noexcept;
    List& operator=(List&&) noexcept;

    ListKind kind() const { return kind_; }
    size_t size() const { return count_; }

    /* Add one item as written in a policy or list file.  For regex lists
     * ITEM is the pattern without slashes and CASELESS its i flag.
     * Returns an error message, or "" when the item was added. */
    std::string add(std::string_view item, bool caseless = false);

    bool contains_ip(const IpAddress& ip) const;
    /* Text values: an address, a domain, a host name or a word. */
    bool contains_text(std::string_view value) const;
    /* The same, but a string list ignores ASCII case (see above). */
    bool contains_text_nocase(std::string_view value) const;

private:
    std::string add_domain(std::string_view item);
    std::string add_address(std::string_view item);
    std::string add_regex(std::string_view pattern, bool caseless);
    bool contains_domain(std::string_view value) const;
    bool contains_address(std::string_view value) const;
    bool contains_regex(std::string_view value) const;

    ListKind kind_;
    size_t count_ = 0;
    IpPrefixSet prefixes_;                                 // ip
    TextSet names_;                                        // domain (lower case), string (as written)
    TextSet folded_names_;                                 // string, lower case
    TextSet exact_names_;                                  // domain items written =name
    size_t longest_name_ = 0;                              // of names_, for a domain list
    TextSet addresses_;                                    // address: user@domain, lower case
    TextSet address_domains_;                              // address: @domain
    TextSet address_locals_;                               // address: user@
    std::vector<std::unique_ptr<re2::RE2>> regexes_;       // regex
};

class Map {
public:
    /* Add a KEY and its values; a repeated key replaces the earlier line. */
    void add(std::string_view key, std::vector<std::string> values);
    /* The values for KEY: the exact key (case-insensitive), then, for an
     * address, @domain.  Empty when neither is present. */
    const std::vector<std::string>& lookup(std::string_view key) const;
    size_t size() const { return entries_.size(); }

private:
    std::unordered_map<std::string, std::vector<std::string>, TextHash, std::equal_to<>> entries_;
};

}  // namespace portcullis::policy
