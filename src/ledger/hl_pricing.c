/* hl_pricing: see hl_pricing.h. */
#include "hl_pricing.h"

#include <string.h>

typedef struct builtin_price {
    hl_price p;
    const char *source;
} builtin_price;

/* gpt-4o is $2.50 / $10: what OpenAI bills for the "gpt-4o" alias (gpt-4o-2024-08-06 and
 * later) and what the shipped config's `prices` charge, hence what the gateway writes as the
 * ledger's cost_usd. `report` sets that spend against an all-cloud counterfactual; pricing the
 * counterfactual at another rate for the same name would misstate the savings, and the
 * brief's scenario is about what a workload costs to run now. The brief's table ($5 / $15)
 * is the price of the snapshot it was written against, gpt-4o-2024-05-13, kept under that
 * name: `advise --cloud-model gpt-4o-2024-05-13` redoes the brief's own arithmetic.
 * gpt-4o-mini is here so that the prefix rule does not bill it at gpt-4o's rate. */
static const builtin_price builtin_prices[] = {
    {{"gpt-4o", 2.50, 10.00, 1.25, 2.50},
     "built-in: OpenAI pricing page, https://openai.com/api/pricing/ (gpt-4o, as the shipped config)"},
    {{"gpt-4o-2024-05-13", 5.00, 15.00, 5.00, 5.00},
     "built-in: the product brief's table (March 2025), the gpt-4o-2024-05-13 snapshot's price"},
    {{"gpt-4o-mini", 0.15, 0.60, 0.075, 0.15},
     "built-in: OpenAI pricing page, https://openai.com/api/pricing/ (March 2025)"},
    {{"claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75},
     "built-in: the product brief's table, March 2025; Anthropic's pricing page agrees"},
};

const hl_price *hl_pricing_builtin(const char *model, const char **source) {
    if (!model) return NULL;
    const builtin_price *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof builtin_prices / sizeof builtin_prices[0]; i++) {
        const builtin_price *b = &builtin_prices[i];
        size_t n = strlen(b->p.model);
        if (!strcmp(b->p.model, model)) {
            best = b;
            break;
        }
        if (n > best_len && !strncmp(model, b->p.model, n) && model[n] == '-') {
            best = b;
            best_len = n;
        }
    }
    if (best && source) *source = best->source;
    return best ? &best->p : NULL;
}

const hl_price *hl_pricing_lookup(const hl_config *cfg, const char *model, const char **source) {
    if (!model) return NULL;
    const hl_price *p = hl_config_price(cfg, model);
    if (p) {
        if (source) *source = cfg->path ? cfg->path : "config";
        return p;
    }
    return hl_pricing_builtin(model, source);
}

double hl_pricing_cloud(const hl_price *p, const hl_usage *u) {
    long plain = u->input_tokens - u->cached_input_tokens - u->cache_write_tokens;
    if (plain < 0) plain = 0;
    return ((double)plain * p->input_per_mtok + (double)u->cached_input_tokens * p->cached_input_per_mtok +
            (double)u->cache_write_tokens * p->cache_write_per_mtok +
            (double)u->output_tokens * p->output_per_mtok) / 1e6;
}

double hl_pricing_local(double hourly_usd, double latency_ms) {
    return latency_ms / 1000.0 / 3600.0 * hourly_usd;
}
