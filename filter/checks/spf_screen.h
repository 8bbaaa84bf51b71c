/*
 * spf_screen.h: what a DNS answer must look like before libspf2 sees it
 * (see spf.h for why).
 *
 * is_spf_record() tells SPF records ("v=spf1" alone or followed by a
 * space, any case) from the other TXT records of a name.  spf_record_problem()
 * and explanation_problem() return "" for text libspf2 can be given, or
 * what is wrong with it, for the log; record_terms() splits a record
 * into its terms (mechanisms and modifiers, the version left out).
 * is_host_name() is RFC 7208 4.3's
 * test of a domain to check: a multi-label name of letters, digits, '-'
 * and '_' (labels of 1 to 63 bytes, 253 in all; one final dot allowed).
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace portcullis::spf {

inline constexpr size_t kMaxRecordBytes = 2048;
inline constexpr size_t kMaxTerms = 100;
inline constexpr size_t kMaxTermBytes = 255;   // libspf2 keeps a literal's length in a byte
inline constexpr int kMaxMacrosPerTerm = 10;   // so a term's compiled form fits libspf2's 511-byte buffer

bool is_spf_record(std::string_view txt);
std::string spf_record_problem(std::string_view record);
std::vector<std::string_view> record_terms(std::string_view record);
std::string explanation_problem(std::string_view text);
bool is_host_name(std::string_view name);

}  // namespace portcullis::spf
