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

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "hl_config.h"

/* How a local server counts tokens for the gateway (POST {root}/tokenize). */
enum { HL_TOKENIZE_NONE, HL_TOKENIZE_LLAMA /* {"content"} -> {"tokens"} */,
       HL_TOKENIZE_VLLM /* {"model","prompt"} -> {"count"} */ };

/* Circuit breaker state (see hl_backend_cfg for the policy). Shared by all event loops. */
typedef enum hl_breaker_state { HL_BREAKER_CLOSED, HL_BREAKER_OPEN, HL_BREAKER_HALF_OPEN } hl_breaker_state;

typedef struct hl_breaker {
    pthread_mutex_t mu;
    hl_breaker_state state;
    double opened_at;      /* ms, monotonic */
    double *failures;      /* ring of the last breaker_failures failure times (ms) */
    int head, count;
    bool probe_out;        /* half-open: the one probe is in flight */
    atomic_int open_flag;  /* state != CLOSED, readable without the lock */
} hl_breaker;

/* One URL of a backend whose base_url lists replicas of one server (cfg->replicas): requests
 * are balanced across the ready ones (hl_backend_admit_at). Each has its own probe result,
 * circuit breaker and latency; one whose connection fails is out until a probe answers. */
typedef struct hl_replica {
    const char *url;           /* borrowed from the config */
    atomic_bool ready;         /* its last probe answered and no connection failed since */
    atomic_int in_flight;      /* attempts sent to it and not yet done */
    hl_breaker breaker;
    pthread_mutex_t lat_mu;
    double lat[128];           /* ring of recent latencies, ms */
    int lat_n, lat_head;
    _Atomic double lat_p95;    /* -1 until 16 samples exist */
} hl_replica;

