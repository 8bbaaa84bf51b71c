/*
 * dmarc_test.cc: dmarc::Checker over a table-backed DNS (FakeTxtLookups):
 * a table of messages with the verdict RFC 7489 requires for each
 * (alignment strict and relaxed, sp=, pct= with fixed rolls, record
 * discovery and selection, records libopendmarc refuses, the From
 * verdicts, several author domains), the lookups start_lookups() starts,
 * the default roll, and hostile input (nothing may crash or throw).
 * Each case is decided twice: with every answer at once, and with the
 * answers held until check() has said it waits (nullopt), as a session
 * asks again when its lookups wake it; both must give the same verdict.
 */
#include "checks/dmarc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "support/fake_txt_lookups.h"
#include "support/from_fields.h"

namespace portcullis::dmarc {

void PrintTo(Result result, std::ostream* out) { *out << result_name(result); }

namespace {

constexpr const char* kList = "/usr/share/publicsuffix/public_suffix_list.dat";

using test_support::from_fields;

using Txt = std::map<std::string, std::vector<std::string>>;

struct Expected {
    Result result;
    std::string from_domain;
    std::string published;
    std::string policy;
    bool spf_aligned;
    bool dkim_aligned;
};

struct Case {
    std::string name;
    Txt txt;                          // TXT records by name
    std::vector<std::string> from;    // the From field values
    Identifiers ids;
    Expected expected;
    std::optional<unsigned> roll = std::nullopt;   // the pct= roll; a random one when unset
    std::vector<std::string> timeouts = {};         // names whose lookup fails
};

void PrintTo(const Case& test, std::ostream* out) { *out << test.name; }

Identifiers spf_pass(const std::string& domain) { return {"pass", domain, {}}; }
Identifiers dkim_pass(const std::string& domain) { return {"fail", "bounces.other.example", {domain}}; }
const Identifiers kNothingPasses = {"fail", "other.example", {"other.example"}};

const char* const kReject = "v=DMARC1; p=reject";

const Case kCases[] = {
    // Which identifier passes.
    {"PassThroughSpfOnly", {{"_dmarc.example.com", {kReject}}}, {"User <user@example.com>"}, spf_pass("example.com"),
     {Result::pass, "example.com", "reject", "reject", true, false}},
    {"PassThroughDkimOnly", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"}, dkim_pass("example.com"),
     {Result::pass, "example.com", "reject", "reject", false, true}},
    {"PassThroughBoth", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"},
     {"pass", "example.com", {"other.example", "example.com"}},
     {Result::pass, "example.com", "reject", "reject", true, true}},
    {"FailWithNeither", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"}, kNothingPasses,
     {Result::fail, "example.com", "reject", "reject", false, false}},
    {"SpfTemperrorIsNotAligned", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"},
     {"temperror", "example.com", {}}, {Result::fail, "example.com", "reject", "reject", false, false}},
    {"SpfPassButUnaligned", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"}, spf_pass("example.net"),
     {Result::fail, "example.com", "reject", "reject", false, false}},
    {"SpfNotRun", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"}, {"", "", {}},
     {Result::fail, "example.com", "reject", "reject", false, false}},
    {"IdentifiersComparedWithoutCaseOrFinalDot", {{"_dmarc.example.com", {"v=DMARC1; p=reject; aspf=s; adkim=s"}}},
     {"user@Example.COM"}, {"PASS", "EXAMPLE.com.", {"Example.Com."}},
     {Result::pass, "example.com", "reject", "reject", true, true}},

    // Strict and relaxed alignment.
    {"SpfRelaxedTakesASubdomain", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"},
     spf_pass("mail.example.com"), {Result::pass, "example.com", "reject", "reject", true, false}},
    {"SpfStrictWantsTheSameName", {{"_dmarc.example.com", {"v=DMARC1; p=reject; aspf=s"}}}, {"user@example.com"},
     spf_pass("mail.example.com"), {Result::fail, "example.com", "reject", "reject", false, false}},
    {"DkimRelaxedTakesASubdomain", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"},
     dkim_pass("mail.example.com"), {Result::pass, "example.com", "reject", "reject", false, true}},
    // libopendmarc 1.4.2 passes this one.
    {"DkimStrictRefusesASubdomain", {{"_dmarc.example.com", {"v=DMARC1; p=reject; adkim=s"}}}, {"user@example.com"},
     dkim_pass("mail.example.com"), {Result::fail, "example.com", "reject", "reject", false, false}},
    // libopendmarc 1.4.2 drops the one-letter label and passes these.
    {"DkimStrictOneLetterLabel", {{"_dmarc.example.com", {"v=DMARC1; p=reject; adkim=s"}}}, {"user@x.example.com"},
     dkim_pass("example.com"), {Result::fail, "x.example.com", "reject", "reject", false, false}},
    {"SpfStrictOneLetterLabel", {{"_dmarc.example.com", {"v=DMARC1; p=reject; aspf=s"}}}, {"user@example.com"},
     spf_pass("x.example.com"), {Result::fail, "example.com", "reject", "reject", false, false}},
    {"DkimRelaxedOneLetterLabel", {{"_dmarc.example.com", {kReject}}}, {"user@x.example.com"},
     dkim_pass("example.com"), {Result::pass, "x.example.com", "reject", "reject", false, true}},
    {"SpfRelaxedOneLetterLabel", {{"_dmarc.example.com", {kReject}}}, {"user@example.com"}, spf_pass("x.example.com"),
     {Result::pass, "example.com", "reject", "reject", true, false}},
    {"RelaxedIsNotAnySharedSuffix", {{"_dmarc.example.co.uk", {kReject}}}, {"user@example.co.uk"},
     spf_pass("other.co.uk"), {Result::fail, "example.co.uk", "reject", "reject", false, false}},
    {"RelaxedUnderAPrivateSuffix", {{"_dmarc.alice.github.io", {kReject}}}, {"user@alice.github.io"},
     dkim_pass("bob.github.io"), {Result::fail, "alice.github.io", "reject", "reject", false, false}},

    // Which policy: p= or sp=.
    {"SubdomainPolicyForASubdomain", {{"_dmarc.example.com", {"v=DMARC1; p=reject; sp=quarantine"}}},
     {"user@sub.example.com"}, kNothingPasses,
     {Result::fail, "sub.example.com", "quarantine", "quarantine", false, false}},
    {"DomainPolicyForTheOrganizationalDomain", {{"_dmarc.example.com", {"v=DMARC1; p=reject; sp=quarantine"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}},
    {"DomainPolicyForASubdomainWithoutSp", {{"_dmarc.example.com", {kReject}}}, {"user@sub.example.com"},
     kNothingPasses, {Result::fail, "sub.example.com", "reject", "reject", false, false}},
    {"SubdomainsOwnRecordWins",
     {{"_dmarc.sub.example.com", {"v=DMARC1; p=none; sp=reject"}},
      {"_dmarc.example.com", {"v=DMARC1; p=reject; sp=quarantine"}}},
     {"user@sub.example.com"}, kNothingPasses, {Result::fail, "sub.example.com", "none", "none", false, false}},
    {"PassDocumentsThePublishedPolicy", {{"_dmarc.example.com", {"v=DMARC1; p=quarantine; sp=reject"}}},
     {"user@sub.example.com"}, spf_pass("example.com"),
     {Result::pass, "sub.example.com", "reject", "reject", true, false}},

    // pct=: in the sample when roll < pct, else one milder.
    {"Pct0IsOneMilder", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=0"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "quarantine", false, false}, 0},
    {"Pct50Roll49IsInTheSample", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=50"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}, 49},
    {"Pct50Roll50IsOneMilder", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=50"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "quarantine", false, false}, 50},
    {"QuarantineOutsideTheSampleIsNone", {{"_dmarc.example.com", {"v=DMARC1; p=quarantine; pct=50"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "quarantine", "none", false, false}, 99},
    {"NoneStaysNone", {{"_dmarc.example.com", {"v=DMARC1; p=none; pct=10"}}}, {"user@example.com"}, kNothingPasses,
     {Result::fail, "example.com", "none", "none", false, false}, 50},
    {"PctOnTheSubdomainPolicy", {{"_dmarc.example.com", {"v=DMARC1; p=none; sp=reject; pct=20"}}},
     {"user@sub.example.com"}, kNothingPasses,
     {Result::fail, "sub.example.com", "reject", "quarantine", false, false}, 20},
    {"PctDoesNotTouchAPass", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=0"}}}, {"user@example.com"},
     spf_pass("example.com"), {Result::pass, "example.com", "reject", "reject", true, false}, 0},
    {"RollAbove99CountsAs99", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=99"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "quarantine", false, false}, 12345},

    // Discovery (RFC 7489 6.6.3).
    {"NoRecordIsNone", {}, {"user@example.com"}, spf_pass("example.com"),
     {Result::none, "example.com", "", "none", true, false}},
    {"OrganizationalDomainFallback", {{"_dmarc.example.co.uk", {"v=DMARC1; p=quarantine"}}},
     {"user@a.b.example.co.uk"}, kNothingPasses,
     {Result::fail, "a.b.example.co.uk", "quarantine", "quarantine", false, false}},
    {"NoRecordAtEither", {{"_dmarc.b.example.co.uk", {kReject}}}, {"user@a.b.example.co.uk"}, kNothingPasses,
     {Result::none, "a.b.example.co.uk", "", "none", false, false}},
    {"NonDmarcRecordsIgnored",
     {{"_dmarc.example.com", {"google-site-verification=abc", "v=spf1 -all", kReject, "v=DMARC10; p=none"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}},
    {"OnlyNonDmarcRecordsFallBack",
     {{"_dmarc.sub.example.com", {"v=spf1 -all", "v=dmarc1; p=none"}}, {"_dmarc.example.com", {kReject}}},
     {"user@sub.example.com"}, kNothingPasses, {Result::fail, "sub.example.com", "reject", "reject", false, false}},
    {"TwoDmarcRecordsAreNone", {{"_dmarc.example.com", {kReject, "v=DMARC1; p=none"}}}, {"user@example.com"},
     kNothingPasses, {Result::none, "example.com", "", "none", false, false}},
    {"TwoRecordsAtTheSubdomainDoNotFallBack",
     {{"_dmarc.sub.example.com", {kReject, kReject}}, {"_dmarc.example.com", {kReject}}}, {"user@sub.example.com"},
     kNothingPasses, {Result::none, "sub.example.com", "", "none", false, false}},
    {"TemperrorOnTheRecordLookup", {}, {"user@example.com"}, spf_pass("example.com"),
     {Result::temperror, "example.com", "", "none", true, false}, std::nullopt, {"_dmarc.example.com"}},
    {"TemperrorOnTheOrganizationalLookup", {}, {"user@sub.example.com"}, kNothingPasses,
     {Result::temperror, "sub.example.com", "", "none", false, false}, std::nullopt, {"_dmarc.example.com"}},
    {"BlanksAndCaseInTheRecord", {{"_dmarc.example.com", {"V = DMARC1 ;P=Reject; ADKIM = s"}}},
     {"user@example.com"}, dkim_pass("mail.example.com"),
     {Result::fail, "example.com", "reject", "reject", false, false}},

    // Records libopendmarc refuses, and what RFC 7489 makes of them.
    {"GarbageRecordIsNone", {{"_dmarc.example.com", {"v=DMARC1; p=bogus"}}}, {"user@example.com"}, kNothingPasses,
     {Result::none, "example.com", "", "none", false, false}},
    {"RecordWithoutPIsNone", {{"_dmarc.example.com", {"v=DMARC1; sp=reject"}}}, {"user@example.com"},
     kNothingPasses, {Result::none, "example.com", "", "none", false, false}},
    {"NoPButValidRuaIsPNone", {{"_dmarc.example.com", {"v=DMARC1; rua=mailto:dmarc@example.com"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "none", "none", false, false}},
    {"BadPButValidRuaIsPNone", {{"_dmarc.example.com", {"v=DMARC1; p=bogus; rua=bad, mailto:d@example.com!10m"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "none", "none", false, false}},
    {"BadSpButValidRuaIsPNone", {{"_dmarc.example.com", {"v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com"}}},
     {"user@sub.example.com"}, kNothingPasses, {Result::fail, "sub.example.com", "none", "none", false, false}},
    {"NoPAndInvalidRuaIsNone", {{"_dmarc.example.com", {"v=DMARC1; rua=not a uri"}}}, {"user@example.com"},
     kNothingPasses, {Result::none, "example.com", "", "none", false, false}},
    {"PrefixOfAPolicyIsNoPolicy", {{"_dmarc.example.com", {"v=DMARC1; p=r"}}}, {"user@example.com"},
     kNothingPasses, {Result::none, "example.com", "", "none", false, false}},
    {"PrefixOfAPolicyWithValidRuaIsPNone", {{"_dmarc.example.com", {"v=DMARC1; p=rej; rua=mailto:d@example.com"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "none", "none", false, false}},
    {"PrefixOfASubdomainPolicyIsNoPolicy", {{"_dmarc.example.com", {"v=DMARC1; p=reject; sp=q"}}},
     {"user@sub.example.com"}, kNothingPasses, {Result::none, "sub.example.com", "", "none", false, false}},
    // RFC 7489 6.3: a bad optional tag is read as its default, and the
    // record keeps its policy.
    {"BadAdkimIsRelaxed", {{"_dmarc.example.com", {"v=DMARC1; p=reject; adkim=x; rua=mailto:d@example.com"}}},
     {"user@example.com"}, dkim_pass("mail.example.com"),
     {Result::pass, "example.com", "reject", "reject", false, true}},
    {"BadAdkimStillFailsUnaligned", {{"_dmarc.example.com", {"v=DMARC1; p=reject; adkim=x"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}},
    {"PrefixOfStrictIsRelaxed", {{"_dmarc.example.com", {"v=DMARC1; p=reject; adkim=st"}}}, {"user@example.com"},
     dkim_pass("mail.example.com"), {Result::pass, "example.com", "reject", "reject", false, true}},
    {"BadAspfIsRelaxed", {{"_dmarc.example.com", {"v=DMARC1; p=reject; aspf=yes"}}}, {"user@example.com"},
     spf_pass("mail.example.com"), {Result::pass, "example.com", "reject", "reject", true, false}},
    {"OverlongAdkimIsRelaxed", {{"_dmarc.example.com", {"v=DMARC1; p=reject; adkim=" + std::string(38, 'r')}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}},
    {"PctNotANumberIs100", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=abc"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}, 99},
    {"EmptyPctIs100", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct="}}}, {"user@example.com"}, kNothingPasses,
     {Result::fail, "example.com", "reject", "reject", false, false}, 99},
    {"PctWithAPercentSignIs100", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=50%"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}, 99},
    {"PctOver100Is100", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=150"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}, 99},
    {"PctOfFourDigitsIs100", {{"_dmarc.example.com", {"v=DMARC1; p=reject; pct=0050"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}, 99},
    {"Pct100IsValid", {{"_dmarc.example.com", {"v=DMARC1; p=quarantine; pct=100"}}}, {"user@example.com"},
     kNothingPasses, {Result::fail, "example.com", "quarantine", "quarantine", false, false}, 99},
    {"ReportTagErrorsDoNotCostThePolicy",
     {{"_dmarc.example.com", {"v=DMARC1; p=reject; fo=x; rf=zzz; ri=abc; ruf=" + std::string(300, 'a') + "; x=y"}}},
     {"user@example.com"}, kNothingPasses, {Result::fail, "example.com", "reject", "reject", false, false}},
    {"OverlongPolicyValueIsNone", {{"_dmarc.example.com", {"v=DMARC1; p=" + std::string(600, 'r')}}},
     {"user@example.com"}, kNothingPasses, {Result::none, "example.com", "", "none", false, false}},

    // The From verdict.
    {"NoFromIsPermerror", {{"_dmarc.example.com", {kReject}}}, {}, spf_pass("example.com"),
     {Result::permerror, "", "", "none", false, false}},
    {"EmptyGroupIsPermerror", {{"_dmarc.example.com", {kReject}}}, {"Undisclosed recipients:;"},
     spf_pass("example.com"), {Result::permerror, "", "", "none", false, false}},
    {"UnparseableFromIsPermerror", {{"_dmarc.example.com", {kReject}}}, {"user@example.com <"},
     spf_pass("example.com"), {Result::permerror, "", "", "none", false, false}},
    {"DomainLiteralIsPermerror", {}, {"user@[192.0.2.1]"}, spf_pass("example.com"),
     {Result::permerror, "", "", "none", false, false}},
    // A From that does not parse is no way around p=reject: the domains
    // read leniently from it are evaluated too.
    {"UnparseableFromWithAFailingDomainFails",
     {{"_dmarc.victim.example", {kReject}}, {"_dmarc.evil.example", {"v=DMARC1; p=none"}}},
     {"ceo@victim.example <x@evil.example>"}, {"pass", "evil.example", {"evil.example"}},
     {Result::fail, "victim.example", "reject", "reject", false, false}},
    {"UnparseableFromEndingInASemicolonFails", {{"_dmarc.victim.example", {kReject}}}, {"ceo@victim.example;"},
     {"pass", "evil.example", {"evil.example"}}, {Result::fail, "victim.example", "reject", "reject", false, false}},
    {"FieldPastTheEighthFails", {{"_dmarc.victim.example", {kReject}}, {"_dmarc.evil.example", {"v=DMARC1; p=none"}}},
     {"x@evil.example", "x@evil.example", "x@evil.example", "x@evil.example", "x@evil.example", "x@evil.example",
      "x@evil.example", "x@evil.example", "ceo@victim.example"},
     {"pass", "evil.example", {"evil.example"}}, {Result::fail, "victim.example", "reject", "reject", false, false}},
    {"DomainNotAHostNameFails", {{"_dmarc.victim.example", {kReject}}}, {"ceo@victim.example?="},
     kNothingPasses, {Result::fail, "victim.example", "reject", "reject", false, false}},
    {"UnparseableFromWithOnlyAPassIsPermerror", {{"_dmarc.victim.example", {kReject}}}, {"ceo@victim.example;"},
     spf_pass("victim.example"), {Result::permerror, "", "", "none", false, false}},

    // Several authors (RFC 7489 6.6.1): every domain is evaluated, the
    // strictest policy among those that fail applies.
    {"OneDomainInSeveralAddressesIsOneEvaluation", {{"_dmarc.example.com", {kReject}}},
     {"a@example.com, b@example.com"}, spf_pass("example.com"),
     {Result::pass, "example.com", "reject", "reject", true, false}},
    {"OneAuthorInTwoFieldsIsOneEvaluation", {{"_dmarc.example.com", {kReject}}}, {"a@example.com", "a@example.com"},
     spf_pass("example.com"), {Result::pass, "example.com", "reject", "reject", true, false}},
    {"SecondAuthorIsNoWayAroundReject", {{"_dmarc.evil.example", {kReject}}}, {"ceo@evil.example, me@relay.example"},
     spf_pass("relay.example"), {Result::fail, "evil.example", "reject", "reject", false, false}},
    {"FirstAuthorIsNoWayAroundReject", {{"_dmarc.evil.example", {kReject}}}, {"me@relay.example, ceo@evil.example"},
     spf_pass("relay.example"), {Result::fail, "evil.example", "reject", "reject", false, false}},
    {"SecondFieldIsNoWayAroundReject", {{"_dmarc.evil.example", {kReject}}}, {"me@relay.example", "ceo@evil.example"},
     spf_pass("relay.example"), {Result::fail, "evil.example", "reject", "reject", false, false}},
    {"StrictestFailingPolicyWins",
     {{"_dmarc.q.example", {"v=DMARC1; p=quarantine"}}, {"_dmarc.n.example", {"v=DMARC1; p=none"}},
      {"_dmarc.evil.example", {kReject}}},
     {"a@n.example, b@q.example, c@evil.example"}, kNothingPasses,
     {Result::fail, "evil.example", "reject", "reject", false, false}},
    {"StrictestAfterPct",
     {{"_dmarc.q.example", {"v=DMARC1; p=quarantine"}}, {"_dmarc.evil.example", {"v=DMARC1; p=reject; pct=50"}}},
     {"c@evil.example, b@q.example"}, kNothingPasses,
     {Result::fail, "evil.example", "reject", "quarantine", false, false}, 70},
    {"FirstOfEqualPolicies", {{"_dmarc.evil.example", {kReject}}, {"_dmarc.bad.example", {kReject}}},
     {"a@bad.example", "b@evil.example"}, kNothingPasses,
     {Result::fail, "bad.example", "reject", "reject", false, false}},
    {"FailBeforeTemperror", {{"_dmarc.evil.example", {kReject}}}, {"a@slow.example, b@evil.example"}, kNothingPasses,
     {Result::fail, "evil.example", "reject", "reject", false, false}, std::nullopt, {"_dmarc.slow.example"}},
    {"TemperrorBeforeNone", {}, {"a@nodmarc.example, b@slow.example"}, kNothingPasses,
     {Result::temperror, "slow.example", "", "none", false, false}, std::nullopt, {"_dmarc.slow.example"}},
    {"EveryAuthorPassingIsPass", {{"_dmarc.example.com", {kReject}}, {"_dmarc.example.net", {kReject}}},
     {"a@example.com, b@example.net"}, {"pass", "example.com", {"example.net"}},
     {Result::pass, "example.com", "reject", "reject", true, false}},
    {"AnAuthorWithoutRecordIsNone", {{"_dmarc.example.com", {kReject}}}, {"a@example.com, b@nodmarc.example"},
     spf_pass("example.com"), {Result::none, "nodmarc.example", "", "none", false, false}},
    {"UnparseableSecondFieldStillEvaluatesTheFirst", {{"_dmarc.evil.example", {kReject}}},
     {"ceo@evil.example", "garbage <"}, kNothingPasses,
     {Result::fail, "evil.example", "reject", "reject", false, false}},
    {"UnevaluableAuthorBesidesAPassIsPermerror", {{"_dmarc.example.com", {kReject}}},
     {"a@example.com, user@[192.0.2.1]"}, spf_pass("example.com"),
     {Result::permerror, "", "", "none", false, false}},
};

/* CHECKER's verdict with DNS answering at once: it must not wait. */
Verdict at_once(const Checker& checker, const FromHeader& from, const Identifiers& ids, dns::TxtLookups& dns,
                const PercentRoll& roll = {}) {
    auto verdict = checker.check(from, ids, dns, roll);
    if (!verdict) throw std::logic_error("check() waits although every answer is in");
    return std::move(*verdict);
}

/* CHECKER's verdict with DNS holding its answers until check() waits,
 * the domains decided kept from call to call as a session keeps them;
 * ROUNDS counts the calls that waited. */
Verdict replayed(const Checker& checker, const FromHeader& from, const Identifiers& ids,
                 test_support::FakeTxtLookups& dns, const PercentRoll& roll, int& rounds) {
    dns.hold_answers();
    Decided decided;
    for (;;) {
        if (auto verdict = checker.check(from, ids, dns, decided, roll)) return std::move(*verdict);
        ++rounds;
        if (!dns.release_all()) throw std::logic_error("check() waits, but asked for nothing");
    }
}

class DmarcTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { checker_ = std::make_unique<Checker>(kList); }
    static void TearDownTestSuite() { checker_.reset(); }

    Verdict check(const FromHeader& from, const Identifiers& ids, const PercentRoll& roll = {}) {
        return at_once(*checker_, from, ids, dns_, roll);
    }

    static std::unique_ptr<Checker> checker_;
    test_support::FakeTxtLookups dns_;
};

std::unique_ptr<Checker> DmarcTest::checker_;

class DmarcCaseTest : public DmarcTest, public ::testing::WithParamInterface<Case> {};

TEST_P(DmarcCaseTest, GivesTheVerdictRfc7489Requires) {
    const Case& test = GetParam();
    for (const auto& [name, records] : test.txt) dns_.add(name, records);
    for (const auto& name : test.timeouts) dns_.time_out(name);
    PercentRoll roll;
    if (test.roll) roll = [rolled = *test.roll] { return rolled; };

    const Verdict verdict = check(from_fields(test.from), test.ids, roll);
    EXPECT_EQ(verdict.result, test.expected.result) << verdict.reason;
    EXPECT_EQ(verdict.from_domain, test.expected.from_domain);
    EXPECT_EQ(verdict.published, test.expected.published);
    EXPECT_EQ(verdict.policy, test.expected.policy);
    EXPECT_EQ(verdict.spf_aligned, test.expected.spf_aligned);
    EXPECT_EQ(verdict.dkim_aligned, test.expected.dkim_aligned);
    if (verdict.result != Result::pass && verdict.result != Result::fail) {
        EXPECT_NE(verdict.reason, "");
    }

    // The same with the answers held until the check says it waits.
    test_support::FakeTxtLookups held;
    for (const auto& [name, records] : test.txt) held.add(name, records);
    for (const auto& name : test.timeouts) held.time_out(name);
    int rounds = 0;
    const Verdict again = replayed(*checker_, from_fields(test.from), test.ids, held, roll, rounds);
    EXPECT_EQ(again.result, verdict.result);
    EXPECT_EQ(again.from_domain, verdict.from_domain);
    EXPECT_EQ(again.published, verdict.published);
    EXPECT_EQ(again.policy, verdict.policy);
    EXPECT_EQ(again.spf_aligned, verdict.spf_aligned);
    EXPECT_EQ(again.dkim_aligned, verdict.dkim_aligned);
    EXPECT_EQ(again.reason, verdict.reason);
    EXPECT_EQ(again.author_domains, verdict.author_domains);
    // Every author domain's record is asked for in the first round; only
    // the organizational domains' fallbacks need another.
    EXPECT_LE(rounds, 2);
    EXPECT_EQ(held.out(), 0u);
}

std::string case_name(const ::testing::TestParamInfo<Case>& param) { return param.param.name; }

INSTANTIATE_TEST_SUITE_P(Rfc7489, DmarcCaseTest, ::testing::ValuesIn(kCases), case_name);

TEST_F(DmarcTest, RecordsAreAskedForInRfc7489Order) {
    dns_.add("_dmarc.example.co.uk", {kReject});
    check(from_fields({"user@a.b.example.co.uk"}), kNothingPasses);
    EXPECT_EQ(dns_.answered, (std::vector<std::string>{"_dmarc.a.b.example.co.uk", "_dmarc.example.co.uk"}));
}

TEST_F(DmarcTest, OrganizationalRecordNotAskedForWhenTheFromDomainHasOne) {
    dns_.add("_dmarc.sub.example.com", {kReject});
    check(from_fields({"user@sub.example.com"}), kNothingPasses);
    EXPECT_EQ(dns_.answered, std::vector<std::string>{"_dmarc.sub.example.com"});
}

TEST_F(DmarcTest, ReasonsSayWhy) {
    dns_.time_out("_dmarc.slow.example");
    dns_.add("_dmarc.bad.example", {"v=DMARC1; p=bogus"});
    dns_.add("_dmarc.rua.example", {"v=DMARC1; rua=mailto:d@rua.example"});
    const auto reason = [this](const std::string& from) { return check(from_fields({from}), {}).reason; };
    EXPECT_EQ(reason("a@slow.example"), "_dmarc.slow.example: timeout");
    EXPECT_EQ(reason("a@sub.none.example"), "no DMARC record at _dmarc.sub.none.example nor at _dmarc.none.example");
    dns_.add("_dmarc.tags.example", {"v=DMARC1; p=reject; adkim=x; aspf=s; pct=" + std::string(40, '9')});
    dns_.add("_dmarc.nul.example", {"v=DMARC1; p=reject; x=" + std::string(1, '\0')});
    EXPECT_EQ(reason("a@bad.example"),
              "DMARC record at _dmarc.bad.example gives no policy: p=bogus is not none, quarantine or reject");
    dns_.add("_dmarc.nop.example", {"v=DMARC1; sp=reject"});
    EXPECT_EQ(reason("a@nop.example"), "DMARC record at _dmarc.nop.example gives no policy: it has no p=");
    EXPECT_EQ(reason("a@nul.example"), "DMARC record at _dmarc.nul.example gives no policy: it holds a NUL byte");
    EXPECT_EQ(reason("a@tags.example"), "adkim=x, pct= of 40 bytes not valid: defaults used (RFC 7489 6.3)");
    EXPECT_EQ(reason("a@rua.example"), "no valid p= or sp=, read as p=none for its rua= (RFC 7489 6.6.3)");
    EXPECT_EQ(reason("garbage"), "From is not an address list");
}

TEST_F(DmarcTest, WaitsWhileARecordIsMissingAndAsksForEveryAuthorDomainAtOnce) {
    dns_.add("_dmarc.evil.example", {kReject});
    dns_.hold_answers();
    const FromHeader from = from_fields({"a@x.example, ceo@evil.example"});
    EXPECT_FALSE(checker_->check(from, kNothingPasses, dns_));
    EXPECT_EQ(dns_.out(), 2u) << "both records are out together";
    EXPECT_FALSE(checker_->check(from, kNothingPasses, dns_)) << "nothing came yet";
    ASSERT_TRUE(dns_.release_all());
    const auto verdict = checker_->check(from, kNothingPasses, dns_);
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->result, Result::fail);
    EXPECT_EQ(verdict->from_domain, "evil.example");
}

/* A session asks again at each wake until every record is in: a domain
 * decided on an earlier call is not looked up, nor its record read, again
 * (16 records of 64 kB, answered one at a time, each read once). */
TEST_F(DmarcTest, ADecidedAuthorDomainIsNeitherLookedUpNorReadAgain) {
    std::string large = "v=DMARC1; p=reject";
    while (large.size() < 64000) large += "; a=";
    std::vector<std::string> names;
    std::string authors;
    for (size_t i = 0; i < kMaxAuthorDomains; ++i) {
        const std::string domain = "d" + std::to_string(i) + ".evil.example";
        names.push_back("_dmarc." + domain);
        dns_.add(names.back(), {large});
        authors += (i == 0 ? "x@" : ", x@") + domain;
    }
    const FromHeader from = from_fields({authors});
    dns_.hold_answers();
    Decided decided;
    EXPECT_FALSE(checker_->check(from, kNothingPasses, dns_, decided));
    std::optional<Verdict> verdict;
    for (const std::string& name : names) {
        EXPECT_FALSE(verdict) << "a verdict before " << name << " came";
        dns_.release(name);
        verdict = checker_->check(from, kNothingPasses, dns_, decided);
    }
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->result, Result::fail);
    EXPECT_EQ(verdict->policy, "reject");
    EXPECT_EQ(decided.size(), kMaxAuthorDomains);
    for (size_t i = 0; i < names.size(); ++i) {
        // Asked on the first call and on each call before its answer came,
        // then answered once.
        EXPECT_EQ(std::count(dns_.answered.begin(), dns_.answered.end(), names[i]), static_cast<long>(i + 2))
            << names[i];
    }
}

TEST_F(DmarcTest, TheOrganizationalRecordIsAskedForOnceTheFromDomainHasNone) {
    dns_.add("_dmarc.example.co.uk", {"v=DMARC1; p=quarantine"});
    dns_.hold_answers();
    const FromHeader from = from_fields({"user@a.b.example.co.uk"});
    EXPECT_FALSE(checker_->check(from, kNothingPasses, dns_));
    ASSERT_TRUE(dns_.release_all());
    EXPECT_FALSE(checker_->check(from, kNothingPasses, dns_));
    EXPECT_EQ(dns_.out(), 1u);
    ASSERT_TRUE(dns_.release_all());
    const auto verdict = checker_->check(from, kNothingPasses, dns_);
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->published, "quarantine");
    EXPECT_EQ(dns_.answered.back(), "_dmarc.example.co.uk");
}

TEST_F(DmarcTest, AFromWithoutADomainToLookUpNeverWaits) {
    dns_.hold_answers();
    for (const std::string value : {"", "user@[192.0.2.1]", "Undisclosed recipients:;", "garbage <"}) {
        const auto verdict = checker_->check(from_fields(value.empty() ? std::vector<std::string>{}
                                                                       : std::vector<std::string>{value}),
                                             kNothingPasses, dns_);
        ASSERT_TRUE(verdict) << value;
        EXPECT_EQ(verdict->result, Result::permerror) << value;
    }
    EXPECT_EQ(dns_.out(), 0u);
}

TEST_F(DmarcTest, StartLookupsStartsTheFromAndOrganizationalRecords) {
    checker_->start_lookups(from_fields({"User <user@a.b.Example.CO.UK>"}), dns_);
    EXPECT_EQ(dns_.started, (std::vector<std::string>{"_dmarc.a.b.example.co.uk", "_dmarc.example.co.uk"}));
    EXPECT_TRUE(dns_.answered.empty());
}

TEST_F(DmarcTest, StartLookupsOnceWhenTheFromDomainIsOrganizational) {
    checker_->start_lookups(from_fields({"user@example.com"}), dns_);
    EXPECT_EQ(dns_.started, std::vector<std::string>{"_dmarc.example.com"});
}

TEST_F(DmarcTest, StartLookupsForEachAuthorDomain) {
    checker_->start_lookups(from_fields({"a@x.example, b@sub.y.example", "c@x.example, user@[192.0.2.1]"}), dns_);
    EXPECT_EQ(dns_.started,
              (std::vector<std::string>{"_dmarc.x.example", "_dmarc.sub.y.example", "_dmarc.y.example"}));
}

TEST_F(DmarcTest, StartLookupsForTheDomainsReadLeniently) {
    checker_->start_lookups(from_fields({"a@x.example", "ceo@victim.example <y@X.example"}), dns_);
    EXPECT_EQ(dns_.started, (std::vector<std::string>{"_dmarc.x.example", "_dmarc.victim.example"}));
}

TEST_F(DmarcTest, StartLookupsNothingWithoutAFromDomain) {
    checker_->start_lookups(from_fields({}), dns_);
    checker_->start_lookups(from_fields({"user@[192.0.2.1]"}), dns_);
    checker_->start_lookups(from_fields({"Undisclosed recipients:;"}), dns_);
    EXPECT_TRUE(dns_.started.empty());
}

TEST_F(DmarcTest, VerdictNamesTheAuthorDomainsAndWhatWasNotEvaluated) {
    dns_.add("_dmarc.evil.example", {kReject});
    const Verdict several = check(from_fields({"ceo@evil.example, me@relay.example", "x@Evil.Example"}), kNothingPasses);
    EXPECT_EQ(several.author_domains, (std::vector<std::string>{"evil.example", "relay.example"}));
    EXPECT_EQ(several.from_problem, "");
    const Verdict broken = check(from_fields({"ceo@evil.example", "garbage <"}), kNothingPasses);
    EXPECT_EQ(broken.result, Result::fail);
    EXPECT_EQ(broken.author_domains, std::vector<std::string>{"evil.example"});
    EXPECT_EQ(broken.from_problem, "From is not an address list");
    const Verdict lenient = check(from_fields({"a@relay.example", "ceo@evil.example <"}), kNothingPasses);
    EXPECT_EQ(lenient.result, Result::fail);
    EXPECT_EQ(lenient.from_domain, "evil.example");
    EXPECT_EQ(lenient.author_domains, (std::vector<std::string>{"relay.example", "evil.example"}));
    EXPECT_EQ(lenient.from_problem, "From is not an address list");
    const Verdict none = check(from_fields({}), kNothingPasses);
    EXPECT_TRUE(none.author_domains.empty());
    EXPECT_EQ(none.from_problem, "no From field");
    EXPECT_EQ(none.reason, "no From field");
}

TEST_F(DmarcTest, AtMostSixteenAuthorDomainsAreEvaluated) {
    dns_.add("_dmarc.evil.example", {kReject});
    std::string decoys;
    for (size_t i = 0; i < kMaxAuthorDomains; ++i) decoys += "a@d" + std::to_string(i) + ".example, ";
    const Verdict first = check(from_fields({"ceo@evil.example, " + decoys}), kNothingPasses);
    EXPECT_EQ(first.result, Result::fail);
    EXPECT_EQ(first.policy, "reject");
    EXPECT_EQ(first.author_domains.size(), kMaxAuthorDomains);
    EXPECT_EQ(first.from_problem, "more than 16 author domains");
    // Behind sixteen others it is not looked up, and the verdict says so.
    dns_.started.clear();
    checker_->start_lookups(from_fields({decoys + "ceo@evil.example"}), dns_);
    EXPECT_EQ(dns_.started.size(), kMaxAuthorDomains);
    const Verdict last = check(from_fields({decoys + "ceo@evil.example"}), kNothingPasses);
    EXPECT_EQ(last.result, Result::permerror);
    EXPECT_EQ(last.reason, "more than 16 author domains");
    // Those read leniently count in the sixteen, after those parsed.
    const Verdict lenient = check(from_fields({decoys, "ceo@evil.example <"}), kNothingPasses);
    EXPECT_EQ(lenient.result, Result::permerror);
    EXPECT_EQ(lenient.author_domains.size(), kMaxAuthorDomains);
}

TEST_F(DmarcTest, FromDomainTooLongForARecordNameFallsBack) {
    std::string from_domain;
    while (from_domain.size() < 240) from_domain += "abcdefghi.";
    from_domain += "example.com";
    dns_.add("_dmarc.example.com", {kReject});
    checker_->start_lookups(from_fields({"user@" + from_domain}), dns_);
    EXPECT_EQ(dns_.started, std::vector<std::string>{"_dmarc.example.com"});
    EXPECT_EQ(check(from_fields({"user@" + from_domain}), kNothingPasses).published, "reject");
}

TEST_F(DmarcTest, DefaultRollSamples) {
    dns_.add("_dmarc.example.com", {"v=DMARC1; p=reject; pct=50"});
    std::map<std::string, int> policies;
    for (int i = 0; i < 1000; ++i) ++policies[check(from_fields({"user@example.com"}), kNothingPasses).policy];
    EXPECT_EQ(policies.size(), 2u);
    EXPECT_GT(policies["reject"], 350);
    EXPECT_GT(policies["quarantine"], 350);
}

TEST_F(DmarcTest, HostileInputNeitherCrashesNorThrows) {
    std::mt19937 generator(7489);
    const std::string alphabet = "<>@,;:()\"\\.[] \t\r\nab=DMARC1vp;\x80\xff";
    const auto random_text = [&](size_t length) {
        std::string text;
        for (size_t i = 0; i < length; ++i) text += alphabet[generator() % alphabet.size()];
        return text;
    };
    for (int i = 0; i < 3000; ++i) {
        test_support::FakeTxtLookups dns;
        dns.add("_dmarc.example.com", {"v=DMARC1;" + random_text(generator() % 400), random_text(40)});
        const std::string from = i % 2 == 0 ? random_text(generator() % 200) : "a@example.com";
        const Identifiers ids{random_text(5), random_text(30), {random_text(30), "example.com"}};
        EXPECT_NO_THROW(checker_->check(from_fields({from}), ids, dns, [&] { return static_cast<unsigned>(generator()); }));
        EXPECT_NO_THROW(checker_->start_lookups(from_fields({from}), dns));
    }
}

TEST(DmarcChecker, ManyCheckersAcrossThreads) {
    std::vector<std::thread> threads;
    std::atomic<int> passes = 0;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&passes] {
            const Checker checker(kList);
            for (int i = 0; i < 200; ++i) {
                test_support::FakeTxtLookups dns;
                dns.add("_dmarc.example.com", {"v=DMARC1; p=reject; adkim=s"});
                const auto verdict = checker.check(from_fields({"user@example.com"}), dkim_pass("example.com"), dns);
                if (verdict && verdict->result == Result::pass) ++passes;
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(passes.load(), 800);
}

TEST_F(DmarcTest, OrganizationalDomainFromThePublicSuffixList) {
    // public_suffix_test.cc runs the list's own test cases.
    EXPECT_EQ(checker_->organizational_domain("a.b.Example.CO.UK."), "example.co.uk");
    EXPECT_EQ(checker_->organizational_domain("www.alice.github.io"), "alice.github.io");
    EXPECT_EQ(checker_->organizational_domain("b.c.kobe.jp"), "b.c.kobe.jp");
    EXPECT_EQ(checker_->organizational_domain("co.uk"), "co.uk");
    EXPECT_EQ(checker_->organizational_domain(".example.com"), "");
}

TEST(DmarcChecker, UnreadableListIsACheckerErrorNamingIt) {
    const std::string path = "/nonexistent/public_suffix_list.dat";
    try {
        const Checker checker(path);
        ADD_FAILURE() << "no error";
    } catch (const CheckerError& error) {
        EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    }
}

TEST(DmarcChecker, ResultNames) {
    EXPECT_EQ(result_name(Result::pass), "pass");
    EXPECT_EQ(result_name(Result::fail), "fail");
    EXPECT_EQ(result_name(Result::none), "none");
    EXPECT_EQ(result_name(Result::temperror), "temperror");
    EXPECT_EQ(result_name(Result::permerror), "permerror");
}

}  // namespace

}  // namespace portcullis::dmarc
