/*
 * parser_test.cc: statements, rules, action arguments and their
 * defaults, conditions (every operator, precedence), texts, and the
 * parser's error messages with their FILE:LINE:COL.
 *
 * Most tests run the parser alone with a builder that records what it is
 * handed, so that rules with features this build does not have yet
 * (greylist, ratelimit) can be inspected although the load fails.  Name
 * resolution and whole loads are in loader_test.cc; the tests here that
 * need them go through parse_policy().
 */
#include "policy/parser.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include "policy/loader.h"

namespace portcullis::policy {
namespace {

using Strings = std::vector<std::string>;

/* Records what the parser hands on, in order. */
class Recorder final : public PolicyBuilder {
public:
    void include(const std::string& path, const SourceLocation& where) override {
        events.push_back("include " + path + " at " + where.str());
    }
    void define_list(const Definition& name, std::shared_ptr<const List> list) override {
        events.push_back("list " + name.name + " " + std::string(list_kind_name(list->kind())) + " of " +
                         std::to_string(list->size()) + " at " + name.where.str());
        lists[name.name] = std::move(list);
    }
    void define_list_file(const Definition& name, ListKind kind, const std::string& path,
                          const SourceLocation& where) override {
        events.push_back("list " + name.name + " " + std::string(list_kind_name(kind)) + " file " + path + " at " +
                         where.str());
    }
    void define_map_file(const Definition& name, const std::string& path, const SourceLocation& where) override {
        events.push_back("map " + name.name + " file " + path + " at " + where.str());
    }
    void add_rule(Rule rule, std::vector<ListReference> found) override {
        events.push_back("rule " + std::string(stage_name(rule.stage)) + " " + std::string(action_name(rule.action)));
        for (const auto& reference : found) references.push_back(reference.name + " at " + reference.where.str());
        rules.push_back(std::move(rule));
    }

