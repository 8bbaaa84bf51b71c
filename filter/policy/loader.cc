/*
 * loader.cc: reading a policy and every file it names (see loader.h).
 *
 * The Loader parses the main file and the parser hands it each
 * statement.  An include is read and parsed there and then, so rules
 * keep the order in which their files are read; list and map files are
 * read when their statement is met; list and map names are resolved once
 * every file is read.  Errors are reported in the order the files were
 * read, then by line and column.
 *
 * Paths: a relative path is joined onto the directory of the file that
 * names it (the main file's directory, or BASE_DIR for parse_policy()),
 * and kept as joined, not made absolute, in SourceFile.path and
 * Policy.files.  SourceFile.short_name, for logs, is the path relative to
 * the main file's directory.
 */
#include "policy/loader.h"


#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <unordered_map>

#include "policy/checks.h"
#include "policy/diagnostics.h"
#include "policy/lexer.h"
#include "policy/parser.h"
#include "util/digest.h"
#include "util/files.h"
#include "util/text.h"

namespace portcullis::policy {

namespace {

/* Which file a path names, to find include loops whatever the spelling. */
struct FileIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

/* Policy, list and map files: big lists are fine, /dev/zero is not. */
constexpr size_t kMaxPolicyFileBytes = 256 * 1024 * 1024;

/* Read the whole file at PATH into TEXT.  On failure returns false and
 * sets ERROR ("cannot open 'PATH': strerror", "... not a regular file"). */
bool read_file(const std::string& path, std::string& text, FileIdentity& identity, std::string& error) {
    FileText file = read_text_file(path, kMaxPolicyFileBytes);
    if (!file.ok) {
        error = std::move(file.error);
        return false;
    }
    text = std::move(file.text);
    identity = {file.device, file.inode};
    return true;
}

/* "dir/file" -> "dir", "/file" -> "/", "file" -> "". */
std::string directory_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return "";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

std::string join_path(const std::string& directory, const std::string& path) {
    if (directory.empty() || (!path.empty() && path[0] == '/')) return path;
    return directory.back() == '/' ? directory + path : directory + "/" + path;
}

bool is_glob(const std::string& path) { return path.find_first_of("*?[") != std::string::npos; }

/* The files a glob pattern matches, in byte order of their names, without
 * directories; nullopt when glob(3) fails (not when nothing matches). */
std::optional<std::vector<std::string>> expand_glob(const std::string& pattern) {
    glob_t matches{};
    const int status = glob(pattern.c_str(), GLOB_MARK | GLOB_NOSORT, nullptr, &matches);
    std::vector<std::string> paths;
    if (status == 0) {
        for (size_t i = 0; i < matches.gl_pathc; ++i) {
            const std::string path = matches.gl_pathv[i];
            if (path.back() != '/') paths.push_back(path);   // GLOB_MARK marks directories
        }
    }
    globfree(&matches);
    if (status != 0 && status != GLOB_NOMATCH) return std::nullopt;
    std::sort(paths.begin(), paths.end());
    return paths;
}

std::vector<std::string> keys_of(const auto& named) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : named) keys.push_back(key);
    return keys;
}

class Loader final : public PolicyBuilder {
public:
    explicit Loader(std::string main_dir) : main_dir_(std::move(main_dir)) {}

    void parse_main(std::string_view text, const std::string& path, std::optional<FileIdentity> identity);
    LoadResult finish();

    void include(const std::string& path, const SourceLocation& where) override;
    void define_list(const Definition& name, std::shared_ptr<const List> list) override;
    void define_list_file(const Definition& name, ListKind kind, const std::string& path,
                          const SourceLocation& where) override;
    void define_map_file(const Definition& name, const std::string& path, const SourceLocation& where) override;
    void add_rule(Rule rule, std::vector<ListReference> references) override;

private:
    struct OpenFile {
        std::shared_ptr<const SourceFile> file;
        std::string directory;                  // relative paths in the file start here
        std::optional<FileIdentity> identity;   // none for text given in memory
    };

    /* A file read: named in the policy's files and its digest. */
    std::shared_ptr<const SourceFile> source_file(const std::string& path, std::string short_name,
                                                  std::string_view text);
    std::string short_name_of(const std::string& path) const;
    void parse(std::string_view text, OpenFile file);
    void include_file(const std::string& path, const SourceLocation& where);
    bool read_data_file(const std::string& written, const SourceLocation& where, std::vector<Token>& tokens,
                        std::shared_ptr<const SourceFile>& file);
    bool claim(const Definition& name);
    void resolve(const ListReference& reference);
    std::vector<Diagnostic> sorted_errors();

