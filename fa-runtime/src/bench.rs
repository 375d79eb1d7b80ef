//! Benchmarks for `fa bench`: forward throughput on the FlashAttention
//! paper grid, NVRTC compile and disk-cache load times, and host launch
//! overhead. Timings use CUDA events after a warm-up; each figure is the
//! median of many runs.

use crate::cache::Cache;
use crate::device::Device;
use crate::error::{FaError, Result};
use crate::launch::{compile_source_with, ForwardArgs, Kernel};
use crate::tensor::{Element, Tensor};
use crate::validate::{FwdOptions, QkvLayout};
use fa_spec::{Arch, Dtype, KernelSpec};
use std::time::{Duration, Instant};

/// The grid to time.
#[derive(Debug, Clone)]
pub struct BenchGrid {
    pub arch: Arch,
    pub dtypes: Vec<Dtype>,
    pub head_dims: Vec<u32>,
    pub causal: Vec<bool>,
    pub seqlens: Vec<usize>,
    /// batch × seqlen (the paper: 16k tokens).
    pub tokens: usize,
    /// heads × head_dim (the paper: 2048).
    pub hidden: usize,
    pub warmup: usize,
    pub iters: usize,
    /// q, k, v, out as `[b, s, h, d]` (FlashAttention's) or `[b, h, s, d]`
    /// (what PyTorch's SDPA, and so `sdpa_anchor.py`, is handed).
    pub layout: QkvLayout,
}

impl BenchGrid {
    /// The FlashAttention(-2) paper grid: 16k tokens, hidden 2048, seqlen
    /// 512…16k, head_dim 64/128/256, causal and not, f16 and bf16.
    pub fn paper(arch: Arch) -> BenchGrid {
        BenchGrid {
            arch,
            dtypes: vec![Dtype::F16, Dtype::Bf16],
            head_dims: vec![64, 128, 256],
            causal: vec![false, true],
            seqlens: vec![512, 1024, 2048, 4096, 8192, 16384],
            tokens: 16384,
            hidden: 2048,
            warmup: 5,
            iters: 30,
            layout: QkvLayout::SeqMajor,
        }
    }

    /// A few seconds' worth: seqlens 512 and 4096, head_dim 128, f16/bf16.
    pub fn quick(arch: Arch) -> BenchGrid {
        BenchGrid { head_dims: vec![128], seqlens: vec![512, 4096], warmup: 3, iters: 10, ..BenchGrid::paper(arch) }
    }
}

/// The cell arch that suits a device: sm90a on 9.0, sm100 on 10.0, sm89 on
/// 8.9 and newer consumer parts, sm80 otherwise.
pub fn arch_for(dev: &Device) -> Arch {
    match dev.compute_capability() {
        (9, 0) => Arch::Sm90a,
        (10, 0) => Arch::Sm100,
        (8, 9) => Arch::Sm89,
        (major, _) if major >= 9 => Arch::Sm89,
        _ => Arch::Sm80,
    }
}

/// One timed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub kernel: String,
    pub dtype: Dtype,
    pub head_dim: u32,
    pub causal: bool,
    pub batch: usize,
    pub heads: usize,
    pub seqlen: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    /// Forward TFLOP/s at the median (4·b·h·s²·d, halved when causal).
    pub tflops: f64,
}

impl BenchRow {
    pub const CSV_HEADER: &'static str = "kernel,dtype,head_dim,causal,batch,heads,seqlen,median_ms,min_ms,tflops";
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{:.4},{:.4},{:.2}",
            self.kernel,
            self.dtype,
            self.head_dim,
            self.causal,
            self.batch,
            self.heads,
            self.seqlen,
            self.median_ms,
            self.min_ms,
            self.tflops
        )
    }
}

/// Rows as CSV with a header line.
pub fn to_csv(rows: &[BenchRow]) -> String {
    let mut s = String::from(BenchRow::CSV_HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.to_csv());
        s.push('\n');
    }
    s
}

