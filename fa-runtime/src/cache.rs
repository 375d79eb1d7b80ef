//! The CUBIN cache: in memory (one compile per kernel per process, however
//! many threads ask at once) and on disk (one compile per kernel per
//! machine, across processes).
//!
//! Disk layout: one file per kernel, `<dir>/<key>.cubin`, where the key is
//! human-readable: `{kernel_name}-{arch}-nvrtc{major}.{minor}-{hash16}` and
//! `hash16` is the first 16 hex digits of the SHA-256 of the source, the
//! arch, the NVRTC version, the NVRTC options and [`FORMAT_VERSION`].
//!
//! An entry is a header then a payload (the CUBIN, then the compile log):
//!
//! | bytes | field |
//! |------:|-------|
//! | 8 | magic `FACUBIN\0` |
//! | 4 | format version, u32 LE |
//! | 8 | CUBIN length, u64 LE |
//! | 8 | log length, u64 LE |
//! | 32 | SHA-256 of the payload |
//! | … | payload |
//!
//! Entries are written to a temporary file in the same folder, fsynced and
//! renamed into place, so a reader sees a whole entry or none. On read the
//! lengths and checksum are verified: a corrupt or truncated entry is logged
//! (`tracing::warn!`), removed and rebuilt. If the folder cannot be created
//! or written, the cache keeps working in memory and says so once.

use crate::error::{FaError, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// Version of the entry format; part of every key.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"FACUBIN\0";
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 32;
const EXT: &str = "cubin";

/// Everything that identifies a compiled kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// `{kernel}-{arch}-nvrtc{major}.{minor}-{hash16}`.
    pub fn new(kernel: &str, arch: &str, nvrtc: (u32, u32), options: &[String], source: &str) -> CacheKey {
        let mut h = Sha256::new();
        // Each component is length-prefixed so no two inputs collide by
        // shifting bytes between fields.
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(source.as_bytes());
        field(arch.as_bytes());
        field(format!("{}.{}", nvrtc.0, nvrtc.1).as_bytes());
        field(options.join("\u{1f}").as_bytes());
        field(&FORMAT_VERSION.to_le_bytes());
        field(kernel.as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        CacheKey(format!("{kernel}-{arch}-nvrtc{}.{}-{hex}", nvrtc.0, nvrtc.1))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a cached artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled by NVRTC in this process.
    Compiled,
    /// Read from the disk cache.
    Disk,
}

/// A compiled kernel: CUBIN and compile log.
#[derive(Debug)]
pub struct Artifact {
    pub key: CacheKey,
    pub cubin: Vec<u8>,
    pub log: String,
    pub origin: Origin,
}

/// One entry on disk, for `fa cache ls`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: Option<SystemTime>,
}

/// Why a disk entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("bad magic")]
    Magic,
    #[error("format version {0}, expected {FORMAT_VERSION}")]
    Version(u32),
    #[error("truncated: header says {expected} payload bytes, file has {found}")]
    Length { expected: u64, found: u64 },
    #[error("checksum mismatch")]
    Checksum,
}

/// Serialises an entry.
pub fn encode_entry(cubin: &[u8], log: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(cubin);
    h.update(log.as_bytes());
    let sum = h.finalize();
    let mut out = Vec::with_capacity(HEADER_LEN + cubin.len() + log.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(cubin.len() as u64).to_le_bytes());
    out.extend_from_slice(&(log.len() as u64).to_le_bytes());
    out.extend_from_slice(&sum);
    out.extend_from_slice(cubin);
    out.extend_from_slice(log.as_bytes());
    out
}

/// Parses and verifies an entry: `(cubin, log)`.
pub fn decode_entry(data: &[u8]) -> std::result::Result<(Vec<u8>, String), EntryError> {
    if data.len() < HEADER_LEN {
        return Err(EntryError::Length { expected: HEADER_LEN as u64, found: data.len() as u64 });
    }
    if &data[..8] != MAGIC {
        return Err(EntryError::Magic);
    }
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap_or([0; 8]));
    let version = u32::from_le_bytes(data[8..12].try_into().unwrap_or([0; 4]));
    if version != FORMAT_VERSION {
        return Err(EntryError::Version(version));
    }
    let (cubin_len, log_len) = (u64_at(12), u64_at(20));
    let payload = &data[HEADER_LEN..];
    let expected = cubin_len.saturating_add(log_len);
    if payload.len() as u64 != expected {
        return Err(EntryError::Length { expected, found: payload.len() as u64 });
    }
    if Sha256::digest(payload).as_slice() != &data[28..60] {
        return Err(EntryError::Checksum);
    }
    let (cubin, log) = payload.split_at(cubin_len as usize);
    Ok((cubin.to_vec(), String::from_utf8_lossy(log).into_owned()))
}

type Slot = Arc<Mutex<Option<Arc<Artifact>>>>;

/// The two-level CUBIN cache.
#[derive(Debug)]
pub struct Cache {
    /// `None`: memory only (the folder was unusable).
    dir: Option<PathBuf>,
    /// The folder asked for, for messages.
    requested: PathBuf,
    mem: Mutex<HashMap<CacheKey, Slot>>,
    warned_write: AtomicBool,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The default folder: `$FA_CACHE_DIR`, else `$XDG_CACHE_HOME/fa-runtime`,
/// else `~/.cache/fa-runtime`, else a folder under the system temp dir.
pub fn default_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("FA_CACHE_DIR") {
        return d;
    }
    if let Some(x) = var("XDG_CACHE_HOME") {
        return x.join("fa-runtime");
    }
    if let Some(h) = var("HOME") {
        return h.join(".cache").join("fa-runtime");
    }
    std::env::temp_dir().join("fa-runtime-cache")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data that is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cache {
    /// A cache in `dir`, created if needed. An unusable folder gives a
    /// memory-only cache and a warning, never an error.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        let requested: PathBuf = dir.into();
        let dir = match fs::create_dir_all(&requested) {
            Ok(()) => Some(requested.clone()),
            Err(e) => {
                tracing::warn!(
                    dir = %requested.display(),
                    error = %e,
                    "fa-runtime: cannot create the kernel cache folder; caching in memory only (set FA_CACHE_DIR to a writable folder)"
                );
                None
            }
        };
        Cache { dir, requested, mem: Mutex::new(HashMap::new()), warned_write: AtomicBool::new(false) }
    }

