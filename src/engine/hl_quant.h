/* hl_quant: tensor element types and the dot products the engine spends its time in.
 *
 * Weights stay in the file's format (the blocks below, byte-compatible with ggml's) and are
 * read straight from the mmap. A matrix-vector product is one dot product per weight row
 * against the activation vector. For the quantized weight types the activation vector is
 * first quantized once per matmul to 8-bit blocks (hl_quant_act_*), as llama.cpp does, so the
 * inner loops are integer multiply-adds; F32/F16/BF16 rows are dotted with f32 activations.
 *
 * Every kernel has a scalar version, which is the reference: the SIMD versions (AVX2+FMA,
 * AVX-512 with VNNI, in hl_quant_x86.c) must agree with it, and the scalar versions must
 * agree with hl_quant_dot_ref(), a plain "dequantize, multiply, add in double" definition.
 * hl_quant_dot_fn_for() returns the best kernel the running CPU supports.
 *
 * Block layouts (little-endian; d/dmin are IEEE half floats):
 *   Q8_0  32 values, 34 bytes: d; int8 q[32].                    x = d*q
 *   Q4_0  32 values, 18 bytes: d; u8 qs[16]: value j (< 16) is the low nibble of qs[j],
 *         value j+16 the high nibble.                             x = d*(nibble - 8)
 *   Q4_K 256 values, 144 bytes: d, dmin; u8 scales[12]; u8 qs[128]. Eight sub-blocks of 32
 *         with a 6-bit scale s and a 6-bit min m each (packing: hl_quant_q4k_scale_min()).
 *         qs[32*p + l] holds value 64*p + l (low nibble, sub-block 2p) and value 64*p+32+l
 *         (high nibble, sub-block 2p+1).                           x = d*s*q - dmin*m
 *   Q5_K 256 values, 176 bytes: d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]. Q4_K's
 *         layout plus a fifth bit: value 64p+l takes bit 2p of qh[l] as its bit 4, value
 *         64p+32+l bit 2p+1 (q in 0..31).                          x = d*s*q - dmin*m
 *   Q6_K 256 values, 210 bytes: u8 ql[128]; u8 qh[64]; int8 scales[16]; d. Two halves of
 *         128; in half h, for l < 32, the four values l, l+32, l+64, l+96 take their low 4
 *         bits from ql[64h+l] (low nibble), ql[64h+l+32] (low), ql[64h+l] (high),
 *         ql[64h+l+32] (high), and their top 2 bits from qh[32h+l] bits 0-1, 2-3, 4-5, 6-7.
 *         Each 16 values share one scale.                          x = d*scale*(q - 32) */
#ifndef HL_QUANT_H
#define HL_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_gguf.h"

typedef struct hl_block_q8_0 {
    uint16_t d;
    int8_t qs[32];
} hl_block_q8_0;

typedef struct hl_block_q4_0 {
    uint16_t d;
    uint8_t qs[16];
} hl_block_q4_0;

typedef struct hl_block_q4_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} hl_block_q4_k;

typedef struct hl_block_q5_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} hl_block_q5_k;

typedef struct hl_block_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} hl_block_q6_k;

/* Activation blocks (ours, never in files). Q8: for 32-element weight blocks; sum is the sum
 * of qs, which the Q4_0 kernels need for the "- 8" offset. Q8K: for 256-element super-blocks;
 * bsums[i] sums qs[16i .. 16i+15], which the K-quant kernels need for mins and offsets.
 *
 * The roundings copy llama.cpp's on purpose (Q8's d is rounded to half precision, values to
 * nearest-even of x * 127/amax; F16 weights see half-precision activations), because the
 * reference outputs we are checked against were made with them: with the same roundings our
 * logits agree with llama.cpp's to about 1e-6 instead of 1e-1 on the quantized models. */
typedef struct hl_act_q8 {
    float d;
    int32_t sum;
    int8_t qs[32];
} hl_act_q8;

typedef struct hl_act_q8k {
    float d;
    int16_t bsums[16];
    int8_t qs[256];
} hl_act_q8k;

