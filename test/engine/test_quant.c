/* Tests for hl_quant: half/bfloat conversions, block layouts (hand-packed known values and
 * the real quantized test models against their F32 originals), and every dot-product kernel
 * (scalar and each SIMD level this CPU has) against the double-precision reference on
 * random data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hl_gguf.h"
#include "hl_quant.h"
#include "hl_quant_k.h"
#include "hl_quant_x86.h"
#include "hl_test.h"
#include "test_models_dir.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float rndf(void) { return (float)((rnd() & 0xffffff) / 16777216.0 * 2 - 1); }

HL_TEST(f16_known_values) {
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(1.0f), 0x3c00);
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(-2.0f), 0xc000);
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(65504.0f), 0x7bff);
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(65519.0f), 0x7bff);
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even: inf */
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(5.9604644775390625e-8f), 0x0001);
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(2.9802322387695312e-8f), 0x0000); /* tie to even */
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(0.1f), 0x2e66);
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* tie to even */
    HL_CHECK_INT_EQ(hl_quant_f32_to_f16(INFINITY), 0x7c00);
    HL_CHECK((hl_quant_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (hl_quant_f32_to_f16(NAN) & 0x3ff));
    HL_CHECK_NEAR(hl_quant_f16_to_f32(0x3555), 0.333251953125, 0);
    HL_CHECK_NEAR(hl_quant_f16_to_f32(0x0001), 5.9604644775390625e-8, 0);
    HL_CHECK_NEAR(hl_quant_f16_to_f32(0x8400), -6.103515625e-05, 0);
    /* Every finite half survives the round trip exactly. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        if (hl_quant_f32_to_f16(hl_quant_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    HL_CHECK_INT_EQ(bad, 0);
}

HL_TEST(bf16_known_values) {
    HL_CHECK_INT_EQ(hl_quant_f32_to_bf16(1.0f), 0x3f80);
    HL_CHECK_INT_EQ(hl_quant_f32_to_bf16(-3.0f), 0xc040);
    HL_CHECK_INT_EQ(hl_quant_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80); /* tie to even */
    HL_CHECK_INT_EQ(hl_quant_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    HL_CHECK_NEAR(hl_quant_bf16_to_f32(0x4049), 3.140625, 0);
}

HL_TEST(q8_0_q4_0_round_trip) {
    float x[256], y[256];
    hl_block_q8_0 q8[8];
    hl_block_q4_0 q4[8];
    for (int i = 0; i < 256; i++) x[i] = rndf() * 3;
    hl_quant_quantize_q8_0(x, q8, 256);
    hl_quant_dequant_row(HL_GGUF_Q8_0, q8, y, 256);
    for (int i = 0; i < 256; i++) {
        float d = hl_quant_f16_to_f32(q8[i / 32].d);
        HL_CHECK(fabsf(x[i] - y[i]) <= d * 0.5f + 1e-3f * fabsf(x[i]));
    }
    hl_quant_quantize_q4_0(x, q4, 256);
    hl_quant_dequant_row(HL_GGUF_Q4_0, q4, y, 256);
    for (int i = 0; i < 256; i++) {
        float d = fabsf(hl_quant_f16_to_f32(q4[i / 32].d));
        HL_CHECK(fabsf(x[i] - y[i]) <= d * 1.0f + 1e-3f * fabsf(x[i]));
    }
}

HL_TEST(q4_0_known_block) {
    hl_block_q4_0 b;
    memset(&b, 0x88, sizeof b); /* every nibble 8: zero */
    b.d = 0x3800;               /* 0.5 */
    b.qs[0] = 0x9f;             /* value 0: 15 -> 3.5; value 16: 9 -> 0.5 */
    b.qs[15] = 0x01;            /* value 15: 1 -> -3.5; value 31: 0 -> -4 */
    float y[32];
    hl_quant_dequant_row(HL_GGUF_Q4_0, &b, y, 32);
    HL_CHECK_NEAR(y[0], 3.5, 0);
    HL_CHECK_NEAR(y[16], 0.5, 0);
    HL_CHECK_NEAR(y[15], -3.5, 0);
    HL_CHECK_NEAR(y[31], -4.0, 0);
    HL_CHECK_NEAR(y[1], 0, 0);
}

/* Packs scales/mins the way hl_quant.h describes, independently of the unpacker. */
static void pack_q4k_scales(const uint8_t *s, const uint8_t *m, uint8_t *out) {
    memset(out, 0, 12);
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((s[j] & 63) | (s[j + 4] >> 4) << 6);
        out[j + 4] = (uint8_t)((m[j] & 63) | (m[j + 4] >> 4) << 6);
        out[j + 8] = (uint8_t)((s[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

HL_TEST(q4_k_known_block) {
    uint8_t s[8] = {1, 2, 63, 4, 5, 33, 62, 17}, m[8] = {0, 9, 63, 1, 47, 2, 31, 16};
    hl_block_q4_k b;
    pack_q4k_scales(s, m, b.scales);
    for (int j = 0; j < 8; j++) {
        uint8_t gs, gm;
        hl_quant_q4k_scale_min(b.scales, j, &gs, &gm);
        HL_CHECK_INT_EQ(gs, s[j]);
        HL_CHECK_INT_EQ(gm, m[j]);
    }
    b.d = 0x3c00;    /* 1 */
    b.dmin = 0x3800; /* 0.5 */
    /* value k gets the nibble k % 16 */
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            b.qs[32 * p + l] = (uint8_t)(((64 * p + l) % 16) | ((64 * p + 32 + l) % 16) << 4);
    float y[256];
    hl_quant_dequant_row(HL_GGUF_Q4_K, &b, y, 256);
    for (int k = 0; k < 256; k++) HL_CHECK_NEAR(y[k], s[k / 32] * (k % 16) - 0.5 * m[k / 32], 0);
}

HL_TEST(q5_k_known_block) {
    uint8_t s[8] = {7, 2, 63, 4, 5, 33, 62, 17}, m[8] = {3, 9, 63, 1, 47, 2, 31, 0};
    hl_block_q5_k b;
    memset(&b, 0, sizeof b);
    pack_q4k_scales(s, m, b.scales);
    b.d = 0x3c00;    /* 1 */
    b.dmin = 0x3800; /* 0.5 */
    /* value k gets q = (k * 7 + 3) % 32: low nibble in qs, bit 4 in qh */
    int q[256];
    for (int k = 0; k < 256; k++) q[k] = (k * 7 + 3) % 32;
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            int k0 = 64 * p + l, k1 = 64 * p + 32 + l;
            b.qs[32 * p + l] = (uint8_t)((q[k0] & 15) | (q[k1] & 15) << 4);
            b.qh[l] |= (uint8_t)((q[k0] >> 4) << (2 * p) | (q[k1] >> 4) << (2 * p + 1));
        }
    float y[256];
    hl_quant_dequant_row(HL_GGUF_Q5_K, &b, y, 256);
    for (int k = 0; k < 256; k++) HL_CHECK_NEAR(y[k], s[k / 32] * q[k] - 0.5 * m[k / 32], 0);
}

HL_TEST(q6_k_known_block) {
    hl_block_q6_k b;
    memset(&b, 0, sizeof b);
    int q[256];
    for (int k = 0; k < 256; k++) q[k] = (k * 37 + 11) % 64;
    /* Pack per the layout comment: half h, quarter r/32, lane l. */
    for (int k = 0; k < 256; k++) {
        int h = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
        int qli = 64 * h + l + (quarter & 1 ? 32 : 0);
        b.ql[qli] |= (uint8_t)((q[k] & 15) << (quarter & 2 ? 4 : 0));
        b.qh[32 * h + l] |= (uint8_t)((q[k] >> 4) << (2 * quarter));
    }
    for (int g = 0; g < 16; g++) b.scales[g] = (int8_t)(g * 9 - 70);
    b.d = 0x3400; /* 0.25 */
    float y[256];
    hl_quant_dequant_row(HL_GGUF_Q6_K, &b, y, 256);
    for (int k = 0; k < 256; k++) HL_CHECK_NEAR(y[k], 0.25 * b.scales[k / 16] * (q[k] - 32), 0);
}

/* Relative RMS error of a quantized model's tensor against the same tensor in the F32
 * model it was made from. A wrong block layout gives errors of order 1. */
static void compare_file_tensor(const char *qrel, const char *frel, const char *name,
                                int want_type, double max_rel_rms) {
    char qp[4096], fp[4096];
    if (!hl_test_model_path(qp, sizeof qp, qrel) || !hl_test_model_path(fp, sizeof fp, frel))
        return;
    hl_gguf *gq, *gf;
    HL_REQUIRE(hl_gguf_open(&gq, qp, NULL, 0) == HL_OK);
    HL_REQUIRE(hl_gguf_open(&gf, fp, NULL, 0) == HL_OK);
    const hl_gguf_tensor *tq = hl_gguf_find_tensor(gq, name), *tf = hl_gguf_find_tensor(gf, name);
    HL_REQUIRE(tq && tf);
    HL_CHECK_INT_EQ(tq->type, want_type);
    HL_CHECK_INT_EQ(tf->type, HL_GGUF_F32);
    int64_t cols = (int64_t)tq->ne[0], rows = (int64_t)(tq->ne[1] * tq->ne[2] * tq->ne[3]);
    float *row = malloc((size_t)cols * sizeof *row);
    double se = 0, sv = 0;
    size_t rs = hl_gguf_row_size(tq->type, tq->ne[0]);
    for (int64_t r = 0; r < rows; r++) {
        hl_quant_dequant_row(tq->type, (const uint8_t *)tq->data + r * rs, row, cols);
        const float *ref = (const float *)tf->data + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            se += (row[c] - ref[c]) * (double)(row[c] - ref[c]);
            sv += (double)ref[c] * ref[c];
        }
    }
    double rel = sqrt(se / sv);
    printf("  %s %s: relative rms error %.4f\n", qrel, name, rel);
    HL_CHECK(rel < max_rel_rms);
    free(row);
    hl_gguf_free(gq);
    hl_gguf_free(gf);
}

HL_TEST(real_files_match_f32) {
    compare_file_tensor("derived/stories260K-Q8_0.gguf", "stories260K.gguf",
                        "blk.0.attn_q.weight", HL_GGUF_Q8_0, 0.02);
    compare_file_tensor("derived/stories260K-Q8_0.gguf", "stories260K.gguf",
                        "blk.0.ffn_down.weight", HL_GGUF_F16, 0.001);
    compare_file_tensor("derived/stories260K-Q4_0.gguf", "stories260K.gguf",
                        "blk.1.ffn_up.weight", HL_GGUF_Q4_0, 0.2);
    compare_file_tensor("derived/synth-tiny256-Q6_K.gguf", "derived/synth-tiny256-f32.gguf",
                        "blk.0.attn_q.weight", HL_GGUF_Q6_K, 0.05);
    compare_file_tensor("derived/synth-tiny256-Q4_K_M.gguf", "derived/synth-tiny256-f32.gguf",
                        "blk.0.ffn_up.weight", HL_GGUF_Q4_K, 0.15);
    compare_file_tensor("derived/synth-tiny256-Q4_K_M.gguf", "derived/synth-tiny256-f32.gguf",
                        "output.weight", HL_GGUF_Q6_K, 0.05);
}

/* Random row bytes of a type, with block scales kept small and finite. */
static void random_row(uint32_t type, uint8_t *w, int n) {
    size_t bytes = hl_gguf_row_size(type, (uint64_t)n);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rnd();
    uint32_t blk = hl_gguf_type_block(type), bs = hl_gguf_type_size(type);
    for (int b = 0; b < n / (int)blk; b++) {
        uint8_t *p = w + (size_t)b * bs;
        uint16_t d = hl_quant_f32_to_f16(0.01f + 0.02f * (rndf() + 1));
        uint16_t dm = hl_quant_f32_to_f16(0.005f * (rndf() + 1));
        switch (type) {
        case HL_GGUF_F32: { float f = rndf(); memcpy(p, &f, 4); break; }
        case HL_GGUF_F16: { uint16_t h = hl_quant_f32_to_f16(rndf()); memcpy(p, &h, 2); break; }
        case HL_GGUF_BF16: { uint16_t h = hl_quant_f32_to_bf16(rndf()); memcpy(p, &h, 2); break; }
        case HL_GGUF_Q8_0: case HL_GGUF_Q4_0: memcpy(p, &d, 2); break;
        case HL_GGUF_Q4_K: case HL_GGUF_Q5_K: memcpy(p, &d, 2); memcpy(p + 2, &dm, 2); break;
        case HL_GGUF_Q6_K: memcpy(p + 208, &d, 2); break;
        }
    }
}

static const uint32_t all_types[] = {HL_GGUF_F32, HL_GGUF_F16, HL_GGUF_BF16, HL_GGUF_Q8_0,
                                     HL_GGUF_Q4_0, HL_GGUF_Q4_K, HL_GGUF_Q5_K, HL_GGUF_Q6_K};

/* The activation a kernel actually sees, back in floats. */
static void act_to_f32(hl_quant_act act, const void *a, float *x, int n) {
    if (act == HL_ACT_Q8) {
        const hl_act_q8 *b = a;
        for (int i = 0; i < n; i++) x[i] = b[i / 32].d * b[i / 32].qs[i % 32];
    } else if (act == HL_ACT_Q8K) {
        const hl_act_q8k *b = a;
        for (int i = 0; i < n; i++) x[i] = b[i / 256].d * b[i / 256].qs[i % 256];
    } else if (act == HL_ACT_F16) {
        const uint16_t *h = a;
        for (int i = 0; i < n; i++) x[i] = hl_quant_f16_to_f32(h[i]);
    } else {
        memcpy(x, a, (size_t)n * 4);
    }
}

/* Each kernel at each ISA level against the reference, with the activation the kernel saw:
 * the only differences left are float rounding, so the tolerance is a few ulps of the sum
 * of |terms|. Lengths include ones that are not multiples of the SIMD width (F32/F16/BF16
 * rows of 172, like stories260K's ffn_down). */
HL_TEST(kernels_match_reference) {
    static const int lens[] = {32, 64, 96, 160, 172, 224, 256, 288, 512, 768, 2048, 5632};
    float *x = malloc(5632 * sizeof *x), *xs = malloc(5632 * sizeof *xs);
    float *wf = malloc(5632 * sizeof *wf);
    uint8_t *w = malloc(5632 * 4);
    void *act = malloc(5632 * 8), *act_isa = malloc(5632 * 8);
    for (size_t t = 0; t < sizeof all_types / sizeof *all_types; t++) {
        uint32_t type = all_types[t];
        hl_quant_act at = hl_quant_act_for(type);
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            int n = lens[li];
            if (n % (int)hl_gguf_type_block(type)) continue;
            for (int trial = 0; trial < 20; trial++) {
                random_row(type, w, n);
                float scale = trial % 3 == 0 ? 100.f : 1.f;
                for (int i = 0; i < n; i++) x[i] = rndf() * scale;
                if (trial == 5) memset(x, 0, (size_t)n * 4); /* all-zero activations */
                hl_quant_act_quantize(at, x, act, n);
                act_to_f32(at, act, xs, n);
                double ref = hl_quant_dot_ref(type, w, xs, n);
                hl_quant_dequant_row(type, w, wf, n);
                double mag = 0;
                for (int i = 0; i < n; i++) mag += fabs((double)wf[i] * xs[i]);
                for (int isa = 0; isa < HL_ISA_COUNT; isa++) {
                    hl_quant_dot_fn f = hl_quant_kernel(type, (hl_quant_isa)isa);
                    if (!f) continue;
                    /* Some levels want their own layout of the same activation values. */
                    hl_quant_act ai = hl_quant_act_for_isa(type, (hl_quant_isa)isa);
                    const void *a = act;
                    if (ai != at) {
                        hl_quant_act_quantize(ai, x, act_isa, n);
                        a = act_isa;
                    }
                    /* The row alone in its allocation: a kernel that reads past it fails
                     * under AddressSanitizer. */
                    size_t rs = hl_gguf_row_size(type, (uint64_t)n);
                    uint8_t *wt = malloc(rs);
                    HL_REQUIRE(wt);
                    memcpy(wt, w, rs);
                    double got = f(n, wt, a);
                    free(wt);
                    if (!(fabs(got - ref) <= 2e-6 * mag + 1e-30))
                        HL_FAIL_("%s n=%d %s: %.9g vs ref %.9g (mag %g)",
                                 hl_gguf_type_name(type), n,
                                 hl_quant_isa_name((hl_quant_isa)isa), got, ref, mag);
                }
                /* The quantized activation itself stays close to x. */
                double ref_x = hl_quant_dot_ref(type, w, x, n), magx = 0;
                for (int i = 0; i < n; i++) magx += fabs((double)wf[i] * x[i]);
                if (!(fabs(ref_x - ref) <= magx / 127.0 + 1e-30))
                    HL_FAIL_("%s n=%d: activation quantization error too large",
                             hl_gguf_type_name(type), n);
            }
        }
    }
    printf("  best isa here: %s\n", hl_quant_isa_name(hl_quant_best_isa()));
    free(x);
    free(xs);
    free(wf);
    free(w);
    free(act);
    free(act_isa);
}

/* A K-quant row with extreme fields where `extreme` (scales, mins and values at their
 * largest, activations at +-127), random ones otherwise. */
static void k_row(uint32_t type, uint8_t *w, int n, int extreme) {
    random_row(type, w, n);
    if (!extreme) return;
    size_t bs = hl_gguf_type_size(type);
    for (int b = 0; b < n / 256; b++) {
        uint8_t *p = w + (size_t)b * bs;
        if (type == HL_GGUF_Q6_K) {
            memset(p, 0xff, 192); /* every value 63 */
            memset(p + 192, extreme > 1 ? 0x80 : 0x7f, 16); /* scales -128 or 127 */
        } else {
            memset(p + 4, 0xff, bs - 4); /* scales, mins 63; values 15 or 31 */
        }
    }
}

/* The K-quant SIMD kernels give the scalar kernel's float bit for bit (hl_quant_k.h states
 * the rule), at every level this CPU has: AVX2 (the path of AVX2-only machines) and AVX-512;
 * random rows and rows at the integer sums' extremes, row lengths up to 14336. */
HL_TEST(k_kernels_bit_exact) {
    static const uint32_t types[] = {HL_GGUF_Q4_K, HL_GGUF_Q5_K, HL_GGUF_Q6_K};
    static const int lens[] = {256, 512, 2048, 5632, 14336};
    enum { NMAX = 14336 };
    float *x = malloc(NMAX * sizeof *x);
    uint8_t *w = malloc(NMAX), *act = malloc(hl_quant_act_size(HL_ACT_Q8K, NMAX));
    HL_REQUIRE(x && w && act);
    int checked = 0;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
            for (int trial = 0; trial < 12; trial++) {
                int n = lens[li], extreme = trial < 3 ? trial : 0;
                k_row(types[t], w, n, extreme);
                for (int i = 0; i < n; i++)
                    x[i] = extreme ? (i % 3 ? 1.f : -1.f) * (extreme == 2 ? -1 : 1) : rndf() * (trial % 2 ? 50 : 1);
                hl_quant_act_quantize(HL_ACT_Q8K, x, act, n);
                float want = hl_quant_kernel(types[t], HL_ISA_SCALAR)(n, w, act);
                for (int isa = HL_ISA_AVX2; isa < HL_ISA_COUNT; isa++) {
                    hl_quant_dot_fn f = hl_quant_kernel(types[t], (hl_quant_isa)isa);
                    if (!f) continue;
                    HL_CHECK_INT_EQ(hl_quant_act_for_isa(types[t], (hl_quant_isa)isa), HL_ACT_Q8K);
                    float got = f(n, w, act);
                    if (memcmp(&got, &want, 4) != 0)
                        HL_FAIL_("%s %s n=%d trial %d: %.9g vs scalar %.9g", hl_gguf_type_name(types[t]),
                                 hl_quant_isa_name((hl_quant_isa)isa), n, trial, got, want);
                    checked++;
                }
            }
    printf("  %d K-quant kernel results checked\n", checked);
    if (hl_quant_x86_has_avx2()) HL_CHECK(checked > 0);
    free(x);
    free(w);
    free(act);
}

/* K-quant rows repacked 16 at a time: the group kernel gives each row's scalar result bit
 * for bit (random and extreme rows, two groups). */
HL_TEST(k_x4_bit_exact) {
    static const uint32_t types[] = {HL_GGUF_Q4_K, HL_GGUF_Q5_K, HL_GGUF_Q6_K};
    static const int lens[] = {256, 2048, 5632};
    enum { NR = 32, NMAX = 5632 };
    /* the generator is left as found: the tests after this one do not depend on how many
     * rows it draws */
    uint64_t rng_saved = rng_state;
    float *x = malloc(NMAX * sizeof *x);
    uint8_t *w = malloc((size_t)NR * NMAX), *wp = malloc((size_t)NR * NMAX * 2);
    uint8_t *act = malloc(hl_quant_act_size(HL_ACT_Q8K, NMAX));
    HL_REQUIRE(x && w && wp && act);
    int checked = 0;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++)
        for (int isa = 0; isa < HL_ISA_COUNT; isa++) {
            hl_quant_x4_fn dot4 = hl_quant_x4(types[t], (hl_quant_isa)isa);
            if (!dot4) continue;
            HL_CHECK_INT_EQ(hl_quant_x4_act(types[t]), HL_ACT_Q8K);
            HL_CHECK_INT_EQ(hl_quant_x4_rows(types[t]), 16);
            for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
                for (int trial = 0; trial < 6; trial++) {
                    int n = lens[li];
                    size_t rs = hl_gguf_row_size(types[t], (uint64_t)n);
                    size_t gs = (size_t)(n / 256) * hl_quant_x4_block_bytes(types[t]);
                    for (int r = 0; r < NR; r++) k_row(types[t], w + r * rs, n, trial < 3 && r % 2 ? trial : 0);
                    for (int i = 0; i < n; i++) x[i] = rndf() * (trial % 2 ? 30 : 1);
                    hl_quant_act_quantize(HL_ACT_Q8K, x, act, n);
                    hl_quant_x4_pack(types[t], w, rs, NR, (uint32_t)n, wp);
                    for (int g = 0; g < NR / 16; g++) {
                        float out[16];
                        dot4(n, wp + g * gs, act, out);
                        for (int r = 0; r < 16; r++) {
                            float want = hl_quant_kernel(types[t], HL_ISA_SCALAR)(n, w + (16 * g + r) * rs, act);
                            if (memcmp(&out[r], &want, 4) != 0)
                                HL_FAIL_("%s n=%d row %d: %.9g vs scalar %.9g", hl_gguf_type_name(types[t]),
                                         n, 16 * g + r, out[r], want);
                            checked++;
                        }
                    }
                }
        }
    rng_state = rng_saved;
    printf("  %d repacked K-quant rows checked\n", checked);
    if (hl_quant_x86_has_avx512()) HL_CHECK(checked > 0);
    free(x);
    free(w);
    free(wp);
    free(act);
}

/* The K-quant GEMM on repacked rows gives every (row, token) the scalar decode kernel's
 * float on the file's row and the token's Q8K activations, bit for bit: every tile shape
 * (pairs of 16-token groups and single groups, more than one chunk of columns, several
 * passes of tokens), random rows and rows at the extremes. */
HL_TEST(k_gemm_equals_decode) {
    static const uint32_t types[] = {HL_GGUF_Q4_K, HL_GGUF_Q5_K, HL_GGUF_Q6_K};
    static const int lens[] = {256, 768, 2560, 5632};
    static const int nts[] = {1, 5, 14, 16, 17, 33, 130};
    enum { NR = 32, NT = 130 };
    uint64_t rng_saved = rng_state; /* as in k_x4_bit_exact */
    int tested = 0;
    for (size_t ti = 0; ti < 3; ti++) {
        hl_quant_gemm_fn gemm = hl_quant_gemm_x4_fn_for(types[ti]);
        if (!gemm) continue;
        HL_CHECK(hl_quant_gemm_fn_for(types[ti]) == NULL); /* none on the file's layout */
        HL_CHECK(hl_quant_actx_k(types[ti]));
        hl_quant_dot_fn dot = hl_quant_kernel(types[ti], HL_ISA_SCALAR);
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            int n = lens[li];
            size_t rs = hl_gguf_row_size(types[ti], (uint64_t)n);
            size_t gsz = (size_t)(n / 256) * hl_quant_x4_block_bytes(types[ti]);
            uint8_t *w = malloc(rs * NR), *wp = malloc(gsz * NR / 16), *ax = malloc(hl_quant_actx_size_for(types[ti], n, NT));
            uint8_t *aq = malloc(hl_quant_act_size(HL_ACT_Q8K, n));
            float *x = malloc((size_t)n * NT * sizeof *x);
            float *o = malloc(sizeof(float) * NR * NT), *want = malloc(sizeof(float) * NR * NT);
            HL_REQUIRE(w && wp && ax && aq && x && o && want);
            for (int r = 0; r < NR; r++) k_row(types[ti], w + r * rs, n, r == 3 ? 1 : r == 6 ? 2 : 0);
            for (int i = 0; i < n * NT; i++) x[i] = rndf() * (i % 7 == 0 ? 20 : 1);
            hl_quant_x4_pack(types[ti], w, rs, NR, (uint32_t)n, wp);
            for (int t = 0; t < NT; t++) {
                hl_quant_act_quantize(HL_ACT_Q8K, x + (size_t)t * n, aq, n);
                for (int r = 0; r < NR; r++) want[t * NR + r] = dot(n, w + (size_t)r * rs, aq);
            }
            for (size_t b = 0; b < sizeof nts / sizeof *nts; b++) {
                int nt = nts[b];
                hl_quant_actx_pack_for(types[ti], x, (size_t)n, nt, n, ax);
                for (int nr = 16; nr <= NR; nr += 16) {
                    for (int i = 0; i < NR * NT; i++) o[i] = -1234.5f;
                    gemm(n, wp, gsz, nr, ax, nt, o, NR);
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < nr; r++)
                            if (memcmp(&o[t * NR + r], &want[t * NR + r], 4) != 0)
                                HL_FAIL_("%s n=%d nt=%d row %d token %d: %.9g vs decode %.9g",
                                         hl_gguf_type_name(types[ti]), n, nt, r, t, o[t * NR + r], want[t * NR + r]);
                    HL_CHECK(nt == NT || o[nt * NR] == -1234.5f); /* nothing past nt tokens */
                    tested++;
                }
            }
            free(w); free(wp); free(ax); free(aq); free(x); free(o); free(want);
        }
    }
    rng_state = rng_saved;
    printf("  %d K-quant GEMM shapes checked\n", tested);
    if (hl_quant_best_isa() >= HL_ISA_AVX512) HL_CHECK(tested > 0); /* not under HL_QUANT_ISA=avx2 */
}

