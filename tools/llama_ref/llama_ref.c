/* llama_ref: makes the engine tests' reference outputs with llama.cpp itself, through its
 * public C API (llama.h), so that what the tests compare against is llama.cpp's arithmetic and
 * not a re-implementation of it. It is not part of the build (llama.cpp is not a dependency):
 * tools/llama_ref/regen.sh compiles it against a llama.cpp build made by
 * ../shared/tools/build-llama-cpp.sh and runs it.
 *
 * Everything runs on the CPU with one thread, a context of 256 positions ($LLAMA_REF_CTX:
 * another size; it picks Phi-3's long or short RoPE factors), default context parameters
 * otherwise (so flash attention is whatever llama.cpp picks on the CPU, as llama-completion).
 *
 *   llama_ref probs MODEL ID...      next-token probabilities after the prompt ids (no BOS is
 *                                    added), one "id<TAB>probability" line per vocab entry,
 *                                    softmax of the raw logits in double precision.
 *   llama_ref greedy MODEL N FILE    for each line of FILE (a prompt), tokenized with BOS as
 *                                    llama-completion does, N greedy steps; one line out:
 *                                    prompt<TAB>prompt ids<TAB>generated ids<TAB>top-2 logit
 *                                    gaps of each step (%.4f). The prompt is decoded as one
 *                                    batch, then one token per call, as a chat would.
 *   llama_ref dump MODEL STEP PROMPT  greedy as above; during call STEP (0: the prompt, k: the
 *                                    k-th single-token step) prints every F32 tensor the
 *                                    graph computes, its last row: "name n v0 v1 ..." (every
 *                                    row, "name@row ...", with $LLAMA_REF_ALL_ROWS set). For
 *                                    finding where two engines part. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int dump_armed;

static bool dump_cb(struct ggml_tensor *t, bool ask, void *ud) {
    (void)ud;
    if (ask) return dump_armed;
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) return true;
    int64_t n = t->ne[0], rows = ggml_nrows(t);
    for (int64_t r = getenv("LLAMA_REF_ALL_ROWS") ? 0 : rows - 1; r < rows; r++) {
        const float *v = (const float *)t->data + r * n;
        printf("%s", t->name);
        if (r < rows - 1) printf("@%lld", (long long)r);
        printf(" %lld", (long long)n);
        for (int64_t i = 0; i < n; i++) printf(" %.9g", v[i]);
        printf("\n");
    }
    return true;
}

static struct llama_context *open_ctx(struct llama_model *model) {
    struct llama_context_params cp = llama_context_default_params();
    cp.cb_eval = dump_cb;
    const char *nc = getenv("LLAMA_REF_CTX");
    cp.n_ctx = nc && atoi(nc) > 0 ? (uint32_t)atoi(nc) : 256;
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    cp.no_perf = true;
    return llama_init_from_model(model, cp);
}

static bool no_progress(float p, void *ud) {
    (void)p, (void)ud;
    return true;
}

static int top2(const float *lg, int n, float *gap) {
    int b = 0, s = -1;
    for (int i = 1; i < n; i++) {
        if (lg[i] > lg[b]) {
            s = b;
            b = i;
        } else if (s < 0 || lg[i] > lg[s]) {
            s = i;
        }
    }
    *gap = s >= 0 ? lg[b] - lg[s] : INFINITY;
    return b;
}

static int cmd_probs(struct llama_model *model, int argc, char **argv) {
    int n = argc;
    llama_token *ids = calloc((size_t)n + 1, sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = atoi(argv[i]);
    struct llama_context *ctx = open_ctx(model);
    if (!ctx || llama_decode(ctx, llama_batch_get_one(ids, n)) != 0) {
        fputs("llama_ref: decode failed\n", stderr);
        return 1;
    }
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    const float *lg = llama_get_logits_ith(ctx, -1);
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < nv; i++) mx = fmax(mx, lg[i]);
    for (int i = 0; i < nv; i++) sum += exp((double)lg[i] - mx);
    for (int i = 0; i < nv; i++) printf("%d\t%.17g\n", i, exp((double)lg[i] - mx) / sum);
    llama_free(ctx);
    free(ids);
    return 0;
}

static int cmd_dump(struct llama_model *model, int step, const char *prompt) {
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int nv = llama_vocab_n_tokens(vocab);
    llama_token ids[512], tok;
    int n = llama_tokenize(vocab, prompt, (int)strlen(prompt), ids, 512, true, false);
    struct llama_context *ctx = open_ctx(model);
    if (n <= 0 || !ctx) return 1;
    dump_armed = step == 0;
    int rc = llama_decode(ctx, llama_batch_get_one(ids, n));
    for (int s = 1; s <= step && rc == 0; s++) {
        float gap;
        tok = top2(llama_get_logits_ith(ctx, -1), nv, &gap);
        dump_armed = s == step;
        printf("# step %d token %d\n", s, tok);
        rc = llama_decode(ctx, llama_batch_get_one(&tok, 1));
    }
    llama_free(ctx);
    return rc != 0;
}

static int cmd_greedy(struct llama_model *model, int steps, const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int nv = llama_vocab_n_tokens(vocab);
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        llama_token ids[512];
        int n = llama_tokenize(vocab, line, (int)strlen(line), ids, 512, true, false);
        if (n <= 0 || n + steps > 256) {
            fprintf(stderr, "llama_ref: cannot tokenize %s\n", line);
            return 1;
        }
        struct llama_context *ctx = open_ctx(model);
        printf("%s\t", line);
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\t");
        float gaps[256];
        llama_token tok;
        int rc = llama_decode(ctx, llama_batch_get_one(ids, n));
        for (int s = 0; s < steps && rc == 0; s++) {
            tok = top2(llama_get_logits_ith(ctx, -1), nv, &gaps[s]);
            printf(s ? " %d" : "%d", tok);
            rc = llama_decode(ctx, llama_batch_get_one(&tok, 1));
        }
        if (rc != 0) {
            fputs("llama_ref: decode failed\n", stderr);
            return 1;
        }
        printf("\t");
        for (int s = 0; s < steps; s++) printf(s ? " %.4f" : "%.4f", gaps[s]);
        printf("\n");
        llama_free(ctx);
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "probs") && strcmp(argv[1], "greedy") && strcmp(argv[1], "dump")) ||
        (strcmp(argv[1], "probs") && argc != 5)) {
        fputs("usage: llama_ref probs MODEL ID...\n"
              "       llama_ref greedy MODEL STEPS PROMPTS.txt\n"
              "       llama_ref dump MODEL STEP PROMPT\n", stderr);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;
    struct llama_model *model = llama_model_load_from_file(argv[2], mp);
    if (!model) {
        fprintf(stderr, "llama_ref: cannot load %s\n", argv[2]);
        return 1;
    }
    int rc = !strcmp(argv[1], "probs")    ? cmd_probs(model, argc - 3, argv + 3)
             : !strcmp(argv[1], "greedy") ? cmd_greedy(model, atoi(argv[3]), argv[4])
                                          : cmd_dump(model, atoi(argv[3]), argv[4]);
    llama_model_free(model);
    llama_backend_free();
    return rc;
}
