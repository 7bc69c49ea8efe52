/* hl_gateway: the endpoints, and the life of one chat request from client to backend and
 * back.
 *
 * The gateway plugs into hl_server as its hooks. For POST /v1/chat/completions it parses the
 * OpenAI body into the internal model, routes it (hl_router), calls the chosen backend through
 * its provider on the worker's hl_upstream, translates the reply (whole or streamed) back to
 * OpenAI, and writes one ledger line per upstream attempt before the client gets the last
 * byte. Candidates are tried in order while nothing has reached the client yet (connect
 * errors, 5xx, 529, 429); privacy is checked again right before each upstream call.
 *
 * Also: GET /healthz (the process is up), GET /readyz (which backends are usable and how to
 * add the missing ones), GET /v1/models. Client API keys, when configured, are compared in
 * constant time. */
#ifndef HL_GATEWAY_H
#define HL_GATEWAY_H

#include <stdbool.h>
#include "hl_backend.h"
#include "hl_budget.h"
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_keys.h"
#include "hl_ledger.h"
#include "hl_server.h"
#include "hl_store.h"

typedef struct hl_gateway hl_gateway;

/* Creates the gateway over cfg, bs, ledger and budgets (borrowed: they must outlive it;
 * budgets may be NULL). Reads the client API keys from cfg->api_keys_env. */
hl_err hl_gateway_init(hl_gateway **out, const hl_config *cfg, hl_backends *bs, hl_ledger *ledger,
                       hl_budgets *budgets);
void hl_gateway_free(hl_gateway *gw);
/* The SQLite index of the ledger, for /metrics (borrowed; may stay unset). */
void hl_gateway_set_store(hl_gateway *gw, hl_store *store);
/* The virtual keys the gateway accepts besides server.api_keys_env's, and their budgets
 * (both borrowed; the caller reloads them from the store at start and after each indexer
 * pass). Before the server starts. */
struct hl_key_budgets;
void hl_gateway_set_keys(hl_gateway *gw, hl_keys *keys, struct hl_key_budgets *budgets);
/* Turns the admin API on when server.admin_key_env names a set variable (its value is the
 * admin key); store_location: where keys live (NULL: the API answers 503). Call after
 * hl_gateway_set_keys. HL_ERR_INVAL (logged) for an unusable admin key. */
hl_err hl_gateway_enable_admin(hl_gateway *gw, const char *store_location);
/* Turns the dashboard on (/ui and /api/, hl_ui.h): opened by the admin key when
 * server.admin_key_env is set (closed when its variable is empty), else by loopback clients.
 * store_location: the ledger's store (NULL: the views over it answer 503). Call after
 * hl_gateway_set_keys. HL_ERR_NOMEM only. */
hl_err hl_gateway_enable_ui(hl_gateway *gw, const char *store_location);
/* The server hooks that run this gateway (ud is set to gw). */
const hl_server_hooks *hl_gateway_hooks(hl_gateway *gw);

/* hybridllm route --explain: parses body (OpenAI, or Anthropic when anthropic_format) with
 * the routing headers of hreq, runs the router exactly as a live request would, and writes
 * every rule's verdict and the decision to out. No backend is called. Returns non-zero when
 * the request would be refused (the reason is in out). */
hl_err hl_gateway_explain(const hl_config *cfg, hl_backends *bs, bool anthropic_format,
                          const hl_http_req *hreq, const char *body, size_t len, hl_buf *out);

#endif