/* The K-quants' token-interleaved activations hold each token's Q8K values (plus 128) and
 * its super-block scale in each of the 8 blocks; padding tokens are zero. */
HL_TEST(k_actx_pack_matches_q8k) {
    enum { N = 512, NT = 19 };
    static float x[NT][N];
    static uint8_t ax[((NT + 15) / 16) * (N / 32) * 576 + ((NT + 15) / 16) * (N / 64) * 64];
    hl_act_q8k q[N / 256];
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < N; i++) x[t][i] = rndf() * (float)(1 + t);
    HL_REQUIRE(hl_quant_actx_size_for(HL_GGUF_Q4_K, N, NT) == sizeof ax);
    hl_quant_actx_pack_for(HL_GGUF_Q4_K, &x[0][0], N, NT, N, ax);
    for (int t = 0; t < 32; t++) {
        if (t < NT) hl_quant_act_quantize(HL_ACT_Q8K, x[t], q, N);
        for (int b = 0; b < N / 32; b++) {
            const uint8_t *g = ax + ((size_t)(t / 16) * (N / 32) + b) * 576 + 4 * (t % 16);
            float d;
            memcpy(&d, g + 512, 4);
            HL_CHECK(memcmp(&d, t < NT ? &q[b / 8].d : &(float){0}, 4) == 0);
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                HL_CHECK_INT_EQ(g[64 * (j / 4) + j % 4], t < NT ? q[b / 8].qs[32 * (b % 8) + j] + 128 : 128);
                sum += t < NT ? q[b / 8].qs[32 * (b % 8) + j] : 0;
            }
            /* the sub-block sums after the values: pairs of 16-bit halves */
            int32_t pr;
            memcpy(&pr, ax + hl_quant_actx_size(N, NT) + 4 * (((size_t)(t / 16) * (N / 64) + b / 2) * 16 + t % 16), 4);
            HL_CHECK_INT_EQ(b % 2 ? pr >> 16 : (int16_t)(pr & 0xffff), sum);
        }
    }
}

