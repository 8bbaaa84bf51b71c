/*
 * replies.h: what both engines send the MTA for a Reply, so that they
 * send the same.
 *
 * own_reply_lines() gives a reject's or tempfail's lines as the MTA is
 * to get them, each milter_text(); nullopt when the answer's code is not
 * one of its class (5xx, 4xx) with, if any, a valid enhanced code: the
 * MTA then sends its default text (as libmilter itself would; logged
 * when there was a code).
 *
 * milter_text() makes one reply line safe to hand over: '%' doubled (the
 * MTA reads '%%' as '%' and drops a lone one), at most
 * policy::kMaxReplyLine bytes after that (RFC 5321's 512 octets a line
 * with code, enhanced code and CRLF; within libmilter's MAXREPLYLEN),
 * never cut inside a UTF-8 character.  The lines come from
 * policy::reply_lines(), so they hold no CR, LF or other control
 * character and are at most 32.
 *
 * apply_changes() makes an end of message's changes through an engine's
 * MessageEditor, in the order that keeps positions right: forged
 * Authentication-Results removed last to first (the positions of those
 * before a removed one do not move), ours inserted on top, the rules'
 * header fields added, the quarantine (its reason as it is: Sendmail
 * keeps it as text, not as a format, and Postfix reads none).  A change
 * the editor refuses (the MTA did not allow it) is logged and the rest go
 * on.  Header values go out with the space after the colon when
 * LEADING_SPACE was agreed (SMFIP_HDR_LEADSPC: the MTA then adds none
 * itself).
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "milter/session.h"

namespace portcullis::milter {

std::string milter_text(std::string_view line);
std::optional<std::vector<std::string>> own_reply_lines(const Answer& answer);

class MessageEditor {
public:
    /* Each returns false when the change could not be made. */
    virtual bool remove_header(std::string_view name, int position) = 0;
    virtual bool insert_header(std::string_view name, const std::string& value) = 0;   // on top
    virtual bool add_header(std::string_view name, const std::string& value) = 0;
    virtual bool quarantine(const std::string& reason) = 0;

protected:
    ~MessageEditor() = default;
};

void apply_changes(const Reply& reply, bool leading_space, MessageEditor& editor);

}  // namespace portcullis::milter
