//! Compiling and launching cells: the entry points the generated launchers
//! call (`__private::forward` / `backward`), the dynamic [`Kernel`] API for
//! servers, and [`compile`] for the command-line tool.

use crate::cache::{Artifact, Cache, CacheKey, Origin};
use crate::cubin::{cubin_info, parse_ptxas_log, CubinInfo, PtxasInfo};
use crate::device::{arch_runs_on, device_target, Device, HotKey};
use crate::error::{FaError, Result};
use crate::nvrtc::{compile_cubin, nvrtc_options, nvrtc_version};
use crate::paged::{append_entry, append_params, validate_append, AppendCall, AppendShapes, APPEND_THREADS};
use crate::params::FwdParams;
use crate::tensor::{TensorMut, TensorRef};
use crate::validate::{validate_backward, validate_forward, ArgMeta, BwdShapes, FwdOptions, FwdPlan, FwdShapes};
use fa_spec::KernelSpec;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A forward launch as the generated code describes it (see
/// `api_contract.md`): the cell and its source, and the same arguments as
/// [`Kernel::forward`] takes.
#[derive(Debug)]
pub struct ForwardCall<'a> {
    pub spec: &'a KernelSpec,
    /// The cell's `CUDA_SOURCE`.
    pub source: &'static str,
    pub args: ForwardArgs<'a>,
}

/// A backward launch as the generated code describes it.
#[derive(Debug)]
pub struct BackwardCall<'a> {
    pub spec: &'a KernelSpec,
    pub source: &'static str,
    pub q: TensorRef<'a>,
    pub k: TensorRef<'a>,
    pub v: TensorRef<'a>,
    pub out: TensorRef<'a>,
    pub dout: TensorRef<'a>,
    pub lse: TensorRef<'a>,
    pub cu_seqlens_q: Option<TensorRef<'a>>,
    pub cu_seqlens_k: Option<TensorRef<'a>>,
    pub alibi_slopes: Option<TensorRef<'a>>,
    pub dq: TensorMut<'a>,
    pub dk: TensorMut<'a>,
    pub dv: TensorMut<'a>,
    pub options: &'a FwdOptions,
}

/// The arguments of [`Kernel::forward`]: q, k, v, out and lse, plus the
/// cell-specific inputs set with the builder methods.
#[derive(Debug)]
pub struct ForwardArgs<'a> {
    pub q: TensorRef<'a>,
    pub k: TensorRef<'a>,
    pub v: TensorRef<'a>,
    pub out: TensorMut<'a>,
    pub lse: TensorMut<'a>,
    pub cu_seqlens_q: Option<TensorRef<'a>>,
    pub cu_seqlens_k: Option<TensorRef<'a>>,
    pub block_table: Option<TensorRef<'a>>,
    pub context_lens: Option<TensorRef<'a>>,
    pub alibi_slopes: Option<TensorRef<'a>>,
    pub q_descale: Option<TensorRef<'a>>,
    pub k_descale: Option<TensorRef<'a>>,
    pub v_descale: Option<TensorRef<'a>>,
    pub options: FwdOptions,
}