/* Weights repacked four rows at a time: the four-row kernel agrees with the plain-C reference
 * on the file's layout within float rounding, and the GEMM on the repacked copy gives the
 * GEMM's numbers on the file's layout bit for bit. */
HL_TEST(x4_repacked_kernels) {
    static const uint32_t types[] = {HL_GGUF_Q4_0, HL_GGUF_Q8_0};
    static const int lens[] = {32, 96, 2048, 5632};
    enum { NR = 12, NT = 19 };
    int tested = 0;
    for (size_t ti = 0; ti < 2; ti++)
        for (int isa = 0; isa < HL_ISA_COUNT; isa++) {
            hl_quant_x4_fn dot4 = hl_quant_x4(types[ti], (hl_quant_isa)isa);
            hl_quant_gemm_fn g4 = hl_quant_gemm_x4(types[ti], (hl_quant_isa)isa);
            hl_quant_gemm_fn g = hl_quant_gemm(types[ti], (hl_quant_isa)isa);
            if (!dot4) continue;
            HL_REQUIRE(g4 && g);
            for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
                int n = lens[li];
                size_t rs = hl_gguf_row_size(types[ti], (uint64_t)n);
                size_t gs = (size_t)(n / 32) * hl_quant_x4_block_bytes(types[ti]);
                uint8_t *w = malloc(rs * NR), *wp = malloc(gs * (NR / 4));
                uint8_t *act = malloc(hl_quant_act_size(HL_ACT_Q8X, n)), *ax = malloc(hl_quant_actx_size(n, NT));
                float *x = malloc((size_t)n * NT * sizeof *x), *xs = malloc((size_t)n * sizeof *xs);
                float *o1 = malloc(sizeof(float) * NR * NT), *o2 = malloc(sizeof(float) * NR * NT);
                hl_act_q8 *q8 = malloc(hl_quant_act_size(HL_ACT_Q8, n));
                HL_REQUIRE(w && wp && act && ax && x && xs && o1 && o2 && q8);
                for (int r = 0; r < NR; r++) random_row(types[ti], w + r * rs, n);
                for (int i = 0; i < n * NT; i++) x[i] = rndf();
                hl_quant_x4_pack(types[ti], w, rs, NR, (uint32_t)n, wp);
                /* decode: each group of 4 rows against token 0 */
                hl_quant_act_quantize(HL_ACT_Q8X, x, act, n);
                hl_quant_act_quantize(HL_ACT_Q8, x, q8, n);
                for (int i = 0; i < n; i++) xs[i] = q8[i / 32].d * q8[i / 32].qs[i % 32];
                for (int gi = 0; gi < NR / 4; gi++) {
                    float out[4];
                    dot4(n, wp + gi * gs, act, out);
                    for (int r = 0; r < 4; r++) {
                        const uint8_t *row = w + (size_t)(4 * gi + r) * rs;
                        double ref = hl_quant_dot_ref(types[ti], row, xs, n), mag = 0;
                        float *wf = malloc((size_t)n * sizeof *wf);
                        HL_REQUIRE(wf);
                        hl_quant_dequant_row(types[ti], row, wf, n);
                        for (int i = 0; i < n; i++) mag += fabs((double)wf[i] * xs[i]);
                        free(wf);
                        if (!(fabs(out[r] - ref) <= 2e-6 * mag + 1e-30))
                            HL_FAIL_("%s %s n=%d row %d: %.9g vs ref %.9g", hl_gguf_type_name(types[ti]),
                                     hl_quant_isa_name((hl_quant_isa)isa), n, 4 * gi + r, out[r], ref);
                    }
                }
                /* prompt: GEMM on both layouts, every row range a multiple of 4 */
                hl_quant_actx_pack(x, (size_t)n, NT, n, ax);
                for (int nr = 4; nr <= NR; nr += 4) {
                    g(n, w, rs, nr, ax, NT, o1, NR);
                    g4(n, wp, gs, nr, ax, NT, o2, NR);
                    for (int t = 0; t < NT; t++) HL_CHECK(memcmp(o1 + t * NR, o2 + t * NR, sizeof(float) * nr) == 0);
                }
                tested++;
                free(w);
                free(wp);
                free(act);
                free(ax);
                free(x);
                free(xs);
                free(o1);
                free(o2);
                free(q8);
            }
        }
    printf("  %d repacked cases checked\n", tested);
}