    /// A cache that never touches the disk.
    pub fn memory_only() -> Cache {
        Cache {
            dir: None,
            requested: PathBuf::new(),
            mem: Mutex::new(HashMap::new()),
            warned_write: AtomicBool::new(false),
        }
    }

    /// The process-wide cache in [`default_dir`].
    pub fn global() -> &'static Cache {
        static G: OnceLock<Cache> = OnceLock::new();
        G.get_or_init(|| Cache::new(default_dir()))
    }

    /// The folder in use, or `None` when caching in memory only.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The folder that was asked for (even if unusable).
    pub fn requested_dir(&self) -> &Path {
        &self.requested
    }

    /// Path of the entry for `key` (whether or not it exists).
    pub fn entry_path(&self, key: &CacheKey) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{}.{EXT}", key.0)))
    }

    /// Entries on disk, sorted by key.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let Some(dir) = &self.dir else { return Ok(Vec::new()) };
        let rd = fs::read_dir(dir).map_err(|e| FaError::CacheIo { op: "listing", path: dir.clone(), source: e })?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some(EXT) {
                continue;
            }
            let Some(key) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            let meta = e.metadata().ok();
            out.push(Entry {
                key,
                path,
                bytes: meta.as_ref().map_or(0, |m| m.len()),
                modified: meta.and_then(|m| m.modified().ok()),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Removes every entry (and leftover temporary files) from disk and
    /// memory; returns how many entries were removed.
    pub fn clear(&self) -> Result<usize> {
        lock(&self.mem).clear();
        let Some(dir) = &self.dir else { return Ok(0) };
        let rd = fs::read_dir(dir).map_err(|e| FaError::CacheIo { op: "listing", path: dir.clone(), source: e })?;
        let mut n = 0;
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let is_entry = path.extension().and_then(|x| x.to_str()) == Some(EXT);
            let is_tmp = name.contains(&format!(".{EXT}.tmp."));
            if is_entry || is_tmp {
                fs::remove_file(&path).map_err(|e| FaError::CacheIo {
                    op: "removing",
                    path: path.clone(),
                    source: e,
                })?;
                if is_entry {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Reads the disk entry for `key`: `Ok(None)` when absent; a corrupt
    /// entry is reported as `Err` (and left for the caller to replace).
    pub fn read_entry(&self, key: &CacheKey) -> std::result::Result<Option<(Vec<u8>, String)>, EntryError> {
        let Some(path) = self.entry_path(key) else { return Ok(None) };
        match fs::read(&path) {
            Ok(data) => decode_entry(&data).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Writes the entry for `key` atomically (temp file, fsync, rename).
    pub fn write_entry(&self, key: &CacheKey, cubin: &[u8], log: &str) -> Result<()> {
        let (Some(dir), Some(path)) = (&self.dir, self.entry_path(key)) else { return Ok(()) };
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{}.{EXT}.tmp.{}.{n}", key.0, std::process::id()));
        fn io(op: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> FaError {
            let path = p.to_path_buf();
            move |source| FaError::CacheIo { op, path, source }
        }
        let result = (|| {
            let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
            f.write_all(&encode_entry(cubin, log)).map_err(io("writing", &tmp))?;
            f.sync_all().map_err(io("syncing", &tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io("renaming into", &path))?;
            // Make the rename itself durable; best effort.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The artifact for `key`: from memory, else from disk, else by calling
    /// `compile` (which returns the CUBIN and the log) and storing the
    /// result. Concurrent callers with the same key wait for the first one;
    /// `compile` runs at most once per key per cache unless it fails.
    pub fn get_or_compile(
        &self,
        key: &CacheKey,
        compile: impl FnOnce() -> Result<(Vec<u8>, String)>,
    ) -> Result<Arc<Artifact>> {
        let slot: Slot = {
            let mut m = lock(&self.mem);
            m.entry(key.clone()).or_default().clone()
        };
        // The global map lock is released; only this key's slot is held
        // while reading the disk or compiling.
        let mut guard = lock(&slot);
        if let Some(a) = guard.as_ref() {
            return Ok(a.clone());
        }
        match self.read_entry(key) {
            Ok(Some((cubin, log))) => {
                let a = Arc::new(Artifact { key: key.clone(), cubin, log, origin: Origin::Disk });
                *guard = Some(a.clone());
                return Ok(a);
            }
            Ok(None) => {}
            Err(why) => {
                let path = self.entry_path(key).unwrap_or_default();
                tracing::warn!(path = %path.display(), reason = %why, "fa-runtime: corrupt kernel cache entry; rebuilding it");
                let _ = fs::remove_file(&path);
            }
        }
        let (cubin, log) = compile()?;
        if let Err(e) = self.write_entry(key, &cubin, &log) {
            if !self.warned_write.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "fa-runtime: cannot write the kernel cache; caching in memory only");
            }
        }
        let a = Arc::new(Artifact { key: key.clone(), cubin, log, origin: Origin::Compiled });
        *guard = Some(a.clone());
        Ok(a)
    }
}
