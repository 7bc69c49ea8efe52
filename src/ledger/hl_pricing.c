/* hl_pricing: see hl_pricing.h. */
#include "hl_pricing.h"

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
