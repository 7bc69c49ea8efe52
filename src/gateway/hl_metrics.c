/* hl_metrics: per-worker counters and the Prometheus rendering (see hl_metrics.h). */
#include "hl_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double buckets_s[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define N_BUCKETS (sizeof buckets_s / sizeof buckets_s[0])

typedef struct histogram {
    atomic_ullong counts[N_BUCKETS]; /* per bucket (not cumulative); +Inf is the total count */
    atomic_ullong count;
    atomic_ullong sum_us;
} histogram;

typedef struct backend_metrics {
    atomic_ullong attempts[HL_MS_COUNT];
    atomic_ullong tokens_in, tokens_out;
    atomic_ullong cost_nusd;   /* nano-dollars: integer adds, exact sums */
    histogram duration, ttft;
} backend_metrics;

const char *const hl_metrics_shadow_names[HL_METRICS_SHADOW_RESULTS] = {
    "compared", "dropped_busy", "dropped_privacy", "dropped_budget", "failed", "skipped_size"};

struct hl_metrics {
    size_t n;
    atomic_llong in_flight;
    atomic_ullong shadow[HL_METRICS_SHADOW_RESULTS];
    backend_metrics b[];
};

hl_metrics *hl_metrics_new(size_t n_backends) {
    hl_metrics *m = calloc(1, sizeof *m + n_backends * sizeof m->b[0]);
    if (m) m->n = n_backends;
    return m;
}

void hl_metrics_free(hl_metrics *m) { free(m); }

hl_metrics_status hl_metrics_status_of(const char *s) {
    if (!strcmp(s, "ok")) return HL_MS_OK;
    if (!strcmp(s, "cancelled")) return HL_MS_CANCELLED;
    if (!strcmp(s, "escalated")) return HL_MS_ESCALATED;
    return HL_MS_ERROR;
}

static void add(atomic_ullong *c, unsigned long long v) { atomic_fetch_add_explicit(c, v, memory_order_relaxed); }

static void observe(histogram *h, double ms) {
    double s = ms / 1000.0;
    size_t i = 0;
    while (i < N_BUCKETS && s > buckets_s[i]) i++;
    if (i < N_BUCKETS) add(&h->counts[i], 1);
    add(&h->count, 1);
    add(&h->sum_us, (unsigned long long)(ms * 1000.0));
}

void hl_metrics_attempt(hl_metrics *m, size_t backend, hl_metrics_status st, long input_tokens,
                        long output_tokens, double cost_usd, double latency_ms, double ttft_ms) {
    if (!m || backend >= m->n) return;
    backend_metrics *b = &m->b[backend];
    add(&b->attempts[st], 1);
    add(&b->tokens_in, (unsigned long long)(input_tokens > 0 ? input_tokens : 0));
    add(&b->tokens_out, (unsigned long long)(output_tokens > 0 ? output_tokens : 0));
    if (cost_usd > 0) add(&b->cost_nusd, (unsigned long long)(cost_usd * 1e9 + 0.5));
    observe(&b->duration, latency_ms);
    if (ttft_ms >= 0) observe(&b->ttft, ttft_ms);
}

void hl_metrics_shadow(hl_metrics *m, int result) {
    if (m && result >= 0 && result < HL_METRICS_SHADOW_RESULTS) add(&m->shadow[result], 1);
}

void hl_metrics_in_flight(hl_metrics *m, int delta) {
    if (m) atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

static unsigned long long load(const atomic_ullong *c) {
    return atomic_load_explicit((atomic_ullong *)c, memory_order_relaxed);
}


static hl_err render_histogram(hl_buf *out, const char *name, const char *backend,
                               hl_metrics *const *w, size_t nw, size_t bi, bool ttft) {
    unsigned long long cum = 0, total = 0, sum_us = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        for (size_t k = 0; k < nw; k++)
            if (w[k]) cum += load(&(ttft ? &w[k]->b[bi].ttft : &w[k]->b[bi].duration)->counts[i]);
        HL_TRY(hl_buf_printf(out, "%s_bucket{backend=\"%s\",le=\"%g\"} %llu\n", name, backend, buckets_s[i], cum));
    }
    for (size_t k = 0; k < nw; k++) {
        if (!w[k]) continue;
        const histogram *h = ttft ? &w[k]->b[bi].ttft : &w[k]->b[bi].duration;
        total += load(&h->count);
        sum_us += load(&h->sum_us);
    }
    HL_TRY(hl_buf_printf(out, "%s_bucket{backend=\"%s\",le=\"+Inf\"} %llu\n", name, backend, total));
    HL_TRY(hl_buf_printf(out, "%s_sum{backend=\"%s\"} %.6f\n", name, backend, (double)sum_us / 1e6));
    return hl_buf_printf(out, "%s_count{backend=\"%s\"} %llu\n", name, backend, total);
}

