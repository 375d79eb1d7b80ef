//! Resource usage of a kernel read from its CUBIN (an ELF file), with no
//! device and no driver.
//!
//! NVIDIA's ELF keeps per-function attributes in the `.nv.info` section (and
//! per-kernel ones in `.nv.info.<kernel>`) as a list of records:
//! `u8 format, u8 attribute, u16 value-or-size`, followed, for format
//! `EIFMT_SVAL` (4), by `size` bytes. The attributes used here carry a `u32`
//! symbol index then a `u32` value:
//! - `EIATTR_REGCOUNT` (0x2f): registers per thread;
//! - `EIATTR_FRAME_SIZE` (0x11): the per-thread stack frame, i.e. local
//!   memory (register spills and local arrays);
//! - `EIATTR_MAX_STACK_SIZE` (0x23) / `EIATTR_MIN_STACK_SIZE` (0x12).
//!
//! `EIATTR_CBANK_PARAM_SIZE` (0x19, format `EIFMT_HVAL`: the value is the
//! u16 itself) in `.nv.info.<kernel>` is the size of the kernel's parameters,
//! which checks the `FwdParams` ABI without a GPU.
//!
//! Static shared memory is the size of the `.nv.shared.<kernel>` section.
//! As a fallback for the register count, the top byte of `sh_info` of
//! `.text.<kernel>` holds it as well.
//!
//! Spill stores / loads in bytes are not in the ELF; ptxas reports them in
//! the compile log (the runtime compiles with `--ptxas-options=-v`), see
//! [`parse_ptxas_log`].

const EIFMT_HVAL: u8 = 0x03;
const EIFMT_SVAL: u8 = 0x04;
const EIATTR_CBANK_PARAM_SIZE: u8 = 0x19;
const EIATTR_FRAME_SIZE: u8 = 0x11;
const EIATTR_MIN_STACK_SIZE: u8 = 0x12;
const EIATTR_MAX_STACK_SIZE: u8 = 0x23;
const EIATTR_REGCOUNT: u8 = 0x2f;

/// What a CUBIN says about one kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CubinInfo {
    /// Registers per thread.
    pub registers: u32,
    /// Per-thread stack frame (local memory) in bytes: spills and local arrays.
    pub local_bytes: u32,
    /// Largest per-thread stack including callees.
    pub max_stack_bytes: u32,
    /// Size of the kernel's static shared-memory section. On sm90+ it
    /// includes 1 KiB the system reserves per block (ptxas' `smem` figure,
    /// [`PtxasInfo::shared_bytes`], does not). Dynamic shared memory is extra.
    pub shared_bytes: u32,
    /// Total size of the kernel's parameters in bytes, when recorded.
    pub param_bytes: Option<u32>,
}

/// What ptxas said about one kernel (from the `-v` log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PtxasInfo {
    pub registers: u32,
    pub stack_frame_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    /// Static shared memory declared by the kernel.
    pub shared_bytes: u32,
}

/// Why a CUBIN could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable CUBIN: {0}")]
pub struct CubinError(pub String);

struct Elf<'a> {
    data: &'a [u8],
    sections: Vec<Section>,
    shstr: Section,
}

#[derive(Debug, Clone, Copy)]
struct Section {
    name: u32,
    kind: u32,
    info: u32,
    offset: u64,
    size: u64,
    entsize: u64,
    link: u32,
}

fn rd<const N: usize>(d: &[u8], off: usize) -> Result<[u8; N], CubinError> {
    d.get(off..off + N).and_then(|s| s.try_into().ok()).ok_or_else(|| CubinError(format!("truncated at byte {off}")))
}
fn u16_at(d: &[u8], off: usize) -> Result<u16, CubinError> {
    rd::<2>(d, off).map(u16::from_le_bytes)
}
fn u32_at(d: &[u8], off: usize) -> Result<u32, CubinError> {
    rd::<4>(d, off).map(u32::from_le_bytes)
}
fn u64_at(d: &[u8], off: usize) -> Result<u64, CubinError> {
    rd::<8>(d, off).map(u64::from_le_bytes)
}

