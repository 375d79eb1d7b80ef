//! The CUBIN cache without NVRTC or a GPU: fake compile closures.

use fa_runtime::cache::{decode_entry, encode_entry, Cache, CacheKey, EntryError, Origin};
use fa_runtime::FaError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "fa-runtime-test-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts() -> Vec<String> {
    vec!["--gpu-architecture=sm_90a".into(), "-std=c++17".into()]
}

fn key(src: &str) -> CacheKey {
    CacheKey::new("fa_sm90a_bf16_hd128_gqa1", "sm90a", (13, 0), &opts(), src)
}

#[test]
fn key_is_readable_and_stable() {
    let k = key("source");
    assert_eq!(k, key("source"));
    let s = k.as_str();
    assert!(s.starts_with("fa_sm90a_bf16_hd128_gqa1-sm90a-nvrtc13.0-"), "{s}");
    let hash = s.rsplit('-').next().unwrap();
    assert_eq!(hash.len(), 16);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    // Pinned: a change here invalidates every cache on disk; bump
    // FORMAT_VERSION deliberately instead.
    assert_eq!(k.as_str(), key("source").as_str());
}

#[test]
fn every_component_changes_the_key() {
    let base = CacheKey::new("kern", "sm90a", (13, 0), &opts(), "src");
    let variants = [
        CacheKey::new("kern2", "sm90a", (13, 0), &opts(), "src"),
        CacheKey::new("kern", "sm80", (13, 0), &opts(), "src"),
        CacheKey::new("kern", "sm90a", (13, 1), &opts(), "src"),
        CacheKey::new("kern", "sm90a", (12, 0), &opts(), "src"),
        CacheKey::new("kern", "sm90a", (13, 0), &["--gpu-architecture=sm_90a".to_string()], "src"),
        CacheKey::new("kern", "sm90a", (13, 0), &opts(), "src "),
    ];
    for v in &variants {
        assert_ne!(v, &base);
    }
    // The hash alone also changes (not just the readable prefix).
    let h = |k: &CacheKey| k.as_str().rsplit('-').next().unwrap().to_string();
    let same_prefix_diff_src = CacheKey::new("kern", "sm90a", (13, 0), &opts(), "src2");
    assert_ne!(h(&base), h(&same_prefix_diff_src));
    let diff_opts = CacheKey::new("kern", "sm90a", (13, 0), &["-O3".to_string()], "src");
    assert_ne!(h(&base), h(&diff_opts));
    // Field boundaries matter: moving bytes between options does not collide.
    let a = CacheKey::new("k", "a", (1, 0), &["xy".into(), "z".into()], "s");
    let b = CacheKey::new("k", "a", (1, 0), &["x".into(), "yz".into()], "s");
    assert_ne!(a, b);
}

#[test]
fn entry_roundtrip_and_corruption_detection() {
    let cubin = b"\x7fELF fake cubin bytes".to_vec();
    let e = encode_entry(&cubin, "ptxas log");
    assert_eq!(decode_entry(&e).unwrap(), (cubin.clone(), "ptxas log".to_string()));
    // Truncated anywhere.
    for cut in [0, 10, 59, 60, e.len() - 1] {
        assert!(matches!(decode_entry(&e[..cut]), Err(EntryError::Length { .. })), "cut {cut}");
    }
    // Flipped payload byte.
    let mut bad = e.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(decode_entry(&bad), Err(EntryError::Checksum));
    // Bad magic, bad version.
    let mut bad = e.clone();
    bad[0] = b'X';
    assert_eq!(decode_entry(&bad), Err(EntryError::Magic));
    let mut bad = e.clone();
    bad[8] = 99;
    assert_eq!(decode_entry(&bad), Err(EntryError::Version(99)));
    // Appended garbage is a length error too.
    let mut long = e.clone();
    long.push(0);
    assert!(matches!(decode_entry(&long), Err(EntryError::Length { .. })));
}

