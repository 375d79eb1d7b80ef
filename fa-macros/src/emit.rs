//! Code generation for a validated cell: `SPEC`, `CUDA_SOURCE` and the typed
//! launchers, reaching the runtime only through absolute `::fa_runtime::…`
//! paths (see fa-runtime/src/api_contract.md), so users need nothing in scope.

use fa_spec::{Arch, Dtype, KernelSpec};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};

/// `impl Name { SPEC, CUDA_SOURCE, forward, [backward] }`, or the rendering
/// error (a template bug, never the user's) at the attribute.
pub fn emit(item: &syn::ItemStruct, spec: &KernelSpec) -> syn::Result<TokenStream> {
    let source = fa_spec::render(spec).map_err(|e| syn::Error::new(Span::call_site(), e))?;
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let spec_expr = spec_expr(spec);
    let spec_doc = format!(
        " The attention cell `{}` (kernel `{}`), checked against the whitelist at compile time.",
        spec.to_attribute_args(),
        spec.kernel_name()
    );
    let source_doc = format!(
        " CUDA source of this cell, rendered at compile time; entry point `{}`, built by fa-runtime for `{}` on first launch.",
        spec.forward_entry(),
        spec.arch().nvrtc_target()
    );
    let forward = forward(spec);
    let backward = spec.backward().then(|| backward(spec));
    let append = spec.paged().then(|| append(spec));
    Ok(quote! {
        impl #impl_generics #name #ty_generics #where_clause {
            #[doc = #spec_doc]
            pub const SPEC: ::fa_runtime::KernelSpec = #spec_expr;
            #[doc = #source_doc]
            pub const CUDA_SOURCE: &'static str = #source;
            #forward
            #backward
            #append
        }
    })
}

