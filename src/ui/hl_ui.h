/* hl_ui: the dashboard. The gateway serves a page at /ui (its scripts and Chart.js under
 * /ui/..., compiled into the binary: no CDN, works offline) and the figures it draws as JSON
 * under /api/...:
 *
 *   GET /api/filters     the tenants, backends and task types in the range (for the pickers)
 *   GET /api/spend       spend per day: cloud, local, the all-cloud counterfactual, savings
 *   GET /api/requests    requests by route reason and by backend; error, fallback, escalation
 *   GET /api/latency     latency p50/p95/p99 and TTFT p50 per backend, per day and in all
 *   GET /api/privacy     sensitive requests by detected PII type; cloud calls for them (0)
 *   GET /api/budgets     each budget (config, tenants, virtual keys): spend in its period and
 *                        a forecast to its end
 *   GET /api/advise      the advisor's break-even arithmetic on this gateway's own ledger
 *   GET /api/agreement   agreement by task type, with 95% Wilson intervals
 *
 * Every endpoint takes from, to (ISO 8601; from inclusive, to exclusive), tenant, backend and
 * task_type; anything else, or a bad value, gets a 400 in OpenAI's error shape naming the
 * parameter. The figures are `hybridllm report`'s: each view is an hl_report_build over the
 * store (hl_report.h) with the same options, so they agree by construction. The privacy view
 * reads the journal with the ledger's one reader (the store keeps no PII types); the advisor
 * is hl_advise over the journal, as `hybridllm advise --ledger` computes it.
 *
 * Access. With server.admin_key_env set, the admin key opens it: `Authorization: Bearer` for
 * scripts, and for a browser a login form at /ui that trades the key for a session cookie
 * (random, HttpOnly, SameSite=Strict, 12 hours; the key itself never leaves the form). Without
 * an admin key configured the dashboard answers loopback peers only, and others 403. With one
 * configured but unset, it is closed (403): never open by accident.
 *
 * Queries run off the event loop (libuv's thread pool), each on its own store connection, and
 * post their answer back to the loop that took the request. */
#ifndef HL_UI_H
#define HL_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "hl_authlimit.h"
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_err.h"
#include "hl_http.h"
#include "hl_server.h"
#include "hl_store.h"

struct hl_budgets;
struct hl_key_budgets;

typedef struct hl_ui hl_ui;

/* How the dashboard is opened. */
typedef enum hl_ui_access {
    HL_UI_LOOPBACK, /* no admin key configured: loopback peers only */
    HL_UI_KEY,      /* the admin key (or a session it opened) */
    HL_UI_CLOSED,   /* an admin key is configured but unusable: nobody */
} hl_ui_access;

/* The views. */
typedef enum hl_ui_view {
    HL_UI_FILTERS, HL_UI_SPEND, HL_UI_REQUESTS, HL_UI_LATENCY, HL_UI_PRIVACY, HL_UI_BUDGETS,
    HL_UI_ADVISE, HL_UI_AGREEMENT,
} hl_ui_view;

/* A view's query, parsed. Strings are copies in the struct. */
typedef struct hl_ui_query {
    long long from_ms, to_ms;       /* HL_STORE_TIME_MIN/MAX: unbounded */
    char tenant[128], backend[128], task_type[64]; /* "": any */
} hl_ui_query;

/* Parses a query string ("from=...&tenant=a", no '?'; percent-encoding and '+' decoded) into
 * q. HL_OK, or HL_ERR_INVAL with param (the parameter at fault; at least 32 bytes) and msg
 * set. Unknown and repeated parameters are errors. Pure: the fuzz target's entry. */
hl_err hl_ui_query_parse(const char *qs, size_t len, hl_ui_query *q, char *param, size_t param_len,
                         char *msg, size_t msg_len);

/* The view of an /api/ path ("/api/spend"); false when there is none. */
bool hl_ui_view_of(hl_slice path, hl_ui_view *out);

/* What a view needs besides the store; all borrowed. */
typedef struct hl_ui_sources {
    const hl_config *cfg;           /* prices, budgets, the journal's path */
    struct hl_budgets *budgets;     /* may be NULL */
    struct hl_key_budgets *key_budgets; /* may be NULL */
    long long now_ms;               /* the budgets' "now" */
} hl_ui_sources;

/* Appends view v's JSON for q to out, reading the store s (may be NULL: views that need it
 * answer HL_ERR_IO). Blocking: not for an event loop. On error errbuf says why. */
hl_err hl_ui_build(hl_ui_view v, const hl_ui_query *q, hl_store *s, const hl_ui_sources *src, hl_buf *out,
                   char *errbuf, size_t errbuf_len);

/* The cloud price the savings figures use: the first cloud backend's model in cfg's `prices`,
 * else the advisor's table's HL_ADVISE_CLOUD_MODEL. Borrowed from cfg or the table. */
const hl_price *hl_ui_cloud_price(const hl_config *cfg);

/* True when a peer at sa may use the dashboard without a key: 127.0.0.0/8, ::1, and
 * IPv4-mapped loopback. */
bool hl_ui_peer_is_loopback(const struct sockaddr *sa);

/* admin_key: the admin key (copied; NULL: none); access: how it is opened; store_location:
 * the store (copied; NULL: views that need it answer 503); the sources and limit (the wrong
 * keys per address, shared with the admin API; may be NULL) are borrowed and must outlive
 * the dashboard. NULL when out of memory. */
hl_ui *hl_ui_new(hl_ui_access access, const char *admin_key, const char *store_location,
                 const hl_ui_sources *src, hl_authlimit *limit);
/* Wipes the key and the sessions, frees. NULL ok. Call after the event loops stopped. */
void hl_ui_free(hl_ui *ui);
/* True when path is /ui, /ui/... or /api/... (the caller sends such requests to hl_ui_handle). */
bool hl_ui_path(hl_slice path);
/* Answers one request on c (every outcome, possibly later, from the thread pool's callback).
 * rid: the request id for the headers (copied). */
void hl_ui_handle(hl_ui *ui, hl_conn *c, const hl_http_req *req, const char *body, size_t len, const char *rid);
/* For the gateway's abort hook: true when the connection's data is a dashboard query, which
 * hl_ui_abort then detaches (its answer is dropped when it arrives). */
bool hl_ui_owns(const void *conn_data);
void hl_ui_abort(void *conn_data);

#endif
