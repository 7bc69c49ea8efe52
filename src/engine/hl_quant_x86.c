/* hl_quant_x86: AVX2/FMA and AVX-512/VNNI dot-product kernels; see hl_quant_x86.h (the
 * K-quants' are in hl_quant_k_x86.c).
 *
 * Integer kernels use one of two tricks to multiply signed 8-bit weights by signed 8-bit
 * activations with instructions that want one unsigned operand: for Q8_0 the weight's sign
 * moves onto the activation (|w| * sign(w)*a); Q4_0 weights are unsigned before their
 * offset (0..15), which is applied afterwards through the activation block sums. The AVX2
 * versions multiply with vpmaddubsw (pairs into 16 bits, never overflowing here) and widen
 * with vpmaddwd; the AVX-512
 * versions use VNNI's vpdpbusd, which does both in one instruction, on 256-bit vectors
 * (AVX512VL), since a block is 32 values. */
#include "hl_quant_x86.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/* ---- AVX2 ------------------------------------------------------------------------------ */

T_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sum of u8 x s8 products, in 8 int32 lanes (each lane: 4 adjacent products). */
T_AVX2 static inline __m256i dot_us8_avx2(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

T_AVX2 static inline __m256i q4_unpack(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0f));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f));
    return _mm256_set_m128i(hi, lo);
}

T_AVX2 static float dot_f32_avx2(int n, const void *w, const void *act) {
    const float *a = w, *x = act;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(x + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * x[i];
    return s;
}

T_AVX2 static float dot_f16_avx2(int n, const void *w, const void *act) {
    const uint16_t *a = w, *x = act;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += hl_quant_f16_to_f32(a[i]) * hl_quant_f16_to_f32(x[i]);
    return s;
}

T_AVX2 static float dot_bf16_avx2(int n, const void *w, const void *act) {
    const uint16_t *a = w;
    const float *x = act;
    __m256 s0 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 f = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
        s0 = _mm256_fmadd_ps(f, _mm256_loadu_ps(x + i), s0);
    }
    float s = hsum8(s0);
    for (; i < n; i++) s += hl_quant_bf16_to_f32(a[i]) * x[i];
    return s;
}

T_AVX2 static float dot_q8_0_avx2(int n, const void *w, const void *act) {
    const hl_block_q8_0 *b = w;
    const hl_act_q8 *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++) {
        __m256i qw = _mm256_loadu_si256((const __m256i *)b[i].qs);
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i p = dot_us8_avx2(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
        __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d) * a[i].d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    return hsum8(acc);
}

/* llama.cpp's order for Q4_0 matrices it does not repack (its vec_dot on AVX2 and AVX-512):
 * signed weights (nibble - 8), 8 lanes of 4 products, one fma per lane and block, the lanes
 * summed at the end; hl_model uses it for Q4_0 matrices whose rows are not a multiple of 8. */
T_AVX2 static float dot_q4_0_avx2(int n, const void *w, const void *act) {
    const hl_block_q4_0 *b = w;
    const hl_act_q8 *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++) {
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i qw = _mm256_sub_epi8(q4_unpack(b[i].qs), _mm256_set1_epi8(8));
        __m256i p = dot_us8_avx2(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
        float d = _cvtsh_ss(b[i].d) * a[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum8(acc);
}

/* Vector helpers over halves. */
T_AVX2 static float vdot_f16_avx2(int n, const uint16_t *x, const uint16_t *y) {
    return dot_f16_avx2(n, x, y);
}

T_AVX2 static void vmad_f16_avx2(int n, uint16_t *y, const uint16_t *x, float v) {
    __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 r = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), vv,
                                   _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))));
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++)
        y[i] = hl_quant_f32_to_f16(__builtin_fmaf(hl_quant_f16_to_f32(x[i]), v, hl_quant_f16_to_f32(y[i])));
}

T_AVX2 static void vscale_f16_avx2(int n, uint16_t *y, float v) {
    __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 r = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), vv);
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) y[i] = hl_quant_f32_to_f16(hl_quant_f16_to_f32(y[i]) * v);
}

T_AVX2 static void vto_f16_avx2(int n, const float *x, uint16_t *y) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = hl_quant_f32_to_f16(x[i]);
}

T_AVX2 static void vfrom_f16_avx2(int n, const uint16_t *x, float *y) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = hl_quant_f16_to_f32(x[i]);
}

static const hl_quant_vec_ops vec_avx2 = {vdot_f16_avx2, vmad_f16_avx2, vscale_f16_avx2,
                                          vto_f16_avx2, vfrom_f16_avx2, NULL};

/* ---- AVX-512 + VNNI --------------------------------------------------------------------- */

T_AVX2 static inline float _mm256_reduce_add_ps_x(__m256 v) { return hsum8(v); }

T_AVX512 static float dot_f32_avx512(int n, const void *w, const void *act) {
    const float *a = w, *x = act;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(x + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, x + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* llama.cpp's order (its ggml_vec_dot_f16 on AVX-512), so that F16 matrices and attention
 * scores round as its do: four accumulators over steps of 64, summed (0+2, 1+3, then the two),
 * the total taken to double, and the last n % 64 products added one by one in double. */
T_AVX512 static float dot_f16_avx512(int n, const void *w, const void *act) {
    const uint16_t *a = w, *x = act;
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 4; j++)
            s[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i + 16 * j))),
                                   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16 * j))), s[j]);
    double sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[1], s[3])));
    for (; i < n; i++) sum += (double)(_cvtsh_ss(a[i]) * _cvtsh_ss(x[i]));
    return (float)sum;
}

