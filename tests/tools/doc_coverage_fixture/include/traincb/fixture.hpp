#pragma once
/// @file fixture.hpp
/// The doc-coverage checker's own test: each entity marked BAD must be reported (and only those).
#include <functional>
#include <string>

namespace fixture::inline v0 {

/// A documented class.
class Documented {
public:
    /// Documented constructor.
    explicit Documented(int x) : x_(x), y_{x} {}
    Documented(const Documented&) = delete;             // deleted: needs no comment
    Documented& operator=(const Documented&) = default;  // defaulted: needs no comment
    virtual ~Documented() = default;                      // destructors need no comment
    int undocumented_member_function() const { return x_; }  // BAD
    /// Documented, multi-line
    /// comment run.
    [[nodiscard]]
    int
    multi_line(int a,
               int b) const noexcept {
        return a + b + x_;
    }
    int value = 0;  ///< trailing comment documents it
    int bare = 0;   // BAD: a plain comment is not a doc comment
    //// four slashes are not a doc comment
    int four_slashes = 0;  // BAD

    /// A blank line between comment and declaration breaks the link.

    int after_blank = 0;  // BAD
    std::string s = "}{ /// not a comment";  // BAD: braces and slashes in a string are not code
    char brace = '{';  // BAD
    /// A raw string with braces, quotes and a fake comment inside.
    std::string raw = R"x(}}} "{" /// ")x";
    /// A data member holding a lambda (its braces and ';' are an initialiser).
    std::function<int(int)> f = [](int v) { return v + 1; };
    /// Documented virtual.
    virtual void hook() {}
    static constexpr int kStatic = 3;  // BAD
    /// Documented operator.
    bool operator()(int a) const { return a > 0; }
    bool operator<(const Documented& o) const { return x_ < o.x_; }  // BAD
    /// Declared here, defined out of line below (the definition needs no second comment).
    int out_of_line() const;

protected:
    int protected_undocumented() { return 1; }  // exempt: protected
    int prot_member = 0;

private:
    /// Public in a private section is still private.
    struct Hidden {
        int x = 0;
        void g() {}
    };
    int x_;
    int y_;
};

struct Plain {  // BAD
    /// Documented member of an undocumented struct.
    int a = 0;
    int b{2};  // BAD: struct members are public by default
    /// Nested, documented.
    struct Nested {
        int c = 0;  // BAD
    };
};

/* A block comment is not a doc comment. */
class BlockCommented {};  // BAD

/// A documented template; the template line sits between comment and declaration.
template <class T, class = void>
struct Templated {
    /// A constrained member with a requires-expression (its braces are not a body).
    template <class U>
        requires requires(U u) { u.size(); }
    static int size_of(const U& u) {
        return static_cast<int>(u.size());
    }
    template <class U>
    static int undocumented_template(const U&) {  // BAD
        return 0;
    }
    /// Trailing requires-clause.
    static int trailing() requires(sizeof(T) > 0)
    {
        return 1;
    }
    /// A trailing return type.
    auto arrow() -> int { return 2; }
};

/// Documented enum.
enum class Color {
    Red,    ///< documented
    Green,  // BAD
    /// documented above
    Blue,
    Alpha = (1 + 2),  // BAD
};

enum Bare { One, Two };  // BAD: the enum, and its one-line enumerators, which share its (missing) comment

/// Documented union.
union U {
    int i;  // BAD
    /// documented
    float f;
};

/// Documented alias.
using Alias = int;
using Undoc = double;  // BAD
using std::string;     // a using-declaration needs no comment

/// Documented concept.
template <class T>
concept Sized = requires(T t) { t.size(); };
template <class T>
concept Unsized = !Sized<T>;  // BAD

/// Documented variable.
inline constexpr int kDocumented = 1;
inline constexpr int kUndocumented = 2;  // BAD
inline const std::string kParen("x");  // BAD

/// Documented function with a body that throws, and says so.
/// @throws std::runtime_error always
inline void throws_documented() { throw std::string("x"); }

/// Documented function whose body throws, without saying so.
inline void throws_undocumented(int x) {  // BAD (throws)
    if (x > 0) {
        throw std::string("x");
    }
}

/// Rethrows only: `throw;` passes on the caller's exception.
inline void rethrows() {
    try {
        throws_documented();
    } catch (...) {
        throw;
    }
}

inline int undocumented_function() { return 0; }  // BAD
int undocumented_declaration(int);                 // BAD
/// Documented declaration.
int documented_declaration(int);

class Forward;  // a forward declaration needs no comment

static_assert(sizeof(int) >= 2, "a static_assert needs no comment");

/// A derived class.
class Derived final : public Documented {
public:
    using Documented::Documented;  // inherited constructors need no comment
    void hook() override {}        // BAD: overrides are public members too
    /// Documented override.
    int undocumented_member_function2() const { return 0; }
};

namespace detail {
struct InDetail {  // exempt: detail namespace
    int x = 0;
};
}  // namespace detail

namespace detail_impl {
inline void also_exempt() {}
}  // namespace detail_impl

namespace {
inline void anonymous() {}
}  // namespace

inline int Documented::out_of_line() const { return x_; }

/// Declared here and defined below, as in a header's -inl.hpp: the definition needs no comment.
int declared_then_defined(int a);
/// Declared here; its definition below throws, and this comment does not say so.
int declared_then_throws(int a);  // BAD

/// A class whose member is defined out of line.
class OutOfLine {
public:
    /// Its out-of-line body throws.
    void throws_out_of_line();  // BAD
};

inline int declared_then_defined(int a) { return a; }
inline int declared_then_throws(int a) {
    if (a < 0) throw a;
    return a;
}
inline void OutOfLine::throws_out_of_line() { throw 1; }

}  // namespace fixture::inline v0
