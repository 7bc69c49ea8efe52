/* hl_exchange: the life of one inference request, from its parsed body to the last byte of
 * its answer, as one state machine (the phases and their diagram are in hl_exchange.c).
 *
 * The gateway (hl_gateway.c) authenticates a request and hands it here; the exchange decides
 * privacy, routes, runs the attempts through the providers (retries, fallbacks, confidence
 * escalation), writes one ledger line per attempt before the client gets the last byte, and
 * answers in the client's API format. It is owned by its connection (hl_conn_set_data) and
 * freed in exactly one place, once it is done: after its response was written, or when its
 * client went away (hl_exchange_abort).
 *
 * Threads: an exchange lives on the event loop of its connection. */
#ifndef HL_EXCHANGE_H
#define HL_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include "hl_backend.h"
#include "hl_budget.h"
#include "hl_config.h"
#include "hl_http.h"
#include "hl_ingress.h"
#include "hl_keybudget.h"
#include "hl_keys.h"
#include "hl_ledger.h"
#include "hl_metrics.h"
#include "hl_pii.h"
#include "hl_provider.h"
#include "hl_router.h"
#include "hl_server.h"

typedef struct hl_shadow hl_shadow;

/* What one worker (event loop) lends its exchanges; every pointer borrowed. */
typedef struct hl_exchange_env {
    const hl_config *cfg;
    hl_backends *bs;
    hl_ledger *ledger;
    hl_budgets *budgets;        /* NULL when no budget is configured */
    const hl_pii_detector *pii; /* NULL when privacy.detect_pii is off */
    hl_metrics *metrics;        /* this worker's */
    hl_provider_env prov;       /* this worker's upstream client and engine mailbox */
    uint64_t rng;               /* this worker's generator for ids and jitter */
    struct hl_key_budgets *key_budgets; /* virtual keys' budgets (hl_keybudget.h); may be NULL */
    bool keys_decide_tenant;    /* client keys are configured: the key, never a header, names
                                   the tenant */
    hl_shadow *shadow;          /* this worker's shadow scheduler (hl_shadow.h); may be NULL */
    hl_worker *worker;          /* the event loop these belong to */
    hl_ledger_batch lines;      /* this worker's ledger lines not yet written */
} hl_exchange_env;

/* Adds one ledger line to env's batch: written before the worker's next byte to any client
 * (hl_worker_before_send), so before its own client has the last byte, and with the turn's
 * other lines. A cloud line is written at once: the budgets count its cost right after it,
 * and the indexer settles fleet leases by the lines it finds (hl_keybudget.h). HL_ERR_IO when
 * a write failed (counted in the ledger's write_errors). */
hl_err hl_exchange_ledger_add(hl_exchange_env *env, const hl_ledger_record *r);

typedef struct hl_exchange hl_exchange;

/* Serves one chat request (Chat Completions or Messages, as ing says) on c: parses body,
 * decides privacy and the route, and runs it. Every outcome, errors included, is answered on
 * c. request_id: the gateway's own unique id, the ledger's key; client_id: the client's
 * x-request-id ("" when none), echoed and recorded beside it, never a key. key: what the
 * client's key decides (copied; never NULL): its tenant, whether its traffic stays local,
 * the backends and models it may use. */
void hl_exchange_start(hl_exchange_env *env, hl_conn *c, const hl_ingress *ing, const hl_http_req *hreq,
                       const char *body, size_t len, const char *request_id, const char *client_id,
                       const hl_key_info *key);
/* The client went away: the attempt in flight is cancelled and recorded, the exchange freed. */
void hl_exchange_abort(hl_exchange *ex);
/* The client's socket drained: a paused stream goes on. */
void hl_exchange_drain(hl_exchange *ex);

/* ---- shared with the gateway's other endpoints and `route --explain` ---- */

/* Reads the routing hints in the headers of hreq into req (task type, regulated, PII). */
void hl_exchange_read_hints(hl_chat_request *req, const hl_http_req *hreq);
/* The router's input for req (hints read, privacy decided). tenant receives the tenant's
 * name (in->tenant points there or is NULL): key_tenant, or with header_tenant (no client
 * keys configured) x-hybridllm-tenant when it is a sane token. */
void hl_exchange_route_input(const hl_chat_request *req, const hl_http_req *hreq, const char *key_tenant,
                             bool header_tenant, const char *sticky_key, bool sensitive, char *tenant,
                             size_t tenant_len, hl_route_input *in);
/* Applies a key's rights to a routed request: a model the key may not ask for is refused
 * (403, param "model"); candidates on backends it may not use are dropped, and when none is
 * left the request is refused (403). False with *err set when refused. */
bool hl_exchange_key_permits(const hl_key_info *key, const char *model, hl_route *route, hl_api_error *err);
/* The retry-after and x-ratelimit-* header lines for r (CRLF-terminated) into out. */
void hl_exchange_rate_headers(const hl_key_rate *r, char *out, size_t n);
/* Output tokens a virtual key's reservation counts on backend b (NULL: none known): the
 * request's max_tokens (> 0), else b's max_tokens (sent upstream for a request without
 * one), else the default an Anthropic backend is sent, else server.key_reserve_max_tokens. */
long hl_exchange_reserve_tokens(const hl_config *cfg, const hl_backend_cfg *b, long max_tokens);
/* Answers an error in ing's shape with the request id headers (and extra header lines). */
void hl_exchange_respond_error(hl_conn *c, const hl_ingress *ing, const char *request_id,
                               const hl_api_error *err, const char *extra_headers);
/* Appends x-request-id (and request-id for Anthropic clients). */
void hl_exchange_id_headers(const hl_ingress *ing, const char *request_id, hl_buf *h);
/* A fresh request id "req_<24 hex>" from rng. */
void hl_exchange_new_id(uint64_t *rng, char *out, size_t n);

/* ---- the phases (exposed for tests) ---- */

typedef enum hl_ex_phase {
    HL_EX_ROUTING,    /* parsed: privacy, route and budgets are being decided */
    HL_EX_WAITING,    /* the next attempt is scheduled (backoff, or the next loop turn) */
    HL_EX_ATTEMPTING, /* a call is in flight; the client has nothing yet */
    HL_EX_HOLDING,    /* ditto, while a local answer is held for escalation */
    HL_EX_STREAMING,  /* a call is in flight and the client has its first bytes */
    HL_EX_FINISHING,  /* the answer is being written; nothing may call in any more */
    HL_EX_DONE,       /* over: freed */
    HL_EX_N_PHASES
} hl_ex_phase;

#define HL_EX_BIT(p) (1u << (p))

const char *hl_ex_phase_name(hl_ex_phase p);
/* Is the transition from -> to in the diagram? */
bool hl_ex_transition_ok(hl_ex_phase from, hl_ex_phase to);
/* Whether `phase` is one of `allowed` (HL_EX_BIT mask) for the callback `where`. A wrong phase
 * is a bug: debug builds (hl_ex_debug_checks()) abort on it, others log it and return false
 * so that the callback can be ignored. */
bool hl_ex_phase_ok(hl_ex_phase phase, unsigned allowed, const char *where);
/* True in builds that abort on a wrong phase (NDEBUG unset, or HL_DEBUG). */
bool hl_ex_debug_checks(void);

#endif
