// The control of tests/tools/check_no_vtables.cmake: a class whose override is declared without
// `inline` and defined inline after the class. Its vtable is emitted here although nothing uses
// the class, which shows that the check sees what it looks for.
namespace traincb_probe {
struct Base {
    virtual ~Base() = default;
    virtual int f() { return 0; }
};
struct KeyFunctionDefinedInline final : Base {
    int f() override;
};
inline int KeyFunctionDefinedInline::f() {
    return 1;
}
}  // namespace traincb_probe