    Strings events;
    Strings references;
    std::vector<Rule> rules;
    std::map<std::string, std::shared_ptr<const List>> lists;
};

struct Parsed {
    Recorder out;
    Strings errors;
};

std::unique_ptr<Parsed> parse(std::string_view text) {
    auto parsed = std::make_unique<Parsed>();
    const auto file = std::make_shared<const SourceFile>(SourceFile{"t.rules", "t.rules"});
    ErrorSink sink;
    const std::vector<Token> tokens = lex(text, LexMode::policy, file, sink);
    TokenCursor cursor(tokens, file, sink);
    parse_policy_file(cursor, parsed->out);
    for (const auto& error : sink.take()) parsed->errors.push_back(error.str());
    return parsed;
}

/* The errors of TEXT as parse_policy() reports them. */
Strings load_errors(std::string_view text) {
    Strings out;
    for (const auto& error : parse_policy(text, "t.rules", ".").errors) out.push_back(error.str());
    return out;
}

/* One rule at STAGE, written on line 2 of the file, column 1. */
struct OneRule {
    Rule rule;
    Strings errors;
};

OneRule parse_rule(std::string_view stage, std::string_view rule) {
    auto parsed = parse("on " + std::string(stage) + " {\n" + std::string(rule) + "\n}\n");
    OneRule out;
    out.errors = parsed->errors;
    EXPECT_EQ(parsed->out.rules.size(), 1u) << rule;
    if (!parsed->out.rules.empty()) out.rule = std::move(parsed->out.rules[0]);
    return out;
}

Rule good_rule(std::string_view stage, std::string_view rule) {
    OneRule parsed = parse_rule(stage, rule);
    EXPECT_EQ(parsed.errors, Strings{}) << rule;
    return std::move(parsed.rule);
}

/* The errors of RULE at STAGE, written at line 2. */
Strings rule_errors(std::string_view stage, std::string_view rule) {
    return parse("on " + std::string(stage) + " {\n" + std::string(rule) + "\n}\n")->errors;
}

std::string text_of(const Template& text) {
    std::string out;
    for (const auto& piece : text.pieces) {
        if (!piece.is_field) out += piece.literal;
        else
            out += "${" + std::string(field_info(piece.field).name) +
                   (piece.argument.empty() ? "" : "(" + piece.argument + ")") + "}";
    }
    return out;
}

std::string operand_text(const Operand& operand) {
    switch (operand.kind) {
        case Operand::Kind::field:
            return operand.argument.empty()
                       ? std::string(field_info(operand.field).name)
                       : std::string(field_info(operand.field).name) + "(" + operand.argument + ")";
        case Operand::Kind::string: return "\"" + operand.text + "\"";
        case Operand::Kind::number: return "#" + std::to_string(operand.number);
        case Operand::Kind::ip: return "ip:" + operand.ip.str();
        case Operand::Kind::word: return "w:" + operand.text;
    }
    return "?";
}

/* A condition as an S-expression: (or a (and b (not c))). */
std::string tree(const Condition* condition) {
    if (!condition) return "null";
    static const char* const kOps[] = {"==", "!=", "<", ">", "<=", ">="};
    const std::string lhs = operand_text(condition->lhs);
    switch (condition->kind) {
        case Condition::Kind::all_of:
            return "(and " + tree(condition->left.get()) + " " + tree(condition->right.get()) + ")";
        case Condition::Kind::any_of:
            return "(or " + tree(condition->left.get()) + " " + tree(condition->right.get()) + ")";
        case Condition::Kind::negation: return "(not " + tree(condition->left.get()) + ")";
        case Condition::Kind::truth: return lhs;
        case Condition::Kind::compare:
            return "(" + std::string(kOps[static_cast<int>(condition->op)]) + " " + lhs + " " +
                   operand_text(condition->rhs) + ")";
        case Condition::Kind::match:
            return "(" + std::string(condition->negated ? "!~ " : "=~ ") + lhs + " /" +
                   (condition->regex ? condition->regex->pattern() : "?") + "/)";
        case Condition::Kind::in_list:
            return "(in " + lhs + " " +
                   (condition->list ? "{" + std::string(list_kind_name(condition->list->kind())) + " " +
                                          std::to_string(condition->list->size()) + "}"
                                    : "named") + ")";
        case Condition::Kind::in_map: return "(in " + lhs + " map[" + operand_text(condition->rhs) + "])";
        case Condition::Kind::in_dnsbl: return "(in " + lhs + " dnsbl " + condition->zone + ")";
    }
    return "?";
}

std::string condition_at(std::string_view stage, std::string_view condition) {
    const Rule rule = good_rule(stage, "accept if " + std::string(condition));
    return tree(rule.condition.get());
}

/* --- statements --- */

TEST(Statements, EveryKindInOrder) {
    const auto parsed = parse(
        "list trusted ip { 127.0.0.0/8  ::1, 192.0.2.0/24 }\n"
        "LIST Local DOMAIN file \"lists/local.txt\"\n"
        "map logins file \"logins.map\"\n"
        "include \"conf.d/*.rules\"\n"
        "on Connect {\n"
        "    accept\n"
        "}\n"
        "on connect { reject }\n");
    EXPECT_EQ(parsed->errors, Strings{});
    EXPECT_EQ(parsed->out.events, (Strings{
                                      "list trusted ip of 3 at t.rules:1:6",
                                      "list local domain file lists/local.txt at t.rules:2:1",
                                      "map logins file logins.map at t.rules:3:1",
                                      "include conf.d/*.rules at t.rules:4:1",
                                      "rule connect accept",
                                      "rule connect reject",
                                  }));
}

TEST(Statements, ListItemsOnSeveralLinesAndBraceOnNextLine) {
    const auto parsed = parse(
        "list greylist_skip domain\n"
        "{\n"
        "    google.com,\n"
        "    =outlook.com   # only itself\n"
        "\n"
        "    \"example.org\"\n"
        "}\n"
        "list empty string {}\n"
        "list re regex { /^a/ /b$/i }\n");
    EXPECT_EQ(parsed->errors, Strings{});
    ASSERT_TRUE(parsed->out.lists.count("greylist_skip"));
    const List& skip = *parsed->out.lists.at("greylist_skip");
    EXPECT_EQ(skip.size(), 3u);
    EXPECT_TRUE(skip.contains_text("mail.google.com"));
    EXPECT_FALSE(skip.contains_text("mx.outlook.com"));
    EXPECT_EQ(parsed->out.lists.at("empty")->size(), 0u);
    EXPECT_TRUE(parsed->out.lists.at("re")->contains_text("xB"));
}

TEST(Statements, StageBlockOnOneLineAndEmptyBlocks) {
    const auto parsed = parse("on helo { accept if tls }\non mail {\n}\non eom {}\n");
    EXPECT_EQ(parsed->errors, Strings{});
    EXPECT_EQ(parsed->out.events, Strings{"rule helo accept"});
}

/* --- actions and their arguments --- */

TEST(Actions, AcceptAndDiscard) {
    const Rule accept = good_rule("connect", "accept");
    EXPECT_EQ(accept.action, ActionKind::accept);
    EXPECT_EQ(accept.stage, Stage::connect);
    EXPECT_EQ(accept.where.str(), "t.rules:2:1");
    EXPECT_EQ(accept.where.log_str(), "t.rules:2");
    EXPECT_FALSE(accept.condition);
    EXPECT_TRUE(accept.always_terminal());
    EXPECT_EQ(good_rule("eom", "DISCARD").action, ActionKind::discard);
}

/* The reply of RULE at STAGE as "CODE XCODE TEXT". */
std::string reply_of(std::string_view stage, std::string_view rule) {
    const OneRule parsed = parse_rule(stage, rule);
    const Reply& reply = parsed.rule.reply;
    return reply.code + " " + reply.xcode + " " + text_of(reply.text);
}

TEST(Actions, RepliesAndTheirDefaults) {
    struct ReplyCase {
        std::string_view stage, rule, reply;
    };
    const ReplyCase cases[] = {
        {"mail", "reject", "550 5.7.1 Rejected by policy"},
        {"connect", "reject", "554 5.7.1 Rejected by policy"},
        {"helo", "reject", "550 5.7.1 Rejected by policy"},
        {"rcpt", "reject 553", "553 5.7.1 Rejected by policy"},
        {"rcpt", R"(reject 552 5.3.4 "Message too big")", "552 5.3.4 Message too big"},
        {"rcpt", R"(reject "Go away")", "550 5.7.1 Go away"},
        {"rcpt", R"(reject 5.1.1 "No such user")", "550 5.1.1 No such user"},
        {"mail", "tempfail", "451 4.7.1 Try again later"},
        {"connect", R"(tempfail 421 "Too busy")", "421 4.7.1 Too busy"},
        {"rcpt", "greylist", "451 4.7.1 Greylisted, please try again in ${greylist.wait} seconds"},
        {"rcpt", "greylist 550", "550 5.7.1 Greylisted, please try again in ${greylist.wait} seconds"},
        {"rcpt", "ratelimit client.ip 10/1m", "450 4.7.1 Rate limit exceeded, try again later"},
        {"rcpt", R"(ratelimit client.ip 10/1m 550 5.7.1 "No")", "550 5.7.1 No"},
    };
    for (const ReplyCase& test : cases) EXPECT_EQ(reply_of(test.stage, test.rule), test.reply) << test.rule;
}

TEST(Actions, TerminalOrNot) {
    for (const std::string_view rule : {"accept", "reject", "tempfail", "discard", "quarantine"}) {
        EXPECT_TRUE(good_rule("rcpt", rule).always_terminal()) << rule;
    }
    for (const std::string_view rule : {R"(add-header X-A "b")", R"(log "x")"}) {
        EXPECT_FALSE(good_rule("rcpt", rule).always_terminal()) << rule;
    }
    EXPECT_FALSE(parse_rule("rcpt", "greylist").rule.always_terminal());
    EXPECT_FALSE(parse_rule("rcpt", "ratelimit rcpt 1/1s").rule.always_terminal());
}

TEST(Actions, Quarantine) {
    EXPECT_EQ(text_of(good_rule("eom", "quarantine").text), "Quarantined by policy");
    EXPECT_EQ(text_of(good_rule("mail", "quarantine \"Held: ${sender}\"").text), "Held: ${sender}");
}

TEST(Actions, AddHeaderAndLog) {
    const Rule header = good_rule("eom", "add-header X-Policy \"seen ${client.ip}\"");
    EXPECT_EQ(header.action, ActionKind::add_header);
    EXPECT_EQ(header.header_name, "X-Policy");
    EXPECT_EQ(text_of(header.text), "seen ${client.ip}");
    EXPECT_EQ(good_rule("eom", "add-header \"X-Quoted\" \"v\"").header_name, "X-Quoted");

    const Rule log = good_rule("helo", "log \"helo was ${helo}\"");
    EXPECT_EQ(log.action, ActionKind::log);
    EXPECT_EQ(text_of(log.text), "helo was ${helo}");
}

TEST(Actions, MonitorIsAFlagOnTheRule) {
    const Rule rule = good_rule("rcpt", "monitor reject if sender == \"\"");
    EXPECT_TRUE(rule.monitor);
    EXPECT_EQ(rule.action, ActionKind::reject);
    EXPECT_TRUE(rule.always_terminal());   // the evaluator makes monitor rules non-terminal
    EXPECT_EQ(rule.where.str(), "t.rules:2:1");
}

TEST(Actions, GreylistDefaults) {
    const OneRule parsed = parse_rule("rcpt", "greylist");
    EXPECT_EQ(parsed.errors, Strings{});
    const Rule& rule = parsed.rule;
    EXPECT_EQ(rule.action, ActionKind::greylist);
    EXPECT_EQ(rule.greylist.delay, std::chrono::minutes(5));
    EXPECT_EQ(rule.greylist.window, std::chrono::hours(48));
    EXPECT_EQ(rule.greylist.expire, std::chrono::hours(24 * 35));
    EXPECT_EQ(rule.greylist.awl, 5u);
    EXPECT_FALSE(rule.greylist.by_host);
}

TEST(Actions, GreylistArgumentsInAnyOrder) {
    const OneRule parsed =
        parse_rule("rcpt", "greylist by host awl 3 expire 10d window 1d delay 2m 550 5.7.1 \"Wait ${greylist.wait}s\"");
    EXPECT_EQ(parsed.errors, Strings{});
    const Rule& rule = parsed.rule;
    EXPECT_TRUE(rule.greylist.by_host);
    EXPECT_EQ(rule.greylist.awl, 3u);
    EXPECT_EQ(rule.greylist.expire, std::chrono::hours(240));
    EXPECT_EQ(rule.greylist.window, std::chrono::hours(24));
    EXPECT_EQ(rule.greylist.delay, std::chrono::minutes(2));
    EXPECT_EQ(rule.reply.code, "550");
}

TEST(Actions, RatelimitKeyRatesAndBucket) {
    const OneRule parsed = parse_rule("rcpt", "ratelimit auth.user 200/1h 1000/1d if authenticated");
    EXPECT_EQ(parsed.errors, Strings{});
    const Rule& rule = parsed.rule;
    ASSERT_EQ(rule.ratelimit.key.size(), 1u);
    EXPECT_EQ(rule.ratelimit.key[0].field, FieldId::auth_user);
    ASSERT_EQ(rule.ratelimit.rates.size(), 2u);
    EXPECT_EQ(rule.ratelimit.rates[0].count, 200u);
    EXPECT_EQ(rule.ratelimit.rates[0].period, std::chrono::hours(1));
    EXPECT_EQ(rule.ratelimit.rates[1].count, 1000u);
    EXPECT_EQ(rule.ratelimit.bucket, "auth.user:200/1h,1000/1d");
    EXPECT_EQ(tree(rule.condition.get()), "authenticated");
}

TEST(Actions, RatelimitTupleNameAndReply) {
    const OneRule tuple = parse_rule("mail", "ratelimit (client.ip,\n  sender.domain) 60/60s");
    EXPECT_EQ(tuple.errors, Strings{});
    EXPECT_EQ(tuple.rule.ratelimit.key.size(), 2u);
    EXPECT_EQ(tuple.rule.ratelimit.bucket, "(client.ip,sender.domain):60/1m");

    const OneRule named = parse_rule("eom", "ratelimit header(\"X-Tenant\") 5/1m as Tenants 550 5.7.1 \"Slow down\"");
    EXPECT_EQ(named.errors, Strings{});
    EXPECT_EQ(named.rule.ratelimit.bucket, "tenants");
    EXPECT_EQ(named.rule.ratelimit.key[0].argument, "X-Tenant");
    EXPECT_EQ(named.rule.reply.code, "550");
    EXPECT_EQ(text_of(named.rule.reply.text), "Slow down");
}

/* --- conditions --- */

/* Each CONDITION at its STAGE parses to its TREE. */
struct ConditionCase {
    std::string_view stage, condition, tree;
};

void expect_conditions(std::initializer_list<ConditionCase> cases) {
    for (const ConditionCase& test : cases)
        EXPECT_EQ(condition_at(test.stage, test.condition), test.tree) << test.condition;
}

TEST(Conditions, EveryComparisonOperator) {
    expect_conditions({
        {"rcpt", "rcpt.count == 3", "(== rcpt.count #3)"},
        {"rcpt", "rcpt.count != 3", "(!= rcpt.count #3)"},
        {"rcpt", "rcpt.count < 3", "(< rcpt.count #3)"},
        {"rcpt", "rcpt.count > 3", "(> rcpt.count #3)"},
        {"rcpt", "rcpt.count <= 3", "(<= rcpt.count #3)"},
        {"rcpt", "rcpt.count >= 3", "(>= rcpt.count #3)"},
        {"helo", "helo =~ /^mail/", "(=~ helo /^mail/)"},
        {"helo", "helo !~ /^mail/i", "(!~ helo /^mail/)"},
    });
}

TEST(Conditions, TheFieldIsAlwaysOnTheLeft) {
    expect_conditions({
        {"rcpt", "3 < rcpt.count", "(> rcpt.count #3)"},
        {"rcpt", "3 >= rcpt.count", "(<= rcpt.count #3)"},
        {"connect", "127.0.0.1 == client.ip", "(== client.ip ip:127.0.0.1)"},
    });
}

TEST(Conditions, LiteralsTakeTheFieldsType) {
    expect_conditions({
        {"mail", "size > 50M", "(> size #52428800)"},
        {"mail", "size >= 512", "(>= size #512)"},
        {"connect", "client.port == 25", "(== client.port #25)"},
        {"rcpt", "rcpt.count > 2m", "(> rcpt.count #120)"},   // a duration, in seconds
        {"connect", "client.ip != ::1", "(!= client.ip ip:::1)"},
        {"connect", "client.host == unknown", "(== client.host \"unknown\")"},
        {"mail", "auth.user == Bob", "(== auth.user \"Bob\")"},
        {"mail", "sender == \"\"", "(== sender \"\")"},
        {"eom", "from.domain == sender.domain", "(== from.domain sender.domain)"},
        {"eom", "header(\"Subject\") == \"hi\"", "(== header(Subject) \"hi\")"},
        {"eom", "HEADER(X-Flag) == yes", "(== header(X-Flag) \"yes\")"},
    });
}

TEST(Conditions, ResultWordsAreLowerCase) {
    const OneRule parsed = parse_rule("eom", "accept if dmarc.policy == Reject");
    EXPECT_EQ(parsed.errors, Strings{});
    EXPECT_EQ(tree(parsed.rule.condition.get()), "(== dmarc.policy w:reject)");
}

TEST(Conditions, BooleanFieldsStandAlone) {
    expect_conditions({
        {"mail", "authenticated", "authenticated"},
        {"mail", "not TLS", "(not tls)"},
    });
}

TEST(Conditions, Precedence) {
    expect_conditions({
        {"mail", "tls or authenticated and not tls", "(or tls (and authenticated (not tls)))"},
        {"mail", "not tls and authenticated or tls", "(or (and (not tls) authenticated) tls)"},
        {"mail", "(tls or authenticated) and not (tls)", "(and (or tls authenticated) (not tls))"},
        {"mail", "not not tls", "(not (not tls))"},
        {"mail", "tls and tls and authenticated", "(and (and tls tls) authenticated)"},
    });
}

TEST(Conditions, NotAppliesToAWholeComparison) {
    EXPECT_EQ(condition_at("mail", "not size > 10"), "(not (> size #10))");
}

TEST(Conditions, InlineListKindFollowsTheField) {
    expect_conditions({
        {"connect", "client.ip in { 10.0.0.0/8, 2001:db8::/32 }", "(in client.ip {ip 2})"},
        {"connect", "client.host in { example.com }", "(in client.host {domain 1})"},
        {"rcpt", "rcpt.domain in { example.com =a.org }", "(in rcpt.domain {domain 2})"},
        {"rcpt", "rcpt in { postmaster@ @example.com a@b.org }", "(in rcpt {address 3})"},
        {"mail", "auth.user in { alice \"Bob Smith\" }", "(in auth.user {string 2})"},
        {"helo", "helo in { /^mx[0-9]/ /\\.local$/i }", "(in helo {regex 2})"},
    });
}

TEST(Conditions, NamedListsAndMapsAreLeftForTheLoader) {
    const auto parsed = parse("on mail {\n  accept if sender in Friends and auth.user in Logins[sender]\n}\n");
    EXPECT_EQ(parsed->errors, Strings{});
    EXPECT_EQ(parsed->out.references, (Strings{"friends at t.rules:2:23", "logins at t.rules:2:48"}));
    EXPECT_EQ(tree(parsed->out.rules[0].condition.get()), "(and (in sender named) (in auth.user map[sender]))");
}

TEST(Conditions, MapKeyMayBeALiteral) {
    EXPECT_EQ(condition_at("mail", "auth.user in logins[\"Postmaster@example.com\"]"),
              "(in auth.user map[\"Postmaster@example.com\"])");
}

TEST(Conditions, Dnsbl) {
    const OneRule parsed = parse_rule("connect", "reject if client.ip in dnsbl \"zen.spamhaus.org\"");
    EXPECT_EQ(parsed.errors, Strings{});
    EXPECT_EQ(tree(parsed.rule.condition.get()), "(in client.ip dnsbl zen.spamhaus.org)");

    const OneRule value = parse_rule("connect", "reject if dnsbl(\"zen.spamhaus.org\") == 127.0.0.4");
    EXPECT_EQ(value.errors, Strings{});
    EXPECT_EQ(tree(value.rule.condition.get()), "(== dnsbl(zen.spamhaus.org) ip:127.0.0.4)");
}

TEST(Conditions, AListNamedDnsbl) {
    EXPECT_EQ(parse("on connect {\naccept if client.ip in dnsbl\n}\n")->out.references,
              Strings{"dnsbl at t.rules:2:24"});
}

TEST(Conditions, ContinuationLinesAllFourForms) {
    const auto parsed = parse(
        "on rcpt {\n"
        "    reject 554 5.7.1 \"Relay access denied\"\n"     // if/and/or at line start
        "        if not rcpt.domain in { example.com }\n"
        "       and not authenticated\n"
        "        or tls\n"
        "    reject \\\n"                                     // backslash
        "        \"x\" if tls\n"
        "    reject if (tls or\n"                             // parenthesis
        "        authenticated)\n"
        "    reject if rcpt in {\n"                           // list brace
        "        a@b.org\n"
        "        c@d.org }\n"
        "}\n");
    EXPECT_EQ(parsed->errors, Strings{});
    ASSERT_EQ(parsed->out.rules.size(), 4u);
    EXPECT_EQ(tree(parsed->out.rules[0].condition.get()),
              "(or (and (not (in rcpt.domain {domain 1})) (not authenticated)) tls)");
    EXPECT_EQ(text_of(parsed->out.rules[1].reply.text), "x");
    EXPECT_EQ(tree(parsed->out.rules[2].condition.get()), "(or tls authenticated)");
    EXPECT_EQ(tree(parsed->out.rules[3].condition.get()), "(in rcpt {address 2})");
}

/* --- texts --- */

TEST(Texts, FieldsDollarsAndEscapes) {
    const Rule rule =
        good_rule("eom", "reject \"$$5 from ${Sender} [${client.ip}] re ${header(\\\"Subject\\\")}\\n$$\"");
    EXPECT_EQ(text_of(rule.reply.text), "$5 from ${sender} [${client.ip}] re ${header(Subject)}\n$");
    ASSERT_EQ(rule.reply.text.pieces.size(), 7u);
    EXPECT_EQ(rule.reply.text.pieces[0].literal, "$5 from ");
    EXPECT_EQ(rule.reply.text.pieces[5].argument, "Subject");
}

/* One rule and the error it gives. */
struct RuleCase {
    std::string_view stage;
    std::string_view rule;
    std::string error;
};

/* A file and all the errors it gives. */
struct FileCase {
    std::string_view text;
    Strings errors;
};

void expect_rule_errors(std::initializer_list<RuleCase> cases) {
    for (const RuleCase& test : cases) {
        EXPECT_EQ(rule_errors(test.stage, test.rule), Strings{test.error}) << test.rule;
    }
}

void expect_file_errors(std::initializer_list<FileCase> cases) {
    for (const FileCase& test : cases) EXPECT_EQ(parse(test.text)->errors, test.errors) << test.text;
}

TEST(Texts, ErrorsPointAtTheirColumn) {
    expect_rule_errors({
        {"mail", R"(log "cost: 5$")", "t.rules:2:13: error: '$' must start ${field} or be written $$"},
        {"mail", R"(log "${sendr}")", "t.rules:2:8: error: unknown field 'sendr' (did you mean 'sender'?)"},
        {"mail", R"(log "\"q\" ${sender")", "t.rules:2:12: error: unclosed '${'"},
        {"mail", R"(log "${rcpt}")",
         "t.rules:2:8: error: field 'rcpt' is not known at stage 'mail' (it is known from stage 'rcpt' on)"},
        {"rcpt", R"(reject "wait ${greylist.wait}")",
         "t.rules:2:16: error: field 'greylist.wait' is only known in the reply text of a greylist rule"},
        {"eom", R"(log "${header}")", R"(t.rules:2:8: error: field 'header' needs an argument: write header("..."))"},
        {"eom", R"(log "${helo(x)}")", "t.rules:2:8: error: field 'helo' takes no argument"},
    });
}

/* --- errors --- */

TEST(Errors, UnknownActionWithSuggestion) {
    expect_rule_errors({
        {"mail", "rejct 550", "t.rules:2:1: error: unknown action 'rejct' (did you mean 'reject'?)"},
        {"mail", "monitor frobnicate",
         "t.rules:2:9: error: unknown action 'frobnicate' (expected accept, reject, tempfail, discard, quarantine, "
         "greylist, ratelimit, add-header or log)"},
    });
}

TEST(Errors, ActionAtTheWrongStage) {
    expect_rule_errors({
        {"connect", "discard",
         "t.rules:2:1: error: action 'discard' is not allowed at stage 'connect' (only at mail, rcpt, eom)"},
        {"mail", "greylist", "t.rules:2:1: error: action 'greylist' is not allowed at stage 'mail' (only at rcpt)"},
        {"connect", "ratelimit client.ip 1/1s",
         "t.rules:2:1: error: action 'ratelimit' is not allowed at stage 'connect' (only at mail, rcpt, eom)"},
    });
}

TEST(Errors, UnknownFieldWithSuggestion) {
    expect_rule_errors({
        {"connect", "reject if client.hots == x",
         "t.rules:2:11: error: unknown field 'client.hots' (did you mean 'client.host'?)"},
        {"connect", "reject if frobnicate", "t.rules:2:11: error: unknown field 'frobnicate'"},
        {"eom", R"(reject if hedaer("X") == x)",
         "t.rules:2:11: error: unknown field 'hedaer' (did you mean 'header'?)"},
    });
}

TEST(Errors, FieldBeforeItsStage) {
    expect_rule_errors({
        {"mail", "reject if rcpt == a@b.org",
         "t.rules:2:11: error: field 'rcpt' is not known at stage 'mail' (it is known from stage 'rcpt' on)"},
        {"connect", "reject if tls",
         "t.rules:2:11: error: field 'tls' is not known at stage 'connect' (it is known from stage 'helo' on)"},
    });
}

TEST(Errors, ReplyCodes) {
    const std::string enhanced = " is not an enhanced status code: write CLASS.SUBJECT.DETAIL, as in 5.7.1";
    expect_rule_errors({
        {"mail", "reject 450", "t.rules:2:8: error: 'reject' needs a 5xx reply code, not 450"},
        {"mail", "tempfail 550", "t.rules:2:10: error: 'tempfail' needs a 4xx reply code, not 550"},
        {"rcpt", "greylist 250", "t.rules:2:10: error: 'greylist' needs a 4xx or 5xx reply code, not 250"},
        {"mail", "reject 5500", "t.rules:2:8: error: '5500' is not a reply code: write three digits, as in 550"},
        {"mail", "reject 550 4.7.1", "t.rules:2:12: error: enhanced status code 4.7.1 does not match reply code 550"},
        {"mail", "tempfail 5.7.1", "t.rules:2:10: error: enhanced status code 5.7.1 does not match reply code 451"},
        {"mail", "reject 550 5.7", "t.rules:2:12: error: '5.7'" + enhanced},
        {"mail", "reject 550 5.7777.1", "t.rules:2:12: error: '5.7777.1'" + enhanced},
    });
}

TEST(Errors, StrayTokens) {
    expect_rule_errors({
        {"mail", "accept now", "t.rules:2:8: error: unexpected 'now' (expected 'if' or the end of the rule)"},
        {"mail", "accept if tls tls",
         "t.rules:2:15: error: unexpected 'tls' (expected 'and', 'or' or the end of the rule)"},
        {"mail", "accept if", "t.rules:2:10: error: unexpected end of line (expected a field or a value)"},
        {"mail", "accept if size > ", "t.rules:2:18: error: unexpected end of line (expected a field or a value)"},
        {"mail", "accept if (tls}", "t.rules:2:15: error: unexpected '}' (expected ')')"},
        {"mail", "log", "t.rules:2:4: error: unexpected end of line (expected the text to log in quotes)"},
    });
}

TEST(Errors, UnclosedBraces) {
    expect_file_errors({
        {"on mail {\n  accept\n", {"t.rules:1:9: error: unclosed '{'"}},
        {"on mail {\n  accept if (tls", {"t.rules:2:13: error: unclosed '('", "t.rules:1:9: error: unclosed '{'"}},
        {"list a ip { 1.2.3.4\n", {"t.rules:1:11: error: unclosed '{'"}},
        {"}\n", {"t.rules:1:1: error: unexpected '}' (expected list, map, include or on)"}},
    });
    // A statement where a rule should be: the block is taken as closed there.
    const auto forgotten = parse("on mail {\n  accept\non rcpt {\n  reject\n}\n");
    EXPECT_EQ(forgotten->errors, Strings{"t.rules:1:9: error: unclosed '{'"});
    EXPECT_EQ(forgotten->out.events, (Strings{"rule mail accept", "rule rcpt reject"}));
}

TEST(Errors, Statements) {
    expect_file_errors({
        {"lst a ip { }\n", {"t.rules:1:1: error: unknown statement 'lst' (did you mean 'list'?)"}},
        {"frobnicate\n", {"t.rules:1:1: error: unknown statement 'frobnicate' (expected list, map, include or on)"}},
        {"reject if tls\n", {"t.rules:1:1: error: rule outside an 'on STAGE { ... }' block"}},
        {"on conect {\n  accept\n}\n", {"t.rules:1:4: error: unknown stage 'conect' (did you mean 'connect'?)"}},
        {"list a ipv4 { }\n",
         {"t.rules:1:8: error: unknown list kind 'ipv4' (expected ip, domain, address, regex or string)"}},
        {"list a domian { }\n", {"t.rules:1:8: error: unknown list kind 'domian' (did you mean 'domain'?)"}},
        {"list a.b ip { }\n", {"t.rules:1:6: error: 'a.b' is not a valid name: use letters, digits, '_' and '-'"}},
        {"include conf.rules\n", {"t.rules:1:9: error: unexpected 'conf.rules' (expected a file name in quotes)"}},
        {"map m \"x\"\n", {R"(t.rules:1:7: error: unexpected string "x" (expected 'file' and a file name in quotes))"}},
        {"include \"a\" \"b\"\n", {R"(t.rules:1:13: error: unexpected string "b" (expected the end of the line))"}},
    });
}

TEST(Errors, ListItemsThatDoNotFitTheirKind) {
    expect_file_errors({
        {"list a ip {\n  192.0.2.1\n  example.com\n}\n",
         {"t.rules:3:3: error: 'example.com' is not an IP address or CIDR prefix"}},
        {"list a regex { foo }\n", {"t.rules:1:16: error: a regex list takes /regex/ items, not 'foo'"}},
        {"list a domain { /foo/ }\n", {"t.rules:1:17: error: a domain list takes no /regex/ items"}},
    });
    expect_rule_errors({
        {"connect", "accept if client.ip in { 10.0.0.1 example.com }",
         "t.rules:2:35: error: 'example.com' is not an IP address or CIDR prefix"},
        {"connect", "accept if client.port in { 25 }",
         "t.rules:2:11: error: field 'client.port' (number) cannot be looked up in a list"},
    });
}

TEST(Errors, BadRegex) {
    expect_rule_errors({
        {"helo", "reject if helo =~ /mail(/", "t.rules:2:19: error: bad regex /mail(/: missing ): mail("},
        {"helo", "reject if helo in { /a/ /b**/ }",
         "t.rules:2:25: error: bad regex /b**/: bad repetition operator: **"},
        {"helo", R"(reject if helo =~ "x")",
         R"(t.rules:2:19: error: unexpected string "x" (expected a /regex/ after '=~'))"},
    });
}

TEST(Errors, TypeErrors) {
    expect_rule_errors({
        {"mail", "reject if sender", "t.rules:2:11: error: field 'sender' is not a boolean: compare it"},
        {"mail", "reject if tls == yes",
         "t.rules:2:11: error: field 'tls' is a boolean: use it alone, as in 'if tls' or 'if not tls'"},
        {"mail", "reject if helo > 5",
         "t.rules:2:16: error: '>' compares numbers and sizes, and field 'helo' (name) is neither"},
        {"connect", "reject if client.ip == localhost", "t.rules:2:24: error: 'localhost' is not an IP address"},
        {"mail", "reject if size > big", "t.rules:2:18: error: 'big' is not a size"},
        {"rcpt", "reject if rcpt.count > 1.5", "t.rules:2:24: error: '1.5' is not a number"},
        {"connect", "reject if client.ip == client.host",
         "t.rules:2:21: error: cannot compare field 'client.ip' (ip) with field 'client.host' (name)"},
        {"mail", R"(reject if "a" == "b")", "t.rules:2:11: error: a comparison needs a field on one side"},
        {"mail", R"(reject if "a" in { x })", "t.rules:2:11: error: the left side of 'in' must be a field"},
        {"mail", R"(reject if "a")", R"(t.rules:2:11: error: unexpected string "a" (expected a condition))"},
        {"mail", R"(reject if auth.user in dnsbl "x.org")",
         "t.rules:2:11: error: dnsbl lookups take an IP address or a domain, not field 'auth.user' (string)"},
        {"mail", "reject if spf == passs", "t.rules:2:18: error: unknown spf value 'passs' (did you mean 'pass'?)"},
        {"eom", "reject if dmarc.policy in { reject, whatever }",
         "t.rules:2:37: error: unknown dmarc.policy value 'whatever' (expected none, quarantine or reject)"},
    });
}

TEST(Errors, EachResultFieldTakesOnlyItsOwnResults) {
    // softfail and neutral are SPF's alone: a DMARC or DKIM rule naming
    // them could never apply.
    expect_rule_errors({
        {"eom", "reject if dmarc == softfail",
         "t.rules:2:20: error: unknown dmarc value 'softfail' (expected pass, fail, none, temperror or permerror)"},
        {"eom", "reject if dmarc == neutral",
         "t.rules:2:20: error: unknown dmarc value 'neutral' (expected pass, fail, none, temperror or permerror)"},
        {"eom", "reject if dmarc != pas", "t.rules:2:20: error: unknown dmarc value 'pas' (did you mean 'pass'?)"},
        {"eom", "reject if dkim == softfail",
         "t.rules:2:19: error: unknown dkim value 'softfail' (expected pass, fail, none, temperror or permerror)"},
        {"eom", "reject if dkim in { fail, neutral }",
         "t.rules:2:27: error: unknown dkim value 'neutral' (expected pass, fail, none, temperror or permerror)"},
        {"eom", "reject if dkim == permerorr",
         "t.rules:2:19: error: unknown dkim value 'permerorr' (did you mean 'permerror'?)"},
    });
    EXPECT_EQ(load_errors("on eom {\n  reject if dmarc in { pass, fail, none, temperror, permerror }\n"
                          "  reject if dkim in { pass, fail, none, temperror, permerror }\n"
                          "  reject if spf in { softfail, neutral }\n}\n"),
              Strings{});
}

TEST(Errors, FieldArguments) {
    expect_rule_errors({
        {"eom", "reject if header == x",
         R"(t.rules:2:11: error: field 'header' needs an argument: write header("..."))"},
        {"eom", R"(reject if helo("x") == x)", "t.rules:2:11: error: field 'helo' takes no argument"},
        {"eom", R"(reject if header("A B") == x)", "t.rules:2:11: error: 'A B' is not a header name"},
    });
}

TEST(Errors, ActionArguments) {
    expect_rule_errors({
        {"eom", R"(add-header "X:Y" "v")", "t.rules:2:12: error: 'X:Y' is not a header name"},
        {"eom", "add-header X-A", "t.rules:2:15: error: unexpected end of line (expected the header's text in quotes)"},
        {"rcpt", "greylist delay 5x", "t.rules:2:16: error: '5x' is not a duration, as in 30s, 5m, 2h, 3d or 1w"},
        {"rcpt", "greylist delay 1m delay 2m", "t.rules:2:19: error: 'delay' is given twice"},
        {"rcpt", "greylist by net", "t.rules:2:13: error: 'by' takes host or subnet, not 'net'"},
        {"rcpt", "greylist awl many", "t.rules:2:14: error: 'many' is not a number"},
        {"mail", "greylist", "t.rules:2:1: error: action 'greylist' is not allowed at stage 'mail' (only at rcpt)"},
        {"rcpt", "greylist delay 2d window 1d",
         "t.rules:2:19: error: greylist delay 2d must be shorter than window 1d"},
        {"rcpt", "greylist delay 3d", "t.rules:2:10: error: greylist delay 3d must be shorter than window 2d"},
        {"rcpt", "greylist expire 3651d",
         "t.rules:2:17: error: '3651d' is longer than 3650d, the longest a record is kept"},
        {"rcpt", "ratelimit client.ip 1/3651d",
         "t.rules:2:21: error: '1/3651d' counts over more than 3650d, the longest a record is kept"},
        {"rcpt", "ratelimit client.ip 0/1h",
         "t.rules:2:21: error: '0/1h' is not a rate: write COUNT/PERIOD with a COUNT of at least 1 and a PERIOD "
         "above zero, as in 200/1h"},
        {"rcpt", "ratelimit client.ip 10/0s",
         "t.rules:2:21: error: '10/0s' is not a rate: write COUNT/PERIOD with a COUNT of at least 1 and a PERIOD "
         "above zero, as in 200/1h"},
        {"rcpt", "ratelimit client.ip", "t.rules:2:20: error: unexpected end of line (expected a rate such as 200/1h)"},
        {"rcpt", "ratelimit 10/1h", "t.rules:2:11: error: expected a field, not '10/1h'"},
        {"rcpt", "ratelimit client.iq 10/1h",
         "t.rules:2:11: error: unknown field 'client.iq' (did you mean 'client.ip'?)"},
    });
}

TEST(Errors, AllAreReportedAndParsingGoesOn) {
    const auto parsed = parse(
        "on mail {\n"
        "    rejct\n"
        "    accept if sendr == x\n"
        "    log \"unterminated\n"
        "    accept\n"
        "}\n"
        "lst x\n"
        "on rcpt { reject 450 }\n");
    // The lexer has run first; the loader sorts (see loader_test).
    EXPECT_EQ(parsed->errors, (Strings{
                                  "t.rules:4:9: error: unterminated string",
                                  "t.rules:2:5: error: unknown action 'rejct' (did you mean 'reject'?)",
                                  "t.rules:3:15: error: unknown field 'sendr' (did you mean 'sender'?)",
                                  "t.rules:7:1: error: unknown statement 'lst' (did you mean 'list'?)",
                                  "t.rules:8:18: error: 'reject' needs a 5xx reply code, not 450",
                              }));
    EXPECT_EQ(parsed->out.events,
              (Strings{"rule mail accept", "rule mail accept", "rule rcpt reject"}));
}

TEST(Errors, AtMostFifty) {
    std::string text = "on mail {\n";
    for (int i = 0; i < 80; ++i) text += "  frob\n";
    text += "}\n";
    EXPECT_EQ(parse(text)->errors.size(), kMaxReportedErrors);
}

TEST(Errors, NoPolicyWhenAnythingIsWrong) {
    const LoadResult result = parse_policy("on mail {\n accept\n rejct\n}\n", "t.rules", ".");
    EXPECT_FALSE(result.ok());
    EXPECT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(load_errors("on mail { accept }\n"), Strings{});
}

}  // namespace
}  // namespace portcullis::policy
