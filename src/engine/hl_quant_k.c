/* hl_quant_k: Q5_K's scalar reference (dequantization and dot product); see hl_quant_k.h.
 * Q4_K's and Q6_K's scalar versions are in hl_quant.c, the SIMD kernels of all three in
 * hl_quant_k_x86.c. */
#include "hl_quant_k.h"

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
