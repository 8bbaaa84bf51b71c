/*
 * spf_screen.h: what an SPF record must look like before libspf2 sees it
 * (see spf.h for why).
 *
 * is_spf_record() tells SPF records ("v=spf1" alone or followed by a
 * space, any case) from the other TXT records of a name.
 * screen_record() checks one against RFC 7208's grammar (section 12),
 * which libspf2 enforces only in part, and against what libspf2 can
 * safely compile: printable ASCII, at most 2048 bytes and 100 terms, at
 * most 255 bytes and 10 macros a term.  It returns the record as libspf2
 * is to get it for a client of that family, with the same meaning, or
 * what is wrong with it.  Terms are separated by one space; exp= and
 * unknown modifiers are left out (the policy never shows an explanation,
 * so libspf2 need not look one up, and it refuses some valid modifier
 * names), and so is redirect= beside "all", which RFC 7208 6.1 ignores;
 * ip4/ip6 "/0" and the CIDR length of the client's other family, which
 * libspf2 refuses, are rewritten or left out.  An a or mx term with "/0"
 * for the client's family (any address of the name matches) gets its
 * domain marked with the label kAnyAddress, for the DNS layer to answer
 * with the client's own address when the name has any.  record_terms()
 * splits a record into its terms, the version left out.
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace portcullis::spf {

inline constexpr size_t kMaxRecordBytes = 2048;
inline constexpr size_t kMaxTerms = 100;       // libspf2 counts terms in a byte
inline constexpr size_t kMaxTermBytes = 255;   // libspf2 keeps a literal's length in a byte
inline constexpr int kMaxMacrosPerTerm = 10;   // so a term's compiled form fits libspf2's 511-byte buffer

inline constexpr std::string_view kAnyAddress = "pc-any-address";

struct ScreenedRecord {
    std::string text;      // for libspf2, when problem is ""
    std::string problem;   // for the log
};

bool is_spf_record(std::string_view txt);
ScreenedRecord screen_record(std::string_view record, bool client_v4);
std::vector<std::string_view> record_terms(std::string_view record);

}  // namespace portcullis::spf
