/* hybridllm: the command line. One binary, a table of subcommands.
 *
 *   hybridllm serve --config FILE     run the gateway
 *   hybridllm route --explain ...     show a routing decision
 *   hybridllm version
 *
 * Usage errors print the usage and exit 2; runtime failures exit 1. */
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
#include "hl_cli_report.h"
#include "hl_cli_store.h"
#include "hl_config.h"
#include "hl_engine_cli.h"
#include "hl_gateway.h"
#include "hl_health.h"
#include "hl_ledger.h"
#include "hl_log.h"
#include "hl_server.h"
#include "hl_store.h"

#define HL_VERSION "0.1.0"

static int usage(FILE *f) {
    fprintf(f,
            "usage: hybridllm <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve --config FILE [--log-level debug|info|warn|error]\n"
            "                         run the gateway (OpenAI-compatible HTTP API)\n"
            "  route --explain --config FILE [--format openai|anthropic] [--header 'Name: value']...\n"
            "                         read a request body on stdin and print the routing decision\n"
            "                         and every rule that matched or not; calls no backend\n"
            "  ledger index --journal FILE --db FILE|URI\n"
            "                         index a JSONL ledger into SQLite (a file) or PostgreSQL\n"
            "                         (postgresql://...); idempotent, resumable\n"
            "  report --db FILE|URI [--journal FILE] [--from ISO] [--to ISO] [--group-by KEY]\n"
            "         [--format table|json|csv] [--cloud-model NAME --config FILE]\n"
            "                         requests, tokens, cost, latency, errors, escalations and\n"
            "                         savings against all-cloud, grouped\n"
            "  advise [--tokens-per-month N | --ledger FILE] [--privacy required|no]\n"
            "         [--accuracy classification|reasoning|unsure] [--json]\n"
            "                         cloud or local: the brief's decision matrix and break-even\n"
            "                         arithmetic, from flags or a measured ledger\n"
            "  simulate [--policy FILE]... [--ledger FILE] [--seed N] [--json]\n"
            "                         replay a workload through the router, policies side by side\n"
            "  run MODEL.gguf -p PROMPT [-n N] [--temp T] [--threads T] [--seed S]\n"
            "                         generate with the embedded CPU engine; prints tokens/s\n"
            "  gguf info MODEL.gguf   print a GGUF file's metadata and tensors\n"
            "  version                print the version\n"
            "  help                   print this help\n");
    return f == stderr ? 2 : 0;
}

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

