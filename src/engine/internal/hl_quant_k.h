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

/* Sixteen rows repacked for decoding (see hl_quant.h's hl_quant_x4_*), per super-block of
 * the 16 rows: a 512-bit vector holds 4 bytes of each row in its 32-bit lane, so that one
 * vpdpbusd multiplies 4 values of 16 rows by 4 activations broadcast from memory, the
 * per-row sums stay in their lane (no reduction) and the scales load as vectors. The
 * 4-bit part of a sub-block j of 32 values is 4 chunks c of 64 bytes: byte 4r + b of chunk c
 * = value 32j + 8c + b | value 32j + 8c + 4 + b << 4 of row r (b < 4). The kernels give each
 * row's hl_quant_dot_fn result bit for bit.
 * Q4_K, 2368 bytes: d of rows 0-15 (halves), dmin of rows 0-15, the scales (byte 64 + 16j + r:
 * sub-block j's, row r), the mins in pairs (byte 192 + 32k + 2r + t: sub-block 2k + t's, row
 * r), then the 8 sub-blocks' 256 bytes of 4-bit values.
 * Q5_K, 2880 bytes: Q4_K's first 320 bytes, then per sub-block j a 64-byte vector of bits
 * and 4 chunks of 64 bytes, split differently from Q4_K's so that one vector of bits gives a
 * chunk's missing bits for both halves at once: with u = value 32j + 8c + b and v = value
 * 32j + 8c + 4 + b of row r (5 bits each), byte 4r + b of chunk c = (u & 15) | (v >> 1) << 4
 * and byte 4r + b of the bit vector holds u >> 4 in bit 2c and v & 1 in bit 2c + 1. The
 * kernel then reads u as the byte's low 4 bits with bit 4 added, and 8v as its high 4 bits
 * with bit 3 added (vpternlogd), both bits from one shift of the bit vector.
 * Q6_K, 3392 bytes: d of rows 0-15 (halves), 32 bytes of padding (with 3360 bytes every
 * vector load of every other super-block would straddle two cache lines), the scales in
 * pairs (byte 64 + 32j + 2r + t: row r's scale of the values 32j + 16t .. 32j + 16t + 15,
 * int8), then per sub-block, for t = 0, 1, a 64-byte vector of top 2 bits and chunks 2t and
 * 2t + 1 of low 4 bits: byte 4r + b of vector t holds in bits 2m, 2m + 1 (m = 2 (c - 2t) + h)
 * the top bits of value 32j + 8c + 4h + b.
 * Everything is in the order the kernels read it, so that a super-block is read front to
 * back (from memory, Q4_K and Q5_K read faster so than with the head read last and the
 * fifth bits after the values). */
#define HL_K_X4_ROWS 16
#define HL_K_X4_Q4K 2368
#define HL_K_X4_Q5K 2880
#define HL_K_X4_Q6K 3392
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
 * given (nr) a multiple of 16, w_stride the bytes of a group of 16 rows, the activations from
 * hl_quant_k_actx_pack(). */
hl_quant_gemm_fn hl_quant_k_x86_gemm_x4(uint32_t type, hl_quant_isa isa);

#endif
