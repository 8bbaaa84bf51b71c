/*
 * dkim_test.cc: dkim::Verifier with its keys from a table, on messages dkimpy ships
 * signed (python3-dkim's test data: RFC 8463's example with an Ed25519
 * and an RSA signature, an Ed25519 message signed by Exim) and on what a
 * hostile sender can send: tampered messages, garbage and too many
 * signatures, keys missing, revoked or too long, missing headers, an
 * empty message; also the stages out of order, LF line ends, the body in
 * small pieces, many verifiers on many threads, finish() on another
 * thread, the key names known at the end of the headers and a key
 * missing from finish()'s answers, and Verdict's summary.  Messages
 * signed at test time are tests/dkim/signed_suite.py's.
 */
#include "checks/dkim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <thread>

#include "support/fake_txt_lookups.h"
#include "support/heap_use.h"
#include "support/mail_message.h"

namespace portcullis::dkim {

void PrintTo(Result result, std::ostream* out) { *out << result_name(result); }

namespace {

using test_support::dkimpy_data;
using test_support::MailMessage;
using test_support::split_message;

// RFC 8463 A.2's Ed25519 key, as dkimpy's tests serve it.
const std::string kBrisbaneKey = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const std::string kBrisbane = "brisbane._domainkey.football.example.com";
const std::string kTest = "test._domainkey.football.example.com";

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

std::string with_crlf(const std::string& lf) {
    std::string out;
    for (const char c : lf) out += c == '\n' ? "\r\n" : std::string(1, c);
    return out;
}

/* The value of MESSAGE's first field NAME, replaced by EDIT's result. */
template <typename Edit>
void edit_field(MailMessage& message, const std::string& name, Edit edit) {
    for (auto& [field, value] : message.fields) {
        if (field == name) {
            value = edit(value);
            return;
        }
    }
    FAIL() << "no field " << name;
}

class DkimTest : public ::testing::Test {
protected:
    void SetUp() override {
        dns_.add(kBrisbane, {kBrisbaneKey});
        dns_.add(kTest, {trimmed(dkimpy_data("test.txt"))});
        rfc8463_ = split_message(dkimpy_data("rfc6376.signed.msg"));
    }

    /* The verdict on MESSAGE, its keys answered from dns_; keys_asked_
     * is what the verifier named to look up. */
    Verdict verified(const MailMessage& message, size_t chunk = 0, const Limits& limits = {}) {
        Verifier verifier(limits);
        test_support::feed(verifier, message, chunk);
        keys_asked_ = verifier.key_names();
        return verifier.finish(test_support::key_answers(verifier, dns_));
    }
    /* The answers for both keys of the RFC 8463 example. */
    KeyAnswers both_keys() {
        KeyAnswers keys;
        for (const auto& name : {kBrisbane, kTest}) keys.emplace(name, *dns_.answer(name));
        return keys;
    }
    Verdict verified_raw(const std::string& raw, size_t chunk = 0) { return verified(split_message(raw), chunk); }
    /* The DNS from now on: these records (a name given twice has two),
     * every other name not found. */
    void serve(const std::vector<std::pair<std::string, std::string>>& records) {
        dns_ = test_support::FakeTxtLookups();
        for (const auto& [name, record] : records) dns_.add(name, {record});
    }

    static std::vector<Result> results(const Verdict& verdict) {
        std::vector<Result> all;
        for (const auto& signature : verdict.signatures) all.push_back(signature.result);
        return all;
    }

