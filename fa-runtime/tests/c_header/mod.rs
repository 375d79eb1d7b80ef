//! Reading the params structs out of the CUDA headers, so the ABI tests can
//! compare the Rust mirrors with what the kernels actually declare.

/// Field names of `struct <name>` in a CUDA header, in order
/// ("long long a, b, c" / "const void* q" / "int batch, num_heads").
pub fn c_fields(header: &str, name: &str) -> Vec<String> {
    let body = &header[header.find(&format!("struct {name}")).unwrap()..];
    let body = &body[..body.find("};").unwrap()];
    let mut names = Vec::new();
    for line in body.lines().skip(1) {
        let code = line.split("//").next().unwrap();
        for decl in code.split(';') {
            let decl = decl.trim();
            if decl.is_empty() {
                continue;
            }
            let mut parts = decl.split(',');
            let first = parts.next().unwrap();
            names.push(first.rsplit(|c: char| c.is_whitespace() || c == '*').next().unwrap().to_string());
            names.extend(parts.map(|p| p.trim().to_string()));
        }
    }
    names
}
