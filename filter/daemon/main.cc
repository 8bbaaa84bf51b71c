/*
 * main.cc: the portcullis command line: run, check, try, greylist, version.
 */
#include <CLI/CLI.hpp>

#include "daemon/commands.h"

namespace {

using portcullis::daemon::ConfigSource;

void add_config_options(CLI::App& command, ConfigSource& source) {
    command.add_option("-c,--config", source.path, "configuration file (default /etc/portcullis/portcullis.conf)");
    command.add_option("-o,--option", source.overrides, "override a config key: -o KEY=VALUE (repeatable)");
}

}  // namespace

int main(int argc, char** argv) {
    namespace daemon = portcullis::daemon;
    CLI::App app{"portcullis: a mail policy filter for Postfix and Sendmail (milter)"};
    app.require_subcommand(1);

    ConfigSource source;
    bool foreground = false;
    daemon::TryOptions try_options;

    CLI::App* run = app.add_subcommand("run", "run the milter");
    add_config_options(*run, source);
    run->add_flag("-f,--foreground", foreground, "stay in the foreground and log to stderr");

    CLI::App* check = app.add_subcommand("check", "load config, policy and lists; print every error");
    add_config_options(*check, source);

    CLI::App* try_cmd = app.add_subcommand("try", "run one message through the policy without an MTA");
    add_config_options(*try_cmd, source);
    try_cmd->add_option("--ip", try_options.ip, "client address")->required();
    try_cmd->add_option("--helo", try_options.helo, "HELO name");
    try_cmd->add_option("--from", try_options.from, "envelope sender (empty for <>)");
    try_cmd->add_option("--to", try_options.to, "recipient (repeatable)")->required();
    try_cmd->add_option("--user", try_options.user, "SASL login: the session is authenticated");
    try_cmd->add_flag("--dry", try_options.dry, "touch no store and no resolver");
    try_cmd->add_option("message", try_options.message_file, "message file (headers and body) for the eom stage");

    daemon::GreylistOptions greylist_options;
    CLI::App* greylist = app.add_subcommand("greylist", "inspect and edit greylisting state in the store");
    add_config_options(*greylist, source);
    greylist->require_subcommand(1);
    const std::pair<const char*, const char*> greylist_actions[] = {
        {"list", "list triplets and client networks"},
        {"allow", "let a triplet, or with --client alone a whole client network, pass at once"},
        {"drop", "forget a triplet, or a client network and its triplets"},
        {"stats", "count pending and passed triplets and whitelisted networks"},
    };
    for (const auto& [name, help] : greylist_actions) {
        CLI::App* action = greylist->add_subcommand(name, help);
        add_config_options(*action, source);
        action->callback([&greylist_options, name = std::string(name)] { greylist_options.action = name; });
        if (name == std::string("stats")) continue;
        action->add_option("--client", greylist_options.client, "client IP address");
        action->add_option("--sender", greylist_options.sender, "envelope sender (\"<>\" for the null sender)");
        action->add_option("--rcpt", greylist_options.rcpt, "recipient");
        if (name == std::string("list")) continue;
        action->add_flag("--host", greylist_options.host, "the client address itself, not its /24 or /64");
        if (name == std::string("allow")) action->add_option("--expire", greylist_options.expire, "how long (default 35d)");
    }

    CLI::App* version = app.add_subcommand("version", "print the version and the linked libraries' versions");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int code = app.exit(error);
        return code == 0 ? 0 : daemon::kExitUsage;
    }
    for (CLI::App* command : {run, check, try_cmd, greylist}) {
        if (command->parsed() && command->count("-c") > 0) source.path_given = true;
    }
    for (CLI::App* action : greylist->get_subcommands({})) {
        if (action->parsed() && action->count("-c") > 0) source.path_given = true;
    }

    if (run->parsed()) return daemon::run_command(source, foreground);
    if (check->parsed()) return daemon::check_command(source);
    if (try_cmd->parsed()) return daemon::try_command(source, try_options);
    if (greylist->parsed()) return daemon::greylist_command(source, greylist_options);
    if (version->parsed()) return daemon::version_command();
    return daemon::kExitUsage;
}
