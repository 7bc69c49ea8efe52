/* hl_quant_k: the K-quant (Q4_K, Q5_K, Q6_K) kernels behind hl_quant (private to hl_quant.c
 * and its tests). They live apart from the Q4_0/Q8_0 ones because their blocks carry
 * sub-block scales (and mins) that the kernels unpack per super-block of 256 values.
 *
 * Results. Each SIMD decode kernel gives the scalar reference's float, bit for bit: per
 * super-block the integer sums are exact (any order), and the float steps are the scalar
 * ones in the same order, one operation per statement (never fused into an fma):
 *   Q4_K, Q5_K: s += da * (d * (float)sum_qs - dmin * (float)sum_mins)
 *   Q6_K:       s += (da * d) * (float)(sum_qs - 32 * sum_offsets)
 * The GEMM kernels give, for every (row, token), the decode kernel's float on that row and
 * the token's HL_ACT_Q8K activations, bit for bit (same integers, same float steps). */
#ifndef HL_QUANT_K_H
#define HL_QUANT_K_H

#include <stdbool.h>
#include <stdint.h>
#include "hl_quant.h"

/* Q5_K: dequantize one block of 256; the scalar reference dot product (act: hl_act_q8k). */
void hl_quant_k_dequant_q5k(const hl_block_q5_k *b, float *y);
float hl_quant_k_dot_q5k(int n, const void *w, const void *act);

/* The unpacked 6-bit scales and mins of a Q4_K/Q5_K block (8 each), as one little-endian
 * 64-bit word per kind: byte j is sub-block j's. */
static inline void hl_quant_k_scales(const uint8_t *q, uint64_t *sc, uint64_t *mn) {
    uint32_t u0 = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    uint32_t u1 = (uint32_t)q[4] | (uint32_t)q[5] << 8 | (uint32_t)q[6] << 16 | (uint32_t)q[7] << 24;
    uint32_t u2 = (uint32_t)q[8] | (uint32_t)q[9] << 8 | (uint32_t)q[10] << 16 | (uint32_t)q[11] << 24;
    *sc = (u0 & 0x3f3f3f3fu) | (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
    *mn = (u1 & 0x3f3f3f3fu) | (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u)) << 32;
}

/* Four rows repacked for decoding (see hl_quant.h's hl_quant_x4_*), per super-block of the
 * 4 rows. Q4_K, 592 bytes: d of rows 0-3 (halves), dmin of rows 0-3, the 8 scales of row 0,
 * of row 1, ... (bytes), the 8 mins likewise, then for each sub-block j of 32 values the
 * rows' 16 bytes in row order, byte k = value 32j+k | value 32j+16+k << 4. The kernels give
 * each row's hl_quant_dot_fn result bit for bit.
 * Q6_K, 840 bytes: d of rows 0-3 (halves), the scales of groups 0-7 of row 0, of row 1, ...,
 * then of groups 8-15 likewise (int8), then for each sub-block j of 32 values: the rows' 16
 * bytes of low 4 bits (as Q4_K's nibbles), then the rows' 8 bytes of top 2 bits (byte b:
 * values 32j + 2b, 2b+1, 2b+16, 2b+17 in bits 0-1, 2-3, 4-5, 6-7).
 * Q5_K, 720 bytes: Q4_K's first 80 bytes, then per sub-block Q4_K's 64 bytes of low 4
 * bits and the rows' fifth bits, 4 bytes per row (bit k of the little-endian word: value
 * 32j + k's). */
#define HL_K_X4_Q4K 592
#define HL_K_X4_Q5K 720
#define HL_K_X4_Q6K 840
size_t hl_quant_k_x4_bytes(uint32_t type); /* 0 where no layout */
void hl_quant_k_x4_pack(uint32_t type, const void *src, size_t row_bytes, uint32_t rows,
                        uint32_t cols, void *dst);
hl_quant_x4_fn hl_quant_k_x86_x4(uint32_t type, hl_quant_isa isa);

/* SIMD decode kernels (x86, in hl_quant_k_x86.c) for a K-quant type at an ISA level, NULL
 * where none or not a K-quant. The caller checks the CPU. */
hl_quant_dot_fn hl_quant_k_x86_kernel(uint32_t type, hl_quant_isa isa);
/* hl_quant_actx_pack()'s layout with Q8K's quantization (hl_quant.h), followed by each
 * token's sums of sub-blocks 2k and 2k+1 as the low and high 16 bits of an int32, per group
 * of 16 tokens and k: int32 [group][n / 64][16 tokens]; hl_quant_k_actx_size() bytes. */
size_t hl_quant_k_actx_size(int n, int nt);
void hl_quant_k_actx_pack(const float *x, size_t x_stride, int nt, int n, void *dst);

/* SIMD GEMM kernels on the repacked layout (AVX-512 only), same conventions; the rows
 * given (nr) a multiple of 4, w_stride the bytes of a group of 4 rows, the activations from
 * hl_quant_k_actx_pack(). */
hl_quant_gemm_fn hl_quant_k_x86_gemm_x4(uint32_t type, hl_quant_isa isa);

#endif