T_AVX512 static float dot_bf16_avx512(int n, const void *w, const void *act) {
    const uint16_t *a = w;
    const float *x = act;
    __m512 s0 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + i)));
        s0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), _mm512_loadu_ps(x + i), s0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, a + i));
        s0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)),
                             _mm512_maskz_loadu_ps(m, x + i), s0);
    }
    return _mm512_reduce_add_ps(s0);
}

/* Q4_0 and Q8_0 dot products for one token (decoding). Several blocks' quantized values are
 * loaded side by side into one 512-bit vector (Q4_0: 4 blocks of 16 bytes, Q8_0: 2 blocks
 * of 32), with their half-precision scales spread over the lanes; the activations were laid
 * out to match once per matmul (hl_act_q8q, hl_act_q8p). The weights are multiplied unsigned
 * (Q4_0 nibbles, Q8_0 values + 128), the offset that costs being the accumulator's starting
 * value, and each lane (4 values of one block) is scaled and summed in float; the lanes are
 * added at the end. About 3 vector instructions per block: on this class of CPU the
 * instruction count, as much as the fetch of the weights from memory, sets the speed
 * (word-permutation gathers measured 25% slower than these loads). A last partial group
 * reads only the blocks that exist. */
/* Software prefetch distance in bytes for the Q4_0 kernel (0: none). Weights come from the
 * page cache in 4 KiB pages, across which the hardware prefetcher may not follow a stream:
 * 2048 bytes ahead measured 7% faster on the TinyLlama-shaped Q4_0 file than none; the
 * Q8_0 kernel, which streams twice the bytes for the same work, measured 6% faster
 * without. */
#ifndef DOT_PREFETCH
#define DOT_PREFETCH 2048
#endif
static const uint16_t q4q_didx[32] __attribute__((aligned(64))) = {
    0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};

static inline void dot_prefetch(const uint8_t *p, int lines) {
#if DOT_PREFETCH > 0
    for (int k = 0; k < lines; k++) __builtin_prefetch(p + DOT_PREFETCH + 64 * k, 0, 3);
#else
    (void)p, (void)lines;
#endif
}

/* Four Q4_0 blocks at p (nblk of them real: the rest read as zero). */
T_AVX512 static inline __attribute__((always_inline)) __m512
q4q_group(const uint8_t *p, int nblk, __m512i didx, const hl_act_q8q *a, __m512 acc) {
    __m512i q, z0;
    if (nblk == 4) {
        __m256i lo = _mm256_loadu2_m128i((const __m128i *)(p + 20), (const __m128i *)(p + 2));
        __m256i hi = _mm256_loadu2_m128i((const __m128i *)(p + 56), (const __m128i *)(p + 38));
        q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        z0 = _mm512_loadu_si512(p);
    } else {
        uint8_t buf[72] = {0};
        memcpy(buf, p, (size_t)nblk * 18);
        __m256i lo = _mm256_loadu2_m128i((const __m128i *)(buf + 20), (const __m128i *)(buf + 2));
        __m256i hi = _mm256_loadu2_m128i((const __m128i *)(buf + 56), (const __m128i *)(buf + 38));
        q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        z0 = _mm512_loadu_si512(buf);
    }
    __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(didx, z0)));
    __m512i lo = _mm512_and_si512(q, _mm512_set1_epi8(0x0f));
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), _mm512_set1_epi8(0x0f));
    __m512i s = _mm512_dpbusd_epi32(_mm512_loadu_si512(a->off), lo, _mm512_loadu_si512(a->lo));
    s = _mm512_dpbusd_epi32(s, hi, _mm512_loadu_si512(a->hi));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_loadu_ps(a->d)), acc);
}

T_AVX512 static float dot_q4_0_avx512(int n, const void *w, const void *act) {
    const uint8_t *p = w;
    const hl_act_q8q *a = act;
    const __m512i didx = _mm512_load_si512(q4q_didx);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int nb = n / 32, i = 0;
    for (; i + 8 <= nb; i += 8, p += 144, a += 2) {
        dot_prefetch(p, 2);
        acc0 = q4q_group(p, 4, didx, a, acc0);
        acc1 = q4q_group(p + 72, 4, didx, a + 1, acc1);
    }
    for (; i < nb; i += 4, p += 72, a++) acc0 = q4q_group(p, nb - i < 4 ? nb - i : 4, didx, a, acc0);
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* Two Q8_0 blocks at p (the second one zero unless two). */
T_AVX512 static inline __attribute__((always_inline)) __m512
q8p_group(const uint8_t *p, int two, const hl_act_q8p *a, __m512 acc) {
    uint16_t d0, d1 = 0;
    memcpy(&d0, p, 2);
    __m256i q1 = _mm256_set1_epi8((char)0x80);
    if (two) {
        memcpy(&d1, p + 34, 2);
        q1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 36)), q1);
    }
    __m256i q0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_set1_epi8((char)0x80));
    __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    __m512 dw = _mm512_cvtph_ps(_mm256_blend_epi32(_mm256_set1_epi16((short)d0), _mm256_set1_epi16((short)d1), 0xf0));
    __m512i s = _mm512_dpbusd_epi32(_mm512_loadu_si512(a->off), q, _mm512_loadu_si512(a->qs));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_loadu_ps(a->d)), acc);
}

