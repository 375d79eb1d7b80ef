//! NVRTC: rendered CUDA source → CUBIN for one arch. Needs libnvrtc only,
//! never the driver, so CI can compile every cell without a GPU.

use crate::error::{FaError, Result};
use crate::libs;
use cudarc::nvrtc::{result as nvrtc_result, sys as nvrtc_sys};
use std::ffi::{CStr, CString};

/// NVRTC options besides `--gpu-architecture`, part of every cache key.
///
/// No `--use_fast_math`: the kernels already use `ex2.approx` / `lg2.approx`
/// through inline PTX where they want them, and fast-math would silently
/// change everything else (division, denormal flushing, `tanhf`), which the
/// LSE tolerance of the contract does not allow for.
/// `--ptxas-options=-v` makes ptxas report registers and spills in the log.
pub const NVRTC_OPTIONS: [&str; 3] = ["-std=c++17", "-default-device", "--ptxas-options=-v"];

/// The full option list for an NVRTC target such as `sm_90a`.
pub fn nvrtc_options(target: &str) -> Vec<String> {
    let mut v = vec![format!("--gpu-architecture={target}")];
    v.extend(NVRTC_OPTIONS.iter().map(|s| s.to_string()));
    v
}

/// The loaded NVRTC's version (major, minor); loads NVRTC if needed.
pub fn nvrtc_version() -> Result<(u32, u32)> {
    libs::ensure_nvrtc()?;
    let (mut major, mut minor) = (0i32, 0i32);
    // SAFETY: NVRTC is loaded (ensure_nvrtc) so cudarc's lazy symbol lookup
    // succeeds; both out-pointers are valid for writes.
    let r = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
    check("nvrtcVersion", r)?;
    Ok((major as u32, minor as u32))
}

fn nvrtc_error_text(r: nvrtc_sys::nvrtcResult) -> String {
    // SAFETY: nvrtcGetErrorString returns a pointer to a static C string
    // (or null), valid for the life of the library, which is never unloaded.
    unsafe {
        let p = nvrtc_sys::nvrtcGetErrorString(r);
        if p.is_null() {
            format!("{r:?}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

fn check(call: &'static str, r: nvrtc_sys::nvrtcResult) -> Result<()> {
    match r {
        nvrtc_sys::nvrtcResult::NVRTC_SUCCESS => Ok(()),
        other => Err(FaError::Cuda { call, code: other as i32, message: nvrtc_error_text(other) }),
    }
}

/// Output of one NVRTC run.
#[derive(Debug, Clone)]
pub struct CompileOutput {
    pub cubin: Vec<u8>,
    /// NVRTC + ptxas log (ptxas `-v` lines with registers and spills).
    pub log: String,
}

/// An NVRTC program handle, destroyed on drop.
struct Program(nvrtc_sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: self.0 came from a successful nvrtcCreateProgram and is
        // destroyed exactly once, here.
        let _ = unsafe { nvrtc_result::destroy_program(self.0) };
    }
}

fn log_of(prog: &Program) -> String {
    // SAFETY: prog holds a live program.
    match unsafe { nvrtc_result::get_program_log(prog.0) } {
        Ok(chars) => {
            let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
            String::from_utf8_lossy(&bytes).trim_end().to_string()
        }
        Err(e) => format!("(could not read the NVRTC log: {e:?})"),
    }
}

/// Compiles `source` to a CUBIN for `target` (`sm_80`, `sm_90a`, …, see
/// [`crate::device::device_target`]). `kernel` names the kernel in errors
/// and is NVRTC's program name.
pub fn compile_cubin(source: &str, kernel: &str, target: &str) -> Result<CompileOutput> {
    libs::ensure_nvrtc()?;
    let target = target.to_string();
    let src = CString::new(source).map_err(|_| FaError::Compile {
        kernel: kernel.into(),
        target: target.clone(),
        log: "the source contains a NUL byte".into(),
    })?;
    let name = CString::new(format!("{kernel}.cu")).unwrap_or_else(|_| CString::new("kernel.cu").unwrap());
    let prog = nvrtc_result::create_program(&src, Some(&name)).map_err(|e| FaError::Cuda {
        call: "nvrtcCreateProgram",
        code: e.0 as i32,
        message: nvrtc_error_text(e.0),
    })?;
    let prog = Program(prog);
    let opts = nvrtc_options(&target);
    // SAFETY: prog is live; the options are NUL-free ASCII.
    let compiled = unsafe { nvrtc_result::compile_program(prog.0, &opts) };
    let log = log_of(&prog);
    if let Err(e) = compiled {
        let log = if log.is_empty() { nvrtc_error_text(e.0) } else { log };
        return Err(FaError::Compile { kernel: kernel.into(), target, log });
    }
    let mut size = 0usize;
    // SAFETY: prog is live and compiled; size is a valid out-pointer.
    check("nvrtcGetCUBINSize", unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog.0, &mut size) })?;
    if size == 0 {
        return Err(FaError::Compile {
            kernel: kernel.into(),
            target,
            log: format!("NVRTC produced no CUBIN (was a virtual arch requested?)\n{log}"),
        });
    }
    let mut cubin = vec![0u8; size];
    // SAFETY: `cubin` has exactly the `size` bytes NVRTC reported.
    check("nvrtcGetCUBIN", unsafe { nvrtc_sys::nvrtcGetCUBIN(prog.0, cubin.as_mut_ptr().cast()) })?;
    Ok(CompileOutput { cubin, log })
}
