/* hl_quant: scalar reference kernels, conversions and kernel selection; see hl_quant.h.
 * The SIMD kernels live in hl_quant_x86.c and are checked against the ones here. */
#include "hl_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hl_quant_k.h"
#include "hl_quant_x86.h"

_Static_assert(sizeof(hl_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(hl_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(hl_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(hl_block_q6_k) == 210, "Q6_K block is 210 bytes");

/* ---- scalar conversions ---------------------------------------------------------------- */

float hl_quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float f = (float)man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) bits = sign | 0x7f800000u | man << 13;
    else bits = sign | (exp + 112) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t hl_quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* rounds past 65504: infinity */
    if (ax < 0x38800000u) {
        /* below the smallest normal half (2^-14): a subnormal half is round(|f| * 2^24);
         * the scaling by a power of two is exact and lrintf rounds to nearest even. */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    uint32_t h = ((ax >> 23) - 112) << 10 | (ax & 0x7fffffu) >> 13;
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float hl_quant_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t hl_quant_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

bool hl_quant_supported(uint32_t type) {
    switch (type) {
    case HL_GGUF_F32: case HL_GGUF_F16: case HL_GGUF_BF16: case HL_GGUF_Q8_0:
    case HL_GGUF_Q4_0: case HL_GGUF_Q4_K: case HL_GGUF_Q5_K: case HL_GGUF_Q6_K:
        return true;
    default:
        return false;
    }
}

void hl_quant_q4k_scale_min(const uint8_t *q, int j, uint8_t *s, uint8_t *m) {
    /* 12 bytes hold eight 6-bit scales and eight 6-bit mins: bytes 0-3 hold scales 0-3 in
     * their low 6 bits, bytes 4-7 mins 0-3; scales and mins 4-7 keep their low 4 bits in
     * bytes 8-11 (scale low nibble, min high nibble) and their top 2 bits in the top bits
     * of bytes 0-3 (scales) and 4-7 (mins). */
    if (j < 4) {
        *s = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *s = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---- dequantization --------------------------------------------------------------------- */

static void dequant_q8_0(const hl_block_q8_0 *b, float *y) {
    float d = hl_quant_f16_to_f32(b->d);
    for (int j = 0; j < 32; j++) y[j] = d * b->qs[j];
}

static void dequant_q4_0(const hl_block_q4_0 *b, float *y) {
    float d = hl_quant_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = d * ((b->qs[j] & 0xf) - 8);
        y[j + 16] = d * ((b->qs[j] >> 4) - 8);
    }
}

static void dequant_q4_k(const hl_block_q4_k *b, float *y) {
    float d = hl_quant_f16_to_f32(b->d), dmin = hl_quant_f16_to_f32(b->dmin);
    for (int p = 0; p < 4; p++) {
        uint8_t s0, m0, s1, m1;
        hl_quant_q4k_scale_min(b->scales, 2 * p, &s0, &m0);
        hl_quant_q4k_scale_min(b->scales, 2 * p + 1, &s1, &m1);
        const uint8_t *q = b->qs + 32 * p;
        for (int l = 0; l < 32; l++) {
            y[64 * p + l] = d * s0 * (q[l] & 0xf) - dmin * m0;
            y[64 * p + 32 + l] = d * s1 * (q[l] >> 4) - dmin * m1;
        }
    }
}

/* The 6-bit value k (0..255) of a Q6_K block, before the -32 offset. */
static inline int q6k_value(const hl_block_q6_k *b, int k) {
    int h = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    int lo = quarter & 1 ? ql[l + 32] : ql[l];
    lo = quarter & 2 ? lo >> 4 : lo & 0xf;
    int hi = (qh[l] >> (2 * quarter)) & 3;
    return lo | hi << 4;
}

static void dequant_q6_k(const hl_block_q6_k *b, float *y) {
    float d = hl_quant_f16_to_f32(b->d);
    for (int k = 0; k < 256; k++) y[k] = d * b->scales[k / 16] * (q6k_value(b, k) - 32);
}

void hl_quant_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch (type) {
    case HL_GGUF_F32: memcpy(dst, src, (size_t)n * 4); break;
    case HL_GGUF_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = hl_quant_f16_to_f32(h);
        }
        break;
    case HL_GGUF_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = hl_quant_bf16_to_f32(h);
        }
        break;
    case HL_GGUF_Q8_0:
        for (int64_t i = 0; i < n / 32; i++) dequant_q8_0((const hl_block_q8_0 *)p + i, dst + 32 * i);
        break;
    case HL_GGUF_Q4_0:
        for (int64_t i = 0; i < n / 32; i++) dequant_q4_0((const hl_block_q4_0 *)p + i, dst + 32 * i);
        break;
    case HL_GGUF_Q4_K:
        for (int64_t i = 0; i < n / 256; i++)
            dequant_q4_k((const hl_block_q4_k *)p + i, dst + 256 * i);
        break;
    case HL_GGUF_Q5_K:
        for (int64_t i = 0; i < n / 256; i++)
            hl_quant_k_dequant_q5k((const hl_block_q5_k *)p + i, dst + 256 * i);
        break;
    case HL_GGUF_Q6_K:
        for (int64_t i = 0; i < n / 256; i++)
            dequant_q6_k((const hl_block_q6_k *)p + i, dst + 256 * i);
        break;
    default: memset(dst, 0, (size_t)n * 4); break;
    }
}

double hl_quant_dot_ref(uint32_t type, const void *w, const float *x, int n) {
    uint32_t blk = hl_gguf_type_block(type), bsz = hl_gguf_type_size(type);
    float tmp[256];
    double acc = 0;
    for (int i = 0; i < n; i += (int)blk) {
        const uint8_t *b = (const uint8_t *)w + (size_t)(i / blk) * bsz;
        hl_quant_dequant_row(type, b, tmp, blk);
        for (uint32_t j = 0; j < blk; j++) acc += (double)tmp[j] * x[i + j];
    }
    return acc;
}

/* ---- quantization ----------------------------------------------------------------------- */

void hl_quant_quantize_q8_0(const float *x, void *dst, int64_t n) {
    hl_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1 / d : 0;
        b[i].d = hl_quant_f32_to_f16(d);
        for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void hl_quant_quantize_q4_0(const float *x, void *dst, int64_t n) {
    hl_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        /* The value of largest magnitude maps to -8, so its sign picks the direction and the
         * full range -8..7 is used on the side that needs it. */
        float amax = 0, vmax = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                vmax = x[j];
            }
        float d = vmax / -8, id = d ? 1 / d : 0;
        b[i].d = hl_quant_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* ---- activations ----------------------------------------------------------------------- */

hl_quant_act hl_quant_act_for(uint32_t type) {
    switch (type) {
    case HL_GGUF_Q8_0: case HL_GGUF_Q4_0: return HL_ACT_Q8;
    case HL_GGUF_Q4_K: case HL_GGUF_Q5_K: case HL_GGUF_Q6_K: return HL_ACT_Q8K;
    case HL_GGUF_F16: return HL_ACT_F16;
    default: return HL_ACT_F32;
    }
}

hl_quant_act hl_quant_act_for_isa(uint32_t type, hl_quant_isa isa) {
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q8_0) return HL_ACT_Q8P;
    if (isa == HL_ISA_AVX512 && type == HL_GGUF_Q4_0) return HL_ACT_Q8Q;
    return hl_quant_act_for(type);
}

size_t hl_quant_act_size(hl_quant_act act, int n) {
    switch (act) {
    case HL_ACT_Q8P: return (size_t)((n / 32 + 1) / 2) * sizeof(hl_act_q8p);
    case HL_ACT_Q8Q: return (size_t)((n / 32 + 3) / 4) * sizeof(hl_act_q8q);
    case HL_ACT_Q8X: return (size_t)(n / 32) * sizeof(hl_act_q8x);
    case HL_ACT_Q8: return (size_t)(n / 32) * sizeof(hl_act_q8);
    case HL_ACT_Q8K: return (size_t)(n / 256) * sizeof(hl_act_q8k);
    case HL_ACT_F16: return (size_t)n * sizeof(uint16_t);
    default: return (size_t)n * sizeof(float);
    }
}

static void quantize_act_q8_scalar(const float *x, hl_act_q8 *b, int n) {
    for (int i = 0; i < n / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(x[j]); /* fmaxf() without the library call; same result */
            amax = a > amax ? a : amax;
        }
        float id = amax != 0 ? 127.0f / amax : 0;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            b[i].qs[j] = (int8_t)lrintf(x[j] * id);
            sum += b[i].qs[j];
        }
        b[i].d = hl_quant_f16_to_f32(hl_quant_f32_to_f16(amax / 127));
        b[i].sum = sum;
    }
}