T_AVX512 static float dot_q8_0_avx512(int n, const void *w, const void *act) {
    const uint8_t *p = w;
    const hl_act_q8p *a = act;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int nb = n / 32, i = 0;
    for (; i + 4 <= nb; i += 4, p += 136, a += 2) {
        acc0 = q8p_group(p, 1, a, acc0);
        acc1 = q8p_group(p + 68, 1, a + 1, acc1);
    }
    for (; i < nb; i += 2, p += 68, a++) acc0 = q8p_group(p, nb - i >= 2, a, acc0);
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* Decoding on repacked weights (hl_quant_x4_pack): four rows per group, one stream. Q4_0: a
 * block of the 4 rows is one 512-bit load (128-bit lane r = row r's 16 bytes), multiplied
 * with the block's activations broadcast to the 4 lanes; Q8_0: two loads, rows 0-1 and 2-3.
 * The scales of the 4 rows are converted once and spread over their lanes. */
static const uint32_t x4_q4_didx[16] __attribute__((aligned(64))) = {0, 0, 0, 0, 1, 1, 1, 1,
                                                                     2, 2, 2, 2, 3, 3, 3, 3};
static const uint32_t x4_q8_didx[32] __attribute__((aligned(64))) = {
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};

/* The 4 rows' scales at g times the activation's, as 4 floats. */
T_AVX512 static inline __attribute__((always_inline)) __m128 x4_scales(const uint8_t *g, float da) {
    return _mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)g)), _mm_set1_ps(da));
}

T_AVX512 static void x4_q4_0_avx512(int n, const void *w, const void *act, float *out) {
    const uint8_t *g = w;
    const hl_act_q8x *a = act;
    const __m512i didx = _mm512_load_si512(x4_q4_didx), m4 = _mm512_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n / 32; i++, g += 72, a++) {
        /* One stream, usually in huge pages, which the hardware prefetcher follows; asking 4 KiB
         * ahead measured the same or slightly better (2 KiB: slightly worse). */
        __builtin_prefetch(g + 4096, 0, 3);
        __m512i z = _mm512_loadu_si512(g + 8);
        __m512i lo = _mm512_and_si512(z, m4), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        __m512i s = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a->off4));
        s = _mm512_dpbusd_epi32(s, lo, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a->qs)));
        s = _mm512_dpbusd_epi32(s, hi, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(a->qs + 16))));
        /* Each row's block total, exact in integers, in all 4 of its lanes: then one fma per
         * block, llama.cpp's order for Q4_0 (its repacked kernels), so that a greedy decode
         * rounds as its does. */
        s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_CDAB));
        s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_BADC));
        __m512 sc = _mm512_permutexvar_ps(didx, _mm512_castps128_ps512(x4_scales(g, a->d)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, acc);
    }
    /* lanes 4r..4r+3 all hold row r's sum */
    float v[16];
    _mm512_storeu_ps(v, acc);
    for (int r = 0; r < 4; r++) out[r] = v[4 * r];
}

T_AVX512 static void x4_q8_0_avx512(int n, const void *w, const void *act, float *out) {
    const uint8_t *g = w;
    const hl_act_q8x *a = act;
    const __m512i d01 = _mm512_load_si512(x4_q8_didx), d23 = _mm512_load_si512(x4_q8_didx + 16);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int i = 0; i < n / 32; i++, g += 136, a++) {
        __m512i av = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)a->qs));
        __m512i off = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)a->off8));
        __m512i s0 = _mm512_dpbusd_epi32(off, _mm512_xor_si512(_mm512_loadu_si512(g + 8), x80), av);
        __m512i s1 = _mm512_dpbusd_epi32(off, _mm512_xor_si512(_mm512_loadu_si512(g + 72), x80), av);
        __m512 sc = _mm512_castps128_ps512(x4_scales(g, a->d));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_permutexvar_ps(d01, sc), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), _mm512_permutexvar_ps(d23, sc), acc1);
    }
    /* lanes 0-7 and 8-15 of acc0 are rows 0 and 1, of acc1 rows 2 and 3 */
    out[0] = _mm256_reduce_add_ps_x(_mm512_castps512_ps256(acc0));
    out[1] = _mm256_reduce_add_ps_x(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc0), 1)));
    out[2] = _mm256_reduce_add_ps_x(_mm512_castps512_ps256(acc1));
    out[3] = _mm256_reduce_add_ps_x(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc1), 1)));
}

/* ---- GEMM for prompts (AVX-512 VNNI) ----------------------------------------------------
 *
 * One 512-bit vector holds 16 tokens (one int32 lane each), so a block's integer dot product
 * is finished in the lane, and the scale, conversion and fma happen once per block for 16
 * (row, token) pairs instead of once per pair. For each group g of 4 weight values, one
 * vpdpbusd multiplies the 16 tokens' activations (unsigned: value + 128, from
 * hl_quant_actx_pack()) with the row's 4 signed weights broadcast to every lane; the +128
 * costs 128 * (sum of the block's weights), subtracted by starting the lane there.
 *
 * A register tile is 4 rows x 32 tokens (8 integer and 8 float accumulators). The weights of
 * 4 rows are first unpacked, a chunk of columns at a time, into signed bytes, float scales
 * and the -128 * sum corrections on the stack (read by broadcasting loads); each chunk then
 * serves up to 128 tokens, so unpacking costs little. */
#define GEMM_KB 64   /* blocks per chunk of columns */
#define GEMM_TOK 128 /* tokens per pass over a chunk */
#define GEMM_ROWS 16 /* rows whose sums are kept before they are written out */
#define ACTX_BLOCK 576

typedef struct gemm_rows {
    int8_t q[4][GEMM_KB * 32];
    float d[4][GEMM_KB];
    int32_t corr[4][GEMM_KB];
} gemm_rows;

/* Where row r's blocks are: block i's scale at d + i * stride, its values at q + i * stride
 * (the file's layout: stride = the block size; repacked: the 4-row group's block size). */
typedef struct gemm_src {
    const uint8_t *d, *q;
    size_t stride;
} gemm_src;

