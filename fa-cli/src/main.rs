//! `fa`: check, render and compile attention spec files.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "fa", version, about = "Declarative attention specs to FlashAttention CUDA kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate spec files; prints each cell's kernel name.
    Check {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Print the CUDA source rendered for a spec file.
    Render { spec: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { specs } => check(&specs),
        Command::Render { spec } => render(&spec),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// Loads every spec, reporting all broken ones, not just the first.
fn load_all(paths: &[PathBuf]) -> Result<Vec<(PathBuf, fa_spec::KernelSpec)>, String> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match fa_spec::load_spec(p) {
            Ok(s) => ok.push((p.clone(), s)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(format!("error: {} of {} spec file(s) are invalid\n{}", errors.len(), paths.len(), errors.join("\n")))
    }
}

fn check(paths: &[PathBuf]) -> Result<(), String> {
    for (p, spec) in load_all(paths)? {
        println!("ok  {}  {}", p.display(), spec.kernel_name());
    }
    Ok(())
}

fn render(path: &PathBuf) -> Result<(), String> {
    let spec = fa_spec::load_spec(path).map_err(|e| e.to_string())?;
    let src = fa_spec::render(&spec).map_err(|e| e.to_string())?;
    print!("{src}");
    Ok(())
}
