// check_doc_coverage: the documentation checks (a `///` comment on every public entity, every
// option in the docs), without Python.
//
//   check_doc_coverage headers INCLUDE_DIR [--list]
//       Every public entity of INCLUDE_DIR/traincb/**/*.hpp (outside traincb/detail/ and outside
//       any `detail` or anonymous namespace, and outside private/protected sections) has a `///`
//       line directly before it (template and attribute lines may sit in between, as they belong to
//       the declaration) or a trailing `///<` on one of its lines. A function whose inline body
//       contains a `throw` (not a bare rethrow) must say `@throws` in that comment. Prints
//       `file:line: what` for each finding; exits 1 when there is any. --list also prints every
//       entity it found (to see what the parser understood).
//
//   check_doc_coverage options INCLUDE_DIR DOC.md...
//       Every public data member of every public `*Options` struct appears in backticks in a
//       section (a heading and everything up to the next heading of the same or a higher level) of
//       one of the DOC files that names the struct outside code blocks; every public final class
//       derived (directly or not) from Callback or Sink is named in a heading, and every non-final
//       one (a base class meant for derivation) is named in backticks somewhere. Same output and exit
//       code.
//
// It is a heuristic parser, not a compiler: comments, string/char/raw-string literals and
// preprocessor lines are blanked first; then a scanner tracks brace scopes (namespace, class,
// enum, function body, brace initialiser), access specifiers and statement boundaries. Known
// limits: `#if` branches are both read (the one `#if` of a public header includes its -inl.hpp, and
// has no `#else`); X-inl.hpp, which holds the bodies of X.hpp's functions, is read as the rest of
// X.hpp; a function defined out of line (`R C::f(...) {`) or after a
// declaration (without body) of the same name in the same file is checked at the declaration,
// including a `throw` in the body, so an overload defined without a declaration of its own after
// another overload's bodiless declaration is not seen;
// `= default` and `= delete` declarations, destructors, using-declarations (`using Base::Base;`), forward
// declarations, friend class declarations and static_asserts need no comment; enumerators written
// on the enum's own line share the enum's comment; a macro that expands to declarations is not
// seen.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace fs = std::filesystem;

namespace {

bool is_ident(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}
bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string trim(std::string_view s) {
    std::size_t b = 0;
    std::size_t e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
}

bool starts_with_word(std::string_view s, std::string_view word) {
    return s.starts_with(word) && (s.size() == word.size() || !is_ident(s[word.size()]));
}

/// Identifier tokens of `s`, in order.
std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < s.size();) {
        if (is_ident(s[i])) {
            std::size_t j = i;
            while (j < s.size() && is_ident(s[j])) ++j;
            out.emplace_back(s.substr(i, j - i));
            i = j;
        } else {
            ++i;
        }
    }
    return out;
}

bool has_word(std::string_view s, std::string_view w) {
    for (const auto& x : words(s))
        if (x == w) return true;
    return false;
}

// ---------------------------------------------------------------------------------------------
// Pass 1: blank comments, literals and preprocessor lines; remember the `///` lines.

struct LineInfo {
    bool doc = false;           // the line is only a `///` comment
    bool trailing_doc = false;  // the line holds a `///<` comment
    std::string doc_text;       // the text of either
};

struct Source {
    std::string path;             // as printed
    std::string code;             // same length and newlines as the file; comments and literals blanked
    std::vector<LineInfo> lines;  // index 0 unused: lines are 1-based
};

