//! CPU reference of the forward pass, written plainly with f64 accumulation.
//! It defines the semantics every kernel must match.
//!
//! For batch `b`, query head `h` (KV head `h / gqa`), query row `i` of a
//! sequence with `s_q` queries and `s_k` keys:
//!
//! - the query sits at key position `p = i + s_k − s_q` (bottom-right
//!   alignment: the last query sees the last key);
//! - the logit of key `j` is `s = (q_i · k_j) · scale`, times
//!   `q_descale[b, h_k] · k_descale[b, h_k]` for fp8 cells;
//! - softcap `X`: `s = X · tanh(s / X)`;
//! - ALiBi: `s += −slope_h · |p − j|`;
//! - key `j < s_k` is visible iff
//!   `((!mask_causal || j ≤ p) && (window == 0 || j > p − window))
//!    || (sink > 0 && j < sink && j ≤ p)`,
//!   where `mask_causal` is `causal || window` (a window implies causality);
//! - `O_i = Σ_j softmax(s)_j · v_j` over the visible keys (times
//!   `v_descale[b, h_k]` for fp8 cells), `LSE_i = ln Σ_j exp(s_j)` (natural
//!   log);
//! - a row with no visible key has `O_i = 0` and `LSE_i = −∞`.
//!
//! Layouts (row-major): dense q `[b, s_q, h, d]`, k/v `[b, s_k, h_k, d]`,
//! out like q, lse `[b, h, s_q]`. Varlen: q `[total_q, h, d]`, k/v
//! `[total_k, h_k, d]`, sequence `b` spans rows `cu[b]..cu[b+1]`, lse
//! `[h, total_q]`. Paged: k/v `[num_blocks, page_size, h_k, d]`, key `j` of
//! sequence `b` is row `j % page_size` of page `block_table[b][j / page_size]`,
//! and `s_k = context_lens[b]` (queries dense or varlen as above).
//!
//! Inputs are f32 (callers upcast the low-precision values they uploaded).

use fa_spec::KernelSpec;

/// The cell features the reference needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSpec {
    pub head_dim: usize,
    /// `causal || window`.
    pub mask_causal: bool,
    /// 0 = no window.
    pub window: usize,
    /// 0 = no sink.
    pub sink: usize,
    pub softcap: Option<f32>,
    pub gqa: usize,
}

impl RefSpec {
    pub fn from_spec(s: &KernelSpec) -> RefSpec {
        RefSpec {
            head_dim: s.head_dim() as usize,
            mask_causal: s.is_causal_masked(),
            window: s.window().unwrap_or(0) as usize,
            sink: s.sink().unwrap_or(0) as usize,
            softcap: s.softcap(),
            gqa: s.gqa() as usize,
        }
    }
    /// Plain attention with head dim `d`: no mask, no modifier, MHA.
    pub fn plain(d: usize) -> RefSpec {
        RefSpec { head_dim: d, mask_causal: false, window: 0, sink: 0, softcap: None, gqa: 1 }
    }
}

/// How queries are laid out.
#[derive(Debug, Clone, Copy)]
pub enum QLayout<'a> {
    /// `[batch, s_q, h, d]`.
    Dense { batch: usize, s_q: usize },
    /// `[total_q, h, d]` with offsets `cu[batch + 1]`.
    Varlen { cu: &'a [i32] },
}

/// How keys and values are laid out.
#[derive(Debug, Clone, Copy)]
pub enum KvLayout<'a> {
    /// `[batch, s_k, h_k, d]`.
    Dense { s_k: usize },
    /// `[total_k, h_k, d]` with offsets `cu[batch + 1]`.
    Varlen { cu: &'a [i32] },
    /// `[num_blocks, page_size, h_k, d]`.
    Paged { page_size: usize, block_table: &'a [i32], width: usize, context_lens: &'a [i32] },
}

/// One forward problem.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    pub spec: RefSpec,
    pub num_heads: usize,
    pub q_layout: QLayout<'a>,
    pub kv_layout: KvLayout<'a>,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub softmax_scale: f32,
    /// `[num_heads]`, ALiBi cells.
    pub alibi_slopes: Option<&'a [f32]>,
    /// `[batch, h_k]` each, fp8 cells; `None` = 1.
    pub q_descale: Option<&'a [f32]>,
    pub k_descale: Option<&'a [f32]>,
    pub v_descale: Option<&'a [f32]>,
}

