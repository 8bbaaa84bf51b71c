/*
 * checks.cc: field use, action, list-kind and name checks (see checks.h).
 */
#include "policy/checks.h"

#include <algorithm>
#include <array>

#include "util/text.h"

namespace portcullis::policy {

namespace {

constexpr unsigned stage_bit(Stage stage) { return 1u << static_cast<unsigned>(stage); }
constexpr unsigned kEveryStage = (1u << kStageCount) - 1;
constexpr unsigned kMessageStages = stage_bit(Stage::mail) | stage_bit(Stage::rcpt) | stage_bit(Stage::eom);

/* Every action, in the order messages list them. */
constexpr std::array<ActionRules, 9> kActionRules{{
    {ActionKind::accept, kEveryStage},
    {ActionKind::reject, kEveryStage},
    {ActionKind::tempfail, kEveryStage},
    {ActionKind::discard, kMessageStages},
    {ActionKind::quarantine, kEveryStage},
    {ActionKind::greylist, stage_bit(Stage::rcpt)},
    {ActionKind::ratelimit, kMessageStages},
    {ActionKind::add_header, kEveryStage},
    {ActionKind::log, kEveryStage},
}};

/* Which value types a list of each kind can match. */
bool list_matches_type(ListKind kind, ValueType type) {
    using T = ValueType;
    switch (kind) {
        case ListKind::ip: return type == T::ip;
        case ListKind::domain: return type == T::domain || type == T::name;
        case ListKind::address: return type == T::address;
        case ListKind::regex: return type != T::boolean && type != T::number && type != T::size;
        case ListKind::string:
            return type == T::string || type == T::name || type == T::address || type == T::domain ||
                   type == T::result;
    }
    return false;
}

}  // namespace

const ActionRules* find_action(std::string_view name) {
    const auto found = std::find_if(kActionRules.begin(), kActionRules.end(), [&](const ActionRules& rules) {
        return equals_nocase(action_name(rules.kind), name);
    });
    return found == kActionRules.end() ? nullptr : &*found;
}

std::vector<std::string> action_names() {
    std::vector<std::string> names;
    for (const auto& rules : kActionRules) names.emplace_back(action_name(rules.kind));
    return names;
}

std::string field_with_type(const FieldInfo& info) {
    return "field " + in_quotes(info.name) + " (" + std::string(value_type_name(info.type)) + ")";
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    const std::string suggestion = closest_match(word, candidates);
    return suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)";
}

std::string unknown_word_message(std::string_view what, std::string_view word,
                                 const std::vector<std::string>& candidates) {
    std::string hint = did_you_mean(word, candidates);
    if (hint.empty()) {
        hint = " (expected ";
        for (size_t i = 0; i < candidates.size(); ++i) {
            hint += (i == 0 ? "" : i + 1 == candidates.size() ? " or " : ", ") + candidates[i];
        }
        hint += ")";
    }
    return "unknown " + std::string(what) + " '" + std::string(word) + "'" + hint;
}

std::string unknown_field_message(std::string_view name) {
    return "unknown field '" + std::string(name) + "'" + did_you_mean(name, field_names());
}

std::string field_argument_error(const FieldInfo& info, const std::optional<std::string>& argument) {
    const std::string name(info.name);
    if (argument && !info.takes_argument) return "field '" + name + "' takes no argument";
    if (!argument && info.takes_argument) return "field '" + name + "' needs an argument: write " + name + "(\"...\")";
    if (info.id == FieldId::header && !is_header_name(*argument)) return "'" + *argument + "' is not a header name";
    return "";
}

bool check_field_use(const FieldInfo& info, const FieldUse& use, const SourceLocation& where, ErrorSink& errors) {
    std::string message;
    if (info.id == FieldId::greylist_wait) {
        // It has a value only where a greylist rule defers: in that
        // rule's reply text.
        if (use.action == ActionKind::greylist && use.in_reply_text) return true;
        message = "field 'greylist.wait' is only known in the reply text of a greylist rule";
    } else if (info.stage > use.stage) {
        message = "field '" + std::string(info.name) + "' is not known at stage '" +
                  std::string(stage_name(use.stage)) + "' (it is known from stage '" +
                  std::string(stage_name(info.stage)) + "' on)";
    }
    if (message.empty()) return true;
    errors.report(where, std::move(message));
    return false;
}

std::string list_mismatch(ListKind kind, const Operand& lhs, std::string_view list) {
    const FieldInfo& info = field_info(lhs.field);
    if (list_matches_type(kind, info.type)) return "";
    return field_with_type(info) + " cannot be looked up in " + std::string(list);
}

std::optional<ListKind> inline_list_kind(ValueType type) {
    switch (type) {
        case ValueType::ip: return ListKind::ip;
        case ValueType::domain:
        case ValueType::name: return ListKind::domain;
        case ValueType::address: return ListKind::address;
        case ValueType::string:
        case ValueType::result: return ListKind::string;
        case ValueType::number:
        case ValueType::size:
        case ValueType::boolean: break;
    }
    return std::nullopt;
}

bool is_valid_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

bool is_header_name(std::string_view name) {
    return !name.empty() &&
           std::all_of(name.begin(), name.end(), [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

}  // namespace portcullis::policy
