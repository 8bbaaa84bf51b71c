/*
 * template.h: expanding ${field} text and making it safe for SMTP.
 *
 * expand_text() joins a Template's pieces, with each field's value
 * cleaned of control characters (a value comes from the client and must
 * not end a reply line or start a new one).  reply_lines() splits the
 * result at the line breaks the rule's author wrote ("\n"), drops any
 * other control character, and cuts each line to kMaxReplyLine bytes
 * without splitting a UTF-8 sequence.  Escaping '%' for libmilter is the
 * milter glue's business, not this file's.  Other texts (header values,
 * log texts, quarantine reasons) are cut to kMaxTextLine.
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "policy/ast.h"
#include "policy/facts.h"

namespace portcullis::policy {

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its code
 * and CRLF.  The MTA hands a milter's lines to the client as they are
 * (Postfix's smtpd cuts none), so the text keeps to 512 less CRLF and the
 * longest code and enhanced code, "550-5.999.999 ". */
inline constexpr size_t kMaxReplyLine = 512 - 2 - 14;
inline constexpr size_t kMaxReplyLines = 32;   // libmilter's MAXREPLIES
inline constexpr size_t kMaxTextLine = 980;    // libmilter's MAXREPLYLEN

std::string expand_text(const Template& text, const Facts& facts);

/* Whether every field TEXT reads is known now (lookups.h): those that are
 * not are being worked out, started by this call. */
bool fields_known(const Template& text, const Facts& facts);

/* Control characters removed (tab becomes a space), cut to LIMIT bytes
 * on a UTF-8 boundary. */
std::string clean_line(std::string_view text, size_t limit = kMaxTextLine);

std::vector<std::string> reply_lines(std::string_view expanded);

}  // namespace portcullis::policy
