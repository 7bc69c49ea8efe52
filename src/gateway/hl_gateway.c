/* hl_gateway: the endpoints (see hl_gateway.h).
 *
 * Requests are told apart here: health, readiness, metrics and models are answered at once;
 * chat requests are authenticated and handed to an exchange (hl_exchange.c), which owns their
 * life from routing to the last byte. Each event loop (worker) has its own HTTP client,
 * engine mailbox and metrics, lent to its exchanges through an hl_exchange_env. */
#include "hl_gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include "hl_builtin.h"
#include "hl_aux.h"
#include "hl_exchange.h"
#include "hl_ingress.h"
#include "hl_log.h"
#include "hl_admin.h"
#include "hl_keybudget.h"
#include "hl_metrics.h"
#include "hl_shadow.h"
#include "hl_pii.h"
#include "hl_privacy.h"
#include "hl_router.h"
#include "hl_ui.h"
#include "hl_upstream.h"
#include "hl_url.h"

#define MAX_CLIENT_KEYS 64
#define HL_MAX_WORKERS 256 /* the config caps server.threads at 256 */

struct hl_gateway {
    const hl_config *cfg;
    hl_backends *bs;
    hl_ledger *ledger;
    hl_budgets *budgets;       /* NULL when no budget is configured */
    hl_server_hooks hooks;
    long started;
    char *keys[MAX_CLIENT_KEYS]; /* client API keys; none: no auth */
    char *key_names[MAX_CLIENT_KEYS]; /* "name" of a "name:key" entry, the tenant; or NULL */
    int n_keys;
    hl_metrics *metrics[HL_MAX_WORKERS]; /* per worker, set at worker start */
    hl_pii_detector *pii;      /* NULL when privacy.detect_pii is off */
    hl_store *store;           /* the ledger's SQLite index, for /metrics; may be NULL */
    hl_keys *vkeys;            /* the store's virtual keys (hl_keys.h); borrowed, may be NULL */
    hl_admin *admin;           /* the admin API; owned; NULL: /admin/ answers 404 */
    hl_key_budgets *kbudgets;  /* the virtual keys' budgets; borrowed, may be NULL */
    hl_ui *ui;                 /* the dashboard; owned; NULL: /ui and /api/ answer 404 */
    hl_authlimit *authlimit;   /* wrong admin keys per address, for admin and ui; owned */
};

typedef struct gw_worker {
    hl_gateway *gw;
    hl_exchange_env env;       /* its upstream client, mailbox, metrics and generator */
} gw_worker;

/* ------------------------------------------------------------------ small helpers */

static bool slice_eq(hl_slice s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Constant-time comparison: time depends on the lengths only, never on where bytes differ. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) diff |= (unsigned char)((i < alen ? a[i] : 0) ^ b[i]);
    return diff == 0;
}

/* The client's x-request-id when it is a sane token (echoed, and recorded beside the
 * gateway's own id, which alone keys the ledger), else "". */
static void client_request_id(const hl_http_req *req, char *out, size_t n) {
    const hl_slice *v = hl_http_header_get(req, "x-request-id");
    out[0] = '\0';
    if (!v || v->n == 0 || v->n >= n) return;
    for (size_t i = 0; i < v->n; i++) {
        char ch = v->p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '.'))
            return;
    }
    snprintf(out, n, "%.*s", (int)v->n, v->p);
}

/* ------------------------------------------------------------------ other endpoints */

static void handle_healthz(hl_conn *c, const char *rid) {
    char h[128];
    snprintf(h, sizeof h, "x-request-id: %s\r\n", rid);
    static const char body[] = "{\"status\":\"ok\"}";
    hl_conn_respond(c, 200, h, "application/json", body, sizeof body - 1);
}

