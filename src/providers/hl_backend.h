/* hl_backend: the backends of a running gateway, resolved from config at start.
 *
 * For each configured backend: its API key (read once from the environment, never logged),
 * the base URL in use (the first of several candidates that answered a probe: this is how
 * the default config finds a vLLM, llama.cpp or Ollama server on its usual port), the
 * upstream model ("auto" resolved through GET /models), its price, and whether it is ready,
 * with a sentence saying why not and how to fix it.
 *
 * Backends are resolved before the event loops start and then only read, except `ready`,
 * which is atomic. */
#ifndef HL_BACKEND_H
#define HL_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include "hl_config.h"

typedef struct hl_backend {
    const hl_backend_cfg *cfg; /* borrowed from the config */
    char *api_key;             /* owned; NULL when none; never logged */
    char *base_url;            /* owned; the URL in use */
    char *model;               /* owned; resolved default upstream model */
    const hl_price *price;     /* borrowed; NULL when the model has no price */
    atomic_bool ready;
    char status[320];          /* "ready" or why not, with a hint */
} hl_backend;

typedef struct hl_backends {
    hl_backend *v;
    size_t n;
} hl_backends;

/* Resolves every backend of cfg (which must outlive bs). With probe, local backends and
 * backends with several base URLs are probed over HTTP (short timeouts) and "auto" models
 * resolved; without, the first URL is taken as is. Never fails for an unreachable backend:
 * it is marked not ready. HL_ERR_NOMEM only. */
hl_err hl_backends_init(hl_backends *bs, const hl_config *cfg, bool probe);
void hl_backends_release(hl_backends *bs);
hl_backend *hl_backends_find(hl_backends *bs, const char *name);
size_t hl_backends_ready_count(const hl_backends *bs);
/* Does backend b serve upstream model `model` (its default or one of its `models`)? */
bool hl_backend_serves(const hl_backend *b, const char *model);
static inline bool hl_backend_is_cloud(const hl_backend *b) {
    return b->cfg->location == HL_LOCATION_CLOUD;
}

#endif