    test_support::FakeTxtLookups dns_;
    MailMessage rfc8463_;
    std::vector<std::string> keys_asked_;
};

TEST_F(DkimTest, Rfc8463ExamplePassesBothSignatures) {
    const Verdict verdict = verified(rfc8463_);
    ASSERT_EQ(verdict.signatures.size(), 2u);
    const Signature& ed25519 = verdict.signatures[0];
    EXPECT_EQ(ed25519.result, Result::pass) << ed25519.reason;
    EXPECT_EQ(ed25519.domain, "football.example.com");
    EXPECT_EQ(ed25519.identity, "@football.example.com");
    EXPECT_EQ(ed25519.selector, "brisbane");
    EXPECT_EQ(ed25519.algorithm, "ed25519-sha256");
    EXPECT_EQ(ed25519.b, "9/dsDChY0YMTtD5Eyw3wx7x22BlSJP7M5ECbJ7GWrR45nXlTCGb8l0YBo0wBLR++X5LqmsxXaOYLLJe46l10AQ==");
    EXPECT_EQ(ed25519.key_bits, 0u);
    EXPECT_EQ(ed25519.reason, "");
    const Signature& rsa = verdict.signatures[1];
    EXPECT_EQ(rsa.result, Result::pass) << rsa.reason;
    EXPECT_EQ(rsa.selector, "test");
    EXPECT_EQ(rsa.algorithm, "rsa-sha256");
    EXPECT_EQ(rsa.key_bits, 1024u);
    EXPECT_EQ(verdict.summary(), "pass");
    EXPECT_EQ(verdict.passing_domain(), "football.example.com");
}

TEST_F(DkimTest, RsaSignedMessagePasses) {
    const Verdict verdict = verified_raw(dkimpy_data("rfc6376.signed.rsa.msg"));
    EXPECT_EQ(results(verdict), std::vector<Result>{Result::pass});
}

TEST_F(DkimTest, AnRsaKeyIsParsedOnceForManyMessages) {
    // libopendkim parses the key for each signature it checks; dkim.cc
    // keeps what it parsed (keys_parsed() counts only real parses).
    const MailMessage message = split_message(dkimpy_data("rfc6376.signed.rsa.msg"));
    const uint64_t before = keys_parsed();
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(results(verified(message)), std::vector<Result>{Result::pass}) << "message " << i;
    }
    EXPECT_GE(keys_parsed(), 1u) << "libopendkim's parse never reached dkim.cc";
    EXPECT_LE(keys_parsed() - before, 1u);
    // A record whose p= is no key (base64 of three zero bytes) is kept nowhere.
    serve({{kTest, "v=DKIM1; k=rsa; p=AAAA"}});
    const uint64_t good = keys_parsed();
    for (int i = 0; i < 2; ++i) EXPECT_EQ(results(verified(message)), std::vector<Result>{Result::permerror});
    EXPECT_EQ(keys_parsed(), good);
}

TEST_F(DkimTest, EximSignedEd25519MessagePasses) {
    dns_.add("sed._domainkey.test.ex", {trimmed(dkimpy_data("eximtest.dns"))});
    const Verdict verdict = verified_raw(dkimpy_data("ed25519test2.msg"));
    ASSERT_EQ(verdict.signatures.size(), 1u);
    EXPECT_EQ(verdict.signatures[0].result, Result::pass) << verdict.signatures[0].reason;
    EXPECT_EQ(verdict.signatures[0].domain, "test.ex");
}

TEST_F(DkimTest, TheKeysToLookUpAreKnownAtTheEndOfTheHeaders) {
    Verifier verifier;
    for (const auto& [name, value] : rfc8463_.fields) verifier.header(name, value);
    EXPECT_TRUE(verifier.key_names().empty());
    verifier.end_of_headers();
    EXPECT_EQ(verifier.key_names(), (std::vector<std::string>{kBrisbane, kTest}));
    verifier.body(rfc8463_.body);
    EXPECT_TRUE(dns_.answered.empty());
    const Verdict verdict = verifier.finish(test_support::key_answers(verifier, dns_));
    EXPECT_EQ(dns_.answered, (std::vector<std::string>{kBrisbane, kTest}));
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::pass}));
}

TEST_F(DkimTest, AKeyMissingFromTheAnswersIsTemperror) {
    Verifier verifier;
    test_support::feed(verifier, rfc8463_);
    KeyAnswers only_brisbane;
    only_brisbane.emplace(kBrisbane, *dns_.answer(kBrisbane));
    const Verdict verdict = verifier.finish(only_brisbane);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::temperror}));
    EXPECT_EQ(verdict.signatures[1].reason, "key " + kTest + " was not looked up");
    EXPECT_EQ(verdict.summary(), "pass");

    Verifier without_keys;
    test_support::feed(without_keys, rfc8463_);
    const Verdict none = without_keys.finish({});
    EXPECT_EQ(results(none), (std::vector<Result>{Result::temperror, Result::temperror}));
    EXPECT_EQ(none.signatures[0].reason, "key " + kBrisbane + " was not looked up");
    EXPECT_EQ(none.summary(), "temperror");
}