static gemm_src gemm_row(const uint8_t *w, size_t ws, int row, int q8, int x4) {
    size_t bs = q8 ? sizeof(hl_block_q8_0) : sizeof(hl_block_q4_0), qs = bs - 2;
    if (!x4) return (gemm_src){w + (size_t)row * ws, w + (size_t)row * ws + 2, bs};
    const uint8_t *g = w + (size_t)(row / 4) * ws;
    return (gemm_src){g + 2 * (row % 4), g + 8 + qs * (row % 4), 8 + 4 * qs};
}

/* Unpacks blocks [i0, i0 + nbc) of a row (q8: Q8_0, else Q4_0) into slot r. */
T_AVX512 static void gemm_unpack(gemm_rows *u, int r, gemm_src src, int i0, int nbc, int q8) {
    for (int i = 0; i < nbc; i++) {
        __m256i v;
        uint16_t dh;
        int32_t sum;
        const uint8_t *bq = src.q + (size_t)(i0 + i) * src.stride;
        memcpy(&dh, src.d + (size_t)(i0 + i) * src.stride, 2);
        if (q8) {
            v = _mm256_loadu_si256((const __m256i *)bq);
            /* sum of (w + 128), less 32 * 128 */
            __m256i s = _mm256_sad_epu8(_mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)),
                                        _mm256_setzero_si256());
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            sum = (int32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
        } else {
            __m128i raw = _mm_loadu_si128((const __m128i *)bq);
            __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
            __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f));
            __m256i nib = _mm256_set_m128i(hi, lo);
            __m256i s = _mm256_sad_epu8(nib, _mm256_setzero_si256());
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            sum = (int32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 8;
            v = _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
        }
        _mm256_storeu_si256((__m256i *)(u->q[r] + 32 * i), v);
        u->d[r][i] = _cvtsh_ss(dh);
        u->corr[r][i] = -128 * sum;
    }
}

static inline int32_t gemm_w4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* NR rows (slots 0..NR-1, or slot r0 for NR == 1) x NV vectors of 16 tokens over nbc blocks;
 * acc holds the running sums (acc[r][v*16 + l]), ax the activations of the first token
 * group at the chunk's first block, the second group gs bytes further. */
T_AVX512 static inline __attribute__((always_inline)) void
gemm_tile(const gemm_rows *u, int r0, int nbc, const uint8_t *ax, size_t gs, float *acc,
          size_t acc_stride, const int NR, const int NV) {
    __m512 f[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) f[r][v] = _mm512_loadu_ps(acc + (r0 + r) * acc_stride + 16 * v);
    for (int i = 0; i < nbc; i++, ax += ACTX_BLOCK) {
        __m512i s[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m512i c = _mm512_set1_epi32(u->corr[r0 + r][i]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) s[r][v] = c;
        }
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i a0 = _mm512_loadu_si512(ax + 64 * g), a1 = a0;
            if (NV == 2) a1 = _mm512_loadu_si512(ax + gs + 64 * g);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                __m512i wv = _mm512_set1_epi32(gemm_w4(u->q[r0 + r] + 32 * i + 4 * g));
                s[r][0] = _mm512_dpbusd_epi32(s[r][0], a0, wv);
                if (NV == 2) s[r][1] = _mm512_dpbusd_epi32(s[r][1], a1, wv);
            }
        }
        __m512 da0 = _mm512_loadu_ps(ax + 512), da1 = da0;
        if (NV == 2) da1 = _mm512_loadu_ps(ax + gs + 512);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m512 dw = _mm512_set1_ps(u->d[r0 + r][i]);
            f[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][0]), _mm512_mul_ps(dw, da0), f[r][0]);
            if (NV == 2)
                f[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][1]), _mm512_mul_ps(dw, da1), f[r][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(acc + (r0 + r) * acc_stride + 16 * v, f[r][v]);
}

#define HL_GEMM_TILE(NAME, NR, NV)                                                          \
    T_AVX512 static void NAME(const gemm_rows *u, int r0, int nbc, const uint8_t *ax,       \
                              size_t gs, float *acc, size_t acc_stride) {                   \
        gemm_tile(u, r0, nbc, ax, gs, acc, acc_stride, NR, NV);                             \
    }
HL_GEMM_TILE(gemm_tile_4x2, 4, 2)
HL_GEMM_TILE(gemm_tile_4x1, 4, 1)
HL_GEMM_TILE(gemm_tile_1x2, 1, 2)
HL_GEMM_TILE(gemm_tile_1x1, 1, 1)

