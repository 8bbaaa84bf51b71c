/*
 * condition_parser.h: the condition after 'if', and field operands.
 *
 * parse_condition() reads a condition (or, and, not, parentheses,
 * comparisons, matches and list, map and dnsbl look-ups) into a
 * Condition tree, checking each field against the rule's stage and each
 * value against the field's type.  In a comparison with one field, the
 * field is always made the left side (5 < rcpt.count becomes
 * rcpt.count > 5).  Named lists and maps are not resolved here: each
 * condition that names one is appended to REFERENCES for the loader.
 */
#pragma once

#include <memory>
#include <vector>

#include "policy/checks.h"
#include "policy/cursor.h"
#include "policy/parser.h"

namespace portcullis::policy {

std::unique_ptr<Condition> parse_condition(TokenCursor& cursor, const FieldUse& use,
                                           std::vector<ListReference>& references);

/* A field written alone, as a ratelimit key: NAME or NAME("ARGUMENT"). */
Operand parse_field_operand(TokenCursor& cursor, const FieldUse& use);

}  // namespace portcullis::policy