Source strip(const std::string& path, const std::string& text) {
    Source src;
    src.path = path;
    src.code = text;
    std::string& out = src.code;
    src.lines.assign(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 3, LineInfo{});
    std::size_t line = 1;
    bool line_has_code = false;  // non-space code seen on this line before position i
    const std::size_t n = text.size();
    auto blank = [&](std::size_t from, std::size_t to) {  // [from, to), keeping newlines
        for (std::size_t k = from; k < to && k < n; ++k)
            if (out[k] != '\n') out[k] = ' ';
    };
    for (std::size_t i = 0; i < n;) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
            line_has_code = false;
            ++i;
            continue;
        }
        if (c == '#' && !line_has_code) {  // preprocessor line, with continuations
            std::size_t j = i;
            while (j < n) {
                if (text[j] == '\n') {
                    if (j > 0 && text[j - 1] == '\\') {
                        ++line;
                        ++j;
                        continue;
                    }
                    break;
                }
                ++j;
            }
            blank(i, j);
            i = j;
            continue;
        }
        if (c == '/' && i + 1 < n && text[i + 1] == '/') {
            std::size_t j = i;
            while (j < n && text[j] != '\n') ++j;
            const std::string_view body(text.data() + i, j - i);
            if (body.starts_with("///<")) {
                src.lines[line].trailing_doc = true;
                src.lines[line].doc_text += std::string(body.substr(4)) + "\n";
            } else if (body.starts_with("///") && !body.starts_with("////") && !line_has_code) {
                src.lines[line].doc = true;
                src.lines[line].doc_text += std::string(body.substr(3)) + "\n";
            }
            blank(i, j);
            i = j;
            continue;
        }
        if (c == '/' && i + 1 < n && text[i + 1] == '*') {
            std::size_t j = text.find("*/", i + 2);
            j = (j == std::string::npos) ? n : j + 2;
            for (std::size_t k = i; k < j; ++k)
                if (text[k] == '\n') ++line;
            blank(i, j);
            i = j;
            continue;
        }
        if (c == '"') {
            // Raw string: R"delim( ... )delim", with an optional u8/u/U/L prefix before the R.
            if (i > 0 && text[i - 1] == 'R' &&
                (i < 2 || !is_ident(text[i - 2]) || text[i - 2] == '8' || text[i - 2] == 'u' || text[i - 2] == 'U' ||
                 text[i - 2] == 'L')) {
                const std::size_t open = text.find('(', i);
                if (open != std::string::npos) {
                    const std::string delim = ")" + text.substr(i + 1, open - i - 1) + "\"";
                    std::size_t end = text.find(delim, open);
                    end = (end == std::string::npos) ? n : end + delim.size();
                    for (std::size_t k = i; k < end; ++k)
                        if (text[k] == '\n') ++line;
                    blank(i + 1, end - 1);
                    line_has_code = true;
                    i = end;
                    continue;
                }
            }
            std::size_t j = i + 1;
            while (j < n && text[j] != '"' && text[j] != '\n') j += (text[j] == '\\') ? 2 : 1;
            blank(i + 1, std::min(j, n));
            line_has_code = true;
            i = std::min(j + 1, n);
            continue;
        }
        if (c == '\'') {
            // A digit separator (1'000'000) when the token before it starts with a digit.
            std::size_t b = i;
            while (b > 0 && is_ident(text[b - 1])) --b;
            if (b < i && std::isdigit(static_cast<unsigned char>(text[b])) != 0) {
                ++i;
                continue;
            }
            std::size_t j = i + 1;
            while (j < n && text[j] != '\'' && text[j] != '\n') j += (text[j] == '\\') ? 2 : 1;
            blank(i + 1, std::min(j, n));
            line_has_code = true;
            i = std::min(j + 1, n);
            continue;
        }
        if (!is_space(c)) line_has_code = true;
        ++i;
    }
    return src;
}

// ---------------------------------------------------------------------------------------------
// Pass 2: scopes and declarations.

enum class ScopeKind { Namespace, Class, Enum, Body };

struct Scope {
    ScopeKind kind = ScopeKind::Namespace;
    std::string name;        // class name, for qualified output
    bool public_now = true;  // current access (classes)
    bool exempt = false;     // detail / anonymous namespace, or a non-public nested class
    int class_index = -1;    // into Model::classes, for Class scopes
    int entity = -1;         // for Body scopes: the function entity it belongs to, or -1
    int depth = 0;           // for Body scopes: nested braces inside the body
    bool has_throw = false;  // for Body scopes: a `throw expr` was seen
};

struct Entity {
    std::string file;
    std::size_t line = 0;
    std::string what;  // e.g. "function Logs::set"
    bool documented = false;
    bool is_function = false;
    std::string doc;  // the comment text that documents it
};

struct ClassInfo {
    std::string file;
    std::size_t line = 0;
    std::string name;
    std::string bases;  // the text after the name, before `{`
    bool is_public = false;
    std::vector<std::pair<std::string, std::size_t>> data_members;  // public, non-static
};

struct Model {
    std::vector<Entity> entities;
    std::vector<ClassInfo> classes;
    std::vector<std::string> throw_findings;  // file:line: function X throws but ...
};

/// Removes leading `template <...>` groups, attributes `[[...]]` and `alignas(...)`.
std::string strip_prefixes(std::string h) {
    for (bool again = true; again;) {
        again = false;
        h = trim(h);
        if (starts_with_word(h, "template")) {
            std::size_t i = 8;
            while (i < h.size() && is_space(h[i])) ++i;
            if (i < h.size() && h[i] == '<') {
                int angle = 0;
                int paren = 0;
                for (; i < h.size(); ++i) {
                    const char c = h[i];
                    if (c == '(')
                        ++paren;
                    else if (c == ')')
                        --paren;
                    else if (paren == 0 && c == '<')
                        ++angle;
                    else if (paren == 0 && c == '>') {
                        if (--angle == 0) break;
                    }
                }
                h = h.substr(std::min(i + 1, h.size()));
                again = true;
            }
        } else if (h.starts_with("[[")) {
            const std::size_t e = h.find("]]");
            h = (e == std::string::npos) ? std::string() : h.substr(e + 2);
            again = true;
        } else if (starts_with_word(h, "alignas")) {
            const std::size_t e = h.find(')');
            h = (e == std::string::npos) ? std::string() : h.substr(e + 1);
            again = true;
        }
    }
    return h;
}

