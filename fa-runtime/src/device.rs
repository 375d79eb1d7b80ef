//! `Device`: one CUDA context and stream, the kernels loaded into it, and
//! memory allocation / copies for [`Tensor`]s.

use crate::error::{FaError, Result};
use crate::libs;
use crate::tensor::{as_bytes, Element, Tensor};
use cudarc::driver::{sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr};
use fa_spec::Arch;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_DEVICE_ID: AtomicU64 = AtomicU64::new(1);

/// Identity of a loaded kernel in a device's table, cheap to hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HotKey {
    /// A `&'static str` source (generated code): its address and length.
    /// Static strings are never freed, so the address cannot be reused.
    Static(usize, usize),
    /// An owned source: its SHA-256.
    Digest([u8; 32]),
}

/// A kernel function loaded on a device.
#[derive(Debug)]
pub struct LoadedKernel {
    pub(crate) func: CudaFunction,
    pub kernel: String,
    pub registers: u32,
    pub local_bytes: u32,
}

/// One GPU: its context, a stream every launch and copy of this `Device`
/// goes to (in order), and the kernels loaded into it.
#[derive(Debug)]
pub struct Device {
    id: u64,
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    cc: (u32, u32),
    sm_count: u32,
    max_smem_optin: u32,
    modules: Mutex<HashMap<HotKey, Arc<CudaModule>>>,
    kernels: Mutex<HashMap<(HotKey, String), Arc<LoadedKernel>>>,
    /// Per-module facts computed once (e.g. a kernel's smem and occupancy).
    memo: Mutex<HashMap<(HotKey, &'static str), u64>>,
    /// Split-KV decode workspace (grown on demand, reused; see `paged`).
    pub(crate) paged_workspace: Mutex<Option<CudaSlice<u8>>>,
    /// i32 counters of the fused split-KV merge: zeroed when allocated, and
    /// every decode that uses them leaves them 0 (see `paged`).
    pub(crate) merge_counters: Mutex<Option<CudaSlice<u8>>>,
}

fn attr(ctx: &CudaContext, a: sys::CUdevice_attribute) -> Result<i32> {
    ctx.attribute(a).map_err(|e| FaError::cuda("cuDeviceGetAttribute", e))
}

impl Device {
    /// Opens device `ordinal`: loads the driver (typed error if absent),
    /// retains its primary context and creates a stream.
    pub fn new(ordinal: usize) -> Result<Device> {
        libs::ensure_cuda()?;
        cudarc::driver::result::init().map_err(|e| FaError::cuda("cuInit", e))?;
        let count = CudaContext::device_count().map_err(|e| FaError::cuda("cuDeviceGetCount", e))?;
        if count <= 0 || ordinal >= count as usize {
            return Err(FaError::NoDevice { ordinal, detail: format!("the driver reports {count} device(s)") });
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| FaError::cuda("cuDevicePrimaryCtxRetain", e))?;
        // SAFETY: every allocation, copy and launch of this Device (and of
        // its tensors) is issued on `stream` below, in program order, so
        // cudarc's cross-stream event tracking is not needed. Tensors carry
        // the Device's id and are rejected by any other Device.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| FaError::cuda("cuStreamCreate", e))?;
        let name = ctx.name().map_err(|e| FaError::cuda("cuDeviceGetName", e))?;
        let (major, minor) = ctx.compute_capability().map_err(|e| FaError::cuda("cuDeviceGetAttribute", e))?;
        let sm_count = attr(&ctx, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let max_smem_optin =
            attr(&ctx, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        Ok(Device {
            id: NEXT_DEVICE_ID.fetch_add(1, Ordering::Relaxed),
            ordinal,
            ctx,
            stream,
            name,
            cc: (major as u32, minor as u32),
            sm_count: sm_count as u32,
            max_smem_optin: max_smem_optin as u32,
            modules: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
            memo: Mutex::new(HashMap::new()),
            paged_workspace: Mutex::new(None),
            merge_counters: Mutex::new(None),
        })
    }

    /// Number of CUDA devices (0 if the driver has none).
    pub fn count() -> Result<usize> {
        libs::ensure_cuda()?;
        cudarc::driver::result::init().map_err(|e| FaError::cuda("cuInit", e))?;
        let n = CudaContext::device_count().map_err(|e| FaError::cuda("cuDeviceGetCount", e))?;
        Ok(n.max(0) as usize)
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// (major, minor), e.g. (9, 0) for H100.
    pub fn compute_capability(&self) -> (u32, u32) {
        self.cc
    }
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }
    /// Most dynamic shared memory a block may opt into.
    pub fn max_shared_memory_per_block(&self) -> u32 {
        self.max_smem_optin
    }
    /// The cudarc stream every operation of this device goes to.
    pub fn cuda_stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether a cell built for `arch` runs here: sm80/sm89 on any compute
    /// capability at least theirs; sm90a only on 9.0; sm100 (compiled for
    /// `sm_100a`) only on 10.0.
    pub fn supports(&self, arch: Arch) -> bool {
        arch_runs_on(arch, self.cc)
    }

    /// Waits for everything issued on this device's stream.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(|e| FaError::cuda("cuStreamSynchronize", e))
    }

    pub(crate) fn check_same(&self, arg: &'static str, device_id: u64, ordinal: usize) -> Result<()> {
        if device_id != self.id {
            return Err(FaError::WrongDevice { arg, expected: self.ordinal, found: ordinal });
        }
        Ok(())
    }

    fn alloc_bytes(&self, n: usize) -> Result<CudaSlice<u8>> {
        // SAFETY: the memory is uninitialised; every caller fills it (memset
        // or copy) on the same stream before anything reads it.
        unsafe { self.stream.alloc::<u8>(n.max(1)) }.map_err(|e| FaError::cuda("cuMemAllocAsync", e))
    }

    fn wrap<T: Element>(&self, buf: CudaSlice<u8>, shape: &[usize]) -> Tensor<T> {
        let (ptr, _sync) = buf.device_ptr(&self.stream);
        drop(_sync);
        Tensor { buf, ptr, shape: shape.to_vec(), device_id: self.id, ordinal: self.ordinal, _t: PhantomData }
    }

    fn checked_bytes<T: Element>(shape: &[usize]) -> Result<usize> {
        shape
            .iter()
            .try_fold(std::mem::size_of::<T>(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| FaError::shape("shape", "a size that fits in memory", shape))
    }

    /// A zero-filled tensor.
    pub fn alloc_zeros<T: Element>(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let n = Self::checked_bytes::<T>(shape)?;
        let mut buf = self.alloc_bytes(n)?;
        self.stream.memset_zeros(&mut buf).map_err(|e| FaError::cuda("cuMemsetD8Async", e))?;
        Ok(self.wrap(buf, shape))
    }

    /// A tensor holding `data` (row-major) with `shape`.
    pub fn from_host<T: Element>(&self, data: &[T], shape: &[usize]) -> Result<Tensor<T>> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(FaError::Shape {
                arg: "data",
                expected: format!("{n} elements for shape {shape:?}"),
                found: format!("{} elements", data.len()),
            });
        }
        let bytes = as_bytes(data);
        let mut buf = self.alloc_bytes(bytes.len())?;
        if !bytes.is_empty() {
            let mut view = buf.slice_mut(0..bytes.len());
            self.stream.memcpy_htod(bytes, &mut view).map_err(|e| FaError::cuda("cuMemcpyHtoDAsync", e))?;
        }
        Ok(self.wrap(buf, shape))
    }

