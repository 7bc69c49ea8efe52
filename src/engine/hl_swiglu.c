/* hl_swiglu: see hl_swiglu.h. The polynomial exp: n = round(x / ln 2) by the add-and-subtract
 * of 1.5 * 2^23, b = x - n ln 2 in two fmas (ln 2 split into a high and a low part), then
 * 1 + c1 b + c2 b^2 + ... + c5 b^5 evaluated as (c1 b + 1) + u (c3 b + c2) + u^2 (c5 b + c4)
 * with u = b^2, scaled by 2^n. The coefficients are the minimax ones llama.cpp uses. Every
 * step is one correctly rounded operation, so the scalar and vector forms agree exactly. */
#include "hl_swiglu.h"

#include <math.h>

#include "hl_quant.h"

#define SHIFT 0x1.8p23f
#define INV_LN2 0x1.715476p+0f
#define LN2_HI 0x1.62e4p-1f
#define LN2_LO 0x1.7f7d1cp-20f
#define C1 0x1.ffffecp-1f
#define C2 0x1.fffdb6p-2f
#define C3 0x1.555e66p-3f
#define C4 0x1.573e2ep-5f
#define C5 0x1.0e4020p-7f

float hl_swiglu_exp(float x) {
    float z = fmaf(x, INV_LN2, SHIFT), n = z - SHIFT;
    float b = fmaf(-n, LN2_LO, fmaf(-n, LN2_HI, x)), u = b * b;
    float j = fmaf(fmaf(fmaf(C5, b, C4), u, fmaf(C3, b, C2)), u, fmaf(C1, b, 1.0f));
    if (fabsf(n) > 192) return n > 0 ? INFINITY : 0.0f;
    return ldexpf(j, (int)n);
}

int hl_swiglu_width(void) {
    hl_quant_isa isa = hl_quant_best_isa();
    return isa == HL_ISA_AVX512 ? 16 : isa == HL_ISA_AVX2 ? 8 : 0;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* 8 values with AVX2 + FMA; the same operations as hl_swiglu_exp. Inputs whose n exceeds
 * 126 in magnitude (|x| > 87: exp overflows or underflows float) are redone one by one. */
__attribute__((target("avx2,fma"))) static void swiglu8(float *g, const float *u, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i), nx = _mm256_sub_ps(_mm256_setzero_ps(), x);
        __m256 z = _mm256_fmadd_ps(nx, _mm256_set1_ps(INV_LN2), _mm256_set1_ps(SHIFT));
        __m256 k = _mm256_sub_ps(z, _mm256_set1_ps(SHIFT));
        __m256 b = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), nx));
        __m256 uu = _mm256_mul_ps(b, b);
        __m256 j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(C5), b, _mm256_set1_ps(C4)), uu,
                            _mm256_fmadd_ps(_mm256_set1_ps(C3), b, _mm256_set1_ps(C2))),
            uu, _mm256_fmadd_ps(_mm256_set1_ps(C1), b, _mm256_set1_ps(1.0f)));
        /* 2^k built in the exponent field: k sits in z's low mantissa bits. */
        __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
        __m256 p2 = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
        __m256 ex = _mm256_mul_ps(j, p2);
        __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), k), _mm256_set1_ps(126), _CMP_GT_OQ);
        __m256 y = _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), ex)), _mm256_loadu_ps(u + i));
        if (_mm256_movemask_ps(big)) {
            float t[8];
            _mm256_storeu_ps(t, y);
            for (int l = 0; l < 8; l++)
                if (fabsf(g[i + l]) > 87.0f) t[l] = g[i + l] / (1.0f + hl_swiglu_exp(-g[i + l])) * u[i + l];
            y = _mm256_loadu_ps(t);
        }
        _mm256_storeu_ps(g + i, y);
    }
}
#endif

void hl_swiglu(float *g, const float *u, size_t n, int width) {
    size_t head = width > 0 ? n - n % (size_t)width : 0, i = 0;
#if defined(__x86_64__)
    if (head && hl_quant_best_isa() >= HL_ISA_AVX2) {
        swiglu8(g, u, head);
        i = head;
    }
#endif
    for (; i < head; i++) g[i] = g[i] / (1.0f + hl_swiglu_exp(-g[i])) * u[i];
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
