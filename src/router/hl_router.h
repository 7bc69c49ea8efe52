/* hl_router: decides which backend serves a request.
 *
 * Order of precedence:
 *  1. Privacy is a hard guarantee, not a rule: a sensitive request (declared regulated or
 *     PII-bearing, or with PII detected in its text) is never given a cloud candidate, by any
 *     path: rules, forced model names, splits, escalation. Forcing a cloud backend for it is a
 *     403 (code privacy_violation); when no local backend can take it, a 503 that says why.
 *  2. `model` naming a backend forces it ("forced:backend"); naming a model that backends
 *     serve forces those ("forced:model").
 *  3. Otherwise (`model: "auto"` or an alias that a rule's `when.model` lists): the config's
 *     ordered rules, first match wins ("rule:NAME"). A rule's conditions: sensitive, task_type
 *     (declared, else inferred by hl_task), model alias, tenant, estimated prompt tokens, the
 *     request's latency budget. Its action: a preference list (`to`), or a weighted `split`
 *     (sticky per request or per tenant), optionally with `escalate` (local first, cloud when
 *     the local answer's confidence is below a threshold).
 * Candidates are then filtered and ordered: not ready or circuit open: skipped; context window
 * smaller than the prompt: skipped; observed p95 latency over the request's budget: moved
 * behind those within it. The caller tries the candidates in order.
 *
 * The router allocates nothing and takes microseconds; with a trace it also records, line by
 * line, why each rule matched or not (hybridllm route --explain). */
#ifndef HL_ROUTER_H
#define HL_ROUTER_H

#include <stdbool.h>
#include "hl_backend.h"
#include "hl_chat.h"

#define HL_ROUTE_MAX_CANDIDATES 16

typedef struct hl_route_input {
    const char *model;         /* as the client sent it */
    const char *task_type;     /* declared; NULL when none */
    const char *inferred_task; /* hl_task_infer()'s guess; NULL when none */
    bool sensitive;            /* regulated or PII-bearing, declared or detected */
    const char *tenant;        /* x-hybridllm-tenant or the client key's name; NULL: none */
    const char *sticky_key;    /* request id: what a per-request split hashes */
    long prompt_tokens;        /* estimate */
    long max_tokens;           /* requested output ceiling; <= 0: unknown */
    long latency_budget_ms;    /* from x-hybridllm-latency-budget-ms; 0: none */
    double now_ms;             /* monotonic clock, for circuit breakers */
    const char *budget_local;  /* a budget reached with action local: its name; cloud backends
                                  are skipped and, when the rule has no local one left, any
                                  ready local backend serves */
} hl_route_input;

typedef struct hl_route {
    hl_backend *candidates[HL_ROUTE_MAX_CANDIDATES];
    const char *models[HL_ROUTE_MAX_CANDIDATES]; /* upstream model for each; borrowed */
    int n;
    char reason[96];           /* e.g. "rule:privacy", "forced:backend", "rule:trial(split)" */
    const char *task_type;     /* the task type used: declared or inferred; NULL when none */
    /* Escalation (from the matched rule): candidates to re-run on when the local answer's
     * confidence is below `escalate_below`; privacy-filtered like the rest. */
    double escalate_below;     /* 0: none */
    hl_conf_signal escalate_signal; /* which confidence signal escalate_below reads */
    bool escalate_streams;
    hl_backend *escalate[HL_ROUTE_MAX_CANDIDATES];
    int n_escalate;
    const hl_route_rule *rule; /* the rule that matched (its shadow settings); NULL: forced */
} hl_route;

typedef struct hl_route_trace {
    char lines[48][200];
    int n;
} hl_route_trace;

/* Fills route, or returns non-zero with err set to the client error (404 unknown model, 403
 * privacy, 400 prompt longer than every candidate's context window, 503 nothing ready).
 * trace may be NULL. */
hl_err hl_router_route(const hl_config *cfg, hl_backends *bs, const hl_route_input *in,
                       hl_route *route, hl_api_error *err, hl_route_trace *trace);

#endif
