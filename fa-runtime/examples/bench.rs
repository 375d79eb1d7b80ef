//! Forward benchmark on the FlashAttention paper grid, plus compile, cache
//! and launch-overhead timings. Needs a GPU and NVRTC.
//!
//! `cargo run -p fa-runtime --release --example bench [-- quick] > bench.csv`

use fa_runtime::bench::{arch_for, bench_compile, bench_forward, bench_launch_overhead, to_csv, BenchGrid};
use fa_runtime::{Device, KernelSpec};
use fa_spec::Dtype;

fn main() -> Result<(), fa_runtime::FaError> {
    let dev = Device::new(0)?;
    let arch = arch_for(&dev);
    eprintln!("device 0: {} (cc {:?}, {} SMs); cells for {arch}", dev.name(), dev.compute_capability(), dev.sm_count());
    let spec = KernelSpec::builder().arch(arch).dtype(Dtype::Bf16).head_dim(128).causal().build().expect("valid cell");
    let c = bench_compile(&spec, &std::env::temp_dir())?;
    eprintln!(
        "compile {}: cold NVRTC {:.1} ms, warm disk cache {:.3} ms, {} CUBIN bytes",
        spec.kernel_name(),
        c.cold.as_secs_f64() * 1e3,
        c.warm_disk.as_secs_f64() * 1e3,
        c.cubin_bytes
    );
    eprintln!("host launch overhead: {:.2} µs/call", bench_launch_overhead(&dev, 2000)?);
    let quick = std::env::args().any(|a| a == "quick");
    let grid = if quick { BenchGrid::quick(arch) } else { BenchGrid::paper(arch) };
    print!("{}", to_csv(&bench_forward(&dev, &grid)?));
    Ok(())
}
