/*
 * loader_test.cc: whole loads: the spec's first example, includes with
 * globs and loops, list and map files, name resolution, and the order and
 * form of the errors.  The files are under data/.
 */
#include "policy/loader.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace portcullis::policy {
namespace {

using Strings = std::vector<std::string>;

const std::string kData = std::string(PORTCULLIS_SOURCE_DIR) + "/tests/unit/policy/data";

Strings strings_of(const LoadResult& result) {
    Strings out;
    for (const auto& error : result.errors) out.push_back(error.str());
    return out;
}

/* TEXT loaded with relative paths under data/DIR; errors are reported. */
std::shared_ptr<const Policy> load_text(std::string_view text, const std::string& dir = "lists") {
    const LoadResult result = parse_policy(text, "t.rules", kData + "/" + dir);
    EXPECT_EQ(strings_of(result), Strings{}) << text;
    return result.policy;
}

Strings text_errors(std::string_view text, const std::string& dir = "lists") {
    const LoadResult result = parse_policy(text, "t.rules", kData + "/" + dir);
    EXPECT_FALSE(result.ok());
    return strings_of(result);
}

std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

TEST(FirstLook, LoadsWithItsListsAndMap) {
    // The spec's example: every feature it shows is built.
    const auto policy = load_text(read(kData + "/first-look/policy.rules"), "first-look");
    ASSERT_TRUE(policy);
    EXPECT_EQ(policy->stage_rules(Stage::connect).size(), 2u);
    EXPECT_EQ(policy->stage_rules(Stage::mail).size(), 2u);
    EXPECT_EQ(policy->stage_rules(Stage::rcpt).size(), 4u);   // relay guard, two rate limits, greylist
    EXPECT_EQ(policy->stage_rules(Stage::eom).size(), 2u);    // DMARC

    const Rule& relay = policy->stage_rules(Stage::rcpt)[0];
    EXPECT_EQ(relay.where.log_str(), "t.rules:21");
    const Condition& guard = *relay.condition->left->left;   // not rcpt.domain in local_domains
    ASSERT_TRUE(guard.list);
    EXPECT_TRUE(guard.list->contains_text("www.example.com"));
    EXPECT_FALSE(guard.list->contains_text("x.mail.example.org"));

    const Map& logins = *policy->maps.at("sender_logins");
    EXPECT_EQ(logins.lookup("billing@example.com"), (Strings{"alice", "bob"}));
    EXPECT_EQ(logins.lookup("anyone@example.net"), (Strings{"carol", "dave"}));
    EXPECT_TRUE(policy->lists.at("greylist_skip")->contains_text("mail.protection.outlook.com"));
    EXPECT_EQ(policy->files, (Strings{"t.rules", kData + "/first-look/lists/local-domains.txt",
                                      kData + "/first-look/lists/greylist-skip-clients.txt",
                                      kData + "/first-look/lists/sender-logins.txt"}));
}

TEST(Include, GlobsInNameOrderAndRulesInReadOrder) {
    const std::string dir = kData + "/include";
    const LoadResult result = load_policy(dir + "/main.rules");
    ASSERT_EQ(strings_of(result), Strings{});
    const auto& connect = result.policy->stage_rules(Stage::connect);
    Strings order;
    for (const Rule& rule : connect) order.push_back(rule.where.log_str() + " " + rule.text.pieces[0].literal);
    EXPECT_EQ(order, (Strings{"main.rules:3 main before", "conf.d/10-first.rules:3 first",
                              "conf.d/20-second.rules:2 second", "main.rules:8 main after"}));
    EXPECT_EQ(connect[1].where.file->path, dir + "/conf.d/10-first.rules");
    EXPECT_EQ(result.policy->files, (Strings{dir + "/main.rules", dir + "/conf.d/10-first.rules",
                                             dir + "/conf.d/../lists/domains.txt", dir + "/conf.d/20-second.rules"}));
    // The list file named from conf.d/ is relative to conf.d/.
    const Rule& helo = result.policy->stage_rules(Stage::helo).at(0);
    EXPECT_TRUE(helo.condition->list->contains_text("mx.example.com"));
}

TEST(Include, LoopsNameTheChain) {
    const std::string dir = kData + "/loop";
    EXPECT_EQ(strings_of(load_policy(dir + "/a.rules")),
              Strings{dir + "/b.rules:4:1: error: include loop: a.rules -> b.rules -> a.rules"});
    EXPECT_EQ(text_errors("include \"a.rules\"\n", "loop"),
              Strings{kData + "/loop/b.rules:4:1: error: include loop: a.rules -> b.rules -> a.rules"});
}

TEST(Include, MissingPlainPathIsAnErrorEmptyGlobIsNot) {
    EXPECT_EQ(
        text_errors("\n  include \"nothere.rules\"\n", "include"),
        Strings{"t.rules:2:3: error: cannot open '" + kData + "/include/nothere.rules': No such file or directory"});
    EXPECT_TRUE(load_text("include \"nothere.d/*.rules\"\n", "include"));
}

TEST(Include, AbsolutePathsAreKept) {
    const auto policy = load_text("include \"" + kData + "/include/conf.d/20-second.rules\"\n", "lists");
    ASSERT_TRUE(policy);
    // Outside the main file's directory, the short name is the whole path.
    EXPECT_EQ(policy->stage_rules(Stage::connect).at(0).where.file->short_name,
              kData + "/include/conf.d/20-second.rules");
}

TEST(ListFiles, LoadAndMatch) {
    const auto policy = load_text(
        "list trusted ip file \"ips.txt\"\n"
        "list patterns regex file \"regexes.txt\"\n"
        "on connect {\n"
        "    accept if client.ip in trusted or client.host in patterns\n"
        "}\n");
    ASSERT_TRUE(policy);
    const List& trusted = *policy->lists.at("trusted");
    EXPECT_EQ(trusted.size(), 4u);
    EXPECT_TRUE(trusted.contains_ip(*parse_ip("2001:db8:5::1")));
    EXPECT_TRUE(trusted.contains_ip(*parse_ip("198.51.100.7")));
    EXPECT_FALSE(trusted.contains_ip(*parse_ip("198.51.100.8")));
    const List& patterns = *policy->lists.at("patterns");
    EXPECT_TRUE(patterns.contains_text("mail7.example.net"));
    EXPECT_TRUE(patterns.contains_text("www.EXAMPLE.com"));
}

TEST(ListFiles, BadItemsAreReportedInTheListFile) {
    const std::string file = kData + "/lists/bad-items.txt";
    EXPECT_EQ(text_errors("list bad ip file \"bad-items.txt\"\n"),
              (Strings{file + ":2:1: error: 'not-an-address' is not an IP address or CIDR prefix",
                       file + ":3:1: error: '10.0.0.0/33' is not an IP address or CIDR prefix"}));
}

TEST(ListFiles, MissingFileIsReportedAtTheStatement) {
    EXPECT_EQ(text_errors("list x domain file \"none.txt\"\nmap y file \"none.map\"\n"),
              (Strings{"t.rules:1:1: error: cannot open '" + kData + "/lists/none.txt': No such file or directory",
                       "t.rules:2:1: error: cannot open '" + kData + "/lists/none.map': No such file or directory"}));
}

TEST(ListFiles, MissingFileIsReportedOnceNotAtEachUse) {
    const std::string none = "cannot open '" + kData + "/lists/none";
    EXPECT_EQ(text_errors("map logins file \"none.map\"\n"
                          "list skip domain file \"none.txt\"\n"
                          "on mail {\n"
                          "  reject if not auth.user in logins[sender]\n"
                          "  accept if sender.domain in skip or auth.user in logins[sender.domain]\n"
                          "}\n"),
              (Strings{"t.rules:1:1: error: " + none + ".map': No such file or directory",
                       "t.rules:2:1: error: " + none + ".txt': No such file or directory"}));
}

TEST(ListFiles, MissingFileStillDefinesItsKind) {
    // The uses are checked against the statement, as if the file were empty.
    EXPECT_EQ(text_errors("list skip domain file \"none.txt\"\non connect {\n  accept if client.ip in skip\n}\n"),
              (Strings{"t.rules:1:1: error: cannot open '" + kData + "/lists/none.txt': No such file or directory",
                       "t.rules:3:26: error: field 'client.ip' (ip) cannot be looked up in domain list 'skip'"}));
    EXPECT_EQ(text_errors("map m file \"none.map\"\non mail {\n  accept if auth.user in m\n}\n"),
              (Strings{"t.rules:1:1: error: cannot open '" + kData + "/lists/none.map': No such file or directory",
                       "t.rules:3:26: error: 'm' is a map; write m[KEY]"}));
}

TEST(MapFiles, KeysValuesAndFallback) {
    const auto policy = load_text("map logins file \"logins.map\"\n");
    ASSERT_TRUE(policy);
    const Map& logins = *policy->maps.at("logins");
    EXPECT_EQ(logins.lookup("Alice@Example.com"), Strings{"alice"});
    EXPECT_EQ(logins.lookup("zed@example.net"), (Strings{"carol", "dave"}));
    EXPECT_EQ(logins.lookup("quoted@example.org"), Strings{"Eve Adams"});
    EXPECT_TRUE(logins.lookup("zed@example.org").empty());
}

TEST(MapFiles, KeyWithoutValue) {
    EXPECT_EQ(text_errors("map m file \"bad.map\"\n"),
              Strings{kData + "/lists/bad.map:1:1: error: map key 'alone' has no value"});
}

TEST(Names, UsedBeforeDefinedAndCaseInsensitive) {
    const auto policy = load_text(
        "on connect {\n"
        "    accept if client.ip in TRUSTED\n"
        "}\n"
        "list Trusted ip { 127.0.0.0/8 }\n");
    ASSERT_TRUE(policy);
    EXPECT_TRUE(policy->lists.count("trusted"));
    EXPECT_EQ(policy->stage_rules(Stage::connect)[0].condition->list, policy->lists.at("trusted"));
}

TEST(Names, DuplicateNamesTheFirstDefinition) {
    EXPECT_EQ(text_errors("list a ip { 127.0.0.1 }\nlist A domain { x.org }\n"),
              Strings{"t.rules:2:6: error: 'a' is already defined at t.rules:1:6"});
    EXPECT_EQ(text_errors("list a ip { 127.0.0.1 }\nmap a file \"logins.map\"\n"),
              Strings{"t.rules:2:5: error: 'a' is already defined at t.rules:1:6"});
}

TEST(Names, UnknownAndMisusedNames) {
    EXPECT_EQ(text_errors("list trusted ip { ::1 }\non connect {\n  accept if client.ip in trustd\n}\n"),
              Strings{"t.rules:3:26: error: unknown list 'trustd' (did you mean 'trusted'?)"});
    EXPECT_EQ(text_errors("map logins file \"logins.map\"\non mail {\n  accept if auth.user in logins\n}\n"),
              Strings{"t.rules:3:26: error: 'logins' is a map; write logins[KEY]"});
    EXPECT_EQ(text_errors("list l string { a }\non mail {\n  accept if auth.user in l[sender]\n}\n"),
              Strings{"t.rules:3:26: error: 'l' is a list, not a map"});
    EXPECT_EQ(text_errors("on mail {\n  accept if auth.user in nomap[sender]\n}\n"),
              Strings{"t.rules:2:26: error: unknown map 'nomap'"});
}

TEST(Names, ListKindMustFitTheField) {
    EXPECT_EQ(text_errors("list local domain { example.com }\non connect {\n  accept if client.ip in local\n}\n"),
              Strings{"t.rules:3:26: error: field 'client.ip' (ip) cannot be looked up in domain list 'local'"});
    EXPECT_TRUE(load_text("list r regex { /x/ }\nlist s string { a }\non mail {\n"
                          "  accept if sender in r or auth.user in s or sender.local in s\n}\n"));
}

TEST(LoadErrors, SortedByFileThenPosition) {
    // Name errors are found after every file is read, but reported in place.
    EXPECT_EQ(text_errors("on mail {\n  accept if sender in nolist\n  rejct\n}\n"),
              (Strings{"t.rules:2:23: error: unknown list 'nolist'",
                       "t.rules:3:3: error: unknown action 'rejct' (did you mean 'reject'?)"}));
}

TEST(LoadErrors, UnreadableMainFile) {
    const LoadResult result = load_policy(kData + "/no/such.rules");
    EXPECT_FALSE(result.ok());
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_FALSE(result.errors[0].where.file);
    EXPECT_EQ(result.errors[0].str(),
              "error: cannot open '" + kData + "/no/such.rules': No such file or directory");
}

TEST(LoadErrors, SpecExample) {
    std::string text(12, '\n');
    text = "on connect {\n" + text + "    accept if client.hots == x\n}\n";
    const LoadResult result = parse_policy(text, "policies/default.rules", ".");
    EXPECT_EQ(
        strings_of(result),
        Strings{"policies/default.rules:14:15: error: unknown field 'client.hots' (did you mean 'client.host'?)"});
    EXPECT_EQ(result.errors[0].where.file->short_name, "default.rules");
}

TEST(SpecExamples, OtherSnippetsParse) {
    EXPECT_TRUE(load_text("on rcpt {\n  ratelimit auth.user 200/1h 20/1m\n"
                          "  ratelimit (client.ip, sender.domain) 10/1m\n}\n"));
    EXPECT_TRUE(load_text("on connect {\n  reject if dnsbl(\"zen.spamhaus.org\") == 127.0.0.4\n}\n"));
    EXPECT_TRUE(load_text("include \"conf.d/*.rules\"\n", "include"));
}

TEST(LoadErrors, DeviceFilesAreRefusedNotRead) {
    // /dev/zero would fill memory and a FIFO would block a reload for ever.
    EXPECT_EQ(text_errors("include \"/dev/zero\"\n"),
              Strings{"t.rules:1:1: error: '/dev/zero' is not a regular file"});
    EXPECT_EQ(text_errors("list x ip file \"/dev/stdin\"\n"),
              Strings{"t.rules:1:1: error: '/dev/stdin' is not a regular file"});
}

TEST(LoadErrors, ConditionDepthIsBounded) {
    // Deeper conditions would overflow the stack of the parser or of the
    // evaluator; they are refused at load instead.
    const std::string nested = "on helo { reject if " + std::string(100, '(') + "tls" + std::string(100, ')') + " }\n";
    const Strings deep = text_errors(nested);
    ASSERT_EQ(deep.size(), 1u);
    EXPECT_EQ(deep[0], "t.rules:1:85: error: condition nested too deeply (more than 64 levels of parentheses and 'not')");

    std::string chain = "on helo { reject if tls";
    for (int i = 0; i < 1500; ++i) chain += " and tls";
    const Strings wide = text_errors(chain + " }\n");
    ASSERT_EQ(wide.size(), 1u);
    EXPECT_NE(wide[0].find("error: condition too long (more than 1000 terms): put the values in a list"),
              std::string::npos);

    std::string fits = "on helo { reject if tls";
    for (int i = 0; i < 400; ++i) fits += " and tls";
    EXPECT_TRUE(parse_policy(fits + " }\n", "t.rules", ".").ok());
}

}  // namespace
}  // namespace portcullis::policy
