/*
 * text_parser.cc: ${field} references in texts (see text_parser.h).
 */
#include "policy/text_parser.h"

namespace portcullis::policy {

namespace {

class TemplateParser {
public:
    TemplateParser(TokenCursor& cursor, const Token& token, const FieldUse& use)
        : cursor_(cursor), token_(token), text_(token.text), use_(use) {}

    Template run();

private:
    size_t reference(size_t dollar);
    SourceLocation at(size_t offset) const { return {cursor_.file(), token_.line, token_.column_of(offset)}; }
    void error(size_t offset, std::string message) { cursor_.error(at(offset), std::move(message)); }

    TokenCursor& cursor_;
    const Token& token_;
    std::string_view text_;
    const FieldUse& use_;
    Template result_;
};

Template TemplateParser::run() {
    size_t pos = 0;
    while (pos < text_.size()) {
        const size_t dollar = text_.find('$', pos);
        append_literal(result_, text_.substr(pos, dollar - pos));
        if (dollar == std::string_view::npos) break;
        const char next = dollar + 1 < text_.size() ? text_[dollar + 1] : '\0';
        if (next == '$') {
            append_literal(result_, "$");
            pos = dollar + 2;
        } else if (next == '{') {
            pos = reference(dollar);
        } else {
            error(dollar, "'$' must start ${field} or be written $$");
            pos = dollar + 1;
        }
    }
    return std::move(result_);
}

/* ${NAME} or ${NAME(ARGUMENT)} at DOLLAR; returns the offset after it. */
size_t TemplateParser::reference(size_t dollar) {
    const size_t start = dollar + 2;
    const size_t close = text_.find('}', start);
    if (close == std::string_view::npos) {
        error(dollar, "unclosed '${'");
        return text_.size();
    }
    const std::string_view inner = text_.substr(start, close - start);
    const size_t paren = inner.find('(');
    const std::string_view name = inner.substr(0, paren);
    std::optional<std::string> argument;
    if (paren != std::string_view::npos) {
        std::string_view written = inner.substr(paren + 1);
        if (written.empty() || written.back() != ')') {
            error(start + paren, "unclosed '('");
            return close + 1;
        }
        written.remove_suffix(1);
        const bool in_quotes = written.size() >= 2 && written.front() == '"' && written.back() == '"';
        if (in_quotes) written = written.substr(1, written.size() - 2);
        argument = std::string(written);
    }
    const FieldInfo* field = find_field(name);
    if (!field) {
        error(start, unknown_field_message(name));
        return close + 1;
    }
    const std::string problem = field_argument_error(*field, argument);
    if (!problem.empty()) {
        error(start, problem);
    } else if (check_field_use(*field, use_, at(start), cursor_.errors())) {
        result_.pieces.push_back({true, "", field->id, argument.value_or(""), at(start)});
    }
    return close + 1;
}

}  // namespace

void append_literal(Template& text, std::string_view literal) {
    if (literal.empty()) return;
    if (text.pieces.empty() || text.pieces.back().is_field) text.pieces.push_back({});
    text.pieces.back().literal += literal;
}

Template parse_template(TokenCursor& cursor, const Token& text, const FieldUse& use) {
    return TemplateParser(cursor, text, use).run();
}

}  // namespace portcullis::policy