/// Position of the first plain `=` at paren/bracket/brace depth 0 (not ==, !=, <=, >=, not part
/// of an operator name), or npos.
std::size_t find_assign(std::string_view h) {
    int depth = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
        const char c = h[i];
        if (c == '(' || c == '[' || c == '{')
            ++depth;
        else if (c == ')' || c == ']' || c == '}')
            --depth;
        else if (c == '=' && depth == 0) {
            const char prev = i > 0 ? h[i - 1] : ' ';
            const char next = i + 1 < h.size() ? h[i + 1] : ' ';
            if (next == '=' || prev == '=' || prev == '!' || prev == '<' || prev == '>') continue;
            std::string before = trim(h.substr(0, i));
            while (!before.empty() && std::string_view("+-*/%^&|<>!~").find(before.back()) != std::string_view::npos)
                before.pop_back();
            if (before.ends_with("operator")) continue;
            return i;
        }
    }
    return std::string_view::npos;
}

const std::set<std::string, std::less<>> kNotNames = {"decltype", "noexcept", "alignas",       "requires", "explicit",
                                                      "sizeof",   "alignof",  "static_assert", "throw"};

/// For a declaration with a parameter list: the function's name (operator names included), or
/// nullopt when no parenthesis group at depth 0 follows a name.
std::optional<std::string> function_name(std::string_view h) {
    if (const std::size_t op = h.find("operator"); op != std::string_view::npos && (op == 0 || !is_ident(h[op - 1])) &&
                                                   (op + 8 >= h.size() || !is_ident(h[op + 8]))) {
        std::size_t i = op + 8;
        while (i < h.size() && is_space(h[i])) ++i;
        std::string sym;
        if (h.substr(i).starts_with("()")) {
            sym = "()";
        } else {
            while (i < h.size() && h[i] != '(') {
                if (!is_space(h[i])) sym += h[i];
                ++i;
            }
        }
        return "operator" + sym;
    }
    int angle = 0;
    int paren = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
        const char c = h[i];
        if (c == '<' && paren == 0)
            ++angle;
        else if (c == '>' && paren == 0 && !(i > 0 && h[i - 1] == '-'))
            angle = std::max(0, angle - 1);
        else if (c == '(' && angle == 0 && paren == 0) {
            std::size_t e = i;
            while (e > 0 && is_space(h[e - 1])) --e;
            std::size_t b = e;
            while (b > 0 && is_ident(h[b - 1])) --b;
            std::string name(h.substr(b, e - b));
            if (b > 0 && h[b - 1] == '~') name = "~" + name;
            if (!name.empty() && !kNotNames.contains(name) && !std::isdigit(static_cast<unsigned char>(name[0])))
                return name;
            ++paren;
        } else if (c == '(' || c == '[' || c == '{') {
            ++paren;
        } else if (c == ')' || c == ']' || c == '}') {
            --paren;
        }
    }
    return std::nullopt;
}

/// The declared name of a variable or data member: the last identifier before the initialiser.
std::string variable_name(std::string_view h) {
    int depth = 0;
    std::size_t end = h.size();
    for (std::size_t i = 0; i < h.size(); ++i) {
        const char c = h[i];
        if (c == '<' || c == '(')
            ++depth;
        else if ((c == '>' || c == ')') && depth > 0)
            --depth;
        else if (depth == 0 && (c == '=' || c == '{' || c == '[' || c == ',' ||
                                (c == ':' && !(i + 1 < h.size() && h[i + 1] == ':') && !(i > 0 && h[i - 1] == ':')))) {
            end = i;
            break;
        }
    }
    const auto ws = words(h.substr(0, end));
    return ws.empty() ? std::string("?") : ws.back();
}

class Scanner {
public:
    Scanner(const Source& src, Model& model) : src_(src), model_(model) {}

    void run() {
        stack_.push_back(Scope{});
        const std::string& code = src_.code;
        std::size_t line = 1;
        for (std::size_t i = 0; i < code.size(); ++i) {
            const char c = code[i];
            if (c == '\n') {
                ++line;
                if (stack_.back().kind != ScopeKind::Body) stmt_ += '\n';  // to locate lines within it
                continue;
            }
            Scope& top = stack_.back();
            if (top.kind == ScopeKind::Body) {
                body_char(code, i, line);
                continue;
            }
            if (top.kind == ScopeKind::Enum) {
                enum_char(c, line);
                continue;
            }
            decl_char(code, i, line);
        }
    }

private:
    // --- function bodies and other opaque blocks --------------------------------------------
    void body_char(const std::string& code, std::size_t& i, std::size_t line) {
        Scope& top = stack_.back();
        const char c = code[i];
        if (c == '{') {
            ++top.depth;
        } else if (c == '}') {
            if (top.depth > 0) {
                --top.depth;
                return;
            }
            const Scope done = top;
            stack_.pop_back();
            if (done.entity >= 0 && done.has_throw) {
                const Entity& e = model_.entities[static_cast<std::size_t>(done.entity)];
                if (e.documented && e.doc.find("@throws") == std::string::npos)
                    model_.throw_findings.push_back(e.file + ":" + std::to_string(e.line) + ": " + e.what +
                                                    ": its body throws but its comment has no @throws");
            }
            reset_stmt();
            (void)line;
        } else if (is_ident(c) && (i == 0 || !is_ident(code[i - 1]))) {
            std::size_t j = i;
            while (j < code.size() && is_ident(code[j])) ++j;
            if (std::string_view(code).substr(i, j - i) == "throw") {
                std::size_t k = j;
                while (k < code.size() && is_space(code[k])) ++k;
                if (k < code.size() && code[k] != ';') top.has_throw = true;  // `throw;` rethrows
            }
            i = j - 1;
        }
    }