static void quantize_act_q8k_scalar(const float *x, hl_act_q8k *b, int n) {
    for (int i = 0; i < n / 256; i++, x += 256) {
        float amax = 0;
        for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1 / d : 0;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                b[i].qs[j] = (int8_t)lrintf(x[j] * id);
                sum += b[i].qs[j];
            }
            b[i].bsums[g] = (int16_t)sum;
        }
        b[i].d = d;
    }
}

/* Q8 blocks (same rounding as quantize_act_q8_scalar), repacked in pairs. */
static void quantize_act_q8p(const float *x, hl_act_q8p *p, int n) {
    int nb = n / 32;
    for (int i = 0; i < nb; i += 2) {
        hl_act_q8p *o = &p[i / 2];
        memset(o, 0, sizeof *o);
        for (int h = 0; h < 2 && i + h < nb; h++) {
            hl_act_q8 b;
            quantize_act_q8_scalar(x + 32 * (i + h), &b, 32);
            memcpy(o->qs + 32 * h, b.qs, 32);
            for (int l = 0; l < 8; l++) {
                o->d[8 * h + l] = b.d;
                o->off[8 * h + l] = -128 * (b.qs[4 * l] + b.qs[4 * l + 1] + b.qs[4 * l + 2] + b.qs[4 * l + 3]);
            }
        }
    }
}