/* The token-interleaved activations hold, for each token, the values and scale that
 * hl_act_q8 quantization gives (plus 128), and zeros for the padding tokens; with the SIMD
 * packer where this CPU has one and with the plain one (HL_QUANT_ISA=scalar). */
HL_TEST(actx_pack_matches_q8) {
    enum { N = 96, NT = 21 };
    static float x[NT][N];
    static uint8_t ax[2][((NT + 15) / 16) * (N / 32) * 576];
    hl_act_q8 q[N / 32];
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < N; i++) x[t][i] = rndf() * (float)(1 + t);
    x[3][5] = 0; /* a block of zeros */
    for (int i = 32; i < 64; i++) x[4][i] = 0;
    HL_REQUIRE(hl_quant_actx_size(N, NT) == sizeof ax[0]);
    for (int v = 0; v < 2; v++) {
        const char *old = getenv("HL_QUANT_ISA");
        if (v == 1) setenv("HL_QUANT_ISA", "scalar", 1);
        hl_quant_actx_pack(&x[0][0], N, NT, N, ax[v]);
        if (v == 1 && old) setenv("HL_QUANT_ISA", old, 1);
        else if (v == 1) unsetenv("HL_QUANT_ISA");
        for (int t = 0; t < 32; t++) {
            if (t < NT) hl_quant_act_quantize(HL_ACT_Q8, x[t], q, N);
            for (int b = 0; b < N / 32; b++) {
                const uint8_t *g = ax[v] + ((size_t)(t / 16) * (N / 32) + b) * 576 + 4 * (t % 16);
                float d;
                memcpy(&d, g + 512, 4);
                HL_CHECK(memcmp(&d, t < NT ? &q[b].d : &(float){0}, 4) == 0);
                for (int j = 0; j < 32; j++)
                    HL_CHECK_INT_EQ(g[64 * (j / 4) + j % 4], t < NT ? q[b].qs[j] + 128 : 128);
            }
        }
    }
    HL_CHECK(memcmp(ax[0], ax[1], sizeof ax[0]) == 0);
}