impl<'a> ForwardArgs<'a> {
    pub fn new(q: TensorRef<'a>, k: TensorRef<'a>, v: TensorRef<'a>, out: TensorMut<'a>, lse: TensorMut<'a>) -> Self {
        ForwardArgs {
            q,
            k,
            v,
            out,
            lse,
            cu_seqlens_q: None,
            cu_seqlens_k: None,
            block_table: None,
            context_lens: None,
            alibi_slopes: None,
            q_descale: None,
            k_descale: None,
            v_descale: None,
            options: FwdOptions::default(),
        }
    }
    /// varlen cells: the sequence offsets and the longest sequences.
    pub fn varlen(
        mut self,
        cu_seqlens_q: TensorRef<'a>,
        cu_seqlens_k: TensorRef<'a>,
        max_q: usize,
        max_k: usize,
    ) -> Self {
        self.cu_seqlens_q = Some(cu_seqlens_q);
        self.cu_seqlens_k = Some(cu_seqlens_k);
        self.options.max_seqlen_q = Some(max_q);
        self.options.max_seqlen_k = Some(max_k);
        self
    }
    /// paged cells: the block table and the context lengths.
    pub fn paged(mut self, block_table: TensorRef<'a>, context_lens: TensorRef<'a>) -> Self {
        self.block_table = Some(block_table);
        self.context_lens = Some(context_lens);
        self
    }
    /// paged cells: the longest context in the batch, a hint for the decode
    /// split heuristic when the block table is much wider than the contexts
    /// (sets `options.max_seqlen_k`; see [`FwdOptions`]).
    pub fn max_context(mut self, tokens: usize) -> Self {
        self.options.max_seqlen_k = Some(tokens);
        self
    }
    /// alibi cells: one slope per query head.
    pub fn alibi(mut self, slopes: TensorRef<'a>) -> Self {
        self.alibi_slopes = Some(slopes);
        self
    }
    /// fp8 cells: dequantisation factors `[batch, num_kv_heads]` (None = 1).
    pub fn descale(mut self, q: Option<TensorRef<'a>>, k: Option<TensorRef<'a>>, v: Option<TensorRef<'a>>) -> Self {
        self.q_descale = q;
        self.k_descale = k;
        self.v_descale = v;
        self
    }
    pub fn softmax_scale(mut self, s: f32) -> Self {
        self.options.softmax_scale = Some(s);
        self
    }
    pub fn options(mut self, o: FwdOptions) -> Self {
        self.options = o;
        self
    }
}

/// Everything `fa compile` reports about one compiled cell.
#[derive(Debug, Clone)]
pub struct CompiledKernel {
    /// The forward entry point.
    pub entry: String,
    /// NVRTC `--gpu-architecture`, e.g. `sm_90a`.
    pub target: &'static str,
    pub key: String,
    pub cubin: Arc<[u8]>,
    /// From the CUBIN's ELF attributes.
    pub info: CubinInfo,
    /// From ptxas' `-v` log (spill stores / loads), when present.
    pub ptxas: Option<PtxasInfo>,
    pub log: String,
    pub nvrtc_version: (u32, u32),
    /// Where the CUBIN came from.
    pub origin: Origin,
    /// Wall time of the NVRTC compile, or of the cache lookup.
    pub elapsed: Duration,
}

impl CompiledKernel {
    /// Spill stores in bytes (ptxas' report), else the ELF's stack frame.
    pub fn spill_bytes(&self) -> u32 {
        self.ptxas.map_or(self.info.local_bytes, |p| p.spill_store_bytes)
    }
}

/// The cache key of a cell's source compiled for `target` (loads NVRTC for
/// its version).
pub fn cache_key(spec: &KernelSpec, source: &str, target: &str) -> Result<CacheKey> {
    let v = nvrtc_version()?;
    Ok(CacheKey::new(&spec.kernel_name(), target, v, &nvrtc_options(target), source))
}

/// Gets the CUBIN of `source` for `target` from `cache`, compiling it if needed.
pub fn get_or_compile(cache: &Cache, spec: &KernelSpec, source: &str, target: &str) -> Result<Arc<Artifact>> {
    let key = cache_key(spec, source, target)?;
    cache.get_or_compile(&key, || {
        let out = compile_cubin(source, &spec.kernel_name(), target)?;
        Ok((out.cubin, out.log))
    })
}

/// Compiles `source` (the cell's rendered CUDA) through `cache` and reports
/// on it. Needs NVRTC only, no driver.
pub fn compile_source_with(cache: &Cache, spec: &KernelSpec, source: &str) -> Result<CompiledKernel> {
    let t = Instant::now();
    let a = get_or_compile(cache, spec, source, spec.arch().nvrtc_target())?;
    let elapsed = t.elapsed();
    let entry = spec.forward_entry();
    let info = cubin_info(&a.cubin, &entry).map_err(|e| FaError::Compile {
        kernel: spec.kernel_name(),
        target: spec.arch().nvrtc_target().into(),
        log: format!("the CUBIN has no usable entry `{entry}`: {e}"),
    })?;
    Ok(CompiledKernel {
        ptxas: parse_ptxas_log(&a.log, &entry),
        entry,
        target: spec.arch().nvrtc_target(),
        key: a.key.to_string(),
        cubin: a.cubin.clone().into(),
        info,
        log: a.log.clone(),
        nvrtc_version: nvrtc_version()?,
        origin: a.origin,
        elapsed,
    })
}