static void handle_readyz(hl_gateway *gw, hl_conn *c, const char *rid) {
    hl_buf b;
    hl_buf_init(&b, 0);
    size_t ready = hl_backends_ready_count(gw->bs);
    hl_buf_printf(&b, "{\"status\":\"%s\",\"ready_backends\":%zu,\"backends\":[",
                  ready ? "ready" : "unavailable", ready);
    for (size_t i = 0; i < gw->bs->n; i++) {
        hl_backend *be = &gw->bs->v[i];
        hl_buf_printf(&b, "%s{\"name\":", i ? "," : "");
        hl_buf_json_str(&b, be->cfg->name, strlen(be->cfg->name));
        char why[400]; /* its status line, or why it cannot take requests now */
        bool rdy = hl_backend_readiness(be, (double)uv_hrtime() / 1e6, why, sizeof why);
        hl_buf_printf(&b, ",\"kind\":\"%s\",\"location\":\"%s\",\"ready\":%s,\"warm\":%s,\"breaker\":\"%s\"",
                      hl_provider_for(be->cfg->kind)->name,
                      hl_backend_is_cloud(be) ? "cloud" : "local", rdy ? "true" : "false",
                      atomic_load(&be->warm) ? "true" : "false", hl_breaker_state_name(be));
        double p95 = hl_backend_p95(be);
        if (p95 >= 0) hl_buf_printf(&b, ",\"p95_ms\":%.1f", p95);
        pthread_mutex_lock(&be->mu);
        hl_buf_puts(&b, ",\"model\":");
        hl_buf_json_str(&b, be->model, strlen(be->model));
        char shown[512];
        hl_buf_puts(&b, ",\"base_url\":");
        hl_url_redact(be->base_url, shown, sizeof shown);
        hl_buf_json_str(&b, shown, strlen(shown));
        hl_buf_puts(&b, ",\"status\":");
        hl_url_redact(why, shown, sizeof shown);
        hl_buf_json_str(&b, shown, strlen(shown));
        pthread_mutex_unlock(&be->mu);
        for (size_t r = 0; r < be->n_replicas; r++) { /* each replica's own state */
            hl_replica *rp = &be->replicas[r];
            hl_buf_puts(&b, r ? ",{\"url\":" : ",\"replicas\":[{\"url\":");
            hl_url_redact(rp->url, shown, sizeof shown);
            hl_buf_json_str(&b, shown, strlen(shown));
            hl_buf_printf(&b, ",\"ready\":%s,\"breaker\":\"%s\",\"in_flight\":%d",
                          atomic_load(&rp->ready) ? "true" : "false", hl_replica_breaker_name(rp),
                          atomic_load(&rp->in_flight));
            if (atomic_load(&rp->lat_p95) >= 0) hl_buf_printf(&b, ",\"p95_ms\":%.1f", atomic_load(&rp->lat_p95));
            hl_buf_puts(&b, r + 1 == be->n_replicas ? "}]" : "}");
        }
        hl_buf_puts(&b, "}");
    }
    hl_buf_puts(&b, "],\"budgets\":[");
    time_t now = time(NULL);
    for (size_t i = 0; i < gw->cfg->n_budgets; i++) {
        const hl_budget_cfg *bc = &gw->cfg->budgets[i];
        hl_buf_printf(&b, "%s{\"name\":", i ? "," : "");
        hl_buf_json_str(&b, bc->name, strlen(bc->name));
        hl_buf_printf(&b, ",\"period\":\"%s\",\"limit_usd\":", bc->period == HL_BUDGET_MONTH ? "month" : "day");
        hl_buf_double(&b, bc->limit_usd);
        if (!bc->per_tenant) {
            hl_buf_puts(&b, ",\"spent_usd\":");
            hl_buf_double(&b, hl_budgets_spent(gw->budgets, i, bc->tenant, now));
        }
        hl_buf_puts(&b, "}");
    }
    hl_buf_puts(&b, "]");
    if (!ready)
        hl_buf_puts(&b, ",\"hint\":\"No backend is usable. Set ANTHROPIC_API_KEY or OPENAI_API_KEY "
                        "for a cloud backend, or start a local OpenAI-compatible server (vLLM on "
                        ":8000, llama.cpp server on :8080, Ollama on :11434), then restart.\"");
    hl_buf_puts(&b, "}");
    char h[128];
    snprintf(h, sizeof h, "x-request-id: %s\r\n", rid);
    hl_conn_respond(c, ready ? 200 : 503, h, "application/json", b.data, b.len);
    hl_buf_release(&b);
}

typedef struct model_row {
    const char *id, *owner;
} model_row;

static void models_add(model_row *rows, size_t *n, const char *id, const char *owner) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(rows[i].id, id)) return;
    rows[(*n)++] = (model_row){id, owner};
}