T_AVX512 static void gemm_any(int n, const void *w, size_t ws, int nr, const void *actx, int nt,
                              float *out, size_t os, int q8, int x4) {
    int nb = n / 32, ng = (nt + 15) / 16;
    size_t gs = (size_t)nb * ACTX_BLOCK;
    gemm_rows u;
    /* Sums for 16 rows, written out at the end as one 64-byte line per token: the output's
     * rows are a matrix row apart, and 4-byte stores a row apart missed the cache. */
    float acc[GEMM_ROWS][GEMM_TOK] __attribute__((aligned(64)));
    for (int g0 = 0; g0 < ng; g0 += GEMM_TOK / 16) {
        int g1 = g0 + GEMM_TOK / 16 < ng ? g0 + GEMM_TOK / 16 : ng;
        for (int R0 = 0; R0 < nr; R0 += GEMM_ROWS) {
            int Rn = nr - R0 < GEMM_ROWS ? nr - R0 : GEMM_ROWS;
            memset(acc, 0, sizeof acc);
            for (int i0 = 0; i0 < nb; i0 += GEMM_KB) {
                int nbc = nb - i0 < GEMM_KB ? nb - i0 : GEMM_KB;
                for (int r0 = 0; r0 < Rn; r0 += 4) {
                    int rn = Rn - r0 < 4 ? Rn - r0 : 4;
                    for (int r = 0; r < rn; r++)
                        gemm_unpack(&u, r, gemm_row(w, ws, R0 + r0 + r, q8, x4), i0, nbc, q8);
                    for (int g = g0; g < g1; g += 2) {
                        const uint8_t *ax = (const uint8_t *)actx + (size_t)g * gs + (size_t)i0 * ACTX_BLOCK;
                        float *a = &acc[r0][16 * (g - g0)];
                        int two = g + 1 < g1;
                        if (rn == 4) {
                            if (two) gemm_tile_4x2(&u, 0, nbc, ax, gs, a, GEMM_TOK);
                            else gemm_tile_4x1(&u, 0, nbc, ax, gs, a, GEMM_TOK);
                        } else {
                            for (int r = 0; r < rn; r++) {
                                if (two) gemm_tile_1x2(&u, r, nbc, ax, gs, a, GEMM_TOK);
                                else gemm_tile_1x1(&u, r, nbc, ax, gs, a, GEMM_TOK);
                            }
                        }
                    }
                }
            }
            int t1 = 16 * g1 < nt ? 16 * g1 : nt;
            for (int t = 16 * g0; t < t1; t++)
                for (int r = 0; r < Rn; r++) out[(size_t)t * os + R0 + r] = acc[r][t - 16 * g0];
        }
    }
}

/* hl_quant_actx_pack() with AVX-512: the same roundings as quantize_act_q8_scalar() (the
 * scale rounded to half precision, x * (127 / amax) rounded to nearest even by the current
 * rounding mode, as lrintf() does), so the same bytes. */
T_AVX512 static void actx_pack_avx512(const float *x, size_t x_stride, int nt, int n, void *dst) {
    int nb = n / 32, ng = (nt + 15) / 16;
    uint8_t *o = dst;
    for (int t = 0; t < ng * 16; t++) {
        uint8_t *g = o + (size_t)(t / 16) * nb * ACTX_BLOCK + 4 * (t % 16);
        const float *xt = x + (size_t)t * x_stride;
        for (int i = 0; i < nb; i++, g += ACTX_BLOCK) {
            __m128i q0 = _mm_set1_epi8((char)0x80), q1 = q0;
            float d = 0;
            if (t < nt) {
                __m512 x0 = _mm512_loadu_ps(xt + 32 * i), x1 = _mm512_loadu_ps(xt + 32 * i + 16);
                float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
                float id = amax != 0 ? 127.0f / amax : 0;
                d = _cvtsh_ss(_cvtss_sh(amax / 127, _MM_FROUND_TO_NEAREST_INT));
                __m512 vid = _mm512_set1_ps(id);
                q0 = _mm_xor_si128(_mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, vid))), q0);
                q1 = _mm_xor_si128(_mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, vid))), q1);
            }
            uint32_t v[8];
            _mm_storeu_si128((__m128i *)v, q0);
            _mm_storeu_si128((__m128i *)(v + 4), q1);
            for (int k = 0; k < 8; k++) memcpy(g + 64 * k, &v[k], 4);
            memcpy(g + 512, &d, 4);
        }
    }
}

/* hl_act_q8x blocks for decoding with the same roundings (so the same bytes) as the scalar
 * quantization. */
T_AVX512 static void quantize_q8x_avx512(const float *x, hl_act_q8x *p, int n) {
    const __m128i ones = _mm_set1_epi8(1);
    for (int i = 0; i < n / 32; i++, x += 32) {
        __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        float id = amax != 0 ? 127.0f / amax : 0;
        __m512 vid = _mm512_set1_ps(id);
        __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, vid)));
        __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, vid)));
        /* sums of each 4 consecutive values: groups 0-3 and 4-7 */
        __m128i s0 = _mm_dpbusd_epi32(_mm_setzero_si128(), ones, q0);
        __m128i s1 = _mm_dpbusd_epi32(_mm_setzero_si128(), ones, q1);
        memset(&p[i], 0, sizeof p[i]);
        _mm_storeu_si128((__m128i *)p[i].qs, q0);
        _mm_storeu_si128((__m128i *)(p[i].qs + 16), q1);
        _mm_storeu_si128((__m128i *)p[i].off4,
                         _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(_mm_add_epi32(s0, s1), 3)));
        _mm_storeu_si128((__m128i *)p[i].off8, _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(s0, 7)));
        _mm_storeu_si128((__m128i *)(p[i].off8 + 4), _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(s1, 7)));
        p[i].d = _cvtsh_ss(_cvtss_sh(amax / 127, _MM_FROUND_TO_NEAREST_INT));
    }
}

/* hl_act_q8k blocks with the scalar quantization's roundings (so the same bytes): the
 * maximum is exact in any order, x * id is one rounded multiply, vcvtps2dq rounds to
 * nearest even as lrintf does, and each vector of 16 values is one of the 16-value sums. */
T_AVX512 static void quantize_q8k_avx512(const float *x, hl_act_q8k *b, int n) {
    for (int i = 0; i < n / 256; i++, x += 256) {
        __m512 mx = _mm512_setzero_ps();
        for (int v = 0; v < 16; v++) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)));
        float amax = _mm512_reduce_max_ps(mx);
        float d = amax / 127, id = d ? 1 / d : 0;
        __m512 vid = _mm512_set1_ps(id);
        for (int v = 0; v < 16; v++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * v), vid));
            _mm_storeu_si128((__m128i *)(b[i].qs + 16 * v), _mm512_cvtepi32_epi8(q));
            b[i].bsums[v] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        b[i].d = d;
    }
}