/* The same, repacked in quads in the Q4_0 nibbles' order. */
static void quantize_act_q8q(const float *x, hl_act_q8q *p, int n) {
    int nb = n / 32;
    for (int i = 0; i < nb; i += 4) {
        hl_act_q8q *o = &p[i / 4];
        memset(o, 0, sizeof *o);
        for (int k = 0; k < 4 && i + k < nb; k++) {
            hl_act_q8 b;
            quantize_act_q8_scalar(x + 32 * (i + k), &b, 32);
            memcpy(o->lo + 16 * k, b.qs, 16);
            memcpy(o->hi + 16 * k, b.qs + 16, 16);
            for (int l = 0; l < 4; l++) {
                int s = 0;
                for (int j = 4 * l; j < 4 * l + 4; j++) s += b.qs[j] + b.qs[16 + j];
                o->d[4 * k + l] = b.d;
                o->off[4 * k + l] = -8 * s;
            }
        }
    }
}

/* The same, with both offsets of the repacked-weight kernels. */
static void quantize_act_q8x(const float *x, hl_act_q8x *p, int n) {
    if (hl_quant_x86_quantize_q8x(x, p, n)) return;
    for (int i = 0; i < n / 32; i++) {
        hl_act_q8 b;
        quantize_act_q8_scalar(x + 32 * i, &b, 32);
        memset(&p[i], 0, sizeof p[i]);
        memcpy(p[i].qs, b.qs, 32);
        for (int l = 0; l < 8; l++) {
            int s = b.qs[4 * l] + b.qs[4 * l + 1] + b.qs[4 * l + 2] + b.qs[4 * l + 3];
            p[i].off8[l] = -128 * s;
            if (l < 4) p[i].off4[l] = -8 * s;
            else p[i].off4[l - 4] += -8 * s;
        }
        p[i].d = b.d;
    }
}