TEST_F(DkimTest, KeyAnswersAreFoundByTheNameLookupKeyGives) {
    Verifier verifier;
    test_support::feed(verifier, rfc8463_);
    KeyAnswers keys;
    for (const auto& name : verifier.key_names()) {
        std::string written = name + ".";   // as a zone file might have it
        std::transform(written.begin(), written.end(), written.begin(), [](unsigned char c) { return std::toupper(c); });
        keys.emplace(dns::lookup_key(written), *dns_.answer(name));
    }
    EXPECT_EQ(results(verifier.finish(keys)), (std::vector<Result>{Result::pass, Result::pass}));
}

TEST_F(DkimTest, FinishMayRunOnAnotherThread) {
    // As the daemon's pool does the signature checks, off the session's loop.
    Verifier verifier;
    test_support::feed(verifier, rfc8463_, 7);
    const KeyAnswers keys = test_support::key_answers(verifier, dns_);
    Verdict verdict;
    std::thread([&] { verdict = verifier.finish(keys); }).join();
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::pass}));
}

TEST_F(DkimTest, TamperedBodyFails) {
    rfc8463_.body += "P.S. Tampered.\n";
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::fail, Result::fail}));
    EXPECT_EQ(verdict.signatures[0].reason, "body hash does not match");
    EXPECT_EQ(verdict.summary(), "fail");
    EXPECT_EQ(verdict.passing_domain(), "");
}

TEST_F(DkimTest, TamperedSignedHeaderFails) {
    edit_field(rfc8463_, "Subject", [](const std::string&) { return " Is lunch ready?"; });
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::fail, Result::fail}));
    EXPECT_EQ(verdict.signatures[1].reason, "signature does not verify");
}

TEST_F(DkimTest, MissingKeyIsPermerror) {
    serve({});
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::permerror, Result::permerror}));
    EXPECT_EQ(verdict.signatures[0].reason, "no key at " + kBrisbane);
    EXPECT_EQ(verdict.summary(), "permerror");
}

TEST_F(DkimTest, KeyLookupTimeoutIsTemperror) {
    serve({{kBrisbane, kBrisbaneKey}});
    dns_.time_out(kTest);
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::temperror}));
    EXPECT_EQ(verdict.signatures[1].reason, "key lookup of " + kTest + ": timeout");
}

TEST_F(DkimTest, RevokedKeyIsPermerror) {
    serve({{kBrisbane, "v=DKIM1; k=ed25519; p="}, {kTest, "v=DKIM1; p="}});
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::permerror, Result::permerror}));
    EXPECT_EQ(verdict.signatures[1].reason, "key at " + kTest + " is revoked (empty p=)");
}

TEST_F(DkimTest, KeyRecordThatDoesNotParseIsPermerror) {
    serve({{kBrisbane, "v=DKIM1; k=ed25519; p=!!!not base64!!!"}, {kTest, trimmed(dkimpy_data("badk.txt"))}});
    EXPECT_EQ(results(verified(rfc8463_)), (std::vector<Result>{Result::permerror, Result::permerror}));
}

TEST_F(DkimTest, SeveralKeyRecordsArePermerror) {
    serve({{kBrisbane, kBrisbaneKey}, {kBrisbane, kBrisbaneKey}});
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(verdict.signatures[0].result, Result::permerror);
    EXPECT_EQ(verdict.signatures[0].reason, "more than one key record at " + kBrisbane);
}

TEST_F(DkimTest, KeyRecordLongerThanLibopendkimReadsIsPermerror) {
    serve({{kBrisbane, kBrisbaneKey + "; n=" + std::string(1100, 'x')}});
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(verdict.signatures[0].result, Result::permerror);
    EXPECT_EQ(verdict.signatures[0].reason,
              "key record at " + kBrisbane + " is longer than the 1024 bytes libopendkim reads");
}

TEST_F(DkimTest, KeyRecordOverManyStringsIsRead) {
    // Notes after the key make the record longer than one 255-byte string.
    serve({{kBrisbane, kBrisbaneKey + "; n=" + std::string(600, 'x')}});
    EXPECT_EQ(verified(rfc8463_).signatures[0].result, Result::pass);
}

TEST_F(DkimTest, RsaKeyUnderTheMinimumIsPermerror) {
    const Verdict verdict = verified(rfc8463_, 0, Limits{2048, 16});
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::permerror}));
    EXPECT_EQ(verdict.signatures[1].reason, "RSA key of 1024 bits, under the 2048 required (RFC 8301)");
    EXPECT_EQ(verdict.signatures[1].key_bits, 1024u);
}

