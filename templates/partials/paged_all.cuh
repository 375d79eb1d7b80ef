// ===========================================================================
// Paged KV-cache extras of a paged cell, appended to the forward kernel's
// translation unit (templates/fwd.cu.tera) so one rendered source / one
// CUBIN carries {{ kernel_name }}_fwd and the entry points below:
//   {{ kernel_name }}_decode, {{ kernel_name }}_decode_unsplit, {{ kernel_name }}_decode_pair,
//   {{ kernel_name }}_decode_merge (where fa_spec::paged_decode holds: not
//   for fp8 cells at hd80, which decode through _fwd), {{ kernel_name }}_append.
// Only the cell constants fwd.cu.tera defines are used (kHeadDim, kIsBF16,
// kIsFp8, kWindow, kSink, kAlibi, kHasSoftcap, kSoftcap, kGqa, kPageSize);
// everything the paged partials add is prefixed kPd / Pd / paged_.
// ===========================================================================
static_assert(kHeadDim % 16 == 0, "head_dim must be a multiple of 16");
static_assert(kPageSize >= 1 && (kPageSize & (kPageSize - 1)) == 0, "page_size must be a power of two");
constexpr int kPdElemBytes = kIsFp8 ? 1 : 2;                 // bytes of a K/V element
constexpr int kPdChunks    = kHeadDim * kPdElemBytes / 16;  // 16-byte chunks per K/V row
{% include "partials/paged_params.cuh" %}
{% if paged_decode %}
{% include "partials/paged_decode.cuh" %}
{% endif %}
{% include "partials/paged_append.cuh" %}
{% include "partials/paged_entry.cuh" %}
