/* hl_quant_k: Q5_K's scalar reference (dequantization and dot product); see hl_quant_k.h.
 * Q4_K's and Q6_K's scalar versions are in hl_quant.c, the SIMD kernels of all three in
 * hl_quant_k_x86.c. */
#include "hl_quant_k.h"

#include <string.h>

_Static_assert(sizeof(hl_block_q5_k) == 176, "Q5_K block is 176 bytes");

void hl_quant_k_dequant_q5k(const hl_block_q5_k *b, float *y) {
    float d = hl_quant_f16_to_f32(b->d), dmin = hl_quant_f16_to_f32(b->dmin);
    for (int p = 0; p < 4; p++) {
        uint8_t s0, m0, s1, m1;
        hl_quant_q4k_scale_min(b->scales, 2 * p, &s0, &m0);
        hl_quant_q4k_scale_min(b->scales, 2 * p + 1, &s1, &m1);
        const uint8_t *q = b->qs + 32 * p;
        for (int l = 0; l < 32; l++) {
            int v0 = (q[l] & 0xf) | ((b->qh[l] >> (2 * p)) & 1) << 4;
            int v1 = (q[l] >> 4) | ((b->qh[l] >> (2 * p + 1)) & 1) << 4;
            y[64 * p + l] = d * s0 * v0 - dmin * m0;
            y[64 * p + 32 + l] = d * s1 * v1 - dmin * m1;
        }
    }
}

float hl_quant_k_dot_q5k(int n, const void *w, const void *act) {
    const hl_block_q5_k *b = w;
    const hl_act_q8k *a = act;
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        int32_t sum_qs = 0, sum_mins = 0;
        for (int p = 0; p < 4; p++) {
            uint8_t s0, m0, s1, m1;
            hl_quant_q4k_scale_min(b[i].scales, 2 * p, &s0, &m0);
            hl_quant_q4k_scale_min(b[i].scales, 2 * p + 1, &s1, &m1);
            const uint8_t *q = b[i].qs + 32 * p;
            const int8_t *y = a[i].qs + 64 * p;
            int32_t i0 = 0, i1 = 0;
            for (int l = 0; l < 32; l++) {
                i0 += ((q[l] & 0xf) | ((b[i].qh[l] >> (2 * p)) & 1) << 4) * y[l];
                i1 += ((q[l] >> 4) | ((b[i].qh[l] >> (2 * p + 1)) & 1) << 4) * y[l + 32];
            }
            sum_qs += s0 * i0 + s1 * i1;
            sum_mins += m0 * (a[i].bsums[4 * p] + a[i].bsums[4 * p + 1]) +
                        m1 * (a[i].bsums[4 * p + 2] + a[i].bsums[4 * p + 3]);
        }
        /* one operation per statement: the SIMD kernels repeat these steps exactly */
        float t1 = hl_quant_f16_to_f32(b[i].d) * (float)sum_qs;
        float t2 = hl_quant_f16_to_f32(b[i].dmin) * (float)sum_mins;
        float t3 = t1 - t2;
        float t4 = a[i].d * t3;
        s = s + t4;
    }
    return s;
}

size_t hl_quant_k_x4_bytes(uint32_t type) {
    switch (type) {
    case HL_GGUF_Q4_K: return HL_K_X4_Q4K;
    case HL_GGUF_Q5_K: return HL_K_X4_Q5K;
    case HL_GGUF_Q6_K: return HL_K_X4_Q6K;
    default: return 0;
    }
}

/* The 4-bit part of a sub-block of row r (v: its 32 values) into the 16-row layout's chunks
 * ch[0..3]: byte 4r + b of chunk c = value 8c + b | value 8c + 4 + b << 4. */
static void pack_nibbles(const int v[32], int r, uint8_t *const ch[4]) {
    for (int c = 0; c < 4; c++)
        for (int b = 0; b < 4; b++) ch[c][4 * r + b] = (uint8_t)((v[8 * c + b] & 15) | (v[8 * c + 4 + b] & 15) << 4);
}

/* Q4_K/Q5_K: the value k (0..255) of row b, without its fifth bit for Q5_K. */
static int q4k_value(const uint8_t *qs, int k) {
    return (qs[32 * (k / 64) + k % 32] >> (4 * ((k / 32) % 2))) & 15;
}

/* Q4_K's and Q5_K's first 320 bytes: d, dmin, scales and mins of the 16 rows. */
static void pack_k4_head(const hl_block_q4_k *b, int r, uint8_t *o) {
    memcpy(o + 2 * r, &b->d, 2);
    memcpy(o + 32 + 2 * r, &b->dmin, 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        hl_quant_q4k_scale_min(b->scales, j, &sc, &mn);
        o[64 + 16 * j + r] = sc;
        o[192 + 32 * (j / 2) + 2 * r + j % 2] = mn;
    }
}

static void pack_q4k(const hl_block_q4_k *b, int r, uint8_t *o) {
    pack_k4_head(b, r, o);
    for (int j = 0; j < 8; j++) {
        int v[32];
        for (int k = 0; k < 32; k++) v[k] = q4k_value(b->qs, 32 * j + k);
        uint8_t *sub = o + 320 + 256 * j, *const ch[4] = {sub, sub + 64, sub + 128, sub + 192};
        pack_nibbles(v, r, ch);
    }
}