/// Rounding applied to emulate a low-precision kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Precision {
    /// Applied to each unnormalised probability before `P·V`.
    pub round_p: Option<fn(f32) -> f32>,
    /// Applied to each output element.
    pub round_o: Option<fn(f32) -> f32>,
}

pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}
pub fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}
pub fn round_e4m3(x: f32) -> f32 {
    float8::F8E4M3::from_f32(x).to_f32()
}
pub fn round_e5m2(x: f32) -> f32 {
    float8::F8E5M2::from_f32(x).to_f32()
}

impl Precision {
    /// Exact (f64) computation.
    pub const EXACT: Precision = Precision { round_p: None, round_o: None };
    /// P and O rounded to `dtype` (O to the cell's output type).
    pub fn of(dtype: fa_spec::Dtype) -> Precision {
        let r = |d: fa_spec::Dtype| -> fn(f32) -> f32 {
            match d {
                fa_spec::Dtype::F16 => round_f16,
                fa_spec::Dtype::Bf16 => round_bf16,
                fa_spec::Dtype::E4m3 => round_e4m3,
                fa_spec::Dtype::E5m2 => round_e5m2,
            }
        };
        Precision { round_p: Some(r(dtype)), round_o: Some(r(dtype.output())) }
    }
}

/// Output of the reference, in the kernel's layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct RefOutput {
    pub out: Vec<f64>,
    pub lse: Vec<f64>,
}

/// Whether key `j` is visible from key position `p` (`p` may be negative).
pub fn visible(spec: &RefSpec, p: i64, j: i64) -> bool {
    let main = (!spec.mask_causal || j <= p) && (spec.window == 0 || j > p - spec.window as i64);
    let sink = spec.sink > 0 && j < spec.sink as i64 && j <= p;
    main || sink
}

impl<'a> Problem<'a> {
    pub fn batch(&self) -> usize {
        match self.q_layout {
            QLayout::Dense { batch, .. } => batch,
            QLayout::Varlen { cu } => cu.len().saturating_sub(1),
        }
    }
    pub fn num_kv_heads(&self) -> usize {
        self.num_heads / self.spec.gqa
    }
    /// (first q row, s_q) of sequence `b`.
    pub fn q_range(&self, b: usize) -> (usize, usize) {
        match self.q_layout {
            QLayout::Dense { s_q, .. } => (b * s_q, s_q),
            QLayout::Varlen { cu } => (cu[b] as usize, (cu[b + 1] - cu[b]).max(0) as usize),
        }
    }
    /// s_k of sequence `b`.
    pub fn s_k(&self, b: usize) -> usize {
        match self.kv_layout {
            KvLayout::Dense { s_k } => s_k,
            KvLayout::Varlen { cu } => (cu[b + 1] - cu[b]).max(0) as usize,
            KvLayout::Paged { context_lens, .. } => context_lens[b].max(0) as usize,
        }
    }
    /// Row index (into `[rows, h_k, d]`) of key `j` of sequence `b`.
    fn kv_row(&self, b: usize, j: usize) -> usize {
        match self.kv_layout {
            KvLayout::Dense { s_k } => b * s_k + j,
            KvLayout::Varlen { cu } => cu[b] as usize + j,
            KvLayout::Paged { page_size, block_table, width, .. } => {
                block_table[b * width + j / page_size] as usize * page_size + j % page_size
            }
        }
    }
    /// Index of the lse of (b, h, i) in the kernel's layout.
    pub fn lse_index(&self, b: usize, h: usize, i: usize) -> usize {
        match self.q_layout {
            QLayout::Dense { s_q, .. } => (b * self.num_heads + h) * s_q + i,
            QLayout::Varlen { cu } => {
                let total = *cu.last().unwrap_or(&0) as usize;
                h * total + cu[b] as usize + i
            }
        }
    }
    /// Offset of the output row (b, h, i) (d elements from there).
    pub fn out_index(&self, b: usize, h: usize, i: usize) -> usize {
        let (q0, _) = self.q_range(b);
        ((q0 + i) * self.num_heads + h) * self.spec.head_dim
    }
    fn descale(&self, t: Option<&[f32]>, b: usize, hk: usize) -> f64 {
        t.map_or(1.0, |t| t[b * self.num_kv_heads() + hk] as f64)
    }