TEST_F(DkimTest, RsaSha1IsPermerrorWithoutLookingUpItsKey) {
    edit_field(rfc8463_, "DKIM-Signature", [](std::string value) {
        return value.replace(value.find("ed25519-sha256"), 14, "rsa-sha1");
    });
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(verdict.signatures[0].result, Result::permerror);
    EXPECT_EQ(verdict.signatures[0].reason, "rsa-sha1 is not accepted (RFC 8301)");
    EXPECT_EQ(verdict.signatures[0].algorithm, "rsa-sha1");
    EXPECT_EQ(verdict.signatures[1].result, Result::pass);
    EXPECT_EQ(keys_asked_, std::vector<std::string>{kTest});
}

TEST_F(DkimTest, TagGivenTwiceIsPermerror) {
    edit_field(rfc8463_, "DKIM-Signature", [](const std::string& value) { return value + "; s=other"; });
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(verdict.signatures[0].result, Result::permerror);
    EXPECT_EQ(verdict.signatures[0].reason, "tag s= given twice (RFC 6376 3.2)");
    EXPECT_EQ(verdict.signatures[1].result, Result::pass);
}

/* Among the 64 tags a signature may have, the one name given twice is
 * found; past 64 the signature is refused before libopendkim, whose cost
 * grows with the square of the tags (20,000 of them took it 0.5 s), and
 * the other signature is checked as usual. */
TEST_F(DkimTest, ATagGivenTwiceAmongManyIsFoundAndTooManyTagsArePermerror) {
    const auto with_tags = [&](int extra) {
        std::string padding;
        for (int tag = 0; tag < extra; ++tag) padding += "; x" + std::to_string(tag) + "=";
        MailMessage message = rfc8463_;
        edit_field(message, "DKIM-Signature", [&](const std::string& value) { return value + padding + "; x7="; });
        return verified(message);
    };
    const Verdict many = with_tags(40);
    EXPECT_EQ(many.signatures[0].result, Result::permerror);
    EXPECT_EQ(many.signatures[0].reason, "tag x7= given twice (RFC 6376 3.2)");
    EXPECT_EQ(many.signatures[1].result, Result::pass) << many.signatures[1].reason;
    const Verdict too_many = with_tags(20000);
    EXPECT_EQ(too_many.signatures[0].result, Result::permerror);
    EXPECT_EQ(too_many.signatures[0].reason, "20012 tags, over the 64 a signature may have");
    EXPECT_EQ(too_many.signatures[1].result, Result::pass) << too_many.signatures[1].reason;
}

/* A signature whose h= names more fields than any signer needs is
 * refused before libopendkim, which looks each name up among all the
 * fields; the other signature is checked as usual. */
TEST_F(DkimTest, ASignatureNamingTooManyFieldsIsPermerror) {
    std::string names = "from";
    for (int name = 0; name < 300; ++name) names += ":x-" + std::to_string(name);
    edit_field(rfc8463_, "DKIM-Signature", [&](std::string value) {
        const size_t h = value.find(" h=");
        return value.replace(h + 3, value.find(';', h) - h - 3, names);
    });
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(verdict.signatures[0].result, Result::permerror);
    EXPECT_EQ(verdict.signatures[0].reason, "h= names 301 fields, over the 256 a signature may sign");
    EXPECT_EQ(verdict.signatures[1].result, Result::pass) << verdict.signatures[1].reason;
}

TEST_F(DkimTest, SignaturesPastTheLimitArePermerror) {
    const Verdict verdict = verified(rfc8463_, 0, Limits{1024, 1});
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::permerror}));
    EXPECT_EQ(verdict.signatures[1].reason, "too many signatures");
    EXPECT_EQ(verdict.signatures[1].selector, "test");
    EXPECT_EQ(keys_asked_, std::vector<std::string>{kBrisbane});
}