/* Q8K activations (quantized with SIMD where the CPU has it) are the scalar rule's bytes:
 * d = amax / 127, each value lrintf(x * (1 / d)) (halves to even), 16-value sums; random
 * blocks, a zero block and values that land on halves. */
HL_TEST(act_q8k_matches_scalar_rule) {
    enum { N = 768 };
    float x[N];
    hl_act_q8k q[N / 256];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < N; i++) x[i] = rndf() * (float)(1 + 10 * trial);
        if (trial == 3)
            for (int i = 256; i < 512; i++) x[i] = 0;
        if (trial == 4)
            for (int i = 0; i < 256; i++) x[i] = (float)(i % 255 - 127) + (i % 2 ? 0.5f : -0.5f) * (i < 128);
        hl_quant_act_quantize(HL_ACT_Q8K, x, q, N);
        for (int b = 0; b < N / 256; b++) {
            float amax = 0;
            for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(x[256 * b + j]));
            float d = amax / 127, id = d ? 1 / d : 0;
            HL_CHECK(memcmp(&q[b].d, &d, 4) == 0);
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 16 * g; j < 16 * g + 16; j++) {
                    int v = (int)lrintf(x[256 * b + j] * id);
                    if (q[b].qs[j] != v) HL_FAIL_("trial %d block %d value %d: %d vs %d", trial, b, j, q[b].qs[j], v);
                    sum += v;
                }
                HL_CHECK_INT_EQ(q[b].bsums[g], sum);
            }
        }
    }
}

