//! Tile shapes of the portable forward kernel, per head_dim and arch.
//!
//! First guess, to be replaced by measured choices (see the table below once
//! filled in by measurement).

use crate::model::KernelSpec;

/// How one thread block of the forward kernel tiles the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileConfig {
    /// Query rows per thread block.
    pub block_m: u32,
    /// Keys per main-loop step.
    pub block_n: u32,
    pub num_warps: u32,
    /// K/V shared-memory stages in the cp.async pipeline.
    pub stages: u32,
}

impl TileConfig {
    pub fn threads(&self) -> u32 {
        self.num_warps * 32
    }

    /// Dynamic shared memory of one block: the Q tile plus `stages` K and V tiles.
    pub fn smem_bytes(&self, spec: &KernelSpec) -> u32 {
        let es = spec.dtype().size_bytes() as u32;
        let d = spec.head_dim();
        self.block_m * d * es + self.stages * 2 * self.block_n * d * es
    }
}

/// The tile shape the forward kernel of `spec` is rendered and launched with.
pub fn tile_config(spec: &KernelSpec) -> TileConfig {
    let d = spec.head_dim();
    let (block_m, block_n, num_warps) = match d {
        0..=64 => (128, 128, 4),
        65..=128 => (128, 64, 4),
        _ => (128, 64, 8),
    };
    TileConfig { block_m, block_n, num_warps, stages: 2 }
}