hl_err hl_metrics_render(hl_metrics *const *w, size_t nw, hl_backends *bs, const hl_config *cfg,
                         hl_budgets *budgets, hl_ledger *ledger, hl_store *store, hl_buf *out) {
    static const char *const st_names[HL_MS_COUNT] = {"ok", "error", "cancelled", "escalated"};
    /* Backend names are config tokens ([A-Za-z0-9._-]): safe as label values as they are. */
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_attempts_total Upstream attempts by outcome.\n"
                         "# TYPE hybridllm_attempts_total counter\n"));
    for (size_t i = 0; i < bs->n; i++)
        for (int st = 0; st < HL_MS_COUNT; st++) {
            unsigned long long v = 0;
            for (size_t k = 0; k < nw; k++) if (w[k]) v += load(&w[k]->b[i].attempts[st]);
            HL_TRY(hl_buf_printf(out, "hybridllm_attempts_total{backend=\"%s\",source=\"%s\",status=\"%s\"} %llu\n",
                              bs->v[i].cfg->name, hl_backend_is_cloud(&bs->v[i]) ? "cloud" : "local", st_names[st], v));
        }
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_tokens_total Tokens by backend and direction.\n"
                         "# TYPE hybridllm_tokens_total counter\n"));
    for (size_t i = 0; i < bs->n; i++) {
        unsigned long long in = 0, o = 0;
        for (size_t k = 0; k < nw; k++) if (w[k]) in += load(&w[k]->b[i].tokens_in), o += load(&w[k]->b[i].tokens_out);
        HL_TRY(hl_buf_printf(out, "hybridllm_tokens_total{backend=\"%s\",direction=\"input\"} %llu\n"
                               "hybridllm_tokens_total{backend=\"%s\",direction=\"output\"} %llu\n",
                          bs->v[i].cfg->name, in, bs->v[i].cfg->name, o));
    }
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_cost_usd_total Spend by backend (cloud: prices; local: busy time).\n"
                         "# TYPE hybridllm_cost_usd_total counter\n"));
    for (size_t i = 0; i < bs->n; i++) {
        unsigned long long c = 0;
        for (size_t k = 0; k < nw; k++) if (w[k]) c += load(&w[k]->b[i].cost_nusd);
        HL_TRY(hl_buf_printf(out, "hybridllm_cost_usd_total{backend=\"%s\"} %.9f\n", bs->v[i].cfg->name, (double)c / 1e9));
    }
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_attempt_duration_seconds Upstream attempt duration.\n"
                         "# TYPE hybridllm_attempt_duration_seconds histogram\n"));
    for (size_t i = 0; i < bs->n; i++)
        HL_TRY(render_histogram(out, "hybridllm_attempt_duration_seconds", bs->v[i].cfg->name, w, nw, i, false));
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_ttft_seconds Time to first token of streamed attempts.\n"
                         "# TYPE hybridllm_ttft_seconds histogram\n"));
    for (size_t i = 0; i < bs->n; i++)
        HL_TRY(render_histogram(out, "hybridllm_ttft_seconds", bs->v[i].cfg->name, w, nw, i, true));
    long long inflight = 0;
    for (size_t k = 0; k < nw; k++) if (w[k]) inflight += atomic_load_explicit(&w[k]->in_flight, memory_order_relaxed);
    HL_TRY(hl_buf_printf(out, "# HELP hybridllm_requests_in_flight Chat requests being served.\n"
                           "# TYPE hybridllm_requests_in_flight gauge\nhybridllm_requests_in_flight %lld\n", inflight));
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_shadow_total Shadow comparisons by what they came to.\n"
                         "# TYPE hybridllm_shadow_total counter\n"));
    for (int r = 0; r < HL_METRICS_SHADOW_RESULTS; r++) {
        unsigned long long n = 0;
        for (size_t k = 0; k < nw; k++) if (w[k]) n += load(&w[k]->shadow[r]);
        HL_TRY(hl_buf_printf(out, "hybridllm_shadow_total{result=\"%s\"} %llu\n", hl_metrics_shadow_names[r], n));
    }
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_backend_ready 1 when the backend can be routed to.\n"
                         "# TYPE hybridllm_backend_ready gauge\n"));
    for (size_t i = 0; i < bs->n; i++)
        HL_TRY(hl_buf_printf(out, "hybridllm_backend_ready{backend=\"%s\"} %d\n", bs->v[i].cfg->name,
                          atomic_load(&bs->v[i].ready) ? 1 : 0));
    HL_TRY(hl_buf_puts(out, "# HELP hybridllm_backend_breaker_state Circuit breaker: 0 closed, 1 open, 2 half-open.\n"
                         "# TYPE hybridllm_backend_breaker_state gauge\n"));
    for (size_t i = 0; i < bs->n; i++) {
        const char *st = hl_breaker_state_name(&bs->v[i]);
        HL_TRY(hl_buf_printf(out, "hybridllm_backend_breaker_state{backend=\"%s\"} %d\n", bs->v[i].cfg->name,
                          !strcmp(st, "closed") ? 0 : !strcmp(st, "open") ? 1 : 2));
    }
    if (cfg->n_budgets) {
        time_t now = time(NULL);
        HL_TRY(hl_buf_puts(out, "# HELP hybridllm_budget_spent_usd Cloud spend in the budget's current period (global budgets).\n"
                             "# TYPE hybridllm_budget_spent_usd gauge\n"));
        for (size_t i = 0; i < cfg->n_budgets; i++)
            if (!cfg->budgets[i].per_tenant)
                HL_TRY(hl_buf_printf(out, "hybridllm_budget_spent_usd{budget=\"%s\"} %.6f\n", cfg->budgets[i].name,
                                  hl_budgets_spent(budgets, i, cfg->budgets[i].tenant, now)));
        HL_TRY(hl_buf_puts(out, "# HELP hybridllm_budget_limit_usd The budget's cap.\n# TYPE hybridllm_budget_limit_usd gauge\n"));
        for (size_t i = 0; i < cfg->n_budgets; i++)
            HL_TRY(hl_buf_printf(out, "hybridllm_budget_limit_usd{budget=\"%s\"} %.6f\n", cfg->budgets[i].name,
                              cfg->budgets[i].limit_usd));
    }
    if (store) {
        hl_store_indexer_stats st;
        hl_store_indexer_stats_get(store, &st);
        HL_TRY(hl_buf_printf(out, "# HELP hybridllm_ledger_index_lag_bytes Journal bytes not yet in the SQLite index.\n"
                                  "# TYPE hybridllm_ledger_index_lag_bytes gauge\nhybridllm_ledger_index_lag_bytes %lld\n"
                                  "# HELP hybridllm_ledger_index_errors_total Index passes that failed.\n"
                                  "# TYPE hybridllm_ledger_index_errors_total counter\nhybridllm_ledger_index_errors_total %llu\n",
                             st.lag_bytes, st.errors));
    }
    return hl_buf_printf(out, "# HELP hybridllm_ledger_records_total Ledger lines written.\n"
                              "# TYPE hybridllm_ledger_records_total counter\nhybridllm_ledger_records_total %lu\n"
                              "# HELP hybridllm_ledger_write_errors_total Ledger lines the kernel refused.\n"
                              "# TYPE hybridllm_ledger_write_errors_total counter\nhybridllm_ledger_write_errors_total %lu\n",
                         atomic_load(&ledger->records), atomic_load(&ledger->write_errors));
}