/* The activations for the repacked-weight kernels (quantized with SIMD where the CPU has it)
 * hold exactly hl_act_q8's values and scale, and the offsets spelled out in hl_act_q8x. */
HL_TEST(act_q8x_matches_q8) {
    enum { N = 160 };
    float x[N];
    hl_act_q8 q[N / 32];
    hl_act_q8x p[N / 32];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < N; i++) x[i] = rndf() * (float)(1 + trial);
        if (trial == 3)
            for (int i = 32; i < 64; i++) x[i] = 0;
        hl_quant_act_quantize(HL_ACT_Q8, x, q, N);
        hl_quant_act_quantize(HL_ACT_Q8X, x, p, N);
        for (int b = 0; b < N / 32; b++) {
            HL_CHECK(memcmp(&q[b].d, &p[b].d, 4) == 0);
            HL_CHECK(memcmp(q[b].qs, p[b].qs, 32) == 0);
            for (int l = 0; l < 8; l++) {
                int s = q[b].qs[4 * l] + q[b].qs[4 * l + 1] + q[b].qs[4 * l + 2] + q[b].qs[4 * l + 3];
                HL_CHECK_INT_EQ(p[b].off8[l], -128 * s);
            }
            for (int l = 0; l < 4; l++) {
                int s = 0;
                for (int j = 4 * l; j < 4 * l + 4; j++) s += q[b].qs[j] + q[b].qs[16 + j];
                HL_CHECK_INT_EQ(p[b].off4[l], -8 * s);
            }
        }
    }
}

