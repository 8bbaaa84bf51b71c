/*
 * greylist_settings.h: what one greylist rule asks for, with the defaults
 * a rule gets for what it leaves out.  The policy language's greylist
 * action (policy/ast.h) and the check (greylist.h) share this one
 * definition, and `greylist allow` takes its default expiry from it.
 * No dependencies, so the policy engine may include it.
 */
#pragma once

#include <chrono>

#include "util/units.h"

namespace portcullis::checks {

struct GreylistSettings {
    Millis delay = std::chrono::minutes(5);      // a retry passes after this
    Millis window = std::chrono::hours(48);      // ... and before this
    Millis expire = std::chrono::hours(24 * 35); // a passed triplet is kept this long
    unsigned awl = 5;                            // passes that whitelist a network; 0 = never
    bool by_host = false;                        // the client's address, not its /24 or /64
};

}  // namespace portcullis::checks