    // --- enumerators ---------------------------------------------------------------------------
    void enum_char(char c, std::size_t line) {
        if (c == '(' || c == '[' || c == '{') ++paren_;
        if (c == ')' || c == ']' || (c == '}' && paren_ > 0)) {
            --paren_;
            append(c, line);
            return;
        }
        if ((c == ',' || c == '}') && paren_ == 0) {
            const std::string t = trim(stmt_);
            if (!t.empty()) {
                const auto ws = words(t);
                const Scope& sc = stack_.back();
                add_entity(stmt_line_, last_line_, "enumerator " + sc.name + "::" + (ws.empty() ? "?" : ws.front()),
                           false, sc.exempt);
            }
            reset_stmt();
            if (c == '}') stack_.pop_back();
            return;
        }
        append(c, line);
    }

    // --- namespace and class scope ------------------------------------------------------------
    void decl_char(const std::string& code, std::size_t i, std::size_t line) {
        const char c = code[i];
        if (c == '(' || c == '[') {
            ++paren_;
        } else if (c == ')' || c == ']') {
            --paren_;
        } else if (c == '{') {
            if (paren_ > 0 || init_ > 0) {
                if (paren_ == 0) ++init_;
                append(c, line);
                return;
            }
            open_brace(line);
            return;
        } else if (c == '}') {
            if (paren_ > 0) {
                append(c, line);
                return;
            }
            if (init_ > 0) {
                --init_;
                append(c, line);
                return;
            }
            if (stack_.size() > 1) stack_.pop_back();
            reset_stmt();
            return;
        } else if (c == ';' && paren_ == 0 && init_ == 0) {
            end_declaration();
            reset_stmt();
            return;
        } else if (c == ':' && paren_ == 0 && init_ == 0 && stack_.back().kind == ScopeKind::Class) {
            const bool scope_op = (i + 1 < code.size() && code[i + 1] == ':') || (i > 0 && code[i - 1] == ':');
            const std::string t = trim(stmt_);
            if (!scope_op && (t == "public" || t == "private" || t == "protected")) {
                stack_.back().public_now = (t == "public");
                reset_stmt();
                return;
            }
        }
        append(c, line);
    }

    void open_brace(std::size_t line) {
        const std::string raw = trim(stmt_);
        const std::string h = strip_prefixes(raw);
        Scope& parent = stack_.back();
        const bool parent_exempt = parent.exempt || (parent.kind == ScopeKind::Class && !parent.public_now);
        stmt_ += '{';
        if (last_line_ == 0) last_line_ = line;

        // namespace / extern "C"
        if (starts_with_word(h, "namespace") || (starts_with_word(h, "inline") && has_word(h, "namespace"))) {
            Scope s;
            s.kind = ScopeKind::Namespace;
            const std::string name = trim(h.substr(h.find("namespace") + 9));
            const auto parts = words(name);  // `traincb::inline v0::detail`, `detail_ckpt`, ...
            s.exempt =
                parent_exempt || name.empty() ||
                std::any_of(parts.begin(), parts.end(), [](const std::string& w) { return w.starts_with("detail"); });
            push(s);
            return;
        }
        if (starts_with_word(h, "extern")) {
            Scope s;
            s.kind = ScopeKind::Namespace;
            s.exempt = parent_exempt;
            push(s);
            return;
        }
        const std::size_t assign = find_assign(h);
        // class / struct / union / enum definition
        const auto ws = words(h);
        if (assign == std::string::npos && !ws.empty()) {
            std::size_t k = 0;
            while (k < ws.size() && (ws[k] == "export" || ws[k] == "typedef")) ++k;
            if (k < ws.size() && (ws[k] == "class" || ws[k] == "struct" || ws[k] == "union" || ws[k] == "enum")) {
                open_type(h, ws, k, parent, parent_exempt);
                return;
            }
        }
        // brace initialisers and requires-expressions stay part of the statement
        if (assign != std::string::npos || is_requires_brace(h) || is_init_brace(h)) {
            ++init_;
            return;
        }
        // a function body (or another block)
        Scope s;
        s.kind = ScopeKind::Body;
        if (parent.kind != ScopeKind::Body)
            if (auto name = function_name(h); name && !name->starts_with("~")) {
                // The definition of a function declared (and checked) earlier in the file, as a
                // header's -inl.hpp holds them (traincb/detail/config.hpp), or an
                // out-of-line member definition: the declaration carries the comment, and a `throw`
                // in this body is held against the declaration's comment.
                const std::string key =
                    "function " + (is_out_of_line(h, *name) ? out_of_line_name(h, *name) : qualified(*name));
                const auto it = declared_functions_.find(key);
                // (a template is never such a definition: its body cannot leave the header)
                if (stack_.back().kind == ScopeKind::Namespace && it != declared_functions_.end() &&
                    !trim(stmt_).starts_with("template"))
                    s.entity = declaration_for(it->second);
                else if (!is_out_of_line(h, *name))
                    s.entity = add_entity(stmt_line_, last_line_, key, true, parent_exempt);
            }
        push(s);
    }

