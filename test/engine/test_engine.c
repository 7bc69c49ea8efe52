/* Tests for hl_engine (generation, sampling, streaming, cancellation, logprobs) and the CLI
 * entry points in hl_engine_cli. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl_engine.h"
#include "hl_engine_cli.h"
#include "hl_gguf_write.h"
#include "hl_test.h"
#include "test_models_dir.h"

static const int32_t stories_greedy[32] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                                           338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
                                           265, 282, 295, 433, 426, 385, 328, 432, 358, 394};

typedef struct collect {
    int32_t ids[2048];
    float logprob[2048];
    char text[8192];
    size_t text_len;
    int n, stop_after;
} collect;

static int on_token(void *ctx, const hl_engine_token *tk) {
    collect *c = ctx;
    if (c->n < 2048) {
        c->ids[c->n] = tk->id;
        c->logprob[c->n] = tk->logprob;
    }
    c->n++;
    if (c->text_len + tk->len < sizeof c->text) {
        memcpy(c->text + c->text_len, tk->text, tk->len);
        c->text_len += tk->len;
        c->text[c->text_len] = 0;
    }
    return c->stop_after && c->n >= c->stop_after;
}

static hl_engine *open_stories(int threads) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return NULL;
    hl_engine *e;
    char err[512];
    hl_engine_params p = {.model_path = path, .n_threads = threads, .n_ctx = 256};
    if (hl_engine_open(&e, &p, err, sizeof err) != HL_OK) {
        HL_FAIL_("%s", err);
        return NULL;
    }
    return e;
}

static hl_engine_request request(collect *c, int max_tokens, hl_engine_sampling s) {
    static const char prompt[] = "Once upon a time";
    return (hl_engine_request){.prompt = prompt, .prompt_len = sizeof prompt - 1, .add_bos = true,
                               .max_tokens = max_tokens, .sampling = s, .on_token = on_token,
                               .cb_ctx = c};
}

HL_TEST(greedy_matches_reference_and_streams) {
    hl_engine *e = open_stories(2);
    if (!e) return;
    collect *c = calloc(1, sizeof *c);
    hl_engine_sampling s = {.temperature = 0};
    hl_engine_request req = request(c, 32, s);
    hl_engine_result res;
    HL_REQUIRE(hl_engine_generate(e, &req, &res) == HL_OK);
    HL_CHECK_INT_EQ(res.n_prompt, 5);
    HL_CHECK_INT_EQ(res.n_gen, 32);
    HL_CHECK_INT_EQ(res.stop, HL_ENGINE_STOP_LENGTH);
    HL_CHECK(memcmp(c->ids, stories_greedy, sizeof stories_greedy) == 0);
    HL_CHECK_STR_EQ(c->text, ", there was a little girl named Lily. She loved to play outside in "
                             "the park. One day, she saw");
    /* The first token's logprob is the reference logits' log-softmax at 432. */
    char path[4096];
    if (hl_test_model_path(path, sizeof path, "reference/stories260K.step1_logits.tsv")) {
        FILE *f = fopen(path, "r");
        double mx = -1e30, v432 = 0, sum = 0;
        float lg[512];
        int id;
        float v;
        while (f && fscanf(f, "%d\t%f", &id, &v) == 2)
            if (id >= 0 && id < 512) lg[id] = v;
        if (f) fclose(f);
        for (int i = 0; i < 512; i++) mx = fmax(mx, lg[i]);
        for (int i = 0; i < 512; i++) sum += exp(lg[i] - mx);
        v432 = lg[432] - mx - log(sum);
        HL_CHECK_NEAR(c->logprob[0], v432, 1e-4);
    }
    for (int i = 0; i < 32; i++) HL_CHECK(c->logprob[i] <= 0 && c->logprob[i] > -50);
    /* A second generation on the same engine starts afresh. */
    memset(c, 0, sizeof *c);
    HL_REQUIRE(hl_engine_generate(e, &req, &res) == HL_OK);
    HL_CHECK(memcmp(c->ids, stories_greedy, sizeof stories_greedy) == 0);
    free(c);
    hl_engine_free(e);
}

