/*
 * cursor.h: walking the tokens of one policy file.
 *
 * TokenCursor hands the parser one token at a time.  Inside parentheses
 * and list braces (the parser says when it enters and leaves them) line
 * ends do not end a rule, so there peek() steps over newline tokens.
 *
 * Errors come in two sorts.  error() reports a problem and parsing goes
 * on (an unknown field, a type error).  fail() reports a syntax error and
 * throws SyntaxError; the parser catches it at the rule or statement and
 * calls recover() to skip to the end of it.  Reaching an error token the
 * lexer left behind throws SyntaxError without a second message.
 */
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/diagnostics.h"
#include "policy/lexer.h"

namespace portcullis::policy {

struct SyntaxError {};

class TokenCursor {
public:
    /* TOKENS must end with an end token (lex() guarantees it). */
    TokenCursor(const std::vector<Token>& tokens, std::shared_ptr<const SourceFile> file, ErrorSink& errors);

    const Token& peek();
    const Token& next();
    /* Consume the next token if it is the keyword WORD (any case) or the
     * punctuation C. */
    bool accept_word(std::string_view word);
    bool accept_punct(char c);
    /* Consume the token that closes OPEN (')', '}' or ']'), failing with
     * "unclosed" at OPEN when the file ends first. */
    void expect_close(const Token& open, char close);
    /* Step over newlines where a statement may continue (before '{'). */
    void skip_newlines();
    /* Whether the next token ends a rule: a line end, '}' or the end. */
    bool at_rule_end();

    /* Newlines do not count between enter() and its leave(). */
    void enter() { ++depth_; }
    void leave() { --depth_; }

    SourceLocation where(const Token& token) const { return {file_, token.line, token.column}; }
    const std::shared_ptr<const SourceFile>& file() const { return file_; }
    ErrorSink& errors() { return errors_; }

    void error(const Token& token, std::string message) { errors_.report(where(token), std::move(message)); }
    void error(const SourceLocation& at, std::string message) { errors_.report(at, std::move(message)); }
    [[noreturn]] void fail(const Token& token, std::string message);
    /* Fail at the next token: "unexpected X (expected EXPECTED)". */
    [[noreturn]] void unexpected(std::string_view expected);

    /* After a SyntaxError: skip what is left of the rule or statement,
     * including whatever brackets are open, up to its line end, the '}'
     * of the enclosing block or the end of the file. */
    void recover();

private:
    const std::vector<Token>& tokens_;
    std::shared_ptr<const SourceFile> file_;
    ErrorSink& errors_;
    size_t pos_ = 0;
    unsigned depth_ = 0;
};

}  // namespace portcullis::policy
