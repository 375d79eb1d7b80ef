//! Snapshots of the CUDA source rendered for every spec in specs/: a change
//! to a template shows up here as a reviewable diff per real model config.

use std::path::Path;

#[test]
fn every_spec_renders_to_its_reviewed_source() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let spec = fa_spec::load_spec(&path).unwrap_or_else(|e| panic!("{e}"));
        let source = fa_spec::render(&spec).unwrap_or_else(|e| panic!("{e}"));
        assert!(!source.contains("#include"), "{}: rendered source must be hermetic", path.display());
        assert!(source.contains(&spec.forward_entry()), "{}: no entry point {}", path.display(), spec.forward_entry());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({ snapshot_path => "snapshots/rendered", prepend_module_to_snapshot => false, description => spec.to_attribute_args() }, {
            insta::assert_snapshot!(name, source);
        });
    }
}