/* The Q8 activations of two consecutive 32-value blocks laid out for the AVX-512 Q8_0
 * kernel: the 64 values, each block's scale repeated over 8 lanes, and -128 times the sum of
 * each 4 consecutive values (the offset the unsigned-weight trick subtracts: the kernel
 * multiplies w + 128). Same values and scales as hl_act_q8; for an odd block count the last
 * pair's second half is zero. */
typedef struct hl_act_q8p {
    int8_t qs[64];
    float d[16];
    int32_t off[16];
} hl_act_q8p;

/* The Q8 activations of four consecutive blocks for the AVX-512 Q4_0 kernel, in the order of
 * the weights' nibbles: lo holds values 0..15 of each block (block k at bytes 16k..16k+15),
 * hi values 16..31; lane l (block l / 4) has the scale of its block and -8 times the sum of
 * its 4 lo and 4 hi values (the nibbles are multiplied unsigned, without their - 8). Blocks
 * past the end are zero. */
typedef struct hl_act_q8q {
    int8_t lo[64];
    int8_t hi[64];
    float d[16];
    int32_t off[16];
} hl_act_q8q;

/* Q8 activations of one block for the kernels on repacked weights (hl_quant_x4_*): the 32
 * values in order, -8 times the sum of values 4l..4l+3 and 16+4l..16+4l+3 for l < 4 (Q4_0's
 * nibbles are multiplied unsigned), -128 times the sum of values 4l..4l+3 for l < 8 (Q8_0's
 * values are multiplied plus 128), and the scale; same values and scale as hl_act_q8. */
typedef struct hl_act_q8x {
    int8_t qs[32];
    int32_t off4[4];
    int32_t off8[8];
    float d;
    float pad[3];
} hl_act_q8x;

typedef enum hl_quant_act {
    HL_ACT_F32,  /* plain floats (F32 and BF16 weights) */
    HL_ACT_Q8,   /* hl_act_q8 blocks (Q8_0, Q4_0) */
    HL_ACT_Q8K,  /* hl_act_q8k blocks (Q4_K, Q5_K, Q6_K) */
    HL_ACT_F16,  /* half floats (F16 weights) */
    HL_ACT_Q8P,  /* hl_act_q8p pairs (Q8_0 with the AVX-512 kernel) */
    HL_ACT_Q8Q,  /* hl_act_q8q quads (Q4_0 with the AVX-512 kernel) */
    HL_ACT_Q8X,  /* hl_act_q8x blocks (repacked Q4_0, Q8_0) */
    HL_ACT_COUNT
} hl_quant_act;

/* Instruction-set levels with kernels. */
typedef enum hl_quant_isa {
    HL_ISA_SCALAR,
    HL_ISA_AVX2,    /* AVX2 + FMA + F16C */
    HL_ISA_AVX512,  /* AVX-512 F/BW/VL + VNNI */
    HL_ISA_COUNT
} hl_quant_isa;

/* Dot product of a weight row of n elements (in the weight type's layout) with an
 * activation vector in that type's activation format. */
typedef float (*hl_quant_dot_fn)(int n, const void *w, const void *act);

/* Prompt matmuls (GEMM): out[t*out_stride + r] = dot(row r, token t) for r < nr, t < nt,
 * weight rows w_stride bytes apart, the nt tokens' activations quantized once per matmul
 * into the token-interleaved layout of hl_quant_actx_pack(). Each weight block is then
 * read once for 16 or 32 tokens, one vector lane per token. For every (row, token) the sum
 * is, block by block in order, acc = fmaf((float)isum, d_w * d_a, acc) with isum the exact
 * integer dot product of the block and d_a, the values, the roundings those of hl_act_q8
 * (hl_quant_gemm_ref() spells it out); so it agrees with the dot kernels to float rounding,
 * not bit for bit. */
typedef void (*hl_quant_gemm_fn)(int n, const void *w, size_t w_stride, int nr,
                                 const void *actx, int nt, float *out, size_t out_stride);

