/*
 * parser.cc: statements, rules and action arguments (see parser.h;
 * conditions are in condition_parser.cc, texts in text_parser.cc).
 *
 *   file       := { statement }
 *   statement  := 'list' NAME KIND ( '{' ITEM ... '}' | 'file' STRING )
 *               | 'map' NAME 'file' STRING
 *               | 'include' STRING
 *               | 'on' STAGE '{' { rule } '}'
 *   rule       := [ 'monitor' ] ACTION ARGUMENTS [ 'if' condition ]
 *
 * Every statement and rule ends at a line end (a rule also at the '}'
 * of its block).
 */
#include "policy/parser.h"

#include <algorithm>
#include <climits>

#include "policy/checks.h"
#include "policy/condition_parser.h"
#include "policy/text_parser.h"
#include "util/text.h"

namespace portcullis::policy {

namespace {

constexpr std::string_view kStatements[] = {"list", "map", "include", "on"};
constexpr std::string_view kGreylistKeys[] = {"delay", "window", "expire", "awl", "by"};

bool starts_with_digit(const Token& token) {
    return token.kind == TokenKind::word && !token.text.empty() && token.text[0] >= '0' && token.text[0] <= '9';
}

bool is_statement_keyword(const Token& token) {
    return std::any_of(std::begin(kStatements), std::end(kStatements),
                       [&](std::string_view keyword) { return token.is_word(keyword); });
}

std::string stage_list(unsigned stages) {
    std::string list;
    for (const Stage stage : kAllStages) {
        if (!(stages & (1u << static_cast<unsigned>(stage)))) continue;
        list += (list.empty() ? "" : ", ") + std::string(stage_name(stage));
    }
    return list;
}

/* The bucket a ratelimit rule counts in unless it says 'as NAME':
 * "auth.user:200/1h,1000/1d", "(client.ip,sender.domain):60/1m". */
std::string bucket_name(const RatelimitParams& params) {
    std::string key;
    for (const Operand& field : params.key) {
        if (!key.empty()) key += ',';
        key += field.text;
        if (!field.argument.empty()) key += "(\"" + field.argument + "\")";
    }
    if (params.key.size() > 1) {
        key.insert(0, 1, '(');
        key += ')';
    }
    std::string rates;
    for (const Rate& rate : params.rates) {
        if (!rates.empty()) rates += ',';
        rates += rate_text(rate);
    }
    return key + ":" + rates;
}

/* The reply an action gives when the rule writes none. */
Reply default_reply(ActionKind action, Stage stage) {
    Reply reply;
    switch (action) {
        case ActionKind::reject:
            reply.code = stage == Stage::connect ? "554" : "550";
            append_literal(reply.text, "Rejected by policy");
            break;
        case ActionKind::tempfail:
            reply.code = "451";
            append_literal(reply.text, "Try again later");
            break;
        case ActionKind::greylist:
            reply.code = "451";
            append_literal(reply.text, "Greylisted, please try again in ");
            reply.text.pieces.push_back({true, "", FieldId::greylist_wait, "", {}});
            append_literal(reply.text, " seconds");
            break;
        case ActionKind::ratelimit:
            reply.code = "450";
            append_literal(reply.text, "Rate limit exceeded, try again later");
            break;
        default: break;
    }
    reply.xcode = reply.code.substr(0, 1) + ".7.1";
    return reply;
}

/* The first digits of reply codes an action may give. */
std::string_view code_classes(ActionKind action) {
    switch (action) {
        case ActionKind::reject: return "5";
        case ActionKind::tempfail: return "4";
        default: return "45";
    }
}

class Parser {
public:
    Parser(TokenCursor& cursor, PolicyBuilder& builder) : cursor_(cursor), builder_(builder) {}

