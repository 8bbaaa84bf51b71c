/*
 * condition_parser.cc: conditions and their type checks (see
 * condition_parser.h).
 *
 *   condition  := all_of { 'or' all_of }
 *   all_of     := negation { 'and' negation }
 *   negation   := 'not' negation | primary
 *   primary    := '(' condition ')' | term [ OP term | =~ REGEX | 'in' SET ]
 *   SET        := NAME | NAME '[' term ']' | '{' ITEM ... '}' | 'dnsbl' STRING
 *   term       := FIELD | FIELD '(' STRING ')' | WORD | STRING
 *
 * A term is read before its meaning is known: a word that names a field
 * is that field; any other word or string is a literal, interpreted by
 * the type of the field it is compared with.
 */
#include "policy/condition_parser.h"

#include <re2/re2.h>

#include <optional>
#include <utility>

#include "util/text.h"

namespace portcullis::policy {

namespace {

/* An operand as written, before its meaning is known. */
struct Term {
    const Token* token = nullptr;      // the word or string
    const FieldInfo* field = nullptr;  // when the word names a field
    std::string argument;              // header("Name"), dnsbl("zone")
};

/* How values of a type compare: only within one group. */
enum class Group { ip, numeric, text, boolean };

Group group_of(ValueType type) {
    switch (type) {
        case ValueType::ip: return Group::ip;
        case ValueType::number:
        case ValueType::size: return Group::numeric;
        case ValueType::boolean: return Group::boolean;
        case ValueType::string:
        case ValueType::name:
        case ValueType::address:
        case ValueType::domain:
        case ValueType::result: break;
    }
    return Group::text;
}

struct OperatorSpelling {
    std::string_view text;
    Condition::Op op;
    Condition::Op mirrored;   // the operator with its sides swapped
};
constexpr OperatorSpelling kOperators[] = {
    {"==", Condition::Op::eq, Condition::Op::eq}, {"!=", Condition::Op::ne, Condition::Op::ne},
    {"<", Condition::Op::lt, Condition::Op::gt},  {">", Condition::Op::gt, Condition::Op::lt},
    {"<=", Condition::Op::le, Condition::Op::ge}, {">=", Condition::Op::ge, Condition::Op::le},
};

bool is_ordering(Condition::Op op) { return op != Condition::Op::eq && op != Condition::Op::ne; }

/* A word that could only have been meant as a field name. */
bool looks_like_name(const Term& term) {
    const std::string& text = term.token->text;
    return term.token->kind == TokenKind::word && !text.empty() &&
           ((text[0] >= 'a' && text[0] <= 'z') || (text[0] >= 'A' && text[0] <= 'Z'));
}

bool is_reserved(const Token& token) {
    return token.is_word("and") || token.is_word("or") || token.is_word("not") || token.is_word("in") ||
           token.is_word("if");
}

/* Bounds that keep parsing, evaluating and freeing one condition within a
 * small stack whatever a file holds: each '(' or 'not' is a level of
 * parser recursion, and each node can add a level to the tree the
 * evaluator walks recursively. */
constexpr unsigned kMaxNesting = 64;
constexpr unsigned kMaxConditionNodes = 1000;

class ConditionParser {
public:
    ConditionParser(TokenCursor& cursor, const FieldUse& use, std::vector<ListReference>& references)
        : cursor_(cursor), use_(use), references_(references) {}

    std::unique_ptr<Condition> any_of() { return binary(Condition::Kind::any_of, "or", &ConditionParser::all_of); }
    Term term();
    Operand field_operand(const Term& term) const;
    void not_a_field(const Term& term, std::string_view otherwise);

private:
    using Level = std::unique_ptr<Condition> (ConditionParser::*)();
    std::unique_ptr<Condition> binary(Condition::Kind kind, std::string_view word, Level operand);
    std::unique_ptr<Condition> all_of() { return binary(Condition::Kind::all_of, "and", &ConditionParser::negation); }
    std::unique_ptr<Condition> negation();
    std::unique_ptr<Condition> primary();
    std::unique_ptr<Condition> truth(const Term& term);
    std::unique_ptr<Condition> comparison(Term lhs);
    std::unique_ptr<Condition> match(const Term& lhs);
    std::unique_ptr<Condition> membership(const Term& lhs);
    void inline_list(Condition& condition, bool has_lhs);
    void map_lookup(Condition& condition, bool has_lhs);
    void dnsbl_lookup(Condition& condition, bool has_lhs);