float hl_quant_f16_to_f32(uint16_t h);
uint16_t hl_quant_f32_to_f16(float f);  /* round to nearest even */
float hl_quant_bf16_to_f32(uint16_t h);
uint16_t hl_quant_f32_to_bf16(float f); /* round to nearest even */

/* Whether the engine can compute with this tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_K,
 * Q5_K, Q6_K). */
bool hl_quant_supported(uint32_t type);

/* Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K block. */
void hl_quant_q4k_scale_min(const uint8_t *scales, int j, uint8_t *s, uint8_t *m);

/* Dequantizes n elements (a multiple of the type's block) from src to dst. */
void hl_quant_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);
/* The reference: sum of dequantized weights times x, accumulated in double. */
double hl_quant_dot_ref(uint32_t type, const void *w, const float *x, int n);

/* Quantizes n floats (a multiple of 32) to Q8_0 / Q4_0 weight blocks (for our tools and
 * tests). */
void hl_quant_quantize_q8_0(const float *x, void *dst, int64_t n);
void hl_quant_quantize_q4_0(const float *x, void *dst, int64_t n);

/* Activation format wanted by a weight type's kernels, its byte size for n elements, and
 * the conversion (dst must hold hl_quant_act_size(act, n) bytes). */
hl_quant_act hl_quant_act_for(uint32_t type);
/* The format the kernel of that type at that ISA level wants (differs from
 * hl_quant_act_for() where a SIMD kernel has its own layout). */
hl_quant_act hl_quant_act_for_isa(uint32_t type, hl_quant_isa isa);
/* The ISA level of the kernel hl_quant_dot_fn_for() returns. */
hl_quant_isa hl_quant_kernel_isa(uint32_t type);
size_t hl_quant_act_size(hl_quant_act act, int n);
void hl_quant_act_quantize(hl_quant_act act, const float *x, void *dst, int n);

/* The kernel for a weight type at an ISA level: NULL when not implemented there or not
 * supported by this CPU. hl_quant_dot_fn_for() picks the best available. */
hl_quant_dot_fn hl_quant_kernel(uint32_t type, hl_quant_isa isa);
hl_quant_dot_fn hl_quant_dot_fn_for(uint32_t type);
/* Weights repacked four rows at a time, for decoding: a matrix-vector product then reads one
 * stream for four rows and loads each block of activations once for them (four rows side by
 * side in the file's layout measured half as fast: four streams). For each group of 4 rows
 * and each 32-value block: the 4 rows' half-precision scales (8 bytes), then their values
 * (Q4_0: 16 bytes each, Q8_0: 32) in row order; 72 or 136 bytes. Q4_0 and Q8_0 only, rows a
 * multiple of 4. hl_quant_x4_block_bytes() is 0 for other types. */
size_t hl_quant_x4_block_bytes(uint32_t type);
void hl_quant_x4_pack(uint32_t type, const void *src, size_t row_bytes, uint32_t rows,
                      uint32_t cols, void *dst);
/* K-quants have their own layouts (hl_quant_k.h), 16 rows to a group, per super-block of
 * 256 values; hl_quant_x4_block_bytes() is then per super-block of the group, and rows must
 * be a multiple of hl_quant_x4_rows(). */
uint32_t hl_quant_x4_rows(uint32_t type); /* rows per group: 4, or 16 for K-quants */
/* out[r] = dot(row r of the group at g, act) for r < hl_quant_x4_rows(type), act in
 * hl_quant_x4_act(type) (HL_ACT_Q8X; HL_ACT_Q8K for K-quants). */
hl_quant_act hl_quant_x4_act(uint32_t type);
typedef void (*hl_quant_x4_fn)(int n, const void *g, const void *act, float *out);
hl_quant_x4_fn hl_quant_x4(uint32_t type, hl_quant_isa isa); /* NULL where none */
hl_quant_x4_fn hl_quant_x4_fn_for(uint32_t type);
/* The GEMM on repacked weights: w is the first row's group, w_stride the bytes of a group
 * (all blocks), nr a multiple of 4; the same numbers as the GEMM on the file's layout. */