    std::string main_dir_;
    std::shared_ptr<Policy> policy_ = std::make_shared<Policy>();
    ErrorSink errors_;
    std::vector<OpenFile> open_files_;                       // the include chain being read
    std::map<std::string, SourceLocation> definitions_;      // list and map names
    std::vector<ListReference> references_;
    std::unordered_map<const SourceFile*, size_t> file_order_;
    Sha256 digest_;                                          // of every file read, in order
};

std::shared_ptr<const SourceFile> Loader::source_file(const std::string& path, std::string short_name,
                                                      std::string_view text) {
    auto file = std::make_shared<const SourceFile>(SourceFile{path, std::move(short_name)});
    file_order_.emplace(file.get(), file_order_.size());
    policy_->files.push_back(path);
    // NUL never occurs in a path: no two sequences of files digest alike.
    digest_.update(path);
    digest_.update(std::string_view("\0", 1));
    digest_.update(std::to_string(text.size()));
    digest_.update(std::string_view("\0", 1));
    digest_.update(text);
    return file;
}

std::string Loader::short_name_of(const std::string& path) const {
    namespace fs = std::filesystem;
    const fs::path normal = fs::path(path).lexically_normal();
    if (main_dir_.empty()) return normal.string();
    const fs::path relative = normal.lexically_relative(fs::path(main_dir_).lexically_normal());
    if (relative.empty() || *relative.begin() == "..") return normal.string();
    return relative.string();
}

void Loader::parse_main(std::string_view text, const std::string& path, std::optional<FileIdentity> identity) {
    parse(text, {source_file(path, base_name(path), text), main_dir_, identity});
}

void Loader::parse(std::string_view text, OpenFile file) {
    const std::vector<Token> tokens = lex(text, LexMode::policy, file.file, errors_);
    TokenCursor cursor(tokens, file.file, errors_);
    open_files_.push_back(std::move(file));
    parse_policy_file(cursor, *this);
    open_files_.pop_back();
}

void Loader::include(const std::string& path, const SourceLocation& where) {
    const std::string joined = join_path(open_files_.back().directory, path);
    if (!is_glob(path)) {
        include_file(joined, where);
        return;
    }
    const auto matches = expand_glob(joined);
    if (!matches) errors_.report(where, "cannot expand '" + joined + "'");
    for (const std::string& match : matches.value_or(std::vector<std::string>{})) include_file(match, where);
}

void Loader::include_file(const std::string& path, const SourceLocation& where) {
    std::string text, error;
    FileIdentity identity;
    if (!read_file(path, text, identity, error)) {
        errors_.report(where, error);
        return;
    }
    const auto first = std::find_if(open_files_.begin(), open_files_.end(),
                                    [&](const OpenFile& open) { return open.identity == identity; });
    if (first != open_files_.end()) {
        std::string chain;
        for (auto open = first; open != open_files_.end(); ++open) chain += open->file->short_name + " -> ";
        errors_.report(where, "include loop: " + chain + short_name_of(path));
        return;
    }
    parse(text, {source_file(path, short_name_of(path), text), directory_of(path), identity});
}

/* Read and lex the list or map file WRITTEN names; report at WHERE if
 * it cannot be read. */
bool Loader::read_data_file(const std::string& written, const SourceLocation& where, std::vector<Token>& tokens,
                            std::shared_ptr<const SourceFile>& file) {
    const std::string path = join_path(open_files_.back().directory, written);
    std::string text, error;
    FileIdentity identity;
    if (!read_file(path, text, identity, error)) {
        errors_.report(where, error);
        return false;
    }
    file = source_file(path, short_name_of(path), text);
    tokens = lex(text, LexMode::data, file, errors_);
    return true;
}

/* Take NAME for a list or map; false if it is taken. */
bool Loader::claim(const Definition& name) {
    const auto [earlier, inserted] = definitions_.emplace(name.name, name.where);
    if (!inserted) errors_.report(name.where, "'" + name.name + "' is already defined at " + earlier->second.str());
    return inserted;
}

void Loader::define_list(const Definition& name, std::shared_ptr<const List> list) {
    if (claim(name)) policy_->lists[name.name] = std::move(list);
}

/* A list or map whose file cannot be read is still defined, empty: the
 * load fails on the file's error alone, and the uses of the name are
 * checked as usual instead of each being an unknown name. */