/* GET /v1/models: "auto", the backends' names, their models. In OpenAI's shape, or in
 * Anthropic's when the client sent anthropic-version (the Anthropic SDK always does; Claude
 * Code lists models at startup): {data:[{type:"model", id, display_name, created_at}],
 * has_more, first_id, last_id}, every model on one page. */
static void handle_models(hl_gateway *gw, hl_conn *c, const char *rid, bool anthropic) {
    hl_buf b;
    hl_buf_init(&b, 0);
    size_t cap = 1, n = 0;
    for (size_t i = 0; i < gw->bs->n; i++) cap += 2 + gw->bs->v[i].cfg->n_models;
    model_row *rows = calloc(cap, sizeof *rows);
    /* Backend model names can change (rediscovery): copied under the lock, freed below. */
    char **held = calloc(gw->bs->n + 1, sizeof *held);
    if (rows && held) {
        models_add(rows, &n, "auto", "hybridllm");
        for (size_t i = 0; i < gw->bs->n; i++) models_add(rows, &n, gw->bs->v[i].cfg->name, "hybridllm");
        for (size_t i = 0; i < gw->bs->n; i++) {
            hl_backend *be = &gw->bs->v[i];
            pthread_mutex_lock(&be->mu);
            if (strcmp(be->model, "auto") != 0) held[i] = strdup(be->model);
            pthread_mutex_unlock(&be->mu);
            if (held[i]) models_add(rows, &n, held[i], be->cfg->name);
            for (size_t j = 0; j < be->cfg->n_models; j++) models_add(rows, &n, be->cfg->models[j], be->cfg->name);
        }
    }
    if (anthropic) {
        char at[32];
        time_t t = (time_t)gw->started;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        hl_buf_puts(&b, "{\"data\":[");
        for (size_t i = 0; i < n; i++) {
            hl_buf_puts(&b, i ? ",{\"type\":\"model\",\"id\":" : "{\"type\":\"model\",\"id\":");
            hl_buf_json_str(&b, rows[i].id, strlen(rows[i].id));
            hl_buf_puts(&b, ",\"display_name\":");
            hl_buf_json_str(&b, rows[i].id, strlen(rows[i].id));
            hl_buf_printf(&b, ",\"created_at\":\"%s\"}", at);
        }
        hl_buf_puts(&b, "],\"has_more\":false,\"first_id\":");
        if (n) hl_buf_json_str(&b, rows[0].id, strlen(rows[0].id));
        else hl_buf_puts(&b, "null");
        hl_buf_puts(&b, ",\"last_id\":");
        if (n) hl_buf_json_str(&b, rows[n - 1].id, strlen(rows[n - 1].id));
        else hl_buf_puts(&b, "null");
        hl_buf_puts(&b, "}");
    } else {
        hl_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < n; i++) {
            hl_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
            hl_buf_json_str(&b, rows[i].id, strlen(rows[i].id));
            hl_buf_printf(&b, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":", gw->started);
            hl_buf_json_str(&b, rows[i].owner, strlen(rows[i].owner));
            hl_buf_puts(&b, "}");
        }
        hl_buf_puts(&b, "]}");
    }
    for (size_t i = 0; held && i < gw->bs->n; i++) free(held[i]);
    free(held);
    free(rows);
    char h[160];
    snprintf(h, sizeof h, "x-request-id: %s\r\n%s%s%s", rid, anthropic ? "request-id: " : "", anthropic ? rid : "",
             anthropic ? "\r\n" : "");
    hl_conn_respond(c, 200, h, "application/json", b.data, b.len);
    hl_buf_release(&b);
}

/* True when the client presented one of the configured keys or an active virtual key (or
 * neither kind is configured); *key is then what the key decides (id 0, name "" and no
 * tenant when no key was needed). */