    void open_type(const std::string& h, const std::vector<std::string>& ws, std::size_t k, const Scope& parent,
                   bool parent_exempt) {
        const std::string key = ws[k];
        std::size_t n = k + 1;
        if (key == "enum" && n < ws.size() && (ws[n] == "class" || ws[n] == "struct")) ++n;
        std::string name = n < ws.size() ? ws[n] : std::string();
        if (name == "final") name.clear();  // anonymous
        Scope s;
        s.kind = key == "enum" ? ScopeKind::Enum : ScopeKind::Class;
        s.public_now = key != "class";
        s.exempt = parent_exempt || name.empty();
        s.name = parent.kind == ScopeKind::Class && !parent.name.empty() ? parent.name + "::" + name : name;
        if (!name.empty())
            add_entity(stmt_line_, last_line_, (key == "enum" ? "enum " : key + " ") + s.name, false, parent_exempt);
        if (s.kind == ScopeKind::Class) {
            ClassInfo ci;
            ci.file = src_.path;
            ci.line = stmt_line_;
            ci.name = name;
            const std::size_t at = h.find(name);
            ci.bases = at == std::string::npos ? std::string() : h.substr(at + name.size());
            ci.is_public = !s.exempt;
            model_.classes.push_back(ci);
            s.class_index = static_cast<int>(model_.classes.size()) - 1;
        }
        push(s);
    }

    // `void Class::f(...) {` at namespace scope defines a member declared (and checked) in its class.
    bool is_out_of_line(const std::string& h, const std::string& name) const {
        if (stack_.back().kind != ScopeKind::Namespace) return false;
        const std::size_t at = h.find(name + "(") != std::string::npos ? h.find(name + "(") : h.find(name);
        std::size_t b = at;
        while (b > 0 && is_space(h[b - 1])) --b;
        return b >= 2 && h[b - 1] == ':' && h[b - 2] == ':';
    }

    // Which overload a later definition belongs to is not known: the one whose comment says
    // @throws when there is one (a throwing body is then documented), else the last one declared.
    int declaration_for(const std::vector<int>& overloads) const {
        for (const int i : overloads)
            if (model_.entities[static_cast<std::size_t>(i)].doc.find("@throws") != std::string::npos) return i;
        return overloads.back();
    }

    // `Outer::Inner` of `R Outer::Inner::f(...) {`: the class whose member is defined out of line.
    static std::string out_of_line_name(const std::string& h, const std::string& name) {
        const std::size_t at = h.find(name + "(") != std::string::npos ? h.find(name + "(") : h.find(name);
        std::size_t e = at;
        while (e > 0 && (is_ident(h[e - 1]) || h[e - 1] == ':')) --e;
        return h.substr(e, at - e) + name;
    }

    static bool is_requires_brace(const std::string& h) {
        const std::string t = trim(h);
        if (t.ends_with("requires") && (t.size() == 8 || !is_ident(t[t.size() - 9]))) return true;
        if (t.empty() || t.back() != ')') return false;
        int depth = 0;
        for (std::size_t i = t.size(); i-- > 0;) {
            if (t[i] == ')')
                ++depth;
            else if (t[i] == '(' && --depth == 0) {
                const std::string before = trim(t.substr(0, i));
                return before.ends_with("requires") && (before.size() == 8 || !is_ident(before[before.size() - 9]));
            }
        }
        return false;
    }

    // `int x{0}` or, in a constructor's initialiser list, `b_{y}`: a brace after a name or `>`.
    static bool is_init_brace(const std::string& h) {
        const std::string t = trim(h);
        if (t.empty()) return false;
        const char last = t.back();
        if (!is_ident(last) && last != '>') return false;
        const auto ws = words(t);
        static const std::set<std::string, std::less<>> body_words = {
            "const", "noexcept", "override", "final", "mutable", "volatile", "try", "else", "do"};
        if (!ws.empty() && body_words.contains(ws.back())) return false;
        // A trailing return type (`-> std::vector<int> {`) after the parameter list.
        const std::size_t close = t.rfind(')');
        if (close != std::string::npos && t.find("->", close) != std::string::npos) return false;
        // `T f(...) requires C<T> {`: a requires-clause after the parameter list.
        if (close != std::string::npos && has_word(t.substr(close), "requires")) return false;
        return true;
    }

