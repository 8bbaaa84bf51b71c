/*
 * doc_names.cc: prints what the code knows and the reference must
 * document, one name a line, for tests/docs/check_docs.py:
 *
 *   config KEY                     every configuration key
 *   field NAME TYPE STAGE          every policy field, its value type and
 *                                  the first stage it is known at
 *   action NAME STAGE[,STAGE...]   every action and the stages that allow it
 *   stage NAME                     every stage, in session order
 *   listkind NAME                  every list kind
 *
 * The names come from the registries the parser and the config loader
 * use, so a key, field or action added to the code without a word in
 * docs/ fails the check.
 */
#include <initializer_list>
#include <iostream>
#include <string>
#include <string_view>

#include "config/config.h"
#include "policy/checks.h"
#include "policy/fields.h"
#include "policy/lists.h"
#include "policy/stage.h"

namespace {

using namespace portcullis;

void print(std::string_view what, std::initializer_list<std::string_view> words) {
    std::cout << what;
    for (const std::string_view word : words) std::cout << ' ' << word;
    std::cout << '\n';
}

/* "mail,rcpt,eom" from a bit per stage. */
std::string stage_list(unsigned stages) {
    std::string text;
    for (const policy::Stage stage : policy::kAllStages) {
        if (!(stages & (1u << static_cast<unsigned>(stage)))) continue;
        if (!text.empty()) text += ',';
        text += policy::stage_name(stage);
    }
    return text;
}

}  // namespace

int main() {
    for (const std::string& key : config::config_keys()) print("config", {key});
    for (const policy::FieldInfo& field : policy::all_fields()) {
        print("field", {field.name, policy::value_type_name(field.type), policy::stage_name(field.stage)});
    }
    for (const std::string& name : policy::action_names()) {
        print("action", {name, stage_list(policy::find_action(name)->stages)});
    }
    for (const policy::Stage stage : policy::kAllStages) print("stage", {policy::stage_name(stage)});
    for (const std::string& kind : policy::list_kind_names()) print("listkind", {kind});
    return 0;
}