void hl_quant_act_quantize(hl_quant_act act, const float *x, void *dst, int n) {
    switch (act) {
    case HL_ACT_Q8P: quantize_act_q8p(x, dst, n); break;
    case HL_ACT_Q8Q: quantize_act_q8q(x, dst, n); break;
    case HL_ACT_Q8X: quantize_act_q8x(x, dst, n); break;
    case HL_ACT_Q8: quantize_act_q8_scalar(x, dst, n); break;
    case HL_ACT_Q8K:
        if (!hl_quant_x86_quantize_q8k(x, dst, n)) quantize_act_q8k_scalar(x, dst, n);
        break;
    case HL_ACT_F16: {
        uint16_t *h = dst;
        for (int i = 0; i < n; i++) h[i] = hl_quant_f32_to_f16(x[i]);
        break;
    }
    default: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    }
}

/* ---- scalar kernels -------------------------------------------------------------------- */

static float dot_f32(int n, const void *w, const void *act) {
    const float *a = w, *x = act;
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * x[i];
    return s;
}

static float dot_f16(int n, const void *w, const void *act) {
    const uint16_t *a = w, *x = act;
    float s = 0;
    for (int i = 0; i < n; i++) s += hl_quant_f16_to_f32(a[i]) * hl_quant_f16_to_f32(x[i]);
    return s;
}

static float dot_bf16(int n, const void *w, const void *act) {
    const uint16_t *a = w;
    const float *x = act;
    float s = 0;
    for (int i = 0; i < n; i++) s += hl_quant_bf16_to_f32(a[i]) * x[i];
    return s;
}

static float dot_q8_0(int n, const void *w, const void *act) {
    const hl_block_q8_0 *b = w;
    const hl_act_q8 *a = act;
    float s = 0;
    for (int i = 0; i < n / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += b[i].qs[j] * a[i].qs[j];
        s += hl_quant_f16_to_f32(b[i].d) * a[i].d * (float)isum;
    }
    return s;
}

static float dot_q4_0(int n, const void *w, const void *act) {
    const hl_block_q4_0 *b = w;
    const hl_act_q8 *a = act;
    float s = 0;
    for (int i = 0; i < n / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++)
            isum += (b[i].qs[j] & 0xf) * a[i].qs[j] + (b[i].qs[j] >> 4) * a[i].qs[j + 16];
        isum -= 8 * a[i].sum;
        s += hl_quant_f16_to_f32(b[i].d) * a[i].d * (float)isum;
    }
    return s;
}

static float dot_q4_k(int n, const void *w, const void *act) {
    const hl_block_q4_k *b = w;
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
                i0 += (q[l] & 0xf) * y[l];
                i1 += (q[l] >> 4) * y[l + 32];
            }
            sum_qs += s0 * i0 + s1 * i1;
            sum_mins += m0 * (a[i].bsums[4 * p] + a[i].bsums[4 * p + 1]) +
                        m1 * (a[i].bsums[4 * p + 2] + a[i].bsums[4 * p + 3]);
        }
        s += a[i].d * (hl_quant_f16_to_f32(b[i].d) * (float)sum_qs -
                       hl_quant_f16_to_f32(b[i].dmin) * (float)sum_mins);
    }
    return s;
}

static float dot_q6_k(int n, const void *w, const void *act) {
    const hl_block_q6_k *b = w;
    const hl_act_q8k *a = act;
    float s = 0;
    for (int i = 0; i < n / 256; i++) {
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t gs = 0;
            for (int k = 16 * g; k < 16 * g + 16; k++) gs += q6k_value(&b[i], k) * a[i].qs[k];
            isum += b[i].scales[g] * (gs - 32 * a[i].bsums[g]);
        }
        s += a[i].d * hl_quant_f16_to_f32(b[i].d) * (float)isum;
    }
    return s;
}

