//! Compile-time behaviour of `#[flash_attention]`: one `ui/*.rs` per
//! whitelist rule, each with a reviewed `.stderr` whose span sits under the
//! argument to fix; and `ui/pass_*.rs`, which must build and run.
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p fa-tests --test ui`,
//! then review every changed `.stderr` by eye.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        if path.file_name().unwrap().to_string_lossy().starts_with("pass_") {
            t.pass(path);
        } else {
            t.compile_fail(path);
        }
    }
}