    void run();

private:
    void statement();
    void end_of_statement();
    Definition definition(std::string_view what);
    std::string path();
    void list_statement(const Token& keyword);
    void map_statement(const Token& keyword);
    void on_statement();
    bool block(Stage stage, const Token& open);
    void rule(Stage stage);
    void arguments(Rule& rule, const FieldUse& use);
    Template text(const FieldUse& use);
    Template required_text(const FieldUse& use, std::string_view what);
    void reply(Rule& rule, const FieldUse& use);
    void check_reply_code(const Token& code, ActionKind action);
    void check_enhanced_code(const Token& xcode, std::string_view code);
    void greylist(Rule& rule);
    void ratelimit(Rule& rule, const FieldUse& use);
    std::vector<Operand> ratelimit_key(const FieldUse& use);
    Rate rate(const Token& token);
    void add_header(Rule& rule, const FieldUse& use);

    TokenCursor& cursor_;
    PolicyBuilder& builder_;
};

void Parser::run() {
    while (!cursor_.errors().full()) {
        try {
            if (cursor_.peek().kind == TokenKind::end) return;
            statement();
        } catch (const SyntaxError&) {
            cursor_.recover();
        }
    }
}

void Parser::statement() {
    const Token& token = cursor_.next();
    if (token.kind == TokenKind::newline) return;
    if (token.is_word("list")) {
        list_statement(token);
    } else if (token.is_word("map")) {
        map_statement(token);
    } else if (token.is_word("include")) {
        builder_.include(path(), cursor_.where(token));
        end_of_statement();
    } else if (token.is_word("on")) {
        on_statement();
    } else if (token.kind == TokenKind::word && (find_action(token.text) || token.is_word("monitor"))) {
        cursor_.fail(token, "rule outside an 'on STAGE { ... }' block");
    } else if (token.kind == TokenKind::word) {
        const std::vector<std::string> keywords(std::begin(kStatements), std::end(kStatements));
        cursor_.fail(token, unknown_word_message("statement", token.text, keywords));
    } else {
        cursor_.fail(token, "unexpected " + describe(token) + " (expected list, map, include or on)");
    }
}

void Parser::end_of_statement() {
    const Token& token = cursor_.peek();
    if (token.kind == TokenKind::newline) cursor_.next();
    else if (token.kind != TokenKind::end) cursor_.unexpected("the end of the line");
}

/* A list or map name. */
Definition Parser::definition(std::string_view what) {
    const Token& name = cursor_.peek();
    if (name.kind != TokenKind::word) cursor_.unexpected(what);
    cursor_.next();
    if (!is_valid_name(name.text)) {
        cursor_.error(name, in_quotes(name.text) + " is not a valid name: use letters, digits, '_' and '-'");
    }
    return {to_lower(name.text), cursor_.where(name)};
}

std::string Parser::path() {
    if (cursor_.peek().kind != TokenKind::string) cursor_.unexpected("a file name in quotes");
    return cursor_.next().text;
}

void Parser::list_statement(const Token& keyword) {
    const Definition name = definition("a list name");
    const Token& kind_token = cursor_.peek();
    if (kind_token.kind != TokenKind::word) cursor_.unexpected("a list kind: ip, domain, address, regex or string");
    cursor_.next();
    const auto kind = parse_list_kind(kind_token.text);
    if (!kind) cursor_.fail(kind_token, unknown_word_message("list kind", kind_token.text, list_kind_names()));
    if (cursor_.accept_word("file")) {
        builder_.define_list_file(name, *kind, path(), cursor_.where(keyword));
        end_of_statement();
        return;
    }
    cursor_.skip_newlines();
    if (!cursor_.peek().is_punct('{')) cursor_.unexpected("'{' or 'file'");
    auto list = std::make_shared<List>(*kind);
    for (const Token* item : parse_list_braces(cursor_)) {
        add_list_item(*list, *item, cursor_.where(*item), cursor_.errors());
    }
    builder_.define_list(name, std::move(list));
    end_of_statement();
}

void Parser::map_statement(const Token& keyword) {
    const Definition name = definition("a map name");
    if (!cursor_.accept_word("file")) cursor_.unexpected("'file' and a file name in quotes");
    builder_.define_map_file(name, path(), cursor_.where(keyword));
    end_of_statement();
}

void Parser::on_statement() {
    const Token& name = cursor_.peek();
    if (name.kind != TokenKind::word) cursor_.unexpected("a stage: connect, helo, mail, rcpt or eom");
    cursor_.next();
    const auto stage = parse_stage(name.text);
    if (!stage) {   // recover() then skips the block
        std::vector<std::string> stages;
        for (const Stage candidate : kAllStages) stages.emplace_back(stage_name(candidate));
        cursor_.fail(name, unknown_word_message("stage", name.text, stages));
    }
    cursor_.skip_newlines();
    if (!cursor_.peek().is_punct('{')) cursor_.unexpected("'{'");
    if (block(*stage, cursor_.next())) end_of_statement();
}

/* The rules of one block, after its '{', up to its '}'; false if the
 * block is not closed (reported at OPEN). */
bool Parser::block(Stage stage, const Token& open) {
    while (!cursor_.errors().full()) {
        try {
            cursor_.skip_newlines();
            if (cursor_.accept_punct('}')) return true;
            const Token& next = cursor_.peek();
            // A statement where a rule should be: the '}' was forgotten.
            if (next.kind == TokenKind::end || is_statement_keyword(next)) break;
            rule(stage);
        } catch (const SyntaxError&) {
            cursor_.recover();
        }
    }
    cursor_.error(open, "unclosed '{'");
    return false;
}

void Parser::rule(Stage stage) {
    Rule rule;
    rule.where = cursor_.where(cursor_.peek());
    rule.stage = stage;
    rule.monitor = cursor_.accept_word("monitor");
    const Token& name = cursor_.peek();
    if (name.kind != TokenKind::word) cursor_.unexpected("an action");
    const ActionRules* action = find_action(name.text);
    if (!action) cursor_.fail(name, unknown_word_message("action", name.text, action_names()));
    cursor_.next();
    rule.action = action->kind;
    const std::string action_text = in_quotes(action_name(action->kind));
    if (!(action->stages & (1u << static_cast<unsigned>(stage)))) {
        cursor_.error(name, "action " + action_text + " is not allowed at stage " + in_quotes(stage_name(stage)) +
                                " (only at " + stage_list(action->stages) + ")");
    }

    const FieldUse use{stage, action->kind, false};
    arguments(rule, use);
    std::vector<ListReference> references;
    if (cursor_.accept_word("if")) rule.condition = parse_condition(cursor_, use, references);
    if (!cursor_.at_rule_end()) {
        cursor_.unexpected(rule.condition ? "'and', 'or' or the end of the rule" : "'if' or the end of the rule");
    }
    builder_.add_rule(std::move(rule), std::move(references));
}

void Parser::arguments(Rule& rule, const FieldUse& use) {
    switch (rule.action) {
        case ActionKind::accept:
        case ActionKind::discard: break;
        case ActionKind::reject:
        case ActionKind::tempfail: reply(rule, use); break;
        case ActionKind::quarantine:
            rule.text = text(use);
            if (rule.text.empty()) append_literal(rule.text, "Quarantined by policy");
            break;
        case ActionKind::greylist:
            greylist(rule);
            reply(rule, use);
            break;
        case ActionKind::ratelimit: ratelimit(rule, use); break;
        case ActionKind::add_header: add_header(rule, use); break;
        case ActionKind::log: rule.text = required_text(use, "the text to log in quotes"); break;
    }
}

/* An optional "TEXT". */
Template Parser::text(const FieldUse& use) {
    if (cursor_.peek().kind != TokenKind::string) return {};
    return parse_template(cursor_, cursor_.next(), use);
}

Template Parser::required_text(const FieldUse& use, std::string_view what) {
    if (cursor_.peek().kind != TokenKind::string) cursor_.unexpected(what);
    return text(use);
}

/* [CODE] [XCODE] [TEXT], each defaulted for the action when absent. */
void Parser::reply(Rule& rule, const FieldUse& use) {
    rule.reply = default_reply(rule.action, rule.stage);
    if (starts_with_digit(cursor_.peek()) && cursor_.peek().text.find('.') == std::string::npos) {
        const Token& code = cursor_.next();
        check_reply_code(code, rule.action);
        rule.reply.code = code.text;
        rule.reply.xcode = code.text.substr(0, 1) + ".7.1";
    }
    if (starts_with_digit(cursor_.peek())) {
        const Token& xcode = cursor_.next();
        check_enhanced_code(xcode, rule.reply.code);
        rule.reply.xcode = xcode.text;
    }
    FieldUse reply_use = use;
    reply_use.in_reply_text = true;
    if (cursor_.peek().kind == TokenKind::string) rule.reply.text = text(reply_use);
}

void Parser::check_reply_code(const Token& code, ActionKind action) {
    if (!is_digits(code.text, 3, 3)) {
        cursor_.error(code, in_quotes(code.text) + " is not a reply code: write three digits, as in 550");
        return;
    }
    const std::string_view classes = code_classes(action);
    if (classes.find(code.text[0]) != std::string_view::npos) return;
    const std::string wanted = classes.size() == 1 ? std::string(classes) + "xx" : "4xx or 5xx";
    cursor_.error(code, in_quotes(action_name(action)) + " needs a " + wanted + " reply code, not " + code.text);
}

void Parser::check_enhanced_code(const Token& xcode, std::string_view code) {
    if (!is_enhanced_code(xcode.text)) {
        cursor_.error(xcode,
                      in_quotes(xcode.text) + " is not an enhanced status code: write CLASS.SUBJECT.DETAIL, as in 5.7.1");
    } else if (!code.empty() && xcode.text[0] != code[0]) {
        cursor_.error(xcode, "enhanced status code " + xcode.text + " does not match reply code " + std::string(code));
    }
}

/* delay D, window D, expire D, awl N, by host|subnet, in any order. */
void Parser::greylist(Rule& rule) {
    GreylistParams& params = rule.greylist;
    Millis* const durations[] = {&params.delay, &params.window, &params.expire};
    unsigned seen = 0;
    const Token* timing = nullptr;   // the last delay or window given
    while (true) {
        const Token& key = cursor_.peek();
        const auto found = std::find_if(std::begin(kGreylistKeys), std::end(kGreylistKeys),
                                        [&](std::string_view candidate) { return key.is_word(candidate); });
        if (found == std::end(kGreylistKeys)) break;
        const auto index = static_cast<size_t>(found - std::begin(kGreylistKeys));
        cursor_.next();
        if (seen & (1u << index)) cursor_.error(key, in_quotes(*found) + " is given twice");
        seen |= 1u << index;
        if (cursor_.peek().kind != TokenKind::word) cursor_.unexpected("a value after " + in_quotes(*found));
        const Token& value = cursor_.next();
        if (index < std::size(durations)) {
            if (!key.is_word("expire")) timing = &key;
            const auto duration = parse_duration(value.text);
            if (!duration) {
                cursor_.error(value, in_quotes(value.text) + " is not a duration, as in 30s, 5m, 2h, 3d or 1w");
            } else if (*duration > kMaxStoredDuration) {
                cursor_.error(value, in_quotes(value.text) + " is longer than " +
                                         format_duration(kMaxStoredDuration) + ", the longest a record is kept");
            } else {
                *durations[index] = *duration;
            }
        } else if (key.is_word("awl")) {
            const auto count = parse_decimal<uint64_t>(value.text);
            if (count && *count <= UINT_MAX) params.awl = static_cast<unsigned>(*count);
            else cursor_.error(value, in_quotes(value.text) + " is not a number");
        } else if (value.is_word("host") || value.is_word("subnet")) {
            params.by_host = value.is_word("host");
        } else {
            cursor_.error(value, "'by' takes host or subnet, not " + in_quotes(value.text));
        }
    }
    // A retry must be able to come after the delay and inside the window.
    if (timing && params.delay >= params.window) {
        cursor_.error(*timing, "greylist delay " + format_duration(params.delay) + " must be shorter than window " +
                                   format_duration(params.window));
    }
}

/* KEY RATE [RATE ...] [as NAME], then the reply. */
void Parser::ratelimit(Rule& rule, const FieldUse& use) {
    RatelimitParams& params = rule.ratelimit;
    params.key = ratelimit_key(use);
    // A rate has a '/': the words that follow may be a reply code.
    while (starts_with_digit(cursor_.peek()) && cursor_.peek().text.find('/') != std::string::npos) {
        params.rates.push_back(rate(cursor_.next()));
    }
    if (params.rates.empty()) cursor_.unexpected("a rate such as 200/1h");
    if (cursor_.accept_word("as")) {
        params.bucket = definition("a bucket name").name;
    } else {
        params.bucket = bucket_name(params);
    }
    reply(rule, use);
}

/* A field, or a tuple of fields in parentheses. */
std::vector<Operand> Parser::ratelimit_key(const FieldUse& use) {
    if (!cursor_.peek().is_punct('(')) return {parse_field_operand(cursor_, use)};
    const Token& open = cursor_.next();
    cursor_.enter();
    std::vector<Operand> key{parse_field_operand(cursor_, use)};
    while (cursor_.accept_punct(',')) key.push_back(parse_field_operand(cursor_, use));
    cursor_.expect_close(open, ')');
    cursor_.leave();
    return key;
}

/* COUNT/PERIOD with a COUNT of at least 1 and a PERIOD above zero. */
Rate Parser::rate(const Token& token) {
    const size_t slash = token.text.find('/');
    const auto count = parse_decimal<uint64_t>(std::string_view(token.text).substr(0, slash));
    const Millis period = slash == std::string::npos
                              ? Millis::zero()
                              : parse_duration(token.text.substr(slash + 1)).value_or(Millis::zero());
    if (!count || *count == 0 || period <= Millis::zero()) {
        cursor_.error(token, in_quotes(token.text) +
                                 " is not a rate: write COUNT/PERIOD with a COUNT of at least 1 and a PERIOD above "
                                 "zero, as in 200/1h");
        return {};
    }
    if (period > kMaxStoredDuration) {
        cursor_.error(token, in_quotes(token.text) + " counts over more than " + format_duration(kMaxStoredDuration) +
                                 ", the longest a record is kept");
        return {};
    }
    return {*count, period};
}

/* NAME TEXT */
void Parser::add_header(Rule& rule, const FieldUse& use) {
    const Token& name = cursor_.peek();
    if (name.kind != TokenKind::word && name.kind != TokenKind::string) cursor_.unexpected("a header name");
    cursor_.next();
    if (!is_header_name(name.text)) cursor_.error(name, in_quotes(name.text) + " is not a header name");
    rule.header_name = name.text;
    rule.text = required_text(use, "the header's text in quotes");
}

}  // namespace

void parse_policy_file(TokenCursor& cursor, PolicyBuilder& builder) { Parser(cursor, builder).run(); }

std::vector<const Token*> parse_list_braces(TokenCursor& cursor) {
    const Token& open = cursor.next();
    cursor.enter();
    std::vector<const Token*> items;
    while (!cursor.accept_punct('}')) {
        const Token& item = cursor.peek();
        if (item.kind == TokenKind::end) cursor.fail(open, "unclosed '{'");
        if (item.kind != TokenKind::word && item.kind != TokenKind::string && item.kind != TokenKind::regex &&
            !item.is_punct(',')) {
            cursor.unexpected("a list item or '}'");
        }
        cursor.next();
        if (!item.is_punct(',')) items.push_back(&item);
    }
    cursor.leave();
    return items;
}

void add_list_item(List& list, const Token& item, const SourceLocation& where, ErrorSink& errors) {
    const bool regex_list = list.kind() == ListKind::regex;
    const std::string kind(list_kind_name(list.kind()));
    if (regex_list && item.kind != TokenKind::regex) {
        errors.report(where, "a regex list takes /regex/ items, not " + describe(item));
    } else if (!regex_list && item.kind == TokenKind::regex) {
        errors.report(where, "a " + kind + " list takes no /regex/ items");
    } else if (std::string problem = list.add(item.text, item.caseless); !problem.empty()) {
        errors.report(where, std::move(problem));
    }
}

}  // namespace portcullis::policy