static bool authorized(const hl_gateway *gw, const hl_http_req *req, hl_key_info *key) {
    memset(key, 0, sizeof *key);
    key->cloud_allowed = true;
    key->budget_day_usd = key->budget_month_usd = -1;
    bool virtual_keys = hl_keys_total(gw->vkeys) > 0;
    if (!gw->n_keys && !virtual_keys) return true;
    const hl_slice *v = hl_http_header_get(req, "authorization");
    const char *k = NULL;
    size_t klen = 0;
    if (v && v->n > 7 && !strncasecmp(v->p, "Bearer ", 7)) {
        k = v->p + 7;
        klen = v->n - 7;
    } else if ((v = hl_http_header_get(req, "x-api-key"))) {
        k = v->p;
        klen = v->n;
    }
    if (!k) return false;
    if (virtual_keys && hl_keys_lookup(gw->vkeys, k, klen, (long long)time(NULL) * 1000, key)) return true;
    bool ok = false;
    for (int i = 0; i < gw->n_keys; i++) {
        /* Every key is compared, matched or not, so timing says nothing about which. */
        bool eq = gw->keys[i] && ct_equal(k, klen, gw->keys[i], strlen(gw->keys[i]));
        if (eq && gw->key_names[i]) {
            snprintf(key->name, sizeof key->name, "%s", gw->key_names[i]);
            snprintf(key->tenant, sizeof key->tenant, "%s", gw->key_names[i]);
        }
        ok |= eq;
    }
    return ok;
}

/* ------------------------------------------------------------------ server hooks */

/* Every path the gateway answers: what serves it, the method it takes, and the API format
 * its errors are written in (an unknown path answers in OpenAI's). */
typedef enum ep_kind { EP_CHAT, EP_EMBEDDINGS, EP_COUNT_TOKENS, EP_MODELS, EP_METRICS, EP_HEALTHZ, EP_READYZ } ep_kind;

typedef struct endpoint {
    const char *path;
    ep_kind kind;
    const hl_ingress *ing;
} endpoint;

static const endpoint endpoints[] = {
    {"/v1/chat/completions", EP_CHAT, &hl_ingress_openai},
    {"/v1/messages", EP_CHAT, &hl_ingress_anthropic},
    {"/v1/completions", EP_CHAT, &hl_ingress_completions},
    {"/v1/responses", EP_CHAT, &hl_ingress_responses},
    {"/v1/embeddings", EP_EMBEDDINGS, &hl_ingress_openai},
    {"/v1/messages/count_tokens", EP_COUNT_TOKENS, &hl_ingress_anthropic},
    {"/v1/models", EP_MODELS, &hl_ingress_openai},
    {"/metrics", EP_METRICS, &hl_ingress_openai},
    {"/healthz", EP_HEALTHZ, &hl_ingress_openai},
    {"/readyz", EP_READYZ, &hl_ingress_openai},
};

/* The endpoint of a path, or NULL. */
static const endpoint *endpoint_of(hl_slice path) {
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (slice_eq(path, endpoints[i].path)) return &endpoints[i];
    return NULL;
}