impl<'a> Elf<'a> {
    fn parse(data: &'a [u8]) -> Result<Elf<'a>, CubinError> {
        if data.len() < 64 || &data[..4] != b"\x7fELF" {
            return Err(CubinError("missing ELF magic".into()));
        }
        if data[4] != 2 || data[5] != 1 {
            return Err(CubinError("not a 64-bit little-endian ELF".into()));
        }
        let shoff = u64_at(data, 0x28)? as usize;
        let shentsize = u16_at(data, 0x3a)? as usize;
        let shnum = u16_at(data, 0x3c)? as usize;
        let shstrndx = u16_at(data, 0x3e)? as usize;
        if shentsize < 64 {
            return Err(CubinError(format!("section header size {shentsize}")));
        }
        let mut sections = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let b = shoff + i * shentsize;
            sections.push(Section {
                name: u32_at(data, b)?,
                kind: u32_at(data, b + 4)?,
                offset: u64_at(data, b + 0x18)?,
                size: u64_at(data, b + 0x20)?,
                link: u32_at(data, b + 0x28)?,
                info: u32_at(data, b + 0x2c)?,
                entsize: u64_at(data, b + 0x38)?,
            });
        }
        let shstr = *sections.get(shstrndx).ok_or_else(|| CubinError("no section name table".into()))?;
        Ok(Elf { data, sections, shstr })
    }

    fn bytes(&self, s: &Section) -> Result<&'a [u8], CubinError> {
        const SHT_NOBITS: u32 = 8;
        if s.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        let (o, n) = (s.offset as usize, s.size as usize);
        self.data.get(o..o.saturating_add(n)).ok_or_else(|| CubinError("section past the end of the file".into()))
    }

    fn str_at(&self, table: &Section, off: u32) -> Result<&'a str, CubinError> {
        let t = self.bytes(table)?;
        let s = t.get(off as usize..).ok_or_else(|| CubinError("string offset out of range".into()))?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).map_err(|_| CubinError("non-UTF-8 name".into()))
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| self.str_at(&self.shstr, s.name).ok() == Some(name))
    }

    /// `.symtab` and the size of its entries (ELF64 `Sym`: 24 bytes).
    fn symtab(&self) -> Option<(&Section, usize)> {
        const SHT_SYMTAB: u32 = 2;
        let symtab = self.sections.iter().find(|s| s.kind == SHT_SYMTAB)?;
        Some((symtab, if symtab.entsize == 0 { 24 } else { symtab.entsize as usize }))
    }

    /// Index of the symbol called `name` in `.symtab`.
    fn symbol_index(&self, name: &str) -> Result<Option<u32>, CubinError> {
        let Some((symtab, ent)) = self.symtab() else { return Ok(None) };
        let strtab = *self.sections.get(symtab.link as usize).ok_or_else(|| CubinError("bad symtab link".into()))?;
        let data = self.bytes(symtab)?;
        for i in 0..data.len() / ent {
            let n = u32_at(data, i * ent)?;
            if self.str_at(&strtab, n)? == name {
                return Ok(Some(i as u32));
            }
        }
        Ok(None)
    }
}

impl Elf<'_> {
    /// The initial bytes of the data symbol `name` (a `__constant__` or
    /// `__device__` variable with an initialiser): `st_size` bytes at
    /// `st_value` in the section `st_shndx` names.
    fn symbol_data(&self, name: &str) -> Result<&[u8], CubinError> {
        let i = self.symbol_index(name)?.ok_or_else(|| CubinError(format!("no symbol `{name}`")))?;
        let (symtab, ent) = self.symtab().ok_or_else(|| CubinError("no .symtab".into()))?;
        let sym = i as usize * ent;
        let table = self.bytes(symtab)?;
        let shndx = u16_at(table, sym + 6)? as usize;
        let (value, size) = (u64_at(table, sym + 8)? as usize, u64_at(table, sym + 16)? as usize);
        let section = self.sections.get(shndx).ok_or_else(|| CubinError(format!("`{name}` in no section")))?;
        let data = self.bytes(section)?;
        data.get(value..value.saturating_add(size))
            .ok_or_else(|| CubinError(format!("`{name}` has no initial bytes in its section")))
    }
}

/// The initial value of the 4-byte global `name` of `cubin` (an `extern "C"
/// __constant__ int` such as a paged cell's `<kernel>_decode_smem_bytes`),
/// read from the file: no device, no driver.
pub fn cubin_constant_i32(cubin: &[u8], name: &str) -> Result<i32, CubinError> {
    let elf = Elf::parse(cubin)?;
    let d = elf.symbol_data(name)?;
    let b: [u8; 4] = d.try_into().map_err(|_| CubinError(format!("`{name}` is {} bytes, not 4", d.len())))?;
    Ok(i32::from_le_bytes(b))
}