static void gemm_q4_0_avx512(int n, const void *w, size_t ws, int nr, const void *actx, int nt,
                             float *out, size_t os) {
    gemm_any(n, w, ws, nr, actx, nt, out, os, 0, 0);
}

static void gemm_q8_0_avx512(int n, const void *w, size_t ws, int nr, const void *actx, int nt,
                             float *out, size_t os) {
    gemm_any(n, w, ws, nr, actx, nt, out, os, 1, 0);
}

static void gemm_q4_0_x4_avx512(int n, const void *w, size_t ws, int nr, const void *actx, int nt,
                                float *out, size_t os) {
    gemm_any(n, w, ws, nr, actx, nt, out, os, 0, 1);
}

static void gemm_q8_0_x4_avx512(int n, const void *w, size_t ws, int nr, const void *actx, int nt,
                                float *out, size_t os) {
    gemm_any(n, w, ws, nr, actx, nt, out, os, 1, 1);
}

T_AVX512 static float vdot_f16_avx512(int n, const uint16_t *x, const uint16_t *y) {
    return dot_f16_avx512(n, x, y);
}

T_AVX512 static void vmad_f16_avx512(int n, uint16_t *y, const uint16_t *x, float v) {
    __m512 vv = _mm512_set1_ps(v);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 r = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), vv,
                                   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i))));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
    }
    if (i < n) vmad_f16_avx2(n - i, y + i, x + i, v);
}

T_AVX512 static void vscale_f16_avx512(int n, uint16_t *y, float v) {
    __m512 vv = _mm512_set1_ps(v);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 r = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i))), vv);
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
    }
    if (i < n) vscale_f16_avx2(n - i, y + i, v);
}

#define ATTN_MAXC 16
#define ATTN_TILE 32
#define ATTN_MAXQ 8 /* query heads whose state is kept through a tile of positions */
#define ATTN_MAXF 4 /* query heads whose accumulators are updated together (nf) */
/* The fast path of vattn_f16_avx512 for nc vectors of 16 per head; inlined with nc (and nf)
 * constants for the common head sizes (64, 128), so that the accumulators stay in registers
 * while the heads go through a tile (indexed by a variable, they went through the stack, a
 * store and a load in each step's chain).
 *
 * The nq query heads share the keys and values (grouped-query attention): a tile of
 * positions is converted from half precision once, into kf and vf, and the heads go through
 * it with their state (maximum, sum, accumulator as floats that are always
 * half-representable) kept in mx, sum and af between tiles, so that storing and reloading it
 * changes no bit. Per head, a tile is three passes: the scores, which do not depend on each
 * other; the running maximum and the exponentials, where only the comparisons are a chain
 * and the expf calls can overlap; then the accumulator updates, the one chain left, which
 * nf heads (nf * nc accumulators in registers) take together, position by position, so that
 * their chains (an fma and a round trip through half precision per step) overlap. The
 * arithmetic of each step is the same, in the same order, as one pass position by position.
 * Head size 64, 160 positions, 8 query heads per KV head (Zen 4, from cache): 26 ns a
 * position and head in one pass with the accumulators on the stack, 13.3 ns in registers
 * head by head, 11.0 ns with the conversions shared and 4 heads' updates together. (The
 * scores' sums vectorized over 16 positions, the same additions transposed, gave nothing
 * more.) */
