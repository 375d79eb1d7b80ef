//! Finding and loading libnvrtc and libcuda before cudarc touches them.
//!
//! cudarc's dynamic loading panics when a library is missing, so the runtime
//! probes first: it `dlopen`s the library itself and keeps it loaded for the
//! life of the process. cudarc later `dlopen`s the plain sonames
//! (`libnvrtc.so.13`, `libcuda.so.1`, …); the dynamic loader answers those
//! with the already-loaded object whose `DT_SONAME` matches, so cudarc uses
//! the very file found here. (One caveat: cudarc tries the unversioned
//! `libnvrtc.so` first; if a *different* NVRTC is on the loader's search path
//! under that name, cudarc would pick that one.)
//!
//! The search order for NVRTC is:
//! 1. `$FA_NVRTC_PATH`: a file, or a folder holding `libnvrtc.so.*` (also the
//!    pip layout below it: `nvidia/cu13/lib`, `nvidia/cuda_nvrtc/lib`). When
//!    set, nothing else is searched, so a wrong value is reported, not hidden;
//! 2. `$CUDA_HOME` and `$CUDA_PATH` (`lib64`, `lib`);
//! 3. the `nvidia-cuda-nvrtc` pip package in common Python prefixes
//!    (`$VIRTUAL_ENV`, `~/.local`, `/usr/local`, `/usr`, `/opt/*/.venv`,
//!    `~/.pyenv/versions/*`);
//! 4. the plain sonames `libnvrtc.so.13`, `libnvrtc.so.12`, `libnvrtc.so`
//!    through the loader's own search (`LD_LIBRARY_PATH`, ldconfig).

use crate::error::{FaError, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The sonames NVRTC is tried under, newest first.
pub const NVRTC_SONAMES: [&str; 3] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];
/// The sonames of the driver library.
pub const CUDA_SONAMES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

/// Hint shown when NVRTC is not found.
pub const NVRTC_HINT: &str = "install NVRTC with `pip install nvidia-cuda-nvrtc` (or the CUDA toolkit) \
     and/or set FA_NVRTC_PATH to the file or its folder (e.g. .../site-packages/nvidia/cu13/lib)";
/// Hint shown when the driver is not found.
pub const CUDA_HINT: &str = "install the NVIDIA driver (it provides libcuda.so.1); \
     compiling kernels works without it, running them does not";

/// Where to look, as plain data so tests can point it anywhere without
/// touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct SearchPaths {
    /// `$FA_NVRTC_PATH`: when set, the only place searched.
    pub explicit: Option<PathBuf>,
    /// Toolkit roots (`$CUDA_HOME`, `$CUDA_PATH`).
    pub toolkit_roots: Vec<PathBuf>,
    /// Python `site-packages` / `dist-packages` folders.
    pub site_packages: Vec<PathBuf>,
    /// Whether to finish with the plain sonames (the loader's own search).
    pub sonames: bool,
}

/// One thing to try to `dlopen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A file that exists.
    File(PathBuf),
    /// A bare soname for the dynamic loader.
    Soname(&'static str),
}

impl Candidate {
    fn describe(&self) -> String {
        match self {
            Candidate::File(p) => p.display().to_string(),
            Candidate::Soname(s) => format!("{s} (loader search path)"),
        }
    }
}

/// Sub-folders of a pip prefix or of `FA_NVRTC_PATH` that hold NVRTC.
const PIP_NVRTC_DIRS: [&str; 3] = ["nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib"];