    void end_declaration() {
        const std::string raw = trim(stmt_);
        std::string h = strip_prefixes(raw);
        if (h.empty()) return;
        const Scope& sc = stack_.back();
        if (sc.kind != ScopeKind::Namespace && sc.kind != ScopeKind::Class) return;
        const bool exempt = sc.exempt || (sc.kind == ScopeKind::Class && !sc.public_now);
        const auto ws = words(h);
        if (ws.empty()) return;
        const std::string& first = ws.front();
        if (first == "static_assert" || (first == "using" && ws.size() > 1 && ws[1] == "namespace")) return;
        if (first == "extern" && ws.size() > 1 && ws[1] == "template") return;
        if (first == "template") return;  // explicit instantiation
        if (first == "friend" && ws.size() > 1 && (ws[1] == "class" || ws[1] == "struct")) return;
        const std::size_t assign = find_assign(h);
        if (first == "using") {
            if (assign == std::string::npos) return;  // using-declaration
            add_entity(stmt_line_, last_line_, "alias " + qualified(ws.size() > 1 ? ws[1] : "?"), false, exempt);
            return;
        }
        if (first == "typedef") {
            add_entity(stmt_line_, last_line_, "alias " + qualified(variable_name(h.substr(7))), false, exempt);
            return;
        }
        if (first == "concept" || (ws.size() > 1 && ws[0] != "class" && ws[1] == "concept")) {
            add_entity(stmt_line_, last_line_, "concept " + qualified(ws[first == "concept" ? 1 : 2]), false, exempt);
            return;
        }
        if ((first == "class" || first == "struct" || first == "union" || first == "enum") &&
            assign == std::string::npos && h.find('(') == std::string::npos)
            return;  // forward declaration
        if (assign != std::string::npos) {
            const std::string rhs = trim(h.substr(assign + 1));
            if (rhs == "default" || rhs == "delete") return;
        }
        const auto fname = function_name(h);
        bool is_function = fname && (assign == std::string::npos || h.find('(') < assign);
        if (is_function) {  // `const std::string k("x");` or `int n(3);` initialises a variable
            const std::size_t open = h.find(*fname + "(");
            const std::string args =
                open == std::string::npos ? std::string() : trim(h.substr(open + fname->size() + 1));
            if (!args.empty() &&
                (args[0] == '"' || args[0] == '\'' || std::isdigit(static_cast<unsigned char>(args[0])) != 0))
                is_function = false;
        }
        if (is_function) {
            if (fname->starts_with("~") || is_out_of_line(h, *fname)) return;
            const std::string key = "function " + qualified(*fname);
            if (const int e = add_entity(stmt_line_, last_line_, key, true, exempt); e >= 0)
                declared_functions_[key].push_back(e);
            return;
        }
        const std::string name = variable_name(h);
        const bool is_static = has_word(h.substr(0, h.find(name)), "static");
        if (sc.kind == ScopeKind::Class) {
            add_entity(stmt_line_, last_line_, "member " + qualified(name), false, exempt);
            if (!exempt && !is_static && sc.class_index >= 0)
                model_.classes[static_cast<std::size_t>(sc.class_index)].data_members.emplace_back(name, stmt_line_);
        } else {
            add_entity(stmt_line_, last_line_, "variable " + name, false, exempt);
        }
    }

    // --- helpers ----------------------------------------------------------------------------------
    std::string qualified(const std::string& name) const {
        for (auto it = stack_.rbegin(); it != stack_.rend(); ++it)
            if (it->kind == ScopeKind::Class) return it->name + "::" + name;
        return name;
    }

    int add_entity(std::size_t first, std::size_t last, const std::string& what, bool is_function, bool exempt) {
        if (exempt || first == 0) return -1;
        Entity e;
        e.file = src_.path;
        e.line = first;
        {  // report the line of the declaration itself, after its template and attribute lines
            const std::string t = trim(stmt_);
            const std::string h = strip_prefixes(t);
            if (h.size() <= t.size())
                e.line = first + static_cast<std::size_t>(
                                     std::count(t.begin(), t.end() - static_cast<std::ptrdiff_t>(h.size()), '\n'));
        }
        e.what = what;
        e.is_function = is_function;
        if (last < first) last = first;
        // A run of `///` lines directly above the declaration's first line.
        std::size_t l = first;
        while (l > 1 && src_.lines[l - 1].doc) {
            --l;
            e.documented = true;
            e.doc = src_.lines[l].doc_text + e.doc;
        }
        // `///` or `///<` lines inside the declaration (between template/attribute lines).
        for (std::size_t k = first; k <= last && k < src_.lines.size(); ++k) {
            if (src_.lines[k].doc || src_.lines[k].trailing_doc) {
                e.documented = true;
                e.doc += src_.lines[k].doc_text;
            }
        }
        model_.entities.push_back(e);
        const int index = static_cast<int>(model_.entities.size()) - 1;
        return index;
    }

    void append(char c, std::size_t line) {
        if (!is_space(c)) {
            if (stmt_line_ == 0) stmt_line_ = line;
            last_line_ = line;
        }
        stmt_ += c;
    }

