/* hl_admin: the admin API under /admin/ (JSON): client keys issued, listed, changed and
 * revoked without a restart, the same operations as `hybridllm keys`.
 *
 *   POST   /admin/keys                 create; the answer holds the key, shown this once
 *   GET    /admin/keys                 list (never a key: its prefix)
 *   GET    /admin/keys/{id}            one key
 *   PATCH  /admin/keys/{id}            change the fields given
 *   POST   /admin/keys/{id}/revoke     revoke (also DELETE /admin/keys/{id})
 *   GET    /admin/keys/{id}/spend      cloud spend today and this month (UTC), what is left
 *                                      of its budgets, its rate limits
 *
 * Why here: an operator issues a key per person or application from a script, against the
 * running gateway. It is protected by its own key (server.admin_key_env), compared in
 * constant time and never logged; without one configured /admin/ does not exist (404).
 * Errors use OpenAI's shape, and a 400 names the field at fault in `param`.
 *
 * The store is written on the calling event loop, through a connection of the admin API's
 * own (one at a time, under a lock): admin calls are rare and short. After a change the
 * gateway's keys are reloaded at once; the other gateways on the store pick it up at their
 * next index pass. */
#ifndef HL_ADMIN_H
#define HL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_err.h"
#include "hl_http.h"
#include "hl_keys.h"
#include "hl_server.h"
#include "hl_authlimit.h"
#include "hl_store.h"

typedef struct hl_admin hl_admin;

/* admin_key: the admin API's key (copied); store_location: the store the keys live in
 * (copied; NULL: the API answers 503); keys: the gateway's key set to reload after a change,
 * budgets: the keys' spend for /spend, limit: the wrong keys per address, shared with the
 * dashboard (all borrowed, may be NULL). NULL when out of memory. */
struct hl_key_budgets;
hl_admin *hl_admin_new(const char *admin_key, const char *store_location, hl_keys *keys,
                       struct hl_key_budgets *budgets, hl_authlimit *limit);
/* Wipes the key, closes the connection, frees. NULL ok. */
void hl_admin_free(hl_admin *a);
/* True when path is under /admin (the caller sends such requests to hl_admin_handle). */
bool hl_admin_path(hl_slice path);
/* Answers one /admin request on c (every outcome). rid: the request id for the headers. */
void hl_admin_handle(hl_admin *a, hl_conn *c, const hl_http_req *req, const char *body, size_t len,
                     const char *rid);

/* Parses a create (create: true) or change body into r, which holds the key's current
 * fields (defaults for a create) and receives the new ones. HL_OK, or HL_ERR_INVAL with
 * param (the field at fault, "" for the body as a whole; at least 32 bytes) and msg set. Pure:
 * the fuzz target's entry. */
hl_err hl_admin_parse_key(const char *body, size_t len, bool create, hl_key_record *r, char *param,
                          size_t param_len, char *msg, size_t msg_len);

#endif
