/* hl_quant_k_x86: AVX2 and AVX-512 VNNI decode kernels for Q4_K, Q5_K and Q6_K; see
 * hl_quant_k.h for the result each must give (the scalar reference's, bit for bit).
 *
 * A super-block's 6-bit scales are applied in 16-bit lanes: vpmaddubsw multiplies the
 * unsigned weights (0..15, 0..31, 0..63) by the signed activations into pairs (at most
 * 2 * 63 * 127, no saturation), and a multiply-add with the scales spread over the lanes
 * (vpdpwssd with VNNI, vpmaddwd + vpaddd with AVX2) widens them into int32 lanes. The mins
 * (Q4_K, Q5_K) and the -32 offset (Q6_K) go through the activation's 16-value sums. The
 * integer sums are reduced once per super-block and finished in scalar float, in the
 * reference's order. */
#include "hl_quant_k.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/* ---- the float steps, shared by both levels ------------------------------------------ */

/* One statement per operation, so that nothing is fused into an fma. */
static inline float k4_finish(float s, float da, float d, float dmin, int32_t sq, int32_t sm) {
    float t1 = d * (float)sq;
    float t2 = dmin * (float)sm;
    float t3 = t1 - t2;
    float t4 = da * t3;
    return s + t4;
}

static inline float k6_finish(float s, float da, float d, int32_t isum) {
    float t1 = da * d;
    float t2 = t1 * (float)isum;
    return s + t2;
}

/* [sum of a's 8 lanes, sum of b's 8 lanes] */
T_AVX2 static inline __m128i k_reduce2(__m256i a, __m256i b) {
    __m256i h = _mm256_hadd_epi32(a, b);
    h = _mm256_hadd_epi32(h, h);
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Each of the 8 mins twice, as 16-bit lanes (one per 16-value activation sum). */
T_AVX2 static inline __m256i k_mins16(uint64_t mn) {
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi64_si128((long long)mn), dup));
}

/* ---- AVX2 ------------------------------------------------------------------------------ */

/* Control for vpshufb over a 64-bit word of 8 scale bytes (in both 64-bit halves of each
 * 128-bit lane): every 16-bit lane gets byte j, zero-extended. */
T_AVX2 static inline __m256i k_pick16(int j) {
    return _mm256_set1_epi16((short)(0x8000 | j));
}

/* sum over one 64-value pair of sub-blocks: lo (values 0-31) with scale j, hi with j + 1 */
T_AVX2 static inline __m256i k4_pair_avx2(__m256i acc, __m256i lo, __m256i hi, const int8_t *y,
                                          __m256i scv, int j) {
    __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y));
    __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 32)));
    p0 = _mm256_madd_epi16(p0, _mm256_shuffle_epi8(scv, k_pick16(j)));
    p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scv, k_pick16(j + 1)));
    return _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
}

T_AVX2 static float dot_q4k_avx2(int n, const void *w, const void *act) {
    const hl_block_q4_k *b = w;
    const hl_act_q8k *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        uint64_t sc, mn;
        hl_quant_k_scales(b[i].scales, &sc, &mn);
        __m256i scv = _mm256_set1_epi64x((long long)sc), acc = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * p));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            acc = k4_pair_avx2(acc, lo, hi, a[i].qs + 64 * p, scv, 2 * p);
        }
        __m256i ms = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), k_mins16(mn));
        __m128i r = k_reduce2(acc, ms);
        s = k4_finish(s, a[i].d, _cvtsh_ss(b[i].d), _cvtsh_ss(b[i].dmin), _mm_cvtsi128_si32(r), _mm_extract_epi32(r, 1));
    }
    return s;
}

/* Bit 4 of each byte: bit k of h's bytes, for k = 0..7. */
T_AVX2 static inline __m256i k5_bit_avx2(__m256i h, int k) {
    __m256i v = k <= 4 ? _mm256_sll_epi16(h, _mm_cvtsi32_si128(4 - k))
                       : _mm256_srl_epi16(h, _mm_cvtsi32_si128(k - 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

T_AVX2 static float dot_q5k_avx2(int n, const void *w, const void *act) {
    const hl_block_q5_k *b = w;
    const hl_act_q8k *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        uint64_t sc, mn;
        hl_quant_k_scales(b[i].scales, &sc, &mn);
        __m256i scv = _mm256_set1_epi64x((long long)sc), acc = _mm256_setzero_si256();
        __m256i hb = _mm256_loadu_si256((const __m256i *)b[i].qh);
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * p));
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), k5_bit_avx2(hb, 2 * p));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                         k5_bit_avx2(hb, 2 * p + 1));
            acc = k4_pair_avx2(acc, lo, hi, a[i].qs + 64 * p, scv, 2 * p);
        }
        __m256i ms = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), k_mins16(mn));
        __m128i r = k_reduce2(acc, ms);
        s = k4_finish(s, a[i].d, _cvtsh_ss(b[i].d), _cvtsh_ss(b[i].dmin), _mm_cvtsi128_si32(r), _mm_extract_epi32(r, 1));
    }
    return s;
}

