/* hl_engine_pool: see hl_engine_pool.h. */
#include "hl_engine_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

/* About a few hundred microseconds of spinning: longer than the gap between two matmuls of
 * one token, far shorter than the gap between requests. */
#define SPIN_LIMIT 20000

struct hl_engine_pool {
    int n;                   /* threads including the caller */
    pthread_t *threads;      /* n - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;         /* bumped (under mu) for each dispatch */
    atomic_int pending;      /* workers still running the current dispatch */
    atomic_bool quit;
    hl_engine_pool_fn fn;    /* current job, written before gen is bumped */
    void *ctx;
};

typedef struct worker_arg {
    hl_engine_pool *p;
    int ith;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    hl_engine_pool *p = wa.p;
    unsigned seen = 0; /* gen at creation: no dispatch can precede the pool's return */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
               !atomic_load(&p->quit) && spins < SPIN_LIMIT) {
            cpu_relax();
            spins++;
        }
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
            !atomic_load(&p->quit)) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->ctx, wa.ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

hl_err hl_engine_pool_new(hl_engine_pool **out, int n_threads) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 256) return HL_ERR_INVAL;
    hl_engine_pool *p = calloc(1, sizeof *p);
    if (!p) return HL_ERR_NOMEM;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, false);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        hl_engine_pool_free(p);
        return HL_ERR_NOMEM;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            p->n = i;
            hl_engine_pool_free(p);
            return HL_ERR_NOMEM;
        }
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker, wa) != 0) {
            free(wa);
            p->n = i; /* join the ones that started */
            hl_engine_pool_free(p);
            return HL_ERR_IO;
        }
    }
    *out = p;
    return HL_OK;
}

void hl_engine_pool_free(hl_engine_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int hl_engine_pool_size(const hl_engine_pool *p) { return p ? p->n : 1; }

void hl_engine_pool_run(hl_engine_pool *p, hl_engine_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < SPIN_LIMIT) cpu_relax();
        else sched_yield();
    }
}
