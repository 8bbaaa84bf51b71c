/*
 * cursor.cc: token access and error recovery for the parser.
 */
#include "policy/cursor.h"

#include "util/text.h"

namespace portcullis::policy {

TokenCursor::TokenCursor(const std::vector<Token>& tokens, std::shared_ptr<const SourceFile> file,
                         ErrorSink& errors)
    : tokens_(tokens), file_(std::move(file)), errors_(errors) {}

const Token& TokenCursor::peek() {
    while (depth_ > 0 && tokens_[pos_].kind == TokenKind::newline) ++pos_;
    const Token& token = tokens_[pos_];
    if (token.kind == TokenKind::error) throw SyntaxError{};   // the lexer has said why
    return token;
}

const Token& TokenCursor::next() {
    const Token& token = peek();
    if (token.kind != TokenKind::end) ++pos_;
    return token;
}

bool TokenCursor::accept_word(std::string_view word) {
    if (!peek().is_word(word)) return false;
    next();
    return true;
}

bool TokenCursor::accept_punct(char c) {
    if (!peek().is_punct(c)) return false;
    next();
    return true;
}

void TokenCursor::expect_close(const Token& open, char close) {
    if (accept_punct(close)) return;
    if (peek().kind == TokenKind::end) fail(open, "unclosed " + in_quotes(open.text));
    unexpected(in_quotes(std::string_view(&close, 1)));
}

void TokenCursor::skip_newlines() {
    while (peek().kind == TokenKind::newline) next();
}

bool TokenCursor::at_rule_end() {
    const Token& token = peek();
    return token.kind == TokenKind::newline || token.kind == TokenKind::end || token.is_punct('}');
}

void TokenCursor::fail(const Token& token, std::string message) {
    error(token, std::move(message));
    throw SyntaxError{};
}

void TokenCursor::unexpected(std::string_view expected) {
    const Token& token = peek();
    fail(token, "unexpected " + describe(token) + " (expected " + std::string(expected) + ")");
}

void TokenCursor::recover() {
    for (;; ++pos_) {
        const Token& token = tokens_[pos_];
        if (token.kind == TokenKind::end) break;
        if (depth_ == 0 && (token.kind == TokenKind::newline || token.is_punct('}'))) break;
        if (token.is_punct('(') || token.is_punct('{') || token.is_punct('[')) {
            ++depth_;
        } else if (depth_ > 0 && (token.is_punct(')') || token.is_punct('}') || token.is_punct(']'))) {
            --depth_;
        }
    }
    depth_ = 0;
}

}  // namespace portcullis::policy
