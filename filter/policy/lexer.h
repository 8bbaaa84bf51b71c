/*
 * lexer.h: splitting policy, list and map files into tokens.
 *
 * lex() turns text into tokens, each with its 1-based line and byte
 * column, and reports malformed strings and regexes and stray characters
 * to an ErrorSink, leaving an error token in their place so that the
 * parser skips the rule without a second message.
 *
 * Policy text (LexMode::policy): words, "strings" (escapes \" \\ \n \t),
 * /regexes/ with an optional i flag (inside, \/ stands for /), the
 * operators == != < > <= >= =~ !~ and the punctuation ( ) { } [ ] ,.
 * A word is a run of letters, digits, non-ASCII bytes and _ - . : / @ + =
 * so that names, numbers, sizes, durations, rates, addresses, IPv6
 * addresses, CIDR prefixes, reply codes and =exact domains are each one
 * word; the parser decides what a word means where it stands.  A '='
 * inside a word ends it when it starts == or =~.  '#' starts a comment.
 * A newline token ends each line that has tokens, except when the next
 * line that has any starts with the word if, and or or, or when the line
 * ends with '\'.  (Inside ( ) and list braces the parser ignores newline
 * tokens itself.)
 *
 * Data text (LexMode::data, list and map files): items separated by white
 * space, commas or line ends; an item is a "string", a /regex/, or any
 * run of other characters; '#' at the start of an item starts a comment.
 * A newline token ends each line that has items.
 *
 * The token list always ends with one TokenKind::end token.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/diagnostics.h"

namespace portcullis::policy {

enum class LexMode { policy, data };

enum class TokenKind { word, string, regex, op, punct, newline, end, error };

struct Token {
    TokenKind kind = TokenKind::end;
    std::string text;                // word and op as written; string unescaped; regex pattern
    uint32_t line = 0;
    uint32_t column = 0;
    bool caseless = false;           // regex: the i flag
    std::vector<uint32_t> escapes;   // string: offsets in text of the bytes written as escapes

    bool is_word(std::string_view word) const;   // a word, compared without regard to case
    bool is_punct(char c) const;
    /* String: the source column of TEXT[OFFSET] (strings never span lines). */
    uint32_t column_of(size_t offset) const;
};

/* How a token is named in "unexpected ..." messages: 'word', string
 * "text", regex /x/, end of line, end of file. */
std::string describe(const Token& token);

std::vector<Token> lex(std::string_view text, LexMode mode, const std::shared_ptr<const SourceFile>& file,
                       ErrorSink& errors);

}  // namespace portcullis::policy
