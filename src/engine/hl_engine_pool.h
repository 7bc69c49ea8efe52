/* hl_engine_pool: a small fixed pool of threads that run one function in parallel.
 *
 * The engine's matmuls split their rows over the pool many times per token (about seven
 * dispatches per layer), so a dispatch must cost microseconds: workers spin briefly on an
 * atomic generation counter before sleeping on a condition variable, and the caller takes
 * part as thread 0. One dispatch runs at a time; hl_engine_pool_run() is not reentrant and
 * must only be called from one thread at a time (the model that owns the pool).
 *
 * Ownership: hl_engine_pool_new() returns a pool the caller frees with
 * hl_engine_pool_free(), which joins the threads. */
#ifndef HL_ENGINE_POOL_H
#define HL_ENGINE_POOL_H

#include "hl_err.h"

typedef struct hl_engine_pool hl_engine_pool;

/* fn(ctx, ith, nth) runs once for each ith in [0, nth). */
typedef void (*hl_engine_pool_fn)(void *ctx, int ith, int nth);

/* n_threads counts the caller: 1 starts no thread. */
hl_err hl_engine_pool_new(hl_engine_pool **out, int n_threads);
void hl_engine_pool_free(hl_engine_pool *p);
int hl_engine_pool_size(const hl_engine_pool *p);
/* Runs fn on every thread and returns when all have finished. */
void hl_engine_pool_run(hl_engine_pool *p, hl_engine_pool_fn fn, void *ctx);

#endif
