/* hl_report: what `hybridllm report` computes from a store, and how it prints it.
 *
 * One pass over the records in a time range, grouped by one dimension, gives per group:
 *
 *   requests          distinct request ids with an attempt in the group (a request whose
 *                     local attempt escalated to the cloud counts once under source=local
 *                     and once under source=cloud, and once in the total)
 *   attempts          ledger lines (retries, fallbacks and escalations each count)
 *   input/output tokens, cost_usd (lines with a null cost are counted in `unpriced`)
 *   cost_per_inference  cost_usd / requests: what one answered request cost, its retries
 *                     and escalations included
 *   latency p50/p95/p99  over the attempts that produced an answer (status ok or escalated);
 *                     failures are in error_rate instead
 *   ttft_p50          over those attempts that streamed and saw a first token
 *   error_rate        attempts with status "error" / attempts
 *   escalation_rate   attempts with status "escalated" / requests
 *   cloud_equiv_usd   what the local attempts that answered (status ok) would have cost at
 *                     the given cloud price, their token counts unchanged
 *   savings_usd       cloud_equiv_usd minus the cost of every local attempt (answered or
 *                     not: an escalated or failed local attempt saved nothing)
 *
 * Shadow attempts (shadow: true) answered no client: they are left out of every figure above
 * but cost_usd, which is the whole spend (shadows included, as budgets count it);
 * cost_per_inference is the served spend only ((cost_usd - shadow_usd) / requests).
 *   shadow            shadow attempts in the group
 *   shadow_usd        their cost
 * Quality, over the scored lines of the group (score set: shadow comparisons, and eval lines
 * when they are included):
 *   scored            the sample count n
 *   agreement         agreeing lines / n (agree: the score reached the comparison's threshold)
 *   agreement_lo/hi   its 95% Wilson score interval (hl_report_wilson)
 *   mean_score        the mean score
 * NAN when n is 0.
 *
 * Lines written by `hybridllm eval` (eval_run set) are not gateway traffic: they are skipped
 * (counted in eval_skipped) unless include_eval, which counts them like any other line.
 *
 * Percentiles are exact, by the nearest-rank rule: the p-th percentile of n values is the
 * ceil(p*n/100)-th smallest. They are selected (quickselect) from every value in the group,
 * which costs 8 bytes per attempt twice over (group and total); HL_REPORT_MAX_ROWS bounds it.
 *
 * Ownership: hl_report_build() returns a report the caller frees with hl_report_free(). */
#ifndef HL_REPORT_H
#define HL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_err.h"
#include "hl_store.h"

#define HL_REPORT_MAX_ROWS 200000000ULL /* attempts in one report (3.2 GB of latencies) */
#define HL_REPORT_MAX_GROUPS 100000     /* distinct group values */

typedef enum hl_report_format { HL_REPORT_TABLE, HL_REPORT_JSON, HL_REPORT_CSV } hl_report_format;

typedef struct hl_report_opts {
    hl_store_group group_by;     /* HL_STORE_GROUP_NONE: the total only */
    long long from_ms, to_ms;    /* from <= timestamp < to; HL_STORE_TIME_MIN/MAX: unbounded */
    const hl_price *cloud_price; /* borrowed during hl_report_build (copied into the report);
                                    NULL: no savings figures */
    bool include_eval;           /* count eval lines (eval_run set) too */
    const hl_store_filter *filter; /* borrowed during hl_report_build; NULL: every record */
} hl_report_opts;

typedef struct hl_report_row {
    char *group;                 /* owned by the report; NULL: records without a value (no
                                    tenant...) and the total */
    unsigned long long requests, attempts, answered, errors, escalations, unpriced;
    long long input_tokens, output_tokens, cached_input_tokens;
    double cost_usd, cost_per_inference;  /* cost_per_inference: NAN when requests == 0 */
    double latency_p50_ms, latency_p95_ms, latency_p99_ms; /* NAN: nothing answered */
    double ttft_p50_ms;          /* NAN: no streamed answer */
    double error_rate, escalation_rate;
    double local_cost_usd;
    double cloud_equiv_usd, savings_usd; /* NAN without a cloud price */
    unsigned long long shadow;   /* shadow attempts */
    double shadow_usd;
    unsigned long long scored, agreed;
    double score_sum;
    double agreement, agreement_lo, agreement_hi, mean_score; /* NAN when scored == 0 */
} hl_report_row;

typedef struct hl_report {
    hl_store_group group_by;
    long long from_ms, to_ms;
    bool has_cloud_price;
    hl_price cloud_price;        /* .model points at cloud_model */
    char cloud_model[128];
    hl_report_row *rows;         /* sorted by group, the NULL group last */
    size_t n_rows;
    hl_report_row total;
    bool include_eval;
    unsigned long long eval_skipped; /* eval lines in the range left out (0 with include_eval) */
} hl_report;

/* Builds the report from s. On error *out is NULL and errbuf says why. */
hl_err hl_report_build(hl_store *s, const hl_report_opts *o, hl_report **out, char *errbuf,
                       size_t errbuf_len);
void hl_report_free(hl_report *r);
/* Appends the report to out in format f. */
hl_err hl_report_render(const hl_report *r, hl_report_format f, hl_buf *out);
/* The 95% Wilson score interval of k successes in n trials, in [0, 1]; NAN, NAN when n is 0.
 * Unlike the normal approximation it stays inside [0, 1] and keeps its coverage near 0 and 1
 * and on small n, where agreement rates live. */
void hl_report_wilson(unsigned long long k, unsigned long long n, double *lo, double *hi);
/* Parses "table", "json" or "csv". HL_ERR_INVAL otherwise. */
hl_err hl_report_format_parse(const char *name, hl_report_format *out);

#endif
