/*
 * negotiation.h: what the filter asks of the MTA at option negotiation,
 * the same for both engines.
 *
 * A milter costs the MTA a round trip for every stage it asks for and
 * every reply it must wait for, so the filter asks only what the loaded
 * policy needs (policy::PolicyNeeds):
 *   wanted_steps()   the protocol steps (SMFIP_*) to skip and the stages
 *                    whose events need no reply, and SMFIP_HDR_LEADSPC
 *                    when header fields are read (DKIM hashes them as
 *                    they came);
 *   kWantedActions   add and insert header fields (ours and the rules'),
 *                    change them (remove forged Authentication-Results),
 *                    quarantine, choose macros;
 *   kMacroLists      the macros asked for at each stage.
 * agree() turns the MTA's offer into the reply: the actions and steps
 * wanted that the MTA offers (an offer of 0 means protocol version 1's),
 * the lower of the two protocol versions.  No-reply steps the MTA does
 * not offer are not asked for: the engine then answers those events
 * with "continue" (libmilter does the same of itself).
 */
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "milter/protocol.h"
#include "policy/needs.h"

namespace portcullis::milter {

uint32_t wanted_steps(const policy::PolicyNeeds& needs);

inline constexpr uint32_t kWantedActions =
    wire::kActionAddHeaders | wire::kActionChangeHeaders | wire::kActionQuarantine | wire::kActionSetMacroList;

struct MacroList {
    wire::MacroStage stage;
    const char* names;
};
inline constexpr std::array<MacroList, 7> kMacroLists{{
    {wire::MacroStage::connect, "j {daemon_name} {client_addr} {client_name} {client_port}"},
    {wire::MacroStage::helo, "{tls_version} {cipher}"},
    {wire::MacroStage::mail, "i {auth_type} {auth_authen}"},
    {wire::MacroStage::rcpt, "i"},
    {wire::MacroStage::data, "i"},
    {wire::MacroStage::end_of_headers, "i"},
    {wire::MacroStage::end_of_message, "i"},
}};

/* The reply to OFFER for a filter that wants STEPS; nullopt when the MTA
 * speaks a protocol older than version 2 (libmilter refuses it too). */
std::optional<wire::OptionNegotiation> agree(const wire::OptionNegotiation& offer, uint32_t steps);

}  // namespace portcullis::milter