static int cmd_serve(int argc, char **argv) {
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "--log-level") && i + 1 < argc) {
            const char *l = argv[++i];
            if (!strcmp(l, "debug")) hl_log_set_level(HL_LOG_DEBUG);
            else if (!strcmp(l, "info")) hl_log_set_level(HL_LOG_INFO);
            else if (!strcmp(l, "warn")) hl_log_set_level(HL_LOG_WARN);
            else if (!strcmp(l, "error")) hl_log_set_level(HL_LOG_ERROR);
            else {
                fprintf(stderr, "hybridllm serve: unknown log level '%s'\n", l);
                return usage(stderr);
            }
        } else {
            fprintf(stderr, "hybridllm serve: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (!config_path) {
        fprintf(stderr, "hybridllm serve: --config FILE is required\n");
        return usage(stderr);
    }

    /* Every thread started from here on (engines, workers, health) inherits this mask: only
     * the signal thread sees SIGINT/SIGTERM, so a signal never lands on a thread that would
     * take the default action and kill the process mid-request. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char err[1024];
    hl_config *cfg = NULL;
    if (hl_config_load(config_path, &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm: bad config: %s\n", err);
        return 1;
    }
    int rc = 1;
    hl_ledger ledger = {.fd = -1};
    hl_backends bs = {0};
    hl_gateway *gw = NULL;
    hl_server *srv = NULL;
    hl_budgets *budgets = NULL;
    hl_health *health = NULL;
    hl_store *store = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (hl_ledger_open(&ledger, cfg->ledger_path) != HL_OK) {
        hl_log(HL_LOG_ERROR, "cannot open ledger %s: %m", cfg->ledger_path);
        goto out;
    }
    char store_path[4096];
    if (cfg->ledger_store_path) {
        snprintf(store_path, sizeof store_path, "%s", cfg->ledger_store_path);
    } else {
        /* Beside the journal: ledger.jsonl -> ledger.db */
        const char *dot = strrchr(cfg->ledger_path, '.'), *slash = strrchr(cfg->ledger_path, '/');
        int stem = dot && (!slash || dot > slash) ? (int)(dot - cfg->ledger_path) : (int)strlen(cfg->ledger_path);
        snprintf(store_path, sizeof store_path, "%.*s.db", stem, cfg->ledger_path);
    }
    if (hl_budgets_new(&budgets, cfg) != HL_OK) goto out;
    bool shared_budgets = false;
    if (store_path[0]) {
        /* The index of the journal, kept up to date off the event loops. With a shared
         * store the budgets' running totals are every gateway's, re-read after each pass. */
        char serr[600], where[600];
        hl_store_redact(store_path, where, sizeof where);
        hl_store_indexer_hooks hooks = {budget_sync_before, budget_sync_after, budgets};
        if (hl_store_open(&store, store_path, serr, sizeof serr) != HL_OK) {
            /* A database that is down now may be up in a minute: its indexer keeps trying.
             * A SQLite file that cannot be opened is a configuration problem. */
            if (hl_store_location_is_pg(store_path) && hl_store_open_later(&store, store_path) == HL_OK)
                hl_log(HL_LOG_WARN, "ledger store: %s (indexing starts when it answers)", serr);
            else
                hl_log(HL_LOG_WARN, "ledger store disabled: %s", serr);
        }
        if (store && hl_store_indexer_start(store, cfg->ledger_path, cfg->ledger_index_interval_ms,
                                            budgets && hl_store_shared(store) ? &hooks : NULL) != HL_OK) {
            hl_log(HL_LOG_WARN, "ledger indexer not started: %s", hl_store_errmsg(store));
        } else if (store && budgets && hl_store_shared(store)) {
            /* The first pass, before serving: the budgets start from the fleet's spend. */
            if (hl_store_indexer_sync(store) == HL_OK) {
                shared_budgets = true;
                hl_log(HL_LOG_INFO, "budgets: spend shared through %s (re-read every %ld ms)", where,
                       cfg->ledger_index_interval_ms);
            } else {
                hl_store_indexer_stats ist;
                hl_store_indexer_stats_get(store, &ist);
                hl_log(HL_LOG_WARN, "budgets: %s is unreachable (%s): starting from this gateway's "
                       "journal; the fleet's spend is read once it answers", where, ist.last_error);
            }
        }
        if (store) hl_log(HL_LOG_INFO, "ledger store: %s (%s)", where, hl_store_kind(store));
    }
    if (hl_backends_init(&bs, cfg, true) != HL_OK) {
        hl_log(HL_LOG_ERROR, "out of memory while resolving backends");
        goto out;
    }
    for (size_t i = 0; i < bs.n; i++) {
        hl_backend *b = &bs.v[i];
        if (b->cfg->kind != HL_PROVIDER_BUILTIN) continue;
        char berr[512];
        if (hl_builtin_open(&b->builtin, b->cfg, berr, sizeof berr) == HL_OK) {
            char st[320];
            snprintf(st, sizeof st, "ready: %.250s", hl_builtin_describe(b->builtin));
            hl_backend_set_ready(b, true, st);
            atomic_store(&b->warm, true);
        } else {
            char st[320];
            snprintf(st, sizeof st, "cannot load %.100s: %.200s", b->cfg->model_path, berr);
            hl_backend_set_ready(b, false, st);
        }
    }
    for (size_t i = 0; i < bs.n; i++) {
        const hl_backend *b = &bs.v[i];
        hl_log(atomic_load(&b->ready) ? HL_LOG_INFO : HL_LOG_WARN, "backend %s (%s, %s, %s, model %s): %s",
               b->cfg->name, b->cfg->kind == HL_PROVIDER_ANTHROPIC ? "anthropic"
                             : b->cfg->kind == HL_PROVIDER_BUILTIN ? "builtin" : "openai",
               hl_backend_is_cloud(b) ? "cloud" : "local", b->base_url, b->model, b->status);
        if (hl_backend_is_cloud(b) && atomic_load(&b->ready) && !b->price)
            hl_log(HL_LOG_WARN, "backend %s: no price for model %s in `prices`: its ledger cost will be null",
                   b->cfg->name, b->model);
    }
    hl_health_warmup(&bs);
    if (!hl_backends_ready_count(&bs))
        hl_log(HL_LOG_WARN, "no backend is ready: requests will get 503. Set ANTHROPIC_API_KEY or "
                            "OPENAI_API_KEY, or start vLLM (:8000), a llama.cpp server (:8080) or "
                            "Ollama (:11434), then restart. GET /readyz shows the details.");
    size_t replayed = 0;
    if (!shared_budgets) { /* else the shared store's figures are already in */
        if (hl_budgets_load_ledger(budgets, cfg->ledger_path, time(NULL), &replayed) != HL_OK)
            hl_log(HL_LOG_WARN, "could not read %s for the budgets' running totals: %m", cfg->ledger_path);
        else if (budgets)
            hl_log(HL_LOG_INFO, "budgets: %zu ledger lines of the current periods replayed", replayed);
    }
    if (hl_gateway_init(&gw, cfg, &bs, &ledger, budgets) != HL_OK) goto out;
    hl_gateway_set_store(gw, store);

    if (hl_server_init(&srv, cfg, hl_gateway_hooks(gw), err, sizeof err) != HL_OK) {
        hl_log(HL_LOG_ERROR, "%s", err);
        goto out;
    }
    if (hl_health_start(&health, &bs, cfg) != HL_OK) hl_log(HL_LOG_WARN, "health thread not started: backends are not re-probed");
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_thread, srv);
    pthread_detach(sig_thread);
    hl_log(HL_LOG_INFO, "hybridllm %s listening on http://%s%s%s:%d (%d event loops), ledger %s",
           HL_VERSION, strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
           strchr(cfg->listen_host, ':') ? "]" : "", hl_server_port(srv), hl_server_workers(srv),
           cfg->ledger_path);
    rc = hl_server_run(srv);
    hl_log(HL_LOG_INFO, "stopped: %lu ledger records written, %lu write errors",
           atomic_load(&ledger.records), atomic_load(&ledger.write_errors));
