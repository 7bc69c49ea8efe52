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
static void pack_nibbles(const uint8_t v[32], int r, uint8_t *const ch[4]) {
    for (int c = 0; c < 4; c++)
        for (int b = 0; b < 4; b++) ch[c][4 * r + b] = (uint8_t)((v[8 * c + b] & 15) | (v[8 * c + 4 + b] & 15) << 4);
}

/* The 256 4-bit values of a Q4_K/Q5_K block in order (Q5_K's without their fifth bit). */
static void q4k_values(const uint8_t *qs, uint8_t v[256]) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            v[64 * p + l] = qs[32 * p + l] & 15;
            v[64 * p + 32 + l] = qs[32 * p + l] >> 4;
        }
}

/* Q4_K's and Q5_K's first 320 bytes: d, dmin, scales and mins of the 16 rows. */
static void pack_k4_head(const uint8_t *d, const uint8_t *dmin, const uint8_t *scales, int r, uint8_t *o) {
    memcpy(o + 2 * r, d, 2);
    memcpy(o + 32 + 2 * r, dmin, 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        hl_quant_q4k_scale_min(scales, j, &sc, &mn);
        o[64 + 16 * j + r] = sc;
        o[192 + 32 * (j / 2) + 2 * r + j % 2] = mn;
    }
}

static void pack_q4k(const hl_block_q4_k *b, int r, uint8_t *o) {
    uint8_t v[256];
    pack_k4_head((const uint8_t *)&b->d, (const uint8_t *)&b->dmin, b->scales, r, o);
    q4k_values(b->qs, v);
    for (int j = 0; j < 8; j++) {
        uint8_t *sub = o + 320 + 256 * j, *const ch[4] = {sub, sub + 64, sub + 128, sub + 192};
        pack_nibbles(v + 32 * j, r, ch);
    }
}

static void pack_q5k(const hl_block_q5_k *b, int r, uint8_t *o) {
    uint8_t v[256];
    pack_k4_head((const uint8_t *)&b->d, (const uint8_t *)&b->dmin, b->scales, r, o);
    q4k_values(b->qs, v);
    for (int l = 0; l < 256; l++) v[l] |= (uint8_t)(((b->qh[l % 32] >> (l / 32)) & 1) << 4);
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = v + 32 * j;
        uint8_t *sub = o + 320 + 320 * j;
        /* chunk c, byte 4r + b: the low 4 bits of value 8c + b and bits 1-4 of value
         * 8c + 4 + b; byte 4r + b of the bit vector: in bit 2c + 1 the first's fifth bit,
         * in bit 2c the second's bit 0 */
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 4; k++) {
                uint8_t v0 = q[8 * c + k], v1 = q[8 * c + 4 + k];
                sub[64 + 64 * c + 4 * r + k] = (uint8_t)((v0 & 15) | (v1 >> 1) << 4);
                sub[4 * r + k] |= (uint8_t)((v0 >> 4) << (2 * c + 1) | (v1 & 1) << (2 * c));
            }
    }
}

/* The 256 6-bit values of a Q6_K block in order, before their -32. */
static void q6k_values(const hl_block_q6_k *b, uint8_t v[256]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            v[128 * h + l] = (uint8_t)((ql[l] & 15) | (qh[l] & 3) << 4);
            v[128 * h + 32 + l] = (uint8_t)((ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4);
            v[128 * h + 64 + l] = (uint8_t)((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4);
            v[128 * h + 96 + l] = (uint8_t)((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4);
        }
    }
}

static void pack_q6k(const hl_block_q6_k *b, int r, uint8_t *o) {
    uint8_t v[256];
    memcpy(o + 2 * r, &b->d, 2);
    q6k_values(b, v);
    for (int j = 0; j < 8; j++) {
        o[64 + 32 * j + 2 * r] = (uint8_t)b->scales[2 * j];
        o[64 + 32 * j + 2 * r + 1] = (uint8_t)b->scales[2 * j + 1];
        uint8_t *sub = o + 320 + 384 * j, *const ch[4] = {sub + 64, sub + 128, sub + 256, sub + 320};
        const uint8_t *q = v + 32 * j;
        pack_nibbles(q, r, ch);
        /* vector t, byte 4r + k: bits 2m, 2m + 1 the top bits of value 8 (2t + m / 2) + 4 (m % 2) + k */
        for (int t = 0; t < 2; t++)
            for (int k = 0; k < 4; k++) {
                int top = 0;
                for (int m = 0; m < 4; m++) top |= (q[8 * (2 * t + m / 2) + 4 * (m % 2) + k] >> 4) << (2 * m);
                sub[192 * t + 4 * r + k] = (uint8_t)top;
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