/* GEMM kernels: exactly the numbers of hl_quant_gemm_ref() (the arithmetic spelled out in
 * C), for every shape the kernel splits into (4-row tiles and single rows; pairs of 16-token
 * groups and single groups, padding lanes), odd block counts and more than one chunk of
 * columns; and within float rounding of the dot kernel with the same activations (about
 * one float epsilon per block: the two round the per-block products differently). */
HL_TEST(gemm_matches_reference) {
    static const uint32_t types[] = {HL_GGUF_Q4_0, HL_GGUF_Q8_0};
    static const int lens[] = {32, 96, 2048, 2048 + 32 * 70};
    static const int nrs[] = {1, 3, 4, 9};
    static const int nts[] = {1, 5, 16, 17, 33, 130};
    enum { NR = 9, NT = 130 };
    int tested = 0;
    for (size_t ti = 0; ti < 2; ti++)
        for (int isa = 0; isa < HL_ISA_COUNT; isa++) {
            hl_quant_gemm_fn gemm = hl_quant_gemm(types[ti], (hl_quant_isa)isa);
            if (!gemm) continue;
            hl_quant_dot_fn dot = hl_quant_kernel(types[ti], HL_ISA_SCALAR);
            for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
                int n = lens[li];
                size_t rs = hl_gguf_row_size(types[ti], (uint64_t)n);
                size_t qs = hl_quant_act_size(HL_ACT_Q8, n);
                uint8_t *w = malloc(rs * NR), *ax = malloc(hl_quant_actx_size(n, NT));
                uint8_t *aq = malloc(qs);
                float *x = malloc((size_t)n * NT * sizeof *x);
                float *out = malloc(sizeof(float) * NR * NT), *want = malloc(sizeof(float) * NR * NT);
                HL_REQUIRE(w && ax && aq && x && out && want);
                for (int r = 0; r < NR; r++) random_row(types[ti], w + r * rs, n);
                for (int i = 0; i < n * NT; i++) x[i] = rndf();
                for (size_t a = 0; a < sizeof nrs / sizeof *nrs; a++)
                    for (size_t b = 0; b < sizeof nts / sizeof *nts; b++) {
                        int nr = nrs[a], nt = nts[b];
                        hl_quant_actx_pack(x, (size_t)n, nt, n, ax);
                        for (int i = 0; i < NR * NT; i++) out[i] = want[i] = -1234.5f;
                        gemm(n, w, rs, nr, ax, nt, out, NR);
                        hl_quant_gemm_ref(types[ti], n, w, rs, nr, ax, nt, want, NR);
                        HL_CHECK(memcmp(out, want, sizeof(float) * NR * NT) == 0);
                        for (int t = 0; t < nt; t++) {
                            hl_quant_act_quantize(HL_ACT_Q8, x + (size_t)t * n, aq, n);
                            for (int r = 0; r < nr; r++) {
                                float d = dot(n, w + r * rs, aq), g = out[t * NR + r];
                                if (memcmp(&g, &want[t * NR + r], 4) != 0 ||
                                    !(fabsf(g - d) <= 5e-7f * (float)(n / 32) * (1 + fabsf(d))))
                                    HL_FAIL_("%s %s n=%d %dx%d (%d,%d): gemm %.9g ref %.9g dot %.9g",
                                             hl_gguf_type_name(types[ti]),
                                             hl_quant_isa_name((hl_quant_isa)isa), n, nr, nt, r, t,
                                             g, want[t * NR + r], d);
                            }
                        }
                        tested++;
                    }
                free(w);
                free(ax);
                free(aq);
                free(x);
                free(out);
                free(want);
            }
        }
    printf("  %d GEMM shapes checked\n", tested);
}

/* The attention helpers at each ISA level give the scalar version's bits (the half-precision
 * roundings are all round-to-nearest-even of an fma or a product), and dot_f16 its value
 * within float reordering. */
HL_TEST(vec_ops_match_scalar) {
    const hl_quant_vec_ops *ref = hl_quant_vec(HL_ISA_SCALAR);
    static const int lens[] = {1, 7, 8, 15, 16, 17, 64, 100, 128};
    uint16_t x[128], y0[128], y1[128];
    float f[128], g0[128], g1[128];
    for (int isa = HL_ISA_AVX2; isa < HL_ISA_COUNT; isa++) {
        const hl_quant_vec_ops *v = hl_quant_vec((hl_quant_isa)isa);
        if (!v) continue;
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            int n = lens[li];
            for (int i = 0; i < n; i++) {
                f[i] = rndf() * 4;
                x[i] = hl_quant_f32_to_f16(rndf());
                y0[i] = y1[i] = hl_quant_f32_to_f16(rndf() * 2);
            }
            float a = rndf();
            ref->mad_f16(n, y0, x, a);
            v->mad_f16(n, y1, x, a);
            HL_CHECK(memcmp(y0, y1, (size_t)n * 2) == 0);
            ref->scale_f16(n, y0, a);
            v->scale_f16(n, y1, a);
            HL_CHECK(memcmp(y0, y1, (size_t)n * 2) == 0);
            ref->to_f16(n, f, y0);
            v->to_f16(n, f, y1);
            HL_CHECK(memcmp(y0, y1, (size_t)n * 2) == 0);
            ref->from_f16(n, y0, g0);
            v->from_f16(n, y1, g1);
            HL_CHECK(memcmp(g0, g1, (size_t)n * 4) == 0);
            double mag = 0;
            for (int i = 0; i < n; i++) mag += fabs(hl_quant_f16_to_f32(x[i]) * (double)g0[i]);
            HL_CHECK_NEAR(v->dot_f16(n, x, y0), ref->dot_f16(n, x, y0), 1e-6 * mag + 1e-30);
        }
    }
}

