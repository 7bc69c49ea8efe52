/* hl_config: the gateway's configuration, loaded from YAML.
 *
 * The file is parsed with libyaml into a node tree (hl_yaml.h) and mapped onto the structs
 * below by the schema in hl_config.c: one table row per key, with its type, default, bounds
 * and help (hl_config_print_reference() prints them; the comments below say what a field
 * means, not its default). Every error names file, line and key and says what was expected,
 * e.g. "gw.yaml:12: backends[1].kind: expected one of openai, anthropic; got 'ollama'".
 * Unknown keys are errors (a typo must not silently fall back to a default). Secrets never
 * live in the file: a backend names the environment variable that holds its key.
 *
 * Ownership: hl_config_load() returns a config the caller frees with hl_config_free(); all
 * strings inside are owned by the config. The config is immutable once loaded and is shared
 * read-only by every event-loop thread. */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "hl_err.h"

/* Bounds that the modules using the config rely on (test_config checks they match theirs:
 * HL_HTTP_MAX_HEADERS, HL_PII_MAX_CUSTOM, HL_PII_MAX_NAME). */
#define HL_CONFIG_MAX_HEADERS 128      /* server.max_headers at most */
#define HL_CONFIG_MAX_PII_PATTERNS 32  /* privacy.custom_patterns at most */
#define HL_CONFIG_MAX_PII_NAME 32      /* bytes in a custom pattern's name */

typedef enum hl_provider_kind {
    HL_PROVIDER_OPENAI,    /* OpenAI API and OpenAI-compatible servers (vLLM, llama.cpp, Ollama) */
    HL_PROVIDER_ANTHROPIC, /* Anthropic Messages API */
    HL_PROVIDER_BUILTIN,   /* the embedded CPU engine, a GGUF model in this process */
} hl_provider_kind;

typedef enum hl_location {
    HL_LOCATION_LOCAL, /* runs on our hardware: data never leaves the machine */
    HL_LOCATION_CLOUD, /* a third party's service */
} hl_location;

typedef enum hl_tristate { HL_ANY = 0, HL_YES, HL_NO } hl_tristate; /* HL_ANY: not set */

typedef struct hl_backend_cfg {
    char *name;             /* unique; also accepted as `model` to force this backend */
    hl_provider_kind kind;
    hl_location location;
    char **base_urls;       /* 1 or more (none for builtin): with several, the first that answers
                               at start wins (how the default config finds a local server on
                               8000/8080/11434) */
    size_t n_base_urls;
    char *api_key_env;      /* name of the environment variable with the key; NULL: none */
    char *model;            /* default upstream model; "auto": first id from GET /models */
    char **models;          /* more model names this backend serves (forced by name) */
    size_t n_models;
    double hourly_cost_usd; /* local cost model: busy time x this */
    long timeout_ms;        /* whole upstream attempt */
    long connect_timeout_ms;
    /* Retries of a failed attempt on this backend before the next candidate is tried:
     * exponential backoff from retry_base_ms (x2 per retry, up to retry_max_ms, minus up to
     * 25% jitter), or what the upstream's retry-after-ms / retry-after asks for. */
    int max_retries;
    long retry_base_ms;
    long retry_max_ms;
    /* Circuit breaker: open after breaker_failures failed attempts within breaker_window_ms;
     * while open the backend is skipped; after breaker_open_ms one probe request is let
     * through (half-open) and its outcome closes or re-opens the breaker. */
    int breaker_failures;
    long breaker_window_ms;
    long breaker_open_ms;
    long context_window;    /* tokens the model takes; 0: unknown (not checked) */
    long max_tokens;        /* output tokens asked for when a request sets none (sent upstream,
                               and what virtual keys' budgets reserve); 0: none */
    /* A streamed attempt whose upstream sends nothing for this long is ended (closed, an error
     * frame for the client, or the next candidate when nothing was sent yet); 0: off. The
     * first byte gets first_token_timeout_ms instead (a cold local model loading); 0 there:
     * stream_idle_timeout_ms. */
    long stream_idle_timeout_ms;
    long first_token_timeout_ms;
    hl_tristate warmup;     /* HL_YES: send one tiny completion at start (the brief's cold-start
                               failure mode); never HL_ANY once loaded */
    long keep_warm_ms;      /* ping a local backend idle this long; 0: off */
    char *ca_file;          /* PEM bundle of the CAs trusted for https:// (instead of the
                               system's); NULL: the system's. The global upstream.ca_file is
                               copied here at load when a backend sets none */
    bool allow_insecure_http; /* a cloud backend may use http:// outside loopback */
    bool replicas;            /* base_urls are replicas of one server: requests are balanced
                                 across the healthy ones (else: the first that answers) */
    /* kind builtin only: */
    char *model_path;       /* GGUF file (required) */
    int threads;            /* matmul threads; 0: one per core */
    long context_size;      /* tokens; 0: the model's, at most 4096 */
    char *chat_template;    /* template family name; NULL: from the model's metadata */
    int max_queue;          /* requests waiting for the engine before 503 */
    int max_sequences;      /* requests generated together (one KV cache each); builtin only
                               (0 for the others) */
    hl_tristate repack_weights; /* HL_NO: run Q4_0/Q8_0 weights in the file's layout instead of
                               a copy repacked for the fastest kernels (saves their size in
                               memory, costs decode speed); builtin only; HL_ANY: yes */
    int pooling;            /* embeddings' pooling, an hl_engine_pooling: 0 as the model
                               says, 1 mean, 2 cls, 3 last; builtin only */
    int line;               /* where it was declared, for later diagnostics */
} hl_backend_cfg;

