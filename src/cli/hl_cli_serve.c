/* hl_cli_serve: `hybridllm serve` and `hybridllm route --explain` (see hl_cli.h). serve
 * assembles the gateway from its parts in named steps (config, ledger and its store, backends,
 * budgets, server), each on one struct that the last step takes apart in reverse. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "hl_backend.h"
#include "hl_buf.h"
#include "hl_builtin.h"
#include "hl_models.h"
#include "hl_cli.h"
#include "hl_config.h"
#include "hl_gateway.h"
#include "hl_health.h"
#include "hl_keybudget.h"
#include "hl_ledger.h"
#include "hl_log.h"
#include "hl_opt.h"
#include "hl_server.h"
#include "hl_store.h"

static const char serve_usage[] =
    "usage: hybridllm serve --config FILE [--log-level debug|info|warn|error]\n"
    "  Runs the gateway: the OpenAI- and Anthropic-compatible HTTP API, the router, the cost\n"
    "  ledger and its index, until SIGINT or SIGTERM (the first drains requests in flight, a\n"
    "  second one exits at once).\n"
    "  --config FILE      the gateway's YAML configuration (config/hybridllm.yaml)\n"
    "  --log-level L      debug, info (default), warn or error\n";

static const char route_usage[] =
    "usage: hybridllm route --explain --config FILE [--format openai|anthropic]\n"
    "                       [--header 'Name: value']...\n"
    "  Reads a request body on stdin and prints the routing decision and every rule that\n"
    "  matched or not. Calls no backend: every backend is taken as ready.\n"
    "  --explain          required: print the decision rule by rule\n"
    "  --config FILE      the gateway's configuration\n"
    "  --format F         the body's API: openai (default) or anthropic\n"
    "  --header 'N: V'    a request header (repeatable)\n";

/* Budgets over a shared store (hl_budget.h): the indexer thread syncs them around each pass. */
static void budget_sync_before(void *ctx) { hl_budgets_sync_begin(ctx, time(NULL)); }

static void budget_spend(void *ctx, const char *tenant, double day_usd, double month_usd) {
    hl_budgets_sync_add(ctx, tenant, day_usd, month_usd);
}

static void budget_sync_after(void *ctx, hl_store *conn) {
    time_t now = time(NULL);
    if (hl_store_cloud_spend(conn, (long long)now * 1000, budget_spend, ctx) == HL_OK)
        hl_budgets_sync_end(ctx, now);
    else
        hl_log(HL_LOG_WARN, "budgets: cannot read the shared spend: %s", hl_store_errmsg(conn));
}