    std::string parenthesized_argument();
    bool usable_field(const Term& term);
    Operand literal_operand(const Term& term, const FieldInfo& field);
    void check_result_word(const FieldInfo& field, const Token& token);
    std::unique_ptr<Condition> make(Condition::Kind kind, const Token& token) const;

    /* One level of '(' or 'not', refused past kMaxNesting. */
    class Nesting {
    public:
        Nesting(ConditionParser& parser, const Token& token) : parser_(parser) {
            if (++parser_.nesting_ > kMaxNesting) {
                parser_.cursor_.fail(token, "condition nested too deeply (more than " + std::to_string(kMaxNesting) +
                                                " levels of parentheses and 'not')");
            }
        }
        ~Nesting() { --parser_.nesting_; }
        Nesting(const Nesting&) = delete;
        Nesting& operator=(const Nesting&) = delete;

    private:
        ConditionParser& parser_;
    };

    TokenCursor& cursor_;
    const FieldUse& use_;
    std::vector<ListReference>& references_;
    unsigned nesting_ = 0;
    mutable unsigned nodes_ = 0;
};

std::unique_ptr<Condition> ConditionParser::make(Condition::Kind kind, const Token& token) const {
    if (++nodes_ > kMaxConditionNodes) {
        cursor_.fail(token, "condition too long (more than " + std::to_string(kMaxConditionNodes) +
                                " terms): put the values in a list");
    }
    auto condition = std::make_unique<Condition>();
    condition->kind = kind;
    condition->where = cursor_.where(token);
    return condition;
}

/* OPERAND { WORD OPERAND }, left-associative. */
std::unique_ptr<Condition> ConditionParser::binary(Condition::Kind kind, std::string_view word, Level operand) {
    auto left = (this->*operand)();
    while (cursor_.peek().is_word(word)) {
        auto joined = make(kind, cursor_.next());
        joined->left = std::move(left);
        joined->right = (this->*operand)();
        left = std::move(joined);
    }
    return left;
}

std::unique_ptr<Condition> ConditionParser::negation() {
    if (!cursor_.peek().is_word("not")) return primary();
    const Nesting level(*this, cursor_.peek());
    auto condition = make(Condition::Kind::negation, cursor_.next());
    condition->left = negation();
    return condition;
}

std::unique_ptr<Condition> ConditionParser::primary() {
    if (cursor_.peek().is_punct('(')) {
        const Nesting level(*this, cursor_.peek());
        const Token& open = cursor_.next();
        cursor_.enter();
        auto inner = any_of();
        cursor_.expect_close(open, ')');
        cursor_.leave();
        return inner;
    }
    const Term lhs = term();
    const Token& next = cursor_.peek();
    if (next.kind == TokenKind::op) return next.text.back() == '~' ? match(lhs) : comparison(lhs);
    if (next.is_word("in")) return membership(lhs);
    return truth(lhs);
}

Term ConditionParser::term() {
    const Token& token = cursor_.peek();
    if (token.kind == TokenKind::string) return Term{&cursor_.next(), nullptr, {}};
    if (token.kind != TokenKind::word || is_reserved(token)) cursor_.unexpected("a field or a value");
    cursor_.next();
    Term term{&token, find_field(token.text), {}};
    std::optional<std::string> argument;
    if (cursor_.peek().is_punct('(')) argument = parenthesized_argument();
    if (!term.field) {
        if (argument) cursor_.fail(token, unknown_field_message(token.text));
        return term;
    }
    const std::string problem = field_argument_error(*term.field, argument);
    if (!problem.empty()) {
        cursor_.error(token, problem);
    } else {
        check_field_use(*term.field, use_, cursor_.where(token), cursor_.errors());
    }
    term.argument = argument.value_or("");
    return term;
}

/* ( "ARGUMENT" ) or ( ARGUMENT ), after a field name. */
std::string ConditionParser::parenthesized_argument() {
    const Token& open = cursor_.next();
    cursor_.enter();
    const Token& value = cursor_.peek();
    if (value.kind != TokenKind::string && value.kind != TokenKind::word) cursor_.unexpected("an argument");
    cursor_.next();
    cursor_.expect_close(open, ')');
    cursor_.leave();
    return value.text;
}

Operand ConditionParser::field_operand(const Term& term) const {
    Operand operand;
    operand.kind = Operand::Kind::field;
    operand.where = cursor_.where(*term.token);
    operand.field = term.field->id;
    operand.argument = term.argument;
    operand.text = term.field->name;
    return operand;
}

/* TERM should have been a field: say what it is instead. */
void ConditionParser::not_a_field(const Term& term, std::string_view otherwise) {
    cursor_.error(*term.token,
                  looks_like_name(term) ? unknown_field_message(term.token->text) : std::string(otherwise));
}

/* A field that may stand in a comparison or look-up: any but a boolean. */
bool ConditionParser::usable_field(const Term& term) {
    if (term.field->type != ValueType::boolean) return true;
    const std::string name(term.field->name);
    cursor_.error(*term.token, "field '" + name + "' is a boolean: use it alone, as in 'if " + name + "' or 'if not " +
                                   name + "'");
    return false;
}

Operand ConditionParser::literal_operand(const Term& term, const FieldInfo& field) {
    const Token& token = *term.token;
    Operand operand;
    operand.where = cursor_.where(token);
    operand.text = token.text;
    const auto fail_type = [&](std::string_view type) {
        cursor_.error(token, in_quotes(token.text) + " is not " + std::string(type));
    };
    switch (field.type) {
        case ValueType::ip:
            operand.kind = Operand::Kind::ip;
            if (const auto ip = parse_ip(token.text)) operand.ip = *ip;
            else fail_type("an IP address");
            break;
        case ValueType::number: {
            operand.kind = Operand::Kind::number;
            const auto duration = parse_duration(token.text);   // a bare number is seconds
            const bool whole_seconds = duration && duration->count() % 1000 == 0;
            if (whole_seconds) operand.number = static_cast<uint64_t>(duration->count() / 1000);
            else fail_type("a number");
            break;
        }
        case ValueType::size:
            operand.kind = Operand::Kind::number;
            if (const auto size = parse_size(token.text)) operand.number = *size;
            else fail_type("a size");
            break;
        case ValueType::result:
            operand.kind = Operand::Kind::word;
            operand.text = to_lower(token.text);
            check_result_word(field, token);
            break;
        default: operand.kind = Operand::Kind::string;
    }
    return operand;
}

/* A result field takes only the words it can have. */
void ConditionParser::check_result_word(const FieldInfo& field, const Token& token) {
    const std::string word = to_lower(token.text);
    std::vector<std::string> words(field.words.begin(), field.words.end());
    if (words.empty() || std::find(words.begin(), words.end(), word) != words.end()) return;
    cursor_.error(token, unknown_word_message(std::string(field.name) + " value", token.text, words));
}

std::unique_ptr<Condition> ConditionParser::truth(const Term& term) {
    auto condition = make(Condition::Kind::truth, *term.token);
    if (!term.field) {
        not_a_field(term, "unexpected " + describe(*term.token) + " (expected a condition)");
    } else if (term.field->type != ValueType::boolean) {
        cursor_.error(*term.token, "field '" + std::string(term.field->name) + "' is not a boolean: compare it");
    } else {
        condition->lhs = field_operand(term);
    }
    return condition;
}

std::unique_ptr<Condition> ConditionParser::comparison(Term lhs) {
    auto condition = make(Condition::Kind::compare, *lhs.token);
    const Token& op_token = cursor_.next();
    const auto spelling =
        std::find_if(std::begin(kOperators), std::end(kOperators),
                     [&](const OperatorSpelling& candidate) { return candidate.text == op_token.text; });
    condition->op = spelling->op;
    Term rhs = term();
    if (!lhs.field && rhs.field) {   // the field goes left: 5 < rcpt.count is rcpt.count > 5
        std::swap(lhs, rhs);
        condition->op = spelling->mirrored;
    }
    if (!lhs.field) {
        not_a_field(looks_like_name(lhs) || !looks_like_name(rhs) ? lhs : rhs,
                    "a comparison needs a field on one side");
        return condition;
    }
    if (!usable_field(lhs) || (rhs.field && !usable_field(rhs))) return condition;
    const FieldInfo& field = *lhs.field;
    condition->lhs = field_operand(lhs);
    if (is_ordering(condition->op) && group_of(field.type) != Group::numeric) {
        cursor_.error(op_token, in_quotes(op_token.text) + " compares numbers and sizes, and " + field_with_type(field) +
                                    " is neither");
    } else if (rhs.field && group_of(rhs.field->type) != group_of(field.type)) {
        cursor_.error(op_token, "cannot compare " + field_with_type(field) + " with " + field_with_type(*rhs.field));
    } else {
        condition->rhs = rhs.field ? field_operand(rhs) : literal_operand(rhs, field);
    }
    return condition;
}

std::unique_ptr<Condition> ConditionParser::match(const Term& lhs) {
    auto condition = make(Condition::Kind::match, *lhs.token);
    const Token& op_token = cursor_.next();
    condition->negated = op_token.text == "!~";
    if (cursor_.peek().kind != TokenKind::regex) cursor_.unexpected("a /regex/ after " + in_quotes(op_token.text));
    const Token& regex = cursor_.next();
    if (!lhs.field) {
        not_a_field(lhs, "the left side of " + in_quotes(op_token.text) + " must be a field");
    } else if (usable_field(lhs)) {
        condition->lhs = field_operand(lhs);
    }
    std::string error;
    condition->regex = compile_regex(regex.text, regex.caseless, error);
    if (!condition->regex) cursor_.error(regex, error);
    return condition;
}

std::unique_ptr<Condition> ConditionParser::membership(const Term& lhs) {
    auto condition = make(Condition::Kind::in_list, *lhs.token);
    cursor_.next();   // in
    const bool has_lhs = lhs.field && usable_field(lhs);
    if (!lhs.field) not_a_field(lhs, "the left side of 'in' must be a field");
    if (has_lhs) condition->lhs = field_operand(lhs);

    const Token& set = cursor_.peek();
    if (set.is_punct('{')) {
        inline_list(*condition, has_lhs);
        return condition;
    }
    if (set.kind != TokenKind::word) cursor_.unexpected("a list name, '{' or 'dnsbl' after 'in'");
    cursor_.next();
    if (set.is_word("dnsbl") && cursor_.peek().kind == TokenKind::string) {
        dnsbl_lookup(*condition, has_lhs);
        return condition;
    }
    if (cursor_.peek().is_punct('[')) map_lookup(*condition, has_lhs);
    if (!is_valid_name(set.text)) {
        cursor_.error(set, in_quotes(set.text) + " is not a list or map name");
    } else if (has_lhs) {
        references_.push_back({condition.get(), to_lower(set.text), cursor_.where(set)});
    }
    return condition;
}

void ConditionParser::inline_list(Condition& condition, bool has_lhs) {
    const auto items = parse_list_braces(cursor_);
    if (!has_lhs) return;
    const FieldInfo& field = field_info(condition.lhs.field);
    const bool all_regexes = !items.empty() && std::all_of(items.begin(), items.end(), [](const Token* item) {
        return item->kind == TokenKind::regex;
    });
    const auto kind = all_regexes ? ListKind::regex : inline_list_kind(field.type);
    if (!kind) {
        cursor_.error(condition.where, field_with_type(field) + " cannot be looked up in a list");
        return;
    }
    auto list = std::make_shared<List>(*kind);
    for (const Token* item : items) {
        add_list_item(*list, *item, cursor_.where(*item), cursor_.errors());
        if (field.type == ValueType::result && item->kind != TokenKind::regex) check_result_word(field, *item);
    }
    condition.list = std::move(list);
}

/* NAME[KEY], after NAME. */
void ConditionParser::map_lookup(Condition& condition, bool has_lhs) {
    condition.kind = Condition::Kind::in_map;
    const Token& open = cursor_.next();
    cursor_.enter();
    const Term key = term();
    cursor_.expect_close(open, ']');
    cursor_.leave();
    if (!has_lhs) return;
    if (!key.field) {
        condition.rhs.kind = Operand::Kind::string;
        condition.rhs.where = cursor_.where(*key.token);
        condition.rhs.text = key.token->text;
    } else if (usable_field(key)) {
        condition.rhs = field_operand(key);
    }
}

/* dnsbl "ZONE", after dnsbl. */
void ConditionParser::dnsbl_lookup(Condition& condition, bool has_lhs) {
    condition.kind = Condition::Kind::in_dnsbl;
    const Token& zone = cursor_.next();
    condition.zone = zone.text;
    condition.zone_where = cursor_.where(zone);
    if (has_lhs) {
        const FieldInfo& field = field_info(condition.lhs.field);
        if (field.type != ValueType::ip && field.type != ValueType::domain && field.type != ValueType::name) {
            cursor_.error(condition.where,
                          "dnsbl lookups take an IP address or a domain, not " + field_with_type(field));
        }
    }
}

}  // namespace

std::unique_ptr<Condition> parse_condition(TokenCursor& cursor, const FieldUse& use,
                                           std::vector<ListReference>& references) {
    return ConditionParser(cursor, use, references).any_of();
}

Operand parse_field_operand(TokenCursor& cursor, const FieldUse& use) {
    std::vector<ListReference> none;
    ConditionParser parser(cursor, use, none);
    const Term term = parser.term();
    if (term.field) return parser.field_operand(term);
    parser.not_a_field(term, "expected a field, not " + describe(*term.token));
    throw SyntaxError{};   // what follows cannot be read without the key
}

}  // namespace portcullis::policy
