/*
 * main.cc: the portcullis command line: run, check, try, greylist,
 * ratelimit, reload, status, version.
 */
#include <CLI/CLI.hpp>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "checks/greylist_settings.h"
#include "daemon/commands.h"

namespace {

using portcullis::daemon::ConfigSource;

/* An option given once per value (-o A -o B): CLI11 lets a vector option
 * take every word that follows it, which would swallow a positional
 * argument written after it. */
CLI::Option* add_repeatable_option(CLI::App& command, const std::string& name, std::vector<std::string>& values,
                                   const std::string& help) {
    return command.add_option(name, values, help)->allow_extra_args(false);
}

void add_config_options(CLI::App& command, ConfigSource& source) {
    command.add_option("-c,--config", source.path, "configuration file (default /etc/portcullis/portcullis.conf)");
    add_repeatable_option(command, "-o,--option", source.overrides, "override a config key: -o KEY=VALUE (repeatable)");
}

struct ActionHelp {
    const char* name;
    const char* help;
};

/* COMMAND NAME ... with one sub-subcommand per ACTIONS entry, each of
 * which sets CHOSEN to its name when given; -c and -o are accepted at
 * either level. */
CLI::App* add_admin_command(CLI::App& app, const char* name, const char* help, std::span<const ActionHelp> actions,
                            ConfigSource& source, std::string& chosen) {
    CLI::App* command = app.add_subcommand(name, help);
    add_config_options(*command, source);
    command->require_subcommand(1);
    for (const ActionHelp& action : actions) {
        CLI::App* sub = command->add_subcommand(action.name, action.help);
        add_config_options(*sub, source);
        sub->callback([&chosen, name = std::string(action.name)] { chosen = name; });
    }
    return command;
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
    add_repeatable_option(*try_cmd, "--to", try_options.to, "recipient: --to ADDR (repeatable)")->required();
    try_cmd->add_option("--user", try_options.user, "SASL login: the session is authenticated");
    try_cmd->add_flag("--dry", try_options.dry, "touch no store and no resolver");
    try_cmd->add_option("message", try_options.message_file, "message file (headers and body) for the eom stage");

    daemon::GreylistOptions greylist_options;
    const ActionHelp greylist_actions[] = {
        {"list", "list triplets and client networks"},
        {"allow", "let a triplet, or with --client alone a whole client network, pass at once"},
        {"drop", "forget a triplet, or a client network and its triplets"},
        {"stats", "count pending and passed triplets and whitelisted networks"},
    };
    CLI::App* greylist = add_admin_command(app, "greylist", "inspect and edit greylisting state in the store",
                                           greylist_actions, source, greylist_options.action);
    for (CLI::App* action : greylist->get_subcommands({})) {
        const std::string name = action->get_name();
        if (name == "stats") continue;
        action->add_option("--client", greylist_options.client, "client IP address");
        action->add_option("--sender", greylist_options.sender, "envelope sender (\"<>\" for the null sender)");
        action->add_option("--rcpt", greylist_options.rcpt, "recipient");
        if (name == "list") continue;
        action->add_flag("--host", greylist_options.host, "the client address itself, not its /24 or /64");
        if (name == "allow") {
            const std::string help =
                "how long (default " + portcullis::format_duration(portcullis::checks::GreylistSettings{}.expire) + ")";
            action->add_option("--expire", greylist_options.expire, help);
        }
    }

    daemon::RatelimitOptions ratelimit_options;
    const ActionHelp ratelimit_actions[] = {
        {"show", "each rate of the buckets for a key: events in the window, and when a slot frees"},
        {"reset", "forget the buckets for a key"},
    };
    CLI::App* ratelimit = add_admin_command(app, "ratelimit", "inspect and reset rate-limit buckets",
                                            ratelimit_actions, source, ratelimit_options.action);
    for (CLI::App* action : ratelimit->get_subcommands({})) {
        action->add_option("value", ratelimit_options.key, "the key's field values, in the rule's order")->required();
        action->add_option("--bucket", ratelimit_options.bucket, "only the bucket of this name");
    }

    CLI::App* reload = app.add_subcommand("reload", "ask the running daemon to reload its config and policy");
    add_config_options(*reload, source);
    CLI::App* status = app.add_subcommand("status", "ask the running daemon how it is");
    add_config_options(*status, source);

    CLI::App* version = app.add_subcommand("version", "print the version and the linked libraries' versions");

    try {
        try {
            app.parse(argc, argv);
        } catch (const CLI::RequiredError&) {
            // CLI11 checks for a missing subcommand before it looks at the
            // words left over: name the unknown command ("stauts"), rather
            // than say that none was given.  They are left over last first.
            if (auto left = app.remaining(true); !left.empty()) {
                std::reverse(left.begin(), left.end());
                throw CLI::ExtrasError(left);
            }
            throw;
        }
    } catch (const CLI::ParseError& error) {
        const int code = app.exit(error);
        return code == 0 ? 0 : daemon::kExitUsage;
    }
    for (CLI::App* command : {run, check, try_cmd, greylist, ratelimit, reload, status}) {
        if (command->parsed() && command->count("-c") > 0) source.path_given = true;
    }
    for (CLI::App* parent : {greylist, ratelimit}) {
        for (CLI::App* action : parent->get_subcommands({})) {
            if (action->parsed() && action->count("-c") > 0) source.path_given = true;
        }
    }

    if (run->parsed()) return daemon::run_command(source, foreground);
    if (check->parsed()) return daemon::check_command(source);
    if (try_cmd->parsed()) return daemon::try_command(source, try_options);
    if (greylist->parsed()) return daemon::greylist_command(source, greylist_options);
    if (ratelimit->parsed()) return daemon::ratelimit_command(source, ratelimit_options);
    if (reload->parsed()) return daemon::reload_command(source);
    if (status->parsed()) return daemon::status_command(source);
    if (version->parsed()) return daemon::version_command();
    return daemon::kExitUsage;
}