TEST_F(DkimTest, HugeNumberOfSignatures) {
    const auto rsa_signature = rfc8463_.fields[1];
    ASSERT_EQ(rsa_signature.first, "DKIM-Signature");
    rfc8463_.fields.insert(rfc8463_.fields.begin(), 5000, rsa_signature);
    const Verdict verdict = verified(rfc8463_);
    // The seventeenth stands for the 4,986 after it, which are not reported.
    ASSERT_EQ(verdict.signatures.size(), 17u);
    for (size_t i = 0; i < verdict.signatures.size(); ++i) {
        const Signature& signature = verdict.signatures[i];
        if (i < 16) {
            EXPECT_EQ(signature.result, Result::pass) << i << ": " << signature.reason;
        } else {
            EXPECT_EQ(signature.result, Result::permerror) << i;
            EXPECT_EQ(signature.reason, "too many signatures") << i;
        }
    }
    // The sixteen verified signatures share one key, looked up once;
    // Ed25519's, behind them, is not looked up.
    EXPECT_EQ(keys_asked_, std::vector<std::string>{kTest});
}

TEST_F(DkimTest, GarbageSignatureFieldsArePermerror) {
    const std::vector<std::string> garbage = {
        "",
        " garbage",
        " v=1; a=rsa-sha256; d=football.example.com",   // tags missing
        " v=1; a=rsa-sha256; c=simple/simple; d=foot ball!.example; s=test; h=from; bh=AAAA; b=AAAA",
        " v=1; a=rsa-sha512; d=football.example.com; s=test; h=from; bh=AAAA; b=AAAA",
        " v=1; a=rsa-sha256; d=football.example.com; s=a..b; h=from; bh=AAAA; b=AAAA",
        " v=1; a=rsa-sha256; d=football.example.com; s=" + std::string(300, 's') + "; h=from; bh=AAAA; b=AAAA",
        " v=1; a=rsa-sha256; d=football.example.com; s=test; h=subject; bh=AAAA; b=AAAA",   // From unsigned
        " v=2; a=rsa-sha256; d=football.example.com; s=test; h=from; bh=AAAA; b=AAAA",
        " v=1; a=rsa-sha256; d=football.example.com; s=test; h=from; bh=AAAA; b=AAAA; x=1",   // expired
        " v=1; \xff\xfe; d=\x80; s=\x01",
        " v=1; a=rsa-sha256; d=football.example.com; s=test; h=from; bh=A" + std::string(1, '\0') + "A; b=A",
        " ;;;=;=;==;",
        " v=1; a=rsa-sha256; d=football.example.com; s=test; h=from; l=-5; bh=AAAA; b=AAAA",
        " v=1; a=rsa-sha256; d=football.example.com; s=test; h=from; q=smtp; bh=AAAA; b=AAAA",
    };
    std::vector<std::pair<std::string, std::string>> fields;
    for (const auto& value : garbage) fields.emplace_back("DKIM-Signature", value);
    rfc8463_.fields.insert(rfc8463_.fields.begin(), fields.begin(), fields.end());
    const Verdict verdict = verified(rfc8463_, 0, Limits{1024, 100});
    ASSERT_EQ(verdict.signatures.size(), garbage.size() + 2);
    for (size_t i = 0; i < garbage.size(); ++i) {
        EXPECT_EQ(verdict.signatures[i].result, Result::permerror) << i << ": " << verdict.signatures[i].reason;
        EXPECT_NE(verdict.signatures[i].reason, "") << i;
    }
    EXPECT_EQ(verdict.signatures[garbage.size()].result, Result::pass);
    EXPECT_EQ(verdict.signatures[garbage.size() + 1].result, Result::pass);
    EXPECT_EQ(verdict.summary(), "pass");
}

TEST_F(DkimTest, MessageWithoutFromIsPermerror) {
    std::erase_if(rfc8463_.fields, [](const auto& field) { return field.first == "From"; });
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::permerror, Result::permerror}));
    EXPECT_EQ(verdict.signatures[0].reason, "header cannot be verified: no from header field detected");
}

TEST_F(DkimTest, BrokenHeaderFieldsAreLeftOut) {
    rfc8463_.fields.insert(rfc8463_.fields.begin(), {{"", " no name"},
                                                     {"Bad Name", " x"},
                                                     {"Bad:Name", " x"},
                                                     {"X-Nul", std::string(" a\0b", 4)},
                                                     {"X-Empty", ""}});
    const Verdict verdict = verified(rfc8463_);
    EXPECT_EQ(results(verdict), (std::vector<Result>{Result::pass, Result::pass}));
}

TEST_F(DkimTest, NulInSignedFieldFails) {
    edit_field(rfc8463_, "Subject", [](const std::string& value) { return value + std::string("\0", 1); });
    EXPECT_EQ(results(verified(rfc8463_)), (std::vector<Result>{Result::fail, Result::fail}));
}

