//! NVRTC compilation and CUBIN inspection: needs libnvrtc, never a GPU.
//!
//! These tests do not skip: without NVRTC they fail, saying how to get it.

use fa_runtime::cache::{Cache, Origin};
use fa_runtime::cubin::{cubin_constant_i32, cubin_info, cubin_kernels, parse_ptxas_log};
use fa_runtime::libs::{probe_nvrtc_in, SearchPaths};
use fa_runtime::nvrtc::{compile_cubin, nvrtc_version};
use fa_runtime::{compile_source_with, FaError, KernelSpec};
use fa_spec::{Arch, Dtype};
use std::path::PathBuf;

mod paged_entries;

fn require_nvrtc() {
    if let Err(e) = probe_nvrtc_in(&SearchPaths::from_env()) {
        let relative = std::env::var_os("FA_NVRTC_PATH")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_relative())
            .map(|p| {
                format!(
                    "\nFA_NVRTC_PATH={} is relative; tests run in fa-runtime/, so use an absolute path.",
                    p.display()
                )
            })
            .unwrap_or_default();
        panic!(
            "NVRTC is required for these tests and was not found.\n{e}{relative}\n\
             Run the README's test command (it installs `nvidia-cuda-nvrtc` into .nvrtc/ and sets \
             FA_NVRTC_PATH=$PWD/.nvrtc/nvidia/cu13/lib)."
        );
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fa-runtime-nvrtc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Hermetic test kernel: a local array (stack frame), static shared memory.
const SOURCE: &str = r#"
extern "C" __global__ void probe_kernel(float* o, int n) {
    __shared__ float tile[512];
    float a[64];
    for (int i = 0; i < 64; ++i) a[i] = o[i * n + threadIdx.x];
    float s = 0.0f;
    for (int i = 0; i < 64; ++i) s += a[(i * 7 + n) & 63] * a[i];
    tile[threadIdx.x & 511] = s;
    __syncthreads();
    o[threadIdx.x] = tile[(threadIdx.x + 1) & 511];
}
extern "C" __global__ void second_kernel(int* x) { x[threadIdx.x] += 1; }
"#;

#[test]
fn compiles_to_cubin_and_reads_its_resources() {
    require_nvrtc();
    let (major, _minor) = nvrtc_version().unwrap();
    assert!(major >= 12, "NVRTC {major}");
    for arch in [Arch::Sm80, Arch::Sm90a] {
        let out = compile_cubin(SOURCE, "probe_kernel", arch.nvrtc_target()).unwrap();
        assert_eq!(&out.cubin[..4], b"\x7fELF");
        let mut names = cubin_kernels(&out.cubin).unwrap();
        names.sort();
        assert_eq!(names, vec!["probe_kernel", "second_kernel"]);
        let info = cubin_info(&out.cubin, "probe_kernel").unwrap();
        assert!(info.registers > 0 && info.registers <= 255, "{info:?}");
        // sm90+ sections include 1 KiB of system-reserved shared memory.
        let reserved = if arch == Arch::Sm80 { 0 } else { 1024 };
        assert_eq!(info.shared_bytes, 512 * 4 + reserved, "{info:?}");
        assert!(info.local_bytes >= 64 * 4, "{info:?}");
        // ptxas' own report agrees with the ELF.
        let px = parse_ptxas_log(&out.log, "probe_kernel").expect(&out.log);
        assert_eq!(px.registers, info.registers, "{}", out.log);
        assert_eq!(px.stack_frame_bytes, info.local_bytes, "{}", out.log);
        assert_eq!(px.shared_bytes, 512 * 4, "{}", out.log);
        assert_eq!(px.spill_store_bytes, 0, "{}", out.log);
        assert_eq!(info.param_bytes, Some(12), "float* + int");
        let second = cubin_info(&out.cubin, "second_kernel").unwrap();
        assert_eq!(second.shared_bytes, 0);
        assert_eq!(second.local_bytes, 0);
        assert!(cubin_info(&out.cubin, "missing").is_err());
    }
}

#[test]
fn compile_errors_name_the_kernel_and_carry_the_log() {
    require_nvrtc();
    let e = compile_cubin(
        "extern \"C\" __global__ void k() { undeclared_thing(); }",
        "my_kernel",
        Arch::Sm90a.nvrtc_target(),
    )
    .unwrap_err();
    match &e {
        FaError::Compile { kernel, target, log } => {
            assert_eq!(kernel, "my_kernel");
            assert_eq!(target, "sm_90a");
            assert!(log.contains("undeclared_thing"), "{log}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("my_kernel"));
}

#[test]
fn cubin_info_rejects_garbage() {
    assert!(cubin_info(b"not an elf", "k").is_err());
    assert!(cubin_info(&[0x7f, b'E', b'L', b'F', 2, 1, 0, 0], "k").is_err());
}

#[test]
fn compile_through_the_disk_cache() {
    require_nvrtc();
    let spec = KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::F16).head_dim(64).build().unwrap();
    // A hermetic stand-in with the cell's entry point name.
    let source =
        format!("extern \"C\" __global__ void {}(float* p) {{ p[threadIdx.x] = 1.0f; }}", spec.forward_entry());
    let dir = scratch("cache");
    let c = compile_source_with(&Cache::new(&dir), &spec, &source).unwrap();
    assert_eq!(c.origin, Origin::Compiled);
    assert_eq!(c.entry, spec.forward_entry());
    assert_eq!(c.target, "sm_90a");
    assert!(c.key.starts_with(&format!("{}-sm_90a-nvrtc", spec.kernel_name())), "{}", c.key);
    assert!(c.info.registers > 0);
    assert_eq!(c.spill_bytes(), 0);
    let again = compile_source_with(&Cache::new(&dir), &spec, &source).unwrap();
    assert_eq!(again.origin, Origin::Disk);
    assert_eq!(again.cubin, c.cubin);
    assert_eq!(again.info, c.info);
    assert_eq!(again.ptxas, c.ptxas);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rendered_cells_compile_with_the_fwdparams_abi() {
    require_nvrtc();
    // The kernel takes one FwdParams by value: its parameter block must be
    // exactly the Rust mirror's size.
    let dir = scratch("rendered");
    let cache = Cache::new(&dir);
    for (arch, dtype, hd) in [(Arch::Sm80, Dtype::F16, 64), (Arch::Sm90a, Dtype::Bf16, 128)] {
        let spec = KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd).causal().gqa(4).build().unwrap();
        let source = fa_spec::render(&spec).unwrap();
        let c = compile_source_with(&cache, &spec, &source).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.info.param_bytes, Some(std::mem::size_of::<fa_runtime::FwdParams>() as u32), "{}", c.entry);
        assert!(c.info.registers > 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn paged_cells_carry_decode_merge_and_append_with_their_abi() {
    require_nvrtc();
    // One CUBIN per paged cell: the forward kernel plus the paged entry
    // points, each taking its params struct by value.
    let dir = scratch("paged");
    let cache = Cache::new(&dir);
    let dec = std::mem::size_of::<fa_runtime::paged::PagedDecodeParams>() as u32;
    let app = std::mem::size_of::<fa_runtime::paged::PagedAppendParams>() as u32;
    let cells = [
        KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::Bf16).head_dim(128).causal().gqa(4).paged().build(),
        KernelSpec::builder()
            .arch(Arch::Sm80)
            .dtype(Dtype::F16)
            .head_dim(64)
            .paged()
            .page_size(1)
            .window(32)
            .sink(4)
            .build(),
        KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E4m3).head_dim(128).paged().page_size(256).build(),
        // fp8 hd80: 80-byte rows, no decode kernel (fa_spec::paged_decode).
        KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E5m2).head_dim(80).paged().build(),
    ];
    for spec in cells {
        let spec = spec.unwrap();
        let source = fa_spec::render(&spec).unwrap();
        let c = compile_source_with(&cache, &spec, &source).unwrap_or_else(|e| panic!("{e}"));
        let info = |entry: String| cubin_info(&c.cubin, &entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
        assert_eq!(info(fa_runtime::paged::append_entry(&spec)).param_bytes, Some(app));
        if fa_spec::paged_decode(&spec) {
            for kernel in fa_runtime::paged::DecodeKernel::ALL {
                assert_eq!(info(fa_runtime::paged::decode_entry(&spec, kernel)).param_bytes, Some(dec));
            }
            assert_eq!(info(fa_runtime::paged::merge_entry(&spec)).param_bytes, Some(dec));
        } else {
            for kernel in fa_runtime::paged::DecodeKernel::ALL {
                assert!(cubin_info(&c.cubin, &fa_runtime::paged::decode_entry(&spec, kernel)).is_err());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// CTAs per SM of an sm_90 kernel (228 KiB of shared memory, 64 Ki
/// registers and 2048 threads a SM; registers granted per warp in units of
/// 256), as cuOccupancyMaxActiveBlocksPerMultiprocessor counts them.
/// `shared_bytes`: dynamic plus the CUBIN's static section, which on sm_90
/// includes the 1 KiB the system reserves per CTA (`CubinInfo::shared_bytes`).
fn sm90_ctas_per_sm(threads: u32, registers: u32, shared_bytes: u32) -> u32 {
    let warps = threads.div_ceil(32);
    let by_regs = 65536 / (warps * (registers * 32).div_ceil(256) * 256);
    let by_smem = 233472 / (shared_bytes.div_ceil(128).max(1) * 128);
    by_regs.min(by_smem).min(2048 / threads).min(32)
}

#[test]
fn host_test_entries_are_the_rendered_rings() {
    require_nvrtc();
    // paged_host.rs decides layouts from hand-written occupancies; each must
    // be what its cell compiles to, or those tests pin a card that no build
    // gives.
    let dir = scratch("entries");
    let cache = Cache::new(&dir);
    for (name, spec, kernel, want) in paged_entries::entries() {
        let source = fa_spec::render(&spec).unwrap();
        let c = compile_source_with(&cache, &spec, &source).unwrap_or_else(|e| panic!("{e}"));
        let smem = cubin_constant_i32(&c.cubin, &fa_runtime::paged::decode_smem_symbol(&spec, kernel))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let entry = fa_runtime::paged::decode_entry(&spec, kernel);
        let info = cubin_info(&c.cubin, &entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
        assert_eq!(smem as usize, want.smem_bytes, "{name}: {entry}'s dynamic shared memory");
        let threads = fa_runtime::paged::decode_threads(&spec);
        let ctas = sm90_ctas_per_sm(threads, info.registers, smem as u32 + info.shared_bytes);
        assert_eq!(ctas as usize, want.ctas_per_sm, "{name}: {entry} ({info:?}, {threads} threads)");
        // Not a 4-byte variable: a typed error, not a wrong number.
        assert!(cubin_constant_i32(&c.cubin, &entry).is_err(), "{entry} is a function");
        assert!(cubin_constant_i32(&c.cubin, "no_such_constant").is_err());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