T_AVX512 static inline __attribute__((always_inline)) void
attn_tiles_avx512(int nc, int nf, int hd, int nq, int n_pos, const uint16_t *q, const uint16_t *k,
                  const uint16_t *v, size_t stride, float scale, uint16_t *acc, float *sums) {
    float mx[ATTN_MAXQ], sum[ATTN_MAXQ];
    float qf[ATTN_MAXQ * 16 * ATTN_MAXC] __attribute__((aligned(64)));
    float af[ATTN_MAXQ * 16 * ATTN_MAXC] __attribute__((aligned(64)));
    float kf[ATTN_TILE * 16 * ATTN_MAXC] __attribute__((aligned(64)));
    float vf[ATTN_TILE * 16 * ATTN_MAXC] __attribute__((aligned(64)));
    for (int h = 0; h < nq; h++) {
        mx[h] = -INFINITY;
        sum[h] = 0;
        for (int c = 0; c < nc; c++) {
            _mm512_store_ps(qf + h * hd + 16 * c, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q + h * hd + 16 * c))));
            _mm512_store_ps(af + h * hd + 16 * c, _mm512_setzero_ps());
        }
    }
    for (int s0 = 0; s0 < n_pos; s0 += ATTN_TILE) {
        int ns = n_pos - s0 < ATTN_TILE ? n_pos - s0 : ATTN_TILE;
        for (int s = 0; s < ns; s++) {
            /* The next tile's rows, which the heads' work on this one leaves time to fetch: a
             * layer's cache is read once per step, so it comes from memory (with the cache
             * evicted, 160 positions: 18.7-19.5 ns a position and head without, 17.6-17.9
             * with; the hardware prefetcher alone does not follow the rows' stride far
             * enough). */
            if (s0 + ATTN_TILE + s < n_pos)
                for (int b = 0; b < 2 * hd; b += 64) {
                    size_t at = (size_t)(s0 + ATTN_TILE + s) * stride * 2 + (size_t)b;
                    _mm_prefetch((const char *)k + at, _MM_HINT_T0);
                    _mm_prefetch((const char *)v + at, _MM_HINT_T0);
                }
            for (int c = 0; c < nc; c++) {
                size_t at = (size_t)(s0 + s) * stride + 16 * (size_t)c;
                _mm512_store_ps(kf + s * hd + 16 * c, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + at))));
                _mm512_store_ps(vf + s * hd + 16 * c, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + at))));
            }
        }
        /* nf heads at a time through the accumulator updates: their chains interleave */
        for (int h0 = 0; h0 < nq; h0 += nf) {
            int nh = nq - h0 < nf ? nq - h0 : nf;
            float sc[ATTN_MAXF][ATTN_TILE], msv[ATTN_MAXF][ATTN_TILE], vsv[ATTN_MAXF][ATTN_TILE];
            bool up[ATTN_MAXF][ATTN_TILE]; /* a new maximum: the accumulator is rescaled by msv first */
            for (int f = 0; f < nh; f++) {
                int h = h0 + f;
                const float *qh = qf + h * hd;
                __m512 qv[ATTN_MAXC];
                _Pragma("GCC unroll 16")
                for (int c = 0; c < ATTN_MAXC; c++) qv[c] = c < nc ? _mm512_load_ps(qh + 16 * c) : _mm512_setzero_ps();
                for (int s = 0; s < ns; s++) {
                    const float *ks = kf + s * hd;
                    /* The score in dot_f16_avx512's order: 4 accumulators over steps of 64,
                     * the rest in double. */
                    __m512 d[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
                    int full = nc / 4 * 4;
                    _Pragma("GCC unroll 16")
                    for (int c = 0; c < full; c++)
                        d[c % 4] = _mm512_fmadd_ps(qv[c], _mm512_load_ps(ks + 16 * c), d[c % 4]);
                    double sd = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(d[0], d[2]), _mm512_add_ps(d[1], d[3])));
                    for (int i = 16 * full; i < hd; i++) sd += (double)(qh[i] * ks[i]);
                    sc[f][s] = (float)sd * scale;
                }
                for (int s = 0; s < ns; s++) {
                    up[f][s] = sc[f][s] > mx[h];
                    msv[f][s] = vsv[f][s] = 1;
                    if (up[f][s]) {
                        msv[f][s] = expf(mx[h] - sc[f][s]);
                        mx[h] = sc[f][s];
                    } else {
                        vsv[f][s] = expf(sc[f][s] - mx[h]);
                    }
                    float t = sum[h] * msv[f][s]; /* two statements: never contracted into an fma */
                    sum[h] = t + vsv[f][s];
                }
            }
            __m512 a[ATTN_MAXF][ATTN_MAXC];
            /* all of them set: the compiler cannot tell that the unrolled loops stop at nc */
            _Pragma("GCC unroll 4")
            for (int f = 0; f < ATTN_MAXF; f++)
                _Pragma("GCC unroll 16")
                for (int c = 0; c < ATTN_MAXC; c++)
                    a[f][c] = f < nh && c < nc ? _mm512_load_ps(af + (h0 + f) * hd + 16 * c) : _mm512_setzero_ps();
            for (int s = 0; s < ns; s++) {
                const float *vs_ = vf + s * hd;
                _Pragma("GCC unroll 4")
                for (int f = 0; f < nf; f++) {
                    if (f >= nh) break;
                    if (up[f][s]) {
                        __m512 m = _mm512_set1_ps(msv[f][s]);
                        _Pragma("GCC unroll 16")
                        for (int c = 0; c < nc; c++)
                            a[f][c] = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(a[f][c], m), _MM_FROUND_TO_NEAREST_INT));
                    }
                    __m512 w = _mm512_set1_ps(vsv[f][s]);
                    _Pragma("GCC unroll 16")
                    for (int c = 0; c < nc; c++)
                        a[f][c] = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_fmadd_ps(_mm512_load_ps(vs_ + 16 * c), w, a[f][c]),
                                                                  _MM_FROUND_TO_NEAREST_INT));
                }
            }
            _Pragma("GCC unroll 4")
            for (int f = 0; f < nf; f++) {
                if (f >= nh) break;
                _Pragma("GCC unroll 16")
                for (int c = 0; c < nc; c++) _mm512_store_ps(af + (h0 + f) * hd + 16 * c, a[f][c]);
            }
        }
    }
    for (int h = 0; h < nq; h++) {
        for (int c = 0; c < nc; c++)
            _mm256_storeu_si256((__m256i *)(acc + h * hd + 16 * c),
                                _mm512_cvtps_ph(_mm512_load_ps(af + h * hd + 16 * c), _MM_FROUND_TO_NEAREST_INT));
        sums[h] = sum[h];
    }
}

/* One query head's steps one call at a time (head sizes the tiles do not take). */
T_AVX512 static float attn_head_steps_avx512(int hd, int n_pos, const uint16_t *q, const uint16_t *k,
                                             const uint16_t *v, size_t stride, float scale, uint16_t *acc) {
    float mx = -INFINITY, sum = 0;
    memset(acc, 0, (size_t)hd * sizeof *acc);
    for (int s = 0; s < n_pos; s++) {
        float sc = vdot_f16_avx512(hd, q, k + (size_t)s * stride) * scale;
        float ms = 1, vs = 1;
        if (sc > mx) {
            ms = expf(mx - sc);
            mx = sc;
            vscale_f16_avx512(hd, acc, ms);
        } else {
            vs = expf(sc - mx);
        }
        vmad_f16_avx512(hd, acc, v + (size_t)s * stride, vs);
        float t = sum * ms; /* two statements: never contracted into an fma */
        sum = t + vs;
    }
    return sum;
}

/* The attention steps of hl_quant_vec_ops.attn_f16 for nq query heads with the accumulators
 * as floats that are always half-representable (each step rounds through half precision, as
 * storing it would). Head sizes that are multiples of 16 up to 256, ATTN_MAXQ heads at a
 * time; others take the steps one call at a time. */
