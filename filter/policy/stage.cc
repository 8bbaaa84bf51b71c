/*
 * stage.cc: stage names.
 */
#include "policy/stage.h"

#include "util/text.h"

namespace portcullis::policy {

namespace {
constexpr std::array<std::string_view, kStageCount> kNames{"connect", "helo", "mail", "rcpt", "eom"};
}

std::string_view stage_name(Stage stage) { return kNames[static_cast<size_t>(stage)]; }

std::optional<Stage> parse_stage(std::string_view name) {
    for (const Stage stage : kAllStages) {
        if (equals_nocase(name, stage_name(stage))) return stage;
    }
    return std::nullopt;
}

}  // namespace portcullis::policy