impl SearchPaths {
    /// The search paths from the process environment.
    pub fn from_env() -> SearchPaths {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let explicit = var("FA_NVRTC_PATH");
        let toolkit_roots = ["CUDA_HOME", "CUDA_PATH"].iter().filter_map(|k| var(k)).collect();
        let mut prefixes: Vec<PathBuf> = Vec::new();
        if let Some(v) = var("VIRTUAL_ENV") {
            prefixes.push(v);
        }
        if let Some(v) = var("CONDA_PREFIX") {
            prefixes.push(v);
        }
        let home = var("HOME");
        if let Some(h) = &home {
            prefixes.push(h.join(".local"));
            prefixes.extend(subdirs(&h.join(".pyenv/versions")));
        }
        prefixes.push(PathBuf::from("/usr/local"));
        prefixes.push(PathBuf::from("/usr"));
        for opt in subdirs(Path::new("/opt")) {
            prefixes.push(opt.join(".venv"));
            prefixes.push(opt.clone());
        }
        let mut site_packages = Vec::new();
        for p in &prefixes {
            site_packages.extend(python_site_dirs(p));
        }
        site_packages.push(PathBuf::from("/usr/lib/python3/dist-packages"));
        SearchPaths { explicit, toolkit_roots, site_packages, sonames: true }
    }