static hl_quant_dot_fn scalar_kernel(uint32_t type) {
    switch (type) {
    case HL_GGUF_F32: return dot_f32;
    case HL_GGUF_F16: return dot_f16;
    case HL_GGUF_BF16: return dot_bf16;
    case HL_GGUF_Q8_0: return dot_q8_0;
    case HL_GGUF_Q4_0: return dot_q4_0;
    case HL_GGUF_Q4_K: return dot_q4_k;
    case HL_GGUF_Q5_K: return hl_quant_k_dot_q5k;
    case HL_GGUF_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}

/* ---- selection ------------------------------------------------------------------------- */

const char *hl_quant_isa_name(hl_quant_isa isa) {
    switch (isa) {
    case HL_ISA_SCALAR: return "scalar";
    case HL_ISA_AVX2: return "avx2";
    case HL_ISA_AVX512: return "avx512";
    default: return "?";
    }
}

static bool cpu_has(hl_quant_isa isa) {
    switch (isa) {
    case HL_ISA_SCALAR: return true;
    case HL_ISA_AVX2: return hl_quant_x86_has_avx2();
    case HL_ISA_AVX512: return hl_quant_x86_has_avx512();
    default: return false;
    }
}

hl_quant_isa hl_quant_best_isa(void) {
    hl_quant_isa cap = HL_ISA_AVX512;
    const char *env = getenv("HL_QUANT_ISA");
    if (env && strcmp(env, "scalar") == 0) cap = HL_ISA_SCALAR;
    else if (env && strcmp(env, "avx2") == 0) cap = HL_ISA_AVX2;
    for (int i = cap; i > HL_ISA_SCALAR; i--)
        if (cpu_has((hl_quant_isa)i)) return (hl_quant_isa)i;
    return HL_ISA_SCALAR;
}

static bool is_kquant(uint32_t type) {
    return type == HL_GGUF_Q4_K || type == HL_GGUF_Q5_K || type == HL_GGUF_Q6_K;
}

hl_quant_dot_fn hl_quant_kernel(uint32_t type, hl_quant_isa isa) {
    if (!cpu_has(isa)) return NULL;
    if (is_kquant(type) && isa != HL_ISA_SCALAR) return hl_quant_k_x86_kernel(type, isa);
    switch (isa) {
    case HL_ISA_SCALAR: return scalar_kernel(type);
    case HL_ISA_AVX2: return hl_quant_x86_kernel_avx2(type);
    case HL_ISA_AVX512: return hl_quant_x86_kernel_avx512(type);
    default: return NULL;
    }
}

hl_quant_isa hl_quant_kernel_isa(uint32_t type) {
    for (int i = hl_quant_best_isa(); i > HL_ISA_SCALAR; i--)
        if (hl_quant_kernel(type, (hl_quant_isa)i)) return (hl_quant_isa)i;
    return HL_ISA_SCALAR;
}

hl_quant_dot_fn hl_quant_dot_fn_for(uint32_t type) {
    for (int i = hl_quant_best_isa(); i >= HL_ISA_SCALAR; i--) {
        hl_quant_dot_fn f = hl_quant_kernel(type, (hl_quant_isa)i);
        if (f) return f;
    }
    return NULL;
}

size_t hl_quant_x4_block_bytes(uint32_t type) {
    if (is_kquant(type)) return hl_quant_k_x4_bytes(type);
    if (type == HL_GGUF_Q4_0) return 8 + 4 * 16;
    if (type == HL_GGUF_Q8_0) return 8 + 4 * 32;
    return 0;
}

uint32_t hl_quant_x4_rows(uint32_t type) {
    return is_kquant(type) ? HL_K_X4_ROWS : 4;
}

void hl_quant_x4_pack(uint32_t type, const void *src, size_t row_bytes, uint32_t rows,
                      uint32_t cols, void *dst) {
    if (is_kquant(type)) {
        hl_quant_k_x4_pack(type, src, row_bytes, rows, cols, dst);
        return;
    }
    size_t bb = hl_quant_x4_block_bytes(type), bs = type == HL_GGUF_Q8_0 ? 34 : 18, qs = bs - 2;
    uint32_t nb = cols / 32;
    uint8_t *o = dst;
    for (uint32_t g = 0; g < rows / 4; g++)
        for (uint32_t i = 0; i < nb; i++, o += bb)
            for (int r = 0; r < 4; r++) {
                const uint8_t *blk = (const uint8_t *)src + (size_t)(4 * g + r) * row_bytes + i * bs;
                memcpy(o + 2 * r, blk, 2);
                memcpy(o + 8 + qs * r, blk + 2, qs);
            }
}

hl_quant_act hl_quant_x4_act(uint32_t type) {
    return is_kquant(type) ? HL_ACT_Q8K : HL_ACT_Q8X;
}

hl_quant_x4_fn hl_quant_x4(uint32_t type, hl_quant_isa isa) {
    if (!cpu_has(isa) || isa == HL_ISA_SCALAR) return NULL;
    if (is_kquant(type)) return hl_quant_k_x86_x4(type, isa);
    return hl_quant_x86_x4(type, isa);
}

hl_quant_x4_fn hl_quant_x4_fn_for(uint32_t type) {
    for (int i = hl_quant_best_isa(); i > HL_ISA_SCALAR; i--) {
        hl_quant_x4_fn f = hl_quant_x4(type, (hl_quant_isa)i);
        if (f) return f;
    }
    return NULL;
}

hl_quant_gemm_fn hl_quant_gemm_x4(uint32_t type, hl_quant_isa isa) {
    if (!cpu_has(isa) || isa == HL_ISA_SCALAR) return NULL;
    if (is_kquant(type)) return hl_quant_k_x86_gemm_x4(type, isa);
    return hl_quant_x86_gemm_x4(type, isa);
}

hl_quant_gemm_fn hl_quant_gemm_x4_fn_for(uint32_t type) {
    for (int i = hl_quant_best_isa(); i > HL_ISA_SCALAR; i--) {
        hl_quant_gemm_fn f = hl_quant_gemm_x4(type, (hl_quant_isa)i);
        if (f) return f;
    }
    return NULL;
}

hl_quant_gemm_fn hl_quant_gemm(uint32_t type, hl_quant_isa isa) {
    if (!cpu_has(isa) || isa == HL_ISA_SCALAR) return NULL;
    if (is_kquant(type)) return NULL; /* K-quants: on the repacked layout only */
    return hl_quant_x86_gemm(type, isa);
}

hl_quant_gemm_fn hl_quant_gemm_fn_for(uint32_t type) {
    for (int i = hl_quant_best_isa(); i > HL_ISA_SCALAR; i--) {
        hl_quant_gemm_fn f = hl_quant_gemm(type, (hl_quant_isa)i);
        if (f) return f;
    }
    return NULL;
}

#define ACTX_BLOCK 576 /* bytes per (group of 16 tokens, 32-value block) */

size_t hl_quant_actx_size(int n, int nt) {
    return (size_t)((nt + 15) / 16) * (size_t)(n / 32) * ACTX_BLOCK;
}

void hl_quant_actx_pack(const float *x, size_t x_stride, int nt, int n, void *dst) {
    if (hl_quant_best_isa() == HL_ISA_AVX512 && hl_quant_x86_actx_pack(x, x_stride, nt, n, dst))
        return;
    int nb = n / 32, ng = (nt + 15) / 16;
    uint8_t *o = dst;
    for (int t = 0; t < ng * 16; t++) {
        uint8_t *g = o + (size_t)(t / 16) * nb * ACTX_BLOCK + 4 * (t % 16);
        for (int i = 0; i < nb; i++, g += ACTX_BLOCK) {
            float d = 0;
            if (t < nt) {
                hl_act_q8 b;
                quantize_act_q8_scalar(x + (size_t)t * x_stride + 32 * i, &b, 32);
                for (int j = 0; j < 32; j++) g[64 * (j / 4) + j % 4] = (uint8_t)(b.qs[j] + 128);
                d = b.d;
            } else {
                for (int j = 0; j < 32; j++) g[64 * (j / 4) + j % 4] = 128;
            }
            memcpy(g + 512, &d, 4); /* g is already at token t's lane */
        }
    }
}

bool hl_quant_actx_k(uint32_t type) {
    return is_kquant(type);
}

size_t hl_quant_actx_size_for(uint32_t type, int n, int nt) {
    return is_kquant(type) ? hl_quant_k_actx_size(n, nt) : hl_quant_actx_size(n, nt);
}

void hl_quant_actx_pack_for(uint32_t type, const float *x, size_t x_stride, int nt, int n, void *dst) {
    if (is_kquant(type)) hl_quant_k_actx_pack(x, x_stride, nt, n, dst);
    else hl_quant_actx_pack(x, x_stride, nt, n, dst);
}

void hl_quant_gemm_ref(uint32_t type, int n, const void *w, size_t w_stride, int nr,
                       const void *actx, int nt, float *out, size_t out_stride) {
    int nb = n / 32;
    const uint8_t *A = actx;
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * w_stride;
        for (int t = 0; t < nt; t++) {
            float acc = 0;
            for (int i = 0; i < nb; i++) {
                const uint8_t *g = A + ((size_t)(t / 16) * nb + i) * ACTX_BLOCK + 4 * (t % 16);
                float da;
                memcpy(&da, g + 512, 4);
                int8_t wq[32];
                uint16_t dh;
                if (type == HL_GGUF_Q8_0) {
                    const hl_block_q8_0 *b = (const hl_block_q8_0 *)row + i;
                    memcpy(wq, b->qs, 32);
                    dh = b->d;
                } else {
                    const hl_block_q4_0 *b = (const hl_block_q4_0 *)row + i;
                    for (int j = 0; j < 16; j++) {
                        wq[j] = (int8_t)((b->qs[j] & 0xf) - 8);
                        wq[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
                    }
                    dh = b->d;
                }
                int32_t isum = 0;
                for (int j = 0; j < 32; j++) isum += wq[j] * (g[64 * (j / 4) + j % 4] - 128);
                acc = fmaf((float)isum, hl_quant_f16_to_f32(dh) * da, acc);
            }
            out[(size_t)t * out_stride + r] = acc;
        }
    }
}

/* ---- vector helpers ----------------------------------------------------------------- */

/* Attention scores. The sum runs in 8 lanes reduced pairwise, the order of the AVX2 version
 * (and of llama.cpp's): the online softmax over a half-precision accumulator is so sensitive
 * to score rounding that a plain left-to-right sum moved stories260K-Q8_0's step-1 logits by
 * 0.18 from llama.cpp's; in lane order the scalar build is within 0.05, and the SIMD builds
 * reproduce them exactly. */
static float vdot_f16(int n, const uint16_t *x, const uint16_t *y) {
    float lane[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            lane[l] = fmaf(hl_quant_f16_to_f32(x[i + l]), hl_quant_f16_to_f32(y[i + l]), lane[l]);
    float s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    for (; i < n; i++) s += hl_quant_f16_to_f32(x[i]) * hl_quant_f16_to_f32(y[i]);
    return s;
}

static void vmad_f16(int n, uint16_t *y, const uint16_t *x, float v) {
    for (int i = 0; i < n; i++)
        y[i] = hl_quant_f32_to_f16(fmaf(hl_quant_f16_to_f32(x[i]), v, hl_quant_f16_to_f32(y[i])));
}

static void vscale_f16(int n, uint16_t *y, float v) {
    for (int i = 0; i < n; i++) y[i] = hl_quant_f32_to_f16(hl_quant_f16_to_f32(y[i]) * v);
}

static void vto_f16(int n, const float *x, uint16_t *y) {
    for (int i = 0; i < n; i++) y[i] = hl_quant_f32_to_f16(x[i]);
}

static void vfrom_f16(int n, const uint16_t *x, float *y) {
    for (int i = 0; i < n; i++) y[i] = hl_quant_f16_to_f32(x[i]);
}

static const hl_quant_vec_ops vec_scalar = {vdot_f16, vmad_f16, vscale_f16, vto_f16, vfrom_f16, NULL};

const hl_quant_vec_ops *hl_quant_vec(hl_quant_isa isa) {
    if (!cpu_has(isa)) return NULL;
    if (isa == HL_ISA_SCALAR) return &vec_scalar;
    return hl_quant_x86_vec(isa);
}

const hl_quant_vec_ops *hl_quant_vec_best(void) {
    for (int i = hl_quant_best_isa(); i > HL_ISA_SCALAR; i--) {
        const hl_quant_vec_ops *v = hl_quant_vec((hl_quant_isa)i);
        if (v) return v;
    }
    return &vec_scalar;
}
