/* hl_rollup: pre-aggregated ledger figures, so that `report` and the dashboard answer in
 * milliseconds from a few hundred thousand rows instead of scanning ten million.
 *
 * Table rollups (migration 7) holds one row per cell:
 *
 *     UTC hour x source x backend x model x route_reason x tenant x key_name x task_type
 *       x status x flags (shadow, eval, sensitive) x firsts
 *
 * and table rollups_day the same per UTC day (its hour: the day's first), so a report over
 * whole days reads one cell where the hourly table has up to 24: hl_store_rollup_scan takes
 * whole days from rollups_day and the hours at either end from rollups.
 *
 * with the sums report needs (attempts, tokens, cost, unpriced lines, scored/agreed lines and
 * score sum, local busy time) and two mergeable histograms: the latency of every line of the
 * cell, and the TTFT of its streamed lines that saw a first token.
 *
 * Kept by the indexer (hl_store_index) in the transaction that inserts the lines, from the
 * records the database actually inserted: a replayed journal line is a duplicate, inserts
 * nothing and adds nothing, as the cloud_spend trigger does. Migration 7 builds the rollups of
 * the rows already there, in the migration's transaction.
 *
 * Counting requests. A request's attempts can differ in source, backend, model and
 * route_reason (a retry, a fallback, an escalation); its tenant, key and task type are the
 * request's. For each subset V of those four varying dimensions, bit V of a line's `firsts`
 * is set when no earlier attempt of its request (a lower attempt number, anywhere in the
 * ledger) has the line's values on every dimension of V. A grouping whose keys include the
 * varying dimensions V counts, in each group, the lines with bit V set: a request escalated
 * from local to cloud counts once under source=local and once under source=cloud (bit
 * {source}), once in the total (bit 0: the first attempt). A filter on a varying dimension
 * (backend=x) adds it to V, in the total too: a request counts at its first attempt on x.
 * Time is never in V: a request
 * counts in the hour (day, range) of its first attempt. The raw scan (hl_store_query with
 * `same` = V) counts by the same rule, so both paths give the same figures. Lines indexed
 * before an earlier attempt of their request (a journal written out of order) count as firsts.
 *
 * Histograms: bucket 0 holds values below HL_HIST_MIN_MS; bucket b >= 1 holds
 * [MIN * G^(b-1), MIN * G^b) with G = HL_HIST_GAMMA = 1.04, and reads back as
 * MIN * G^(b-1) * 2G / (1 + G), within (G - 1) / (G + 1) < 1.97% of any value in it. A
 * percentile taken from a histogram (nearest rank, as the exact one) is the bucket that holds
 * the exact percentile, so it is within 2% of it (values below 0.01 ms read 0). An encoded
 * histogram is a list of entries (bucket << 40 | count), ascending by bucket: a SQLite blob of
 * little-endian 64-bit words, a PostgreSQL bigint[]. Merging two is adding counts per bucket. */
#ifndef HL_ROLLUP_H
#define HL_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_err.h"
#include "hl_store.h"

#define HL_HIST_GAMMA 1.04
#define HL_HIST_MIN_MS 0.01
#define HL_HIST_BUCKETS 1024            /* bucket 1023 holds everything above ~2.6e15 ms */
#define HL_HIST_REL_ERROR 0.0197        /* (G - 1) / (G + 1), rounded up */
#define HL_HIST_COUNT_BITS 40

/* The varying dimensions of a request's attempts: bits of a `same` set V. */
#define HL_ROLLUP_SAME_SOURCE 1u
#define HL_ROLLUP_SAME_BACKEND 2u
#define HL_ROLLUP_SAME_MODEL 4u
#define HL_ROLLUP_SAME_ROUTE 8u

/* Flags of a cell. */
#define HL_ROLLUP_SHADOW 1u
#define HL_ROLLUP_EVAL 2u
#define HL_ROLLUP_SENSITIVE 4u

/* The bucket of ms (>= 0; a negative or NAN value: bucket 0). */
int hl_hist_bucket(double ms);
/* What bucket b reads back as (0 for bucket 0). */
double hl_hist_value(int b);

/* One cell of the rollups as hl_store_rollup_scan hands it out; strings borrowed until the
 * callback returns, NULL for none. */
typedef struct hl_rollup_row {
    long long hour;                 /* UTC hours since 1970 (ts / 3600000) */
    const char *source, *backend, *model, *route_reason, *tenant, *key_name, *task_type;
    hl_store_status status;
    unsigned flags;                 /* HL_ROLLUP_SHADOW | _EVAL | _SENSITIVE */
    unsigned firsts;                /* bit V: the lines counted as requests by a grouping on V */
    long long attempts;             /* lines */
    long long input_tokens, output_tokens, cached_input_tokens, cache_write_tokens;
    long long plain_input_tokens;   /* sum of max(0, input - cached - cache_write): what prices */
    double cost_usd;                /* of the lines with a cost */
    long long unpriced;             /* lines with a null cost */
    long long scored, agreed;
    double score_sum;
    double latency_sum_ms;          /* busy time */
    const uint64_t *latency_hist;   /* entries, decoded (host order); every line */
    size_t latency_n;
    const uint64_t *ttft_hist;      /* streamed lines with a first token */
    size_t ttft_n;
} hl_rollup_row;

typedef hl_err (*hl_rollup_row_fn)(void *ctx, const hl_rollup_row *row);

/* Calls fn for every cell with from_hour <= hour < to_hour that passes f (NULL: none; a
 * filter's value compared with the cell's, a NULL filter value matches anything). hourly:
 * hourly cells only; else the UTC days wholly in the range come as daily cells (row->hour
 * the day's first hour), the rest as hourly ones. */
hl_err hl_store_rollup_scan(hl_store *s, long long from_hour, long long to_hour, const hl_store_filter *f,
                            bool hourly, hl_rollup_row_fn fn, void *ctx);
/* Whether the store has rollups (schema 7 or later). */
bool hl_store_has_rollups(hl_store *s);

#endif