    /// One output row and its LSE.
    pub fn row(&self, b: usize, h: usize, i: usize, prec: Precision) -> (Vec<f64>, f64) {
        let d = self.spec.head_dim;
        let hk = h / self.spec.gqa;
        let h_k = self.num_kv_heads();
        let (q0, s_q) = self.q_range(b);
        let s_k = self.s_k(b);
        let p = i as i64 + s_k as i64 - s_q as i64;
        let qrow = &self.q[((q0 + i) * self.num_heads + h) * d..][..d];
        let scale =
            self.softmax_scale as f64 * self.descale(self.q_descale, b, hk) * self.descale(self.k_descale, b, hk);
        let slope = self.alibi_slopes.map(|s| s[h] as f64);
        let mut logits: Vec<(usize, f64)> = Vec::new();
        for j in 0..s_k {
            if !visible(&self.spec, p, j as i64) {
                continue;
            }
            let kr = self.kv_row(b, j);
            let krow = &self.k[(kr * h_k + hk) * d..][..d];
            let dot: f64 = qrow.iter().zip(krow).map(|(&a, &b)| a as f64 * b as f64).sum();
            let mut s = dot * scale;
            if let Some(x) = self.spec.softcap {
                let x = x as f64;
                s = x * (s / x).tanh();
            }
            if let Some(m) = slope {
                s -= m * (p - j as i64).abs() as f64;
            }
            logits.push((j, s));
        }
        let mut out = vec![0.0f64; d];
        if logits.is_empty() {
            return (out, f64::NEG_INFINITY);
        }
        let m = logits.iter().map(|&(_, s)| s).fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0f64;
        let vd = self.descale(self.v_descale, b, hk);
        for &(j, s) in &logits {
            let e = (s - m).exp();
            sum += e;
            let pe = match prec.round_p {
                Some(r) => r(e as f32) as f64,
                None => e,
            };
            let vr = self.kv_row(b, j);
            let vrow = &self.v[(vr * h_k + hk) * d..][..d];
            for (o, &vv) in out.iter_mut().zip(vrow) {
                *o += pe * vv as f64;
            }
        }
        for o in out.iter_mut() {
            *o = *o / sum * vd;
            if let Some(r) = prec.round_o {
                *o = r(*o as f32) as f64;
            }
        }
        (out, m + sum.ln())
    }

    /// The whole forward pass.
    pub fn forward(&self, prec: Precision) -> RefOutput {
        let d = self.spec.head_dim;
        let total_q = match self.q_layout {
            QLayout::Dense { batch, s_q } => batch * s_q,
            QLayout::Varlen { cu } => *cu.last().unwrap_or(&0) as usize,
        };
        let mut out = vec![0.0; total_q * self.num_heads * d];
        let mut lse = vec![0.0; total_q * self.num_heads];
        for b in 0..self.batch() {
            let (_, s_q) = self.q_range(b);
            for h in 0..self.num_heads {
                for i in 0..s_q {
                    let (o, l) = self.row(b, h, i, prec);
                    let oi = self.out_index(b, h, i);
                    out[oi..oi + d].copy_from_slice(&o);
                    lse[self.lse_index(b, h, i)] = l;
                }
            }
        }
        RefOutput { out, lse }
    }
}

#[cfg(test)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
mod tests {
    use super::*;

