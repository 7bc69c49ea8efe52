/* hl_metrics: Prometheus metrics for GET /metrics.
 *
 * Each event-loop worker owns one hl_metrics and is its only writer, so recording is a few
 * relaxed atomic adds with no lock and no sharing of cache lines between workers. A scrape sums
 * the workers' counters (relaxed loads; a scrape may see a request half-counted, never a torn
 * number) and adds gauges read from the backends, budgets and ledger.
 *
 * Series: hybridllm_attempts_total{backend,source,status}, hybridllm_tokens_total{backend,
 * direction}, hybridllm_cost_usd_total{backend}, hybridllm_attempt_duration_seconds and
 * hybridllm_ttft_seconds histograms{backend}, hybridllm_requests_in_flight,
 * hybridllm_backend_ready{backend}, hybridllm_backend_breaker_state{backend} (0 closed, 1 open,
 * 2 half-open), hybridllm_budget_spent_usd / _limit_usd{budget}, hybridllm_ledger_records_total,
 * hybridllm_ledger_write_errors_total, and for the SQLite index of the ledger
 * hybridllm_ledger_index_lag_bytes (journal bytes not indexed yet: the only queue there is, since
 * every journal line is written before its response ends) and
 * hybridllm_ledger_index_errors_total; hybridllm_shadow_total{result} (shadow comparisons). */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stddef.h>
#include "hl_backend.h"
#include "hl_budget.h"
#include "hl_buf.h"
#include "hl_ledger.h"
#include "hl_store.h"

typedef struct hl_metrics hl_metrics;

/* Attempt outcomes, as the ledger's status field names them. */
typedef enum hl_metrics_status {
    HL_MS_OK, HL_MS_ERROR, HL_MS_CANCELLED, HL_MS_ESCALATED, HL_MS_COUNT
} hl_metrics_status;

/* For a worker; caller frees with hl_metrics_free. NULL on allocation failure. */
hl_metrics *hl_metrics_new(size_t n_backends);
void hl_metrics_free(hl_metrics *m);
hl_metrics_status hl_metrics_status_of(const char *ledger_status);
void hl_metrics_attempt(hl_metrics *m, size_t backend, hl_metrics_status st, long input_tokens,
                        long output_tokens, double cost_usd, double latency_ms, double ttft_ms);
void hl_metrics_in_flight(hl_metrics *m, int delta);
/* Shadow comparisons (hl_shadow.h): one more of result, an hl_shadow_result; the names, in its
 * order, label hybridllm_shadow_total{result}. */
#define HL_METRICS_SHADOW_RESULTS 6
extern const char *const hl_metrics_shadow_names[HL_METRICS_SHADOW_RESULTS];
void hl_metrics_shadow(hl_metrics *m, int result);
/* Renders the text exposition format (version 0.0.4) for all workers' metrics. */
hl_err hl_metrics_render(hl_metrics *const *workers, size_t n_workers, hl_backends *bs,
                         const hl_config *cfg, hl_budgets *budgets, hl_ledger *ledger,
                         hl_store *store, hl_buf *out);

#endif