fn spec_of(arch: Arch, dtype: Dtype, head_dim: u32, causal: bool) -> Result<KernelSpec> {
    let mut b = KernelSpec::builder().arch(arch).dtype(dtype).head_dim(head_dim);
    if causal {
        b = b.causal();
    }
    b.build().map_err(|e| FaError::Argument { arg: "grid", message: e.to_string() })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Pseudo-random values in [-1, 1), from a small repeated block (fast for
/// large tensors).
fn pattern<T: Element>(n: usize, seed: u64) -> Vec<T> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let block: Vec<T> = (0..4099)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            T::from_f32(((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect();
    (0..n).map(|i| block[i % block.len()]).collect()
}

fn time_one<E: Element>(
    dev: &Device,
    kernel: &Kernel,
    b: usize,
    s: usize,
    h: usize,
    d: usize,
    grid: &BenchGrid,
) -> Result<(f64, f64)> {
    let shape = match grid.layout {
        QkvLayout::SeqMajor => [b, s, h, d],
        QkvLayout::HeadMajor => [b, h, s, d],
    };
    let n = b * s * h * d;
    let q: Tensor<E> = dev.from_host(&pattern::<E>(n, 1), &shape)?;
    let k: Tensor<E> = dev.from_host(&pattern::<E>(n, 2), &shape)?;
    let v: Tensor<E> = dev.from_host(&pattern::<E>(n, 3), &shape)?;
    let mut o: Tensor<E> = dev.alloc_zeros(&shape)?;
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[b, h, s])?;
    let opts = FwdOptions::new().layout(grid.layout);
    let mut run = || {
        kernel
            .forward(dev, ForwardArgs::new(q.as_ref(), k.as_ref(), v.as_ref(), o.as_mut(), lse.as_mut()).options(opts))
    };
    for _ in 0..grid.warmup {
        run()?;
    }
    dev.synchronize()?;
    let mut times = Vec::with_capacity(grid.iters);
    for _ in 0..grid.iters.max(1) {
        times.push(dev.time_ms(&mut run)? as f64);
    }
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok((median(times), min))
}

/// Times the forward kernel over `grid` on `dev` (f16/bf16 cells only).
pub fn bench_forward(dev: &Device, grid: &BenchGrid) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for &dtype in &grid.dtypes {
        for &hd in &grid.head_dims {
            for &causal in &grid.causal {
                let spec = spec_of(grid.arch, dtype, hd, causal)?;
                let kernel = Kernel::new(spec)?;
                for &s in &grid.seqlens {
                    let b = (grid.tokens / s).max(1);
                    let h = (grid.hidden / hd as usize).max(1);
                    let d = hd as usize;
                    let (med, min) = match dtype {
                        Dtype::F16 => time_one::<half::f16>(dev, &kernel, b, s, h, d, grid)?,
                        Dtype::Bf16 => time_one::<half::bf16>(dev, &kernel, b, s, h, d, grid)?,
                        other => {
                            return Err(FaError::Unsupported {
                                what: format!("bench_forward times f16/bf16 only, not {other}"),
                            })
                        }
                    };
                    let mut flops = 4.0 * b as f64 * h as f64 * (s as f64).powi(2) * d as f64;
                    if causal {
                        flops /= 2.0;
                    }
                    rows.push(BenchRow {
                        kernel: spec.kernel_name(),
                        dtype,
                        head_dim: hd,
                        causal,
                        batch: b,
                        heads: h,
                        seqlen: s,
                        median_ms: med,
                        min_ms: min,
                        tflops: flops / (med * 1e-3) / 1e12,
                    });
                }
            }
        }
    }
    Ok(rows)
}

/// Compile timings of one cell (NVRTC only, no GPU needed).
#[derive(Debug, Clone, Copy)]
pub struct CompileTiming {
    /// Render + NVRTC, no cache.
    pub cold: Duration,
    /// Reading and verifying the disk-cache entry in a fresh cache.
    pub warm_disk: Duration,
    pub cubin_bytes: usize,
}

/// Cold NVRTC compile time and warm disk-cache load time of `spec`, using
/// a scratch cache folder under `scratch_dir` (removed afterwards).
pub fn bench_compile(spec: &KernelSpec, scratch_dir: &std::path::Path) -> Result<CompileTiming> {
    let dir = scratch_dir.join(format!("fa-bench-cache-{}", std::process::id()));
    let t = Instant::now();
    let source = fa_spec::render(spec)?;
    let cold_cache = Cache::new(&dir);
    let c = compile_source_with(&cold_cache, spec, &source)?;
    let cold = t.elapsed();
    let warm_cache = Cache::new(&dir);
    let t = Instant::now();
    let w = compile_source_with(&warm_cache, spec, &source)?;
    let warm_disk = t.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    if w.origin != crate::cache::Origin::Disk {
        return Err(FaError::Unsupported {
            what: "the disk cache was not used (is the scratch folder writable?)".into(),
        });
    }
    Ok(CompileTiming { cold, warm_disk, cubin_bytes: c.cubin.len() })
}

/// Host time per forward call on a cache hit (tiny problem, `n` calls,
/// median of 5 batches), in microseconds.
pub fn bench_launch_overhead(dev: &Device, n: usize) -> Result<f64> {
    let spec = spec_of(arch_for(dev), Dtype::F16, 64, false)?;
    let kernel = Kernel::new(spec)?;
    let shape = [1, 1, 1, 64];
    let q: Tensor<half::f16> = dev.alloc_zeros(&shape)?;
    let mut o: Tensor<half::f16> = dev.alloc_zeros(&shape)?;
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[1, 1, 1])?;
    let mut run =
        || kernel.forward(dev, ForwardArgs::new(q.as_ref(), q.as_ref(), q.as_ref(), o.as_mut(), lse.as_mut()));
    run()?;
    dev.synchronize()?;
    let mut per_call = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n.max(1) {
            run()?;
        }
        per_call.push(t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64);
        dev.synchronize()?;
    }
    Ok(median(per_call))
}

