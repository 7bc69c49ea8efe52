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

#include "hl_backend.h"
#include "hl_config.h"
#include "hl_ledger.h"
#include "hl_server.h"

typedef struct hl_gateway hl_gateway;

/* Creates the gateway over cfg, bs and ledger (borrowed: they must outlive it). Reads the
 * client API keys from cfg->api_keys_env. */
hl_err hl_gateway_init(hl_gateway **out, const hl_config *cfg, hl_backends *bs, hl_ledger *ledger);
void hl_gateway_free(hl_gateway *gw);
/* The server hooks that run this gateway (ud is set to gw). */
const hl_server_hooks *hl_gateway_hooks(hl_gateway *gw);

#endif
