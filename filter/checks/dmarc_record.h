/*
 * dmarc_record.h: what a DMARC record must look like before libopendmarc
 * parses it (see dmarc.cc for why); used by dmarc.cc only.
 *
 * is_dmarc_record() tells DMARC records from the other TXT records of a
 * name: the version tag "v=DMARC1" comes first (RFC 7489 6.4: "v" in any
 * case, white space allowed around '=', "DMARC1" exactly, then ';' or the
 * end).
 *
 * screen_record() splits a record into its tags (name=value, separated by
 * ';'; pieces without '=' are ignored, as libopendmarc does) and keeps for
 * libopendmarc only the tags of the policy: v, p, sp, adkim, aspf and pct,
 * the first of each.  The reporting tags (rua, ruf, rf, ri, fo) and unknown
 * ones are left out: no report is sent, so they do not bear on the
 * verdict, and RFC 7489 6.6.3 lets only a bad p= or sp= cost a record its
 * policy.  libopendmarc reads each value into a fixed buffer, so a kept
 * value over 31 bytes (none valid is) is refused, and so is a pct= that is
 * not a number (libopendmarc takes "pct=abc" for pct=0).  The screened
 * record also says whether rua= names a syntactically valid URI
 * (RFC 7489 6.4: a URI scheme, ':', then visible ASCII; an optional size
 * limit "!10m"), which makes a record without a valid p= count as p=none
 * (RFC 7489 6.6.3).
 */
#pragma once

#include <string>
#include <string_view>

namespace portcullis::dmarc {

inline constexpr size_t kMaxPolicyValueBytes = 31;

struct ScreenedRecord {
    std::string policy_tags;    // "v=DMARC1; p=reject; pct=50": the kept tags, for libopendmarc
    std::string p_and_sp;       // the same with v, p and sp only: are those valid?
    bool reporting_uri = false;   // rua= names a valid URI
    std::string problem;          // why libopendmarc is not to see it; "" if it may
};

bool is_dmarc_record(std::string_view txt);
ScreenedRecord screen_record(std::string_view record);

}  // namespace portcullis::dmarc
