/* hl_keybudget: the day and month cloud budgets of virtual keys (hl_keys.h), which a burst
 * cannot pass.
 *
 * Why not hl_budget: those caps check at routing and add the cost at completion, so a burst
 * overshoots by one request per slot in flight. Here a request reserves its worst case at
 * admission (its prompt's estimated tokens plus max_tokens, or a cap, at the chosen
 * backend's prices) and is refused when spent + reserved + that would pass the budget; its
 * actual cost is added as each attempt is recorded and the reservation is released when the
 * request ends (answered, failed or cancelled). Spend can then pass a budget only by what a
 * request costs beyond its reservation (retries, escalations), never by a burst.
 *
 * Totals per key are kept as hl_budget keeps them: base (the store's figure at the last
 * sync, from the ledger lines indexed) + transit (added here before the pass that is now
 * syncing began) + local (added since). The store's figures are read after every index pass
 * (hl_store_key_spend). On PostgreSQL the base is the fleet's, so other gateways' spend
 * arrives within one index interval; their reservations are not seen (a fleet can pass a
 * budget by what is in flight on the other instances).
 *
 * Rate limits live here too (one table per key, one per tenant of the config's tenants:):
 * token buckets for requests and tokens per minute. A request passes when both its key's and
 * its tenant's buckets admit it, and takes from both. Limits are the fleet's: each instance's
 * buckets hold limit / live instances (hl_key_budgets_set_instances, from the heartbeats in
 * the store), at least 1. A bucket holds a minute's allowance and refills continuously;
 * a request takes one request and its prompt's estimated tokens at admission, and its output
 * tokens are taken when it completes (the bucket may go below zero: the next requests wait).
 *
 * Thread-safe: one mutex around small critical sections. */
#ifndef HL_KEYBUDGET_H
#define HL_KEYBUDGET_H

#include <stdbool.h>
#include "hl_err.h"
#include "hl_keys.h"
#include "hl_config.h"
#include "hl_store.h"

typedef struct hl_key_budgets hl_key_budgets;

/* NULL when out of memory. */
hl_key_budgets *hl_key_budgets_new(void);
void hl_key_budgets_free(hl_key_budgets *kb);
/* Admission: when key has a budget, reserves est_usd against it and returns true, or returns
 * false when spent + reserved + est_usd would pass one of them (*spent: spent + reserved,
 * *limit, *month: which). A key without budgets (or kb NULL) is always admitted. */
bool hl_key_budgets_reserve(hl_key_budgets *kb, const hl_key_info *key, double est_usd, long long now_ms,
                            double *spent, double *limit, bool *month);
/* Releases a reservation made by hl_key_budgets_reserve. */
void hl_key_budgets_release(hl_key_budgets *kb, long long key_id, double est_usd);
/* Adds an attempt's actual cloud cost. */
void hl_key_budgets_add(hl_key_budgets *kb, long long key_id, double cost_usd, long long now_ms);
/* Spend of key_id in the current day and month (reservations excluded). */
void hl_key_budgets_spent(hl_key_budgets *kb, long long key_id, long long now_ms, double *day, double *month);
/* What the rate limits say about a request (for the x-ratelimit-* headers). */
typedef struct hl_key_rate {
    long long limit_requests, remaining_requests; /* limit 0: no request limit */
    long long limit_tokens, remaining_tokens;     /* limit 0: no token limit */
    double reset_requests_s, reset_tokens_s;      /* until the bucket is full again */
    double retry_after_s;                         /* refused: until it would be admitted */
} hl_key_rate;

/* Admission by the key's rpm and tpm: true (and the request's share taken) or false with
 * out->retry_after_s set. out is always filled. A key without limits is always admitted. */
bool hl_key_budgets_rate(hl_key_budgets *kb, const hl_key_info *key, long prompt_tokens, long long now_ms,
                         hl_key_rate *out);
/* Takes tokens (a completed request's output) from the key's token bucket. */
void hl_key_budgets_rate_charge(hl_key_budgets *kb, const hl_key_info *key, long tokens, long long now_ms);

/* Replaces the tenants' limits (copied; buckets of tenants kept by name survive).
 * HL_ERR_NOMEM leaves the old ones. */
hl_err hl_key_budgets_set_tenants(hl_key_budgets *kb, const hl_tenant_cfg *v, size_t n);
/* How many live instances share the limits (< 1 counts as 1). */
void hl_key_budgets_set_instances(hl_key_budgets *kb, int live);

/* Sync with the store, from the indexer thread: begin before a pass reads the journal, then
 * after it committed reload (reads every key's spend through conn and makes it the base). */
void hl_key_budgets_sync_begin(hl_key_budgets *kb);
hl_err hl_key_budgets_sync(hl_key_budgets *kb, hl_store *conn, long long now_ms);

#endif
