/* hl_mkgguf: writes a llama-architecture GGUF with random weights, of a given shape and
 * tensor type (F32, Q8_0 or Q4_0), with a synthetic SentencePiece vocabulary (<unk>, <s>,
 * </s>, the 256 byte tokens, then made-up word pieces), so that both our engine and
 * llama.cpp load and run it. The benchmarks use it for a TinyLlama-1.1B-shaped model; tests
 * use it when they just need some GGUF. Weights are uniform in [-0.05, 0.05] (norms 1) and
 * are generated and quantized row by row while streaming to the file, so a 1.1B model needs
 * no more memory than one row.
 *
 * --arch qwen2 writes the Qwen2 variant instead (qwen2.* keys, Q/K/V biases, which llama.cpp
 * runs with NeoX-style RoPE), for checking that architecture against llama.cpp. --arch qwen3:
 * no biases, per-head RMS norms of Q and K (attn_q_norm, attn_k_norm). --arch phi3: fused QKV
 * (attn_qkv) and gate+up (ffn_up, 2 x ffn rows, gate first) matrices and LongRoPE: the
 * rope_factors_long/short tensors (distinct made-up factors), rope.scaling.original_context_length
 * (--orig-ctx, default ctx / 4) and rope.scaling.attn_factor sqrt(1 + ln(ctx/orig) / ln(orig)),
 * as llama.cpp's converter writes them for Phi-3 128k. For qwen3 and phi3 the norm weights are
 * random in [0.5, 1.5] rather than 1, so that a norm applied with the wrong weights shows.
 * --amp sets the weights' amplitude (default 0.05).
 *
 * Usage: hl_mkgguf OUT.gguf [--type F32|Q8_0|Q4_0] [--arch llama|qwen2|qwen3|phi3] [--tinyllama]
 *                  [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N]
 *                  [--ctx N] [--orig-ctx N] [--head-dim N] [--seed N] [--amp X]
 * --head-dim sets attention.key_length/value_length (queries of heads x head-dim values, as
 * Qwen3's, whose head size is not dim / heads). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_gguf_write.h"
#include "hl_quant.h"

typedef struct shape {
    unsigned dim, layers, heads, kv_heads, ffn, vocab, ctx;
} shape;

static uint64_t rng;
static float amp = 0.05f;

static float rnd_unit(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f;
}

static float rnd_weight(void) { return rnd_unit() * amp; }

/* What a tensor holds: random weights, ones, norm weights in [0.5, 1.5], or LongRoPE factors
 * (long: 1 + i, short: 1 + i / 4 for pair i). */
enum { FILL_RANDOM, FILL_ONES, FILL_NORM, FILL_ROPE_LONG, FILL_ROPE_SHORT };

static float fill_value(int fill, uint64_t c) {
    switch (fill) {
    case FILL_ONES: return 1.0f;
    case FILL_NORM: return 1.0f + 0.5f * rnd_unit();
    case FILL_ROPE_LONG: return 1.0f + (float)c;
    case FILL_ROPE_SHORT: return 1.0f + 0.25f * (float)c;
    default: return rnd_weight();
    }
}

static int phi3_arch(const char *arch) { return strcmp(arch, "phi3") == 0; }

static int usage(void) {
    fputs("usage: hl_mkgguf OUT.gguf [--type F32|Q8_0|Q4_0] [--arch llama|qwen2|qwen3|phi3] [--tinyllama]\n"
          "                 [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N]\n"
          "                 [--ctx N] [--orig-ctx N] [--head-dim N] [--seed N] [--amp X]\n"
          "  default shape: dim 256, 2 layers, 4 heads, 2 KV heads, ffn 768, vocab 512, ctx 2048\n"
          "  --tinyllama: dim 2048, 22 layers, 32 heads, 4 KV heads, ffn 5632, vocab 32000\n",
          stderr);
    return 2;
}