/// One timed paged decode (`bench_decode`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeRow {
    pub kernel: String,
    pub batch: usize,
    pub ctx: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub page_size: usize,
    /// Median milliseconds per decode step (split-KV decode + merge).
    pub ms: f64,
    /// Bytes moved (K and V of every context, Q and O) / median time, GB/s.
    pub gbps: f64,
    /// The split-KV decode's layout (entry, kv heads per CTA, splits), or `None`
    /// where the step ran the forward kernel.
    pub layout: Option<crate::paged::DecodeLayout>,
}

impl DecodeRow {
    /// The columns of [`DecodeRow::to_csv`]; the layout's (`heads_per_cta`,
    /// `splits`, `fused_merge`, and `entry`, the decode kernel's name after
    /// the cell's: `decode`, `decode_unsplit` or `decode_pair`) are empty
    /// where the step ran the forward kernel.
    pub const CSV_HEADER: &'static str =
        "kernel,batch,ctx,heads,kv_heads,head_dim,page_size,ms,gbps,heads_per_cta,splits,fused_merge,entry";
    pub fn to_csv(&self) -> String {
        let layout = self.layout.map_or(",,,".to_string(), |l| {
            format!("{},{},{},{}", l.heads_per_cta(), l.splits, l.fused_merge, l.kernel.stem())
        });
        format!(
            "{},{},{},{},{},{},{},{:.4},{:.1},{layout}",
            self.kernel,
            self.batch,
            self.ctx,
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.page_size,
            self.ms,
            self.gbps
        )
    }
}

fn median_of(dev: &Device, warmup: usize, iters: usize, run: impl FnMut() -> Result<()>) -> Result<f64> {
    median_after(dev, warmup, iters, || Ok(()), run)
}

/// Median of `iters` timed calls of `run` after `warmup` untimed ones;
/// `before` is queued ahead of each timed call, outside the timed span.
fn median_after(
    dev: &Device,
    warmup: usize,
    iters: usize,
    mut before: impl FnMut() -> Result<()>,
    mut run: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..warmup {
        run()?;
    }
    dev.synchronize()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        before()?;
        times.push(dev.time_ms(&mut run)? as f64);
    }
    Ok(median(times))
}

/// Bytes zeroed before each timed decode: more than the L2 of any card
/// (50 MB on an H100), the size `triton.testing.do_bench` uses.
const L2_FLUSH_BYTES: usize = 256 << 20;

