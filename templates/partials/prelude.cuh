// ---------------------------------------------------------------------------
// prelude: hermetic scalar types and inline-PTX wrappers (no CUDA headers).
// f16 / bf16 travel as raw 16-bit patterns, fp8 as raw bytes.
// ---------------------------------------------------------------------------
typedef unsigned char      u8;
typedef unsigned short     u16;
typedef unsigned int       u32;
typedef unsigned long long u64;

#define FA_DEVICE __device__ __forceinline__

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2   = 0.6931471805599453f;
#define FA_NEG_INF __int_as_float(0xff800000)  // -inf (not a constant expression in CUDA)

// Generic pointer -> 32-bit shared-window address.
FA_DEVICE u32 smem_addr(const void* ptr) {
    u32 addr;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }"
                 : "=r"(addr) : "l"(ptr));
    return addr;
}

// --- cp.async (sm80+): 16-byte global->shared copy; src_bytes = 0 zero-fills.
FA_DEVICE void cp_async_16(u32 dst, const void* src, bool pred) {
    const int src_bytes = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
FA_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
FA_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }

// --- ldmatrix: four 8x8 b16 matrices; lane l supplies the row address of
// matrix l/8, row l%8; register r of every lane holds matrix r.
FA_DEVICE void ldmatrix_x4(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 { %0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
FA_DEVICE void ldmatrix_x4_trans(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 { %0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// --- fast math
FA_DEVICE float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
FA_DEVICE float fast_log2(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
FA_DEVICE float fast_rcp(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
// tanh via exp2: absolute error ~1e-7 (tanh.approx.f32 is ~5e-4 relative,
// too coarse for the softcapped LSE contract).
FA_DEVICE float tanh_accurate(float x) {
    const float e = fast_exp2(2.0f * kLog2e * x);
    return 1.0f - 2.0f * fast_rcp(e + 1.0f);
}

// --- packing f32 pairs into 16-bit pairs (lo in the low half)
FA_DEVICE u32 pack_bf16x2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
FA_DEVICE u32 pack_f16x2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
template <bool kBF16>
FA_DEVICE u32 pack_x2(float lo, float hi) {
    if constexpr (kBF16) return pack_bf16x2(lo, hi);
    else return pack_f16x2(lo, hi);
}
// Bytes of {b, a} (a the low word) picked by the four nibbles of sel (prmt).
FA_DEVICE u32 byte_perm(u32 a, u32 b, u32 sel) {
    u32 r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
    return r;
}

FA_DEVICE float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
    return v;
}
FA_DEVICE float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}

struct alignas(16) U32x4 { u32 x, y, z, w; };