/// Renders and compiles `spec` through the global cache.
pub fn compile(spec: &KernelSpec) -> Result<CompiledKernel> {
    let source = fa_spec::render(spec)?;
    compile_source_with(Cache::global(), spec, &source)
}

fn check_arch(spec: &KernelSpec, dev: &Device) -> Result<()> {
    if !arch_runs_on(spec.arch(), dev.compute_capability()) {
        return Err(FaError::ArchUnsupported {
            kernel: spec.kernel_name(),
            arch: spec.arch(),
            device_ordinal: dev.ordinal(),
            device_name: dev.name().to_string(),
            device_cc: dev.compute_capability(),
        });
    }
    Ok(())
}

fn ptr(t: Option<TensorRef<'_>>) -> u64 {
    t.map_or(0, |t| t.ptr)
}

/// Shared body of every forward launch.
#[allow(clippy::too_many_arguments)]
fn forward_impl(dev: &Device, spec: &KernelSpec, hot: HotKey, source: &str, a: &ForwardArgs<'_>) -> Result<()> {
    let shapes = FwdShapes {
        q: a.q.into(),
        k: a.k.into(),
        v: a.v.into(),
        out: ArgMeta::from(&a.out),
        lse: ArgMeta::from(&a.lse),
        cu_seqlens_q: a.cu_seqlens_q.map(Into::into),
        cu_seqlens_k: a.cu_seqlens_k.map(Into::into),
        block_table: a.block_table.map(Into::into),
        context_lens: a.context_lens.map(Into::into),
        alibi_slopes: a.alibi_slopes.map(Into::into),
        q_descale: a.q_descale.map(Into::into),
        k_descale: a.k_descale.map(Into::into),
        v_descale: a.v_descale.map(Into::into),
    };
    let plan = validate_forward(spec, &shapes, &a.options, (dev.id(), dev.ordinal()))?;
    check_arch(spec, dev)?;
    if plan.is_empty() {
        return Ok(());
    }
    if crate::paged::uses_decode(spec, plan.seqlen_q) {
        let ptrs = [a.q.ptr, a.k.ptr, a.v.ptr, a.out.ptr, a.lse.ptr, ptr(a.block_table), ptr(a.context_lens)];
        let load = || load_artifact(dev, spec, source);
        let extras = crate::paged::DecodeExtras {
            alibi_slopes: ptr(a.alibi_slopes),
            descale: [ptr(a.q_descale), ptr(a.k_descale), ptr(a.v_descale)],
        };
        let entries = crate::paged::DecodeEntries { dev, spec, hot: &hot, load: &load };
        return crate::paged::launch_decode(&entries, &plan, a.k.shape[0], ptrs, extras);
    }
    let k = dev.kernel(&hot, &spec.forward_entry(), || load_artifact(dev, spec, source), plan.smem_bytes)?;
    let params = fwd_params(a, &plan);
    dev.launch(&k, plan.grid, plan.block, plan.smem_bytes, &params)
}

/// The CUBIN of `source` for `dev`, from the global cache or NVRTC.
fn load_artifact(dev: &Device, spec: &KernelSpec, source: &str) -> Result<Arc<Artifact>> {
    let target = device_target(spec.arch(), dev.compute_capability());
    get_or_compile(Cache::global(), spec, source, &target)
}

/// Shared body of every append launch.
fn append_impl(dev: &Device, spec: &KernelSpec, hot: HotKey, source: &str, a: &AppendRefs<'_, '_>) -> Result<()> {
    let shapes = AppendShapes {
        k_new: a.k_new.into(),
        v_new: a.v_new.into(),
        slot_mapping: a.slot_mapping.into(),
        k_cache: ArgMeta::from(a.k_cache),
        v_cache: ArgMeta::from(a.v_cache),
    };
    let plan = validate_append(spec, &shapes, (dev.id(), dev.ordinal()))?;
    check_arch(spec, dev)?;
    if plan.grid == 0 {
        return Ok(());
    }
    let k = dev.kernel(&hot, &append_entry(spec), || load_artifact(dev, spec, source), 0)?;
    let params = append_params(
        &plan,
        spec.page_size().unwrap_or(1) as usize,
        spec.head_dim() as usize,
        [a.k_new.ptr, a.v_new.ptr, a.slot_mapping.ptr, a.k_cache.ptr, a.v_cache.ptr],
    );
    dev.launch(&k, (plan.grid, 1, 1), APPEND_THREADS, 0, &params)
}