typedef struct hl_backend {
    const hl_backend_cfg *cfg; /* borrowed from the config */
    char *api_key;             /* owned; NULL when none; never logged */
    /* base_url, model and status change when the health thread probes the backend (at start,
     * every health_interval_ms for local backends and those that are not ready, and soon after
     * a connection to it failed), under `mu`. A replaced string is retired, not freed: a
     * request that read the old pointer keeps using it; they are freed at release (one per
     * change of server or model, which is rare). */
    pthread_mutex_t mu;
    char *base_url;            /* owned; the URL in use */
    char *model;               /* owned; resolved default upstream model */
    char **retired;            /* replaced strings, freed at release */
    size_t n_retired;
    _Atomic long n_ctx;        /* the context window the server reported (llama.cpp /props,
                                  vLLM max_model_len, Ollama /api/show); 0: unknown */
    atomic_bool suspect;       /* a connection failed: the health thread probes it soon */
    atomic_int tokenizer;      /* the server's POST /tokenize: HL_TOKENIZE_* */
    const hl_price *price;     /* borrowed; NULL when the model has no price */
    atomic_bool ready;
    atomic_bool warm;          /* a warm-up or keep-warm completion succeeded */
    _Atomic double last_used_ms; /* monotonic ms of the last attempt sent to it */
    char status[320];          /* "ready" or why not, with a hint; read with hl_backend_status */
    struct hl_builtin *builtin;/* kind builtin: the loaded engine (owned by main); else NULL */
    hl_breaker breaker;
    /* Observed latency of successful attempts (whole response, or time to first token for
     * streams), for routing on a client's latency budget. */
    pthread_mutex_t lat_mu;
    double lat[128];           /* ring of recent samples, ms */
    int lat_n, lat_head;
    _Atomic double lat_p95;    /* -1 until 16 samples exist */
    hl_replica *replicas;      /* owned; cfg->replicas: one per base URL; else NULL */
    size_t n_replicas;
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
/* Probes a backend again (blocking, short timeouts): one that is not ready, or a local or
 * `model: auto` one whose server may have gone, restarted or switched models (the model and
 * the context window are rediscovered; a failed probe marks it not ready, with why). True
 * when ready now. Called by the health thread. */
bool hl_backend_reprobe(hl_backend *b, const hl_config *cfg);
/* Should the health thread probe b even while it is ready? (local servers, auto models) */
bool hl_backend_probes_when_ready(const hl_backend *b);
/* A connection to b failed: have the health thread probe it soon (server restarted, model
 * switched). Any thread. */
void hl_backend_suspect(hl_backend *b);
/* The context window in tokens: the configured context_window, else what the server
 * reported; 0 when unknown. */
long hl_backend_context_window(hl_backend *b);
/* The server's root from an OpenAI base URL (a trailing "/v1" off), into out. */
void hl_backend_server_root(const char *url, char *out, size_t len);
/* Whether b can take requests now, and why not (into why: its status line, or its circuit
 * breaker): ready, and the breaker not open. now_ms: monotonic ms. For /readyz. */
bool hl_backend_readiness(hl_backend *b, double now_ms, char *why, size_t len);
/* Copies the status line into buf. */
void hl_backend_status(hl_backend *b, char *buf, size_t len);
/* Sends one 1-token completion; its latency in ms, or -1 on failure. Blocking. */
double hl_backend_ping(hl_backend *b);
size_t hl_backends_ready_count(const hl_backends *bs);
/* Does backend b serve upstream model `model` (its default or one of its `models`)? */
bool hl_backend_serves(const hl_backend *b, const char *model);
/* May an attempt go to b now? False while its breaker is open. When the open period is
 * over, the first caller gets the half-open probe (*probe set) and the others false.
 * now_ms is a monotonic clock in milliseconds. */
bool hl_backend_admit(hl_backend *b, double now_ms, bool *probe);
/* Cheap check for routing: false while the breaker is open and its open period runs. */
bool hl_backend_breaker_allows(hl_backend *b, double now_ms);
/* The outcome of an admitted attempt (failures: connection errors, timeouts, 5xx, 529). */
void hl_backend_report(hl_backend *b, bool ok, bool probe, double now_ms);
/* Adds a latency sample (ms) and refreshes the p95 (every 8 samples while the window fills,
 * then every 64). */
void hl_backend_record_latency(hl_backend *b, double ms);
/* Observed p95 latency in ms, or -1 when there are too few samples. */
static inline double hl_backend_p95(hl_backend *b) { return atomic_load(&b->lat_p95); }
/* An admitted probe ended without an outcome (client gone): let the next request probe. */
void hl_backend_probe_abandoned(hl_backend *b, double now_ms);
const char *hl_breaker_state_name(hl_backend *b);

/* The URL and upstream model in use. The health thread may replace them while requests run
 * (under b->mu, the old strings kept until release), so the request path, which takes no
 * lock, reads them through these. */
static inline const char *hl_backend_model(const hl_backend *b) { return __atomic_load_n(&b->model, __ATOMIC_ACQUIRE); }
static inline const char *hl_backend_base_url(const hl_backend *b) {
    return __atomic_load_n(&b->base_url, __ATOMIC_ACQUIRE);
}

static inline bool hl_backend_is_cloud(const hl_backend *b) {
    return b->cfg->location == HL_LOCATION_CLOUD;
}

/* ---- replicas (cfg->replicas) ----
 * An attempt takes a replica with hl_backend_admit_at (replica -1: the backend has none, and
 * the backend-wide breaker applies, as with hl_backend_admit), reports to it with the *_at
 * functions, and ends with hl_backend_replica_done. */

/* Picks the replica for an attempt: of the ready ones whose breaker admits, two at random
 * (rnd: a random number) and the one with fewer attempts in flight (then the lower p95);
 * admits it (*probe: it is its breaker's half-open probe) and counts the attempt in flight.
 * False when none can take it. For a backend without replicas: hl_backend_admit, *replica -1. */
bool hl_backend_admit_at(hl_backend *b, double now_ms, uint64_t rnd, bool *probe, int *replica);
void hl_backend_report_at(hl_backend *b, int replica, bool ok, bool probe, double now_ms);
void hl_backend_record_latency_at(hl_backend *b, int replica, double ms);
void hl_backend_probe_abandoned_at(hl_backend *b, int replica, double now_ms);
/* A connection to the replica failed: it leaves the balancing until a probe answers (the
 * health thread probes soon); with no replica left the backend is not ready. */
void hl_backend_suspect_at(hl_backend *b, int replica);
/* The attempt on the replica ended (its ledger line is written). replica -1: nothing. */
void hl_backend_replica_done(hl_backend *b, int replica);
/* The replica's URL; NULL for -1. */
static inline const char *hl_backend_replica_url(const hl_backend *b, int replica) {
    return replica >= 0 && (size_t)replica < b->n_replicas ? b->replicas[replica].url : NULL;
}
const char *hl_replica_breaker_name(hl_replica *r);

/* Marks a backend ready or not, with a status line (for builtin backends, once loaded). */
void hl_backend_set_ready(hl_backend *b, bool ready, const char *status);
/* A builtin backend with `model: auto` serves as the loaded file's name (copied). Before the
 * event loops start. */
hl_err hl_backend_set_model(hl_backend *b, const char *model);

#endif
