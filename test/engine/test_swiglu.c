/* Tests for hl_swiglu: the vector code equals the one-value reference bit for bit, the tail
 * goes through expf, and the polynomial is a faithful exp (within 2 ulp) that nonetheless
 * differs from expf in the last bit on some inputs (why it exists: llama.cpp's silu uses it,
 * and greedy parity on stories260K needs the same bits; test_model's greedy_parity tests). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hl_swiglu.h"
#include "hl_test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float rndf(float span) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f) * span;
}

HL_TEST(poly_exp_is_faithful_and_not_expf) {
    int differ = 0;
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        float x = rndf(80.0f), p = hl_swiglu_exp(x), e = expf(x);
        double rel = fabs((double)p - exp((double)x)) / exp((double)x);
        if (rel > worst) worst = rel;
        differ += p != e;
    }
    printf("  max relative error %.3g, %d of 200000 differ from expf\n", worst, differ);
    HL_CHECK(worst < 2.5e-7);
    HL_CHECK(differ > 0);
    HL_CHECK(hl_swiglu_exp(0.0f) == 1.0f);
    HL_CHECK(hl_swiglu_exp(-200.0f) == 0.0f);
    HL_CHECK(isinf(hl_swiglu_exp(200.0f)));
}

HL_TEST(vector_equals_reference_and_tail_uses_expf) {
    enum { N = 172 };
    float g[N], u[N], want[N];
    for (int width = 0; width <= 16; width += 8) {
        for (int i = 0; i < N; i++) {
            g[i] = rndf(12.0f);
            u[i] = rndf(3.0f);
        }
        g[5] = 95.0f; /* beyond the vector path's range: redone one by one */
        g[6] = -95.0f;
        int head = width ? N - N % width : 0;
        for (int i = 0; i < N; i++)
            want[i] = g[i] / (1.0f + (i < head ? hl_swiglu_exp(-g[i]) : expf(-g[i]))) * u[i];
        hl_swiglu(g, u, N, width);
        HL_CHECK(memcmp(g, want, sizeof g) == 0);
    }
    HL_CHECK(hl_swiglu_width() == 0 || hl_swiglu_width() == 8 || hl_swiglu_width() == 16);
}

HL_TEST_MAIN()