T_AVX2 static float dot_q6k_avx2(int n, const void *w, const void *act) {
    const hl_block_q6_k *b = w;
    const hl_act_q8k *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b[i].scales));
        __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[i].ql + 64 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
            /* both 128-bit lanes: scales 8h..8h+7 as 16-bit values */
            __m256i sh = h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                /* values 0-15 of the quarter: scale 8h+2k, values 16-31: 8h+2k+1 */
                __m256i ctl = _mm256_setr_epi8(4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k,
                                               4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1,
                                               4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3,
                                               4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3,
                                               4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3);
                __m256i y = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                __m256i p = _mm256_maddubs_epi16(q[k], y);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sh, ctl)));
            }
        }
        __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), s16);
        __m128i r = k_reduce2(acc, off);
        s = k6_finish(s, a[i].d, _cvtsh_ss(b[i].d), _mm_cvtsi128_si32(r) - 32 * _mm_extract_epi32(r, 1));
    }
    return s;
}

/* ---- AVX-512 VNNI ------------------------------------------------------------------------ */

/* vpshufb controls over a 64-bit word of 8 scales in every 64-bit lane: 16-bit lanes 0-15
 * get scale 2p, lanes 16-31 scale 2p + 1 (zero-extended). */
T_AVX512 static inline __m512i k_pick_pair512(int p) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(0x8000 | 2 * p))),
                              _mm256_set1_epi16((short)(0x8000 | (2 * p + 1))), 1);
}

/* 16-bit lane shift counts: a in lanes 0-15, b in lanes 16-31 */
T_AVX512 static inline __m512i k_counts(int a, int b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
}

/* Sub-blocks 2p and 2p+1 of a Q4_K/Q5_K block as one vector of 64 unsigned nibbles in the
 * activation's order: the 32 bytes of qs twice, the second copy shifted down 4. */
T_AVX512 static inline __m512i k4_nibbles512(const uint8_t *qs) {
    __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    return _mm512_and_si512(_mm512_srlv_epi16(q, k_counts(0, 4)), _mm512_set1_epi8(0x0f));
}

T_AVX512 static inline __m512i k4_step512(__m512i acc, __m512i q, const int8_t *y, __m512i scv, int p) {
    __m512i pr = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y));
    return _mm512_dpwssd_epi32(acc, pr, _mm512_shuffle_epi8(scv, k_pick_pair512(p)));
}

T_AVX512 static inline __m256i k_fold512(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

T_AVX512 static float dot_q4k_avx512(int n, const void *w, const void *act) {
    const hl_block_q4_k *b = w;
    const hl_act_q8k *a = act;
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        uint64_t sc, mn;
        hl_quant_k_scales(b[i].scales, &sc, &mn);
        __m512i scv = _mm512_set1_epi64((long long)sc), acc = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++)
            acc = k4_step512(acc, k4_nibbles512(b[i].qs + 32 * p), a[i].qs + 64 * p, scv, p);
        __m256i ms = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), k_mins16(mn));
        __m128i r = k_reduce2(k_fold512(acc), ms);
        s = k4_finish(s, a[i].d, _cvtsh_ss(b[i].d), _cvtsh_ss(b[i].dmin), _mm_cvtsi128_si32(r), _mm_extract_epi32(r, 1));
    }
    return s;
}

/* Bit 4 of each byte: lanes 0-15 bit 2p of hb's bytes, lanes 16-31 bit 2p+1. */
T_AVX512 static inline __m512i k5_bits512(__m512i hb, int p) {
    __m512i v;
    if (p == 0) v = _mm512_sllv_epi16(hb, k_counts(4, 3));
    else if (p == 1) v = _mm512_sllv_epi16(hb, k_counts(2, 1));
    else if (p == 2) v = _mm512_srlv_epi16(hb, k_counts(0, 1));
    else v = _mm512_srlv_epi16(hb, k_counts(2, 3));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x10));
}

