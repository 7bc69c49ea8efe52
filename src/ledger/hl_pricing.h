/* hl_pricing: what one inference cost.
 *
 * Cloud: per-token prices from the config's price table (USD per 1M tokens), with cache reads
 * and cache writes priced at their own rates, never at the full input rate.
 * Local: the brief's busy-time model, hourly hardware cost x time the backend was busy. */
#ifndef HL_PRICING_H
#define HL_PRICING_H

#include "hl_chat.h"
#include "hl_config.h"

/* The built-in price table: the one table `report`, `advise` and `simulate` price models
 * with when a config's `prices` does not have them (hl_pricing.c says where each price comes
 * from). A model matches an entry by its exact name, else the longest entry that is a prefix
 * followed by '-' (as hl_config_price: "gpt-4o" prices "gpt-4o-2024-08-06"). *source (may be
 * NULL) gets a sentence naming where the price comes from (static). NULL when unknown. */
const hl_price *hl_pricing_builtin(const char *model, const char **source);
/* cfg's `prices` first (*source: cfg->path or "config"), else the built-in table. cfg may be
 * NULL. */
const hl_price *hl_pricing_lookup(const hl_config *cfg, const char *model, const char **source);
/* USD for usage at price p. */
double hl_pricing_cloud(const hl_price *p, const hl_usage *u);
/* USD for latency_ms of busy time at hourly_usd per hour. */
double hl_pricing_local(double hourly_usd, double latency_ms);

#endif