#[test]
fn disk_entries_are_reused_across_caches_and_corruption_rebuilds() {
    let dir = scratch("disk");
    let k = key("disk");
    let calls = AtomicUsize::new(0);
    let compile = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok((b"CUBIN-v1".to_vec(), "log".to_string()))
    };
    let c1 = Cache::new(&dir);
    let a = c1.get_or_compile(&k, compile).unwrap();
    assert_eq!(a.origin, Origin::Compiled);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let path = c1.entry_path(&k).unwrap();
    assert!(path.is_file());
    assert!(path.file_name().unwrap().to_str().unwrap().starts_with(k.as_str()));
    // No temp files left behind.
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A fresh cache (another process) reads it from disk.
    let c2 = Cache::new(&dir);
    let a = c2.get_or_compile(&k, compile).unwrap();
    assert_eq!(a.origin, Origin::Disk);
    assert_eq!(a.cubin, b"CUBIN-v1");
    assert_eq!(a.log, "log");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Truncate: detected, rebuilt, rewritten whole.
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 3]).unwrap();
    let c3 = Cache::new(&dir);
    let a = c3.get_or_compile(&k, compile).unwrap();
    assert_eq!(a.origin, Origin::Compiled);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(std::fs::read(&path).unwrap(), full);

    // Corrupt one byte: same.
    let mut bad = full.clone();
    let n = bad.len();
    bad[n - 5] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let c4 = Cache::new(&dir);
    assert_eq!(c4.get_or_compile(&k, compile).unwrap().origin, Origin::Compiled);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(std::fs::read(&path).unwrap(), full);

    // list / clear.
    let l = c4.list().unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].key, k.as_str());
    assert_eq!(l[0].bytes, full.len() as u64);
    assert!(l[0].modified.is_some());
    assert_eq!(c4.dir(), Some(dir.as_path()));
    assert_eq!(c4.clear().unwrap(), 1);
    assert!(c4.list().unwrap().is_empty());
    // Cleared from memory too: the next call compiles again.
    c4.get_or_compile(&k, compile).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_requests_compile_once() {
    let dir = scratch("concurrent");
    let cache = Arc::new(Cache::new(&dir));
    let calls = Arc::new(AtomicUsize::new(0));
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Two keys, interleaved: each compiled exactly once.
                let k = key(if t % 2 == 0 { "even" } else { "odd" });
                let a = cache
                    .get_or_compile(&k, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok((k.as_str().as_bytes().to_vec(), String::new()))
                    })
                    .unwrap();
                assert_eq!(a.cubin, k.as_str().as_bytes());
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_compile_is_not_cached() {
    let cache = Cache::memory_only();
    let k = key("fails");
    let e = cache
        .get_or_compile(&k, || {
            Err(FaError::Compile { kernel: "k".into(), target: "sm_90a".into(), log: "boom".into() })
        })
        .unwrap_err();
    assert!(e.to_string().contains("boom"));
    let a = cache.get_or_compile(&k, || Ok((vec![1, 2, 3], String::new()))).unwrap();
    assert_eq!(a.cubin, vec![1, 2, 3]);
}

#[test]
fn unwritable_folder_falls_back_to_memory() {
    // A folder below a regular file can never be created (even as root).
    let base = scratch("unwritable");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let cache = Cache::new(file.join("cache"));
    assert_eq!(cache.dir(), None);
    assert_eq!(cache.requested_dir(), file.join("cache"));
    let calls = AtomicUsize::new(0);
    let compile = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok((vec![7u8; 8], String::new()))
    };
    let k = key("mem");
    assert_eq!(cache.get_or_compile(&k, compile).unwrap().cubin, vec![7u8; 8]);
    assert_eq!(cache.get_or_compile(&k, compile).unwrap().origin, Origin::Compiled);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(cache.list().unwrap().is_empty());
    assert_eq!(cache.clear().unwrap(), 0);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn folder_that_becomes_unwritable_keeps_working() {
    let dir = scratch("vanishing");
    let cache = Cache::new(&dir);
    // Replace the folder with a file: writes fail, lookups still succeed.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"x").unwrap();
    let a = cache.get_or_compile(&key("v"), || Ok((vec![1], String::new()))).unwrap();
    assert_eq!(a.cubin, vec![1]);
    let _ = std::fs::remove_file(&dir);
}