static void handle_metrics(hl_gateway *gw, hl_conn *c, const char *rid) {
    hl_buf b;
    hl_buf_init(&b, 0);
    char h[128];
    snprintf(h, sizeof h, "x-request-id: %s\r\n", rid);
    if (hl_metrics_render(gw->metrics, HL_MAX_WORKERS, gw->bs, gw->cfg, gw->budgets, gw->ledger, gw->store, &b) == HL_OK)
        hl_conn_respond(c, 200, h, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    else
        hl_conn_respond(c, 500, h, "text/plain", "out of memory\n", 14);
    hl_buf_release(&b);
}

static void on_request(hl_conn *c, const hl_http_req *req, const char *body, size_t len) {
    gw_worker *gwk = hl_worker_data(hl_conn_worker(c));
    hl_gateway *gw = gwk->gw;
    char own[64], cid[64];
    hl_exchange_new_id(&gwk->env.rng, own, sizeof own);
    client_request_id(req, cid, sizeof cid);
    const char *rid = cid[0] ? cid : own; /* what the client sees in x-request-id */
    hl_api_error err;
    hl_api_error_clear(&err);
    hl_slice path = req->path;
    if (gw->admin && hl_admin_path(path)) {
        hl_admin_handle(gw->admin, c, req, body, len, rid);
        return;
    }
    if (gw->ui && hl_ui_path(path)) {
        hl_ui_handle(gw->ui, c, req, body, len, rid);
        return;
    }
    const endpoint *ep = endpoint_of(path);
    const hl_ingress *ing = ep ? ep->ing : &hl_ingress_openai;
    bool get = slice_eq(req->method, "GET"), post = slice_eq(req->method, "POST");
    if (!ep) {
        hl_api_error_set(&err, 404, HL_AE_NOT_FOUND, NULL, "unknown_url", "Unknown request URL: %s %.*s.",
                         post ? "POST" : get ? "GET" : "?", (int)(path.n > 200 ? 200 : path.n), path.p);
        hl_exchange_respond_error(c, ing, rid, &err, NULL);
        return;
    }
    /* /healthz is always open; the status pages when status_requires_key says so; the API always. */
    hl_key_info key;
    bool needs_key = ep->kind != EP_HEALTHZ &&
                     (gw->cfg->status_requires_key || (ep->kind != EP_METRICS && ep->kind != EP_READYZ));
    if (needs_key && !authorized(gw, req, &key)) {
        hl_api_error_set(&err, 401, HL_AE_AUTHENTICATION, NULL, "invalid_api_key",
                         "Missing or incorrect API key for this gateway%s. Send it as "
                         "'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                         ep->kind == EP_METRICS || ep->kind == EP_READYZ ? " (server.status_requires_key)" : "");
        hl_exchange_respond_error(c, ing, rid, &err, NULL);
        return;
    }
    bool wants_post = ep->kind == EP_CHAT || ep->kind == EP_EMBEDDINGS || ep->kind == EP_COUNT_TOKENS;
    if (wants_post ? !post : !get) {
        hl_api_error_set(&err, 405, HL_AE_INVALID_REQUEST, NULL, "method_not_allowed",
                         "Method %.*s is not allowed for %.*s.", (int)(req->method.n > 16 ? 16 : req->method.n),
                         req->method.p, (int)path.n, path.p);
        hl_exchange_respond_error(c, ing, rid, &err, wants_post ? "Allow: POST\r\n" : "Allow: GET\r\n");
        return;
    }
    switch (ep->kind) {
    case EP_METRICS: handle_metrics(gw, c, rid); break;
    case EP_HEALTHZ: handle_healthz(c, rid); break;
    case EP_READYZ: handle_readyz(gw, c, rid); break;
    case EP_MODELS: handle_models(gw, c, rid, hl_http_header_get(req, "anthropic-version") != NULL); break;
    case EP_EMBEDDINGS:
    case EP_COUNT_TOKENS:
        /* Not chats: they have their own small path (hl_aux.c). */
        hl_aux_start(&gwk->env, c, req, body, len, own, cid, &key,
                     ep->kind == EP_EMBEDDINGS ? HL_AUX_EMBEDDINGS : HL_AUX_COUNT_TOKENS);
        break;
    case EP_CHAT: hl_exchange_start(&gwk->env, c, ing, req, body, len, own, cid, &key); break;
    }
}

static void on_abort(hl_conn *c) {
    void *d = hl_conn_data(c);
    if (hl_aux_owns(d)) hl_aux_abort(d);
    else if (hl_ui_owns(d)) hl_ui_abort(d);
    else if (d) hl_exchange_abort(d);
}

static void on_drain(hl_conn *c) {
    void *d = hl_conn_data(c);
    if (d && !hl_aux_owns(d) && !hl_ui_owns(d)) hl_exchange_drain(d); /* embeddings and counts never stream */
}

static void render_error(hl_worker *w, int status, const char *path, const char *message,
                         char *headers, size_t headers_len, char *out, size_t out_len) {
    gw_worker *gwk = hl_worker_data(w);
    char rid[64];
    hl_exchange_new_id(&gwk->env.rng, rid, sizeof rid);
    hl_api_error err;
    hl_api_error_kind k = status == 413 || status == 431 ? HL_AE_TOO_LARGE
                          : status == 408 ? HL_AE_TIMEOUT : HL_AE_INVALID_REQUEST;
    hl_api_error_set(&err, status, k, NULL, NULL, "%s", message);
    const endpoint *ep = path ? endpoint_of((hl_slice){path, strlen(path)}) : NULL;
    const hl_ingress *ing = ep ? ep->ing : &hl_ingress_openai;
    hl_buf h;
    hl_buf_init(&h, headers_len - 1);
    hl_exchange_id_headers(ing, rid, &h);
    snprintf(headers, headers_len, "%s", h.data ? h.data : "");
    hl_buf_release(&h);
    hl_buf b;
    hl_buf_init(&b, out_len - 1);
    if (ing->write_error(&b, &err, rid) && b.data) snprintf(out, out_len, "%s", b.data);
    else snprintf(out, out_len, "{\"error\":{\"message\":\"error\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    hl_buf_release(&b);
}

static void *worker_start(hl_worker *w, void *ud) {
    gw_worker *gwk = calloc(1, sizeof *gwk);
    if (!gwk) return NULL;
    hl_gateway *gw = ud;
    hl_exchange_env *env = &gwk->env;
    gwk->gw = gw;
    *env = (hl_exchange_env){.cfg = gw->cfg, .bs = gw->bs, .ledger = gw->ledger, .budgets = gw->budgets,
                             .pii = gw->pii, .key_budgets = gw->kbudgets, .keys_decide_tenant = gw->cfg->api_keys_env != NULL};
    if (getrandom(&env->rng, sizeof env->rng, 0) != sizeof env->rng)
        env->rng = uv_hrtime() ^ (uint64_t)hl_worker_index(w) << 32;
    env->metrics = hl_metrics_new(gw->bs->n);
    if (!env->metrics || hl_builtin_mailbox_new(&env->prov.mailbox, hl_worker_loop(w)) != HL_OK) {
        hl_metrics_free(env->metrics);
        free(gwk);
        return NULL;
    }
    if (hl_upstream_init(&env->prov.up, hl_worker_loop(w)) != HL_OK) {
        hl_builtin_mailbox_close(env->prov.mailbox);
        hl_metrics_free(env->metrics);
        free(gwk);
        return NULL;
    }
    env->shadow = hl_shadow_new(hl_worker_loop(w)); /* NULL (out of memory): no shadows */
    env->worker = w;
    hl_ledger_batch_init(&env->lines, gw->ledger);
    if (hl_worker_index(w) < HL_MAX_WORKERS) gw->metrics[hl_worker_index(w)] = env->metrics;
    return gwk;
}

static void worker_stop(void *data) {
    gw_worker *gwk = data;
    if (!gwk) return;
    hl_shadow_close(gwk->env.shadow);
    hl_upstream_close(gwk->env.prov.up);
    hl_builtin_mailbox_close(gwk->env.prov.mailbox);
    if (hl_ledger_batch_flush(&gwk->env.lines) != HL_OK) hl_log(HL_LOG_ERROR, "ledger write failed at shutdown: %m");
    hl_ledger_batch_release(&gwk->env.lines);
    free(gwk);
}

/* The server is about to send a byte to a client of this worker: the ledger lines of the
 * turn go first, with one write. */
static void before_send(void *data) {
    gw_worker *gwk = data;
    if (hl_ledger_batch_flush(&gwk->env.lines) != HL_OK) hl_log(HL_LOG_ERROR, "ledger write failed: %m");
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

/* Reads the client keys from $cfg->api_keys_env: "key" or "name:key" entries, separated by
 * commas or spaces; the name becomes the tenant. An entry with an empty key ("team-b:", as an
 * unset shell variable leaves it) or a control character is refused: it would let in an empty
 * x-api-key, or never match. Messages name the entry, never a key. */
static hl_err read_client_keys(hl_gateway *gw, const char *var) {
    const char *env = getenv(var);
    char *copy = env ? strdup(env) : NULL;
    if (env && !copy) return HL_ERR_NOMEM;
    char *save = NULL;
    hl_err e = HL_OK;
    int entry = 0;
    for (char *tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok && !e; tok = strtok_r(NULL, ", ", &save)) {
        entry++;
        char *colon = strchr(tok, ':');
        if (colon) *colon = '\0';
        const char *key = colon ? colon + 1 : tok;
        if (!*key || has_control(key) || (colon && !*tok)) {
            hl_log(HL_LOG_ERROR, "%s: entry %d%s%s%s has %s; refusing to start", var, entry, colon ? " ('" : "",
                   colon ? tok : "", colon ? ":...')" : "", !*key ? "an empty key" : has_control(key)
                                                                ? "a control character in its key" : "an empty name");
            e = HL_ERR_INVAL;
        } else if (gw->n_keys == MAX_CLIENT_KEYS) {
            hl_log(HL_LOG_ERROR, "%s: more than %d keys; refusing to start", var, MAX_CLIENT_KEYS);
            e = HL_ERR_LIMIT;
        } else {
            gw->key_names[gw->n_keys] = colon ? strdup(tok) : NULL;
            gw->keys[gw->n_keys++] = strdup(key);
        }
    }
    if (copy) explicit_bzero(copy, strlen(copy));
    free(copy);
    if (!e && !gw->n_keys)
        hl_log(HL_LOG_WARN, "server.api_keys_env names %s, but it is empty or unset: every "
                            "/v1 request will be refused with 401", var);
    return e;
}

/* Settings that would fail every request, or expose the gateway, found before it serves. */
static hl_err check_start(const hl_gateway *gw) {
    const hl_config *cfg = gw->cfg;
    for (size_t i = 0; i < gw->bs->n; i++) {
        const hl_backend *b = &gw->bs->v[i];
        if (b->api_key && has_control(b->api_key)) {
            hl_log(HL_LOG_ERROR, "backend %s: the API key in %s contains a control character (a stray newline?); "
                                 "refusing to start", b->cfg->name, b->cfg->api_key_env ? b->cfg->api_key_env : "its key");
            return HL_ERR_INVAL;
        }
    }
    const char *h = cfg->listen_host ? cfg->listen_host : "";
    bool loopback = !strncmp(h, "127.", 4) || !strcmp(h, "::1") || !strcmp(h, "localhost");
    if (!loopback && !cfg->api_keys_env)
        hl_log(HL_LOG_WARN, "listening on %s:%d without client keys: anyone who can reach it can use your "
                            "backends and spend your cloud budget; set server.api_keys_env", h, cfg->listen_port);
    return HL_OK;
}

hl_err hl_gateway_init(hl_gateway **out, const hl_config *cfg, hl_backends *bs, hl_ledger *ledger,
                       hl_budgets *budgets) {
    hl_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) return HL_ERR_NOMEM;
    gw->cfg = cfg;
    gw->bs = bs;
    gw->ledger = ledger;
    gw->budgets = budgets;
    gw->started = (long)time(NULL);
    hl_err e = cfg->api_keys_env ? read_client_keys(gw, cfg->api_keys_env) : HL_OK;
    if (!e) e = check_start(gw);
    if (e) {
        hl_gateway_free(gw);
        return e;
    }
    gw->hooks = (hl_server_hooks){worker_start, worker_stop, on_request, on_abort, on_drain, render_error, before_send, gw};
    if (cfg->privacy.detect_pii) {
        char perr[256];
        if (hl_pii_detector_new(&gw->pii, (const char *const *)cfg->privacy.custom_patterns,
                                (const char *const *)cfg->privacy.custom_names, cfg->privacy.n_custom, perr,
                                sizeof perr) != HL_OK) {
            hl_log(HL_LOG_ERROR, "PII detector: %s", perr);
            hl_gateway_free(gw);
            return HL_ERR_INVAL;
        }
    }
    if (cfg->api_keys_env && !gw->n_keys) {
        /* A configured but empty key list must not mean "no auth": refuse everything. */
        gw->keys[gw->n_keys++] = NULL;
    }
    *out = gw;
    return HL_OK;
}

void hl_gateway_free(hl_gateway *gw) {
    if (!gw) return;
    hl_pii_detector_free(gw->pii);
    hl_admin_free(gw->admin);
    hl_ui_free(gw->ui);
    hl_authlimit_free(gw->authlimit);
    for (int i = 0; i < HL_MAX_WORKERS; i++) hl_metrics_free(gw->metrics[i]);
    for (int i = 0; i < gw->n_keys; i++) {
        if (gw->keys[i]) explicit_bzero(gw->keys[i], strlen(gw->keys[i]));
        free(gw->keys[i]);
        free(gw->key_names[i]);
    }
    free(gw);
}

const hl_server_hooks *hl_gateway_hooks(hl_gateway *gw) { return &gw->hooks; }

void hl_gateway_set_store(hl_gateway *gw, hl_store *store) { gw->store = store; }

void hl_gateway_set_keys(hl_gateway *gw, hl_keys *keys, hl_key_budgets *budgets) {
    gw->vkeys = keys;
    gw->kbudgets = budgets;
}

hl_err hl_gateway_enable_admin(hl_gateway *gw, const char *store_location) {
    const char *var = gw->cfg->admin_key_env;
    if (!var) return HL_OK;
    const char *key = getenv(var);
    if (!key || !*key) {
        hl_log(HL_LOG_WARN, "server.admin_key_env names %s, but it is empty or unset: /admin/ is off", var);
        return HL_OK;
    }
    if (has_control(key) || strlen(key) < 16) {
        hl_log(HL_LOG_ERROR, "the admin key in %s is shorter than 16 characters or holds a control character; "
                             "refusing to start", var);
        return HL_ERR_INVAL;
    }
    if (!gw->authlimit && !(gw->authlimit = hl_authlimit_new())) return HL_ERR_NOMEM;
    if (!(gw->admin = hl_admin_new(key, store_location, gw->vkeys, gw->kbudgets, gw->authlimit))) return HL_ERR_NOMEM;
    hl_log(HL_LOG_INFO, "admin API on /admin/ (key from %s)", var);
    return HL_OK;
}

hl_err hl_gateway_enable_ui(hl_gateway *gw, const char *store_location) {
    const char *var = gw->cfg->admin_key_env;
    const char *key = var ? getenv(var) : NULL;
    hl_ui_access access = !var ? HL_UI_LOOPBACK : HL_UI_KEY;
    if (var && (!key || strlen(key) < 16 || has_control(key))) {
        access = HL_UI_CLOSED; /* never open because a variable was forgotten */
        key = NULL;
    }
    hl_ui_sources src = {.cfg = gw->cfg, .budgets = gw->budgets, .key_budgets = gw->kbudgets};
    if (!gw->authlimit && !(gw->authlimit = hl_authlimit_new())) return HL_ERR_NOMEM;
    if (!(gw->ui = hl_ui_new(access, key, store_location, &src, gw->authlimit))) return HL_ERR_NOMEM;
    hl_log(access == HL_UI_CLOSED ? HL_LOG_WARN : HL_LOG_INFO, "dashboard on /ui: %s",
           access == HL_UI_LOOPBACK ? "loopback clients only (no server.admin_key_env)"
           : access == HL_UI_KEY    ? "the admin key opens it"
                                    : "closed (the admin key's variable is empty or unusable)");
    return HL_OK;
}

hl_err hl_gateway_explain(const hl_config *cfg, hl_backends *bs, bool anthropic_format,
                          const hl_http_req *hreq, const char *body, size_t len, hl_buf *out) {
    const hl_ingress *ing = anthropic_format ? &hl_ingress_anthropic : &hl_ingress_openai;
    hl_chat_request req;
    hl_chat_request_init(&req);
    hl_api_error err = {0};
    hl_err rc = ing->parse_request(body, len, &req, &err);
    if (rc) {
        hl_buf_printf(out, "request rejected (HTTP %d): %s%s%s\n", err.status, err.message,
                      err.param[0] ? " [param " : "", err.param[0] ? err.param : "");
        if (err.param[0]) hl_buf_puts(out, "]\n");
        hl_chat_request_release(&req);
        return rc;
    }
    hl_pii_detector *d = NULL;
    if (cfg->privacy.detect_pii)
        hl_pii_detector_new(&d, (const char *const *)cfg->privacy.custom_patterns,
                            (const char *const *)cfg->privacy.custom_names, cfg->privacy.n_custom, NULL, 0);
    hl_exchange_read_hints(&req, hreq);
    hl_privacy_verdict pv;
    hl_privacy_decide(d, cfg->privacy.redact, &req, &pv);
    hl_pii_detector_free(d);
    if (pv.pii[0]) hl_buf_printf(out, "PII detected: %s%s\n", pv.pii, cfg->privacy.redact ? " (redacted)" : "");
    char tenant[64];
    hl_route_input in;
    hl_exchange_route_input(&req, hreq, NULL, !cfg->api_keys_env, "explain", pv.sensitive, tenant, sizeof tenant,
                            &in);
    hl_route route;
    hl_route_trace trace = {0};
    rc = hl_router_route(cfg, bs, &in, &route, &err, &trace);
    for (int i = 0; i < trace.n; i++) hl_buf_printf(out, "%s\n", trace.lines[i]);
    if (rc) {
        hl_buf_printf(out, "result: HTTP %d %s: %s\n", err.status, err.code, err.message);
    } else {
        hl_buf_printf(out, "result: %s (model %s), route reason %s", route.candidates[0]->cfg->name,
                      route.models[0], route.reason);
        for (int i = 1; i < route.n; i++)
            hl_buf_printf(out, "%s%s", i == 1 ? "; then " : ", ", route.candidates[i]->cfg->name);
        hl_buf_puts(out, "\n");
    }
    hl_chat_request_release(&req);
    return rc;
}
