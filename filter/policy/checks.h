/*
 * checks.h: the load-time checks the parser and the loader share.
 *
 * Where a field may be used (its stage), where each action may, which
 * list kinds can match which field types, and what names are valid.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ast.h"
#include "policy/diagnostics.h"

namespace portcullis::policy {

/* Where a field is used: the rule's stage and action, and whether the
 * use is in the rule's reply text (the only place ${greylist.wait} has a
 * value; it is available there when the greylist action is). */
struct FieldUse {
    Stage stage = Stage::connect;
    ActionKind action = ActionKind::accept;
    bool in_reply_text = false;
};

/* What the parser knows about each action. */
struct ActionRules {
    ActionKind kind;
    unsigned stages;   // bit (1 << stage) per stage that allows it
};
/* The action named NAME (any case), or null. */
const ActionRules* find_action(std::string_view name);
std::vector<std::string> action_names();

/* "field 'client.ip' (ip)" */
std::string field_with_type(const FieldInfo& info);

/* "unknown field 'client.hots' (did you mean 'client.host'?)" */
std::string unknown_field_message(std::string_view name);
/* "(did you mean 'X'?)" with a leading space, or "" if nothing is close. */
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
/* "unknown stage 'conect' (did you mean 'connect'?)", or when nothing is
 * close "unknown stage 'x' (expected connect, helo, mail, rcpt or eom)". */
std::string unknown_word_message(std::string_view what, std::string_view word,
                                 const std::vector<std::string>& candidates);

/* Why field INFO cannot be written with ARGUMENT (nullopt: written
 * without parentheses): "field 'helo' takes no argument", "field 'header'
 * needs an argument: write header(\"...\")", "'X Y' is not a header
 * name"; "" when it can. */
std::string field_argument_error(const FieldInfo& info, const std::optional<std::string>& argument);

/* Report, at WHERE, why INFO cannot be used in USE; false if it cannot. */
bool check_field_use(const FieldInfo& info, const FieldUse& use, const SourceLocation& where, ErrorSink& errors);

/* Why field LHS cannot be looked up in a list of KIND (LIST names the
 * list in the message: "domain list 'local_domains'"), or "". */
std::string list_mismatch(ListKind kind, const Operand& lhs, std::string_view list);

/* The list kind an inline list { ... } gets from the field on its left,
 * or nullopt when such a field cannot be looked up in a list. */
std::optional<ListKind> inline_list_kind(ValueType type);

/* A list or map name: letters, digits, '_' and '-'. */
bool is_valid_name(std::string_view name);
/* A header field name: printable ASCII without ':' (RFC 5322 ftext). */
bool is_header_name(std::string_view name);

}  // namespace portcullis::policy