    void push(const Scope& s) {
        stack_.push_back(s);
        reset_stmt();
    }

    void reset_stmt() {
        stmt_.clear();
        stmt_line_ = 0;
        last_line_ = 0;
        paren_ = 0;
        init_ = 0;
    }

    const Source& src_;
    Model& model_;
    std::vector<Scope> stack_;
    std::string stmt_;
    std::size_t stmt_line_ = 0;  // line of the statement's first non-space character
    std::size_t last_line_ = 0;  // line of its last non-space character so far
    int paren_ = 0;              // ( and [ depth
    int init_ = 0;               // brace-initialiser depth inside the statement
    // "function name" -> the entities of its declarations without a body (overloads), in this file
    std::map<std::string, std::vector<int>> declared_functions_;
};

std::optional<std::string> read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Parses every public header under INCLUDE_DIR/traincb (detail/ excluded), in sorted order.
std::optional<Model> parse_headers(const fs::path& include_dir) {
    const fs::path root = include_dir / "traincb";
    if (!fs::is_directory(root)) {
        std::cerr << "check_doc_coverage: " << root.string() << " is not a directory\n";
        return std::nullopt;
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (!e.is_regular_file() || e.path().extension() != ".hpp") continue;
        const std::string rel = fs::relative(e.path(), include_dir).generic_string();
        if (rel.find("/detail/") != std::string::npos || rel.ends_with("-inl.hpp")) continue;
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    Model model;
    for (const auto& f : files) {
        const auto text = read_file(f);
        if (!text) {
            std::cerr << "check_doc_coverage: cannot read " << f.string() << "\n";
            return std::nullopt;
        }
        // X-inl.hpp holds the bodies of X.hpp's functions (traincb/detail/config.hpp): it is read as
        // the continuation of X.hpp, so that its definitions are checked at their declarations.
        fs::path inl = f;
        inl.replace_filename(f.stem().string() + "-inl.hpp");
        std::string joined = *text;
        if (!joined.empty() && joined.back() != '\n') joined += '\n';
        const std::size_t header_lines = static_cast<std::size_t>(std::count(joined.begin(), joined.end(), '\n'));
        const bool has_inl = fs::exists(inl);
        if (has_inl) {
            const auto inl_text = read_file(inl);
            if (!inl_text) {
                std::cerr << "check_doc_coverage: cannot read " << inl.string() << "\n";
                return std::nullopt;
            }
            joined += *inl_text;
        }
        const std::size_t first_new = model.entities.size();
        const Source src = strip((include_dir / fs::relative(f, include_dir)).generic_string(), joined);
        Scanner(src, model).run();
        if (has_inl)
            for (std::size_t i = first_new; i < model.entities.size(); ++i)
                if (model.entities[i].line > header_lines) {
                    model.entities[i].file = (include_dir / fs::relative(inl, include_dir)).generic_string();
                    model.entities[i].line -= header_lines;
                }
    }
    return model;
}

int check_headers(const fs::path& include_dir, bool list) {
    const auto model = parse_headers(include_dir);
    if (!model) return 2;
    std::size_t bad = 0;
    if (list)
        for (const auto& e : model->entities)
            std::cout << e.file << ":" << e.line << ": " << e.what << (e.documented ? "" : "  [UNDOCUMENTED]") << "\n";
    for (const auto& e : model->entities)
        if (!e.documented) {
            std::cout << e.file << ":" << e.line << ": " << e.what << ": no /// comment\n";
            ++bad;
        }
    for (const auto& f : model->throw_findings) std::cout << f << "\n";
    bad += model->throw_findings.size();
    std::cerr << "check_doc_coverage: " << model->entities.size() << " public entities, " << bad << " finding(s)\n";
    return bad == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Markdown: sections and inline code.

struct Section {
    std::string file;
    int level = 0;
    std::string heading;
    std::string prose;                    // heading and text outside fenced code blocks
    std::vector<std::string> code_spans;  // inline `code` in the prose
};

std::vector<std::string> inline_code(const std::string& prose) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < prose.size();) {
        if (prose[i] != '`') {
            ++i;
            continue;
        }
        std::size_t ticks = 0;
        while (i + ticks < prose.size() && prose[i + ticks] == '`') ++ticks;
        const std::string fence(ticks, '`');
        const std::size_t end = prose.find(fence, i + ticks);
        if (end == std::string::npos) break;
        out.push_back(prose.substr(i + ticks, end - i - ticks));
        i = end + ticks;
    }
    return out;
}

std::vector<Section> parse_markdown(const std::string& file, const std::string& text) {
    std::vector<Section> out;
    out.push_back(Section{file, 0, "", "", {}});
    std::istringstream in(text);
    std::string line;
    bool fenced = false;
    while (std::getline(in, line)) {
        const std::string t = trim(line);
        if (t.starts_with("```")) {
            fenced = !fenced;
            continue;
        }
        if (fenced) continue;
        if (t.starts_with("#")) {
            std::size_t level = 0;
            while (level < t.size() && t[level] == '#') ++level;
            if (level < t.size() && t[level] == ' ') {
                out.push_back(Section{file, static_cast<int>(level), trim(t.substr(level)), "", {}});
                out.back().prose = t + "\n";
                continue;
            }
        }
        out.back().prose += line + "\n";
    }
    for (auto& s : out) s.code_spans = inline_code(s.prose);
    return out;
}

