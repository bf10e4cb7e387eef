//! Compile-fail tests of `#[cached]`: every misuse is one error at the offending tokens that
//! says the fix. Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p memokit-tests --test ui` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