T_AVX512 static float dot_q5k_avx512(int n, const void *w, const void *act) {
    const hl_block_q5_k *b = w;
    const hl_act_q8k *a = act;
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        uint64_t sc, mn;
        hl_quant_k_scales(b[i].scales, &sc, &mn);
        __m512i scv = _mm512_set1_epi64((long long)sc), acc = _mm512_setzero_si512();
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b[i].qh));
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m512i q = _mm512_or_si512(k4_nibbles512(b[i].qs + 32 * p), k5_bits512(hb, p));
            acc = k4_step512(acc, q, a[i].qs + 64 * p, scv, p);
        }
        __m256i ms = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), k_mins16(mn));
        __m128i r = k_reduce2(k_fold512(acc), ms);
        s = k4_finish(s, a[i].d, _cvtsh_ss(b[i].d), _cvtsh_ss(b[i].dmin), _mm_cvtsi128_si32(r), _mm_extract_epi32(r, 1));
    }
    return s;
}

/* vpermw indices spreading 16 scales over 4 groups of 8 lanes: groups g0..g0+3. */
static const uint16_t k6_idx[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13,
     14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15}};

T_AVX512 static float dot_q6k_avx512(int n, const void *w, const void *act) {
    const hl_block_q6_k *b = w;
    const hl_act_q8k *a = act;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i cA = k_counts(4, 2), cB = k_counts(0, 2);
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b[i].scales));
        __m512i s512 = _mm512_castsi256_si512(s16), acc = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* values 128h + 0..63 (quarters 0, 1) and 128h + 64..127 (quarters 2, 3) */
            __m512i l = _mm512_loadu_si512(b[i].ql + 64 * h);
            __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h)));
            __m512i bA = _mm512_and_si512(_mm512_sllv_epi16(hb, cA), m30);
            __m512i bB = _mm512_and_si512(_mm512_srlv_epi16(hb, cB), m30);
            /* (a & b) | c */
            __m512i qA = _mm512_ternarylogic_epi32(l, m4, bA, 0xEA);
            __m512i qB = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m4, bB, 0xEA);
            __m512i pA = _mm512_maddubs_epi16(qA, _mm512_loadu_si512(a[i].qs + 128 * h));
            __m512i pB = _mm512_maddubs_epi16(qB, _mm512_loadu_si512(a[i].qs + 128 * h + 64));
            acc = _mm512_dpwssd_epi32(acc, pA, _mm512_permutexvar_epi16(_mm512_load_si512(k6_idx[2 * h]), s512));
            acc = _mm512_dpwssd_epi32(acc, pB, _mm512_permutexvar_epi16(_mm512_load_si512(k6_idx[2 * h + 1]), s512));
        }
        __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), s16);
        __m128i r = k_reduce2(k_fold512(acc), off);
        s = k6_finish(s, a[i].d, _cvtsh_ss(b[i].d), _mm_cvtsi128_si32(r) - 32 * _mm_extract_epi32(r, 1));
    }
    return s;
}


/* ---- repacked sixteen rows at a time (hl_quant_k_x4_pack), AVX-512 ---------------------
 *
 * A 32-bit lane per row (hl_quant_k.h): each 64-byte chunk of 4-bit values gives two
 * vectors of 4 values of the 16 rows (its low and its high nibbles), each multiplied by the
 * 4 activations it meets, broadcast from memory (vpdpbusd: unsigned weights, signed
 * activations, exact int32 sums). A sub-block's (Q6_K: half's) sum is multiplied by the
 * rows' scales, loaded as a vector, and added up; the mins (Q4_K, Q5_K) and the -32 offset
 * (Q6_K) go through the activation's 16-value sums with vpdpwssd. Every row's sums are in
 * its lane, so the scalar reference's float steps run on the 16 lanes as they are. Two
 * chains per sub-block (the low and the high nibbles) halve the vpdpbusd latency in the
 * way. */

/* The activation sums of sub-blocks 2k and 2k + 1 as the halves of an int32, for k = 0..3. */
T_AVX2 static inline __m128i k_pairs(const int16_t *bsums) {
    const __m128i one = _mm_set1_epi16(1);
    return _mm_packs_epi32(_mm_madd_epi16(_mm_loadu_si128((const __m128i *)bsums), one),
                           _mm_madd_epi16(_mm_loadu_si128((const __m128i *)(bsums + 8)), one));
}

/* The mins' part of Q4_K/Q5_K: per row, the sum over sub-blocks of min times activation sum. */
T_AVX512 static inline __m512i k_mins_x16(const uint8_t *g, const hl_act_q8k *a) {
    int32_t pr[4];
    _mm_storeu_si128((__m128i *)pr, k_pairs(a->bsums));
    __m512i sm = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        sm = _mm512_dpwssd_epi32(sm, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(g + 192 + 32 * k))),
                                 _mm512_set1_epi32(pr[k]));
    return sm;
}

/* The float steps of Q4_K/Q5_K on the 16 rows (d and dmin as floats), one operation each
 * as in the reference. */
