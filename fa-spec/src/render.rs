//! Rendering a cell's CUDA source from the embedded Tera templates.

use crate::model::{float_literal, KernelSpec};
use crate::tiles::tile_config;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The top-level template of the forward kernel (and, for `backward` cells,
/// the backward kernels it includes).
pub const FORWARD_TEMPLATE: &str = "fwd.cu.tera";

/// A template failed to render: a bug in the templates, never in the cell.
#[derive(Debug, thiserror::Error)]
#[error("rendering template `{template}` for {kernel} failed: {detail}")]
pub struct RenderError {
    pub template: String,
    pub kernel: String,
    pub detail: String,
}

fn tera() -> Result<&'static tera::Tera, RenderError> {
    static TERA: OnceLock<Result<tera::Tera, String>> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.add_raw_templates(TEMPLATES.iter().copied()).map_err(|e| error_chain(&e))?;
        Ok(t)
    })
    .as_ref()
    .map_err(|detail| RenderError { template: "(all)".into(), kernel: String::new(), detail: detail.clone() })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The Tera context of a cell: every spec field and the tile shape, under
/// the names the templates use.
pub fn context(spec: &KernelSpec) -> tera::Context {
    let tile = tile_config(spec);
    let mut c = tera::Context::new();
    c.insert("kernel_name", &spec.kernel_name());
    c.insert("arch", spec.arch().as_str());
    c.insert("sm", &spec.arch().compute_capability());
    c.insert("dtype", spec.dtype().as_str());
    c.insert("is_fp8", &spec.dtype().is_fp8());
    c.insert("head_dim", &spec.head_dim());
    c.insert("causal", &spec.causal());
    c.insert("window", &spec.window().unwrap_or(0));
    c.insert("sink", &spec.sink().unwrap_or(0));
    c.insert("mask_causal", &spec.is_causal_masked());
    c.insert("alibi", &spec.alibi());
    c.insert("has_softcap", &spec.softcap().is_some());
    c.insert("softcap", &format!("{}f", float_literal(spec.softcap().unwrap_or(0.0))));
    c.insert("gqa", &spec.gqa());
    c.insert("varlen", &spec.varlen());
    c.insert("paged", &spec.paged());
    c.insert("page_size", &spec.page_size().unwrap_or(0));
    c.insert("paged_decode", &crate::tiles::paged_decode(spec));
    c.insert("pd_warps", &crate::tiles::paged_decode_warps(spec));
    c.insert("pd_pair_splits", &u32::from(crate::tiles::paged_pair_splits(spec)));
    c.insert("backward", &spec.backward());
    c.insert("block_m", &tile.block_m);
    c.insert("block_n", &tile.block_n);
    c.insert("num_warps", &tile.num_warps);
    c.insert("stages", &tile.stages);
    c.insert("swizzle", &tile.swizzle);
    c.insert("attribute", &spec.to_attribute_args());
    c
}

/// Renders the CUDA source of `spec`: hermetic (no toolkit header), every
/// spec field a compile-time constant.
pub fn render(spec: &KernelSpec) -> Result<String, RenderError> {
    render_template(spec, FORWARD_TEMPLATE)
}

/// Renders one named template with the cell's context.
pub fn render_template(spec: &KernelSpec, template: &str) -> Result<String, RenderError> {
    tera()?.render(template, &context(spec)).map_err(|e| RenderError {
        template: template.into(),
        kernel: spec.kernel_name(),
        detail: error_chain(&e),
    })
}