/* A fused attention (attn_f16) gives, for each of its query heads, the bits of its level's
 * steps run one call at a time, for head sizes it keeps in registers and others, over
 * positions where the maximum moves, with more heads than it keeps at a time. */
HL_TEST(attn_matches_steps) {
    enum { MAXP = 70, STRIDE = 200, MAXQ = 11 };
    static const int hds[] = {16, 64, 128, 24};
    static const int nqs[] = {1, 3, 8, MAXQ};
    static uint16_t k[MAXP * STRIDE], v[MAXP * STRIDE], q[MAXQ * 128], a0[128], a1[MAXQ * 128];
    static float sums[MAXQ];
    int tested = 0;
    for (int isa = 0; isa < HL_ISA_COUNT; isa++) {
        const hl_quant_vec_ops *ops = hl_quant_vec((hl_quant_isa)isa);
        if (!ops || !ops->attn_f16) continue;
        for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++) {
            int hd = hds[hi];
            for (int i = 0; i < MAXP * STRIDE; i++) {
                k[i] = hl_quant_f32_to_f16(rndf() * 3);
                v[i] = hl_quant_f32_to_f16(rndf());
            }
            for (int i = 0; i < MAXQ * hd; i++) q[i] = hl_quant_f32_to_f16(rndf());
            for (size_t qi = 0; qi < sizeof nqs / sizeof *nqs; qi++)
                for (int n = 1; n <= MAXP; n += 23) {
                    int nq = nqs[qi];
                    float scale = 1.0f / sqrtf((float)hd);
                    ops->attn_f16(hd, nq, n, q, k, v, STRIDE, scale, a1, sums);
                    for (int h = 0; h < nq; h++) {
                        const uint16_t *qh = q + h * hd;
                        float mx = -INFINITY, sum0 = 0;
                        memset(a0, 0, sizeof a0);
                        for (int s = 0; s < n; s++) {
                            float sc = ops->dot_f16(hd, qh, k + s * STRIDE) * scale, ms = 1, w = 1;
                            if (sc > mx) {
                                ms = expf(mx - sc);
                                mx = sc;
                                ops->scale_f16(hd, a0, ms);
                            } else {
                                w = expf(sc - mx);
                            }
                            ops->mad_f16(hd, a0, v + s * STRIDE, w);
                            sum0 = sum0 * ms + w;
                        }
                        HL_CHECK(memcmp(&sum0, &sums[h], 4) == 0);
                        HL_CHECK(memcmp(a0, a1 + h * hd, (size_t)hd * 2) == 0);
                    }
                    tested++;
                }
        }
    }
    printf("  %d attention cases checked\n", tested);
}

/* The Q4_0 summation orders that greedy parity with llama.cpp depends on (test_model's
 * greedy_parity tests), bit for bit against a plain statement of each: the AVX2 kernel (what
 * hl_model uses for Q4_0 matrices llama.cpp does not repack) sums 8 lanes of 4 products with
 * one fma per lane and block and adds the lanes at the end, ((0+4)+(2+6))+((1+5)+(3+7)); the
 * repacked AVX-512 kernel sums each block exactly and does one fma per block. */
static int q4_0_value(const uint8_t *blk, int i) {
    const uint8_t *qs = blk + 2;
    return (i < 16 ? qs[i] & 15 : qs[i - 16] >> 4) - 8;
}

HL_TEST(q4_0_llama_cpp_summation_orders) {
    enum { N = 320, NR = 8 };
    hl_quant_dot_fn dot = hl_quant_kernel(HL_GGUF_Q4_0, HL_ISA_AVX2);
    hl_quant_x4_fn dot4 = hl_quant_x4(HL_GGUF_Q4_0, HL_ISA_AVX512);
    if (!dot) HL_SKIP("no AVX2 on this CPU");
    size_t rs = hl_gguf_row_size(HL_GGUF_Q4_0, N);
    static uint8_t w[NR * 180], wp[NR * 180];
    static float x[N];
    static hl_act_q8 q8[N / 32];
    static hl_act_q8x q8x[N / 32];
    int checked = 0;
    for (int rep = 0; rep < 50; rep++) {
        for (int r = 0; r < NR; r++) random_row(HL_GGUF_Q4_0, w + r * rs, N);
        for (int i = 0; i < N; i++) x[i] = rndf() * (1 + rep % 7);
        hl_quant_act_quantize(HL_ACT_Q8, x, q8, N);
        hl_quant_act_quantize(HL_ACT_Q8X, x, q8x, N);
        if (dot4) hl_quant_x4_pack(HL_GGUF_Q4_0, w, rs, NR, N, wp);
        for (int r = 0; r < NR; r++) {
            const uint8_t *row = w + r * rs;
            float lane[8] = {0}, blockwise = 0;
            static float bw[NR];
            for (int b = 0; b < N / 32; b++) {
                const uint8_t *blk = row + 18 * b;
                uint16_t dh;
                memcpy(&dh, blk, 2);
                float d = hl_quant_f16_to_f32(dh) * q8[b].d;
                int total = 0;
                for (int k = 0; k < 8; k++) {
                    int s = 0;
                    for (int j = 4 * k; j < 4 * k + 4; j++) s += q4_0_value(blk, j) * q8[b].qs[j];
                    lane[k] = fmaf(d, (float)s, lane[k]);
                }
                for (int j = 0; j < 32; j++) total += q4_0_value(blk, j) * q8x[b].qs[j];
                blockwise = fmaf((float)total, hl_quant_f16_to_f32(dh) * q8x[b].d, blockwise);
            }
            float lanes = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
            float got = dot(N, row, q8);
            HL_CHECK(memcmp(&got, &lanes, 4) == 0);
            bw[r] = blockwise;
            if (dot4 && r % 4 == 3) {
                float out[4];
                dot4(N, wp + (size_t)(r / 4) * (N / 32) * hl_quant_x4_block_bytes(HL_GGUF_Q4_0), q8x, out);
                HL_CHECK(memcmp(out, bw + r - 3, sizeof out) == 0);
            }
            checked++;
        }
    }
    printf("  %d rows checked%s\n", checked, dot4 ? " (AVX2 and repacked AVX-512)" : " (AVX2)");
}

HL_TEST_MAIN()