int check_options(const fs::path& include_dir, const std::vector<fs::path>& docs) {
    const auto model = parse_headers(include_dir);
    if (!model) return 2;
    std::vector<Section> sections;
    for (const auto& d : docs) {
        const auto text = read_file(d);
        if (!text) {
            std::cerr << "check_doc_coverage: cannot read " << d.string() << "\n";
            return 2;
        }
        auto s = parse_markdown(d.generic_string(), *text);
        sections.insert(sections.end(), s.begin(), s.end());
    }
    // The inline code of section i and of its subsections.
    auto spans_of = [&](std::size_t i) {
        std::vector<std::string> out = sections[i].code_spans;
        for (std::size_t j = i + 1; j < sections.size() && sections[j].file == sections[i].file &&
                                    (sections[i].level == 0 || sections[j].level > sections[i].level);
             ++j)
            if (sections[i].level != 0)
                out.insert(out.end(), sections[j].code_spans.begin(), sections[j].code_spans.end());
        return out;
    };
    std::size_t bad = 0;
    std::size_t checked = 0;
    for (const auto& c : model->classes) {
        if (!c.is_public) continue;
        if (c.name.ends_with("Options") && c.name != "Options") {
            std::vector<std::string> spans;
            for (std::size_t i = 0; i < sections.size(); ++i)
                if (has_word(sections[i].prose, c.name)) {
                    auto s = spans_of(i);
                    spans.insert(spans.end(), s.begin(), s.end());
                }
            if (spans.empty() && std::none_of(sections.begin(), sections.end(),
                                              [&](const Section& s) { return has_word(s.prose, c.name); })) {
                std::cout << c.file << ":" << c.line << ": " << c.name
                          << ": no section of the docs names it outside code blocks\n";
                ++bad;
                continue;
            }
            for (const auto& entry : c.data_members) {
                const std::string& member = entry.first;  // not a structured binding: clang 14
                const std::size_t line = entry.second;    // cannot capture those in a lambda
                ++checked;
                const bool found =
                    std::any_of(spans.begin(), spans.end(), [&](const std::string& s) { return has_word(s, member); });
                if (!found) {
                    std::cout << c.file << ":" << line << ": " << c.name << "::" << member
                              << ": not in backticks in any docs section that names " << c.name << "\n";
                    ++bad;
                }
            }
        }
    }
    // Callbacks and sinks: classes derived, directly or not, from Callback or Sink. A final one is
    // something users build, so it gets a section (a heading naming it); a base class meant for
    // derivation only needs a mention in backticks.
    std::set<std::string, std::less<>> family = {"Callback", "Sink"};
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& c : model->classes) {
            if (family.contains(c.name)) continue;
            const std::string after_colon =
                c.bases.find(':') == std::string::npos ? "" : c.bases.substr(c.bases.find(':'));
            for (const auto& b : words(after_colon))
                if (family.contains(b)) {
                    family.insert(c.name);
                    grew = true;
                    break;
                }
        }
    }
    for (const auto& c : model->classes) {
        if (!c.is_public || c.name == "Callback" || c.name == "Sink" || !family.contains(c.name)) continue;
        ++checked;
        const std::string head = c.bases.substr(0, c.bases.find(':'));
        if (has_word(head, "final")) {
            const bool found = std::any_of(sections.begin(), sections.end(),
                                           [&](const Section& s) { return has_word(s.heading, c.name); });
            if (!found) {
                std::cout << c.file << ":" << c.line << ": " << c.name << ": no heading of the docs names it\n";
                ++bad;
            }
        } else {
            const bool found = std::any_of(sections.begin(), sections.end(), [&](const Section& s) {
                return std::any_of(s.code_spans.begin(), s.code_spans.end(),
                                   [&](const std::string& span) { return has_word(span, c.name); });
            });
            if (!found) {
                std::cout << c.file << ":" << c.line << ": " << c.name << ": the docs never name it in backticks\n";
                ++bad;
            }
        }
    }
    std::cerr << "check_doc_coverage: " << checked << " options and callback/sink classes checked, " << bad
              << " finding(s)\n";
    return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if ((args.size() == 2 || (args.size() == 3 && args[2] == "--list")) && args[0] == "headers")
        return check_headers(args[1], args.size() == 3);
    if (args.size() >= 3 && args[0] == "options")
        return check_options(args[1], std::vector<fs::path>(args.begin() + 2, args.end()));
    std::cerr << "usage: check_doc_coverage headers INCLUDE_DIR [--list]\n"
                 "       check_doc_coverage options INCLUDE_DIR DOC.md...\n";
    return 2;
}