    /// Every NVRTC candidate in search order (files only if they exist).
    pub fn nvrtc_candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        let push_dir = |dir: &Path, out: &mut Vec<Candidate>| {
            for name in NVRTC_SONAMES {
                let f = dir.join(name);
                if f.is_file() {
                    out.push(Candidate::File(f));
                }
            }
        };
        if let Some(e) = &self.explicit {
            if e.is_file() {
                out.push(Candidate::File(e.clone()));
            } else if e.is_dir() {
                push_dir(e, &mut out);
                for sub in PIP_NVRTC_DIRS {
                    push_dir(&e.join(sub), &mut out);
                }
            }
            return out;
        }
        for root in &self.toolkit_roots {
            push_dir(&root.join("lib64"), &mut out);
            push_dir(&root.join("lib"), &mut out);
        }
        for site in &self.site_packages {
            for sub in PIP_NVRTC_DIRS {
                push_dir(&site.join(sub), &mut out);
            }
        }
        if self.sonames {
            out.extend(NVRTC_SONAMES.iter().map(|s| Candidate::Soname(s)));
        }
        out
    }

    /// What was searched, for the error message.
    pub fn describe_nvrtc_search(&self) -> Vec<String> {
        if let Some(e) = &self.explicit {
            return vec![format!("FA_NVRTC_PATH={} (nothing else is searched while it is set)", e.display())];
        }
        let mut s: Vec<String> = Vec::new();
        for r in &self.toolkit_roots {
            s.push(format!("{}/{{lib64,lib}}", r.display()));
        }
        if !self.site_packages.is_empty() {
            s.push(format!("nvidia-cuda-nvrtc in {} Python site folders", self.site_packages.len()));
        }
        if self.sonames {
            s.push(format!("{} (loader search path)", NVRTC_SONAMES.join(", ")));
        }
        s
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

/// `prefix/lib/python3*/{site,dist}-packages` that exist.
fn python_site_dirs(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in subdirs(&prefix.join("lib")) {
        let is_py3 = d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python3"));
        if is_py3 {
            for s in ["site-packages", "dist-packages"] {
                let p = d.join(s);
                if p.is_dir() {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// A library loaded (and kept loaded) by the runtime.
#[derive(Debug)]
pub struct LoadedLib {
    /// What was loaded: a path or a soname.
    pub origin: String,
    _lib: libloading::Library,
}

/// Tries `candidates` in order; the first that loads and exports `symbol` wins.
pub fn load_first(
    lib: &'static str,
    candidates: &[Candidate],
    symbol: &str,
    searched: Vec<String>,
    hint: &str,
) -> Result<LoadedLib> {
    let mut failures: Vec<String> = Vec::new();
    for c in candidates {
        let target: std::ffi::OsString = match c {
            Candidate::File(p) => p.clone().into_os_string(),
            Candidate::Soname(s) => (*s).into(),
        };
        // SAFETY: loading a shared library runs its initialisers. The
        // candidates are NVIDIA's NVRTC / driver libraries (by name or by the
        // user's explicit path), whose initialisers have no preconditions.
        match unsafe { libloading::Library::new(&target) } {
            Ok(l) => {
                // SAFETY: only the presence of the symbol is checked; the
                // pointer is not called or dereferenced.
                let has = unsafe { l.get::<unsafe extern "C" fn()>(symbol.as_bytes()) }.is_ok();
                if has {
                    return Ok(LoadedLib { origin: c.describe(), _lib: l });
                }
                failures.push(format!("{} (no symbol {symbol})", c.describe()));
            }
            Err(e) => {
                if let Candidate::File(_) = c {
                    failures.push(format!("{} ({e})", c.describe()));
                }
            }
        }
    }
    let mut searched = searched;
    searched.extend(failures.into_iter().map(|f| format!("tried {f}")));
    Err(FaError::LibraryNotFound { lib, searched, hint: hint.to_string() })
}

/// Probes NVRTC with explicit search paths (no global state).
pub fn probe_nvrtc_in(paths: &SearchPaths) -> Result<LoadedLib> {
    let cands = paths.nvrtc_candidates();
    load_first("libnvrtc (NVRTC)", &cands, "nvrtcVersion", paths.describe_nvrtc_search(), NVRTC_HINT)
}

static NVRTC: OnceLock<std::result::Result<LoadedLib, (Vec<String>, String)>> = OnceLock::new();
static CUDA: OnceLock<std::result::Result<LoadedLib, (Vec<String>, String)>> = OnceLock::new();

fn cached(
    cell: &'static OnceLock<std::result::Result<LoadedLib, (Vec<String>, String)>>,
    lib: &'static str,
    f: impl FnOnce() -> Result<LoadedLib>,
) -> Result<&'static LoadedLib> {
    let r = cell.get_or_init(|| match f() {
        Ok(l) => Ok(l),
        Err(FaError::LibraryNotFound { searched, hint, .. }) => Err((searched, hint)),
        Err(other) => Err((vec![], other.to_string())),
    });
    r.as_ref().map_err(|(searched, hint)| FaError::LibraryNotFound {
        lib,
        searched: searched.clone(),
        hint: hint.clone(),
    })
}

/// Makes sure NVRTC is loaded (searching per [`SearchPaths::from_env`]) so
/// that cudarc's `nvrtc` module can be called without panicking.
pub fn ensure_nvrtc() -> Result<&'static LoadedLib> {
    let l = cached(&NVRTC, "libnvrtc (NVRTC)", || probe_nvrtc_in(&SearchPaths::from_env()))?;
    // SAFETY: `is_culib_present` only dlopens the candidate names and drops
    // the handles; it has no other effect and cannot panic.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(FaError::LibraryNotFound {
            lib: "libnvrtc (NVRTC)",
            searched: vec![format!("loaded {} but cudarc could not resolve it by soname", l.origin)],
            hint: "the file's soname must be libnvrtc.so.13 or libnvrtc.so.12; point FA_NVRTC_PATH at the pip package's lib folder".into(),
        });
    }
    Ok(l)
}

/// Makes sure the driver library is loaded so that cudarc's `driver` module
/// can be called without panicking.
pub fn ensure_cuda() -> Result<&'static LoadedLib> {
    let l = cached(&CUDA, "libcuda (NVIDIA driver)", || {
        let cands: Vec<Candidate> = CUDA_SONAMES.iter().map(|s| Candidate::Soname(s)).collect();
        let searched = vec![format!("{} (loader search path)", CUDA_SONAMES.join(", "))];
        load_first("libcuda (NVIDIA driver)", &cands, "cuInit", searched, CUDA_HINT)
    })?;
    // SAFETY: as in `ensure_nvrtc`.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(FaError::LibraryNotFound {
            lib: "libcuda (NVIDIA driver)",
            searched: vec![format!("loaded {} but cudarc could not resolve it by soname", l.origin)],
            hint: CUDA_HINT.into(),
        });
    }
    Ok(l)
}
