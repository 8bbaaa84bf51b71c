/*
 * parser.h: turning the tokens of one policy file into statements.
 *
 * parse_policy_file() reads the statements of one file (list, map,
 * include, on STAGE { rules }) and hands each to a PolicyBuilder: the
 * loader, which reads the files they name and resolves list and map
 * names once every file is read, so that a list may be used before the
 * statement that defines it.  Every rule is checked against the field
 * registry as it is parsed; problems go to the cursor's ErrorSink, and
 * parsing goes on at the next rule or statement after a syntax error.
 *
 * The list helpers are shared with the condition parser (inline lists)
 * and the loader (list files).
 */
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/ast.h"
#include "policy/cursor.h"

namespace portcullis::policy {

/* A condition that names a list (in_list) or a map (in_map), to be
 * pointed at it once every file is read. */
struct ListReference {
    Condition* condition = nullptr;
    std::string name;          // lower case
    SourceLocation where;      // of the name
};

/* A list or map name as written in its statement. */
struct Definition {
    std::string name;          // lower case
    SourceLocation where;      // of the name
};

class PolicyBuilder {
public:
    /* PATH as written, relative to the directory of the file that names
     * it; WHERE is the statement, for errors. */
    virtual void include(const std::string& path, const SourceLocation& where) = 0;
    virtual void define_list(const Definition& name, std::shared_ptr<const List> list) = 0;
    virtual void define_list_file(const Definition& name, ListKind kind, const std::string& path,
                                  const SourceLocation& where) = 0;
    virtual void define_map_file(const Definition& name, const std::string& path, const SourceLocation& where) = 0;
    virtual void add_rule(Rule rule, std::vector<ListReference> references) = 0;

protected:
    ~PolicyBuilder() = default;
};

void parse_policy_file(TokenCursor& cursor, PolicyBuilder& builder);

/* Consume "{ ITEM ... }" (items separated by spaces, commas or line ends)
 * and return the item tokens: words, strings and regexes. */
std::vector<const Token*> parse_list_braces(TokenCursor& cursor);

/* Add one item token to LIST, reporting at WHERE an item that does not
 * fit its kind. */
void add_list_item(List& list, const Token& item, const SourceLocation& where, ErrorSink& errors);

}  // namespace portcullis::policy
