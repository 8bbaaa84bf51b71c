/*
 * dmarc.h: DMARC (RFC 7489) for one message, on libopendmarc (the only
 * code that includes its headers) and the Public Suffix List.
 *
 * A Checker is made once per configuration from the Public Suffix List
 * file (the publicsuffix package's public_suffix_list.dat).  For each
 * message:
 *   start_lookups(FROM)  once the headers are in: starts the lookups of
 *                        the DMARC records of each author domain and of
 *                        its organizational domain, in parallel with the
 *                        rest;
 *   check(FROM, IDS, DECIDED)
 *                        the verdict, once SPF and DKIM are known; nullopt
 *                        while a record lookup has not been answered (the
 *                        caller is woken by its TxtLookups and asks again).
 *                        DECIDED, the caller's for the message, keeps the
 *                        verdict of each author domain once its records
 *                        have come, so that asking again neither looks up
 *                        nor reads a record twice (a 64 kB record costs
 *                        its reading); without it, each call starts over.
 * FROM is the message's From header as util/from_header.h parses it, the
 * one parse the policy's from and from.domain also read.  Each distinct
 * author domain is evaluated, the domains() of FROM, then its
 * lenient_domains() (the host names after an '@' in a field that does not
 * parse), the first kMaxAuthorDomains of them in all, and the
 * verdicts are combined as RFC 7489 6.6.1 says, so that no address added
 * to From is a way around a p=reject: when any domain fails, the verdict
 * is the failing one with the strictest policy to apply (the first of
 * equals); else the first temperror; else permerror, when part of From
 * gives no author domain (FromHeader::problem(), or more than
 * kMaxAuthorDomains of them); else the first none; else (every domain
 * passes) the first pass.  So a From that does not parse gives fail when
 * a domain read leniently from it fails (temperror when its lookup
 * fails), and otherwise stays permerror: a domain read leniently that
 * passes never makes it pass.  One domain is one evaluation, however
 * many addresses name it.  Several From fields count as one list of all
 * their addresses.
 *
 * The record is _dmarc.FROM-DOMAIN's TXT, else _dmarc.ORG-DOMAIN's
 * (RFC 7489 6.6.3), screened (dmarc_record.h), then handed to
 * libopendmarc (store_dmarc) to parse.  A lookup that fails is temperror;
 * no record (or more than one) is none, and so is a record without a
 * valid p= or with a bad sp=, unless its rua= names a valid URI: then it
 * counts as p=none.  A bad adkim=, aspf= or pct= (pct=150 too) is read as
 * its default (relaxed, relaxed, 100) and the record keeps its policy
 * (RFC 7489 6.3); the verdict's reason says so.  The
 * organizational domain comes from the Public Suffix List, private rules
 * included; a domain that is itself a public suffix is its own.
 * Alignment is decided here, not by libopendmarc, because 1.4.2 gets it
 * wrong: strict (adkim=s, aspf=s) means the two domains are equal, relaxed
 * that their organizational domains are, with every label counted (1.4.2
 * passes d=mail.example.com under adkim=s for From example.com, and takes
 * x.example.com for example.com).  DMARC passes when a passing SPF
 * identity or a passing DKIM signature is aligned with the From domain.
 *
 * The policy to apply is p=, or sp= for a From domain below the
 * organizational domain whose record came from the organizational domain;
 * when DMARC fails and pct= is under 100, a message outside the sample
 * gets the next milder policy (reject -> quarantine -> none), RFC 7489
 * 6.6.4.  Thread-safe.
 */
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dns/txt_lookups.h"
#include "util/from_header.h"

namespace portcullis::dmarc {

enum class Result { pass, fail, none, temperror, permerror };

/* "pass", "fail", ... as RFC 7489 and RFC 8601 spell them. */
std::string_view result_name(Result result);

/* What SPF and DKIM found, for the alignment checks. */
struct Identifiers {
    std::string spf_result;                    // "pass", "fail", ... "" when SPF did not run
    std::string spf_domain;                    // the domain SPF checked (MAIL FROM, or HELO for <>)
    std::vector<std::string> dkim_passing;     // d= of every passing DKIM signature
};

struct Verdict {
    Result result = Result::none;
    std::string from_domain;     // the author domain the result is for, lower case; "" for permerror
    std::string published;       // "none", "quarantine", "reject": p= or sp= as it applies; "" without a record
    std::string policy;          // what to apply after pct=: "none", "quarantine", "reject" ("none" without a record)
    bool spf_aligned = false;    // a passing SPF identity is aligned (relaxed when there is no usable record)
    bool dkim_aligned = false;   // a passing DKIM signature is aligned (likewise)
    std::string reason;          // why permerror, temperror or none, for the log; on pass or fail, a
                                 // note when the record counted as p=none or a bad tag as its default
    std::vector<std::string> author_domains;   // every author domain evaluated, in From order
    std::string from_problem;    // why part of From was not evaluated; "" when all of it was
};

/* The verdicts of the author domains decided so far for one message, by
 * domain: check() fills it; the caller keeps it for the message, and
 * calls with the same FROM and IDS each time. */
using Decided = std::map<std::string, Verdict, std::less<>>;

class CheckerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/* A number in 0..99, uniform: whether a message falls in the pct= sample
 * is roll() < pct (a number above 99 counts as 99).  Called only for a
 * failing message under a pct= below 100. */
using PercentRoll = std::function<unsigned()>;

class Checker {
public:
    /* Loads the Public Suffix List; throws CheckerError naming the file
     * and why when it cannot. */
    explicit Checker(const std::string& public_suffix_list);
    ~Checker();
    Checker(const Checker&) = delete;
    Checker& operator=(const Checker&) = delete;

    /* DOMAIN's organizational domain (RFC 7489 3.2), lower case; DOMAIN
     * itself when it is a public suffix; "" when it is not a domain name. */
    std::string organizational_domain(std::string_view domain) const;

    void start_lookups(const FromHeader& from, dns::TxtLookups& dns) const;
    /* ROLL defaults to a uniform random number. */
    std::optional<Verdict> check(const FromHeader& from, const Identifiers& ids, dns::TxtLookups& dns,
                                 Decided& decided, const PercentRoll& roll = {}) const;
    /* The same with nothing decided before. */
    std::optional<Verdict> check(const FromHeader& from, const Identifiers& ids, dns::TxtLookups& dns,
                                 const PercentRoll& roll = {}) const;

private:
    std::optional<Verdict> check_domain(const std::string& domain, const Identifiers& ids, dns::TxtLookups& dns,
                                        const PercentRoll& roll) const;

    struct Suffixes;   // dmarc.cc: the loaded list
    std::unique_ptr<Suffixes> suffixes_;
};

}  // namespace portcullis::dmarc
