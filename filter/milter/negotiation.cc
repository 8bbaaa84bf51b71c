/*
 * negotiation.cc: protocol steps from the policy's needs, and the reply
 * to the MTA's offer.
 */
#include "milter/negotiation.h"

#include <algorithm>

namespace portcullis::milter {

uint32_t wanted_steps(const policy::PolicyNeeds& needs) {
    using policy::Stage;
    using namespace wire;
    uint32_t steps = kNoData | kNoEndOfHeaders | kNoUnknown | kNoReplyData | kNoReplyEndOfHeaders | kNoReplyHeader |
                     kNoReplyBody | kNoReplyUnknown;
    // A refusal at connect is given at the next command (HELO or MAIL); one
    // at HELO again at MAIL.
    const bool connect_refuses = needs.refuses_at(Stage::connect);
    const bool helo_refuses = needs.refuses_at(Stage::helo);
    const bool helo_needed = needs.runs_at(Stage::helo) || needs.reads_fields_of(Stage::helo) || connect_refuses;
    if (!helo_needed) steps |= kNoHelo;
    if (!needs.answers_at(Stage::connect)) steps |= kNoReplyConnect;
    if (!needs.answers_at(Stage::helo) && !connect_refuses) steps |= kNoReplyHelo;
    if (!needs.answers_at(Stage::mail) && !connect_refuses && !helo_refuses) steps |= kNoReplyMail;
    if (!needs.runs_at(Stage::rcpt) && !needs.reads_fields_of(Stage::rcpt)) steps |= kNoRcpt;
    if (!needs.answers_at(Stage::rcpt)) steps |= kNoReplyRcpt;
    if (!needs.headers && !needs.body) steps |= kNoHeaders;
    if (!needs.body) steps |= kNoBody;
    // DKIM hashes header fields exactly as they came.
    if (needs.headers) steps |= kHeaderLeadingSpace;
    return steps;
}

std::optional<wire::OptionNegotiation> agree(const wire::OptionNegotiation& offer, uint32_t steps) {
    if (offer.version < 2) return std::nullopt;
    const uint32_t actions = offer.actions == 0 ? wire::kVersion1Actions : offer.actions;
    const uint32_t offered_steps = offer.steps == 0 ? wire::kVersion1Steps : offer.steps;
    return wire::OptionNegotiation{std::min(offer.version, wire::kProtocolVersion), kWantedActions & actions,
                                   steps & offered_steps};
}

}  // namespace portcullis::milter
