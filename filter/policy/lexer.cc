/*
 * lexer.cc: the tokenizer for policy, list and map files (see lexer.h).
 */
#include "policy/lexer.h"

#include <algorithm>

#include "util/text.h"

namespace portcullis::policy {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool is_word_char(char c) {
    return is_alnum(c) || static_cast<unsigned char>(c) >= 0x80 ||
           std::string_view("_-.:/@+=").find(c) != std::string_view::npos;
}

std::string printable(char c) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte > ' ' && byte < 0x7f) return std::string(1, c);
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string("\\x") + kHex[byte >> 4] + kHex[byte & 0xf];
}

class Lexer {
public:
    Lexer(std::string_view text, LexMode mode, const std::shared_ptr<const SourceFile>& file, ErrorSink& errors)
        : text_(text), mode_(mode), file_(file), errors_(errors) {}

    std::vector<Token> run();

private:
    char at(size_t pos) const { return pos < text_.size() ? text_[pos] : '\0'; }
    uint32_t column() const { return static_cast<uint32_t>(pos_ - line_start_ + 1); }
    Token start(TokenKind kind) const;
    void emit(Token token) { tokens_.push_back(std::move(token)); }
    void error(uint32_t column, std::string message);
    void error_token(uint32_t column, std::string message);

    void line_end();
    bool next_line_continues() const;
    void backslash();
    void skip_comment();
    template <typename Escape>
    bool delimited(Token& token, char close, std::string_view what, Escape escape);
    void string();
    void regex();
    void regex_flag(Token& token);
    void policy_token();
    void policy_word();
    void data_word();
    void operator_or_word();

    std::string_view text_;
    LexMode mode_;
    const std::shared_ptr<const SourceFile>& file_;
    ErrorSink& errors_;
    std::vector<Token> tokens_;
    size_t pos_ = 0;
    size_t line_start_ = 0;
    uint32_t line_ = 1;
};

Token Lexer::start(TokenKind kind) const {
    Token token;
    token.kind = kind;
    token.line = line_;
    token.column = column();
    return token;
}

void Lexer::error(uint32_t column, std::string message) {
    errors_.report(SourceLocation{file_, line_, column}, std::move(message));
}

/* Report, and leave an error token so the parser drops the rule quietly. */
void Lexer::error_token(uint32_t column, std::string message) {
    error(column, std::move(message));
    Token token;
    token.kind = TokenKind::error;
    token.line = line_;
    token.column = column;
    emit(std::move(token));
}

std::vector<Token> Lexer::run() {
    if (text_.starts_with("\xef\xbb\xbf")) pos_ = line_start_ = 3;   // a UTF-8 byte order mark
    while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c == '\n') {
            line_end();
        } else if (is_space(c) || (c == ',' && mode_ == LexMode::data)) {
            ++pos_;
        } else if (c == '#') {
            skip_comment();
        } else if (c == '"') {
            string();
        } else if (c == '/') {
            regex();
        } else if (mode_ == LexMode::data) {
            data_word();
        } else {
            policy_token();
        }
    }
    emit(start(TokenKind::end));
    return std::move(tokens_);
}

/* At a '\n': end the logical line unless it has no tokens or the rule
 * goes on. */
void Lexer::line_end() {
    const bool line_has_tokens = !tokens_.empty() && tokens_.back().kind != TokenKind::newline;
    if (line_has_tokens && (mode_ == LexMode::data || !next_line_continues())) emit(start(TokenKind::newline));
    ++pos_;
    ++line_;
    line_start_ = pos_;
}

/* Whether the next line with a token, after the '\n' at pos_, starts
 * with if, and or or. */
bool Lexer::next_line_continues() const {
    size_t pos = pos_ + 1;
    while (pos < text_.size()) {
        const char c = text_[pos];
        if (is_space(c) || c == '\n') {
            ++pos;
        } else if (c == '#') {
            pos = std::min(text_.find('\n', pos), text_.size());
        } else {
            size_t end = pos;
            while (end < text_.size() && is_word_char(text_[end])) ++end;
            const std::string_view word = text_.substr(pos, end - pos);
            return equals_nocase(word, "if") || equals_nocase(word, "and") || equals_nocase(word, "or");
        }
    }
    return false;
}

/* A '\' that ends its line joins the next line to this one. */
void Lexer::backslash() {
    size_t end = pos_ + 1;
    while (end < text_.size() && is_space(text_[end])) ++end;
    if (end < text_.size() && text_[end] != '\n') {
        error_token(column(), "'\\' continues a rule only at the end of a line");
        ++pos_;
        return;
    }
    pos_ = std::min(end + 1, text_.size());
    ++line_;
    line_start_ = pos_;
}

void Lexer::skip_comment() { pos_ = std::min(text_.find('\n', pos_), text_.size()); }

/* The text of a string or regex after its opening delimiter, up to
 * CLOSE, handing what follows each backslash to ESCAPE (which adds it to
 * the token).  False, and an error token, when the line ends first. */
template <typename Escape>
bool Lexer::delimited(Token& token, char close, std::string_view what, Escape escape) {
    ++pos_;
    while (true) {
        const char c = at(pos_);
        if (pos_ >= text_.size() || c == '\n') {
            error_token(token.column, "unterminated " + std::string(what));
            return false;
        }
        ++pos_;
        if (c == close) return true;
        if (c == '\\' && pos_ < text_.size() && text_[pos_] != '\n') {
            escape(text_[pos_]);
            ++pos_;
        } else {
            token.text += c;
        }
    }
}

