//! Spec files: one TOML table per cell, with the attribute's keys
//! (`arch = "sm90a"`, `head_dim = 128`, `causal = true`, `softcap = 50.0`).

use crate::model::KernelSpec;
use crate::rules::{validate, ArgValue, RawArg, Rule};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a spec file, located by line and column (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFileError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    /// `None` for TOML syntax errors and unreadable files.
    pub rule: Option<Rule>,
    pub message: String,
}

impl fmt::Display for SpecFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.message)
    }
}

/// Every problem found in one spec file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecFileErrors(pub Vec<SpecFileError>);

impl fmt::Display for SpecFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses and validates the text of a spec file; `path` only labels errors.
pub fn parse_spec(text: &str, path: &Path) -> Result<KernelSpec, SpecFileErrors> {
    let at = |span: &Range<usize>, rule: Option<Rule>, message: String| {
        let (line, column) = line_col(text, span.start);
        SpecFileError { path: path.to_path_buf(), line, column, rule, message }
    };
    type Table = BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>;
    let table: Table = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        SpecFileErrors(vec![at(&span, None, format!("invalid TOML: {}", e.message()))])
    })?;

    let mut args = Vec::new();
    for (key, value) in &table {
        let span = key.span().start..value.span().end;
        let raw = match value.get_ref() {
            toml::Value::String(s) => ArgValue::Word(s.clone()),
            toml::Value::Integer(i) => ArgValue::Int(i128::from(*i)),
            toml::Value::Float(x) => ArgValue::Float(*x),
            toml::Value::Boolean(b) => ArgValue::Bool(*b),
            toml::Value::Array(_) => ArgValue::Unsupported("an array"),
            toml::Value::Table(_) => ArgValue::Unsupported("a table"),
            toml::Value::Datetime(_) => ArgValue::Unsupported("a datetime"),
        };
        args.push(RawArg::new(key.get_ref().clone(), raw, span));
    }
    // Report in file order, whatever order the table keeps keys in.
    args.sort_by_key(|a: &RawArg<Range<usize>>| a.span.start);

    validate(&args, &(0..0)).map_err(|es| {
        let mut errors: Vec<_> = es.into_iter().map(|e| at(&e.span, Some(e.rule), e.message)).collect();
        errors.sort_by_key(|e| (e.line, e.column));
        SpecFileErrors(errors)
    })
}

/// Reads, parses and validates a spec file.
pub fn load_spec(path: &Path) -> Result<KernelSpec, SpecFileErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SpecFileErrors(vec![SpecFileError {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            rule: None,
            message: format!("cannot read spec file: {e}"),
        }])
    })?;
    parse_spec(&text, path)
}

impl KernelSpec {
    /// The cell as a spec file, which [`parse_spec`] reads back to the same cell.
    pub fn to_spec_file(&self) -> String {
        let mut s = format!("arch = \"{}\"\ndtype = \"{}\"\nhead_dim = {}\n", self.arch, self.dtype, self.head_dim);
        if self.causal {
            s.push_str("causal = true\n");
        }
        if let Some(w) = self.window {
            s.push_str(&format!("window = {w}\n"));
        }
        if let Some(n) = self.sink {
            s.push_str(&format!("sink = {n}\n"));
        }
        if self.alibi {
            s.push_str("alibi = true\n");
        }
        if let Some(x) = self.softcap {
            s.push_str(&format!("softcap = {}\n", crate::model::float_literal(x)));
        }
        if self.gqa != 1 {
            s.push_str(&format!("gqa = {}\n", self.gqa));
        }
        if self.varlen {
            s.push_str("varlen = true\n");
        }
        if let Some(p) = self.page_size {
            s.push_str(&format!("paged = true\npage_size = {p}\n"));
        }
        if self.backward {
            s.push_str("backward = true\n");
        }
        s
    }
}