struct AppendRefs<'a, 'b> {
    k_new: TensorRef<'a>,
    v_new: TensorRef<'a>,
    slot_mapping: TensorRef<'a>,
    k_cache: &'b TensorMut<'a>,
    v_cache: &'b TensorMut<'a>,
}

/// Entry point of the generated `append` launchers (paged cells).
pub fn append(dev: &Device, call: AppendCall<'_>) -> Result<()> {
    let hot = HotKey::Static(call.source.as_ptr() as usize, call.source.len());
    let refs = AppendRefs {
        k_new: call.k_new,
        v_new: call.v_new,
        slot_mapping: call.slot_mapping,
        k_cache: &call.k_cache,
        v_cache: &call.v_cache,
    };
    append_impl(dev, call.spec, hot, call.source, &refs)
}

/// The kernel parameters of a validated forward launch.
fn fwd_params(a: &ForwardArgs<'_>, p: &FwdPlan) -> FwdParams {
    FwdParams {
        q: a.q.ptr,
        k: a.k.ptr,
        v: a.v.ptr,
        o: a.out.ptr,
        lse: a.lse.ptr,
        cu_seqlens_q: ptr(a.cu_seqlens_q),
        cu_seqlens_k: ptr(a.cu_seqlens_k),
        block_table: ptr(a.block_table),
        seqused_k: ptr(a.context_lens),
        alibi_slopes: ptr(a.alibi_slopes),
        q_descale: ptr(a.q_descale),
        k_descale: ptr(a.k_descale),
        v_descale: ptr(a.v_descale),
        q_batch_stride: p.q_strides[0],
        q_row_stride: p.q_strides[1],
        q_head_stride: p.q_strides[2],
        k_batch_stride: p.k_strides[0],
        k_row_stride: p.k_strides[1],
        k_head_stride: p.k_strides[2],
        v_batch_stride: p.v_strides[0],
        v_row_stride: p.v_strides[1],
        v_head_stride: p.v_strides[2],
        o_batch_stride: p.o_strides[0],
        o_row_stride: p.o_strides[1],
        o_head_stride: p.o_strides[2],
        batch: p.batch as i32,
        num_heads: p.num_heads as i32,
        num_kv_heads: p.num_kv_heads as i32,
        seqlen_q: p.seqlen_q as i32,
        seqlen_k: p.seqlen_k as i32,
        block_table_stride: p.block_table_stride as i32,
        softmax_scale: p.softmax_scale,
        scale_log2: p.softmax_scale * std::f32::consts::LOG2_E,
    }
}

/// Entry point of the generated `forward` launchers.
pub fn forward(dev: &Device, call: ForwardCall<'_>) -> Result<()> {
    let hot = HotKey::Static(call.source.as_ptr() as usize, call.source.len());
    forward_impl(dev, call.spec, hot, call.source, &call.args)
}

fn backward_shapes<'a>(call: &'a BackwardCall<'a>) -> BwdShapes<'a> {
    BwdShapes {
        q: call.q.into(),
        k: call.k.into(),
        v: call.v.into(),
        out: call.out.into(),
        dout: call.dout.into(),
        lse: call.lse.into(),
        cu_seqlens_q: call.cu_seqlens_q.map(Into::into),
        cu_seqlens_k: call.cu_seqlens_k.map(Into::into),
        alibi_slopes: call.alibi_slopes.map(Into::into),
        dq: ArgMeta::from(&call.dq),
        dk: ArgMeta::from(&call.dk),
        dv: ArgMeta::from(&call.dv),
    }
}

/// Entry point of the generated `backward` launchers. The arguments are
/// fully validated; the backward kernel itself does not exist yet, so a
/// valid call returns [`FaError::Unsupported`].
pub fn backward(dev: &Device, call: BackwardCall<'_>) -> Result<()> {
    validate_backward(call.spec, &backward_shapes(&call), call.options, (dev.id(), dev.ordinal()))?;
    check_arch(call.spec, dev)?;
    Err(FaError::Unsupported {
        what: format!(
            "the backward kernel of `{}` is not implemented yet (arguments checked and valid); only forward runs today",
            call.spec.kernel_name()
        ),
    })
}

