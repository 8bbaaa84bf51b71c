/*
 * public_suffix.h: the Public Suffix List (publicsuffix.org), for DMARC's
 * organizational domains (RFC 7489 3.2); used by dmarc.cc only.
 *
 * PublicSuffixList reads the list as the publicsuffix package ships it
 * (public_suffix_list.dat): one rule a line, read up to the first white
 * space; "//" comments; "*." wildcard and "!" exception rules; the ICANN
 * and the private sections alike.  A rule written in Unicode is kept as
 * written and also as A-labels, so that a domain matches it in either
 * form.  organizational_domain() follows the list's own algorithm: the
 * prevailing rule is a matching exception rule (less its first label),
 * else the matching rule of most labels, else "*"; the organizational
 * domain is that public suffix and one more label of the domain.
 *
 * A domain that is itself a public suffix ("com", "c.mm" under "*.mm") is
 * its own organizational domain: RFC 7489 3.2 asks for a label the domain
 * lacks, and taking the domain itself means its own record is the only one
 * looked up, and relaxed alignment with it is plain equality, since every
 * name below it has an organizational domain of its own.  What is not a
 * domain name ("", ".com", "a..b", a label over 63 bytes, over 253 bytes
 * in all) has none: "".  ASCII letters are compared without case; other
 * bytes as they are (no Unicode case folding or normalization, so a
 * Unicode name matches only in the form the list writes).
 *
 * a_label() is the Punycode encoding of RFC 3492 with the "xn--" prefix of
 * RFC 5890, for the list's Unicode rules (the test of the encoder uses it).
 * Immutable once loaded, so thread-safe.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::dmarc {

/* A set of names packed into one buffer and searched by halving: the
 * list's 9,500 rules (and their A-label forms) took 1.3 MB as std::set
 * nodes, and take under 200 kB this way, in every filter process. */
class PackedNames {
public:
    /* While loading: NAME joins the set at the next pack(). */
    void add(std::string_view name);
    /* Sorts, drops repeats, and frees what loading needed. */
    void pack();
    bool contains(std::string_view name) const;

private:
    std::string_view at(size_t index) const;

    std::string bytes_;              // the names, one after the other
    std::vector<uint32_t> starts_;   // name i is bytes_[starts_[i], starts_[i + 1])
};

class PublicSuffixList {
public:
    /* Throws CheckerError naming PATH and why when it cannot be read or
     * holds no rule. */
    explicit PublicSuffixList(const std::string& path);

    std::string organizational_domain(std::string_view domain) const;

private:
    /* Adds RULE (one line's first word, lower case); false when it is
     * not a rule. */
    bool add_rule(std::string_view rule);
    void add_in_both_forms(PackedNames& rules, std::string_view name);
    size_t suffix_labels(std::string_view domain, const std::vector<size_t>& label_starts) const;

    PackedNames names_;        // "co.uk"
    PackedNames wildcards_;    // "*.ck" as "ck"
    PackedNames exceptions_;   // "!www.ck" as "www.ck"
};

/* LABEL (UTF-8) as an A-label ("xn--" and its Punycode); LABEL itself
 * when it is ASCII; nullopt when it is not UTF-8 or the A-label would be
 * longer than 63 bytes. */
std::optional<std::string> a_label(std::string_view label);

}  // namespace portcullis::dmarc