out:
    hl_health_stop(health);
    hl_server_free(srv);
    hl_gateway_free(gw);
    hl_store_close(store); /* its indexer's final pass takes the last lines */
    hl_budgets_free(budgets);
    for (size_t i = 0; i < bs.n; i++) hl_builtin_free(bs.v[i].builtin);
    hl_backends_release(&bs);
    if (ledger.fd >= 0) hl_ledger_close(&ledger);
    hl_config_free(cfg);
    curl_global_cleanup();
    return rc;
}

/* Reads all of stdin (at most max bytes) into b. */
static int read_stdin(hl_buf *b) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (hl_buf_append(b, chunk, n)) return -1;
    return ferror(stdin) ? -1 : 0;
}

/* hybridllm route --explain: the router's decision for one request, rule by rule, without
 * calling any backend. Every backend is taken as ready (no probes), so the output shows the
 * policy itself; circuit breakers and observed latency start empty. */
static int cmd_route(int argc, char **argv) {
    const char *config_path = NULL;
    bool explain = false, anthropic = false;
    hl_http_req req;
    memset(&req, 0, sizeof req);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--explain")) {
            explain = true;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "anthropic")) anthropic = true;
            else if (strcmp(f, "openai") != 0) {
                fprintf(stderr, "hybridllm route: --format is openai or anthropic, not '%s'\n", f);
                return usage(stderr);
            }
        } else if (!strcmp(argv[i], "--header") && i + 1 < argc) {
            const char *h = argv[++i], *colon = strchr(h, ':');
            if (!colon || colon == h || req.n_headers >= HL_HTTP_MAX_HEADERS) {
                fprintf(stderr, "hybridllm route: --header wants 'Name: value', got '%s'\n", h);
                return usage(stderr);
            }
            const char *v = colon + 1;
            while (*v == ' ') v++;
            req.headers[req.n_headers].name = (hl_slice){h, (size_t)(colon - h)};
            req.headers[req.n_headers++].value = (hl_slice){v, strlen(v)};
        } else {
            fprintf(stderr, "hybridllm route: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (!explain || !config_path) {
        fprintf(stderr, "hybridllm route: --explain and --config FILE are required\n");
        return usage(stderr);
    }
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
    int rc = 1;
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

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("hybridllm %s\n", HL_VERSION);
    return 0;
}

/* hybridllm gguf info MODEL.gguf */
static int cmd_gguf(int argc, char **argv) { return hl_engine_cli_gguf(argc, argv); }

static int cmd_help(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return usage(stdout);
}

static const command commands[] = {
    {"serve", cmd_serve},
    {"route", cmd_route},
    {"ledger", hl_cli_store_ledger},
    {"report", hl_cli_store_report},
    {"advise", hl_cli_advise},
    {"simulate", hl_cli_simulate},
    {"run", hl_engine_cli_run},
    {"gguf", cmd_gguf},
    {"version", cmd_version},
    {"help", cmd_help},
};

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hybridllm: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
