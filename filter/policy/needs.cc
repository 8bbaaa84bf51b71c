/*
 * needs.cc: walking rules, conditions and templates for what they read.
 */
#include "policy/needs.h"

namespace portcullis::policy {

namespace {

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
        operand(node.lhs);
        operand(node.rhs);
    }

    void text(const Template& text) {
        for (const auto& piece : text.pieces) {
            if (piece.is_field) field(piece.field);
        }
    }

    void operand(const Operand& operand) {
        if (operand.kind == Operand::Kind::field) field(operand.field);
    }

    void field(FieldId id) {
        const FieldInfo& info = field_info(id);
        needs_.uses_fields_of[static_cast<size_t>(info.stage)] = true;
        if (id == FieldId::header || id == FieldId::from || id == FieldId::from_domain) needs_.headers = true;
        if (id == FieldId::size && stage_ == Stage::eom) needs_.body_size = true;
    }

    PolicyNeeds& needs_;
    Stage stage_ = Stage::connect;
};

}  // namespace

PolicyNeeds analyse_needs(const Policy& policy, bool monitor_all) {
    PolicyNeeds needs;
    NeedsWalker walker(needs);
    for (const Stage stage : kAllStages) {
        const size_t index = static_cast<size_t>(stage);
        for (const Rule& rule : policy.stage_rules(stage)) {
            needs.runs[index] = true;
            // greylist and ratelimit can refuse; monitored rules never answer.
            const bool can_refuse = rule.always_terminal() || rule.action == ActionKind::greylist ||
                                    rule.action == ActionKind::ratelimit;
            if (can_refuse && !rule.monitor && !monitor_all) needs.answers[index] = true;
            walker.rule(rule);
        }
    }
    return needs;
}

}  // namespace portcullis::policy
