/*
 * dmarc_record.h: what a DMARC record must look like before libopendmarc
 * parses it (see dmarc.cc for why); used by dmarc.cc only.
 *
 * is_dmarc_record() tells DMARC records from the other TXT records of a
 * name: the version tag "v=DMARC1" comes first (RFC 7489 6.4: "v" in any
 * case, white space allowed around '=', "DMARC1" exactly, then ';' or the
 * end).
 *
 * screen_record() reads a record's tags in order (name=value, separated
 * by ';'; pieces without '=' are ignored, as libopendmarc does), one at a
 * time and only until nothing later can matter (every policy tag met and a
 * valid rua= found), so a 64 kB record of 21,000 tags is one pass that
 * keeps nothing of them.  For libopendmarc it keeps only the tags of the
 * policy: v, p, sp, adkim, aspf and pct, the first of each, when its
 * value is one RFC 7489 6.4 allows: p= and sp=
 * none, quarantine or reject, adkim= and aspf= r or s (the whole word, in
 * any case: libopendmarc takes any prefix, "p=r" for reject), pct= 1 to 3
 * digits for 0 to 100 (libopendmarc takes "pct=abc" for pct=0).  So no
 * value libopendmarc sees overflows its buffers.  A bad adkim=, aspf= or
 * pct= is left out for its default (RFC 7489 6.3: errors in the rest of
 * the record are discarded for default values), and named in ignored; a
 * missing or bad p=, or a bad sp=, is the record's problem (RFC 7489
 * 6.6.3), and so is a NUL byte.  The reporting tags (rua, ruf, rf, ri,
 * fo) and unknown ones are left out: no report is sent, so they do not
 * bear on the verdict.  The screened record also says whether rua= names
 * a syntactically valid URI (RFC 7489 6.4: a URI scheme, ':', then visible
 * ASCII; an optional size limit "!10m"), which makes a record whose p= or
 * sp= is what is wrong count as p=none (RFC 7489 6.6.3).  Values are
 * shown in problem and ignored only when printable and at most
 * kMaxShownValue bytes ("pct= of 4000 bytes" otherwise).
 */
#pragma once

#include <string>
#include <string_view>

namespace portcullis::dmarc {

inline constexpr size_t kMaxShownValue = 31;

struct ScreenedRecord {
    std::string policy_tags;       // "v=DMARC1; p=reject; pct=50": the kept tags, in lower case, for libopendmarc
    bool reporting_uri = false;    // rua= names a valid URI
    std::string problem;           // why the record gives no policy; "" if it does
    bool policy_invalid = false;   // the problem is p= or sp= (RFC 7489 6.6.3)
    std::string ignored;           // the optional tags left out for their defaults: "adkim=x, pct=150"; "" if none
};

bool is_dmarc_record(std::string_view txt);
ScreenedRecord screen_record(std::string_view record);

}  // namespace portcullis::dmarc
