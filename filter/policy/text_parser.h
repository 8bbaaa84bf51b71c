/*
 * text_parser.h: reply, log and header texts with field references.
 *
 * parse_template() splits the text of a string token into literal pieces
 * and field references: ${name}, or ${name("argument")} (the quotes are
 * optional) for fields that take one, as in ${header("Subject")}.  $$ is
 * a literal '$'; any other '$' is an error.  Each field is checked for
 * the rule as condition fields are, and errors point at their column in
 * the policy file.
 */
#pragma once

#include <string_view>

#include "policy/checks.h"
#include "policy/cursor.h"

namespace portcullis::policy {

Template parse_template(TokenCursor& cursor, const Token& text, const FieldUse& use);

/* Append literal TEXT to TEMPLATE, joining it to a literal piece before. */
void append_literal(Template& text, std::string_view literal);

}  // namespace portcullis::policy