T_AVX512 static inline __m512 k4_finish_x16(__m512 res, __m512 d, __m512 dmin, float da, __m512i sq, __m512i sm) {
    __m512 t1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sq));
    __m512 t2 = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(sm));
    __m512 t3 = _mm512_sub_ps(t1, t2);
    __m512 t4 = _mm512_mul_ps(_mm512_set1_ps(da), t3);
    return _mm512_add_ps(res, t4);
}

/* acc + the products of w's 4 unsigned bytes per lane with the 4 activations at y, broadcast
 * by the instruction itself ({1to16}): GCC 12 does not fold a broadcast into vpdpbusd, and
 * a separate vpbroadcastd costs a vector slot per 64 weights. */
typedef int32_t k_i32_alias __attribute__((may_alias));
T_AVX512 static inline __m512i k_dpbusd_bcst(__m512i acc, __m512i w, const int8_t *y) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const k_i32_alias *)y));
    return acc;
}

/* A vector loaded once into a register: GCC would otherwise fold the load into each of its
 * uses (two 64-byte loads instead of one). */
T_AVX512 static inline __m512i k_load_reg(const void *p) {
    __m512i v = _mm512_loadu_si512(p);
    __asm__("" : "+v"(v));
    return v;
}

T_AVX512 static void x4_q4k_avx512(int n, const void *w, const void *act, float *out) {
    const uint8_t *g = w;
    const hl_act_q8k *a = act;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 res = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, g += HL_K_X4_Q4K, a++) {
        /* the super-block's head first: its lines are read in order */
        __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
        __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + 32)));
        __m512i sm = k_mins_x16(g, a), acc = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m512i z = k_load_reg(g + 320 + 256 * j + 64 * c);
                const int8_t *y = a->qs + 32 * j + 8 * c;
                s0 = k_dpbusd_bcst(s0, _mm512_and_si512(z, m4), y);
                s1 = k_dpbusd_bcst(s1, _mm512_and_si512(_mm512_srli_epi16(z, 4), m4), y + 4);
            }
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(g + 64 + 16 * j)));
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), sc));
        }
        res = k4_finish_x16(res, d, dmin, a->d, acc, sm);
    }
    _mm512_storeu_ps(out, res);
}

/* Chunk c's two missing bits of the Q5_K layout in place: bit 2c + 1 (u's fifth bit) moved to
 * bit 4 and bit 2c (v's bit 0) to bit 3, all else zero (16-bit shifts; the bits that cross
 * into the neighbouring byte are masked off). One vgf2p8affineqb does it in one instruction
 * (measured 6% faster from cache, the same from memory) but would need GFNI, which some
 * AVX-512 VNNI CPUs lack. */
T_AVX512 static inline __m512i k5_bits(__m512i hv, int c) {
    __m512i v = c < 2 ? _mm512_slli_epi16(hv, 3 - 2 * c) : _mm512_srli_epi16(hv, 2 * c - 3);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x18));
}

/* Per chunk: k5_bits() puts the chunk's two missing bits in place (bit 4 for u, bit 3 for v),
 * and a vpternlogd each takes u = low nibble | bit 4 and 8v = high nibble | bit 3; the v
 * sums (8 times too large, exactly) are shifted back once per sub-block. One vector
 * instruction more per 128 weights than Q4_K's kernel (the fifth bits as 64-bit masks added
 * with masked vpaddb took 30% longer from cache). */
T_AVX512 static void x4_q5k_avx512(int n, const void *w, const void *act, float *out) {
    const uint8_t *g = w;
    const hl_act_q8k *a = act;
    const __m512i m4 = _mm512_set1_epi8(0x0f), mf0 = _mm512_set1_epi8((char)0xf0);
    __m512 res = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, g += HL_K_X4_Q5K, a++) {
        /* the super-block's head first: its lines are read in order */
        __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
        __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + 32)));
        __m512i sm = k_mins_x16(g, a), acc = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const uint8_t *sub = g + 320 + 320 * j;
            __m512i hv = k_load_reg(sub);
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m512i z = k_load_reg(sub + 64 + 64 * c);
                __m512i x = k5_bits(hv, c);
                /* b ? a : c, bit by bit */
                __m512i lo = _mm512_ternarylogic_epi32(z, m4, x, 0xE2);
                __m512i hi = _mm512_ternarylogic_epi32(z, mf0, x, 0xE2);
                const int8_t *y = a->qs + 32 * j + 8 * c;
                s0 = k_dpbusd_bcst(s0, lo, y);
                s1 = k_dpbusd_bcst(s1, hi, y + 4);
            }
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(g + 64 + 16 * j)));
            __m512i sq = _mm512_add_epi32(s0, _mm512_srai_epi32(s1, 3));
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(sq, sc));
        }
        res = k4_finish_x16(res, d, dmin, a->d, acc, sm);
    }
    _mm512_storeu_ps(out, res);
}