void Loader::define_list_file(const Definition& name, ListKind kind, const std::string& path,
                              const SourceLocation& where) {
    if (!claim(name)) return;
    auto list = std::make_shared<List>(kind);
    policy_->lists[name.name] = list;
    std::vector<Token> tokens;
    std::shared_ptr<const SourceFile> file;
    if (!read_data_file(path, where, tokens, file)) return;
    for (const Token& item : tokens) {
        if (item.kind == TokenKind::word || item.kind == TokenKind::string || item.kind == TokenKind::regex) {
            add_list_item(*list, item, {file, item.line, item.column}, errors_);
        }
    }
}

/* Each line: KEY VALUE [VALUE ...]. */
void Loader::define_map_file(const Definition& name, const std::string& path, const SourceLocation& where) {
    if (!claim(name)) return;
    auto map = std::make_shared<Map>();
    policy_->maps[name.name] = map;
    std::vector<Token> tokens;
    std::shared_ptr<const SourceFile> file;
    if (!read_data_file(path, where, tokens, file)) return;
    const Token* key = nullptr;
    std::vector<std::string> values;
    for (const Token& token : tokens) {
        const SourceLocation at{file, token.line, token.column};
        if (token.kind == TokenKind::newline || token.kind == TokenKind::end) {
            if (key && values.empty()) {
                errors_.report({file, key->line, key->column}, "map key '" + key->text + "' has no value");
            } else if (key) {
                map->add(key->text, std::move(values));
            }
            key = nullptr;
            values.clear();
        } else if (token.kind == TokenKind::regex) {
            errors_.report(at, "a map file holds KEY VALUE lines, not regexes");
        } else if (token.kind != TokenKind::error) {
            if (key) values.push_back(token.text);
            else key = &token;
        }
    }
}

void Loader::add_rule(Rule rule, std::vector<ListReference> references) {
    policy_->rules[static_cast<size_t>(rule.stage)].push_back(std::move(rule));
    references_.insert(references_.end(), references.begin(), references.end());
}

/* Point a condition at the list or map it names. */
void Loader::resolve(const ListReference& reference) {
    Condition& condition = *reference.condition;
    const std::string& name = reference.name;
    const auto list = policy_->lists.find(name);
    const auto map = policy_->maps.find(name);
    const bool is_list = list != policy_->lists.end();
    const bool is_map = map != policy_->maps.end();
    if (condition.kind == Condition::Kind::in_map) {
        if (is_map) condition.map = map->second;
        else if (is_list) errors_.report(reference.where, "'" + name + "' is a list, not a map");
        else errors_.report(reference.where, "unknown map '" + name + "'" + did_you_mean(name, keys_of(policy_->maps)));
        return;
    }
    if (is_list) {
        const std::string kind(list_kind_name(list->second->kind()));
        const std::string mismatch = list_mismatch(list->second->kind(), condition.lhs, kind + " list '" + name + "'");
        if (mismatch.empty()) condition.list = list->second;
        else errors_.report(reference.where, mismatch);
    } else if (is_map) {
        errors_.report(reference.where, "'" + name + "' is a map; write " + name + "[KEY]");
    } else {
        errors_.report(reference.where, "unknown list '" + name + "'" + did_you_mean(name, keys_of(policy_->lists)));
    }
}

std::vector<Diagnostic> Loader::sorted_errors() {
    std::vector<Diagnostic> errors = errors_.take();
    const auto key = [&](const Diagnostic& error) {
        const size_t order = error.where.file ? file_order_.at(error.where.file.get()) + 1 : 0;
        return std::tuple(order, error.where.line, error.where.column);
    };
    std::stable_sort(errors.begin(), errors.end(),
                     [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
    return errors;
}

LoadResult Loader::finish() {
    for (const ListReference& reference : references_) resolve(reference);
    if (!errors_.empty()) return {nullptr, sorted_errors()};
    policy_->digest = digest_.hex_digest();
    return {std::move(policy_), {}};
}

}  // namespace

LoadResult load_policy(const std::string& path) {
    std::string text, error;
    FileIdentity identity;
    if (!read_file(path, text, identity, error)) return {nullptr, {Diagnostic{{}, error}}};
    Loader loader(directory_of(path));
    loader.parse_main(text, path, identity);
    return loader.finish();
}

LoadResult parse_policy(std::string_view text, const std::string& name, const std::string& base_dir) {
    Loader loader(base_dir);
    loader.parse_main(text, name, std::nullopt);
    return loader.finish();
}

}  // namespace portcullis::policy