void Lexer::string() {
    Token token = start(TokenKind::string);
    const bool closed = delimited(token, '"', "string", [&](char escaped) {
        token.escapes.push_back(static_cast<uint32_t>(token.text.size()));
        switch (escaped) {
            case '"': case '\\': token.text += escaped; break;
            case 'n': token.text += '\n'; break;
            case 't': token.text += '\t'; break;
            default:
                error(column() - 1,
                      "unknown escape '\\" + printable(escaped) + "' in string (use \\\" \\\\ \\n or \\t)");
                token.text += escaped;
        }
    });
    if (closed) emit(std::move(token));
}

void Lexer::regex() {
    Token token = start(TokenKind::regex);
    const bool closed = delimited(token, '/', "regex", [&](char escaped) {
        if (escaped != '/') token.text += '\\';   // \/ is a slash; other escapes are RE2's
        token.text += escaped;
    });
    if (closed) regex_flag(token);
}

/* After the closing '/': nothing, or the i flag. */
void Lexer::regex_flag(Token& token) {
    size_t end = pos_;
    while (end < text_.size() && is_alnum(text_[end])) ++end;
    const std::string_view flags = text_.substr(pos_, end - pos_);
    if (flags.empty() || flags == "i") {
        token.caseless = !flags.empty();
        pos_ = end;
        emit(std::move(token));
        return;
    }
    const uint32_t flag_column = column();
    pos_ = end;
    error_token(flag_column, "unknown regex flag '" + std::string(flags) + "' (only i is allowed)");
}

void Lexer::policy_token() {
    const char c = text_[pos_];
    if (c == '\\') {
        backslash();
    } else if (std::string_view("(){}[],").find(c) != std::string_view::npos) {
        Token token = start(TokenKind::punct);
        token.text = std::string(1, c);
        ++pos_;
        emit(std::move(token));
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        operator_or_word();
    } else if (is_word_char(c)) {
        policy_word();
    } else {
        error_token(column(), "unexpected character '" + printable(c) + "'");
        ++pos_;
    }
}

/* == != <= >= =~ !~ < >, or a word written =name. */
void Lexer::operator_or_word() {
    const char c = text_[pos_];
    const char next = at(pos_ + 1);
    size_t length = 0;
    if ((c == '=' || c == '!') && (next == '=' || next == '~')) {
        length = 2;
    } else if (c == '<' || c == '>') {
        length = next == '=' ? 2 : 1;
    } else if (c == '=' && is_word_char(next)) {
        policy_word();
        return;
    }
    if (length == 0) {
        const std::string hint = c == '=' ? " (did you mean '=='?)" : " (write 'not', '!=' or '!~')";
        error_token(column(), "unexpected character '" + printable(c) + "'" + hint);
        ++pos_;
        return;
    }
    Token token = start(TokenKind::op);
    token.text = std::string(text_.substr(pos_, length));
    pos_ += length;
    emit(std::move(token));
}

void Lexer::policy_word() {
    Token token = start(TokenKind::word);
    const size_t begin = pos_;
    ++pos_;   // the first character may be the '=' of =name
    while (pos_ < text_.size() && is_word_char(text_[pos_])) {
        const char next = at(pos_ + 1);
        if (text_[pos_] == '=' && (next == '=' || next == '~')) break;
        ++pos_;
    }
    token.text = std::string(text_.substr(begin, pos_ - begin));
    emit(std::move(token));
}

void Lexer::data_word() {
    Token token = start(TokenKind::word);
    const size_t begin = pos_;
    while (pos_ < text_.size() && !is_space(text_[pos_]) &&
           std::string_view("\n,\"").find(text_[pos_]) == std::string_view::npos) {
        ++pos_;
    }
    token.text = std::string(text_.substr(begin, pos_ - begin));
    emit(std::move(token));
}

}  // namespace

bool Token::is_word(std::string_view word) const { return kind == TokenKind::word && equals_nocase(text, word); }

bool Token::is_punct(char c) const { return kind == TokenKind::punct && text.size() == 1 && text[0] == c; }

uint32_t Token::column_of(size_t offset) const {
    const auto escapes_before = std::lower_bound(escapes.begin(), escapes.end(), offset) - escapes.begin();
    return column + 1 + static_cast<uint32_t>(offset + static_cast<size_t>(escapes_before));
}

std::string describe(const Token& token) {
    switch (token.kind) {
        case TokenKind::word:
        case TokenKind::op:
        case TokenKind::punct: return "'" + token.text + "'";
        case TokenKind::string: return "string \"" + token.text + "\"";
        case TokenKind::regex: return "regex /" + token.text + "/";
        case TokenKind::newline: return "end of line";
        case TokenKind::end: return "end of file";
        case TokenKind::error: break;
    }
    return "error";
}

std::vector<Token> lex(std::string_view text, LexMode mode, const std::shared_ptr<const SourceFile>& file,
                       ErrorSink& errors) {
    return Lexer(text, mode, file, errors).run();
}

}  // namespace portcullis::policy