/// A cell built at run time (e.g. from a model's config), for servers.
#[derive(Debug, Clone)]
pub struct Kernel {
    spec: KernelSpec,
    source: Arc<str>,
    digest: [u8; 32],
}

impl Kernel {
    /// Renders the cell's CUDA source. Compiles nothing yet.
    pub fn new(spec: KernelSpec) -> Result<Kernel> {
        let source: Arc<str> = fa_spec::render(&spec)?.into();
        Ok(Kernel::from_source(spec, source))
    }

    /// A kernel with a given source (tests, tools).
    pub fn from_source(spec: KernelSpec, source: impl Into<Arc<str>>) -> Kernel {
        let source: Arc<str> = source.into();
        let mut h = Sha256::new();
        h.update(source.as_bytes());
        h.update(spec.kernel_name().as_bytes());
        Kernel { spec, source, digest: h.finalize().into() }
    }

    pub fn spec(&self) -> &KernelSpec {
        &self.spec
    }
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Compiles (or fetches from the cache) and reports on the CUBIN.
    pub fn compile(&self) -> Result<CompiledKernel> {
        compile_source_with(Cache::global(), &self.spec, &self.source)
    }

    /// Forward attention with the same checks as the generated launchers.
    pub fn forward(&self, dev: &Device, args: ForwardArgs<'_>) -> Result<()> {
        forward_impl(dev, &self.spec, HotKey::Digest(self.digest), &self.source, &args)
    }

    /// Paged cells whose decode step (`q` `[batch, 1, heads, d]`) runs the
    /// split-KV kernel ([`crate::paged::uses_decode`]: not varlen, not fp8
    /// hd80): the layout such a step of `batch` sequences over
    /// `num_kv_heads` kv heads takes on `dev`, for contexts of at most
    /// `max_context` tokens, as [`crate::paged::decode_layout`] chooses it
    /// (the entry, kv heads per CTA, splits, and whether the splits merge
    /// inside the decode). [`Kernel::forward`] plans with the block table's width ×
    /// page size, or the `max_context` hint where that is smaller: pass the
    /// same bound to see its layout. Loads the cell's CUBIN (compiling it if
    /// needed) to read its occupancy. `None` for other cells, and where
    /// `batch` or `num_kv_heads` is 0 (the step launches nothing).
    pub fn decode_layout(
        &self,
        dev: &Device,
        batch: usize,
        num_kv_heads: usize,
        max_context: usize,
    ) -> Result<Option<crate::paged::DecodeLayout>> {
        if !crate::paged::uses_decode(&self.spec, 1) || batch == 0 || num_kv_heads == 0 {
            return Ok(None);
        }
        check_arch(&self.spec, dev)?;
        let hot = HotKey::Digest(self.digest);
        let load = || load_artifact(dev, &self.spec, &self.source);
        let entries = crate::paged::DecodeEntries { dev, spec: &self.spec, hot: &hot, load: &load };
        entries.layout(batch, num_kv_heads, max_context).map(Some)
    }

    /// Paged cells: writes `k_new` / `v_new` `[num_tokens, num_kv_heads,
    /// head_dim]` into the caches `[num_blocks, page_size, num_kv_heads,
    /// head_dim]` at `slot_mapping` i64 `[num_tokens]` (slot = page ·
    /// page_size + offset; −1 or any slot outside the cache is skipped).
    /// Same checks as the generated `append`.
    pub fn append(
        &self,
        dev: &Device,
        k_new: TensorRef<'_>,
        v_new: TensorRef<'_>,
        slot_mapping: TensorRef<'_>,
        k_cache: TensorMut<'_>,
        v_cache: TensorMut<'_>,
    ) -> Result<()> {
        let refs = AppendRefs { k_new, v_new, slot_mapping, k_cache: &k_cache, v_cache: &v_cache };
        append_impl(dev, &self.spec, HotKey::Digest(self.digest), &self.source, &refs)
    }
}
