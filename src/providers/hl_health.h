/* hl_health: keeps the gateway's view of its backends current, off the event loops.
 *
 * At start, hl_health_warmup() sends every ready backend whose config asks for it (local ones
 * by default) one 1-token completion, so the first real request does not pay the model's load
 * time (the brief's cold-start failure mode). Then a thread wakes every health_interval_ms:
 * backends that were not ready (a local server started after the gateway) are probed again
 * and join the routing as soon as they answer; local and `model: auto` backends are probed
 * even while ready (a server gone, restarted with another model, or with another context
 * window), and any of them as soon as a request could not connect to it (it checks every
 * 200 ms for those); a failed probe takes a backend out of routing, with why, until one
 * succeeds; backends with keep_warm_ms that have been idle
 * that long get a ping. All of it is blocking curl with short timeouts, on its own thread. */
#ifndef HL_HEALTH_H
#define HL_HEALTH_H

#include "hl_backend.h"

typedef struct hl_health hl_health;

/* Pings the backends with warmup on and logs how long each took. */
void hl_health_warmup(hl_backends *bs);
/* Starts the health thread; bs and cfg must outlive it. */
hl_err hl_health_start(hl_health **out, hl_backends *bs, const hl_config *cfg);
/* Stops and joins the thread (returns within a probe's timeout). NULL is fine. */
void hl_health_stop(hl_health *h);

#endif
