//! Compiles a few cells with NVRTC (no GPU needed) and prints what
//! `fa compile` reports: kernel, arch, CUBIN bytes, registers, spills, time.
//!
//! `FA_NVRTC_PATH=.nvrtc/nvidia/cu13/lib cargo run -p fa-runtime --example compile_cells [arch]`

use fa_runtime::{Cache, KernelSpec};
use fa_spec::{Arch, Dtype};

fn main() {
    let arch = std::env::args().nth(1).and_then(|a| Arch::parse(&a)).unwrap_or(Arch::Sm90a);
    let cache = Cache::memory_only();
    println!("kernel,target,cubin_bytes,registers,spill_stores,stack_bytes,origin,ms");
    for dtype in [Dtype::F16, Dtype::Bf16] {
        for hd in fa_spec::HEAD_DIMS {
            for causal in [false, true] {
                let mut b = KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd);
                if causal {
                    b = b.causal();
                }
                let spec = b.build().expect("valid cell");
                let source = match fa_spec::render(&spec) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(1);
                    }
                };
                match fa_runtime::compile_source_with(&cache, &spec, &source) {
                    Ok(c) => println!(
                        "{},{},{},{},{},{},{:?},{:.0}",
                        c.entry,
                        c.target,
                        c.cubin.len(),
                        c.info.registers,
                        c.spill_bytes(),
                        c.info.local_bytes,
                        c.origin,
                        c.elapsed.as_secs_f64() * 1e3
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(1);
                    }
                }
            }
        }
    }
}