typedef struct hl_price {
    char *model;               /* exact upstream model name */
    double input_per_mtok;     /* USD per 1M input tokens */
    double output_per_mtok;    /* USD per 1M output tokens */
    double cached_input_per_mtok; /* cache reads */
    double cache_write_per_mtok;  /* cache creation (Anthropic) */
} hl_price;

/* One routing rule. A rule matches when every condition it sets holds (unset conditions
 * match anything). Rules are tried in order; the first match wins. */

typedef struct hl_split {
    char *to;              /* backend name */
    unsigned weight;       /* relative share, > 0 */
} hl_split;

/* A local answer's confidence signal (see hl_confidence_signals in hl_chat.h): the geometric
 * mean of its token probabilities, its first token's top-1 minus top-2 probability, or its
 * least likely token's probability. */
typedef enum hl_conf_signal { HL_SIGNAL_GEOMEAN = 0, HL_SIGNAL_MARGIN, HL_SIGNAL_MIN } hl_conf_signal;
/* "geomean", "margin", "min" (static strings). */
const char *hl_conf_signal_name(hl_conf_signal s);

typedef enum hl_sticky {
    HL_STICKY_REQUEST = 0, /* each request draws anew (hash of its request id) */
    HL_STICKY_TENANT,      /* a tenant (x-hybridllm-tenant, else the client's API key) always
                              lands on the same side of the split */
} hl_sticky;

typedef struct hl_route_rule {
    char *name;            /* shown in x-hybridllm-route-reason and the ledger */
    /* when: */
    char **task_types;     /* when.task_type (declared, else inferred); NULL/0: any */
    size_t n_task_types;
    hl_tristate sensitive; /* when.sensitive: declared regulated/PII, or PII detected */
    char **models;         /* when.model: aliases a client may send as `model` */
    size_t n_models;
    char **tenants;        /* when.tenant */
    size_t n_tenants;
    long min_prompt_tokens;/* when.min_prompt_tokens: estimated prompt size at least; 0: unset */
    long max_prompt_tokens;/* when.max_prompt_tokens: at most; 0: unset */
    long latency_budget_below_ms; /* when.latency_budget_below_ms: the request's latency budget
                              (x-hybridllm-latency-budget-ms) is below this; 0: unset */
    /* then: exactly one of `to` and `split` */
    char **to;             /* backend names in preference order: the first usable one wins */
    size_t n_to;
    hl_split *split;       /* weighted split; the drawn backend first, the others as fallbacks */
    size_t n_split;
    hl_sticky sticky;
    /* escalate: local first, cloud when the local answer's confidence is low */
    double escalate_below; /* 0: no escalation; else threshold on confidence in (0, 1] */
    hl_conf_signal escalate_signal; /* escalate.signal: which confidence escalate_below reads */
    char **escalate_to;
    size_t n_escalate_to;
    bool escalate_streams; /* escalate.stream: buffer (true) or off */
    /* shadow: after the client has its answer, the same request also goes to shadow_to, off
     * the critical path, and the two answers are compared (src/gateway/hl_shadow.h) */
    double shadow_rate;    /* share of the rule's requests shadowed, [0, 1] */
    char **shadow_to;      /* backends asked; NULL/0: no shadow */
    size_t n_shadow_to;
    int shadow_compare;    /* an hl_shadow_compare */
    double shadow_threshold; /* agree at this score (token_f1, rouge_l, embedding, judge) */
    char *shadow_embeddings; /* compare embedding: the backend that embeds both answers */
    char *shadow_judge;    /* compare judge: the backend that judges both answers */
    bool shadow_cloud;     /* the opt-in: shadow_to, judge or embeddings may be cloud backends */
    int line;
} hl_route_rule;

/* How a route's shadow answers are scored: the first six are hl_compare's methods
 * (src/quality/hl_compare.h) in its order; then cosine of embeddings and an LLM judge. */
typedef enum hl_shadow_compare {
    HL_SHADOW_AUTO = 0, HL_SHADOW_EXACT, HL_SHADOW_JSON, HL_SHADOW_TOOLS, HL_SHADOW_TOKEN_F1,
    HL_SHADOW_ROUGE_L, HL_SHADOW_EMBEDDING, HL_SHADOW_JUDGE
} hl_shadow_compare;

/* A cloud spend cap, from the ledger's running totals. */
typedef enum hl_budget_period { HL_BUDGET_MONTH, HL_BUDGET_DAY } hl_budget_period;
typedef enum hl_budget_action {
    HL_BUDGET_LOCAL,  /* at the cap, cloud backends are skipped: requests go local */
    HL_BUDGET_REJECT, /* at the cap, requests that would need the cloud get a 429 */
} hl_budget_action;