/* Top bits m (bits 2m, 2m + 1 of each byte of v) moved to bits 4-5, the rest zero. */
T_AVX512 static inline __m512i k6_top(__m512i v, int m) {
    const __m512i m30 = _mm512_set1_epi8(0x30);
    if (m == 0) v = _mm512_slli_epi16(v, 4);
    else if (m == 1) v = _mm512_slli_epi16(v, 2);
    else if (m == 3) v = _mm512_srli_epi16(v, 2);
    return _mm512_and_si512(v, m30);
}

T_AVX512 static void x4_q6k_avx512(int n, const void *w, const void *act, float *out) {
    const uint8_t *g = w;
    const hl_act_q8k *a = act;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 res = _mm512_setzero_ps();
    for (int i = 0; i < n / 256; i++, g += HL_K_X4_Q6K, a++) {
        /* the super-block's head first (d, then the scales for the offsets): its lines are
         * read in order */
        __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
        __m512i acc = _mm512_setzero_si512(), off = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            int32_t bp;
            memcpy(&bp, a->bsums + 2 * j, 4);
            off = _mm512_dpwssd_epi32(off, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(g + 64 + 32 * j))),
                                      _mm512_set1_epi32(bp));
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const uint8_t *sub = g + 320 + 384 * j;
            /* the two scales of each row as 16-bit halves of its lane */
            __m512i sp = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(g + 64 + 32 * j)));
            __m512i sc[2] = {_mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16), _mm512_srai_epi32(sp, 16)};
#pragma GCC unroll 2
            for (int t = 0; t < 2; t++) {
                __m512i v = k_load_reg(sub + 192 * t);
                __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 2
                for (int c = 2 * t; c < 2 * t + 2; c++) {
                    __m512i z = k_load_reg(sub + 192 * t + 64 + 64 * (c - 2 * t));
                    /* (a & b) | c */
                    __m512i lo = _mm512_ternarylogic_epi32(z, m4, k6_top(v, 2 * (c - 2 * t)), 0xEA);
                    __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(z, 4), m4, k6_top(v, 2 * (c - 2 * t) + 1), 0xEA);
                    const int8_t *y = a->qs + 32 * j + 8 * c;
                    s0 = k_dpbusd_bcst(s0, lo, y);
                    s1 = k_dpbusd_bcst(s1, hi, y + 4);
                }
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), sc[t]));
            }
        }
        __m512i isum = _mm512_sub_epi32(acc, _mm512_slli_epi32(off, 5));
        __m512 t1 = _mm512_mul_ps(_mm512_set1_ps(a->d), d);
        __m512 t2 = _mm512_mul_ps(t1, _mm512_cvtepi32_ps(isum));
        res = _mm512_add_ps(res, t2);
    }
    _mm512_storeu_ps(out, res);
}

/* ---- GEMM for prompts on the repacked K-quants (AVX-512 VNNI) ------------------------
 *
 * The scheme of hl_quant_x86.c's GEMM (16 tokens per vector, one vpdpbusd per 4 weight
 * values and row, a 4-row x 32-token register tile, rows unpacked a chunk of columns at a
 * time into signed bytes), with the integer arithmetic of the decode kernels: per
 * super-block, each sub-block's (Q6_K: half's) integer sum times its integer scale is
 * added up exactly, the mins through the tokens' sub-block sums (16-bit pairs, vpdpwssd),
 * and only then the float steps of the scalar reference. The activations are quantized as
 * a decode step's (hl_quant_k_actx_pack), so every (row, token) result is the decode
 * kernel's, bit for bit: a prompt and one token at a time give the same numbers. */
#define KG_KB 64    /* sub-blocks per chunk of columns (8 super-blocks) */
#define KG_TOK 128  /* tokens per pass */
#define KG_ROWS 16  /* rows whose sums are kept before they are written out: a group */
#define KG_ACTX 576 /* bytes per (16 tokens, 32-value block) of hl_quant_actx_pack() */

/* A chunk of columns of one group of 16 rows, unpacked: everything per sub-block (and
 * super-block) as a vector over the rows, as the repacked layout has it. */
_Static_assert(KG_ROWS == HL_K_X4_ROWS, "the GEMM unpacks one repacked group at a time");

typedef struct kg_rows {
    int32_t q[KG_KB][8][16];    /* values 4g..4g+3 of sub-block i, signed bytes, per row */
    int32_t corr[KG_KB][2][16]; /* -128 * the sum of each half's q */
    int32_t sc[KG_KB][2][16];   /* each half's integer scale */
    int32_t mp[KG_KB / 2][16];  /* Q4_K/Q5_K: the mins of sub-blocks 2k, 2k+1 as 16-bit pair */
    float d[KG_KB / 8][16];     /* per super-block */
    float dmin[KG_KB / 8][16];
} kg_rows;

