/* Tests for hl_tok against llama.cpp's tokenizer test vectors (../shared/models/vocab/NAME.inp
 * and .out: test strings separated by "\n__ggml_vocab_test__\n", one line of expected ids
 * per string, without BOS) and the stories260K prompt of the model references. */
#include <string.h>

#include "hl_gguf.h"
#include "hl_gguf_write.h"
#include "hl_tok.h"
#include "hl_test.h"
#include "test_models_dir.h"

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

/* Runs every vector of vocab/<name>; returns the number of strings checked. */
static int check_vectors(const char *name) {
    char rel[256], path[4096], err[HL_GGUF_ERR_MAX];
    snprintf(rel, sizeof rel, "vocab/%s", name);
    if (!hl_test_model_path(path, sizeof path, rel)) return 0;
    hl_gguf *g;
    if (hl_gguf_open(&g, path, err, sizeof err) != HL_OK) {
        HL_FAIL_("%s", err);
        return 0;
    }
    hl_tok *t;
    if (hl_tok_load(&t, g, err, sizeof err) != HL_OK) {
        HL_FAIL_("%s", err);
        hl_gguf_free(g);
        return 0;
    }
    char ip[4200], op[4200];
    snprintf(ip, sizeof ip, "%s.inp", path);
    snprintf(op, sizeof op, "%s.out", path);
    size_t ni, no;
    char *inp = read_all(ip, &ni), *outs = read_all(op, &no);
    if (!inp || !outs) {
        HL_FAIL_("cannot read %s / %s", ip, op);
        return 0;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *p = inp, *line = outs;
    int checked = 0, failed = 0;
    int32_t *ids = malloc(65536 * sizeof *ids);
    while (*line) {
        char *end = strstr(p, sep);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        size_t n;
        hl_err e = hl_tok_encode(t, p, len, false, false, ids, 65536, &n);
        char got[65536];
        size_t o = 0;
        got[0] = 0;
        for (size_t i = 0; i < n && o < sizeof got - 16; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, " %d", ids[i]);
        /* Expected lines start with a space before each id, as written by llama.cpp. */
        const char *want = line;
        if (e != HL_OK || strcmp(got, want) != 0) {
            if (failed < 5)
                HL_FAIL_("%s: string %d \"%.*s\":\n    got:      %s\n    expected: %s", name,
                         checked, (int)(len < 60 ? len : 60), p, got, want);
            failed++;
        }
        checked++;
        if (!end || !eol) break;
        p = end + sizeof sep - 1;
        line = eol + 1;
    }
    printf("  %s: %d/%d strings tokenized as expected\n", name, checked - failed, checked);
    free(ids);
    free(inp);
    free(outs);
    hl_tok_free(t);
    hl_gguf_free(g);
    return checked;
}

HL_TEST(llama_spm_vectors) {
    int n = check_vectors("ggml-vocab-llama-spm.gguf");
    if (!HL_SKIPPED()) HL_CHECK_INT_EQ(n, 46);
}

HL_TEST(llama_bpe_vectors) {
    int n = check_vectors("ggml-vocab-llama-bpe.gguf");
    if (!HL_SKIPPED()) HL_CHECK_INT_EQ(n, 46);
}

HL_TEST(phi3_vectors) {
    int n = check_vectors("ggml-vocab-phi-3.gguf");
    if (!HL_SKIPPED()) HL_CHECK_INT_EQ(n, 46);
}

HL_TEST(qwen2_vectors) {
    int n = check_vectors("ggml-vocab-qwen2.gguf");
    if (!HL_SKIPPED()) HL_CHECK_INT_EQ(n, 46);
}

/* A pre-tokenizer we have not written is refused plainly, not approximated. */
HL_TEST(unknown_pretokenizer_refused) {
    hl_gguf_writer w;
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_str(&w, "tokenizer.ggml.model", "gpt2");
    hl_gguf_writer_kv_str(&w, "tokenizer.ggml.pre", "deepseek-coder");
    const char *toks[] = {"a", "b"};
    hl_gguf_writer_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, NULL, 2);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_gguf_writer_header(&w, &b) == HL_OK);
    hl_gguf *g;
    HL_REQUIRE(hl_gguf_open_buffer(&g, b.data, b.len, NULL, 0) == HL_OK);
    hl_tok *t = NULL;
    char err[HL_GGUF_ERR_MAX];
    HL_CHECK_INT_EQ(hl_tok_load(&t, g, err, sizeof err), HL_ERR_UNSUPPORTED);
    HL_CHECK(t == NULL && strstr(err, "deepseek-coder") != NULL);
    hl_gguf_free(g);
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
}

HL_TEST(stories_prompt_and_pieces) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_gguf *g;
    hl_tok *t;
    HL_REQUIRE(hl_gguf_open(&g, path, NULL, 0) == HL_OK);
    HL_REQUIRE(hl_tok_load(&t, g, NULL, 0) == HL_OK);
    int32_t ids[16];
    size_t n;
    const char *prompt = "Once upon a time";
    HL_CHECK_INT_EQ(hl_tok_encode(t, prompt, strlen(prompt), true, false, ids, 16, &n), HL_OK);
    static const int32_t want[] = {1, 403, 407, 261, 378};
    HL_REQUIRE(n == 5);
    HL_CHECK(memcmp(ids, want, sizeof want) == 0);
    /* Decoding the reference continuation gives its text. */
    static const int32_t gen[] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
                                  401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282,
                                  295, 433, 426, 385, 328, 432, 358, 394};
    char text[512];
    size_t o = 0;
    for (size_t i = 0; i < sizeof gen / sizeof *gen; i++) {
        int k = hl_tok_piece(t, gen[i], false, text + o, sizeof text - 1 - o);
        HL_REQUIRE(k >= 0 && (size_t)k < sizeof text - 1 - o);
        o += (size_t)k;
    }
    text[o] = 0;
    HL_CHECK_STR_EQ(text, ", there was a little girl named Lily. She loved to play outside in "
                          "the park. One day, she saw");
    HL_CHECK(hl_tok_is_eog(t, 2));
    HL_CHECK(!hl_tok_is_eog(t, 1));
    HL_CHECK_INT_EQ(hl_tok_piece(t, 1, false, text, sizeof text), 0); /* <s> is control */
    HL_CHECK_INT_EQ(hl_tok_piece(t, 100000, false, text, sizeof text), -1);
    /* The output ceiling: 3 ids do not fit in 2. */
    HL_CHECK_INT_EQ(hl_tok_encode(t, prompt, strlen(prompt), true, false, ids, 2, &n), HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(n, 2);
    /* Empty text: BOS only. */
    HL_CHECK_INT_EQ(hl_tok_encode(t, "", 0, true, false, ids, 16, &n), HL_OK);
    HL_CHECK_INT_EQ(n, 1);
    /* Special tokens only when asked. */
    HL_CHECK_INT_EQ(hl_tok_encode(t, "a</s>", 5, false, true, ids, 16, &n), HL_OK);
    HL_CHECK(n >= 2 && ids[n - 1] == 2);
    HL_CHECK_INT_EQ(hl_tok_encode(t, "a</s>", 5, false, false, ids, 16, &n), HL_OK);
    HL_CHECK(ids[n - 1] != 2);
    hl_tok_free(t);
    hl_gguf_free(g);
}

HL_TEST_MAIN()