/* Writes one tensor's data: rows of cols random values (or ones), in type t. */
static int write_tensor(FILE *f, const hl_gguf_writer *w, hl_gguf_type t, uint64_t cols,
                        uint64_t rows, int ones, float *row, void *qrow) {
    size_t rb = hl_gguf_row_size(t, cols);
    for (uint64_t r = 0; r < rows; r++) {
        for (uint64_t c = 0; c < cols; c++) row[c] = fill_value(ones, c);
        const void *out = row;
        if (t == HL_GGUF_Q8_0) {
            hl_quant_quantize_q8_0(row, qrow, (int64_t)cols);
            out = qrow;
        } else if (t == HL_GGUF_Q4_0) {
            hl_quant_quantize_q4_0(row, qrow, (int64_t)cols);
            out = qrow;
        }
        if (fwrite(out, 1, rb, f) != rb) return -1;
    }
    static const char zeros[64];
    size_t pad = hl_gguf_writer_pad(w, (uint64_t)rb * rows);
    return fwrite(zeros, 1, pad, f) == pad ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') return usage();
    const char *out = argv[1];
    shape s = {256, 2, 4, 2, 768, 512, 2048};
    hl_gguf_type type = HL_GGUF_F32;
    const char *arch = "llama";
    unsigned long long seed = 1;
    unsigned orig_ctx = 0, head_dim = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tinyllama") == 0) {
            s = (shape){2048, 22, 32, 4, 5632, 32000, 2048};
            continue;
        }
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (strcmp(a, "--arch") == 0) {
            if (strcmp(v, "llama") != 0 && strcmp(v, "qwen2") != 0 && strcmp(v, "qwen3") != 0 &&
                strcmp(v, "phi3") != 0)
                return usage();
            arch = v;
            continue;
        }
        if (strcmp(a, "--type") == 0) {
            if (strcmp(v, "F32") == 0) type = HL_GGUF_F32;
            else if (strcmp(v, "Q8_0") == 0) type = HL_GGUF_Q8_0;
            else if (strcmp(v, "Q4_0") == 0) type = HL_GGUF_Q4_0;
            else return usage();
            continue;
        }
        char *end;
        if (strcmp(a, "--amp") == 0) {
            amp = strtof(v, &end);
            if (*end || end == v || !(amp > 0) || amp > 100) return usage();
            continue;
        }
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || end == v || errno || x == 0 || (strcmp(a, "--seed") && x > (1u << 24)))
            return usage();
        if (strcmp(a, "--dim") == 0) s.dim = (unsigned)x;
        else if (strcmp(a, "--layers") == 0) s.layers = (unsigned)x;
        else if (strcmp(a, "--heads") == 0) s.heads = (unsigned)x;
        else if (strcmp(a, "--kv-heads") == 0) s.kv_heads = (unsigned)x;
        else if (strcmp(a, "--ffn") == 0) s.ffn = (unsigned)x;
        else if (strcmp(a, "--vocab") == 0) s.vocab = (unsigned)x;
        else if (strcmp(a, "--ctx") == 0) s.ctx = (unsigned)x;
        else if (strcmp(a, "--orig-ctx") == 0) orig_ctx = (unsigned)x;
        else if (strcmp(a, "--head-dim") == 0) head_dim = (unsigned)x;
        else if (strcmp(a, "--seed") == 0) seed = x;
        else return usage();
    }
    uint32_t blk = hl_gguf_type_block(type);
    if (s.dim % s.heads || s.heads % s.kv_heads || (s.dim / s.heads) % 2 || s.dim % blk ||
        s.ffn % blk || s.vocab < 259 + 1) {
        fprintf(stderr, "hl_mkgguf: inconsistent shape (dim %% heads, heads %% kv_heads, dim and "
                        "ffn multiples of %u, vocab > 259)\n", blk);
        return 2;
    }
    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    unsigned hd = head_dim ? head_dim : s.dim / s.heads, kv_dim = hd * s.kv_heads, q_dim = hd * s.heads;
    if (hd % 2 || q_dim % blk || (phi3_arch(arch) && q_dim != s.dim)) {
        fprintf(stderr, "hl_mkgguf: head size must be even (and heads x head size = dim for phi3)\n");
        return 2;
    }

    hl_gguf_writer w;
    hl_gguf_writer_init(&w);
    char key[96];
