/* hl_membw: measures read bandwidth from memory, the ceiling for decode speed (every weight
 * byte is read once per token). Sums a 1 GiB buffer with AVX2 loads from 1..N threads, each
 * reading its own contiguous share, best of 5 passes. The buffer is on huge pages where the
 * kernel gives them (MADV_HUGEPAGE), as the engine's repacked weights are: with 4 KiB pages
 * one thread read 7-12% less here, which made the ceiling too low.
 *
 * Usage: hl_membw [THREADS]      Output: membw threads=T gb_s=X */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES ((size_t)1 << 30)

typedef struct job {
    const char *p;
    size_t n;
    double sum;
} job;

__attribute__((target("avx2"))) static void *reader(void *arg) {
    job *j = arg;
    __m256 acc = _mm256_setzero_ps();
    for (size_t i = 0; i < j->n; i += 128) {
        acc = _mm256_add_ps(acc, _mm256_load_ps((const float *)(j->p + i)));
        acc = _mm256_add_ps(acc, _mm256_load_ps((const float *)(j->p + i + 32)));
        acc = _mm256_add_ps(acc, _mm256_load_ps((const float *)(j->p + i + 64)));
        acc = _mm256_add_ps(acc, _mm256_load_ps((const float *)(j->p + i + 96)));
    }
    float f[8];
    _mm256_storeu_ps(f, acc);
    j->sum = f[0];
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    if (nt < 1 || nt > 64) return 2;
    char *buf = aligned_alloc((size_t)2 << 20, BYTES);
    if (!buf) return 1;
    madvise(buf, BYTES, MADV_HUGEPAGE); /* advice: without it the pages are 4 KiB */
    memset(buf, 1, BYTES);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[64];
        job jobs[64];
        double t0 = now_s();
        for (int t = 0; t < nt; t++) {
            jobs[t] = (job){buf + BYTES / nt * t, BYTES / nt, 0};
            pthread_create(&th[t], NULL, reader, &jobs[t]);
        }
        for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    printf("membw threads=%d gb_s=%.2f\n", nt, BYTES / best / 1e9);
    free(buf);
    return 0;
}
