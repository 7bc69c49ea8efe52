/* hl_bench: prefill and decode speed of our engine on one GGUF, for bench/engine/bench.sh.
 * Prefill: a 128-token prompt (BOS and then ids 300, 301, ...: the same ids the llama.cpp
 * side is given) in batches of 128 (one forward pass). Decode: N greedy tokens after it.
 * One warm-up run first so that the mmapped weights are in the page cache.
 *
 * Usage: hl_bench MODEL.gguf THREADS [N_DECODE [N_PROMPT]]   (N_PROMPT 1..128, default 128)
 * Output (one line, for the script): hl prefill_tok_s=X decode_tok_s=Y weights_bytes=Z */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hl_model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: hl_bench MODEL.gguf THREADS [N_DECODE]\n");
        return 2;
    }
    int threads = atoi(argv[2]), n_dec = argc > 3 ? atoi(argv[3]) : 64;
    int n_prompt = argc > 4 ? atoi(argv[4]) : 128;
    if (n_prompt < 1 || n_prompt > 128 || n_dec < 0) return 2;
    hl_model *m;
    char err[512];
    hl_model_params p = {.n_ctx = 512, .max_batch = 128, .n_threads = threads};
    if (hl_model_load(&m, argv[1], &p, err, sizeof err) != HL_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int32_t prompt[128];
    prompt[0] = 1;
    for (int i = 1; i < 128; i++) prompt[i] = 300 + i;
    double best_pf = 1e30, best_dec = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        if (hl_model_forward(m, prompt, n_prompt, 0) != HL_OK) return 1;
        double t1 = now_s();
        uint32_t vocab = hl_model_hp(m)->vocab;
        for (int i = 0; i < n_dec; i++) {
            const float *lg = hl_model_logits(m);
            int32_t best = 0;
            for (uint32_t k = 1; k < vocab; k++)
                if (lg[k] > lg[best]) best = (int32_t)k;
            if (hl_model_forward(m, &best, 1, (uint32_t)(n_prompt + i)) != HL_OK) return 1;
        }
        double t2 = now_s();
        if (rep > 0 || n_dec == 0) {
            if (t1 - t0 < best_pf) best_pf = t1 - t0;
            if (t2 - t1 < best_dec) best_dec = t2 - t1;
        }
    }
    printf("hl prefill_tok_s=%.2f decode_tok_s=%.2f weights_bytes=%llu\n", n_prompt / best_pf,
           n_dec / best_dec, (unsigned long long)hl_model_weight_bytes(m));
    hl_model_free(m);
    return 0;
}