#define ARCH_KEY(name) (snprintf(key, sizeof key, "%s." name, arch), key)
    hl_gguf_writer_kv_str(&w, "general.architecture", arch);
    hl_gguf_writer_kv_str(&w, "general.name", "hl-mkgguf-random");
    hl_gguf_writer_kv_u32(&w, "general.file_type", type == HL_GGUF_F32 ? 0 : type == HL_GGUF_Q8_0 ? 7 : 2);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("context_length"), s.ctx);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("embedding_length"), s.dim);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("block_count"), s.layers);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("feed_forward_length"), s.ffn);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("attention.head_count"), s.heads);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("attention.head_count_kv"), s.kv_heads);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("rope.dimension_count"), hd);
    if (head_dim) {
        hl_gguf_writer_kv_u32(&w, ARCH_KEY("attention.key_length"), hd);
        hl_gguf_writer_kv_u32(&w, ARCH_KEY("attention.value_length"), hd);
    }
    hl_gguf_writer_kv_f32(&w, ARCH_KEY("rope.freq_base"), 10000.0f);
    hl_gguf_writer_kv_f32(&w, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    hl_gguf_writer_kv_u32(&w, ARCH_KEY("vocab_size"), s.vocab);
    int biases = strcmp(arch, "qwen2") == 0, qk_norm = strcmp(arch, "qwen3") == 0;
    int phi3 = strcmp(arch, "phi3") == 0, norm_fill = phi3 || qk_norm ? FILL_NORM : FILL_ONES;
    if (phi3) {
        if (!orig_ctx) orig_ctx = s.ctx / 4 ? s.ctx / 4 : 1;
        double scale = (double)s.ctx / orig_ctx;
        float af = scale > 1 && orig_ctx > 1 ? (float)sqrt(1 + log(scale) / log((double)orig_ctx)) : 1.0f;
        hl_gguf_writer_kv_u32(&w, ARCH_KEY("rope.scaling.original_context_length"), orig_ctx);
        hl_gguf_writer_kv_f32(&w, ARCH_KEY("rope.scaling.attn_factor"), af);
        hl_gguf_writer_kv_u32(&w, ARCH_KEY("attention.sliding_window"), 0);
    }
#undef ARCH_KEY

    /* Vocabulary: 3 specials, 256 bytes, then "▁" + a base-26 word per id. */
    char **toks = calloc(s.vocab, sizeof *toks);
    float *scores = calloc(s.vocab, sizeof *scores);
    int32_t *types = calloc(s.vocab, sizeof *types);
    if (!toks || !scores || !types) return 1;
    for (unsigned i = 0; i < s.vocab; i++) {
        char buf[32];
        if (i < 3) {
            snprintf(buf, sizeof buf, "%s", (const char *[]){"<unk>", "<s>", "</s>"}[i]);
            types[i] = i == 0 ? 2 : 3;
        } else if (i < 259) {
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
            types[i] = 6;
        } else {
            unsigned k = i - 259, o = 3;
            memcpy(buf, "\xe2\x96\x81", 3);
            do {
                buf[o++] = (char)('a' + k % 26);
                k /= 26;
            } while (k && o < sizeof buf - 1);
            buf[o] = 0;
            types[i] = 1;
            scores[i] = -(float)(i - 259);
        }
        toks[i] = strdup(buf);
    }
    hl_gguf_writer_kv_str(&w, "tokenizer.ggml.model", "llama");
    hl_gguf_writer_kv_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, s.vocab);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.scores", HL_GGUF_V_FLOAT32, scores, s.vocab);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.token_type", HL_GGUF_V_INT32, types, s.vocab);
    hl_gguf_writer_kv_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    hl_gguf_writer_kv_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    hl_gguf_writer_kv_u32(&w, "tokenizer.ggml.unknown_token_id", 0);

    /* Tensors in llama.cpp's usual order. */
    typedef struct { char name[64]; uint64_t cols, rows; int ones; hl_gguf_type t; } tdesc;
    unsigned nt = 5 + 14 * s.layers;
    tdesc *td = calloc(nt, sizeof *td);
    if (!td) return 1;
    unsigned n = 0;
    td[n++] = (tdesc){"token_embd.weight", s.dim, s.vocab, 0, type};
    for (unsigned l = 0; l < s.layers; l++) {
        struct { const char *nm; uint64_t c, r; int ones; } L[11] = {
            {"attn_norm", s.dim, 1, norm_fill},     {"attn_q", s.dim, q_dim, 0},
            {"attn_k", s.dim, kv_dim, 0},   {"attn_v", s.dim, kv_dim, 0},
            {"attn_q_norm", hd, 1, FILL_NORM}, {"attn_k_norm", hd, 1, FILL_NORM},
            {"attn_output", q_dim, s.dim, 0}, {"ffn_norm", s.dim, 1, norm_fill},
            {"ffn_gate", s.dim, s.ffn, 0},  {"ffn_up", s.dim, s.ffn, 0},
            {"ffn_down", s.ffn, s.dim, 0},
        };
        if (phi3) {
            L[1].nm = "attn_qkv";
            L[1].r = (uint64_t)s.dim + 2 * kv_dim;
            L[9].r = 2 * (uint64_t)s.ffn; /* gate rows, then up rows */
        }
        for (int k = 0; k < 11; k++) {
            if ((phi3 && (k == 2 || k == 3 || k == 8)) || (!qk_norm && (k == 4 || k == 5))) continue;
            snprintf(td[n].name, sizeof td[n].name, "blk.%u.%s.weight", l, L[k].nm);
            td[n].cols = L[k].c;
            td[n].rows = L[k].r;
            td[n].ones = L[k].ones;
            td[n].t = L[k].r == 1 ? HL_GGUF_F32 : type;
            n++;
            if (biases && k >= 1 && k <= 3) {
                td[n] = (tdesc){"", L[k].r, 1, 0, HL_GGUF_F32};
                snprintf(td[n].name, sizeof td[n].name, "blk.%u.%s.bias", l, L[k].nm);
                n++;
            }
        }
    }
    td[n++] = (tdesc){"output_norm.weight", s.dim, 1, norm_fill, HL_GGUF_F32};
    td[n++] = (tdesc){"output.weight", s.dim, s.vocab, 0, type};
    if (phi3) {
        td[n++] = (tdesc){"rope_factors_long.weight", hd / 2, 1, FILL_ROPE_LONG, HL_GGUF_F32};
        td[n++] = (tdesc){"rope_factors_short.weight", hd / 2, 1, FILL_ROPE_SHORT, HL_GGUF_F32};
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t ne[2] = {td[i].cols, td[i].rows};
        if (hl_gguf_writer_tensor(&w, td[i].name, td[i].t, td[i].rows > 1 ? 2 : 1, ne)) return 1;
    }
    hl_buf head;
    hl_buf_init(&head, 0);
    if (hl_gguf_writer_header(&w, &head)) return 1;
    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    uint64_t maxc = s.dim > s.ffn ? s.dim : s.ffn;
    if (q_dim > maxc) maxc = q_dim;
    float *row = malloc(maxc * sizeof *row);
    void *qrow = malloc(maxc * sizeof *row);
    int rc = fwrite(head.data, 1, head.len, f) == head.len ? 0 : -1;
    for (unsigned i = 0; i < n && rc == 0; i++)
        rc = write_tensor(f, &w, td[i].t, td[i].cols, td[i].rows, td[i].ones, row, qrow);
    if (fclose(f) != 0) rc = -1;
    if (rc) {
        fprintf(stderr, "hl_mkgguf: writing %s: %s\n", out, strerror(errno));
        return 1;
    }
    printf("%s: %s dim %u, %u layers, %u/%u heads, ffn %u, vocab %u, %s, %u tensors\n", out,
           arch, s.dim, s.layers, s.heads, s.kv_heads, s.ffn, s.vocab, hl_gguf_type_name(type), n);
    for (unsigned i = 0; i < s.vocab; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    free(td);
    free(row);
    free(qrow);
    hl_buf_release(&head);
    hl_gguf_writer_release(&w);
    return 0;
}