    /// Sets every byte of `t` to `byte` (e.g. 0xFF: NaN for every float
    /// type, to poison outputs in tests).
    pub fn fill_bytes<T: Element>(&self, t: &mut Tensor<T>, byte: u8) -> Result<()> {
        self.check_same("tensor", t.device_id, t.ordinal)?;
        let n = t.num_bytes();
        if n == 0 {
            return Ok(());
        }
        self.ctx.bind_to_thread().map_err(|e| FaError::cuda("cuCtxSetCurrent", e))?;
        // SAFETY: t.ptr is a live allocation of this device of at least n
        // bytes; the memset is ordered on the stream every user of t uses.
        unsafe { cudarc::driver::result::memset_d8_async(t.ptr, byte, n, self.stream.cu_stream()) }
            .map_err(|e| FaError::cuda("cuMemsetD8Async", e))
    }

    pub(crate) fn copy_to_host(&self, buf: &CudaSlice<u8>, n: usize) -> Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; n];
        self.stream.memcpy_dtoh(&buf.slice(0..n), &mut out[..]).map_err(|e| FaError::cuda("cuMemcpyDtoHAsync", e))?;
        self.synchronize()?;
        Ok(out)
    }

    /// The loaded function `entry` of the module `key`: loads the module
    /// (the CUBIN `load` returns) on first use, then looks functions up in
    /// it, so a cell's forward, decode, merge and append entry points share
    /// one module and one compile. `smem_bytes` above 48 KiB is opted into.
    pub(crate) fn kernel(
        &self,
        key: &HotKey,
        entry: &str,
        load: impl FnOnce() -> Result<Arc<crate::cache::Artifact>>,
        smem_bytes: u32,
    ) -> Result<Arc<LoadedKernel>> {
        {
            let m = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = m.get(&(key.clone(), entry.to_string())) {
                return Ok(k.clone());
            }
        }
        let module = self.module(key, load)?;
        let func = module.load_function(entry).map_err(|e| FaError::cuda("cuModuleGetFunction", e))?;
        if smem_bytes > self.max_smem_optin {
            return Err(FaError::Unsupported {
                what: format!(
                    "kernel `{entry}` needs {smem_bytes} bytes of shared memory per block, device {} ({}) allows {}",
                    self.ordinal, self.name, self.max_smem_optin
                ),
            });
        }
        let f = func.cu_function();
        if smem_bytes > 48 * 1024 {
            // SAFETY: f is a live function of a module this device holds.
            unsafe {
                cudarc::driver::result::function::set_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    smem_bytes as i32,
                )
            }
            .map_err(|e| FaError::cuda("cuFuncSetAttribute", e))?;
        }
        // SAFETY: as above.
        let get = |a| unsafe { cudarc::driver::result::function::get_function_attribute(f, a) };
        let registers = get(sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_NUM_REGS).unwrap_or(0) as u32;
        let local_bytes = get(sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES).unwrap_or(0) as u32;
        let k = Arc::new(LoadedKernel { func, kernel: entry.to_string(), registers, local_bytes });
        let mut m = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.entry((key.clone(), entry.to_string())).or_insert(k).clone())
    }

    /// The module of `key`, loaded from `load()`'s CUBIN on first use.
    fn module(
        &self,
        key: &HotKey,
        load: impl FnOnce() -> Result<Arc<crate::cache::Artifact>>,
    ) -> Result<Arc<CudaModule>> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(m.clone());
        }
        let artifact = load()?;
        let module = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(artifact.cubin.clone()))
            .map_err(|e| FaError::cuda("cuModuleLoadData", e))?;
        let mut m = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.entry(key.clone()).or_insert(module).clone())
    }

    /// A value computed once per module `key` and name (`f` runs on a miss).
    pub(crate) fn memo(&self, key: &HotKey, name: &'static str, f: impl FnOnce() -> Result<u64>) -> Result<u64> {
        if let Some(v) = self.memo.lock().unwrap_or_else(|p| p.into_inner()).get(&(key.clone(), name)) {
            return Ok(*v);
        }
        let v = f()?;
        self.memo.lock().unwrap_or_else(|p| p.into_inner()).insert((key.clone(), name), v);
        Ok(v)
    }

    /// Reads the `__constant__ int` (or other 4-byte global) `name` of the
    /// module `key` (a copy and a stream sync: call it once, see [`Self::memo`]).
    pub(crate) fn module_global_i32(
        &self,
        key: &HotKey,
        name: &str,
        load: impl FnOnce() -> Result<Arc<crate::cache::Artifact>>,
    ) -> Result<i32> {
        let module = self.module(key, load)?;
        self.ctx.bind_to_thread().map_err(|e| FaError::cuda("cuCtxSetCurrent", e))?;
        let view = module.get_global(name, &self.stream).map_err(|e| FaError::cuda("cuModuleGetGlobal", e))?;
        if view.len() < 4 {
            return Err(FaError::Unsupported {
                what: format!("module global `{name}` has {} bytes, expected 4", view.len()),
            });
        }
        let mut out = [0u8; 4];
        self.stream.memcpy_dtoh(&view.slice(0..4), &mut out[..]).map_err(|e| FaError::cuda("cuMemcpyDtoHAsync", e))?;
        self.synchronize()?;
        Ok(i32::from_le_bytes(out))
    }

    /// Blocks of `k` (with `block` threads and `smem` dynamic bytes) that fit
    /// on one SM at once (cuOccupancyMaxActiveBlocksPerMultiprocessor).
    pub(crate) fn occupancy(&self, k: &LoadedKernel, block: u32, smem: u32) -> Result<u32> {
        self.ctx.bind_to_thread().map_err(|e| FaError::cuda("cuCtxSetCurrent", e))?;
        let n = k
            .func
            .occupancy_max_active_blocks_per_multiprocessor(block, smem as usize, None)
            .map_err(|e| FaError::cuda("cuOccupancyMaxActiveBlocksPerMultiprocessor", e))?;
        Ok(n.max(1))
    }

    /// A device allocation of at least `bytes` bytes, uninitialised; for
    /// workspaces the kernels fully write before reading.
    pub(crate) fn alloc_workspace(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.alloc_bytes(bytes)
    }

    /// A zero-filled device allocation of at least `bytes` bytes.
    pub(crate) fn alloc_zeroed_workspace(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        let mut buf = self.alloc_bytes(bytes)?;
        self.zero_workspace(&mut buf)?;
        Ok(buf)
    }

    /// Zeroes `buf` in stream order (asynchronous).
    pub(crate) fn zero_workspace(&self, buf: &mut CudaSlice<u8>) -> Result<()> {
        self.stream.memset_zeros(buf).map_err(|e| FaError::cuda("cuMemsetD8Async", e))
    }

    /// Device-to-device copy of `n` bytes (benchmarks).
    pub(crate) fn copy_d2d(&self, src: &CudaSlice<u8>, dst: &mut CudaSlice<u8>, n: usize) -> Result<()> {
        self.stream
            .memcpy_dtod(&src.slice(0..n), &mut dst.slice_mut(0..n))
            .map_err(|e| FaError::cuda("cuMemcpyDtoDAsync", e))
    }

    /// Launches `k` with a single by-value argument `params`.
    pub(crate) fn launch<P: cudarc::driver::DeviceRepr>(
        &self,
        k: &LoadedKernel,
        grid: (u32, u32, u32),
        block: u32,
        smem: u32,
        params: &P,
    ) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| FaError::cuda("cuCtxSetCurrent", e))?;
        let mut args = [params as *const P as *mut std::ffi::c_void];
        // SAFETY: the kernel's only parameter is a `P` by value (FwdParams
        // mirrors the C struct); `args` points at it for the duration of the
        // call, and cuLaunchKernel copies it. Every pointer inside `params`
        // was validated on the host to be a live buffer of this device of
        // the right size, and those buffers are borrowed by the caller
        // until the call returns; later uses are ordered on the same stream.
        unsafe {
            cudarc::driver::result::launch_kernel(
                k.func.cu_function(),
                grid,
                (block, 1, 1),
                smem,
                self.stream.cu_stream(),
                &mut args,
            )
        }
        .map_err(|e| FaError::cuda("cuLaunchKernel", e))
    }

    /// Records a timing event pair around `f`, returns milliseconds.
    pub fn time_ms(&self, mut f: impl FnMut() -> Result<()>) -> Result<f32> {
        let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.ctx.new_event(flags).map_err(|e| FaError::cuda("cuEventCreate", e))?;
        let end = self.ctx.new_event(flags).map_err(|e| FaError::cuda("cuEventCreate", e))?;
        start.record(&self.stream).map_err(|e| FaError::cuda("cuEventRecord", e))?;
        f()?;
        end.record(&self.stream).map_err(|e| FaError::cuda("cuEventRecord", e))?;
        end.synchronize().map_err(|e| FaError::cuda("cuEventSynchronize", e))?;
        start.elapsed_ms(&end).map_err(|e| FaError::cuda("cuEventElapsedTime", e))
    }
}

/// The NVRTC target a cell for `arch` is compiled for on a device of
/// compute capability `cc` (which [`arch_runs_on`] accepts).
///
/// A CUBIN runs only on the major version it was built for, so a portable
/// sm80/sm89 cell is built for the device itself (`sm_90` on an H100,
/// `sm_86` on an A10); arch-specific cells keep their own target.
pub fn device_target(arch: Arch, cc: (u32, u32)) -> String {
    match arch {
        Arch::Sm80 | Arch::Sm89 => format!("sm_{}{}", cc.0, cc.1),
        Arch::Sm90a | Arch::Sm100 => arch.nvrtc_target().to_string(),
    }
}

/// Whether a cell for `arch` runs on compute capability `cc`.
pub fn arch_runs_on(arch: Arch, cc: (u32, u32)) -> bool {
    let v = cc.0 * 10 + cc.1;
    match arch {
        Arch::Sm80 | Arch::Sm89 => v >= arch.compute_capability(),
        Arch::Sm90a => cc == (9, 0),
        // sm_100a code is arch-specific: it loads on 10.0 parts only.
        Arch::Sm100 => cc == (10, 0),
    }
}