HL_TEST(seeded_sampling_is_reproducible) {
    hl_engine *e = open_stories(1);
    if (!e) return;
    collect *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *d = calloc(1, sizeof *d);
    hl_engine_sampling s = hl_engine_sampling_default();
    s.temperature = 1.0f;
    s.seed = 7;
    hl_engine_result res;
    hl_engine_request ra = request(a, 64, s), rb = request(b, 64, s);
    HL_REQUIRE(hl_engine_generate(e, &ra, &res) == HL_OK);
    HL_REQUIRE(hl_engine_generate(e, &rb, &res) == HL_OK);
    HL_CHECK(a->n == 64 && b->n == 64 && memcmp(a->ids, b->ids, 64 * sizeof(int32_t)) == 0);
    s.seed = 8;
    hl_engine_request rd = request(d, 64, s);
    HL_REQUIRE(hl_engine_generate(e, &rd, &res) == HL_OK);
    HL_CHECK(memcmp(a->ids, d->ids, 64 * sizeof(int32_t)) != 0);
    /* top-k 1 is greedy whatever the temperature. */
    memset(d, 0, sizeof *d);
    s.top_k = 1;
    rd = request(d, 32, s);
    HL_REQUIRE(hl_engine_generate(e, &rd, &res) == HL_OK);
    HL_CHECK(memcmp(d->ids, stories_greedy, sizeof stories_greedy) == 0);
    free(a);
    free(b);
    free(d);
    hl_engine_free(e);
}

/* Several requests served together, admitted at different steps: each one's tokens are what
 * it generates alone (greedy and seeded sampling alike); a full engine refuses another; a
 * cancelled sequence frees its slot at once. */
HL_TEST(sequences_together_equal_alone) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_engine *e;
    char err[512];
    hl_engine_params p = {.model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 8, .n_seq = 3};
    HL_REQUIRE(hl_engine_open(&e, &p, err, sizeof err) == HL_OK);
    static const char *const prompts[3] = {"Once upon a time", "Lily and her mom went to the park to play",
                                           "The dog"};
    hl_engine_sampling samp[3] = {{.temperature = 0}, hl_engine_sampling_default(), {.temperature = 0}};
    samp[1].seed = 11;
    static const int max_tokens[3] = {40, 25, 30};
    collect *alone = calloc(3, sizeof *alone), *together = calloc(3, sizeof *together);
    HL_REQUIRE(alone && together);
    hl_engine_request req[3];
    for (int i = 0; i < 3; i++) {
        req[i] = (hl_engine_request){.prompt = prompts[i], .prompt_len = strlen(prompts[i]), .add_bos = true,
                                     .max_tokens = max_tokens[i], .sampling = samp[i], .on_token = on_token,
                                     .cb_ctx = &alone[i]};
        hl_engine_result res;
        HL_REQUIRE(hl_engine_generate(e, &req[i], &res) == HL_OK);
        HL_CHECK_INT_EQ(res.n_gen, max_tokens[i]);
        req[i].cb_ctx = &together[i];
    }
    /* The first starts alone; the second joins after 3 steps (its 10-token prompt is longer
     * than the batch's room: prefilled over two steps, while the first keeps decoding); the
     * third after 6. */
    hl_engine_seq *seq[3] = {NULL, NULL, NULL};
    HL_REQUIRE(hl_engine_seq_start(e, &req[0], &seq[0]) == HL_OK);
    HL_CHECK_INT_EQ(hl_engine_free_slots(e), 2);
    int active = 1, steps = 0;
    while (active > 0) {
        if (steps == 3) HL_REQUIRE(hl_engine_seq_start(e, &req[1], &seq[1]) == HL_OK);
        if (steps == 6) HL_REQUIRE(hl_engine_seq_start(e, &req[2], &seq[2]) == HL_OK);
        HL_REQUIRE(hl_engine_step(e, &active) == HL_OK);
        steps++;
        HL_REQUIRE(steps < 200);
    }
    for (int i = 0; i < 3; i++) {
        hl_engine_result res;
        hl_err r;
        HL_REQUIRE(seq[i] && hl_engine_seq_finished(seq[i], &res, &r));
        HL_CHECK_INT_EQ(r, HL_OK);
        HL_CHECK_INT_EQ(res.stop, HL_ENGINE_STOP_LENGTH);
        HL_CHECK_INT_EQ(together[i].n, alone[i].n);
        HL_CHECK(memcmp(together[i].ids, alone[i].ids, (size_t)alone[i].n * sizeof(int32_t)) == 0);
        HL_CHECK_STR_EQ(together[i].text, alone[i].text);
        for (int t = 0; t < alone[i].n; t++) HL_CHECK_NEAR(together[i].logprob[t], alone[i].logprob[t], 1e-4);
        hl_engine_seq_free(seq[i]);
    }
    /* Together took fewer passes than the three alone (40 + 25 + 30 tokens). */
    HL_CHECK(steps < 60);
    /* Full: a fourth is refused; cancelling one frees its slot. */
    hl_engine_seq *x[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) HL_REQUIRE(hl_engine_seq_start(e, &req[0], &x[i]) == HL_OK);
    HL_CHECK_INT_EQ(hl_engine_seq_start(e, &req[0], &x[3]), HL_ERR_LIMIT);
    HL_CHECK(x[3] == NULL);
    hl_engine_seq_cancel(x[1]);
    hl_engine_result res;
    HL_CHECK(hl_engine_seq_finished(x[1], &res, NULL) && res.stop == HL_ENGINE_STOP_CANCELLED);
    HL_CHECK_INT_EQ(hl_engine_free_slots(e), 1);
    for (int i = 0; i < 3; i++) hl_engine_seq_free(x[i]);
    HL_CHECK_INT_EQ(hl_engine_free_slots(e), 3);
    free(alone);
    free(together);
    hl_engine_free(e);
}