static void *signal_thread(void *arg) {
    hl_server *srv = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig;
    if (sigwait(&set, &sig) != 0) return NULL;
    hl_log(HL_LOG_INFO, "received %s: draining (finishing requests in flight; send it again to stop now)",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
    hl_server_stop(srv);
    if (sigwait(&set, &sig) == 0) {
        hl_log(HL_LOG_WARN, "second signal: exiting without waiting for requests in flight");
        _exit(1);
    }
    return NULL;
}

enum { WRITEBACK_PERIOD_MS = 100 }; /* how often the journal's new full pages are sent */

/* Everything serve owns; serve_release() frees what was set up, in reverse. */
typedef struct serve_state {
    hl_config *cfg;
    hl_ledger ledger;
    hl_ledger_writeback *writeback; /* NULL: not started (the kernel's writeback alone) */
    hl_backends bs;
    hl_gateway *gw;
    hl_server *srv;
    hl_budgets *budgets;
    hl_health *health;
    hl_store *store;
    hl_store_indexer_hooks hooks; /* the budgets' sync and the keys' reload around each pass */
    bool budget_hooks;   /* the budgets are synced around each pass (a shared store) */
    hl_keys *keys;       /* the store's virtual keys, reloaded after each pass */
    hl_key_budgets *key_budgets; /* their budgets' totals, synced around each pass */
    bool shared_budgets; /* the budgets' totals come from the shared store */
    char instance[160];  /* this gateway's heartbeat id: host name and listen port */
} serve_state;

static const hl_opt_choice log_levels[] = {
    {"debug", HL_LOG_DEBUG}, {"info", HL_LOG_INFO}, {"warn", HL_LOG_WARN}, {"error", HL_LOG_ERROR}, {NULL, 0}};

/* Around every indexer pass: the budgets' sync (a shared store) and the keys' reload, so a
 * key revoked anywhere is refused here within one index interval. */
static void serve_before_pass(void *ctx) {
    serve_state *st = ctx;
    if (st->budget_hooks) budget_sync_before(st->budgets);
    hl_key_budgets_sync_begin(st->key_budgets);
}

static void serve_after_pass(void *ctx, hl_store *conn) {
    serve_state *st = ctx;
    if (st->budget_hooks) budget_sync_after(st->budgets, conn);
    if (st->keys && hl_keys_flush_used(st->keys, conn) != HL_OK)
        hl_log(HL_LOG_WARN, "keys: cannot record the keys' last use: %s", hl_store_errmsg(conn));
    if (st->keys && hl_keys_reload(st->keys, conn) != HL_OK)
        hl_log(HL_LOG_WARN, "keys: cannot reload the client keys: %s", hl_store_errmsg(conn));
    if (hl_key_budgets_sync(st->key_budgets, conn, (long long)time(NULL) * 1000) != HL_OK)
        hl_log(HL_LOG_WARN, "keys: cannot read the keys' spend: %s", hl_store_errmsg(conn));
    /* The heartbeat: the gateways seen within three index intervals share the rate limits. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int live = 1;
    if (hl_store_heartbeat(conn, st->instance, now_ms, now_ms - 3 * st->cfg->ledger_index_interval_ms, &live) != HL_OK)
        hl_log(HL_LOG_WARN, "keys: cannot record this gateway's heartbeat: %s", hl_store_errmsg(conn));
    hl_key_budgets_set_instances(st->key_budgets, live);
}

/* The indexer thread was poked: budget leases that admissions wait for (a fleet). */
static void serve_poked(void *ctx, hl_store *conn) {
    serve_state *st = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hl_key_budgets_lease_work(st->key_budgets, conn, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void serve_poke(void *ctx) { hl_store_indexer_poke(ctx); }

/* The store's location: ledger.store, or a SQLite file beside the journal (ledger.jsonl ->
 * ledger.db). */
static void store_location(const hl_config *cfg, char *out, size_t len) {
    if (cfg->ledger_store_path) {
        snprintf(out, len, "%s", cfg->ledger_store_path);
        return;
    }
    const char *dot = strrchr(cfg->ledger_path, '.'), *slash = strrchr(cfg->ledger_path, '/');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - cfg->ledger_path) : (int)strlen(cfg->ledger_path);
    snprintf(out, len, "%.*s.db", stem, cfg->ledger_path);
}

/* The index of the journal, kept up to date off the event loops. With a shared store the
 * budgets' running totals are every gateway's, re-read after each pass. A store that cannot
 * be opened disables the index, never the gateway. */
static void serve_open_store(serve_state *st) {
    char path[4096], serr[600], where[600];
    store_location(st->cfg, path, sizeof path);
    if (!path[0]) return;
    hl_store_redact(path, where, sizeof where);
    st->hooks = (hl_store_indexer_hooks){serve_before_pass, serve_after_pass, serve_poked, st};
    if (hl_store_open(&st->store, path, serr, sizeof serr) != HL_OK) {
        /* A database that is down now may be up in a minute: its indexer keeps trying.
         * A SQLite file that cannot be opened is a configuration problem. */
        if (hl_store_location_is_pg(path) && hl_store_open_later(&st->store, path) == HL_OK)
            hl_log(HL_LOG_WARN, "ledger store: %s (indexing starts when it answers)", serr);
        else
            hl_log(HL_LOG_WARN, "ledger store disabled: %s", serr);
    }
    if (!st->store) return;
    /* The keys as the store has them now, before serving (a store opened for later has none
     * yet: its indexer loads them once it connects). */
    if (st->keys && hl_store_schema_version(st->store) > 0 && hl_keys_reload(st->keys, st->store) != HL_OK)
        hl_log(HL_LOG_WARN, "keys: cannot load the client keys: %s", hl_store_errmsg(st->store));
    bool shared = st->budgets && hl_store_shared(st->store);
    st->budget_hooks = shared;
    /* A fleet: the keys' budgets through leases in the store (hl_keybudget.h). */
    if (hl_store_shared(st->store) && hl_store_set_instance(st->store, st->instance) == HL_OK)
        hl_key_budgets_set_fleet(st->key_budgets, serve_poke, st->store, 3 * st->cfg->ledger_index_interval_ms);
    if (hl_store_indexer_start(st->store, st->cfg->ledger_path, st->cfg->ledger_index_interval_ms,
                               &st->hooks) != HL_OK) {
        hl_log(HL_LOG_WARN, "ledger indexer not started: %s", hl_store_errmsg(st->store));
    } else if (!shared && hl_keys_total(st->keys) > 0) {
        /* The first pass, before serving: the keys' budgets start from every line written. */
        if (hl_store_indexer_sync(st->store) != HL_OK)
            hl_log(HL_LOG_WARN, "keys: the first index pass failed: the keys' spend is read at the next one");
    } else if (shared) {
        /* The first pass, before serving: the budgets start from the fleet's spend. */
        if (hl_store_indexer_sync(st->store) == HL_OK) {
            st->shared_budgets = true;
            hl_log(HL_LOG_INFO, "budgets: spend shared through %s (re-read every %ld ms)", where,
                   st->cfg->ledger_index_interval_ms);
        } else {
            hl_store_indexer_stats ist;
            hl_store_indexer_stats_get(st->store, &ist);
            hl_log(HL_LOG_WARN, "budgets: %s is unreachable (%s): starting from this gateway's "
                   "journal; the fleet's spend is read once it answers", where, ist.last_error);
        }
    }
    hl_log(HL_LOG_INFO, "ledger store: %s (%s)", where, hl_store_kind(st->store));
}

/* Loads each builtin backend's model; one that fails is marked not ready, with the reason. */
static void serve_open_builtins(hl_backends *bs) {
    for (size_t i = 0; i < bs->n; i++) {
        hl_backend *b = &bs->v[i];
        if (b->cfg->kind != HL_PROVIDER_BUILTIN) continue;
        char berr[512], st[320];
        if (hl_builtin_open(&b->builtin, b->cfg, berr, sizeof berr) == HL_OK) {
            snprintf(st, sizeof st, "ready: %.250s", hl_builtin_describe(b->builtin));
            if (!strcmp(b->cfg->model, "auto")) hl_backend_set_model(b, hl_builtin_model_name(b->builtin));
            hl_backend_set_ready(b, true, st);
            atomic_store(&b->warm, true);
        } else {
            if (hl_models_is_pulled(b->cfg->model_path))
                snprintf(st, sizeof st, "%.300s", berr);
            else
                snprintf(st, sizeof st, "cannot load %.100s: %.200s", b->cfg->model_path, berr);
            hl_backend_set_ready(b, false, st);
        }
    }
}

static void serve_log_backends(const hl_backends *bs) {
    for (size_t i = 0; i < bs->n; i++) {
        const hl_backend *b = &bs->v[i];
        hl_log(atomic_load(&b->ready) ? HL_LOG_INFO : HL_LOG_WARN, "backend %s (%s, %s, %s, model %s): %s",
               b->cfg->name, b->cfg->kind == HL_PROVIDER_ANTHROPIC ? "anthropic"
                             : b->cfg->kind == HL_PROVIDER_BUILTIN ? "builtin" : "openai",
               hl_backend_is_cloud(b) ? "cloud" : "local", b->base_url, b->model, b->status);
        if (hl_backend_is_cloud(b) && atomic_load(&b->ready) && !b->price)
            hl_log(HL_LOG_WARN, "backend %s: no price for model %s in `prices`: its ledger cost will be null",
                   b->cfg->name, b->model);
    }
}

/* Without a shared store, the budgets' running totals come from this gateway's journal. */
static void serve_replay_budgets(serve_state *st) {
    if (st->shared_budgets) return; /* the shared store's figures are already in */
    size_t replayed = 0;
    if (hl_budgets_load_ledger(st->budgets, st->cfg->ledger_path, time(NULL), &replayed) != HL_OK)
        hl_log(HL_LOG_WARN, "could not read %s for the budgets' running totals: %m", st->cfg->ledger_path);
    else if (st->budgets)
        hl_log(HL_LOG_INFO, "budgets: %zu ledger lines of the current periods replayed", replayed);
}

/* Opens the ledger, its store, the backends and the budgets. Returns 0 or 1 (logged). */
static int serve_open(serve_state *st) {
    if (hl_ledger_open(&st->ledger, st->cfg->ledger_path) != HL_OK) {
        hl_log(HL_LOG_ERROR, "cannot open ledger %s: %m", st->cfg->ledger_path);
        return 1;
    }
    if (hl_ledger_writeback_start(&st->ledger, WRITEBACK_PERIOD_MS, &st->writeback) != HL_OK)
        hl_log(HL_LOG_WARN, "ledger writeback thread not started (%m): the kernel writes the journal back alone");
    if (hl_budgets_new(&st->budgets, st->cfg) != HL_OK) return 1;
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0]) snprintf(host, sizeof host, "localhost");
    snprintf(st->instance, sizeof st->instance, "%s:%d", host, st->cfg->listen_port);
    if (!(st->keys = hl_keys_new()) || !(st->key_budgets = hl_key_budgets_new()) ||
        hl_key_budgets_set_tenants(st->key_budgets, st->cfg->tenants, st->cfg->n_tenants) != HL_OK)
        return 1;
    serve_open_store(st);
    if (hl_backends_init(&st->bs, st->cfg, true) != HL_OK) {
        hl_log(HL_LOG_ERROR, "out of memory while resolving backends");
        return 1;
    }
    serve_open_builtins(&st->bs);
    serve_log_backends(&st->bs);
    hl_health_warmup(&st->bs);
    if (!hl_backends_ready_count(&st->bs))
        hl_log(HL_LOG_WARN, "no backend is ready: requests will get 503. Set ANTHROPIC_API_KEY or "
                            "OPENAI_API_KEY, or start vLLM (:8000), a llama.cpp server (:8080) or "
                            "Ollama (:11434), or `hybridllm pull OWNER/NAME:QUANT` a GGUF model for the "
                            "builtin backend, then restart. GET /readyz shows the details.");
    serve_replay_budgets(st);
    return 0;
}

/* Starts the gateway, the server, health checks and the signal thread; serves until
 * stopped. Returns the exit status. */
static int serve_run(serve_state *st) {
    char err[1024];
    if (hl_gateway_init(&st->gw, st->cfg, &st->bs, &st->ledger, st->budgets) != HL_OK) return 1;
    hl_gateway_set_store(st->gw, st->store);
    hl_gateway_set_keys(st->gw, st->keys, st->key_budgets);
    char store_path[4096];
    store_location(st->cfg, store_path, sizeof store_path);
    if (hl_gateway_enable_admin(st->gw, st->store && store_path[0] ? store_path : NULL) != HL_OK) return 1;
    if (hl_gateway_enable_ui(st->gw, st->store && store_path[0] ? store_path : NULL) != HL_OK) return 1;
    if (hl_server_init(&st->srv, st->cfg, hl_gateway_hooks(st->gw), err, sizeof err) != HL_OK) {
        hl_log(HL_LOG_ERROR, "%s", err);
        return 1;
    }
    if (hl_health_start(&st->health, &st->bs, st->cfg) != HL_OK)
        hl_log(HL_LOG_WARN, "health thread not started: backends are not re-probed");
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_thread, st->srv);
    pthread_detach(sig_thread);
    const char *host = st->cfg->listen_host;
    bool v6 = strchr(host, ':') != NULL;
    hl_log(HL_LOG_INFO, "hybridllm %s listening on http://%s%s%s:%d (%d event loops), ledger %s", HL_VERSION,
           v6 ? "[" : "", host, v6 ? "]" : "", hl_server_port(st->srv), hl_server_workers(st->srv),
           st->cfg->ledger_path);
    int rc = hl_server_run(st->srv);
    hl_log(HL_LOG_INFO, "stopped: %lu ledger records written, %lu write errors",
           atomic_load(&st->ledger.records), atomic_load(&st->ledger.write_errors));
    return rc;
}

