//! `kernels-dev/paged/harness.py` plans decode launches with a Python copy
//! of `paged::decode_layout` (`runtime_layout`), so that its timings and
//! `tie_ab.py`'s "rt" candidates run the layout the runtime would. This
//! checks the copy against the runtime on pseudo-random problems and
//! entries. Needs `python3` (standard library only), as the README's test
//! command does; it does not skip without it.

use fa_runtime::paged::{decode_layout, DecodeKernel, DecodeKernels, DecodeLayout, DecodeProblem, EntryOccupancy};
use std::io::Write;
use std::process::{Command, Stdio};

mod paged_entries;
use paged_entries::{BF16_HD128, BF16_HD128_PAIR, BF16_HD128_UNSPLIT, BF16_HD96_PAIR, E4M3_HD128};

/// xorshift64*: reproducible cases without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    /// In [2^(b-1), 3 · 2^(b-1)) for a random b in 1 ..= bits, or 0 (b = 0): spread over the powers of two.
    fn log_uniform(&mut self, bits: u32) -> usize {
        let b = self.below(u64::from(bits) + 1) as u32;
        self.below(1u64 << b) + (1usize << b) / 2
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64)]
    }
}

fn entry_json(e: EntryOccupancy) -> String {
    format!("[{}, {}]", e.ctas_per_sm, e.smem_bytes)
}

fn case(rng: &mut Rng) -> (DecodeProblem, usize, DecodeKernels) {
    // Entries: the cells paged_host.rs uses (hd64-like ones with a 4-CTA
    // unsplit / pair) or any occupancy and ring.
    let rings = [30976, 49408, 65792, 73984, 98560, 135424, 196864];
    let kernels = match rng.below(4) {
        0 => DecodeKernels { one: BF16_HD128, unsplit: BF16_HD128_UNSPLIT, pair: BF16_HD128_PAIR, pair_splits: false },
        1 => DecodeKernels { one: BF16_HD128, unsplit: BF16_HD128_UNSPLIT, pair: BF16_HD96_PAIR, pair_splits: true },
        2 => DecodeKernels { one: E4M3_HD128, unsplit: E4M3_HD128, pair: E4M3_HD128, pair_splits: false },
        _ => {
            let mut e = || EntryOccupancy { ctas_per_sm: rng.below(5), smem_bytes: rng.pick(&rings) };
            let (one, unsplit, pair) = (e(), e(), e());
            DecodeKernels { one, unsplit, pair, pair_splits: rng.below(2) == 0 }
        }
    };
    let window = if rng.below(3) == 0 { rng.log_uniform(14) } else { 0 };
    let sink = if rng.below(4) == 0 { rng.below(20) } else { 0 };
    let problem = DecodeProblem {
        batch: rng.log_uniform(9),
        kv_heads: 1 + rng.below(16),
        max_context: rng.log_uniform(20),
        window,
        sink,
    };
    (problem, rng.pick(&[46, 78, 108, 114, 132, 148, 170]), kernels)
}

fn parse(line: &str) -> Option<DecodeLayout> {
    let inner = line.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut f = inner.split(',').map(str::trim);
    let kernel = match f.next()? {
        "\"One\"" => DecodeKernel::One,
        "\"Unsplit\"" => DecodeKernel::Unsplit,
        "\"Pair\"" => DecodeKernel::Pair,
        _ => return None,
    };
    let splits = f.next()?.parse().ok()?;
    let fused_merge = f.next()?.parse().ok()?;
    Some(DecodeLayout { kernel, splits, fused_merge })
}

#[test]
fn harness_plans_the_runtime_layouts() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cases: Vec<_> = (0..20000).map(|_| case(&mut rng)).collect();
    let mut input = String::new();
    for (p, sm, k) in &cases {
        input += &format!(
            "{{\"batch\": {}, \"kv_heads\": {}, \"max_context\": {}, \"window\": {}, \"sink\": {}, \"sm_count\": {sm}, \
             \"one\": {}, \"unsplit\": {}, \"pair\": {}, \"pair_splits\": {}}}\n",
            p.batch,
            p.kv_heads,
            p.max_context,
            p.window,
            p.sink,
            entry_json(k.one),
            entry_json(k.unsplit),
            entry_json(k.pair),
            k.pair_splits
        );
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../kernels-dev/paged/mirror_check.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 (needed to run {script}): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), cases.len(), "one layout a case");
    let (mut kinds, mut mismatches) = ([0usize; 3], Vec::new());
    for ((p, sm, k), line) in cases.iter().zip(&lines) {
        let want = decode_layout(p, *sm, *k);
        kinds[want.kernel as usize] += 1;
        let got = parse(line).unwrap_or_else(|| panic!("unreadable layout `{line}`"));
        if got != want {
            mismatches.push(format!("{p:?} on {sm} SMs, {k:?}: runtime {want:?}, harness {got:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} differ, e.g.\n{}",
        mismatches.len(),
        cases.len(),
        mismatches[..mismatches.len().min(5)].join("\n")
    );
    // The cases reach every entry, and split launches.
    assert!(kinds.iter().all(|&n| n > 500), "{kinds:?}");
    assert!(cases.iter().filter(|(p, sm, k)| decode_layout(p, *sm, *k).splits > 1).count() > 1000);
}
