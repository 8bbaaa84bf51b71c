/*
 * stage.h: the SMTP stages a policy has rules for, in session order.
 */
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace portcullis::policy {

enum class Stage : unsigned { connect = 0, helo, mail, rcpt, eom };
inline constexpr size_t kStageCount = 5;
inline constexpr std::array<Stage, kStageCount> kAllStages{Stage::connect, Stage::helo, Stage::mail, Stage::rcpt,
                                                           Stage::eom};

std::string_view stage_name(Stage stage);
std::optional<Stage> parse_stage(std::string_view name);

/* The stage whose unit is the connection (connect, helo) or not. */
inline bool is_connection_stage(Stage stage) { return stage == Stage::connect || stage == Stage::helo; }

}  // namespace portcullis::policy
