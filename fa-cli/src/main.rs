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
    /// Compile each spec for its arch with NVRTC (no GPU needed) and report
    /// CUBIN size, registers, spills and compile time.
    Compile {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Inspect or empty the on-disk CUBIN cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Time the forward kernels on GPU 0 (CSV on stdout), plus compile,
    /// disk-cache and launch-overhead timings (stderr).
    Bench {
        /// A short grid (head_dim 128, seqlen 512 and 4096) instead of the
        /// FlashAttention paper grid.
        #[arg(long)]
        quick: bool,
        /// Paged KV-cache benchmarks instead: device copy bandwidth, split-KV
        /// decode (ms, GB/s) over batch × context, each call timed after an
        /// L2 flush as `sdpa_anchor.py --decode` times PyTorch's, and chunked
        /// prefill (2k chunks over a 32k context) vs the dense forward kernel.
        #[arg(long)]
        decode: bool,
        /// Forward benchmark with q, k, v, out as [batch, heads, seqlen, d]
        /// (PyTorch's layout, as sdpa_anchor.py uses) instead of
        /// [batch, seqlen, heads, d].
        #[arg(long)]
        head_major: bool,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Print the cache folder (`FA_CACHE_DIR`, else the user cache folder).
    Dir,
    /// List the cached CUBINs: key, bytes, age.
    Ls,
    /// Remove every cached CUBIN.
    Clear,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { specs } => check(&specs),
        Command::Render { spec } => render(&spec),
        Command::Compile { specs } => compile(&specs),
        Command::Cache { action } => cache(action),
        Command::Bench { quick, decode: true, .. } => bench_decode(quick),
        Command::Bench { quick, decode: false, head_major } => bench(quick, head_major),
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

fn render(path: &std::path::Path) -> Result<(), String> {
    let spec = fa_spec::load_spec(path).map_err(|e| e.to_string())?;
    let src = fa_spec::render(&spec).map_err(|e| e.to_string())?;
    print!("{src}");
    Ok(())
}

fn compile(paths: &[PathBuf]) -> Result<(), String> {
    let cells = load_all(paths)?;
    println!("{:<56} {:<8} {:>8} {:>5} {:>6} {:>9}  file", "kernel", "arch", "cubin B", "regs", "spill", "compile");
    let mut failed = Vec::new();
    for (path, spec) in cells {
        match fa_runtime::compile(&spec) {
            Ok(k) => println!(
                "{:<56} {:<8} {:>8} {:>5} {:>6} {:>7.0}ms  {}{}",
                k.entry,
                k.target,
                k.cubin.len(),
                k.info.registers,
                k.spill_bytes(),
                k.elapsed.as_secs_f64() * 1e3,
                path.display(),
                if k.origin == fa_runtime::cache::Origin::Disk { " (cached)" } else { "" }
            ),
            Err(e) => failed.push(format!("{}: {e}", path.display())),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("error: {} spec(s) failed to compile\n{}", failed.len(), failed.join("\n")))
    }
}

fn cache(action: CacheAction) -> Result<(), String> {
    let cache = fa_runtime::Cache::global();
    match action {
        CacheAction::Dir => match cache.dir() {
            Some(d) => println!("{}", d.display()),
            None => {
                return Err(format!(
                    "error: the cache folder {} is not usable; kernels are cached in memory only",
                    cache.requested_dir().display()
                ))
            }
        },
        CacheAction::Ls => {
            let mut entries = cache.list().map_err(|e| e.to_string())?;
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            for e in &entries {
                let age =
                    e.modified.and_then(|m| m.elapsed().ok()).map_or("?".to_string(), |d| format!("{}s", d.as_secs()));
                println!("{:<90} {:>9} {:>8}", e.key, e.bytes, age);
            }
            eprintln!(
                "{} entr{} in {}",
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" },
                cache.requested_dir().display()
            );
        }
        CacheAction::Clear => {
            let n = cache.clear().map_err(|e| e.to_string())?;
            println!("removed {n} cached kernel(s) from {}", cache.requested_dir().display());
        }
    }
    Ok(())
}

fn bench(quick: bool, head_major: bool) -> Result<(), String> {
    use fa_runtime::bench::{arch_for, bench_compile, bench_forward, bench_launch_overhead, to_csv, BenchGrid};
    let run = || -> Result<(), fa_runtime::FaError> {
        let dev = fa_runtime::Device::new(0)?;
        let arch = arch_for(&dev);
        eprintln!(
            "device 0: {} (cc {:?}, {} SMs); cells for {arch}",
            dev.name(),
            dev.compute_capability(),
            dev.sm_count()
        );
        let spec =
            fa_spec::KernelSpec::builder().arch(arch).dtype(fa_spec::Dtype::Bf16).head_dim(128).causal().build()?;
        let c = bench_compile(&spec, &std::env::temp_dir())?;
        eprintln!(
            "compile {}: cold NVRTC {:.0} ms, warm disk-cache load {:.3} ms, {} CUBIN bytes",
            spec.kernel_name(),
            c.cold.as_secs_f64() * 1e3,
            c.warm_disk.as_secs_f64() * 1e3,
            c.cubin_bytes
        );
        eprintln!("host launch overhead: {:.2} us/call", bench_launch_overhead(&dev, 2000)?);
        let mut grid = if quick { BenchGrid::quick(arch) } else { BenchGrid::paper(arch) };
        if head_major {
            grid.layout = fa_runtime::QkvLayout::HeadMajor;
        }
        eprintln!("forward grid: q, k, v, out as {:?}", grid.layout);
        print!("{}", to_csv(&bench_forward(&dev, &grid)?));
        Ok(())
    };
    run().map_err(|e| format!("error: {e}"))
}

fn bench_decode(quick: bool) -> Result<(), String> {
    use fa_runtime::bench::{
        bench_chunked_prefill, bench_copy_bandwidth, bench_decode, bench_decode_case, DecodeCase, DecodeRow,
    };
    use fa_spec::Dtype;
    let run = || -> Result<(), fa_runtime::FaError> {
        let dev = fa_runtime::Device::new(0)?;
        eprintln!("device 0: {} (cc {:?}, {} SMs)", dev.name(), dev.compute_capability(), dev.sm_count());
        let copy = bench_copy_bandwidth(&dev)?;
        eprintln!("device-to-device copy: {copy:.0} GB/s (bytes read + written)");
        println!("{},pct_of_copy", DecodeRow::CSV_HEADER);
        let batches: &[usize] = if quick { &[1, 32] } else { &[1, 8, 32, 64] };
        let ctxs: &[usize] = if quick { &[4096] } else { &[1024, 4096, 16384, 32768] };
        // The two serving targets first (a full batch, and one very long
        // context: what split-KV is for), then the grid, each case once. First,
        // because the same case measured after the 64 x 32768 one (17 GB of
        // caches allocated and freed) runs 3-11% slower: fresh memory, as
        // PyTorch's anchor gets in its own process.
        let mut cases = vec![(64, 4096), (1, 131072)];
        for b in batches {
            for c in ctxs {
                if !cases.contains(&(*b, *c)) {
                    cases.push((*b, *c));
                }
            }
        }
        for (b, ctx) in cases {
            // Llama-3-8B: 32 query heads, 8 KV heads, hd 128, 16-token pages.
            let r = bench_decode(&dev, b, ctx, 32, 8, 128, 16)?;
            println!("{},{:.1}", r.to_csv(), 100.0 * r.gbps / copy);
        }
        // fp8 (e4m3) caches, same heads: the decode kernel, then the same
        // step through the forward kernel (how fp8 cells decoded before).
        for (b, ctx) in [(64, 4096), (1, 131072), (8, 4096)] {
            for via_forward in [false, true] {
                let case = DecodeCase { via_forward, ..DecodeCase::new(Dtype::E4m3, b, ctx, 32, 8, 128, 16) };
                let r = bench_decode_case(&dev, &case)?;
                println!("{},{:.1}", r.to_csv(), 100.0 * r.gbps / copy);
            }
        }
        // Block tables sized for 32k tokens, contexts of 1k: the split
        // heuristic without and with the max_context hint (4 sequences: few
        // enough to split, so the bound decides how many splits).
        for hint in [None, Some(1024)] {
            let r = fa_runtime::bench::bench_decode_table(&dev, 4, 1024, 32768, hint, 32, 8, 128, 16)?;
            let splits = r.layout.map_or(0, |l| l.splits);
            eprintln!(
                "decode 4 x 1024 tokens, tables 32768 tokens wide, max_context hint {hint:?}: {splits} splits, {:.4} ms, {:.0} GB/s ({:.1}% of copy)",
                r.ms,
                r.gbps,
                100.0 * r.gbps / copy
            );
        }
        let (ctx, chunk) = if quick { (8192, 2048) } else { (32768, 2048) };
        let p = bench_chunked_prefill(&dev, ctx, chunk, 32, 8, 128, 16)?;
        eprintln!(
            "chunked prefill ({} chunks of {} over {} tokens, 32/8 heads, hd 128, pages of 16): paged {:.2} ms = {:.1} TFLOP/s; dense fwd, same shapes: {:.2} ms = {:.1} TFLOP/s",
            ctx / chunk, chunk, ctx, p.paged_ms, p.paged_tflops, p.dense_ms, p.dense_tflops
        );
        Ok(())
    };
    run().map_err(|e| format!("error: {e}"))
}
