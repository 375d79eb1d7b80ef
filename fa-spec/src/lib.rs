//! The attention cell model, its whitelist and the CUDA rendering: the one
//! implementation that the `#[flash_attention]` macro, the `fa-runtime`
//! crate and the `fa` command-line tool share, so a cell accepted by one is
//! accepted by all, with the same error text.

mod builder;
mod model;
mod render;
mod rules;
mod specfile;
mod tiles;

pub use builder::{SpecBuilder, SpecErrors};
pub use model::{Arch, Dtype, KernelSpec, DEFAULT_PAGE_SIZE, HEAD_DIMS, MAX_GQA, MAX_POSITION};
pub use render::{context, render, render_template, RenderError, FORWARD_TEMPLATE};
pub use rules::{not_a_struct_message, validate, ArgValue, RawArg, Rule, SpecError, KEYS};
pub use specfile::{load_spec, parse_spec, SpecFileError, SpecFileErrors};
pub use tiles::{paged_decode, paged_decode_warps, paged_pair_splits, tile_config, TileConfig};
