/*
 * evaluator.cc: conditions, actions and the first-terminal-wins walk.
 */
#include "policy/evaluator.h"

#include <re2/re2.h>

#include <algorithm>

#include "policy/lookups.h"
#include "policy/template.h"
#include "policy/values.h"
#include "util/text.h"

namespace portcullis::policy {

namespace {

FieldValue operand_value(const Operand& operand, const Facts& facts) {
    FieldValue value;
    switch (operand.kind) {
        case Operand::Kind::field:
            return resolve_field(operand.field, operand.argument, facts);
        case Operand::Kind::string:
        case Operand::Kind::word:
            value.kind = FieldValue::Kind::text;
            value.text = operand.text;
            break;
        case Operand::Kind::number:
            value.kind = FieldValue::Kind::number;
            value.number = operand.number;
            break;
        case Operand::Kind::ip:
            value.kind = FieldValue::Kind::ip;
            value.ip = operand.ip;
            break;
    }
    return value;
}

/* Text compares exactly only when a side is a field of type string. */
bool folds_case(const Operand& operand) {
    return !(operand.kind == Operand::Kind::field && field_info(operand.field).type == ValueType::string);
}

/* -1, 0 or 1; nullopt when the two values cannot be ordered. */
std::optional<int> order(const FieldValue& a, const FieldValue& b, bool fold_case) {
    using K = FieldValue::Kind;
    if (a.kind == K::number && b.kind == K::number) return (a.number > b.number) - (a.number < b.number);
    if (a.kind == K::ip || b.kind == K::ip) {
        const auto left = a.kind == K::ip ? std::optional(a.ip) : parse_ip(a.text);
        const auto right = b.kind == K::ip ? std::optional(b.ip) : parse_ip(b.text);
        if (!left || !right) return std::nullopt;
        return *left == *right ? 0 : 1;
    }
    if (a.kind == K::flag || b.kind == K::flag) return a.str() == b.str() ? 0 : 1;
    if (a.kind == K::text && b.kind == K::text) {
        if (fold_case) return equals_nocase(a.text, b.text) ? 0 : 1;
        return a.text.compare(b.text) < 0 ? -1 : (a.text == b.text ? 0 : 1);
    }
    return std::nullopt;
}

bool is_dnsbl_value(const Operand& operand) {
    return operand.kind == Operand::Kind::field && operand.field == FieldId::dnsbl;
}

bool is_pending(const FieldValue& value) { return value.kind == FieldValue::Kind::pending; }

/* A condition's value: true, false, or nullopt while a fact is awaited. */
using Truth = std::optional<bool>;

bool is_dnsbl_equality(const Condition& condition) {
    return (condition.op == Condition::Op::eq || condition.op == Condition::Op::ne) &&
           (is_dnsbl_value(condition.lhs) || is_dnsbl_value(condition.rhs));
}

/* dnsbl("zone") == IP holds when IP is any of the list's return codes
 * (a list may answer several), != when it is none of them. */
Truth dnsbl_equality(const Condition& condition, const Facts& facts) {
    const bool left = is_dnsbl_value(condition.lhs);
    const Operand& list = left ? condition.lhs : condition.rhs;
    const FieldValue other = operand_value(left ? condition.rhs : condition.lhs, facts);
    if (is_pending(other)) return std::nullopt;
    const auto wanted = other.kind == FieldValue::Kind::ip ? std::optional(other.ip) : parse_ip(other.str());
    if (!wanted) return condition.op == Condition::Op::ne;
    const auto codes = dnsbl_codes(resolve_field(FieldId::client_ip, "", facts), list.argument, facts);
    if (!codes) return std::nullopt;
    const bool found = std::find(codes->begin(), codes->end(), *wanted) != codes->end();
    return found == (condition.op == Condition::Op::eq);
}

Truth compare(const Condition& condition, const Facts& facts) {
    if (is_dnsbl_equality(condition)) return dnsbl_equality(condition, facts);
    const FieldValue lhs = operand_value(condition.lhs, facts);
    const FieldValue rhs = operand_value(condition.rhs, facts);
    if (is_pending(lhs) || is_pending(rhs)) return std::nullopt;
    if (lhs.kind == FieldValue::Kind::absent || rhs.kind == FieldValue::Kind::absent) {
        return condition.op == Condition::Op::ne;
    }
    const auto result = order(lhs, rhs, folds_case(condition.lhs) && folds_case(condition.rhs));
    if (!result) return condition.op == Condition::Op::ne;
    switch (condition.op) {
        case Condition::Op::eq: return *result == 0;
        case Condition::Op::ne: return *result != 0;
        case Condition::Op::lt: return *result < 0;
        case Condition::Op::gt: return *result > 0;
        case Condition::Op::le: return *result <= 0;
        case Condition::Op::ge: return *result >= 0;
    }
    return false;
}

Truth in_list(const Condition& condition, const Facts& facts) {
    const FieldValue value = operand_value(condition.lhs, facts);
    if (is_pending(value)) return std::nullopt;
    if (value.kind == FieldValue::Kind::absent) return false;
    if (value.kind == FieldValue::Kind::ip && condition.list->kind() == ListKind::ip) {
        return condition.list->contains_ip(value.ip);
    }
    const std::string text = value.str();
    return folds_case(condition.lhs) ? condition.list->contains_text_nocase(text) : condition.list->contains_text(text);
}

Truth in_map(const Condition& condition, const Facts& facts) {
    const FieldValue value = operand_value(condition.lhs, facts);
    const FieldValue key = operand_value(condition.rhs, facts);
    if (is_pending(value) || is_pending(key)) return std::nullopt;
    if (value.kind == FieldValue::Kind::absent || key.kind == FieldValue::Kind::absent) return false;
    const std::string text = value.str();
    for (const auto& candidate : condition.map->lookup(key.str())) {
        if (equals_nocase(candidate, text)) return true;
    }
    return false;
}

Truth in_dnsbl(const Condition& condition, const Facts& facts) {
    const auto codes = dnsbl_codes(operand_value(condition.lhs, facts), condition.zone, facts);
    if (!codes) return std::nullopt;
    return !codes->empty();
}

Truth matches(const Condition& condition, const Facts& facts) {
    const FieldValue value = operand_value(condition.lhs, facts);
    if (is_pending(value)) return std::nullopt;
    if (value.kind == FieldValue::Kind::absent) return condition.negated;
    return RE2::PartialMatch(value.str(), *condition.regex) != condition.negated;
}

/* The name a dnsbl condition or value in NODE would look up, if any. */
std::optional<std::string> lookup_name(const Condition& node, const Operand& operand, const Facts& facts) {
    if (is_dnsbl_value(operand)) return dnsbl_name(resolve_field(FieldId::client_ip, "", facts), operand.argument);
    if (node.kind == Condition::Kind::in_dnsbl && &operand == &node.lhs) {
        return dnsbl_name(operand_value(operand, facts), node.zone);
    }
    return std::nullopt;
}

/* Start every lookup CONDITION may need, so that they run side by side. */
void prefetch_lookups(const Condition& condition, const Facts& facts) {
    if (condition.left) prefetch_lookups(*condition.left, facts);
    if (condition.right) prefetch_lookups(*condition.right, facts);
    for (const Operand* operand : {&condition.lhs, &condition.rhs}) {
        if (const auto name = lookup_name(condition, *operand, facts)) facts.lookups->addresses(*name);
    }
}

Verdict make_verdict(const Rule& rule, const Facts& facts) {
    Verdict verdict;
    verdict.rule = &rule;
    switch (rule.action) {
        case ActionKind::accept: verdict.outcome = Outcome::accept; break;
        case ActionKind::reject: verdict.outcome = Outcome::reject; break;
        case ActionKind::tempfail: verdict.outcome = Outcome::tempfail; break;
        case ActionKind::discard: verdict.outcome = Outcome::discard; break;
        case ActionKind::quarantine:
            verdict.outcome = Outcome::quarantine;
            verdict.text.push_back(clean_line(expand_text(rule.text, facts)));
            return verdict;
        default: return verdict;   // not a terminal action
    }
    if (verdict.outcome == Outcome::reject || verdict.outcome == Outcome::tempfail) {
        verdict.code = rule.reply.code;
        verdict.xcode = rule.reply.xcode;
        verdict.text = reply_lines(expand_text(rule.reply.text, facts));
    }
    return verdict;
}

/* The non-terminal actions that cannot refuse. */
void add_effect(const Rule& rule, const Facts& facts, std::vector<Effect>& effects) {
    Effect effect;
    effect.rule = &rule;
    if (rule.action == ActionKind::add_header) {
        effect.kind = Effect::Kind::add_header;
        effect.name = rule.header_name;
        effect.value = clean_line(expand_text(rule.text, facts));
    } else if (rule.action == ActionKind::log) {
        effect.kind = Effect::Kind::log;
        effect.value = clean_line(expand_text(rule.text, facts));
    } else {
        return;
    }
    effects.push_back(std::move(effect));
}

/* A greylist or ratelimit rule's ANSWER: nullopt when the unit passes
 * (noted in EFFECTS), else the refusal. */
std::optional<Verdict> stateful_verdict(const Rule& rule, StatefulAnswer answer, const Facts& facts,
                                        std::vector<Effect>& effects) {
    if (answer.kind == StatefulAnswer::Kind::pass) {
        Effect effect;
        effect.kind = Effect::Kind::passed;
        effect.rule = &rule;
        effect.value = std::move(answer.note);
        effects.push_back(std::move(effect));
        return std::nullopt;
    }
    Verdict verdict;
    verdict.rule = &rule;
    verdict.note = std::move(answer.note);
    if (answer.kind == StatefulAnswer::Kind::unavailable) {
        verdict.outcome = Outcome::tempfail;
        verdict.code = "451";
        verdict.xcode = "4.3.0";
        verdict.text = {"Temporary failure, please try again later"};
        return verdict;
    }
    verdict.outcome = rule.reply.code.starts_with('5') ? Outcome::reject : Outcome::tempfail;
    verdict.code = rule.reply.code;
    verdict.xcode = rule.reply.xcode;
    Facts with_wait = facts;
    with_wait.greylist_wait = answer.wait_seconds;
    verdict.text = reply_lines(expand_text(rule.reply.text, with_wait));
    return verdict;
}

StatefulAnswer unavailable_without_store() {
    StatefulAnswer answer;
    answer.note = "reason=store-unavailable";
    return answer;
}

/* The key's values; a key whose fields are all empty (no auth.user
 * before AUTH, the null sender) counts nothing: nullopt. */
std::optional<std::vector<std::string>> ratelimit_key(const Rule& rule, const Facts& facts) {
    std::vector<std::string> key;
    bool any = false;
    for (const Operand& field : rule.ratelimit.key) {
        key.push_back(operand_value(field, facts).str());
        any = any || !key.back().empty();
    }
    if (!any) return std::nullopt;
    return key;
}

/* The store's answer to a greylist or ratelimit RULE in RUN: asked once,
 * nullopt until it comes. */
std::optional<StatefulAnswer> stateful_answer(const Rule& rule, const Facts& facts, StatefulChecks* stateful,
                                              StageRun& run) {
    auto& asked = run.asked[&rule];
    if (!asked) {
        asked = std::make_shared<StageRun::Asked>();
        std::optional<std::vector<std::string>> key;
        if (rule.action == ActionKind::ratelimit && !(key = ratelimit_key(rule, facts))) {
            asked->answer = StatefulAnswer{StatefulAnswer::Kind::pass, 0, "reason=no-key"};
        } else if (!stateful) {
            asked->answer = unavailable_without_store();
        } else {
            // DONE may come during the call (there is nobody to wake then)
            // or later, when the caller waits for it.
            auto done = [slot = std::weak_ptr(asked), wake = run.wake](StatefulAnswer answer) {
                const auto asked_now = slot.lock();
                if (!asked_now) return;
                asked_now->answer = std::move(answer);
                if (asked_now->waited && wake) wake();
            };
            if (rule.action == ActionKind::greylist) stateful->greylist(rule.greylist, facts, std::move(done));
            else stateful->ratelimit(rule.ratelimit, *key, std::move(done));
            asked->waited = !asked->answer;
        }
    }
    return asked->answer;
}

/* What a monitor rule would have done: WOULD_BE, or (add-header) no verdict. */
Effect monitor_effect(const Rule& rule, Verdict would_be = {}) {
    Effect effect;
    effect.kind = Effect::Kind::monitored;
    effect.rule = &rule;
    effect.would_be = std::move(would_be);
    return effect;
}

}  // namespace

std::string verdict_label(const Verdict& verdict) {
    const Rule* rule = verdict.rule;
    if (rule && (rule->action == ActionKind::greylist || rule->action == ActionKind::ratelimit)) {
        return std::string(action_name(rule->action)) + (verdict.outcome == Outcome::reject ? " reject" : " defer");
    }
    return std::string(outcome_name(verdict.outcome));
}

std::string_view outcome_name(Outcome outcome) {
    switch (outcome) {
        case Outcome::none: return "none";
        case Outcome::accept: return "accept";
        case Outcome::reject: return "reject";
        case Outcome::tempfail: return "tempfail";
        case Outcome::discard: return "discard";
        case Outcome::quarantine: return "quarantine";
    }
    return "?";
}

std::optional<bool> condition_holds(const Condition& condition, const Facts& facts) {
    switch (condition.kind) {
        case Condition::Kind::all_of: {
            // Decided by either side being false, even with the other unknown.
            const Truth left = condition_holds(*condition.left, facts);
            if (left == false) return false;
            const Truth right = condition_holds(*condition.right, facts);
            if (right == false) return false;
            if (!left || !right) return std::nullopt;
            return true;
        }
        case Condition::Kind::any_of: {
            const Truth left = condition_holds(*condition.left, facts);
            if (left == true) return true;
            const Truth right = condition_holds(*condition.right, facts);
            if (right == true) return true;
            if (!left || !right) return std::nullopt;
            return false;
        }
        case Condition::Kind::negation: {
            const Truth inner = condition_holds(*condition.left, facts);
            if (!inner) return std::nullopt;
            return !*inner;
        }
        case Condition::Kind::truth: {
            const FieldValue value = operand_value(condition.lhs, facts);
            if (is_pending(value)) return std::nullopt;
            return value.kind == FieldValue::Kind::flag && value.flag;
        }
        case Condition::Kind::compare:
            return compare(condition, facts);
        case Condition::Kind::match:
            return matches(condition, facts);
        case Condition::Kind::in_list:
            return in_list(condition, facts);
        case Condition::Kind::in_map:
            return in_map(condition, facts);
        case Condition::Kind::in_dnsbl:
            return in_dnsbl(condition, facts);
    }
    return false;
}

namespace {

/* Whether every text and key RULE's action reads is known: the verdict,
 * the effect and the store's key are made only from known facts. */
bool action_facts_known(const Rule& rule, const Facts& facts) {
    bool known = fields_known(rule.reply.text, facts);
    known = fields_known(rule.text, facts) && known;
    for (const Operand& field : rule.ratelimit.key) {
        if (operand_value(field, facts).kind == FieldValue::Kind::pending) known = false;
    }
    return known;
}

}  // namespace

bool evaluate_stage(const Policy& policy, StageRun& run, const Facts& facts, bool monitor_all,
                    RuleObserver* observer, StatefulChecks* stateful) {
    const auto& rules = policy.stage_rules(run.stage);
    StageResult& result = run.result;
    for (; run.next_rule < rules.size(); ++run.next_rule) {
        const Rule& rule = rules[run.next_rule];
        if (rule.condition && facts.lookups) prefetch_lookups(*rule.condition, facts);
        const Truth applies = rule.condition ? condition_holds(*rule.condition, facts) : Truth{true};
        if (!applies) return false;
        if (*applies && !action_facts_known(rule, facts)) return false;
        std::optional<StatefulAnswer> answer;
        const bool keeps_state = rule.action == ActionKind::greylist || rule.action == ActionKind::ratelimit;
        if (*applies && keeps_state && !(answer = stateful_answer(rule, facts, stateful, run))) return false;
        if (observer) observer->rule_checked(rule, *applies);
        if (!*applies) continue;

        const bool monitored = monitor_all || rule.monitor;
        std::optional<Verdict> verdict;
        if (rule.always_terminal()) verdict = make_verdict(rule, facts);
        else if (keeps_state) verdict = stateful_verdict(rule, std::move(*answer), facts, result.effects);
        if (verdict && !monitored) {
            result.verdict = std::move(*verdict);
            run.next_rule = rules.size();
            return true;
        }
        if (verdict) {
            result.effects.push_back(monitor_effect(rule, std::move(*verdict)));
            continue;
        }
        if (monitored && rule.action == ActionKind::add_header) {
            Effect effect = monitor_effect(rule);
            effect.name = rule.header_name;
            effect.value = clean_line(expand_text(rule.text, facts));
            result.effects.push_back(std::move(effect));
            continue;
        }
        add_effect(rule, facts, result.effects);
    }
    return true;
}

}  // namespace portcullis::policy