/* Sub-blocks [j0, j0 + nj) of the group of 16 rows at grp (super-blocks bb bytes apart);
 * j0 and nj multiples of 8. */
T_AVX512 static void kg_unpack(kg_rows *u, uint32_t type, const uint8_t *grp, size_t bb, int j0, int nj) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), mf0 = _mm512_set1_epi8((char)0xf0), m5 = _mm512_set1_epi8(0x1f);
    const __m512i c32 = _mm512_set1_epi8(32);
    const __m512i one = _mm512_set1_epi8(1);
    for (int jj = 0; jj < nj; jj++) {
        int j = j0 + jj, js = j % 8;
        const uint8_t *G = grp + (size_t)(j / 8) * bb;
        if (type == HL_GGUF_Q6_K) {
            if (js == 0) {
                _mm512_storeu_ps(u->d[jj / 8], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)G)));
                _mm512_storeu_ps(u->dmin[jj / 8], _mm512_setzero_ps());
            }
            const uint8_t *sub = G + 320 + 384 * js;
            __m512i sp = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(G + 64 + 32 * js)));
            _mm512_storeu_si512(u->sc[jj][0], _mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16));
            _mm512_storeu_si512(u->sc[jj][1], _mm512_srai_epi32(sp, 16));
            for (int c = 0; c < 4; c++) {
                __m512i z = _mm512_loadu_si512(sub + 192 * (c / 2) + 64 + 64 * (c % 2));
                __m512i v = _mm512_loadu_si512(sub + 192 * (c / 2));
                int m = 2 * (c % 2);
                __m512i lo = _mm512_ternarylogic_epi32(z, m4, k6_top(v, m), 0xEA);
                __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(z, 4), m4, k6_top(v, m + 1), 0xEA);
                _mm512_storeu_si512(u->q[jj][2 * c], _mm512_sub_epi8(lo, c32));
                _mm512_storeu_si512(u->q[jj][2 * c + 1], _mm512_sub_epi8(hi, c32));
            }
        } else {
            int q5 = type == HL_GGUF_Q5_K;
            if (js == 0) {
                _mm512_storeu_ps(u->d[jj / 8], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)G)));
                _mm512_storeu_ps(u->dmin[jj / 8], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(G + 32))));
            }
            const uint8_t *sub = G + 320 + (q5 ? 320 : 256) * js;
            for (int c = 0; c < 4; c++) {
                __m512i z = _mm512_loadu_si512(sub + (q5 ? 64 : 0) + 64 * c);
                __m512i lo = _mm512_and_si512(z, m4), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
                if (q5) { /* as x4_q5k_avx512 reads it */
                    __m512i x = k5_bits(_mm512_loadu_si512(sub), c);
                    lo = _mm512_ternarylogic_epi32(z, m4, x, 0xE2);
                    hi = _mm512_and_si512(_mm512_srli_epi16(_mm512_ternarylogic_epi32(z, mf0, x, 0xE2), 3), m5);
                }
                _mm512_storeu_si512(u->q[jj][2 * c], lo);
                _mm512_storeu_si512(u->q[jj][2 * c + 1], hi);
            }
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(G + 64 + 16 * js)));
            _mm512_storeu_si512(u->sc[jj][0], sc);
            _mm512_storeu_si512(u->sc[jj][1], sc);
            if (js % 2 == 0)
                _mm512_storeu_si512(u->mp[jj / 2],
                                    _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(G + 192 + 32 * (js / 2)))));
        }
        /* each row's sums of signed bytes per half: |sum| <= 16 * 128 */
        for (int h = 0; h < 2; h++) {
            __m512i t = _mm512_setzero_si512();
            for (int gg = 4 * h; gg < 4 * h + 4; gg++) t = _mm512_dpbusd_epi32(t, one, _mm512_loadu_si512(u->q[jj][gg]));
            _mm512_storeu_si512(u->corr[jj][h], _mm512_mullo_epi32(t, _mm512_set1_epi32(-128)));
        }
    }
}

/* NR rows (slots r0..) x NV vectors of 16 tokens over nj sub-blocks (whole super-blocks);
 * K6: Q6_K (a scale per half, no mins). pairs: per (token group, sub-block pair) the
 * tokens' two sub-block sums as 16-bit halves of a lane, the first group's at the chunk's
 * first pair, the second group's pg lanes further. */