    /// Tiny deterministic generator for test data.
    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn dense<'a>(
        spec: RefSpec,
        b: usize,
        h: usize,
        s_q: usize,
        s_k: usize,
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
    ) -> Problem<'a> {
        Problem {
            spec,
            num_heads: h,
            q_layout: QLayout::Dense { batch: b, s_q },
            kv_layout: KvLayout::Dense { s_k },
            q,
            k,
            v,
            softmax_scale: 1.0 / (spec.head_dim as f32).sqrt(),
            alibi_slopes: None,
            q_descale: None,
            k_descale: None,
            v_descale: None,
        }
    }

    /// Independent brute force: full score matrix with -inf masking and a
    /// max-subtracted softmax, for one (b=0, h=0) slice.
    fn brute(
        spec: &RefSpec,
        s_q: usize,
        s_k: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: f64,
    ) -> (Vec<Vec<f64>>, Vec<f64>) {
        let d = spec.head_dim;
        let mut outs = Vec::new();
        let mut lses = Vec::new();
        for i in 0..s_q {
            let p = i as i64 + s_k as i64 - s_q as i64;
            let scores: Vec<f64> = (0..s_k)
                .map(|j| {
                    let causal_ok = !spec.mask_causal || (j as i64) <= p;
                    let win_ok = spec.window == 0 || (j as i64) > p - spec.window as i64;
                    let sink_ok = spec.sink > 0 && j < spec.sink && (j as i64) <= p;
                    if (causal_ok && win_ok) || sink_ok {
                        let mut s = (0..d).map(|c| q[i * d + c] as f64 * k[j * d + c] as f64).sum::<f64>() * scale;
                        if let Some(x) = spec.softcap {
                            s = x as f64 * (s / x as f64).tanh();
                        }
                        s
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if m == f64::NEG_INFINITY {
                outs.push(vec![0.0; d]);
                lses.push(f64::NEG_INFINITY);
                continue;
            }
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = w.iter().sum();
            outs.push((0..d).map(|c| (0..s_k).map(|j| w[j] * v[j * d + c] as f64).sum::<f64>() / z).collect());
            lses.push(m + z.ln());
        }
        (outs, lses)
    }

    fn check_against_brute(spec: RefSpec, s_q: usize, s_k: usize) {
        let d = spec.head_dim;
        let (q, k, v) = (data(s_q * d, 1), data(s_k * d, 2), data(s_k * d, 3));
        let pr = dense(spec, 1, 1, s_q, s_k, &q, &k, &v);
        let r = pr.forward(Precision::EXACT);
        let (bo, bl) = brute(&spec, s_q, s_k, &q, &k, &v, pr.softmax_scale as f64);
        for i in 0..s_q {
            assert!(
                (r.lse[i] == bl[i]) || (r.lse[i] - bl[i]).abs() < 1e-12,
                "{spec:?} row {i}: lse {} vs {}",
                r.lse[i],
                bl[i]
            );
            for c in 0..d {
                assert!((r.out[i * d + c] - bo[i][c]).abs() < 1e-12, "{spec:?} row {i} col {c}");
            }
        }
    }

    #[test]
    fn matches_brute_force_for_every_mask() {
        let d = 8;
        let specs = [
            RefSpec::plain(d),
            RefSpec { mask_causal: true, ..RefSpec::plain(d) },
            RefSpec { mask_causal: true, window: 3, ..RefSpec::plain(d) },
            RefSpec { mask_causal: true, window: 2, sink: 2, ..RefSpec::plain(d) },
            RefSpec { softcap: Some(0.5), ..RefSpec::plain(d) },
        ];
        for spec in specs {
            for (s_q, s_k) in [(1, 1), (5, 5), (3, 7), (7, 3), (1, 9)] {
                check_against_brute(spec, s_q, s_k);
            }
        }
    }

    #[test]
    fn causal_row_zero_sees_one_key() {
        let d = 4;
        let spec = RefSpec { mask_causal: true, ..RefSpec::plain(d) };
        let (q, k, v) = (data(3 * d, 4), data(3 * d, 5), data(3 * d, 6));
        let r = dense(spec, 1, 1, 3, 3, &q, &k, &v).forward(Precision::EXACT);
        for c in 0..d {
            assert!((r.out[c] - v[c] as f64).abs() < 1e-12);
        }
        // LSE of a single key is its logit.
        let s0: f64 = (0..d).map(|c| q[c] as f64 * k[c] as f64).sum::<f64>() * 0.5;
        assert!((r.lse[0] - s0).abs() < 1e-6);
    }

    #[test]
    fn fully_masked_rows_are_zero_with_neg_inf_lse() {
        // s_q > s_k and causal: rows i < s_q - s_k sit before the first key.
        let d = 4;
        let spec = RefSpec { mask_causal: true, ..RefSpec::plain(d) };
        let (q, k, v) = (data(5 * d, 7), data(2 * d, 8), data(2 * d, 9));
        let r = dense(spec, 1, 1, 5, 2, &q, &k, &v).forward(Precision::EXACT);
        for i in 0..3 {
            assert_eq!(r.lse[i], f64::NEG_INFINITY, "row {i}");
            assert!(r.out[i * d..(i + 1) * d].iter().all(|&x| x == 0.0));
        }
        assert!(r.lse[3].is_finite() && r.lse[4].is_finite());
        // s_k = 0: every row is empty.
        let r = dense(RefSpec::plain(d), 1, 1, 2, 0, &q[..2 * d], &[], &[]).forward(Precision::EXACT);
        assert!(r.lse.iter().all(|&l| l == f64::NEG_INFINITY));
    }

    #[test]
    fn window_and_sink_visibility() {
        let w = RefSpec { mask_causal: true, window: 3, ..RefSpec::plain(4) };
        // p = 10: keys 8, 9, 10.
        let vis: Vec<i64> = (0..12).filter(|&j| visible(&w, 10, j)).collect();
        assert_eq!(vis, vec![8, 9, 10]);
        let ws = RefSpec { sink: 2, ..w };
        let vis: Vec<i64> = (0..12).filter(|&j| visible(&ws, 10, j)).collect();
        assert_eq!(vis, vec![0, 1, 8, 9, 10]);
        // The sink never reaches past the query's own position.
        let vis: Vec<i64> = (0..12).filter(|&j| visible(&ws, 0, j)).collect();
        assert_eq!(vis, vec![0]);
        assert!(!visible(&ws, -1, 0));
    }

    #[test]
    fn softcap_bounds_the_logits() {
        let d = 16;
        let x = 2.0f32;
        let spec = RefSpec { softcap: Some(x), ..RefSpec::plain(d) };
        // Large q so raw logits are far beyond the cap.
        let q: Vec<f32> = data(d, 10).iter().map(|v| v * 100.0).collect();
        let (k, v) = (data(6 * d, 11), data(6 * d, 12));
        let r = dense(spec, 1, 1, 1, 6, &q, &k, &v).forward(Precision::EXACT);
        assert!(r.lse[0] <= (6f64).ln() + x as f64 + 1e-12);
        assert!(r.lse[0] >= (6f64).ln() - x as f64 - 1e-12);
    }

    #[test]
    fn gqa_alibi_descale_varlen_and_paged_agree_with_dense() {
        let d = 4;
        let (h, gqa) = (4, 2);
        let h_k = h / gqa;
        let spec = RefSpec { gqa, mask_causal: true, ..RefSpec::plain(d) };
        let (s_q, s_k) = (3, 5);
        let q = data(2 * s_q * h * d, 13);
        let k = data(2 * s_k * h_k * d, 14);
        let v = data(2 * s_k * h_k * d, 15);
        let slopes = [0.5f32, 0.25, 0.125, 0.0625];
        let desc = [0.5f32, 2.0, 1.5, 1.0];
        let mut base = dense(spec, 2, h, s_q, s_k, &q, &k, &v);
        base.alibi_slopes = Some(&slopes);
        base.v_descale = Some(&desc);
        let r = base.forward(Precision::EXACT);
        // Varlen with the same two sequences.
        let cu_q = [0, 3, 6];
        let cu_k = [0, 5, 10];
        let mut vl = base;
        vl.q_layout = QLayout::Varlen { cu: &cu_q };
        vl.kv_layout = KvLayout::Varlen { cu: &cu_k };
        let rv = vl.forward(Precision::EXACT);
        assert_eq!(r.out, rv.out);
        for b in 0..2 {
            for hh in 0..h {
                for i in 0..s_q {
                    assert_eq!(r.lse[base.lse_index(b, hh, i)], rv.lse[vl.lse_index(b, hh, i)]);
                }
            }
        }
        // Paged, page size 2, pages in scrambled order.
        let ps = 2;
        let width = 3;
        let num_blocks = 8;
        let mut kc = vec![0f32; num_blocks * ps * h_k * d];
        let mut vc = kc.clone();
        let table = [5, 1, 7, 0, 6, 2];
        for b in 0..2 {
            for j in 0..s_k {
                let src = ((b * s_k + j) * h_k) * d;
                let dst = ((table[b * width + j / ps] as usize * ps + j % ps) * h_k) * d;
                kc[dst..dst + h_k * d].copy_from_slice(&k[src..src + h_k * d]);
                vc[dst..dst + h_k * d].copy_from_slice(&v[src..src + h_k * d]);
            }
        }
        let lens = [5, 5];
        let mut pg = base;
        pg.k = &kc;
        pg.v = &vc;
        pg.kv_layout = KvLayout::Paged { page_size: ps, block_table: &table, width, context_lens: &lens };
        let rp = pg.forward(Precision::EXACT);
        assert_eq!(r.out, rp.out);
        assert_eq!(r.lse, rp.lse);
        // GQA: query heads 0 and 1 share KV head 0; with equal q rows they agree.
        assert!(r.out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn low_precision_rounds_outputs() {
        let d = 8;
        let (q, k, v) = (data(4 * d, 16), data(4 * d, 17), data(4 * d, 18));
        let p = dense(RefSpec::plain(d), 1, 1, 4, 4, &q, &k, &v);
        let lo = p.forward(Precision::of(fa_spec::Dtype::Bf16));
        let hi = p.forward(Precision::EXACT);
        assert!(lo.out.iter().all(|&x| round_bf16(x as f32) as f64 == x));
        let err = lo.out.iter().zip(&hi.out).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err > 0.0 && err < 1e-2, "{err}");
        assert_eq!(lo.lse, hi.lse);
    }
}