hl_quant_gemm_fn hl_quant_gemm_x4(uint32_t type, hl_quant_isa isa);
hl_quant_gemm_fn hl_quant_gemm_x4_fn_for(uint32_t type);
/* Token-interleaved activations for the GEMM kernels (Q8_0 and Q4_0 weights): per group of
 * 16 tokens and per 32-value block, 8 x 64 bytes (value group g = values 4g..4g+3: token l's
 * four values, each plus 128 as an unsigned byte, at bytes 64g + 4l) then the 16 tokens'
 * scales as floats; 576 bytes. Padding tokens of the last group are zero (byte 128, scale
 * 0). x holds nt rows of n floats (n a multiple of 32), x_stride floats apart. */
size_t hl_quant_actx_size(int n, int nt);
void hl_quant_actx_pack(const float *x, size_t x_stride, int nt, int n, void *dst);
/* The K-quants' GEMM takes the same layout quantized as hl_act_q8k is (one scale per 256
 * values, repeated in each of their 8 blocks; value and scale roundings of Q8K), so that a
 * prompt sees the activations a decode step does: hl_quant_actx_k() says whether a type's
 * GEMM wants that, hl_quant_actx_pack_for() packs what the type wants (n a multiple of 256
 * for K-quants). */
bool hl_quant_actx_k(uint32_t type);
size_t hl_quant_actx_size_for(uint32_t type, int n, int nt);
void hl_quant_actx_pack_for(uint32_t type, const float *x, size_t x_stride, int nt, int n, void *dst);
/* The GEMM kernel at an ISA level (NULL where none or unavailable: only AVX-512 has one, for
 * Q4_0 and Q8_0), and the best one available. */
hl_quant_gemm_fn hl_quant_gemm(uint32_t type, hl_quant_isa isa);
hl_quant_gemm_fn hl_quant_gemm_fn_for(uint32_t type);
/* The GEMM's arithmetic in plain C, for tests: the same numbers, bit for bit. */
void hl_quant_gemm_ref(uint32_t type, int n, const void *w, size_t w_stride, int nr,
                       const void *actx, int nt, float *out, size_t out_stride);
/* The best ISA level this CPU runs (HL_QUANT_ISA=scalar|avx2|avx512 in the environment
 * caps it, for benchmarks and for testing the fallbacks). */
hl_quant_isa hl_quant_best_isa(void);
const char *hl_quant_isa_name(hl_quant_isa isa);

/* Vector helpers for attention over the half-precision KV cache, with SIMD versions chosen
 * like the kernels. */
typedef struct hl_quant_vec_ops {
    /* sum x[i]*y[i] over halves, accumulated in float */
    float (*dot_f16)(int n, const uint16_t *x, const uint16_t *y);
    /* y[i] = half(y[i] + x[i]*v) */
    void (*mad_f16)(int n, uint16_t *y, const uint16_t *x, float v);
    /* y[i] = half(y[i]*v) */
    void (*scale_f16)(int n, uint16_t *y, float v);
    void (*to_f16)(int n, const float *x, uint16_t *y);
    void (*from_f16)(int n, const uint16_t *x, float *y);
    /* The attention of nq query heads (q: hd halves apart) that share n_pos cached keys and
     * values (rows stride halves apart): for each head, the online softmax of hl_model.c's
     * attention, step for step with the ops above (score = dot_f16(q, k) * scale; on a new
     * maximum acc = scale_f16(acc, exp(old - new)), else the weight is exp(score - max);
     * acc = mad_f16(acc, v, weight); sum = sum * m + w), so the same bits, in one call with
     * the accumulators in registers and the keys and values converted once for all the
     * heads. Writes acc (head h's hd halves at acc + h * hd) and sums[h]. NULL where a level
     * has none (the caller runs the steps). */
    void (*attn_f16)(int hd, int nq, int n_pos, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                     size_t stride, float scale, uint16_t *acc, float *sums);
} hl_quant_vec_ops;

const hl_quant_vec_ops *hl_quant_vec(hl_quant_isa isa); /* NULL if isa unavailable */
const hl_quant_vec_ops *hl_quant_vec_best(void);

#endif