/// [`median_of`] measured the way the SDPA anchor (`triton.testing.do_bench`)
/// measures PyTorch's kernels, so that decode times compare like for like:
/// before each call a 256 MiB memset evicts what the last call left in L2,
/// and because it is queued ahead of the start event, the host's work to
/// launch the call overlaps the memset instead of being timed. A decode is
/// short (tens of microseconds at small batches), so that host work would
/// otherwise be a visible part of the figure.
fn median_of_flushed(dev: &Device, warmup: usize, iters: usize, run: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut flush = dev.alloc_workspace(L2_FLUSH_BYTES)?;
    median_after(dev, warmup, iters, || dev.zero_workspace(&mut flush), run)
}

/// A shuffled block table: `batch` rows of `width` distinct pages out of `num_blocks`.
fn shuffled_table(batch: usize, width: usize, num_blocks: usize) -> Vec<i32> {
    let mut pages: Vec<i32> = (0..num_blocks as i32).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..pages.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pages.swap(i, (x % (i as u64 + 1)) as usize);
    }
    pages.truncate(batch * width);
    pages
}

/// Times one paged decode step of a bf16 causal cell (gqa = heads /
/// kv_heads, page size `page`) for `batch` sequences of `ctx` tokens each,
/// pages shuffled. Bandwidth counts K/V of every context + Q + O bytes.
pub fn bench_decode(
    dev: &Device,
    batch: usize,
    ctx: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    page: usize,
) -> Result<DecodeRow> {
    bench_decode_table(dev, batch, ctx, ctx, None, heads, kv_heads, hd, page)
}

/// [`bench_decode`] with block tables `table_tokens` wide (≥ `ctx`; pages
/// past the context are allocated but never read) and an optional
/// `max_context` hint (`ForwardArgs::max_context`).
#[allow(clippy::too_many_arguments)]
pub fn bench_decode_table(
    dev: &Device,
    batch: usize,
    ctx: usize,
    table_tokens: usize,
    max_context: Option<usize>,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    page: usize,
) -> Result<DecodeRow> {
    let case =
        DecodeCase { table_tokens, max_context, ..DecodeCase::new(Dtype::Bf16, batch, ctx, heads, kv_heads, hd, page) };
    bench_decode_case(dev, &case)
}

/// One paged decode benchmark: a causal cell of `dtype` (gqa = heads /
/// kv_heads, pages of `page` tokens, shuffled), `batch` sequences of `ctx`
/// tokens each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeCase {
    pub dtype: Dtype,
    pub batch: usize,
    pub ctx: usize,
    /// Block-table width in tokens (≥ `ctx`; pages past the context are
    /// allocated but never read).
    pub table_tokens: usize,
    /// `ForwardArgs::max_context`.
    pub max_context: Option<usize>,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub page_size: usize,
    /// Run the step through the forward kernel instead (a `varlen` paged
    /// cell, one query per sequence: how a cell without a decode kernel,
    /// e.g. fp8 hd80, decodes), for comparison.
    pub via_forward: bool,
}

impl DecodeCase {
    pub fn new(dtype: Dtype, batch: usize, ctx: usize, heads: usize, kv_heads: usize, hd: usize, page: usize) -> Self {
        DecodeCase {
            dtype,
            batch,
            ctx,
            table_tokens: ctx,
            max_context: None,
            heads,
            kv_heads,
            head_dim: hd,
            page_size: page,
            via_forward: false,
        }
    }
}

/// Times `case` (median of 30 calls, each after an L2 flush). Bandwidth
/// counts K/V of every context, Q and O bytes (fp8: 1-byte K/V/Q, bf16 O).
pub fn bench_decode_case(dev: &Device, case: &DecodeCase) -> Result<DecodeRow> {
    match case.dtype {
        Dtype::F16 => decode_case_typed::<half::f16, half::f16>(dev, case),
        Dtype::Bf16 => decode_case_typed::<half::bf16, half::bf16>(dev, case),
        Dtype::E4m3 => decode_case_typed::<float8::F8E4M3, half::bf16>(dev, case),
        Dtype::E5m2 => decode_case_typed::<float8::F8E5M2, half::bf16>(dev, case),
    }
}

