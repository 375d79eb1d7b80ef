//! Smoke tests of the benchmark functions on a GPU.
#![cfg(feature = "gpu")]

use fa_runtime::bench::{arch_for, bench_compile, bench_forward, bench_launch_overhead, to_csv, BenchGrid};
use fa_runtime::paged::DecodeKernel;
use fa_runtime::{Device, KernelSpec};
use fa_spec::Dtype;

#[test]
fn bench_functions_produce_sane_numbers() {
    let dev = Device::new(0).unwrap();
    let arch = arch_for(&dev);
    let mut grid = BenchGrid::quick(arch);
    grid.dtypes = vec![Dtype::Bf16];
    grid.seqlens = vec![1024];
    grid.iters = 5;
    let rows = bench_forward(&dev, &grid).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.median_ms > 0.0 && r.tflops > 0.0, "{r:?}");
        assert_eq!(r.batch * r.seqlen, 16384);
    }
    let csv = to_csv(&rows);
    assert_eq!(csv.lines().count(), 3);
    let overhead = bench_launch_overhead(&dev, 500).unwrap();
    println!("host launch overhead: {overhead:.2} µs/call");
    if !cfg!(debug_assertions) {
        assert!(overhead < 10.0, "host overhead {overhead:.2} µs per call on a cache hit (target < 10 µs)");
    }
    let spec = KernelSpec::builder().arch(arch).dtype(Dtype::F16).head_dim(64).build().unwrap();
    let c = bench_compile(&spec, &std::env::temp_dir()).unwrap();
    assert!(c.warm_disk < c.cold, "{c:?}");
}

#[test]
fn decode_benchmarks_run() {
    use fa_runtime::bench::{
        bench_chunked_prefill, bench_copy_bandwidth, bench_decode, bench_decode_case, DecodeCase, DecodeRow,
    };
    use fa_spec::Dtype;
    let dev = fa_runtime::Device::new(0).unwrap();
    let copy = bench_copy_bandwidth(&dev).unwrap();
    let r = bench_decode(&dev, 8, 4096, 32, 8, 128, 16).unwrap();
    println!("copy {copy:.0} GB/s; decode {r:?} ({:.0}% of copy)", 100.0 * r.gbps / copy);
    assert!(copy > 0.0 && r.ms > 0.0 && r.gbps > 0.0, "{r:?}");
    let p = bench_chunked_prefill(&dev, 8192, 2048, 32, 8, 128, 16).unwrap();
    println!("{p:?}");
    assert!(p.paged_tflops > 0.0 && p.dense_tflops > 0.0, "{p:?}");
    // fp8 caches, through the decode kernel and through the forward kernel:
    // the decode kernel reads half the bytes of bf16 and is the faster route.
    let fp8 = DecodeCase::new(Dtype::E4m3, 8, 4096, 32, 8, 128, 16);
    let dec = bench_decode_case(&dev, &fp8).unwrap();
    let fwd = bench_decode_case(&dev, &DecodeCase { via_forward: true, ..fp8 }).unwrap();
    println!("fp8 decode {dec:?}; through the forward kernel {fwd:?}");
    assert!(dec.kernel.contains("e4m3") && !dec.kernel.contains("varlen") && fwd.kernel.contains("varlen"));
    // The rows name the route and its layout: 8 sequences leave most SMs
    // idle without splits, so the decode kernel splits them; the forward
    // route has no layout.
    assert!(r.layout.is_some_and(|l| l.splits > 1) && fwd.layout.is_none(), "{r:?} {fwd:?}");
    assert_eq!(dec.layout.map(|l| l.kernel), Some(DecodeKernel::One), "{dec:?}");
    for row in [&r, &dec, &fwd] {
        assert_eq!(row.to_csv().split(',').count(), DecodeRow::CSV_HEADER.split(',').count(), "{row:?}");
    }
    assert!(dec.ms > 0.0 && dec.ms < fwd.ms && dec.ms < r.ms, "fp8 {dec:?} forward {fwd:?} bf16 {r:?}");
}
