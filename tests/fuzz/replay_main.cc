/*
 * replay_main.cc: main() for a fuzz target built without libFuzzer.
 *
 *   fuzz_X_replay [--mutations N] [--seed S] [--timeout SECONDS] PATH...
 *
 * Runs LLVMFuzzerTestOneInput on every file under the PATHs (in name
 * order), then on N mutants of each (default 500): bit flips, random
 * bytes, insertions of tokens that matter to the policy and TOML
 * grammars, erasures, truncations and duplications, one to four per
 * mutant.  A file's mutants depend only on the seed and its content, so
 * a run is reproducible and adding a file leaves the others' mutants
 * alone.  An input that crashes, trips a sanitizer or runs longer than
 * the timeout (default 10 s) is first written to crash-FILE-mK or
 * timeout-FILE-mK in the working directory (m0 is the file itself), so
 * that it can be replayed, minimised and added to the corpus.
 */
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_target.h"

#if defined(__SANITIZE_ADDRESS__)
#define PORTCULLIS_REPLAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTCULLIS_REPLAY_ASAN 1
#endif
#endif
#ifdef PORTCULLIS_REPLAY_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace portcullis::fuzz {
namespace {

using namespace std::string_view_literals;

/* Tokens whose insertion most often changes how the parsers read a file. */
constexpr std::string_view kTokens[] = {
    "{"sv, "}"sv, "("sv, ")"sv, "["sv, "]"sv, "\""sv, "'"sv, "\\"sv, "\\\n"sv, "${"sv, "${client.ip}"sv,
    "${header(\"Subject\")}"sv, "$$"sv, "$"sv, "/"sv, "/i"sv, "#"sv, "\n"sv, "\r\n"sv, "\t"sv, ","sv, "="sv,
    "=="sv, "!="sv, "=~"sv, "!~"sv, "<="sv, ">"sv, "\"\"\""sv, "'''"sv, "\0"sv, "\xff"sv, "\xc3\xa9"sv,
    "\xef\xbb\xbf"sv, " and "sv, " or "sv, " not "sv, "\nif "sv, "\nand "sv, " in "sv, " in dnsbl \"zone\""sv,
    "include \""sv, "conf.d/*.rules"sv, "lists/ip.txt"sv, "../"sv, "*"sv, "0"sv, "-1"sv,
    "18446744073709551616"sv, "1e400"sv, "nan"sv, "inf"sv, "0x"sv, "50M"sv, "1w"sv, "0s"sv, "200/1h"sv,
    "5.7.1"sv, "550"sv, "::"sv, "::ffff:10.0.0.0/104"sv, "1979-05-27T07:32:00Z"sv, "[milter]"sv, "[[a]]"sv,
    "= {"sv, "= ["sv, "true"sv, "milter.timeout="sv, "store.url="sv,
};

class Mutator {
public:
    explicit Mutator(uint64_t seed) : random_(seed) {}

    std::string mutate(std::string input) {
        const size_t edits = 1 + below(4);
        for (size_t i = 0; i < edits; ++i) edit(input);
        return input;
    }

private:
    void edit(std::string& text) {
        switch (below(6)) {
            case 0: flip_bit(text); break;
            case 1: set_byte(text); break;
            case 2: insert_token(text); break;
            case 3: erase_range(text); break;
            case 4: truncate(text); break;
            default: duplicate_range(text); break;
        }
    }

    /* Uniform enough in [0, N), and the same on every platform, which
     * std::uniform_int_distribution is not. */
    size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(random_() % n); }
    size_t position(const std::string& text) { return below(text.size() + 1); }
    /* Mostly short, sometimes up to the whole rest of the text. */
    size_t length_from(const std::string& text, size_t start) {
        const size_t rest = text.size() - start;
        return std::min(rest, below(8) == 0 ? below(rest + 1) : 1 + below(16));
    }

    void flip_bit(std::string& text) {
        if (!text.empty()) text[below(text.size())] ^= static_cast<char>(1u << below(8));
    }
    void set_byte(std::string& text) {
        if (!text.empty()) text[below(text.size())] = static_cast<char>(below(256));
    }
    void insert_token(std::string& text) { text.insert(position(text), kTokens[below(std::size(kTokens))]); }
    void erase_range(std::string& text) {
        const size_t start = position(text);
        text.erase(start, length_from(text, start));
    }
    void truncate(std::string& text) { text.resize(position(text)); }
    void duplicate_range(std::string& text) {
        const size_t start = position(text);
        const std::string copy = text.substr(start, length_from(text, start));
        text.insert(position(text), copy);
    }

    std::mt19937_64 random_;
};

/* What the crash handlers write out: the input being run, and the two
 * file names it would be saved under, all set before the run. */
struct Current {
    const std::string* input = nullptr;
    std::string crash_name;
    std::string timeout_name;
    volatile sig_atomic_t saved = 0;
};
Current g_current;

/* Async-signal-safe: openat, write and close only.  openat, not open:
 * the policy target fences open() while its loader runs (file_fence.h). */