TEST_F(DkimTest, UnsignedMessageHasNoSignatures) {
    const Verdict verdict = verified_raw(dkimpy_data("test.message"));
    EXPECT_TRUE(verdict.signatures.empty());
    EXPECT_EQ(verdict.summary(), "none");
    EXPECT_EQ(verdict.passing_domain(), "");
    EXPECT_TRUE(keys_asked_.empty());
}

TEST_F(DkimTest, AMessageInFlightHoldsItsFieldsAndBodyNotLibopendkimsState) {
    // From dkim_eoh on, libopendkim holds some 21 kB a message, and its
    // handle with copies of the fields 3.5 kB more here; until finish()
    // the fields and a small body are held instead, and each signature's
    // tags as written, not as a map (dkim.cc): 3.5 kB a message here,
    // against 9.6 kB with the handle made at once and 6.1 kB with a map.
    using test_support::heap_in_use;
    if (!test_support::heap_measurable()) GTEST_SKIP() << "malloc is not glibc's (a sanitizer build)";
    constexpr size_t kMessages = 200;
    std::vector<std::unique_ptr<Verifier>> in_flight;
    in_flight.reserve(kMessages);
    const size_t before = heap_in_use();
    for (size_t i = 0; i < kMessages; ++i) {
        in_flight.push_back(std::make_unique<Verifier>());
        test_support::feed(*in_flight.back(), rfc8463_);
    }
    const size_t per_message = (heap_in_use() - before) / kMessages;
    EXPECT_LT(per_message, 4'500u) << per_message;
    const KeyAnswers keys = both_keys();
    for (auto& verifier : in_flight) {
        EXPECT_EQ(results(verifier->finish(keys)), (std::vector<Result>{Result::pass, Result::pass}));
    }
}

TEST_F(DkimTest, AHeaderOverOneMebibyteIsNotHeldAndNotVerified) {
    // An MTA passes a header as large as its message size limit.
    MailMessage under = rfc8463_;
    MailMessage over = rfc8463_;
    const std::string filler(1000, 'x');
    for (int i = 0; i < 900; ++i) under.fields.emplace_back("X-Filler", " " + filler);
    for (int i = 0; i < 2000; ++i) over.fields.emplace_back("X-Filler", " " + filler);
    EXPECT_EQ(results(verified(under)), (std::vector<Result>{Result::pass, Result::pass}));

    Verifier verifier;
    const size_t before = test_support::heap_in_use();
    for (const auto& [name, value] : over.fields) verifier.header(name, value);
    verifier.end_of_headers();
    if (test_support::heap_measurable()) {
        EXPECT_LT(test_support::heap_in_use() - before, 200'000u);
    }
    EXPECT_TRUE(verifier.key_names().empty());
    const Verdict verdict = verifier.finish(both_keys());
    ASSERT_EQ(verdict.signatures.size(), 2u);
    for (const Signature& signature : verdict.signatures) {
        EXPECT_EQ(signature.result, Result::permerror);
        EXPECT_EQ(signature.reason, "header over 1 MiB, not verified");
    }
}

TEST_F(DkimTest, EmptyMessage) {
    Verifier verifier;
    EXPECT_TRUE(verifier.finish({}).signatures.empty());
    Verifier with_stages;
    with_stages.end_of_headers();
    EXPECT_TRUE(with_stages.key_names().empty());
    with_stages.body("");
    EXPECT_TRUE(with_stages.finish({}).signatures.empty());
}

TEST_F(DkimTest, FinishWithoutEndOfHeaders) {
    Verifier verifier;
    for (const auto& [name, value] : rfc8463_.fields) verifier.header(name, value);
    verifier.body(rfc8463_.body);
    // The body ended the headers: the key names are known.
    EXPECT_EQ(verifier.key_names(), (std::vector<std::string>{kBrisbane, kTest}));
    EXPECT_EQ(results(verifier.finish(test_support::key_answers(verifier, dns_))),
              (std::vector<Result>{Result::pass, Result::pass}));

    Verifier headers_only;
    for (const auto& [name, value] : rfc8463_.fields) headers_only.header(name, value);
    // No body: the hashes are of an empty one.
    EXPECT_EQ(results(headers_only.finish(both_keys())), (std::vector<Result>{Result::fail, Result::fail}));
}

TEST_F(DkimTest, LateCallsAreIgnoredAndFinishRepeats) {
    Verifier verifier;
    const Verdict first = test_support::verify(verifier, rfc8463_, dns_);
    verifier.header("Subject", " changed");
    verifier.body("more body\r\n");
    verifier.end_of_headers();
    // The same verdict, whatever the answers this time.
    const Verdict again = verifier.finish({});
    EXPECT_EQ(results(again), results(first));
    EXPECT_EQ(results(first), (std::vector<Result>{Result::pass, Result::pass}));
}

TEST_F(DkimTest, CrlfLfAndCrLineEndsAndSmallPiecesGiveTheSameResults) {
    const std::string lf = dkimpy_data("rfc6376.signed.msg");
    ASSERT_EQ(lf.find('\r'), std::string::npos);
    const std::string crlf = with_crlf(lf);
    // Bare CRs end the body's lines only: the header is split at its LFs.
    const size_t body_start = lf.find("\n\n") + 2;
    std::string cr = lf;
    std::replace(cr.begin() + body_start, cr.end(), '\n', '\r');
    const std::map<const std::string*, const char*> names{{&crlf, "CRLF"}, {&lf, "LF"}, {&cr, "CR in the body"}};
    for (const auto& [raw, name] : names) {
        for (const size_t chunk : {0, 1, 2, 7, 64}) {
            EXPECT_EQ(results(verified_raw(*raw, chunk)), (std::vector<Result>{Result::pass, Result::pass}))
                << name << " in pieces of " << chunk;
        }
    }
}

TEST_F(DkimTest, BodyWithoutFinalLineEndIsHashedAsIfItHadOne) {
    ASSERT_TRUE(rfc8463_.body.ends_with("\n"));
    rfc8463_.body.pop_back();
    EXPECT_EQ(results(verified(rfc8463_)), (std::vector<Result>{Result::pass, Result::pass}));
}

TEST_F(DkimTest, ManyVerifiersOnManyThreads) {
    constexpr int kThreads = 8;
    constexpr int kMessages = 25;
    const std::string rsa_key = trimmed(dkimpy_data("test.txt"));
    std::vector<int> passed(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([this, t, &passed, &rsa_key] {
            for (int m = 0; m < kMessages; ++m) {
                test_support::FakeTxtLookups own;
                own.add(kBrisbane, {kBrisbaneKey});
                own.add(kTest, {rsa_key});
                MailMessage message = rfc8463_;
                // Every other message is tampered with.
                if (m % 2 == 1) message.body += "x\n";
                Verifier verifier;
                const Verdict verdict = test_support::verify(verifier, message, own, 7 + t);
                if (verdict.summary() == (m % 2 == 1 ? "fail" : "pass")) ++passed[t];
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(passed[t], kMessages) << "thread " << t;
}

TEST(DkimVerdictTest, SummaryPrefersPassThenFailThenTemperrorThenPermerror) {
    const auto with = [](std::vector<Result> results) {
        Verdict verdict;
        for (const Result result : results) {
            Signature signature;
            signature.result = result;
            signature.domain = std::string(result_name(result)) + ".example";
            verdict.signatures.push_back(signature);
        }
        return verdict;
    };
    EXPECT_EQ(with({}).summary(), "none");
    EXPECT_EQ(with({Result::neutral}).summary(), "none");
    EXPECT_EQ(with({Result::permerror, Result::temperror}).summary(), "temperror");
    EXPECT_EQ(with({Result::permerror, Result::temperror, Result::fail}).summary(), "fail");
    EXPECT_EQ(with({Result::permerror}).summary(), "permerror");
    const Verdict mixed = with({Result::fail, Result::pass, Result::pass});
    EXPECT_EQ(mixed.summary(), "pass");
    EXPECT_EQ(mixed.passing_domain(), "pass.example");
    EXPECT_EQ(with({Result::fail}).passing_domain(), "");
}

TEST(DkimVerdictTest, ResultNames) {
    EXPECT_EQ(result_name(Result::pass), "pass");
    EXPECT_EQ(result_name(Result::fail), "fail");
    EXPECT_EQ(result_name(Result::neutral), "neutral");
    EXPECT_EQ(result_name(Result::temperror), "temperror");
    EXPECT_EQ(result_name(Result::permerror), "permerror");
}

}  // namespace

}  // namespace portcullis::dkim
