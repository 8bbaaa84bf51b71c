/*
 * ast.cc: the few behaviours of the policy tree: how a source location
 * is written in errors and in logs, action names, and which actions end
 * their stage.
 */
#include "policy/ast.h"

#include "util/units.h"

namespace portcullis::policy {

std::string SourceLocation::str() const {
    const std::string path = file ? file->path : "?";
    return path + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string SourceLocation::log_str() const {
    const std::string name = file ? file->short_name : "?";
    return name + ":" + std::to_string(line);
}

std::string rate_text(const Rate& rate) {
    std::string text = std::to_string(rate.count);
    text += '/';
    text += format_duration(rate.period);
    return text;
}

std::string_view action_name(ActionKind kind) {
    switch (kind) {
        case ActionKind::accept: return "accept";
        case ActionKind::reject: return "reject";
        case ActionKind::tempfail: return "tempfail";
        case ActionKind::discard: return "discard";
        case ActionKind::quarantine: return "quarantine";
        case ActionKind::greylist: return "greylist";
        case ActionKind::ratelimit: return "ratelimit";
        case ActionKind::add_header: return "add-header";
        case ActionKind::log: return "log";
    }
    return "?";
}

/* A property of the action alone: a monitor rule, or every rule under
 * policy.mode = "monitor", is made non-terminal by the evaluator, which
 * alone knows the mode. */
bool Rule::always_terminal() const {
    switch (action) {
        case ActionKind::accept:
        case ActionKind::reject:
        case ActionKind::tempfail:
        case ActionKind::discard:
        case ActionKind::quarantine: return true;
        case ActionKind::greylist:    // only when they refuse
        case ActionKind::ratelimit:
        case ActionKind::add_header:
        case ActionKind::log: return false;
    }
    return false;
}

}  // namespace portcullis::policy