T_AVX512 static void vattn_f16_avx512(int hd, int nq, int n_pos, const uint16_t *q, const uint16_t *k,
                                      const uint16_t *v, size_t stride, float scale, uint16_t *acc, float *sums) {
    if (hd % 16 || hd > 16 * ATTN_MAXC) {
        for (int h = 0; h < nq; h++)
            sums[h] = attn_head_steps_avx512(hd, n_pos, q + (size_t)h * hd, k, v, stride, scale, acc + (size_t)h * hd);
        return;
    }
    for (int h0 = 0; h0 < nq; h0 += ATTN_MAXQ) {
        int n = nq - h0 < ATTN_MAXQ ? nq - h0 : ATTN_MAXQ;
        const uint16_t *qh = q + (size_t)h0 * hd;
        uint16_t *ah = acc + (size_t)h0 * hd;
        switch (hd / 16) {
        case 4: attn_tiles_avx512(4, 4, hd, n, n_pos, qh, k, v, stride, scale, ah, sums + h0); break;
        case 8: attn_tiles_avx512(8, 2, hd, n, n_pos, qh, k, v, stride, scale, ah, sums + h0); break;
        default: attn_tiles_avx512(hd / 16, 1, hd, n, n_pos, qh, k, v, stride, scale, ah, sums + h0); break;
        }
    }
}

static const hl_quant_vec_ops vec_avx512 = {vdot_f16_avx512, vmad_f16_avx512, vscale_f16_avx512,
                                            vto_f16_avx2, vfrom_f16_avx2, vattn_f16_avx512};

#endif /* __x86_64__ */

/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c". */
static bool has_f16c(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
#else
    return false;
#endif
}

static bool probe_avx2(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
#else
    return false;
#endif
}

static bool probe_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return probe_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

/* Each probed once: CPUID is slow under some hypervisors (a trip out of the virtual machine,
 * microseconds), and hl_quant_best_isa() is asked on every decode step (hl_swiglu). */
static bool probed(atomic_int *have, bool (*probe)(void)) {
    int h = atomic_load_explicit(have, memory_order_relaxed);
    if (h < 0) atomic_store_explicit(have, h = probe(), memory_order_relaxed);
    return h;
}

bool hl_quant_x86_has_avx2(void) {
    static atomic_int have = -1;
    return probed(&have, probe_avx2);
}

bool hl_quant_x86_has_avx512(void) {
    static atomic_int have = -1;
    return probed(&have, probe_avx512);
}

hl_quant_dot_fn hl_quant_x86_kernel_avx2(uint32_t type) {
#if defined(__x86_64__)
    switch (type) {
    case HL_GGUF_F32: return dot_f32_avx2;
    case HL_GGUF_F16: return dot_f16_avx2;
    case HL_GGUF_BF16: return dot_bf16_avx2;
    case HL_GGUF_Q8_0: return dot_q8_0_avx2;
    case HL_GGUF_Q4_0: return dot_q4_0_avx2;
    }
#endif
    (void)type;
    return NULL;
}

hl_quant_dot_fn hl_quant_x86_kernel_avx512(uint32_t type) {
#if defined(__x86_64__)
    switch (type) {
    case HL_GGUF_F32: return dot_f32_avx512;
    case HL_GGUF_F16: return dot_f16_avx512;
    case HL_GGUF_BF16: return dot_bf16_avx512;
    case HL_GGUF_Q8_0: return dot_q8_0_avx512;
    case HL_GGUF_Q4_0: return dot_q4_0_avx512;
    }
#endif
    (void)type;
    return NULL;
}

hl_quant_x4_fn hl_quant_x86_x4(uint32_t type, hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q4_0) return x4_q4_0_avx512;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q8_0) return x4_q8_0_avx512;
#endif
    (void)type;
    (void)isa;
    return NULL;
}

hl_quant_gemm_fn hl_quant_x86_gemm_x4(uint32_t type, hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q4_0) return gemm_q4_0_x4_avx512;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q8_0) return gemm_q8_0_x4_avx512;
#endif
    (void)type;
    (void)isa;
    return NULL;
}

hl_quant_gemm_fn hl_quant_x86_gemm(uint32_t type, hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q4_0) return gemm_q4_0_avx512;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q8_0) return gemm_q8_0_avx512;
#endif
    (void)type;
    (void)isa;
    return NULL;
}

bool hl_quant_x86_quantize_q8x(const float *x, hl_act_q8x *dst, int n) {
#if defined(__x86_64__)
    if (hl_quant_x86_has_avx512()) {
        quantize_q8x_avx512(x, dst, n);
        return true;
    }
#endif
    (void)x, (void)dst, (void)n;
    return false;
}

bool hl_quant_x86_quantize_q8k(const float *x, hl_act_q8k *dst, int n) {
#if defined(__x86_64__)
    if (hl_quant_x86_has_avx512()) {
        quantize_q8k_avx512(x, dst, n);
        return true;
    }
#endif
    (void)x, (void)dst, (void)n;
    return false;
}

bool hl_quant_x86_actx_pack(const float *x, size_t x_stride, int nt, int n, void *dst) {
#if defined(__x86_64__)
    if (hl_quant_x86_has_avx512()) {
        actx_pack_avx512(x, x_stride, nt, n, dst);
        return true;
    }
#endif
    (void)x, (void)x_stride, (void)nt, (void)n, (void)dst;
    return false;
}

const hl_quant_vec_ops *hl_quant_x86_vec(hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX2) return &vec_avx2;
    if (isa == HL_ISA_AVX512) return &vec_avx512;
#endif
    (void)isa;
    return NULL;
}