static void serve_release(serve_state *st) {
    hl_health_stop(st->health);
    hl_server_free(st->srv);
    hl_gateway_free(st->gw);
    hl_store_close(st->store); /* its indexer's final pass takes the last lines */
    hl_keys_free(st->keys);
    hl_key_budgets_free(st->key_budgets);
    hl_budgets_free(st->budgets);
    for (size_t i = 0; i < st->bs.n; i++) hl_builtin_free(st->bs.v[i].builtin);
    hl_backends_release(&st->bs);
    hl_ledger_writeback_stop(st->writeback);
    if (st->ledger.fd >= 0) hl_ledger_close(&st->ledger);
    hl_config_free(st->cfg);
}

int hl_cli_serve(int argc, char **argv) {
    const char *config_path = NULL;
    int level = -1;
    hl_opt opts[] = {
        {.name = "--config", .kind = HL_OPT_STR, .target = &config_path},
        {.name = "--log-level", .kind = HL_OPT_CHOICE, .target = &level, .choices = log_levels},
    };
    hl_opt_cmd c = {"serve", serve_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!config_path) return hl_opt_usage_error(&c, "--config FILE is required");
    if (level >= 0) hl_log_set_level((hl_log_level)level);
    /* libuv's thread pool resolves upstream host names and runs the dashboard's queries
     * (hl_ui.h, at most 4 at once): 8 threads leave name lookups room. Set before any thread
     * starts (setenv is not safe beside a getenv on another thread). */
    setenv("UV_THREADPOOL_SIZE", "8", 0);

    /* Every thread started from here on (engines, workers, health) inherits this mask: only
     * the signal thread sees SIGINT/SIGTERM, so a signal never lands on a thread that would
     * take the default action and kill the process mid-request. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char err[1024];
    serve_state st = {.ledger = {.fd = -1}};
    if (hl_config_load(config_path, &st.cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm: bad config: %s\n", err);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = serve_open(&st) ? 1 : serve_run(&st);
    serve_release(&st);
    curl_global_cleanup();
    return rc;
}

/* Reads all of stdin (at most b's limit) into b. */
static int read_stdin(hl_buf *b) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (hl_buf_append(b, chunk, n)) return -1;
    return ferror(stdin) ? -1 : 0;
}

