/* hl_budget: cloud spend caps (config `budgets`), per calendar month or day (UTC), global or
 * per tenant, from the ledger's running totals.
 *
 * At start the totals of the current periods are rebuilt from the ledger file, read backwards
 * from its end until the lines are older than the oldest period in use, so a restart neither
 * forgets spend nor reads a month of history it does not need. Afterwards every cloud attempt's
 * cost is added as its ledger line is written.
 *
 * Under concurrency a cap holds to within the requests already in flight: the check happens
 * when a request is routed and its cost is added when it completes, so a burst can overshoot by
 * at most the cost of one request per in-flight slot. That is the documented bound.
 *
 * Several gateways sharing a PostgreSQL store share their spend through it: the database keeps
 * the running cloud spend per tenant and day, updated in the same transaction that inserts the
 * records (hl_store.h), and each gateway re-reads it after every index pass (sync_begin, then
 * sync_add per tenant, then sync_end). Between syncs a gateway counts its own new spend on top
 * of the database's figure, so its view is never below what it spent itself; what other
 * gateways spent reaches it within one index interval. The bound above then holds with "in
 * flight" meaning in flight on any instance, plus one index interval of their spend.
 *
 * Thread-safe: one mutex around tiny critical sections. */
#ifndef HL_BUDGET_H
#define HL_BUDGET_H

#include <stddef.h>
#include <time.h>
#include "hl_config.h"

typedef struct hl_budgets hl_budgets;

/* NULL *out when cfg has no budgets (every call below accepts NULL). */
hl_err hl_budgets_new(hl_budgets **out, const hl_config *cfg);
void hl_budgets_free(hl_budgets *b);
/* Adds the cloud spend of the current periods found in the ledger at path (absent: nothing).
 * *lines is the number of ledger lines read. */
hl_err hl_budgets_load_ledger(hl_budgets *b, const char *path, time_t now, size_t *lines);
/* The first budget that tenant (NULL: none) has reached at time now, or NULL; *spent and *limit
 * describe it. */
const hl_budget_cfg *hl_budgets_exceeded(hl_budgets *b, const char *tenant, time_t now,
                                         double *spent, double *limit);
/* Records a cloud cost. */
void hl_budgets_add(hl_budgets *b, const char *tenant, double cost_usd, time_t when);
/* Spend so far in budget i's current period for tenant (global budgets ignore tenant). */
double hl_budgets_spent(hl_budgets *b, size_t i, const char *tenant, time_t now);

/* Sync with a shared store, from the store's indexer thread. sync_begin is called before an
 * index pass reads the journal: what was spent until then is in the lines that pass indexes.
 * After the pass committed, sync_add is called once per tenant (NULL or "": none) with its
 * cloud spend in the current UTC day and month as the database holds it, then sync_end makes
 * that the new base. A sync abandoned after sync_begin loses nothing: the next one carries it. */
void hl_budgets_sync_begin(hl_budgets *b, time_t now);
void hl_budgets_sync_add(hl_budgets *b, const char *tenant, double day_usd, double month_usd);
void hl_budgets_sync_end(hl_budgets *b, time_t now);

#endif
