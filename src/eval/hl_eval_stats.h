/* hl_eval_stats: the arithmetic of `hybridllm eval`'s figures.
 *
 * Accuracy (or agreement) is a proportion k/n of scored items with a 95% Wilson score
 * interval (it stays inside [0, 1] and is sane at k = 0, k = n and small n, where the normal
 * approximation is not). Latency percentiles are nearest-rank: the p-th percentile of n
 * sorted samples is the ceil(p/100 * n)-th, an observed value, never an interpolation.
 * Prompt lengths fall into the brief's buckets: up to 1k, 1k-4k, 4k-8k and over 8k tokens
 * (1k = 1000). One hl_eval_acc accumulates one row of the output (a backend overall, or one
 * of its task types or buckets). */
#ifndef HL_EVAL_STATS_H
#define HL_EVAL_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_err.h"

/* Nearest-rank p-th percentile (0 < p <= 100) of v[0..n), which it sorts in place; -1 when
 * n == 0. */
double hl_eval_percentile(double *v, size_t n, double p);

enum { HL_EVAL_BUCKET_1K, HL_EVAL_BUCKET_4K, HL_EVAL_BUCKET_8K, HL_EVAL_BUCKET_MORE, HL_EVAL_N_BUCKETS };
/* The bucket of a prompt of `tokens` tokens: <= 1000, <= 4000, <= 8000, more. */
int hl_eval_bucket(long tokens);
/* "<=1k", "1k-4k", "4k-8k", ">8k". */
const char *hl_eval_bucket_name(int bucket);

/* One row of figures. Zero it to start; release with hl_eval_acc_release. */
typedef struct hl_eval_acc {
    size_t calls;        /* calls made (items not refused) */
    size_t errors;       /* calls that brought no answer */
    size_t refused;      /* items not sent: sensitive, to a cloud backend */
    size_t n;            /* answers scored */
    size_t agree;        /* of them, agreeing with the reference */
    double score_sum;
    long long input_tokens, output_tokens;
    double cost_usd;
    bool cost_unknown;   /* some cloud call had no price */
    double *lat;         /* owned: latency of each answered call, ms */
    size_t n_lat, cap_lat;
} hl_eval_acc;

/* One call's outcome. */
typedef struct hl_eval_obs {
    bool refused;        /* not sent; the rest is ignored */
    bool ok;             /* answered */
    bool scored;
    bool agree;
    double score;
    double latency_ms;   /* ok only */
    long input_tokens, output_tokens;
    double cost_usd;
    bool cost_known;
} hl_eval_obs;

/* Adds one call. HL_ERR_NOMEM (the row is unchanged). */
hl_err hl_eval_acc_add(hl_eval_acc *a, const hl_eval_obs *o);
void hl_eval_acc_release(hl_eval_acc *a);

/* The figures of a row. */
typedef struct hl_eval_summary {
    size_t calls, errors, refused, n, agree;
    double accuracy;     /* agree / n; -1 when n == 0 */
    double ci_lo, ci_hi; /* 95% Wilson interval; [0, 1] when n == 0 */
    double mean_score;   /* -1 when n == 0 */
    double p50_ms, p95_ms; /* -1 when no call answered */
    long long input_tokens, output_tokens;
    double cost_usd;
    bool cost_unknown;
} hl_eval_summary;

/* Sorts a's latencies (they stay a's). */
void hl_eval_acc_summary(hl_eval_acc *a, hl_eval_summary *s);

#endif
