/*
 * ast.h: a loaded policy, as the parser builds it and the evaluator reads
 * it.
 *
 * A Policy is immutable once loaded and shared (shared_ptr<const Policy>)
 * by every session that started under it, so a reload never changes the
 * rules under a session in flight.  Rules keep their source location for
 * logs ("rule=policy.rules:31") and for `try`.  Lists and maps are owned
 * by the Policy; conditions point at them through shared pointers.
 */
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checks/greylist_settings.h"
#include "policy/fields.h"
#include "policy/lists.h"
#include "policy/stage.h"
#include "util/ip.h"
#include "util/units.h"

namespace re2 { class RE2; }

namespace portcullis::policy {

struct SourceFile {
    std::string path;         // as opened, for error messages
    std::string short_name;   // relative to the main policy file's directory, for logs
};

struct SourceLocation {
    std::shared_ptr<const SourceFile> file;
    uint32_t line = 0;
    uint32_t column = 0;

    std::string str() const;          // "path:line:column"
    std::string log_str() const;      // "short_name:line"
};

/* A value in a condition: a field (possibly with an argument, as in
 * header("Subject") or dnsbl("zone")), or a literal. */
struct Operand {
    enum class Kind { field, string, number, ip, word };
    Kind kind = Kind::string;
    SourceLocation where;
    FieldId field = FieldId::client_ip;   // field
    std::string argument;                 // field: header name or dnsbl zone
    std::string text;                     // string as written; word lower-cased
    uint64_t number = 0;                  // number; sizes in bytes, durations in seconds
    IpAddress ip;                         // ip
};

struct Condition {
    enum class Kind {
        all_of,      // left and right
        any_of,      // left or right
        negation,    // not left
        truth,       // a boolean field: lhs
        compare,     // lhs OP rhs
        match,       // lhs =~ regex, or !~ when negated
        in_list,     // lhs in a named or inline list
        in_map,      // lhs in map[rhs]
        in_dnsbl,    // lhs in dnsbl "zone"
    };
    enum class Op { eq, ne, lt, gt, le, ge };

    Kind kind = Kind::truth;
    SourceLocation where;
    std::unique_ptr<Condition> left, right;
    Operand lhs, rhs;
    Op op = Op::eq;
    bool negated = false;                      // match: !~
    std::shared_ptr<const re2::RE2> regex;     // match
    std::shared_ptr<const List> list;          // in_list (named or inline)
    std::shared_ptr<const Map> map;            // in_map
    std::string zone;                          // in_dnsbl
    SourceLocation zone_where;                 // in_dnsbl: of the zone's string
};

/* Text with ${field} references, as in reply texts, log and header text.
 * Literal pieces may hold '\n' (from the "\n" escape): the reply is then
 * sent as several lines. */
struct TemplatePiece {
    bool is_field = false;
    std::string literal;
    FieldId field = FieldId::client_ip;
    std::string argument;                 // header("..."), dnsbl("...")
    SourceLocation where;                 // a field written in the text: of its name
};
struct Template {
    std::vector<TemplatePiece> pieces;
    bool empty() const { return pieces.empty(); }
};

enum class ActionKind { accept, reject, tempfail, discard, quarantine, greylist, ratelimit, add_header, log };
std::string_view action_name(ActionKind kind);

struct Reply {
    std::string code;    // "550"; the parser fills the default when none is written
    std::string xcode;   // "5.7.1"
    Template text;
};

/* The check's settings, defaults included, are the rule's parameters. */
using GreylistParams = checks::GreylistSettings;

struct Rate {
    uint64_t count = 0;
    Millis period{0};
};

/* "200/1h": COUNT/PERIOD as the policy writes it. */
std::string rate_text(const Rate& rate);

struct RatelimitParams {
    std::vector<Operand> key;      // one field, or a tuple of fields
    std::vector<Rate> rates;
    std::string bucket;            // "as NAME", or derived from key and rates
};

struct Rule {
    SourceLocation where;
    Stage stage = Stage::connect;
    bool monitor = false;
    ActionKind action = ActionKind::accept;
    Reply reply;                   // reject, tempfail, greylist, ratelimit
    Template text;                 // quarantine reason, log text, add-header value
    std::string header_name;       // add-header
    GreylistParams greylist;
    RatelimitParams ratelimit;
    std::unique_ptr<Condition> condition;   // null: the rule always applies

    /* Whether the action ends the stage for the unit when it applies
     * (greylist and ratelimit only when they refuse). */
    bool always_terminal() const;
};

struct Policy {
    std::array<std::vector<Rule>, kStageCount> rules;
    std::map<std::string, std::shared_ptr<const List>> lists;   // by lower-case name
    std::map<std::string, std::shared_ptr<const Map>> maps;     // by lower-case name
    std::vector<std::string> files;                              // every file read, in order
    std::string digest;                                          // SHA-256 of those files' paths and texts

    const std::vector<Rule>& stage_rules(Stage stage) const { return rules[static_cast<size_t>(stage)]; }
};

}  // namespace portcullis::policy