typedef struct hl_budget_cfg {
    char *name;
    hl_budget_period period; /* calendar month or day, UTC */
    double limit_usd;
    bool per_tenant;         /* scope: tenant (each tenant its own cap) or global */
    char *tenant;            /* only this tenant; NULL: all (with per_tenant: each) */
    hl_budget_action action;
    int line;
} hl_budget_cfg;

/* A tenant's rate limits (tenants:), shared by all its virtual keys on top of each key's own
 * (src/gateway/hl_keybudget.h); 0: no limit. Its budgets likewise, reserved against by every
 * request of its keys; < 0: none. */
typedef struct hl_tenant_cfg {
    char *name;
    long rpm, tpm;
    double budget_day_usd, budget_month_usd;
    int line;
} hl_tenant_cfg;

/* Privacy: the PII detector the router runs on every request (src/router/hl_pii.h). */
typedef struct hl_privacy_cfg {
    bool detect_pii;        /* detected PII makes a request sensitive */
    bool redact;            /* replace detected values with typed placeholders
                               before any upstream call instead (declared sensitivity still
                               keeps a request local) */
    char **custom_names;    /* custom PCRE2 patterns and their names (parallel arrays) */
    char **custom_patterns;
    size_t n_custom;
} hl_privacy_cfg;

typedef struct hl_config {
    char *path;                /* the file it came from */
    /* server: */
    char *listen_host;
    int listen_port;
    int threads;               /* event loops; 0 = one per core */
    size_t max_body_bytes;
    size_t max_header_bytes;   /* whole request head */
    int max_headers;           /* <= HL_CONFIG_MAX_HEADERS */
    long read_timeout_ms;      /* a request must arrive completely within this */
    long idle_timeout_ms;      /* keep-alive idle close */
    long shutdown_timeout_ms;  /* graceful drain limit on SIGTERM */
    long write_timeout_ms;     /* a client that takes no response bytes for this long is cut */
    int max_connections;       /* open client connections at most (all event loops); 0: from
                                  the fd limit (see hl_server.h) */
    long request_timeout_ms;   /* a chat request's whole life, retries included */
    long health_interval_ms;   /* re-probe backends that are not ready, local ones, auto models */
    char *api_keys_env;        /* env var with comma-separated client keys; NULL: no auth */
    char *admin_key_env;       /* env var with the admin API's key; NULL: no /admin/ */
    long key_reserve_max_tokens; /* output tokens a key's budget reserves without max_tokens */
    bool status_requires_key;  /* /metrics and /readyz need a client key too */
    /* upstream: */
    char *upstream_ca_file;    /* every backend's ca_file unless it sets its own; NULL: none */
    /* ledger: */
    char *ledger_path;         /* the journal */
    char *ledger_store_path;   /* index of the journal, kept by a background thread: a SQLite
                                  file, or a postgresql:// URI (shared by several gateways,
                                  with their budgets); NULL: the journal's path with ".db" for
                                  its extension; "" turns it off */
    long ledger_index_interval_ms; /* how often the store catches up with the journal (and a
                                      shared store's spend is re-read) */
    /* backends, prices, routes: */
    hl_backend_cfg *backends;
    size_t n_backends;
    hl_price *prices;
    size_t n_prices;
    hl_route_rule *routes;
    size_t n_routes;
    hl_budget_cfg *budgets;
    size_t n_budgets;
    hl_tenant_cfg *tenants;
    size_t n_tenants;
    hl_privacy_cfg privacy;
    /* shadow: limits of the shadow comparisons routes ask for, per event loop */
    int shadow_max_concurrent; /* shadow calls in flight at most */
    int shadow_max_queue;      /* waiting for a slot at most; more are dropped (counted) */
    long shadow_timeout_ms;    /* one shadow call (and a queued one's wait) */
    size_t shadow_max_capture; /* bytes of a served answer kept for comparison; over: skipped */
    char *shadow_samples_path; /* JSONL of both texts for a person to review; NULL: none */
} hl_config;

/* Loads and validates path. On error returns non-zero, *out is NULL and errbuf holds one
 * line "file:line: key: problem" (never truncated mid-word: errbuf_len >= 256 advised). */
hl_err hl_config_load(const char *path, hl_config **out, char *errbuf, size_t errbuf_len);
/* Same, from memory; name is used in messages in place of a file name. */
hl_err hl_config_parse(const char *name, const char *text, size_t len, hl_config **out,
                       char *errbuf, size_t errbuf_len);
void hl_config_free(hl_config *cfg);

/* Writes every key (as a path such as "backends[].timeout_ms") with its type, bounds, default
 * and help, one line each, from the schema's tables. */
void hl_config_print_reference(FILE *out);

const hl_backend_cfg *hl_config_backend(const hl_config *cfg, const char *name);
/* Price for an upstream model name: exact match first, then the longest configured name that
 * is a prefix of model followed by '-' (so "gpt-4o" prices "gpt-4o-2024-08-06"). NULL if none. */
const hl_price *hl_config_price(const hl_config *cfg, const char *model);

#endif
