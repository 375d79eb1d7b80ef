//! The one error type of the runtime. Every message says what went wrong and
//! what to do about it; library code returns these and never panics on user
//! input.

use fa_spec::Arch;
use std::path::PathBuf;

/// Everything that can go wrong between a cell and a finished launch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaError {
    /// A shared library (NVRTC or the CUDA driver) could not be loaded.
    #[error("could not load {lib}: searched {}; {hint}", format_searched(searched))]
    LibraryNotFound { lib: &'static str, searched: Vec<String>, hint: String },

    /// No usable CUDA device at the requested ordinal.
    #[error("no CUDA device {ordinal}: {detail}; check `nvidia-smi` and CUDA_VISIBLE_DEVICES")]
    NoDevice { ordinal: usize, detail: String },

    /// The cell's arch cannot run on this device.
    #[error(
        "kernel `{kernel}` is built for {arch} (compute capability {}), but device {device_ordinal} ({device_name}) is compute capability {}.{}: {}",
        arch_cc_text(*arch), device_cc.0, device_cc.1, arch_hint(*arch, *device_cc)
    )]
    ArchUnsupported { kernel: String, arch: Arch, device_ordinal: usize, device_name: String, device_cc: (u32, u32) },

    /// NVRTC rejected the rendered source: a bug in the kernel templates.
    #[error("NVRTC failed to compile `{kernel}` for {target}; this is a bug in the kernel templates, please report it with this log:\n{log}")]
    Compile { kernel: String, target: String, log: String },

    /// A tensor argument has the wrong shape (or rank).
    #[error("argument `{arg}`: expected shape {expected}, found {found}")]
    Shape { arg: &'static str, expected: String, found: String },

    /// A tensor argument has the wrong element type.
    #[error("argument `{arg}`: expected element type {expected}, found {found}")]
    Dtype { arg: &'static str, expected: &'static str, found: &'static str },

    /// A tensor lives on another device than the one launching.
    #[error("argument `{arg}` lives on device {found} but the launch is on device {expected}: copy it to device {expected} first")]
    WrongDevice { arg: &'static str, expected: usize, found: usize },

    /// An option or scalar argument is missing or out of range.
    #[error("argument `{arg}`: {message}")]
    Argument { arg: &'static str, message: String },

    /// A CUDA driver or NVRTC call failed.
    #[error("CUDA call `{call}` failed with {code}: {message}")]
    Cuda { call: &'static str, code: i32, message: String },

    /// The on-disk kernel cache could not be read or written.
    #[error("kernel cache: {op} `{}` failed: {source}; set FA_CACHE_DIR to a writable folder", path.display())]
    CacheIo {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The runtime does not implement this (yet).
    #[error("unsupported: {what}")]
    Unsupported { what: String },

    /// Rendering the CUDA source of a cell failed (a template bug).
    #[error(transparent)]
    Render(#[from] fa_spec::RenderError),

    /// A cell built at run time broke whitelist rules (same text as the macro's errors).
    #[error(transparent)]
    Spec(#[from] fa_spec::SpecErrors),
}

/// `Result` with [`FaError`].
pub type Result<T, E = FaError> = std::result::Result<T, E>;

fn format_searched(s: &[String]) -> String {
    if s.is_empty() {
        "nothing".to_string()
    } else {
        s.join(", ")
    }
}

fn arch_cc_text(arch: Arch) -> String {
    let cc = arch.compute_capability();
    match arch {
        Arch::Sm80 | Arch::Sm89 => format!("{}.{} or newer", cc / 10, cc % 10),
        Arch::Sm90a => "exactly 9.0".to_string(),
        Arch::Sm100 => "exactly 10.0".to_string(),
    }
}

fn arch_hint(arch: Arch, device_cc: (u32, u32)) -> String {
    let suggestion = match device_cc {
        (9, 0) => Some(Arch::Sm90a),
        (10, _) => Some(Arch::Sm100),
        (8, 9) => Some(Arch::Sm89),
        (8, _) => Some(Arch::Sm80),
        (major, _) if major > 10 => Some(Arch::Sm89),
        (9, _) => Some(Arch::Sm89),
        _ => None,
    };
    match suggestion {
        Some(s) if s != arch => format!("use a cell with `arch = {s}` on this device"),
        _ => "this device is too old for every cell on the whitelist (sm80 needs compute capability 8.0)".to_string(),
    }
}

impl FaError {
    pub(crate) fn cuda(call: &'static str, e: cudarc::driver::DriverError) -> FaError {
        let code = e.0 as i32;
        let message = match (e.error_name(), e.error_string()) {
            (Ok(n), Ok(s)) => format!("{} ({})", n.to_string_lossy(), s.to_string_lossy()),
            _ => format!("{:?}", e.0),
        };
        FaError::Cuda { call, code, message }
    }

    pub(crate) fn shape(arg: &'static str, expected: impl Into<String>, found: &[usize]) -> FaError {
        FaError::Shape { arg, expected: expected.into(), found: format!("{found:?}") }
    }
}
