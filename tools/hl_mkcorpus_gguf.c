/* hl_mkcorpus_gguf: writes the seed corpus of the GGUF fuzz target
 * (test/fuzz/corpus/gguf/): a handful of tiny, valid files that between them use every
 * value type, both versions, a non-default alignment, every tensor type the engine runs and
 * complete miniature llama and qwen2 models with a tokenizer. libFuzzer mutates these, so each is
 * small (< 20 KB) and the set is diverse rather than large.
 *
 * Usage: hl_mkcorpus_gguf OUTDIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_gguf_write.h"

static uint32_t rng = 12345;
static uint8_t rnd8(void) {
    rng = rng * 1103515245u + 12345u;
    return (uint8_t)(rng >> 16);
}

/* Writes header + data for tensors whose bytes are pseudo-random (scale fields included:
 * the reader does not interpret tensor data). */
static int write_file(const char *dir, const char *name, hl_gguf_writer *w,
                      const uint64_t *sizes, int n) {
    hl_buf b;
    hl_buf_init(&b, 0);
    if (hl_gguf_writer_header(w, &b)) return 1;
    for (int i = 0; i < n; i++) {
        for (uint64_t k = 0; k < sizes[i]; k++) {
            uint8_t c = rnd8() & 0x3f; /* keeps f16 scales small and finite */
            hl_buf_append(&b, &c, 1);
        }
        static const char zeros[256];
        hl_buf_append(&b, zeros, hl_gguf_writer_pad(w, sizes[i]));
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    printf("%s: %zu bytes\n", path, b.len);
    hl_buf_release(&b);
    hl_gguf_writer_release(w);
    return 0;
}

static uint64_t add(hl_gguf_writer *w, const char *name, hl_gguf_type t, uint64_t ne0,
                    uint64_t ne1) {
    uint64_t ne[2] = {ne0, ne1};
    hl_gguf_writer_tensor(w, name, t, ne1 > 1 ? 2 : 1, ne);
    return ne0 / hl_gguf_type_block(t) * hl_gguf_type_size(t) * ne1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    hl_gguf_writer w;
    uint64_t sz[24] = {0};
    int rc = 0;

    /* 1: every scalar value type and arrays of each. */
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_str(&w, "general.name", "all-kv");
    for (int t = 0; t < HL_GGUF_V_COUNT; t++) {
        if (t == HL_GGUF_V_STRING || t == HL_GGUF_V_ARRAY) continue;
        char key[32];
        uint8_t v[16] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 1, 0, 1, 0, 1, 0};
        snprintf(key, sizeof key, "arr.%s", hl_gguf_vtype_name((uint32_t)t));
        hl_gguf_writer_kv_arr(&w, key, (hl_gguf_vtype)t, v, 2);
    }
    hl_gguf_writer_kv_u32(&w, "u32", 7);
    hl_gguf_writer_kv_i32(&w, "i32", -7);
    hl_gguf_writer_kv_f32(&w, "f32", 0.5f);
    hl_gguf_writer_kv_bool(&w, "bool", 1);
    const char *strs[] = {"a", "", "\xe2\x96\x81hello"};
    hl_gguf_writer_kv_arr_str(&w, "arr.str", strs, NULL, 3);
    rc |= write_file(dir, "all_kv.gguf", &w, sz, 0);

    /* 2: version 2, one tensor of each type the engine runs. */
    hl_gguf_writer_init(&w);
    w.version = 2;
    static const hl_gguf_type types[] = {HL_GGUF_F32, HL_GGUF_F16, HL_GGUF_BF16,
                                         HL_GGUF_Q8_0, HL_GGUF_Q4_0, HL_GGUF_Q4_K,
                                         HL_GGUF_Q6_K};
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "t.%s", hl_gguf_type_name(types[i]));
        sz[i] = add(&w, name, types[i], 256, 2);
    }
    rc |= write_file(dir, "types_v2.gguf", &w, sz, 7);

    /* 3: alignment 64 and a 3-d tensor. */
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_u32(&w, "general.alignment", 64);
    w.alignment = 64;
    uint64_t ne3[3] = {8, 3, 2};
    hl_gguf_writer_tensor(&w, "cube", HL_GGUF_F32, 3, ne3);
    sz[0] = 8 * 3 * 2 * 4;
    sz[1] = add(&w, "vec", HL_GGUF_F32, 5, 1);
    rc |= write_file(dir, "align64.gguf", &w, sz, 2);

    /* 4: a whole llama model: dim 32, 1 layer, 2 heads, 1 KV head, ffn 64, vocab 40, with a
     * SentencePiece-style vocabulary. */
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_str(&w, "general.architecture", "llama");
    hl_gguf_writer_kv_u32(&w, "llama.context_length", 64);
    hl_gguf_writer_kv_u32(&w, "llama.embedding_length", 32);
    hl_gguf_writer_kv_u32(&w, "llama.block_count", 1);
    hl_gguf_writer_kv_u32(&w, "llama.feed_forward_length", 64);
    hl_gguf_writer_kv_u32(&w, "llama.attention.head_count", 2);
    hl_gguf_writer_kv_u32(&w, "llama.attention.head_count_kv", 1);
    hl_gguf_writer_kv_u32(&w, "llama.rope.dimension_count", 16);
    hl_gguf_writer_kv_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    hl_gguf_writer_kv_str(&w, "tokenizer.ggml.model", "llama");
    const char *toks[40];
    char tokbuf[40][8];
    float scores[40];
    int32_t ttypes[40];
    for (int i = 0; i < 40; i++) {
        if (i < 3) toks[i] = (const char *[]){"<unk>", "<s>", "</s>"}[i];
        else if (i < 3 + 16) {
            snprintf(tokbuf[i], sizeof tokbuf[i], "<0x%02X>", i - 3 + 0x20);
            toks[i] = tokbuf[i];
        } else {
            snprintf(tokbuf[i], sizeof tokbuf[i], "\xe2\x96\x81%c%c", 'a' + i % 26,
                     'a' + i / 26);
            toks[i] = tokbuf[i];
        }
        scores[i] = -(float)i;
        ttypes[i] = i < 3 ? (i == 0 ? 2 : 3) : i < 19 ? 6 : 1;
    }
    hl_gguf_writer_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, NULL, 40);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.scores", HL_GGUF_V_FLOAT32, scores, 40);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.token_type", HL_GGUF_V_INT32, ttypes, 40);
    hl_gguf_writer_kv_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    hl_gguf_writer_kv_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    int n = 0;
    sz[n++] = add(&w, "token_embd.weight", HL_GGUF_Q8_0, 32, 40);
    sz[n++] = add(&w, "output_norm.weight", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.attn_norm.weight", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.attn_q.weight", HL_GGUF_Q4_0, 32, 32);
    sz[n++] = add(&w, "blk.0.attn_k.weight", HL_GGUF_Q8_0, 32, 16);
    sz[n++] = add(&w, "blk.0.attn_v.weight", HL_GGUF_F16, 32, 16);
    sz[n++] = add(&w, "blk.0.attn_output.weight", HL_GGUF_BF16, 32, 32);
    sz[n++] = add(&w, "blk.0.ffn_norm.weight", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.ffn_gate.weight", HL_GGUF_Q4_0, 32, 64);
    sz[n++] = add(&w, "blk.0.ffn_up.weight", HL_GGUF_Q4_0, 32, 64);
    sz[n++] = add(&w, "blk.0.ffn_down.weight", HL_GGUF_F32, 64, 32);
    rc |= write_file(dir, "tiny_llama.gguf", &w, sz, n);

    /* 5: a whole qwen2 model (biases, NeoX RoPE) with the same kind of vocabulary. */
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_str(&w, "general.architecture", "qwen2");
    hl_gguf_writer_kv_u32(&w, "qwen2.context_length", 64);
    hl_gguf_writer_kv_u32(&w, "qwen2.embedding_length", 32);
    hl_gguf_writer_kv_u32(&w, "qwen2.block_count", 1);
    hl_gguf_writer_kv_u32(&w, "qwen2.feed_forward_length", 64);
    hl_gguf_writer_kv_u32(&w, "qwen2.attention.head_count", 2);
    hl_gguf_writer_kv_u32(&w, "qwen2.attention.head_count_kv", 1);
    hl_gguf_writer_kv_f32(&w, "qwen2.rope.freq_base", 1000000.0f);
    hl_gguf_writer_kv_str(&w, "tokenizer.ggml.model", "llama");
    hl_gguf_writer_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, NULL, 40);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.scores", HL_GGUF_V_FLOAT32, scores, 40);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.token_type", HL_GGUF_V_INT32, ttypes, 40);
    n = 0;
    sz[n++] = add(&w, "token_embd.weight", HL_GGUF_Q8_0, 32, 40);
    sz[n++] = add(&w, "output_norm.weight", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.attn_norm.weight", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.attn_q.weight", HL_GGUF_Q8_0, 32, 32);
    sz[n++] = add(&w, "blk.0.attn_q.bias", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.attn_k.weight", HL_GGUF_Q8_0, 32, 16);
    sz[n++] = add(&w, "blk.0.attn_k.bias", HL_GGUF_F32, 16, 1);
    sz[n++] = add(&w, "blk.0.attn_v.weight", HL_GGUF_Q4_0, 32, 16);
    sz[n++] = add(&w, "blk.0.attn_v.bias", HL_GGUF_F32, 16, 1);
    sz[n++] = add(&w, "blk.0.attn_output.weight", HL_GGUF_Q8_0, 32, 32);
    sz[n++] = add(&w, "blk.0.ffn_norm.weight", HL_GGUF_F32, 32, 1);
    sz[n++] = add(&w, "blk.0.ffn_gate.weight", HL_GGUF_Q4_0, 32, 64);
    sz[n++] = add(&w, "blk.0.ffn_up.weight", HL_GGUF_Q4_0, 32, 64);
    sz[n++] = add(&w, "blk.0.ffn_down.weight", HL_GGUF_Q8_0, 64, 32);
    rc |= write_file(dir, "tiny_qwen2.gguf", &w, sz, n);
    return rc;
}
