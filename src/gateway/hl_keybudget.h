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
 * Budgets belong to a key (budget_day_usd, budget_month_usd) and to its tenant (tenants: in
 * the config, budget_day_usd / budget_month_usd): a request reserves against every one that
 * has a budget, both or neither, and is refused when either cannot hold it.
 *
 * Totals per key and tenant are kept as hl_budget keeps them: base (the store's figure at the
 * last sync, from the ledger lines indexed: a key's cloud records, a tenant's cloud_spend) +
 * transit (added here before the pass that is now syncing began) + local (added since).
 *
 * A fleet (hl_key_budgets_set_fleet, a shared PostgreSQL store) adds leases (hl_store.h,
 * budget leases): a request is admitted only when this instance's lease of the key (and of
 * the tenant) holds it: reserved + unsettled + est <= lease, where unsettled is the cost
 * recorded here whose ledger lines the indexer has not inserted yet (they settle the lease in
 * the insert's transaction). When it does not, admission answers WAIT and asks the store
 * thread (the indexer's, through the poke function) for the missing budget plus headroom; the
 * caller asks again a few milliseconds later, and gets ADMIT, WAIT, or REFUSE once the store
 * said the fleet's budget cannot hold it. The lease is re-read after each pass, and what it
 * holds beyond the reservations, the unsettled cost and one interval's reservations goes back
 * to the store. So no event loop waits on the database, and across the fleet spend + leases
 * never pass a budget: spend passes it only by what a request costs beyond its reservation.
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

/* How often a request waiting for its fleet lease asks again, and how long before it is
 * refused (503: the store thread did not answer). */
#define HL_KB_POLL_MS 2
#define HL_KB_WAIT_MS 5000

/* The outcome of admission. */
typedef enum hl_kb_verdict { HL_KB_ADMIT, HL_KB_REFUSE, HL_KB_WAIT } hl_kb_verdict;

/* Why a request was refused. */
typedef struct hl_kb_refusal {
    double spent, limit;       /* spent + reserved (or leased), the budget */
    bool month;                /* the monthly budget (else the daily one) */
    bool tenant;               /* the tenant's budget (else the key's) */
} hl_kb_refusal;

/* A request's place in the line for budget from the store (fleet): zeroed before its first
 * admission, kept between its retries. */
typedef struct hl_kb_ticket {
    unsigned long long round[2]; /* key, tenant: the store round that serves its ask; 0: none */
} hl_kb_ticket;

/* NULL when out of memory. */
hl_key_budgets *hl_key_budgets_new(void);
void hl_key_budgets_free(hl_key_budgets *kb);
/* Admission: reserves est_usd against the budgets of key and of its tenant that exist
 * (ADMIT), or REFUSE (*why filled) when spent + reserved + est_usd would pass one of them,
 * or (fleet only) WAIT: the lease cannot hold it yet; ask again later with the same ticket.
 * A key without budgets, of a tenant without any (or kb NULL): always ADMIT. */
hl_kb_verdict hl_key_budgets_admit(hl_key_budgets *kb, const hl_key_info *key, double est_usd, long long now_ms,
                                   hl_kb_ticket *ticket, hl_kb_refusal *why);
/* Releases a reservation made by an admission (key as given to it). */
void hl_key_budgets_release(hl_key_budgets *kb, const hl_key_info *key, double est_usd);
/* Adds an attempt's actual cloud cost to the key and its tenant (after its ledger line was
 * written: the indexer must find the line of every cost counted here). */
void hl_key_budgets_add(hl_key_budgets *kb, const hl_key_info *key, double cost_usd, long long now_ms);
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

/* Replaces the tenants' limits and budgets (copied; buckets, totals and leases of tenants
 * kept by name survive).
 * HL_ERR_NOMEM leaves the old ones. */
hl_err hl_key_budgets_set_tenants(hl_key_budgets *kb, const hl_tenant_cfg *v, size_t n);
/* How many live instances share the limits (< 1 counts as 1). */
void hl_key_budgets_set_instances(hl_key_budgets *kb, int live);

/* Sync with the store, from the indexer thread: begin before a pass reads the journal, then
 * after it committed reload (reads every key's and tenant's spend through conn and makes it
 * the base; in a fleet also this instance's leases, and gives back what they hold beyond
 * need). */
void hl_key_budgets_sync_begin(hl_key_budgets *kb);
hl_err hl_key_budgets_sync(hl_key_budgets *kb, hl_store *conn, long long now_ms);

/* Fleet mode: leases through the store (conn of the store thread: hl_store_set_instance done).
 * poke(ctx) is called (outside any lock, from an event loop) when admission needs budget: it
 * must make the store thread call hl_key_budgets_lease_work soon (hl_store_indexer_poke).
 * live_window_ms: instances seen within it are live (their leases count). */
void hl_key_budgets_set_fleet(hl_key_budgets *kb, void (*poke)(void *ctx), void *ctx, long long live_window_ms);
/* On the store thread: asks the store for the budget that admissions are waiting for. */
void hl_key_budgets_lease_work(hl_key_budgets *kb, hl_store *conn, long long now_ms);

/* The arithmetic of a lease, for tests: whether a reservation of est fits a lease that
 * already holds reserved and unsettled (a tiny tolerance for rounding). */
bool hl_key_budgets_lease_fits(double lease, double reserved, double unsettled, double est);
/* What a lease of amount gives back after a pass: what it holds beyond reserved + unsettled
 * + keep (one interval's reservations), or 0. */
double hl_key_budgets_lease_excess(double lease, double reserved, double unsettled, double keep);

#endif
