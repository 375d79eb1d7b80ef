//! Run-time side of `#[flash_attention]`: NVRTC compilation of a cell's
//! rendered CUDA source, a memory + disk CUBIN cache, devices and tensors,
//! fully validated launches, and a CPU reference.
//!
//! Layers, like cudarc's: [`libs`] finds and loads libnvrtc / libcuda (typed
//! errors instead of cudarc's panics), [`nvrtc`] and [`device`] wrap the
//! checked cudarc calls, and [`Device`], [`Tensor`], [`Kernel`] and the
//! generated launchers are the safe API. `unsafe` lives only in `libs`,
//! `nvrtc`, `device`, `tensor` (byte views of sealed POD types) and
//! `params` (the `DeviceRepr` impl), each block with its invariant.
//!
//! Compiling needs NVRTC only (`fa compile`, CI); running needs the driver.

pub mod bench;
pub mod cache;
pub mod cubin;
pub mod device;
mod error;
mod launch;
pub mod libs;
pub mod nvrtc;
pub mod paged;
pub mod params;
pub mod reference;
pub mod tensor;
pub mod validate;

pub use cache::{Cache, CacheKey, Entry};
pub use cubin::{cubin_info, CubinInfo, PtxasInfo};
pub use device::Device;
pub use error::{FaError, Result};
pub use fa_macros::flash_attention;
pub use fa_spec::KernelSpec;
pub use launch::{cache_key, compile, compile_source_with, get_or_compile, CompiledKernel, ForwardArgs, Kernel};
pub use params::FwdParams;
pub use tensor::{ElemType, Element, Tensor, TensorMut, TensorRef};
pub use validate::{FwdOptions, QkvLayout};

/// Paths the `#[flash_attention]` expansion names; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::launch::{append, backward, forward, BackwardCall, ForwardCall};
    pub use crate::paged::AppendCall;
    pub use fa_spec::{Arch, Dtype};
    pub use float8::{F8E4M3, F8E5M2};
    pub use half::{bf16, f16};
}
