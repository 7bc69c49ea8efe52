/* hl_bench_seqs: what generating several sequences together buys (issue 6: "concurrent
 * requests batched together"). For each S in 1, 2, 4, 8 it loads the model with S KV slots,
 * prefills S different 16-token prompts, then times N decode steps in which every sequence
 * gets its next token in the same forward pass (hl_model_forward_batch), and prints the
 * aggregate decode tokens/s and its ratio to S = 1, measured side by side in one run. On a
 * memory-bound CPU a decode step costs about one read of the weights whatever S is, so the
 * aggregate should grow nearly with S until compute catches up.
 *
 * Usage: hl_bench_seqs MODEL.gguf THREADS [N_DECODE]   (bench/engine/seqs.sh builds and runs it) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hl_model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Aggregate decode tokens/s with s sequences, best of two runs; < 0 on error. */
static double run(const char *path, int threads, int s, int n_dec) {
    hl_model *m;
    char err[512];
    hl_model_params p = {.n_ctx = 256, .max_batch = 128, .n_threads = threads, .n_seq = (uint32_t)s};
    if (hl_model_load(&m, path, &p, err, sizeof err) != HL_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    hl_model_item items[128];
    double best = 0;
    for (int rep = 0; rep < 2; rep++) {
        int n = 0;
        for (int q = 0; q < s; q++)
            for (int i = 0; i < 16; i++)
                items[n++] = (hl_model_item){i ? 300 + 17 * q + i : 1, (uint32_t)q, (uint32_t)i, i == 15};
        if (hl_model_forward_batch(m, items, n) != HL_OK) return -1;
        double t0 = now_s();
        for (int step = 0; step < n_dec; step++) {
            for (int q = 0; q < s; q++)
                items[q] = (hl_model_item){400 + (step + q) % 100, (uint32_t)q, (uint32_t)(16 + step), true};
            if (hl_model_forward_batch(m, items, s) != HL_OK) return -1;
        }
        double tps = (double)s * n_dec / (now_s() - t0);
        if (tps > best) best = tps;
    }
    hl_model_free(m);
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: hl_bench_seqs MODEL.gguf THREADS [N_DECODE]\n");
        return 2;
    }
    int threads = atoi(argv[2]), n_dec = argc > 3 ? atoi(argv[3]) : 32;
    if (threads < 1 || n_dec < 1 || n_dec > 200) return 2;
    static const int seqs[] = {1, 2, 4, 8};
    double base = 0;
    printf("%-8s %14s %12s %10s\n", "seqs", "tokens/s", "per seq", "vs 1 seq");
    for (size_t k = 0; k < sizeof seqs / sizeof seqs[0]; k++) {
        double tps = run(argv[1], threads, seqs[k], n_dec);
        if (tps < 0) return 1;
        if (k == 0) base = tps;
        printf("%-8d %14.2f %12.2f %9.2fx\n", seqs[k], tps, tps / seqs[k], tps / base);
        fflush(stdout);
    }
    return 0;
}
