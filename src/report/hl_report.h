/* hl_report: what `hybridllm report` computes from a store, and how it prints it.
 *
 * The records in a time range that pass the filters (tenant, key, backend, model, task type,
 * source), grouped by up to HL_REPORT_MAX_KEYS keys (day,source), give per group:
 *
 *   requests          request ids counted by the rule of hl_rollup.h ("Counting requests"):
 *                     a request counts in the group of its first attempt (its hour, day,
 *                     range included), and again in each group of a source, backend, model
 *                     or route reason it moved to (a request escalated from local to the
 *                     cloud counts once under source=local, once under source=cloud, once in
 *                     the total)
 *   attempts          ledger lines (retries, fallbacks and escalations each count)
 *   input/output tokens, cost_usd (lines with a null cost are counted in `unpriced`)
 *   cost_per_inference  served cost / requests: what one answered request cost, its retries
 *                     and escalations included
 *   latency p50/p95/p99  over the attempts that produced an answer (status ok or escalated);
 *                     failures are in error_rate instead
 *   ttft_p50          over those attempts that streamed and saw a first token
 *   error_rate        attempts with status "error" / attempts
 *   escalation_rate   attempts with status "escalated" / requests
 *
 * Savings against all-cloud (with a cloud price):
 *   sensitive         requests marked sensitive: they could never have gone to the cloud, so
 *                     they are left out of both sides of the comparison
 *   cloud_equiv_usd   "all-cloud $": the whole workload at the cloud price: every answered
 *                     attempt (status ok) of a request not sensitive, local or cloud, its
 *                     token counts unchanged (plain input, cache reads and cache writes at
 *                     their own rates)
 *   compared_usd      "hybrid $": what those requests did cost: every attempt of a request
 *                     not sensitive (escalated, failed and shadow attempts included)
 *   hardware_usd      the local hardware, amortized: hardware_usd / amortize_months per 30
 *                     days, over the report's period (the range; unbounded: from the start of
 *                     the first UTC day with records to the end of the last), when the
 *                     period has local attempts; groups get
 *                     shares in proportion to their local busy time (latency of local lines)
 *                     in the whole range, filters or not. The ledger's local cost_usd is the
 *                     busy-time running cost, so power is not added again.
 *   savings_usd       cloud_equiv_usd - compared_usd - hardware_usd
 *
 * Shadow attempts (shadow: true) answered no client: they are left out of every figure above
 * but cost_usd and compared_usd, which count all spend (shadows included, as budgets count
 * it); cost_per_inference is the served spend only ((cost_usd - shadow_usd) / requests).
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
 * Two ways to compute it, with the same figures:
 *   rollups (default, when the store has them, the range is whole UTC hours or unbounded, and
 *            no key needs the rows: prompt_length): the pre-aggregated cells (hl_rollup.h),
 *            milliseconds on millions of lines. Counts and tokens are those of the rows;
 *            costs too (summed in another order: equal to about 1e-12 relative);
 *            percentiles come from log-scale histograms, within 2% of the exact ones.
 *   exact (opts.exact, or when the rollups cannot answer): one scan of the rows; percentiles
 *            exact, by the nearest-rank rule (the p-th percentile of n values is the
 *            ceil(p*n/100)-th smallest), selected (quickselect) from every value in the
 *            group, which costs 8 bytes per attempt twice over; HL_REPORT_MAX_ROWS bounds it.
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
#define HL_REPORT_MAX_KEYS 4            /* keys of one --group-by */

typedef enum hl_report_format { HL_REPORT_TABLE, HL_REPORT_JSON, HL_REPORT_CSV } hl_report_format;

typedef struct hl_report_opts {
    hl_store_group group_by;     /* the first key; HL_STORE_GROUP_NONE: the total only */
    hl_store_group then_by[HL_REPORT_MAX_KEYS - 1]; /* further keys, HL_STORE_GROUP_NONE ends them */
    long long from_ms, to_ms;    /* from <= timestamp < to; HL_STORE_TIME_MIN/MAX: unbounded */
    const hl_price *cloud_price; /* borrowed during hl_report_build (copied into the report);
                                    NULL: no savings figures */
    bool include_eval;           /* count eval lines (eval_run set) too */
    hl_store_filter filter;      /* strings borrowed during hl_report_build; NULL: any */
    bool exact;                  /* from the rows (exact percentiles), never from rollups */
    double hardware_usd;         /* amortized in savings; 0: none (hl_report_opts_init: advise's) */
    double amortize_months;      /* > 0 when hardware_usd > 0 */
} hl_report_opts;

/* Everything unbounded, no key, no price, hardware as `advise` has it ($550 over 36 months). */
void hl_report_opts_init(hl_report_opts *o);
/* Parses a --group-by list "day,source" (at most HL_REPORT_MAX_KEYS names, no repeats;
 * "none" alone: no key) into o's group_by and then_by. HL_ERR_INVAL otherwise. */
hl_err hl_report_parse_group_by(const char *list, hl_report_opts *o);

typedef struct hl_report_row {
    char *group;                 /* owned by the report; NULL: records without a value (no
                                    tenant...) and the total. With several keys: the values
                                    joined by ", " ("(none)" for a missing one) */
    char *values[HL_REPORT_MAX_KEYS]; /* owned: each key's value; NULL: none (and the total) */
    unsigned long long requests, attempts, answered, errors, escalations, unpriced;
    long long input_tokens, output_tokens, cached_input_tokens;
    double cost_usd, cost_per_inference;  /* cost_per_inference: NAN when requests == 0 */
    double latency_p50_ms, latency_p95_ms, latency_p99_ms; /* NAN: nothing answered */
    double ttft_p50_ms;          /* NAN: no streamed answer */
    double error_rate, escalation_rate;
    double local_cost_usd;
    unsigned long long sensitive; /* requests marked sensitive (out of the savings) */
    double compared_usd;          /* the spend of the requests not sensitive */
    double hardware_usd;          /* amortized hardware charged to the group */
    double cloud_equiv_usd, savings_usd; /* NAN without a cloud price (so are the two above) */
    unsigned long long shadow;   /* shadow attempts */
    double shadow_usd;
    unsigned long long scored, agreed;
    double score_sum;
    double agreement, agreement_lo, agreement_hi, mean_score; /* NAN when scored == 0 */
} hl_report_row;

typedef struct hl_report {
    hl_store_group group_by;     /* the first key */
    hl_store_group keys[HL_REPORT_MAX_KEYS];
    size_t n_keys;
    bool from_rollups;           /* computed from the rollups (else from the rows) */
    const char *why_rows;        /* static: why the rows were scanned; NULL with rollups */
    double hardware_usd, amortize_months; /* the opts' */
    double period_hours;         /* what hardware is amortized over; 0: no records */
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