void save_current(const std::string& name) {
    if (!g_current.input || g_current.saved) return;
    g_current.saved = 1;
    const int fd = openat(AT_FDCWD, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    const std::string& input = *g_current.input;
    for (size_t done = 0; done < input.size();) {
        const ssize_t count = write(fd, input.data() + done, input.size() - done);
        if (count <= 0) break;
        done += static_cast<size_t>(count);
    }
    close(fd);
    constexpr std::string_view kSaved = "fuzz replay: the failing input is saved as ";
    [[maybe_unused]] ssize_t ignored = write(STDERR_FILENO, kSaved.data(), kSaved.size());
    ignored = write(STDERR_FILENO, name.c_str(), name.size());
    ignored = write(STDERR_FILENO, "\n", 1);
}

void on_crash_signal(int signal) {
    save_current(g_current.crash_name);
    std::signal(signal, SIG_DFL);
    std::raise(signal);
}

void on_timeout(int) {
    save_current(g_current.timeout_name);
    constexpr std::string_view kTimeout = "fuzz replay: timeout\n";
    [[maybe_unused]] ssize_t ignored = write(STDERR_FILENO, kTimeout.data(), kTimeout.size());
    _exit(70);
}

/* Handlers run on a stack of their own, so that a stack overflow is
 * caught too. */
void handle(int signal, void (*handler)(int)) {
    static std::vector<char> stack(1 << 16);
    static const bool alternate = [] {
        stack_t own{};
        own.ss_sp = stack.data();
        own.ss_size = stack.size();
        return sigaltstack(&own, nullptr) == 0;
    }();
    struct sigaction action {};
    action.sa_handler = handler;
    action.sa_flags = alternate ? SA_ONSTACK : 0;
    sigemptyset(&action.sa_mask);
    sigaction(signal, &action, nullptr);
}

/* Under ASan its own handlers report faults, and call back before dying;
 * an abort() (a broken promise, an uncaught exception) is ours. */
void install_handlers() {
    handle(SIGABRT, on_crash_signal);
    handle(SIGALRM, on_timeout);
#ifdef PORTCULLIS_REPLAY_ASAN
    __sanitizer_set_death_callback([] { save_current(g_current.crash_name); });
#else
    for (const int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) handle(signal, on_crash_signal);
#endif
}

struct Options {
    size_t mutations = 500;
    uint64_t seed = 0x706f727463756c6cULL;   // "portcull"
    unsigned timeout = 10;
    std::vector<std::filesystem::path> paths;
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(stderr, "usage: %s [--mutations N] [--seed S] [--timeout SECONDS] PATH...\n", program);
    std::exit(2);
}

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view argument = argv[i];
        const bool has_value = i + 1 < argc;
        if (argument == "--mutations" && has_value) options.mutations = std::stoul(argv[++i]);
        else if (argument == "--seed" && has_value) options.seed = std::stoull(argv[++i]);
        else if (argument == "--timeout" && has_value) options.timeout = static_cast<unsigned>(std::stoul(argv[++i]));
        else if (argument.starts_with("-")) usage(argv[0]);
        else options.paths.emplace_back(argument);
    }
    if (options.paths.empty()) usage(argv[0]);
    return options;
}

/* Every regular file under PATHS, in name order. */
std::vector<std::filesystem::path> corpus_files(const std::vector<std::filesystem::path>& paths) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (const auto& path : paths) {
        if (fs::is_regular_file(path)) files.push_back(path);
        if (!fs::is_directory(path)) continue;
        for (const auto& entry : fs::recursive_directory_iterator(path)) {
            if (entry.is_regular_file()) files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string read_all(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void run_one(const std::string& input, const std::string& name, size_t mutant, unsigned timeout) {
    const std::string suffix = name + "-m" + std::to_string(mutant);
    g_current.crash_name = "crash-" + suffix;
    g_current.timeout_name = "timeout-" + suffix;
    g_current.input = &input;
    alarm(timeout);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    alarm(0);
    g_current.input = nullptr;
}

/* The file, then its mutants; returns how many inputs ran. */
size_t replay_file(const std::filesystem::path& path, const Options& options) {
    const std::string original = read_all(path);
    const std::string name = path.filename().string();
    run_one(original, name, 0, options.timeout);
    Mutator mutator(options.seed ^ hash_of(original));   // each file its own stream of mutants
    for (size_t mutant = 1; mutant <= options.mutations; ++mutant) {
        run_one(mutator.mutate(original), name, mutant, options.timeout);
    }
    return 1 + options.mutations;
}

}  // namespace
}  // namespace portcullis::fuzz

int main(int argc, char** argv) {
    using namespace portcullis::fuzz;
    const Options options = parse_options(argc, argv);
    const auto files = corpus_files(options.paths);
    if (files.empty()) {
        std::fprintf(stderr, "fuzz replay: no corpus files found\n");
        return 1;
    }
    install_handlers();
    const auto start = std::chrono::steady_clock::now();
    size_t inputs = 0;
    for (const auto& file : files) inputs += replay_file(file, options);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::printf("fuzz replay: %zu corpus files, %zu inputs, %zu mutants each, seed %llu, no failure, %.1f s\n",
                files.size(), inputs, options.mutations, static_cast<unsigned long long>(options.seed),
                took.count());
    return 0;
}
