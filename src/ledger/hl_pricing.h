/* hl_pricing: what one inference cost.
 *
 * Cloud: per-token prices from the config's price table (USD per 1M tokens), with cache reads
 * and cache writes priced at their own rates, never at the full input rate.
 * Local: the brief's busy-time model, hourly hardware cost x time the backend was busy. */
#ifndef HL_PRICING_H
#define HL_PRICING_H

#include "hl_chat.h"
#include "hl_config.h"

/* USD for usage at price p. */
double hl_pricing_cloud(const hl_price *p, const hl_usage *u);
/* USD for latency_ms of busy time at hourly_usd per hour. */
double hl_pricing_local(double hourly_usd, double latency_ms);

#endif
