/*
 * lexer_test.cc: tokens of policy and data files, line continuation,
 * positions, and the lexer's error messages.
 */
#include "policy/lexer.h"

#include <gtest/gtest.h>

namespace portcullis::policy {
namespace {

struct Lexed {
    std::vector<Token> tokens;
    std::vector<std::string> errors;
};

Lexed lex_text(std::string_view text, LexMode mode = LexMode::policy) {
    const auto file = std::make_shared<const SourceFile>(SourceFile{"t.rules", "t.rules"});
    ErrorSink sink;
    Lexed lexed;
    lexed.tokens = lex(text, mode, file, sink);
    for (const auto& error : sink.take()) lexed.errors.push_back(error.str());
    return lexed;
}

/* The tokens in a compact form: words as written, strings in quotes,
 * regexes in slashes, "NL" for newlines; the end token left out. */
std::vector<std::string> shapes(std::string_view text, LexMode mode = LexMode::policy) {
    const Lexed lexed = lex_text(text, mode);
    EXPECT_EQ(lexed.errors, std::vector<std::string>{}) << text;
    std::vector<std::string> out;
    for (const Token& token : lexed.tokens) {
        switch (token.kind) {
            case TokenKind::string: out.push_back("\"" + token.text + "\""); break;
            case TokenKind::regex: out.push_back("/" + token.text + "/" + (token.caseless ? "i" : "")); break;
            case TokenKind::newline: out.push_back("NL"); break;
            case TokenKind::end: break;
            default: out.push_back(token.text);
        }
    }
    return out;
}

using Shapes = std::vector<std::string>;

TEST(Lexer, WordsKeepLiteralsWhole) {
    EXPECT_EQ(shapes("2001:db8::/32 ::1 192.0.2.0/24 50M 5m 200/1h 550 5.7.1"),
              (Shapes{"2001:db8::/32", "::1", "192.0.2.0/24", "50M", "5m", "200/1h", "550", "5.7.1"}));
    EXPECT_EQ(shapes("client.ip =example.com user@ @domain.org a+b@x.org add-header"),
              (Shapes{"client.ip", "=example.com", "user@", "@domain.org", "a+b@x.org", "add-header"}));
}

TEST(Lexer, PunctuationSplitsWords) {
    EXPECT_EQ(shapes("sender_logins[sender] (client.ip,sender.domain) {a,b}"),
              (Shapes{"sender_logins", "[", "sender", "]", "(", "client.ip", ",", "sender.domain", ")", "{", "a",
                      ",", "b", "}"}));
}

TEST(Lexer, EveryOperator) {
    EXPECT_EQ(shapes("a == b != c < d > e <= f >= g =~ /x/ !~ /y/"),
              (Shapes{"a", "==", "b", "!=", "c", "<", "d", ">", "e", "<=", "f", ">=", "g", "=~", "/x/", "!~", "/y/"}));
}

TEST(Lexer, OperatorsWithoutSpaces) {
    EXPECT_EQ(shapes("size>50M"), (Shapes{"size", ">", "50M"}));
    EXPECT_EQ(shapes("helo=~/x/i"), (Shapes{"helo", "=~", "/x/i"}));
    EXPECT_EQ(shapes("rcpt.count<=5"), (Shapes{"rcpt.count", "<=", "5"}));
    EXPECT_EQ(shapes("a==b"), (Shapes{"a", "==", "b"}));
    EXPECT_EQ(shapes("a!=b"), (Shapes{"a", "!=", "b"}));
}

TEST(Lexer, StringsAndEscapes) {
    EXPECT_EQ(shapes(R"("say \"hi\"" "a\\b" "x\ty\nz" "# not a comment")"),
              (Shapes{"\"say \"hi\"\"", "\"a\\b\"", "\"x\ty\nz\"", "\"# not a comment\""}));
}

TEST(Lexer, StringColumnsAccountForEscapes) {
    const Lexed lexed = lex_text(R"(  "a\"b$")");
    ASSERT_EQ(lexed.tokens[0].text, "a\"b$");
    EXPECT_EQ(lexed.tokens[0].column, 3u);
    EXPECT_EQ(lexed.tokens[0].column_of(0), 4u);   // a
    EXPECT_EQ(lexed.tokens[0].column_of(1), 5u);   // \" starts at 5
    EXPECT_EQ(lexed.tokens[0].column_of(3), 8u);   // $
}

TEST(Lexer, Regexes) {
    EXPECT_EQ(shapes(R"(/a\/b/ /\.example\.com$/i /x\\/)"), (Shapes{"/a/b/", "/\\.example\\.com$/i", "/x\\\\/"}));
    EXPECT_EQ(shapes("/# inside/"), (Shapes{"/# inside/"}));
}

TEST(Lexer, CommentsEndAtLineEnd) {
    EXPECT_EQ(shapes("accept # all of it\nreject"), (Shapes{"accept", "NL", "reject"}));
    EXPECT_EQ(shapes("# only a comment\n\n   \n"), (Shapes{}));
}

TEST(Lexer, BlankAndCommentLinesMakeOneNewline) {
    EXPECT_EQ(shapes("a\n\n# c\n\nb\n"), (Shapes{"a", "NL", "b", "NL"}));
}

TEST(Lexer, ContinuationByLeadingKeyword) {
    EXPECT_EQ(shapes("reject\n   if a\n   and b\n   OR c\nnext"),
              (Shapes{"reject", "if", "a", "and", "b", "OR", "c", "NL", "next"}));
    // Comment and blank lines between do not break the rule.
    EXPECT_EQ(shapes("reject\n# why\n\n  If a"), (Shapes{"reject", "If", "a"}));
    // A word that only starts with "or" is not the keyword.
    EXPECT_EQ(shapes("a\norder"), (Shapes{"a", "NL", "order"}));
}

TEST(Lexer, ContinuationByBackslash) {
    EXPECT_EQ(shapes("reject 550 \\\n  \"text\"\nnext"), (Shapes{"reject", "550", "\"text\"", "NL", "next"}));
    EXPECT_EQ(shapes("a \\   \r\nb"), (Shapes{"a", "b"}));
}

TEST(Lexer, ParenthesesAndBracesLeaveNewlinesToTheParser) {
    // The lexer marks the line ends; the parser steps over them inside
    // ( ) and list braces (see parser_test).
    EXPECT_EQ(shapes("(a\nb)"), (Shapes{"(", "a", "NL", "b", ")"}));
}

TEST(Lexer, LinesAndColumnsAreOneBasedBytes) {
    const Lexed lexed = lex_text("on connect {\n\taccept  if tls\n}");
    ASSERT_GE(lexed.tokens.size(), 8u);
    EXPECT_EQ(lexed.tokens[1].text, "connect");
    EXPECT_EQ(lexed.tokens[1].line, 1u);
    EXPECT_EQ(lexed.tokens[1].column, 4u);
    EXPECT_EQ(lexed.tokens[4].text, "accept");
    EXPECT_EQ(lexed.tokens[4].line, 2u);
    EXPECT_EQ(lexed.tokens[4].column, 2u);
    EXPECT_EQ(lexed.tokens[5].text, "if");
    EXPECT_EQ(lexed.tokens[5].column, 10u);
    EXPECT_EQ(lexed.tokens.back().kind, TokenKind::end);
}

TEST(Lexer, ByteOrderMarkIsSkipped) {
    const Lexed lexed = lex_text("\xef\xbb\xbflist");
    EXPECT_EQ(lexed.tokens[0].text, "list");
    EXPECT_EQ(lexed.tokens[0].column, 1u);
}

TEST(Lexer, DataModeItems) {
    EXPECT_EQ(shapes("o'brien@x.org, *weird*  #comment\n\"with space\" /re/i\nfoo#bar", LexMode::data),
              (Shapes{"o'brien@x.org", "*weird*", "NL", "\"with space\"", "/re/i", "NL", "foo#bar"}));
    // No continuation in data files.
    EXPECT_EQ(shapes("a\nif\n", LexMode::data), (Shapes{"a", "NL", "if", "NL"}));
}

TEST(LexerErrors, UnterminatedString) {
    const Lexed lexed = lex_text("log \"abc\nnext");
    EXPECT_EQ(lexed.errors, std::vector<std::string>{"t.rules:1:5: error: unterminated string"});
    EXPECT_EQ(lexed.tokens[1].kind, TokenKind::error);
    EXPECT_EQ(lexed.tokens[3].text, "next");   // lexing goes on at the next line
}

TEST(LexerErrors, UnknownEscape) {
    EXPECT_EQ(lex_text(R"(log "a\qb")").errors,
              std::vector<std::string>{R"(t.rules:1:7: error: unknown escape '\q' in string (use \" \\ \n or \t))"});
}

TEST(LexerErrors, UnterminatedRegexAndBadFlag) {
    EXPECT_EQ(lex_text("a =~ /abc").errors, std::vector<std::string>{"t.rules:1:6: error: unterminated regex"});
    EXPECT_EQ(lex_text("a =~ /abc/x").errors,
              std::vector<std::string>{"t.rules:1:11: error: unknown regex flag 'x' (only i is allowed)"});
}

TEST(LexerErrors, StrayCharacters) {
    EXPECT_EQ(lex_text("a * b").errors, std::vector<std::string>{"t.rules:1:3: error: unexpected character '*'"});
    EXPECT_EQ(lex_text("helo = x").errors,
              std::vector<std::string>{"t.rules:1:6: error: unexpected character '=' (did you mean '=='?)"});
    EXPECT_EQ(lex_text("! tls").errors,
              std::vector<std::string>{"t.rules:1:1: error: unexpected character '!' (write 'not', '!=' or '!~')"});
    EXPECT_EQ(lex_text("a \\ b").errors,
              std::vector<std::string>{"t.rules:1:3: error: '\\' continues a rule only at the end of a line"});
    EXPECT_EQ(lex_text("a \x01").errors, std::vector<std::string>{"t.rules:1:3: error: unexpected character '\\x01'"});
}

TEST(Lexer, DescribeNamesTokensForMessages) {
    const Lexed lexed = lex_text("w \"s\" /r/ == {\n");
    EXPECT_EQ(describe(lexed.tokens[0]), "'w'");
    EXPECT_EQ(describe(lexed.tokens[1]), "string \"s\"");
    EXPECT_EQ(describe(lexed.tokens[2]), "regex /r/");
    EXPECT_EQ(describe(lexed.tokens[3]), "'=='");
    EXPECT_EQ(describe(lexed.tokens[4]), "'{'");
    EXPECT_EQ(describe(lexed.tokens[5]), "end of line");
    EXPECT_EQ(describe(lexed.tokens[6]), "end of file");
}

}  // namespace
}  // namespace portcullis::policy