fn decode_case_typed<E: Element, O: Element>(dev: &Device, case: &DecodeCase) -> Result<DecodeRow> {
    let &DecodeCase { batch, ctx, heads, kv_heads, head_dim: hd, page_size: page, .. } = case;
    let b = KernelSpec::builder()
        .arch(arch_for(dev))
        .dtype(case.dtype)
        .head_dim(hd as u32)
        .causal()
        .gqa((heads / kv_heads.max(1)) as u32)
        .paged()
        .page_size(page as u32);
    let spec = if case.via_forward { b.varlen() } else { b }
        .build()
        .map_err(|e| FaError::Argument { arg: "bench_decode", message: e.to_string() })?;
    let kernel = Kernel::new(spec)?;
    let width = ctx.max(case.table_tokens).div_ceil(page).max(1);
    let num_blocks = batch * width;
    let mut k: Tensor<E> = dev.alloc_zeros(&[num_blocks, page, kv_heads, hd])?;
    let mut v: Tensor<E> = dev.alloc_zeros(&[num_blocks, page, kv_heads, hd])?;
    dev.fill_bytes(&mut k, 0x3C)?; // bf16 0x3C3C ≈ 0.0115; e4m3 0x3C = 1.5
    dev.fill_bytes(&mut v, 0x3B)?;
    // [batch, 1, heads, d]; the forward route's varlen q is [batch, heads, d].
    let q_shape: Vec<usize> = if case.via_forward { vec![batch, heads, hd] } else { vec![batch, 1, heads, hd] };
    let q: Tensor<E> = dev.from_host(&pattern::<E>(batch * heads * hd, 1), &q_shape)?;
    let bt = dev.from_host(&shuffled_table(batch, width, num_blocks), &[batch, width])?;
    let cl = dev.from_host(&vec![ctx as i32; batch], &[batch])?;
    let cu_q = dev.from_host(&(0..=batch as i32).collect::<Vec<_>>(), &[batch + 1])?;
    let cu_k = dev.from_host(&(0..=batch).map(|i| (i * ctx) as i32).collect::<Vec<_>>(), &[batch + 1])?;
    let mut o: Tensor<O> = dev.alloc_zeros(&q_shape)?;
    let lse_shape: Vec<usize> = if case.via_forward { vec![heads, batch] } else { vec![batch, heads, 1] };
    let mut lse: Tensor<f32> = dev.alloc_zeros(&lse_shape)?;
    let ms = median_of_flushed(dev, 5, 30, || {
        let mut args = ForwardArgs::new(q.as_ref(), k.as_ref(), v.as_ref(), o.as_mut(), lse.as_mut())
            .paged(bt.as_ref(), cl.as_ref());
        if case.via_forward {
            args = args.varlen(cu_q.as_ref(), cu_k.as_ref(), 1, ctx);
        }
        if let Some(n) = case.max_context {
            args = args.max_context(n);
        }
        kernel.forward(dev, args)
    })?;
    let elem = case.dtype.size_bytes();
    let bytes = 2 * batch * ctx * kv_heads * hd * elem + batch * heads * hd * (elem + case.dtype.output().size_bytes());
    let bound = crate::paged::decode_bound(width * page, case.max_context);
    let layout = if case.via_forward { None } else { kernel.decode_layout(dev, batch, kv_heads, bound)? };
    Ok(DecodeRow {
        kernel: spec.kernel_name(),
        batch,
        ctx,
        heads,
        kv_heads,
        head_dim: hd,
        page_size: page,
        ms,
        gbps: bytes as f64 / (ms * 1e-3) / 1e9,
        layout,
    })
}

/// Device-to-device copy bandwidth in GB/s: a 2 GiB copy, counting the bytes
/// read and written (the roofline `bench_decode`'s GB/s compares against).
pub fn bench_copy_bandwidth(dev: &Device) -> Result<f64> {
    let n = 2usize << 30;
    let src = dev.alloc_workspace(n)?;
    let mut dst = dev.alloc_workspace(n)?;
    let ms = median_of(dev, 2, 10, || dev.copy_d2d(&src, &mut dst, n))?;
    Ok(2.0 * n as f64 / (ms * 1e-3) / 1e9)
}

/// Chunked prefill vs the dense forward kernel on the same shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefillRow {
    pub ctx: usize,
    pub chunk: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub page_size: usize,
    /// All chunks of the paged (varlen, causal) cell, milliseconds.
    pub paged_ms: f64,
    pub paged_tflops: f64,
    /// The same chunks through a dense varlen causal cell (K/V contiguous).
    pub dense_ms: f64,
    pub dense_tflops: f64,
}

