/* hl_router: decides which backend serves a request (routing v1).
 *
 * Order of precedence:
 *  1. Privacy is a hard guarantee, not a rule: a sensitive request (declared regulated or
 *     PII-bearing) is never given a cloud candidate, whatever the rules or the model name say.
 *     Forcing a cloud backend for it is a 403 (code privacy_violation); when no local backend
 *     can take it, a 503 that says why.
 *  2. `model` naming a backend forces it ("forced:backend"); naming a model that backends
 *     serve forces those ("forced:model").
 *  3. `model: "auto"`: the config's ordered rules, first match wins ("rule:NAME"); its `to`
 *     list gives the candidates in preference order.
 * Candidates that are not ready are skipped; the caller tries the rest in order when one
 * fails before anything was sent to the client.
 *
 * The router allocates nothing and takes microseconds: it is called on every request. */
#ifndef HL_ROUTER_H
#define HL_ROUTER_H

#include <stdbool.h>
#include "hl_backend.h"
#include "hl_chat.h"

#define HL_ROUTE_MAX_CANDIDATES 16

typedef struct hl_route_input {
    const char *model;     /* as the client sent it */
    const char *task_type; /* NULL when undeclared */
    bool sensitive;        /* regulated or PII-bearing */
    double now_ms;         /* monotonic clock, for circuit breakers */
} hl_route_input;

typedef struct hl_route {
    hl_backend *candidates[HL_ROUTE_MAX_CANDIDATES];
    const char *models[HL_ROUTE_MAX_CANDIDATES]; /* upstream model for each; borrowed */
    int n;
    char reason[96];       /* e.g. "rule:privacy", "forced:backend" */
} hl_route;

/* Fills route, or returns HL_ERR_NOTFOUND / HL_ERR_UNSUPPORTED / HL_ERR_INVAL with err set
 * to the client error (404 unknown model, 403 privacy, 503 nothing ready). */
hl_err hl_router_route(const hl_config *cfg, hl_backends *bs, const hl_route_input *in,
                       hl_route *route, hl_api_error *err);

#endif