T_AVX512 static inline __attribute__((always_inline)) void
kg_tile(const kg_rows *u, int r0, int nj, const uint8_t *ax, size_t gs, const int32_t *pairs,
        size_t pg, float *acc, size_t acc_stride, const int NR, const int NV, const int K6) {
    __m512 f[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) f[r][v] = _mm512_loadu_ps(acc + (r0 + r) * acc_stride + 16 * v);
    for (int i0 = 0; i0 < nj; i0 += 8) {
        __m512i sq[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) sq[r][v] = _mm512_setzero_si512();
        for (int i = i0; i < i0 + 8; i++, ax += KG_ACTX) {
            __m512i s[4][2][2];
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++) {
                    s[r][v][0] = _mm512_set1_epi32(u->corr[i][0][r0 + r] + (K6 ? 0 : u->corr[i][1][r0 + r]));
                    if (K6) s[r][v][1] = _mm512_set1_epi32(u->corr[i][1][r0 + r]);
                }
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m512i a0 = _mm512_loadu_si512(ax + 64 * g), a1 = a0;
                if (NV == 2) a1 = _mm512_loadu_si512(ax + gs + 64 * g);
                int h = K6 && g >= 4;
#pragma GCC unroll 4
                for (int r = 0; r < NR; r++) {
                    __m512i wv = _mm512_set1_epi32(u->q[i][g][r0 + r]);
                    s[r][0][h] = _mm512_dpbusd_epi32(s[r][0][h], a0, wv);
                    if (NV == 2) s[r][1][h] = _mm512_dpbusd_epi32(s[r][1][h], a1, wv);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                __m512i c0 = _mm512_set1_epi32(u->sc[i][0][r0 + r]), c1 = _mm512_set1_epi32(u->sc[i][1][r0 + r]);
#pragma GCC unroll 2
                for (int v = 0; v < NV; v++) {
                    sq[r][v] = _mm512_add_epi32(sq[r][v], _mm512_mullo_epi32(s[r][v][0], c0));
                    if (K6) sq[r][v] = _mm512_add_epi32(sq[r][v], _mm512_mullo_epi32(s[r][v][1], c1));
                }
            }
        }
        /* the float steps of the super-block, as the decode kernels take them */
        const uint8_t *axs = ax - KG_ACTX; /* its scale is the super-block's */
        __m512 da[2] = {_mm512_loadu_ps(axs + 512), _mm512_setzero_ps()};
        if (NV == 2) da[1] = _mm512_loadu_ps(axs + gs + 512);
        int sb = i0 / 8;
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m512 d = _mm512_set1_ps(u->d[sb][r0 + r]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) {
                if (K6) {
                    __m512 t1 = _mm512_mul_ps(da[v], d);
                    __m512 t2 = _mm512_mul_ps(t1, _mm512_cvtepi32_ps(sq[r][v]));
                    f[r][v] = _mm512_add_ps(f[r][v], t2);
                } else {
                    __m512i sm = _mm512_setzero_si512();
                    const int32_t *pp = pairs + (size_t)v * pg + (size_t)(i0 / 2) * 16;
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++)
                        sm = _mm512_dpwssd_epi32(sm, _mm512_loadu_si512(pp + 16 * k),
                                                 _mm512_set1_epi32(u->mp[i0 / 2 + k][r0 + r]));
                    __m512 t1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sq[r][v]));
                    __m512 t2 = _mm512_mul_ps(_mm512_set1_ps(u->dmin[sb][r0 + r]), _mm512_cvtepi32_ps(sm));
                    __m512 t3 = _mm512_sub_ps(t1, t2);
                    __m512 t4 = _mm512_mul_ps(da[v], t3);
                    f[r][v] = _mm512_add_ps(f[r][v], t4);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(acc + (r0 + r) * acc_stride + 16 * v, f[r][v]);
}

#define KG_TILE(NAME, NR, NV, K6)                                                            \
    T_AVX512 static void NAME(const kg_rows *u, int r0, int nj, const uint8_t *ax, size_t gs, \
                              const int32_t *pairs, size_t pg, float *acc, size_t acc_stride) { \
        kg_tile(u, r0, nj, ax, gs, pairs, pg, acc, acc_stride, NR, NV, K6);                 \
    }
KG_TILE(kg_tile_4x2, 4, 2, 0)
KG_TILE(kg_tile_4x1, 4, 1, 0)
KG_TILE(kg_tile_4x2_k6, 4, 2, 1)
KG_TILE(kg_tile_4x1_k6, 4, 1, 1)

typedef void (*kg_tile_fn)(const kg_rows *, int, int, const uint8_t *, size_t, const int32_t *, size_t,
                           float *, size_t);