/* --header 'Name: value' into the request's headers. */
static bool add_header(void *target, const char *h) {
    hl_http_req *req = target;
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || req->n_headers >= HL_HTTP_MAX_HEADERS) return false;
    const char *v = colon + 1;
    while (*v == ' ') v++;
    req->headers[req->n_headers].name = (hl_slice){h, (size_t)(colon - h)};
    req->headers[req->n_headers++].value = (hl_slice){v, strlen(v)};
    return true;
}

static const hl_opt_choice route_formats[] = {{"openai", 0}, {"anthropic", 1}, {NULL, 0}};

/* hybridllm route --explain: the router's decision for one request, rule by rule, without
 * calling any backend. Every backend is taken as ready (no probes), so the output shows the
 * policy itself; circuit breakers and observed latency start empty. */
int hl_cli_route(int argc, char **argv) {
    const char *config_path = NULL;
    bool explain = false;
    int anthropic = 0;
    hl_http_req req;
    memset(&req, 0, sizeof req);
    hl_opt opts[] = {
        {.name = "--explain", .kind = HL_OPT_FLAG, .target = &explain},
        {.name = "--config", .kind = HL_OPT_STR, .target = &config_path},
        {.name = "--format", .kind = HL_OPT_CHOICE, .target = &anthropic, .choices = route_formats},
        {.name = "--header", .kind = HL_OPT_FN, .target = &req, .fn = add_header,
         .want = "'Name: value'"},
    };
    hl_opt_cmd c = {"route", route_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!explain || !config_path) return hl_opt_usage_error(&c, "--explain and --config FILE are required");
    char err[1024];
    hl_config *cfg = NULL;
    if (hl_config_load(config_path, &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm: bad config: %s\n", err);
        return 1;
    }
    hl_backends bs = {0};
    hl_buf body, out;
    hl_buf_init(&body, 64u << 20);
    hl_buf_init(&out, 0);
    rc = 1;
    if (read_stdin(&body) != 0) {
        fprintf(stderr, "hybridllm route: could not read the request from stdin (64 MiB at most)\n");
        goto out;
    }
    if (hl_backends_init(&bs, cfg, false) != HL_OK) goto out;
    for (size_t i = 0; i < bs.n; i++) atomic_store(&bs.v[i].ready, true);
    rc = hl_gateway_explain(cfg, &bs, anthropic, &req, body.data ? body.data : "", body.len, &out) ? 1 : 0;
    fputs(out.data ? out.data : "", stdout);
out:
    hl_buf_release(&body);
    hl_buf_release(&out);
    hl_backends_release(&bs);
    hl_config_free(cfg);
    return rc;
}