/// `(attribute, symbol, value)` of every SVAL record with a symbol + value.
fn nv_info_records(d: &[u8]) -> Result<Vec<(u8, u32, u32)>, CubinError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 4 <= d.len() {
        let (fmt, attr) = (d[off], d[off + 1]);
        let v = u16_at(d, off + 2)? as usize;
        off += 4;
        if fmt == EIFMT_SVAL {
            if v == 8 && off + 8 <= d.len() {
                out.push((attr, u32_at(d, off)?, u32_at(d, off + 4)?));
            }
            off += v;
        }
    }
    Ok(out)
}

/// Registers, local memory and static shared memory of `kernel` in `cubin`.
pub fn cubin_info(cubin: &[u8], kernel: &str) -> Result<CubinInfo, CubinError> {
    let elf = Elf::parse(cubin)?;
    let sym = elf.symbol_index(kernel)?.ok_or_else(|| CubinError(format!("no symbol `{kernel}`")))?;
    let mut info = CubinInfo::default();
    let mut have_regs = false;
    for name in [".nv.info".to_string(), format!(".nv.info.{kernel}")] {
        let Some(s) = elf.section(&name) else { continue };
        for (attr, s_idx, value) in nv_info_records(elf.bytes(s)?)? {
            if s_idx != sym {
                continue;
            }
            match attr {
                EIATTR_REGCOUNT => {
                    info.registers = value;
                    have_regs = true;
                }
                EIATTR_FRAME_SIZE => info.local_bytes = value,
                EIATTR_MAX_STACK_SIZE => info.max_stack_bytes = value,
                EIATTR_MIN_STACK_SIZE => info.max_stack_bytes = info.max_stack_bytes.max(value),
                _ => {}
            }
        }
    }
    if let Some(s) = elf.section(&format!(".nv.info.{kernel}")) {
        let d = elf.bytes(s)?;
        let mut off = 0usize;
        while off + 4 <= d.len() {
            let (fmt, attr, v) = (d[off], d[off + 1], u16_at(d, off + 2)?);
            off += 4;
            if fmt == EIFMT_HVAL && attr == EIATTR_CBANK_PARAM_SIZE {
                info.param_bytes = Some(u32::from(v));
            }
            if fmt == EIFMT_SVAL {
                off += v as usize;
            }
        }
    }
    if !have_regs {
        if let Some(t) = elf.section(&format!(".text.{kernel}")) {
            info.registers = t.info >> 24;
        }
    }
    if let Some(s) = elf.section(&format!(".nv.shared.{kernel}")) {
        info.shared_bytes = s.size as u32;
    }
    Ok(info)
}

/// Names of the kernels (entry points) in a CUBIN: the `.text.<name>` sections.
pub fn cubin_kernels(cubin: &[u8]) -> Result<Vec<String>, CubinError> {
    let elf = Elf::parse(cubin)?;
    let mut v = Vec::new();
    for s in &elf.sections {
        if let Some(n) = elf.str_at(&elf.shstr, s.name)?.strip_prefix(".text.") {
            v.push(n.to_string());
        }
    }
    Ok(v)
}

/// Reads ptxas' `-v` report for `kernel` out of an NVRTC log:
/// `Function properties for K` / `N bytes stack frame, N bytes spill stores,
/// N bytes spill loads` / `Used N registers`. `None` if the log has none.
pub fn parse_ptxas_log(log: &str, kernel: &str) -> Option<PtxasInfo> {
    let mut info = PtxasInfo::default();
    let mut in_kernel = false;
    let mut found = false;
    for line in log.lines() {
        if line.contains("Compiling entry function") || line.contains("Function properties for") {
            in_kernel = line.contains(&format!("'{kernel}'")) || line.trim_end().ends_with(&format!(" {kernel}"));
            continue;
        }
        if !in_kernel {
            continue;
        }
        let num_before = |what: &str| -> Option<u32> {
            let i = line.find(what)?;
            line[..i].split(|c: char| !c.is_ascii_digit()).rfind(|s| !s.is_empty())?.parse().ok()
        };
        if let Some(v) = num_before(" bytes stack frame") {
            info.stack_frame_bytes = v;
            found = true;
        }
        if let Some(v) = num_before(" bytes spill stores") {
            info.spill_store_bytes = v;
        }
        if let Some(v) = num_before(" bytes spill loads") {
            info.spill_load_bytes = v;
        }
        if let Some(v) = num_before(" bytes smem") {
            info.shared_bytes = v;
        }
        if let Some(v) = num_before(" registers") {
            info.registers = v;
            found = true;
        }
    }
    found.then_some(info)
}