/// Prefills one sequence of `ctx` tokens in chunks of `chunk` (each chunk
/// attends causally to every earlier token: its context grows by `chunk`
/// per step) through a paged varlen causal bf16 cell, and the same chunk
/// shapes through the dense varlen fwd kernel. FLOPs: 4·heads·d per visible
/// (query, key) pair.
pub fn bench_chunked_prefill(
    dev: &Device,
    ctx: usize,
    chunk: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    page: usize,
) -> Result<PrefillRow> {
    type E = half::bf16;
    let gqa = (heads / kv_heads.max(1)) as u32;
    let build = |paged: bool| {
        let b =
            KernelSpec::builder().arch(arch_for(dev)).dtype(Dtype::Bf16).head_dim(hd as u32).causal().gqa(gqa).varlen();
        let b = if paged { b.paged().page_size(page as u32) } else { b };
        b.build().map_err(|e| FaError::Argument { arg: "bench_chunked_prefill", message: e.to_string() })
    };
    let (paged, dense) = (Kernel::new(build(true)?)?, Kernel::new(build(false)?)?);
    let width = ctx.div_ceil(page);
    let mut kc: Tensor<E> = dev.alloc_zeros(&[width, page, kv_heads, hd])?;
    let mut vc: Tensor<E> = dev.alloc_zeros(&[width, page, kv_heads, hd])?;
    dev.fill_bytes(&mut kc, 0x3C)?;
    dev.fill_bytes(&mut vc, 0x3B)?;
    let mut kd: Tensor<E> = dev.alloc_zeros(&[ctx, kv_heads, hd])?;
    let mut vd: Tensor<E> = dev.alloc_zeros(&[ctx, kv_heads, hd])?;
    dev.fill_bytes(&mut kd, 0x3C)?;
    dev.fill_bytes(&mut vd, 0x3B)?;
    let bt = dev.from_host(&shuffled_table(1, width, width), &[1, width])?;
    let q: Tensor<E> = dev.from_host(&pattern::<E>(chunk * heads * hd, 1), &[chunk, heads, hd])?;
    let mut o: Tensor<E> = dev.alloc_zeros(&[chunk, heads, hd])?;
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[heads, chunk])?;
    let cu_q = dev.from_host(&[0, chunk as i32], &[2])?;
    let steps: Vec<usize> = (1..=ctx / chunk.max(1)).map(|i| i * chunk).collect();
    let mut per_step = Vec::new();
    for &end in &steps {
        per_step.push((dev.from_host(&[0, end as i32], &[2])?, dev.from_host(&[end as i32], &[1])?, end));
    }
    let paged_ms = median_of(dev, 2, 10, || {
        for (cu_k, cl, end) in &per_step {
            let a = ForwardArgs::new(q.as_ref(), kc.as_ref(), vc.as_ref(), o.as_mut(), lse.as_mut())
                .varlen(cu_q.as_ref(), cu_k.as_ref(), chunk, *end)
                .paged(bt.as_ref(), cl.as_ref());
            paged.forward(dev, a)?;
        }
        Ok(())
    })?;
    let dense_ms = median_of(dev, 2, 10, || {
        for (cu_k, _, end) in &per_step {
            let a = ForwardArgs::new(q.as_ref(), kd.as_ref(), vd.as_ref(), o.as_mut(), lse.as_mut()).varlen(
                cu_q.as_ref(),
                cu_k.as_ref(),
                chunk,
                *end,
            );
            dense.forward(dev, a)?;
        }
        Ok(())
    })?;
    // Visible pairs: chunk rows ending at `end` see end - chunk + i + 1 keys.
    let pairs: f64 = steps.iter().map(|&end| (chunk * (end - chunk)) as f64 + (chunk * (chunk + 1) / 2) as f64).sum();
    let flops = 4.0 * heads as f64 * hd as f64 * pairs;
    Ok(PrefillRow {
        ctx,
        chunk,
        heads,
        kv_heads,
        head_dim: hd,
        page_size: page,
        paged_ms,
        paged_tflops: flops / (paged_ms * 1e-3) / 1e12,
        dense_ms,
        dense_tflops: flops / (dense_ms * 1e-3) / 1e12,
    })
}