static void pack_q5k(const hl_block_q5_k *b, int r, uint8_t *o) {
    /* Q5_K's d, dmin, scales and qs are Q4_K's fields, at other offsets */
    hl_block_q4_k h;
    memcpy(&h.d, &b->d, 2);
    memcpy(&h.dmin, &b->dmin, 2);
    memcpy(h.scales, b->scales, sizeof h.scales);
    pack_k4_head(&h, r, o);
    for (int j = 0; j < 8; j++) {
        uint8_t *sub = o + 320 + 320 * j, *const ch[4] = {sub + 64, sub + 128, sub + 192, sub + 256};
        int v[32];
        for (int k = 0; k < 32; k++) v[k] = q4k_value(b->qs, 32 * j + k);
        pack_nibbles(v, r, ch);
        for (int k = 0; k < 32; k++) {
            int c = k / 8, hh = k % 8 / 4, bit = 4 * r + k % 4;
            if ((b->qh[k] >> j) & 1) sub[8 * (2 * c + hh) + bit / 8] |= (uint8_t)(1 << (bit % 8));
        }
    }
}

/* The 6-bit value k (0..255) of a Q6_K block, before its -32. */
static int q6k_value(const hl_block_q6_k *b, int k) {
    int h = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
    int lo = b->ql[64 * h + l + (quarter & 1 ? 32 : 0)];
    lo = quarter & 2 ? lo >> 4 : lo & 0xf;
    return lo | ((b->qh[32 * h + l] >> (2 * quarter)) & 3) << 4;
}

static void pack_q6k(const hl_block_q6_k *b, int r, uint8_t *o) {
    memcpy(o + 2 * r, &b->d, 2);
    for (int j = 0; j < 8; j++) {
        o[64 + 32 * j + 2 * r] = (uint8_t)b->scales[2 * j];
        o[64 + 32 * j + 2 * r + 1] = (uint8_t)b->scales[2 * j + 1];
        uint8_t *sub = o + 320 + 384 * j, *const ch[4] = {sub + 64, sub + 128, sub + 256, sub + 320};
        int v[32];
        for (int k = 0; k < 32; k++) v[k] = q6k_value(b, 32 * j + k);
        pack_nibbles(v, r, ch);
        for (int k = 0; k < 32; k++) {
            int c = k / 8, hh = k % 8 / 4;
            sub[192 * (c / 2) + 4 * r + k % 4] |= (uint8_t)((v[k] >> 4) << (2 * (2 * (c % 2) + hh)));
        }
    }
}

void hl_quant_k_x4_pack(uint32_t type, const void *src, size_t row_bytes, uint32_t rows,
                        uint32_t cols, void *dst) {
    size_t bb = hl_quant_k_x4_bytes(type), bs = hl_gguf_type_size(type);
    uint8_t *o = dst;
    for (uint32_t g = 0; g < rows / HL_K_X4_ROWS; g++)
        for (uint32_t i = 0; i < cols / 256; i++, o += bb) {
            memset(o, 0, bb); /* the bit planes are or-ed in */
            for (int r = 0; r < HL_K_X4_ROWS; r++) {
                const void *b = (const uint8_t *)src + (size_t)(HL_K_X4_ROWS * g + r) * row_bytes + i * bs;
                if (type == HL_GGUF_Q4_K) pack_q4k(b, r, o);
                else if (type == HL_GGUF_Q5_K) pack_q5k(b, r, o);
                else if (type == HL_GGUF_Q6_K) pack_q6k(b, r, o);
            }
        }
}

size_t hl_quant_k_actx_size(int n, int nt) {
    return hl_quant_actx_size(n, nt) + (size_t)((nt + 15) / 16) * (size_t)(n / 64) * 16 * sizeof(int32_t);
}

void hl_quant_k_actx_pack(const float *x, size_t x_stride, int nt, int n, void *dst) {
    int nb = n / 32, ng = (nt + 15) / 16;
    uint8_t *o = dst;
    int32_t *pairs = (int32_t *)(o + hl_quant_actx_size(n, nt));
    for (int t = 0; t < ng * 16; t++) {
        uint8_t *g = o + (size_t)(t / 16) * nb * 576 + 4 * (t % 16);
        int32_t *pt = pairs + (size_t)(t / 16) * (nb / 2) * 16 + t % 16;
        for (int s = 0; s < n / 256; s++) {
            hl_act_q8k q;
            if (t < nt) hl_quant_act_quantize(HL_ACT_Q8K, x + (size_t)t * x_stride + 256 * s, &q, 256);
            else memset(&q, 0, sizeof q);
            for (int i = 8 * s; i < 8 * s + 8; i++, g += 576) {
                for (int j = 0; j < 32; j++) g[64 * (j / 4) + j % 4] = (uint8_t)(q.qs[32 * (i % 8) + j] + 128);
                memcpy(g + 512, &q.d, 4);
            }
            for (int k = 0; k < 4; k++) {
                int32_t s0 = q.bsums[4 * k] + q.bsums[4 * k + 1], s1 = q.bsums[4 * k + 2] + q.bsums[4 * k + 3];
                pt[(size_t)(4 * s + k) * 16] = (int32_t)((uint32_t)s0 & 0xffff) | (int32_t)((uint32_t)s1 << 16);
            }
        }
    }
}