HL_TEST(cancel_from_callback) {
    hl_engine *e = open_stories(1);
    if (!e) return;
    collect *c = calloc(1, sizeof *c);
    c->stop_after = 3;
    hl_engine_sampling s = {.temperature = 0};
    hl_engine_request req = request(c, 100, s);
    hl_engine_result res;
    HL_REQUIRE(hl_engine_generate(e, &req, &res) == HL_OK);
    HL_CHECK_INT_EQ(res.n_gen, 3);
    HL_CHECK_INT_EQ(res.stop, HL_ENGINE_STOP_CANCELLED);
    /* Unbounded generation stops when the 256-position context is full. */
    memset(c, 0, sizeof *c);
    req = request(c, 0, s);
    HL_REQUIRE(hl_engine_generate(e, &req, &res) == HL_OK);
    HL_CHECK_INT_EQ(res.stop, HL_ENGINE_STOP_CONTEXT);
    HL_CHECK_INT_EQ(res.n_prompt + res.n_gen, 256);
    free(c);
    hl_engine_free(e);
}

HL_TEST(sampler_filters) {
    hl_engine *e = open_stories(1);
    if (!e) return;
    float lg[512];
    for (int i = 0; i < 512; i++) lg[i] = -1e9f;
    lg[5] = 2.0f;
    lg[7] = 1.0f;
    lg[9] = 0.0f;
    uint64_t rng = 1;
    hl_engine_sampling s = {.temperature = 1.0f, .top_p = 0.5f};
    for (int i = 0; i < 200; i++) HL_CHECK_INT_EQ(hl_engine_sample(e, lg, &s, NULL, 0, &rng), 5);
    s = (hl_engine_sampling){.temperature = 1.0f, .top_p = 1.0f, .min_p = 0.5f};
    for (int i = 0; i < 200; i++) HL_CHECK_INT_EQ(hl_engine_sample(e, lg, &s, NULL, 0, &rng), 5);
    /* min-p 0.3 keeps 5 and 7 (p7/p5 = e^-1 = 0.37) but not 9 (e^-2 = 0.14): their shares
     * follow the renormalised softmax, 0.73 and 0.27. */
    s.min_p = 0.3f;
    int counts[512] = {0};
    for (int i = 0; i < 4000; i++) counts[hl_engine_sample(e, lg, &s, NULL, 0, &rng)]++;
    HL_CHECK_INT_EQ(counts[5] + counts[7], 4000);
    HL_CHECK_NEAR(counts[7] / 4000.0, 1 / (1 + exp(1.0)), 0.03);
    /* top-k 2 at high temperature: only the best two. */
    s = (hl_engine_sampling){.temperature = 100.0f, .top_k = 2, .top_p = 1.0f};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 2000; i++) counts[hl_engine_sample(e, lg, &s, NULL, 0, &rng)]++;
    HL_CHECK_INT_EQ(counts[5] + counts[7], 2000);
    HL_CHECK(counts[7] > 800);
    /* Repetition penalty: a recent 5 (2.0 -> 1.33) loses to 7 (1.9) under greedy. */
    lg[7] = 1.9f;
    int32_t recent[] = {5, 5, 5};
    s = (hl_engine_sampling){.temperature = 0, .repeat_penalty = 1.5f};
    HL_CHECK_INT_EQ(hl_engine_sample(e, lg, &s, recent, 3, &rng), 7);
    s.repeat_penalty = 1.0f;
    HL_CHECK_INT_EQ(hl_engine_sample(e, lg, &s, recent, 3, &rng), 5);
    hl_engine_free(e);
}

