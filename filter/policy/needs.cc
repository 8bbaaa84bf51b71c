/*
 * needs.cc: walking rules, conditions and templates for what they read.
 */
#include "policy/needs.h"

#include <algorithm>

#include "util/text.h"

namespace portcullis::policy {

namespace {

bool can_refuse(ActionKind action) {
    return action == ActionKind::reject || action == ActionKind::tempfail || action == ActionKind::discard ||
           action == ActionKind::greylist || action == ActionKind::ratelimit;
}

/* Whether the MTA must wait for the reply of a stage where ACTION applies.
 * An accept ends filtering early (so it is answered) except at rcpt,
 * where it only covers the recipient; quarantine waits for eom. */
bool needs_reply(ActionKind action, Stage stage) {
    if (can_refuse(action)) return true;
    return action == ActionKind::accept && stage != Stage::rcpt;
}

class NeedsWalker {
public:
    explicit NeedsWalker(PolicyNeeds& needs) : needs_(needs) {}

    void rule(const Rule& rule) {
        stage_ = rule.stage;
        if (rule.condition) condition(*rule.condition);
        text(rule.reply.text);
        text(rule.text);
        for (const auto& key : rule.ratelimit.key) operand(key);
    }

private:
    void condition(const Condition& node) {
        if (node.left) condition(*node.left);
        if (node.right) condition(*node.right);
        if (node.kind == Condition::Kind::in_dnsbl) needs_.dns_lists.push_back({node.zone, node.zone_where});
        operand(node.lhs);
        operand(node.rhs);
    }

    void text(const Template& text) {
        for (const auto& piece : text.pieces) {
            if (piece.is_field) field(piece.field, piece.argument, piece.where);
        }
    }

    void operand(const Operand& operand) {
        if (operand.kind == Operand::Kind::field) field(operand.field, operand.argument, operand.where);
    }

    /* Field ID, with its ARGUMENT, written at WHERE. */
    void field(FieldId id, const std::string& argument, const SourceLocation& where) {
        const FieldInfo& info = field_info(id);
        needs_.uses_fields_of[static_cast<size_t>(info.stage)] = true;
        if (id == FieldId::header || id == FieldId::from || id == FieldId::from_domain) needs_.headers = true;
        if (id == FieldId::header && !needs_.reads_header(argument)) needs_.header_names.push_back(argument);
        if (id == FieldId::size && stage_ == Stage::eom) needs_.body = true;
        if (id == FieldId::dnsbl) needs_.dns_lists.push_back({argument, where});
        if (id == FieldId::dmarc || id == FieldId::dmarc_policy || id == FieldId::dmarc_domain) {
            needs_.dmarc = true;
            needs_.headers = true;   // From
            // DMARC passes through an aligned SPF or DKIM pass.
            dkim_read();
            spf_read();
        }
        if (id == FieldId::dkim || id == FieldId::dkim_domain) dkim_read();
        if (id == FieldId::spf || id == FieldId::spf_domain) spf_read();
    }

    void spf_read() {
        needs_.spf = true;
        // The check reads the HELO name (the identity for <>).
        needs_.uses_fields_of[static_cast<size_t>(Stage::helo)] = true;
    }

    void dkim_read() {
        needs_.dkim = true;
        needs_.headers = true;
        needs_.body = true;   // hashed
    }

    PolicyNeeds& needs_;
    Stage stage_ = Stage::connect;
};

}  // namespace

bool PolicyNeeds::reads_header(std::string_view name) const {
    return std::any_of(header_names.begin(), header_names.end(),
                       [name](const std::string& read) { return equals_nocase(read, name); });
}

PolicyNeeds analyse_needs(const Policy& policy, bool monitor_all) {
    PolicyNeeds needs;
    NeedsWalker walker(needs);
    for (const Stage stage : kAllStages) {
        const size_t index = static_cast<size_t>(stage);
        for (const Rule& rule : policy.stage_rules(stage)) {
            needs.runs[index] = true;
            needs.store = needs.store || rule.action == ActionKind::greylist || rule.action == ActionKind::ratelimit;
            // Monitored rules never answer.
            if (!rule.monitor && !monitor_all) {
                needs.answers[index] = needs.answers[index] || needs_reply(rule.action, stage);
                needs.refuses[index] = needs.refuses[index] || can_refuse(rule.action);
            }
            walker.rule(rule);
        }
    }
    return needs;
}

}  // namespace portcullis::policy
