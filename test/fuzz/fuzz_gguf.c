/* fuzz_gguf: libFuzzer target for the GGUF reader and for what reads its output. It opens the
 * input from memory and then uses everything the reader hands out (every key, string array,
 * numeric array, tensor name and the first and last byte of every tensor's data), so that
 * any bounds check the reader forgot shows up as an ASan report here. Then, as a model file
 * would be, it loads the tokenizer (tokenizing and decoding a short text) and the model
 * (with a tiny context, running one token): their checks of metadata and tensor shapes are
 * parsing of untrusted input too. The corpus (test/fuzz/corpus/gguf/) holds tiny valid GGUFs
 * written by tools/hl_mkcorpus_gguf, a complete miniature llama model among them.
 * Properties, any broken one aborts: a key finds its own entry; the same bytes open to the
 * same keys and tensors; the tokenizer gives the same ids for the same text twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_gguf.h"
#include "hl_model.h"
#include "hl_tok.h"

static volatile uint8_t sink;

static void touch_str(hl_gguf_str s) {
    if (s.n) sink ^= (uint8_t)(s.p[0] ^ s.p[s.n - 1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_gguf *g = NULL;
    char err[HL_GGUF_ERR_MAX];
    if (hl_gguf_open_buffer(&g, data, size, err, sizeof err) != HL_OK) return 0;
    char key[256];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hl_gguf_kv *kv = &g->kv[i];
        touch_str(kv->key);
        if (kv->key.n < sizeof key && !memchr(kv->key.p, 0, kv->key.n)) {
            memcpy(key, kv->key.p, kv->key.n);
            key[kv->key.n] = 0;
            if (hl_gguf_find_kv(g, key) != kv) abort();
            uint32_t u;
            float f;
            hl_gguf_str s;
            (void)hl_gguf_get_u32(g, key, &u);
            (void)hl_gguf_get_f32(g, key, &f);
            if (hl_gguf_get_str(g, key, &s) == HL_OK) touch_str(s);
        }
        if (kv->type != HL_GGUF_V_ARRAY || kv->arr_n == 0) continue;
        if (kv->arr_type == HL_GGUF_V_STRING) {
            if (kv->arr_n > (1u << 20)) continue;
            hl_gguf_str *strs = malloc(kv->arr_n * sizeof *strs);
            if (!strs) continue;
            if (hl_gguf_arr_strings(kv, strs) == HL_OK)
                for (uint64_t j = 0; j < kv->arr_n; j++) touch_str(strs[j]);
            free(strs);
        } else {
            double a = hl_gguf_arr_num(kv, 0), z = hl_gguf_arr_num(kv, kv->arr_n - 1);
            sink ^= (uint8_t)(a > 0 && a < 256) ^ (uint8_t)(z > 0 && z < 256);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hl_gguf_tensor *t = &g->tensors[i];
        touch_str(t->name);
        if (t->nbytes) {
            const uint8_t *p = t->data;
            sink ^= p[0] ^ p[t->nbytes - 1];
        }
    }

    hl_tok *tok;
    if (hl_tok_load(&tok, g, err, sizeof err) == HL_OK) {
        static const char text[] = "Hello world, 'tis 33 caf\xc3\xa9s\n <s>";
        int32_t ids[64];
        size_t n;
        int32_t ids2[64];
        size_t n2;
        hl_err e1 = hl_tok_encode(tok, text, sizeof text - 1, true, true, ids, 64, &n);
        hl_err e2 = hl_tok_encode(tok, text, sizeof text - 1, true, true, ids2, 64, &n2);
        if (e1 != e2 || (e1 == HL_OK && (n != n2 || memcmp(ids, ids2, n * sizeof *ids) != 0)))
            abort();
        if (e1 != HL_OK) n = 0;
        char piece[64];
        for (size_t i = 0; i < n; i++) (void)hl_tok_piece(tok, ids[i], true, piece, sizeof piece);
        for (int32_t id = -1; id < 8; id++) (void)hl_tok_piece(tok, id, false, piece, sizeof piece);
        hl_tok_free(tok);
    }
    /* The model takes ownership of its own view of the same bytes. */
    hl_gguf *g2;
    if (hl_gguf_open_buffer(&g2, data, size, err, sizeof err) != HL_OK) abort();
    if (g2->n_kv != g->n_kv || g2->n_tensors != g->n_tensors) abort();
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g2->kv[i].key.n != g->kv[i].key.n ||
            memcmp(g2->kv[i].key.p, g->kv[i].key.p, g->kv[i].key.n) != 0 ||
            g2->kv[i].type != g->kv[i].type)
            abort();
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g2->tensors[i].nbytes != g->tensors[i].nbytes || g2->tensors[i].data != g->tensors[i].data)
            abort();
    {
        hl_model *m;
        hl_model_params p = {.n_ctx = 4, .max_batch = 2, .n_threads = 1};
        if (hl_model_load_gguf(&m, g2, &p, err, sizeof err) == HL_OK) {
            int32_t t[2] = {0, (int32_t)(hl_model_hp(m)->vocab - 1)};
            (void)hl_model_forward(m, t, 2, 0);
            hl_model_free(m);
        }
    }
    hl_gguf_free(g);
    return 0;
}