/* A miniature model whose every output favours token 2 (EOS): all blocks are zero, so the
 * residual stream is the token embedding (all ones), and only output row 2 is non-zero.
 * pooling_type >= 0: written as llama.pooling_type. */
static int write_eos_model(char *path, size_t n, int pooling_type) {
    snprintf(path, n, "/tmp/hl_test_eos_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    enum { DIM = 32, FFN = 32, VOCAB = 8 };
    hl_gguf_writer w;
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_str(&w, "general.architecture", "llama");
    hl_gguf_writer_kv_u32(&w, "llama.context_length", 64);
    hl_gguf_writer_kv_u32(&w, "llama.embedding_length", DIM);
    hl_gguf_writer_kv_u32(&w, "llama.block_count", 1);
    hl_gguf_writer_kv_u32(&w, "llama.feed_forward_length", FFN);
    hl_gguf_writer_kv_u32(&w, "llama.attention.head_count", 2);
    if (pooling_type >= 0) hl_gguf_writer_kv_u32(&w, "llama.pooling_type", (uint32_t)pooling_type);
    hl_gguf_writer_kv_str(&w, "tokenizer.ggml.model", "llama");
    const char *toks[VOCAB] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", ("\xe2\x96\x81" "a"), "c"};
    int32_t types[VOCAB] = {2, 3, 3, 1, 1, 1, 1, 1};
    float scores[VOCAB] = {0, 0, 0, -1, -2, -3, -1, -4};
    hl_gguf_writer_kv_arr_str(&w, "tokenizer.ggml.tokens", toks, NULL, VOCAB);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.scores", HL_GGUF_V_FLOAT32, scores, VOCAB);
    hl_gguf_writer_kv_arr(&w, "tokenizer.ggml.token_type", HL_GGUF_V_INT32, types, VOCAB);
    static const struct { const char *name; uint64_t ne0, ne1; int fill; } t[] = {
        {"token_embd.weight", DIM, VOCAB, 1}, {"output_norm.weight", DIM, 1, 1},
        {"output.weight", DIM, VOCAB, 2},     {"blk.0.attn_norm.weight", DIM, 1, 1},
        {"blk.0.attn_q.weight", DIM, DIM, 0}, {"blk.0.attn_k.weight", DIM, DIM, 0},
        {"blk.0.attn_v.weight", DIM, DIM, 0}, {"blk.0.attn_output.weight", DIM, DIM, 0},
        {"blk.0.ffn_norm.weight", DIM, 1, 1}, {"blk.0.ffn_gate.weight", DIM, FFN, 0},
        {"blk.0.ffn_up.weight", DIM, FFN, 0}, {"blk.0.ffn_down.weight", FFN, DIM, 0},
    };
    int nt = sizeof t / sizeof *t;
    for (int i = 0; i < nt; i++) {
        uint64_t ne[2] = {t[i].ne0, t[i].ne1};
        hl_gguf_writer_tensor(&w, t[i].name, HL_GGUF_F32, t[i].ne1 > 1 ? 2 : 1, ne);
    }
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_gguf_writer_header(&w, &b);
    for (int i = 0; i < nt; i++) {
        size_t cnt = (size_t)(t[i].ne0 * t[i].ne1);
        for (size_t k = 0; k < cnt; k++) {
            float v = t[i].fill == 1 ? 1.0f : t[i].fill == 2 ? (k / t[i].ne0 == 2 ? 1.0f : 0.0f) : 0;
            hl_buf_append(&b, &v, 4);
        }
        static const char z[64];
        hl_buf_append(&b, z, hl_gguf_writer_pad(&w, cnt * 4));
    }
    int ok = write(fd, b.data, b.len) == (ssize_t)b.len;
    close(fd);
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
    return ok;
}

HL_TEST(stops_at_eos) {
    char path[64];
    HL_REQUIRE(write_eos_model(path, sizeof path, -1));
    hl_engine *e;
    char err[512];
    hl_engine_params p = {.model_path = path};
    hl_err r = hl_engine_open(&e, &p, err, sizeof err);
    if (r) HL_FAIL_("%s", err);
    HL_REQUIRE(r == HL_OK);
    collect *c = calloc(1, sizeof *c);
    hl_engine_sampling s = {.temperature = 0};
    hl_engine_request req = {.prompt = "a b", .prompt_len = 3, .add_bos = true, .max_tokens = 10,
                             .sampling = s, .on_token = on_token, .cb_ctx = c};
    hl_engine_result res;
    HL_REQUIRE(hl_engine_generate(e, &req, &res) == HL_OK);
    HL_CHECK_INT_EQ(res.stop, HL_ENGINE_STOP_EOG);
    HL_CHECK_INT_EQ(res.n_gen, 0);
    HL_CHECK_INT_EQ(c->n, 0);
    free(c);
    hl_engine_free(e);
    unlink(path);
}

/* Runs fn with stdout and stderr sent to /dev/null; returns its status. */
static int quietly(int (*fn)(int, char **), int argc, char **argv) {
    fflush(stdout);
    fflush(stderr);
    int o = dup(1), e = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
    close(null);
    return rc;
}

HL_TEST(cli_usage_and_errors) {
    char *a1[] = {"run"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_run, 1, a1), 2);
    char *a2[] = {"run", "m.gguf", "--bogus", "1"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_run, 4, a2), 2);
    char *a3[] = {"run", "m.gguf", "-p"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_run, 3, a3), 2);
    char *a4[] = {"run", "m.gguf", "-p", "x", "-n", "abc"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_run, 6, a4), 2);
    char *a5[] = {"run", "/nonexistent.gguf", "-p", "x"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_run, 4, a5), 1);
    char *g1[] = {"gguf"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_gguf, 1, g1), 2);
    char *g2[] = {"gguf", "show", "x"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_gguf, 3, g2), 2);
    char *g3[] = {"gguf", "info", "/nonexistent.gguf"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_gguf, 3, g3), 1);
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    char *g4[] = {"gguf", "info", path};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_gguf, 3, g4), 0);
    char *r1[] = {"run", path, "-p", "Once upon a time", "-n", "8", "--temp", "0", "--threads", "2"};
    HL_CHECK_INT_EQ(quietly(hl_engine_cli_run, 10, r1), 0);
}