/// The span for "this is not a struct": the item's keyword and name, not
/// its whole body.
pub fn item_head(item: &syn::Item) -> TokenStream {
    use quote::ToTokens;
    fn head(vis: &syn::Visibility, keyword: &dyn ToTokens, ident: &syn::Ident) -> TokenStream {
        quote!(#vis #keyword #ident)
    }
    match item {
        syn::Item::Enum(i) => head(&i.vis, &i.enum_token, &i.ident),
        syn::Item::Union(i) => head(&i.vis, &i.union_token, &i.ident),
        syn::Item::Fn(i) => head(&i.vis, &i.sig.fn_token, &i.sig.ident),
        syn::Item::Trait(i) => head(&i.vis, &i.trait_token, &i.ident),
        syn::Item::Type(i) => head(&i.vis, &i.type_token, &i.ident),
        syn::Item::Mod(i) => head(&i.vis, &i.mod_token, &i.ident),
        other => other.to_token_stream(),
    }
}

fn spec_expr(spec: &KernelSpec) -> TokenStream {
    let arch = match spec.arch() {
        Arch::Sm80 => quote!(Sm80),
        Arch::Sm89 => quote!(Sm89),
        Arch::Sm90a => quote!(Sm90a),
        Arch::Sm100 => quote!(Sm100),
    };
    let dtype = match spec.dtype() {
        Dtype::F16 => quote!(F16),
        Dtype::Bf16 => quote!(Bf16),
        Dtype::E4m3 => quote!(E4m3),
        Dtype::E5m2 => quote!(E5m2),
    };
    fn opt<T: quote::ToTokens>(v: Option<T>) -> TokenStream {
        match v {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        }
    }
    let head_dim = spec.head_dim();
    let (causal, alibi, gqa, varlen, backward) =
        (spec.causal(), spec.alibi(), spec.gqa(), spec.varlen(), spec.backward());
    let window = opt(spec.window());
    let sink = opt(spec.sink());
    let softcap = opt(spec.softcap().map(proc_macro2::Literal::f32_suffixed));
    let page_size = opt(spec.page_size());
    quote! {
        ::fa_runtime::KernelSpec::__from_validated(
            ::fa_runtime::__private::Arch::#arch,
            ::fa_runtime::__private::Dtype::#dtype,
            #head_dim, #causal, #window, #sink, #alibi, #softcap, #gqa, #varlen, #page_size, #backward,
        )
    }
}

fn element_type(dtype: Dtype) -> TokenStream {
    match dtype {
        Dtype::F16 => quote!(::fa_runtime::__private::f16),
        Dtype::Bf16 => quote!(::fa_runtime::__private::bf16),
        Dtype::E4m3 => quote!(::fa_runtime::__private::F8E4M3),
        Dtype::E5m2 => quote!(::fa_runtime::__private::F8E5M2),
    }
}

/// Parameters and `*Call` fields of one launcher, built up in order.
#[derive(Default)]
struct Launcher {
    params: Vec<TokenStream>,
    fields: Vec<TokenStream>,
    docs: Vec<String>,
}

impl Launcher {
    fn doc(&mut self, line: impl Into<String>) {
        // A leading space, as `/// text` would have.
        self.docs.push(format!(" {}", line.into()));
    }
    /// `name: &Tensor<T>` passed as `name: Tensor::as_ref(name)`.
    fn input(&mut self, name: &str, ty: &TokenStream) {
        let id = format_ident!("{}", name);
        self.params.push(quote!(#id: &::fa_runtime::Tensor<#ty>));
        self.fields.push(quote!(#id: ::fa_runtime::Tensor::as_ref(#id)));
    }
    /// `name: &mut Tensor<T>` passed as `name: Tensor::as_mut(name)`.
    fn output(&mut self, name: &str, ty: &TokenStream) {
        let id = format_ident!("{}", name);
        self.params.push(quote!(#id: &mut ::fa_runtime::Tensor<#ty>));
        self.fields.push(quote!(#id: ::fa_runtime::Tensor::as_mut(#id)));
    }
    /// A required parameter the cell takes, or `None` in the call.
    fn cell_input(&mut self, on: bool, name: &str, ty: &TokenStream) {
        let id = format_ident!("{}", name);
        if on {
            self.params.push(quote!(#id: &::fa_runtime::Tensor<#ty>));
            self.fields.push(quote!(#id: ::core::option::Option::Some(::fa_runtime::Tensor::as_ref(#id))));
        } else {
            self.fields.push(quote!(#id: ::core::option::Option::None));
        }
    }
    /// An optional parameter the cell takes, or `None` in the call.
    fn cell_option(&mut self, on: bool, name: &str, ty: &TokenStream) {
        let id = format_ident!("{}", name);
        if on {
            self.params.push(quote!(#id: ::core::option::Option<&::fa_runtime::Tensor<#ty>>));
            self.fields.push(quote!(#id: ::core::option::Option::map(#id, ::fa_runtime::Tensor::as_ref)));
        } else {
            self.fields.push(quote!(#id: ::core::option::Option::None));
        }
    }
    /// The launcher `name`, which calls `entry` with a `call` struct; with
    /// `args`, the tensors and options go in that struct's `args` field.
    fn finish(self, name: &str, call: TokenStream, args: Option<TokenStream>, entry: TokenStream) -> TokenStream {
        let (fn_name, docs, params, fields) = (format_ident!("{}", name), self.docs, self.params, self.fields);
        let inputs = match args {
            Some(args) => quote!(args: #args { #(#fields,)* options: *options }),
            None => quote!(#(#fields,)* options),
        };
        quote! {
            #(#[doc = #docs])*
            #[allow(clippy::too_many_arguments)]
            pub fn #fn_name(
                dev: &::fa_runtime::Device,
                #(#params,)*
                options: &::fa_runtime::FwdOptions,
            ) -> ::core::result::Result<(), ::fa_runtime::FaError> {
                #entry(dev, #call {
                    spec: &Self::SPEC,
                    source: Self::CUDA_SOURCE,
                    #inputs,
                })
            }
        }
    }
}

/// Doc lines for the shapes of q, k, v and the cell's extra inputs.
fn shape_docs(l: &mut Launcher, spec: &KernelSpec) {
    let (d, e) = (spec.head_dim(), spec.dtype());
    let heads = match spec.gqa() {
        1 => "`num_kv_heads` = `num_heads` (MHA)".to_string(),
        g => format!("`num_heads` = {g} · `num_kv_heads` (GQA)"),
    };
    l.doc("# Shapes");
    l.doc(format!("Row-major, contiguous; head_dim = {d}; {heads}."));
    if spec.varlen() {
        l.doc(format!("- `q`: {e} `[total_q, num_heads, {d}]`, the sequences of the batch packed one after another"));
    } else {
        l.doc(format!("- `q`: {e} `[batch, seqlen_q, num_heads, {d}]`"));
    }
    if spec.paged() {
        let p = spec.page_size().unwrap_or_default();
        l.doc(format!("- `k`, `v`: {e} KV caches `[num_blocks, {p}, num_kv_heads, {d}]` (pages of {p} tokens)"));
        l.doc("- `block_table`: i32 `[batch, max_blocks_per_seq]`, the cache pages of each sequence in order");
        l.doc("- `context_lens`: i32 `[batch]`, the tokens of each sequence in the cache");
    } else if spec.varlen() {
        l.doc(format!("- `k`, `v`: {e} `[total_k, num_kv_heads, {d}]`"));
    } else {
        l.doc(format!("- `k`, `v`: {e} `[batch, seqlen_k, num_kv_heads, {d}]`"));
    }
    if spec.varlen() {
        l.doc("- `cu_seqlens_q`, `cu_seqlens_k`: i32 `[batch + 1]`, offsets of each sequence: `0, len_0, len_0 + len_1, …`");
    }
    if spec.alibi() {
        l.doc("- `alibi_slopes`: f32 `[num_heads]`, the ALiBi slope of each query head");
    }
}

fn lse_shape(spec: &KernelSpec) -> &'static str {
    if spec.varlen() {
        "f32 `[num_heads, total_q]`"
    } else {
        "f32 `[batch, num_heads, seqlen_q]`"
    }
}

fn forward(spec: &KernelSpec) -> TokenStream {
    let (e, o) = (spec.dtype(), spec.dtype().output());
    let (elem, out_elem, i32_, f32_) = (element_type(e), element_type(o), quote!(i32), quote!(f32));
    let mut l = Launcher::default();
    l.doc(
        "Forward attention of this cell: `out = softmax(q·kᵀ·scale + mask)·v` and its log-sum-exp, launched on `dev`.",
    );
    l.doc("");
    shape_docs(&mut l, spec);
    if e.is_fp8() {
        l.doc(
            "- `q_descale`, `k_descale`, `v_descale`: f32 `[batch, num_kv_heads]` dequantization factors; `None` = 1.0",
        );
    }
    l.doc(format!("- `out`: {o} (written), the shape of `q`"));
    l.doc(format!("- `lse`: {} (written), the log-sum-exp of each query row", lse_shape(spec)));
    l.input("q", &elem);
    l.input("k", &elem);
    l.input("v", &elem);
    l.cell_input(spec.varlen(), "cu_seqlens_q", &i32_);
    l.cell_input(spec.varlen(), "cu_seqlens_k", &i32_);
    l.cell_input(spec.paged(), "block_table", &i32_);
    l.cell_input(spec.paged(), "context_lens", &i32_);
    l.cell_input(spec.alibi(), "alibi_slopes", &f32_);
    l.cell_option(e.is_fp8(), "q_descale", &f32_);
    l.cell_option(e.is_fp8(), "k_descale", &f32_);
    l.cell_option(e.is_fp8(), "v_descale", &f32_);
    l.output("out", &out_elem);
    l.output("lse", &f32_);
    l.finish(
        "forward",
        quote!(::fa_runtime::__private::ForwardCall),
        Some(quote!(::fa_runtime::ForwardArgs)),
        quote!(::fa_runtime::__private::forward),
    )
}

/// Only for `backward` cells, which are never fp8 or paged (the whitelist).
fn backward(spec: &KernelSpec) -> TokenStream {
    let e = spec.dtype();
    let (elem, i32_, f32_) = (element_type(e), quote!(i32), quote!(f32));
    let mut l = Launcher::default();
    l.doc("Backward attention of this cell: the gradients of `q`, `k` and `v` from the gradient of `out`, launched on `dev`.");
    l.doc("");
    shape_docs(&mut l, spec);
    l.doc(format!("- `out`: {e}, the forward output, the shape of `q`; `dout`: {e}, its gradient, the same shape"));
    l.doc(format!("- `lse`: {}, the log-sum-exp written by `forward`", lse_shape(spec)));
    l.doc(format!("- `dq`, `dk`, `dv`: {e} (written), the shapes of `q`, `k` and `v`"));
    for name in ["q", "k", "v", "out", "dout"] {
        l.input(name, &elem);
    }
    l.input("lse", &f32_);
    l.cell_input(spec.varlen(), "cu_seqlens_q", &i32_);
    l.cell_input(spec.varlen(), "cu_seqlens_k", &i32_);
    l.cell_input(spec.alibi(), "alibi_slopes", &f32_);
    for name in ["dq", "dk", "dv"] {
        l.output(name, &elem);
    }
    l.finish("backward", quote!(::fa_runtime::__private::BackwardCall), None, quote!(::fa_runtime::__private::backward))
}

/// Only for `paged` cells: writes new K/V tokens into the paged caches.
fn append(spec: &KernelSpec) -> TokenStream {
    let (e, d) = (spec.dtype(), spec.head_dim());
    let p = spec.page_size().unwrap_or_default();
    let elem = element_type(e);
    let docs: Vec<String> = [
        "Writes new K/V tokens into this cell's paged KV caches, launched on `dev`: token `t`, KV head `h` of"
            .to_string(),
        "`k_new` / `v_new` goes to slot `slot_mapping[t]` = page · page_size + offset of `k_cache` / `v_cache`."
            .to_string(),
        "A slot of −1 (padding) or outside the cache is skipped; nothing is written out of range.".to_string(),
        String::new(),
        "# Shapes".to_string(),
        format!("- `k_new`, `v_new`: {e} `[num_tokens, num_kv_heads, {d}]`"),
        "- `slot_mapping`: i64 `[num_tokens]`".to_string(),
        format!("- `k_cache`, `v_cache`: {e} `[num_blocks, {p}, num_kv_heads, {d}]` (written)"),
        String::new(),
        "Shapes, types and devices are checked before the launch; slot values are not (they live on the".to_string(),
        "device): `fa_runtime::paged::check_slot_mapping` turns bad slots into errors (it syncs).".to_string(),
    ]
    .into_iter()
    .map(|l| if l.is_empty() { l } else { format!(" {l}") })
    .collect();
    quote! {
        #(#[doc = #docs])*
        pub fn append(
            dev: &::fa_runtime::Device,
            k_new: &::fa_runtime::Tensor<#elem>,
            v_new: &::fa_runtime::Tensor<#elem>,
            slot_mapping: &::fa_runtime::Tensor<i64>,
            k_cache: &mut ::fa_runtime::Tensor<#elem>,
            v_cache: &mut ::fa_runtime::Tensor<#elem>,
        ) -> ::core::result::Result<(), ::fa_runtime::FaError> {
            ::fa_runtime::__private::append(dev, ::fa_runtime::__private::AppendCall {
                spec: &Self::SPEC,
                source: Self::CUDA_SOURCE,
                k_new: ::fa_runtime::Tensor::as_ref(k_new),
                v_new: ::fa_runtime::Tensor::as_ref(v_new),
                slot_mapping: ::fa_runtime::Tensor::as_ref(slot_mapping),
                k_cache: ::fa_runtime::Tensor::as_mut(k_cache),
                v_cache: ::fa_runtime::Tensor::as_mut(v_cache),
            })
        }
    }
}
