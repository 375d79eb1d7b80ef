//! Embeds every file under the workspace's `templates/` folder, so a change
//! to a template rebuilds this crate and everything that renders with it.
use std::{env, fs, path::Path};

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).expect("templates/ is readable").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect(&p, root, out);
        } else {
            let name = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.push(format!("({:?}, include_str!({:?})),\n", name, p.canonicalize().unwrap()));
        }
    }
}

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap();
    let root = Path::new(&manifest).join("..").join("templates");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    collect(&root, &root, &mut entries);
    let code = format!(
        "/// (name, text) of every template.\npub(crate) const TEMPLATES: &[(&str, &str)] = &[\n{}];\n",
        entries.concat()
    );
    fs::write(Path::new(&env::var("OUT_DIR").unwrap()).join("templates.rs"), code).unwrap();
}