/* ---- embeddings ---- */

/* test/engine/data/stories260K_embeddings.tsv holds llama.cpp's vectors (llama-server
 * --embeddings, mean and last pooling; how it was made is in its header). Ours pool the same
 * hidden states (after the output norm) with the same attention arithmetic, which agrees
 * with llama.cpp's logits to about 1e-5 (see hl_model.c); the vectors' components are about
 * 0.1, so agreement to 1e-3 in every component (and a cosine above 0.9999) is what the same
 * computation gives, while any change of pooling, norm or token gives differences of 1e-2
 * and more. */
HL_TEST(embeddings_match_llama_cpp) {
    char path[4096], ref[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    const char *src = getenv("HL_SRC_DIR");
    snprintf(ref, sizeof ref, "%s/test/engine/data/stories260K_embeddings.tsv", src && *src ? src : ".");
    FILE *f = fopen(ref, "r");
    HL_REQUIRE(f);
    hl_engine *e;
    char err[512];
    /* A batch of 8 makes the 22-token input run in three chunks. */
    hl_engine_params p = {.model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 8};
    HL_REQUIRE(hl_engine_open(&e, &p, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_engine_pooling_of(e), HL_ENGINE_POOL_MEAN); /* no pooling_type key */
    static char line[65536];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *pool = strtok(line, "\t"), *ntok = strtok(NULL, "\t"), *text = strtok(NULL, "\t");
        char *vec = strtok(NULL, "\t\n");
        HL_REQUIRE(pool && ntok && text && vec);
        float want[64], got[64];
        int d = 0;
        for (char *t = strtok(vec, ","); t && d < 64; t = strtok(NULL, ",")) want[d++] = strtof(t, NULL);
        HL_REQUIRE(d == 64);
        int n = 0;
        hl_engine_pooling pl = !strcmp(pool, "last") ? HL_ENGINE_POOL_LAST : HL_ENGINE_POOL_MEAN;
        HL_REQUIRE(hl_engine_embed(e, text, strlen(text), pl, got, 64, &n) == HL_OK);
        HL_CHECK_INT_EQ(n, atoi(ntok));
        double dot = 0, na = 0, nb = 0, maxd = 0;
        for (int i = 0; i < 64; i++) {
            dot += (double)got[i] * want[i];
            na += (double)got[i] * got[i];
            nb += (double)want[i] * want[i];
            double df = fabs((double)got[i] - want[i]);
            if (df > maxd) maxd = df;
        }
        double cos = dot / sqrt(na * nb);
        printf("# %s %-60s cosine %.9f max|diff| %.3g\n", pool, text, cos, maxd);
        HL_CHECK_NEAR(na, 1.0, 1e-5); /* normalised */
        HL_CHECK(cos > 0.9999);
        HL_CHECK(maxd < 1e-3);
        rows++;
    }
    fclose(f);
    HL_CHECK_INT_EQ(rows, 6);
    hl_engine_free(e);
}

HL_TEST(embedding_errors) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_engine *e;
    char err[512];
    hl_engine_params p = {.model_path = path, .n_threads = 1, .n_ctx = 16, .n_batch = 8};
    HL_REQUIRE(hl_engine_open(&e, &p, err, sizeof err) == HL_OK);
    float v[64];
    int n = 0;
    /* 16 positions: a long text does not fit. */
    static const char longer[] = "The little dog ran to the park and played with a red ball all day long.";
    HL_CHECK_INT_EQ(hl_engine_embed(e, longer, sizeof longer - 1, HL_ENGINE_POOL_MEAN, v, 64, &n), HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(hl_engine_embed(e, "Hi", 2, HL_ENGINE_POOL_MEAN, v, 32, &n), HL_ERR_INVAL); /* wrong dim */
    int32_t bad[2] = {1, 100000};
    HL_CHECK_INT_EQ(hl_engine_embed_tokens(e, bad, 2, HL_ENGINE_POOL_MEAN, v, 64), HL_ERR_INVAL);
    /* Token ids as given equal the text they encode (BOS included by hand). */
    float w[64];
    HL_REQUIRE(hl_engine_embed(e, "Lily was happy", 14, HL_ENGINE_POOL_LAST, v, 64, &n) == HL_OK);
    int32_t ids[16];
    size_t k = 0;
    HL_REQUIRE(hl_tok_encode(hl_engine_tok(e), "Lily was happy", 14, true, false, ids, 16, &k) == HL_OK);
    HL_REQUIRE(hl_engine_embed_tokens(e, ids, k, HL_ENGINE_POOL_LAST, w, 64) == HL_OK);
    HL_CHECK(memcmp(v, w, sizeof v) == 0);
    /* Special tokens in the text are recognised, as llama-server does for embeddings: it
     * counts 3 tokens for "hi" and 4 for "<s>hi" (BOS, <s>, then the two of "hi"). */
    HL_REQUIRE(hl_engine_embed(e, "hi", 2, HL_ENGINE_POOL_MEAN, v, 64, &n) == HL_OK);
    HL_CHECK_INT_EQ(n, 3);
    HL_REQUIRE(hl_engine_embed(e, "<s>hi", 5, HL_ENGINE_POOL_MEAN, v, 64, &n) == HL_OK);
    HL_CHECK_INT_EQ(n, 4);
    /* Every slot held by a sequence: none left for an embedding. */
    collect c = {0};
    hl_engine_request req = request(&c, 4, (hl_engine_sampling){.temperature = 0});
    hl_engine_seq *s;
    HL_REQUIRE(hl_engine_seq_start(e, &req, &s) == HL_OK);
    HL_CHECK_INT_EQ(hl_engine_embed(e, "Hi", 2, HL_ENGINE_POOL_MEAN, v, 64, &n), HL_ERR_AGAIN);
    hl_engine_seq_free(s);
    hl_engine_free(e);
}

/* The model's pooling comes from <arch>.pooling_type: 1 mean, 2 cls, 3 last; else mean. */
HL_TEST(pooling_from_the_model) {
    static const struct { int type; hl_engine_pooling want; } cases[] = {
        {-1, HL_ENGINE_POOL_MEAN}, {0, HL_ENGINE_POOL_MEAN}, {1, HL_ENGINE_POOL_MEAN},
        {2, HL_ENGINE_POOL_CLS},   {3, HL_ENGINE_POOL_LAST}, {4, HL_ENGINE_POOL_MEAN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[64];
        HL_REQUIRE(write_eos_model(path, sizeof path, cases[i].type));
        hl_engine *e;
        char err[512];
        hl_engine_params p = {.model_path = path};
        HL_REQUIRE(hl_engine_open(&e, &p, err, sizeof err) == HL_OK);
        HL_CHECK_INT_EQ(hl_engine_pooling_of(e), cases[i].want);
        /* Every hidden state is the same here (blocks are zero): each pooling gives the
         * normalised output norm of the all-ones embedding, 1/sqrt(32) in every component. */
        float v[32];
        int n = 0;
        HL_REQUIRE(hl_engine_embed(e, "a b", 3, HL_ENGINE_POOL_MODEL, v, 32, &n) == HL_OK);
        HL_CHECK(n >= 2);
        for (int k = 0; k < 32; k++) HL_CHECK_NEAR(v[k], 1 / sqrtf(32), 1e-6);
        hl_engine_free(e);
        unlink(path);
    }
}

/* An embedding between the steps of a generation leaves the generation as it was alone. */
HL_TEST(embedding_between_steps_leaves_generation_alone) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_engine *e;
    char err[512];
    hl_engine_params p = {.model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 8, .n_seq = 2};
    HL_REQUIRE(hl_engine_open(&e, &p, err, sizeof err) == HL_OK);
    collect *alone = calloc(2, sizeof *alone);
    HL_REQUIRE(alone);
    hl_engine_request req = request(&alone[0], 32, (hl_engine_sampling){.temperature = 0});
    hl_engine_result res;
    HL_REQUIRE(hl_engine_generate(e, &req, &res) == HL_OK);
    float before[64], during[64];
    static const char text[] = "The little dog ran to the park and played with a red ball.";
    HL_REQUIRE(hl_engine_embed(e, text, sizeof text - 1, HL_ENGINE_POOL_MEAN, before, 64, NULL) == HL_OK);
    req.cb_ctx = &alone[1];
    hl_engine_seq *s;
    HL_REQUIRE(hl_engine_seq_start(e, &req, &s) == HL_OK);
    int active = 1, steps = 0;
    while (active > 0) {
        if (steps % 5 == 2)
            HL_REQUIRE(hl_engine_embed(e, text, sizeof text - 1, HL_ENGINE_POOL_MEAN, during, 64, NULL) == HL_OK);
        HL_REQUIRE(hl_engine_step(e, &active) == HL_OK);
        HL_REQUIRE(++steps < 100);
    }
    HL_CHECK_INT_EQ(alone[1].n, alone[0].n);
    HL_CHECK(memcmp(alone[1].ids, alone[0].ids, (size_t)alone[0].n * sizeof(int32_t)) == 0);
    HL_CHECK_STR_EQ(alone[1].text, alone[0].text);
    HL_CHECK(memcmp(before, during, sizeof before) == 0);
    hl_engine_seq_free(s);
    free(alone);
    hl_engine_free(e);
}

HL_TEST_MAIN()