T_AVX512 static void kg_gemm(uint32_t type, int n, const void *w, size_t ws, int nr, const void *actx,
                             int nt, float *out, size_t os) {
    int nb = n / 32, ng = (nt + 15) / 16, k6 = type == HL_GGUF_Q6_K;
    size_t gs = (size_t)nb * KG_ACTX, bb = hl_quant_k_x4_bytes(type), pg = (size_t)nb / 2 * 16;
    kg_tile_fn t2 = k6 ? kg_tile_4x2_k6 : kg_tile_4x2, t1 = k6 ? kg_tile_4x1_k6 : kg_tile_4x1;
    /* the tokens' sub-block sums, after the activations (hl_quant_k_actx_pack) */
    const int32_t *pairs = k6 ? NULL : (const int32_t *)((const uint8_t *)actx + hl_quant_actx_size(n, nt));
    kg_rows u_, *u = &u_;
    float acc[KG_ROWS][KG_TOK] __attribute__((aligned(64)));
    for (int g0 = 0; g0 < ng; g0 += KG_TOK / 16) {
        int g1 = g0 + KG_TOK / 16 < ng ? g0 + KG_TOK / 16 : ng;
        for (int R0 = 0; R0 < nr; R0 += KG_ROWS) {
            int Rn = nr - R0 < KG_ROWS ? nr - R0 : KG_ROWS;
            memset(acc, 0, sizeof(float) * KG_ROWS * KG_TOK);
            for (int i0 = 0; i0 < nb; i0 += KG_KB) {
                int nj = nb - i0 < KG_KB ? nb - i0 : KG_KB;
                kg_unpack(u, type, (const uint8_t *)w + (size_t)(R0 / KG_ROWS) * ws, bb, i0, nj);
                for (int r0 = 0; r0 < Rn; r0 += 4)
                    for (int g = g0; g < g1; g += 2) {
                        const uint8_t *ax = (const uint8_t *)actx + (size_t)g * gs + (size_t)i0 * KG_ACTX;
                        const int32_t *pp = pairs ? pairs + (size_t)g * pg + (size_t)i0 / 2 * 16 : NULL;
                        float *a = &acc[0][16 * (g - g0)];
                        if (g + 1 < g1) t2(u, r0, nj, ax, gs, pp, pg, a, KG_TOK);
                        else t1(u, r0, nj, ax, gs, pp, pg, a, KG_TOK);
                    }
            }
            int te = 16 * g1 < nt ? 16 * g1 : nt;
            for (int t = 16 * g0; t < te; t++)
                for (int r = 0; r < Rn; r++) out[(size_t)t * os + R0 + r] = acc[r][t - 16 * g0];
        }
    }
}

static void kg_gemm_q4k(int n, const void *w, size_t ws, int nr, const void *actx, int nt, float *out, size_t os) {
    kg_gemm(HL_GGUF_Q4_K, n, w, ws, nr, actx, nt, out, os);
}
static void kg_gemm_q5k(int n, const void *w, size_t ws, int nr, const void *actx, int nt, float *out, size_t os) {
    kg_gemm(HL_GGUF_Q5_K, n, w, ws, nr, actx, nt, out, os);
}
static void kg_gemm_q6k(int n, const void *w, size_t ws, int nr, const void *actx, int nt, float *out, size_t os) {
    kg_gemm(HL_GGUF_Q6_K, n, w, ws, nr, actx, nt, out, os);
}

#endif /* __x86_64__ */

hl_quant_dot_fn hl_quant_k_x86_kernel(uint32_t type, hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX2) {
        if (type == HL_GGUF_Q4_K) return dot_q4k_avx2;
        if (type == HL_GGUF_Q5_K) return dot_q5k_avx2;
        if (type == HL_GGUF_Q6_K) return dot_q6k_avx2;
    }
    if (isa == HL_ISA_AVX512) {
        if (type == HL_GGUF_Q4_K) return dot_q4k_avx512;
        if (type == HL_GGUF_Q5_K) return dot_q5k_avx512;
        if (type == HL_GGUF_Q6_K) return dot_q6k_avx512;
    }
#endif
    (void)type;
    (void)isa;
    return NULL;
}

hl_quant_x4_fn hl_quant_k_x86_x4(uint32_t type, hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q4_K) return x4_q4k_avx512;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q5_K) return x4_q5k_avx512;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q6_K) return x4_q6k_avx512;
#endif
    (void)type;
    (void)isa;
    return NULL;
}

hl_quant_gemm_fn hl_quant_k_x86_gemm_x4(uint32_t type, hl_quant_isa isa) {
#if defined(__x86_64__)
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q4_K) return kg_gemm_q4k;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q5_K) return kg_gemm_q5k;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q6_K) return kg_gemm_q6k;
#endif
    (void)type;
    (void)isa;
    return NULL;
}
