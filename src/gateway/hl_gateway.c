/* hl_gateway: endpoints and the chat exchange (see hl_gateway.h).
 *
 * An exchange lives from the moment a chat request is parsed until its response ends or its
 * client goes away. It is owned by the connection (hl_conn_set_data) and freed in exactly one
 * of three places: after the response was written (finish_*), in on_abort (client gone), or
 * when the request fails before any upstream call. */
#include "hl_gateway.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "hl_log.h"
#include "hl_metrics.h"
#include "hl_pii.h"
#include "hl_budget.h"
#include "hl_builtin.h"
#include "hl_ingress.h"
#include "hl_pricing.h"
#include "hl_provider.h"
#include "hl_router.h"
#include "hl_task.h"
#include "hl_upstream.h"

#define MAX_UPSTREAM_BODY (64u << 20)
#define MAX_SSE_EVENT (16u << 20)
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
};

typedef struct gw_worker {
    hl_gateway *gw;
    hl_upstream *up;
    hl_builtin_mailbox *mailbox; /* where builtin engines post tokens for this loop */
    hl_metrics *metrics;
    uint64_t rng;
} gw_worker;

typedef struct exchange {
    hl_gateway *gw;
    gw_worker *gwk;
    hl_conn *conn;
    const hl_ingress *ing;     /* the client's API format */
    char request_id[64];
    char chat_id[80];
    char tenant[64];           /* "" when none */
    char pii[160];             /* what the detector found, "email:1,phone:2"; "" when nothing */
    long created;
    hl_chat_request req;
    bool sensitive;
    hl_route route;
    int cand;                  /* index into route.candidates of the current attempt */
    /* Confidence escalation (the route's `escalate`): the local attempt runs non-streaming
     * with logprobs; below the threshold its answer is held and the escalation targets are
     * asked; should they all fail, the held answer is served. */
    bool escalation_armed;     /* the next local attempt is the one to judge */
    bool attempt_stream;       /* the current attempt streams from its upstream */
    bool attempt_judged;       /* the current attempt is judged on confidence */
    bool client_logprobs;      /* the client asked for logprobs itself */
    double confidence;         /* of the judged answer; < 0 unknown */
    hl_chat_response held;     /* the local answer kept while escalating */
    bool have_held;
    bool counted; /* still in the in-flight gauge */
    double held_cost;
    hl_backend *held_backend;  /* who produced the held answer */
    const char *held_model;
    int attempt;               /* 1-based count of upstream calls */
    hl_backend *backend;
    const char *model;
    const hl_provider *prov;
    hl_upstream_call *call;    /* the attempt in flight on an HTTP backend */
    hl_builtin_call *job;      /* ... or on the builtin engine */
    double deadline;           /* ms (uv_hrtime clock): the request's whole life ends here */
    int retries;               /* retries done on the current candidate */
    uv_timer_t timer;          /* waits between retries */
    bool timer_inited;
    /* per attempt: */
    bool probe;                /* this attempt is its backend's half-open breaker probe */
    double retry_after_ms;     /* from retry-after-ms / retry-after; < 0: none */
    int should_retry;          /* x-should-retry: -1 absent, 0 false, 1 true */
    bool no_retry;             /* a 429 caused by a spend limit: retrying cannot help */
    double t0;                 /* uv_hrtime at start, ms */
    double wall0;              /* Unix time at start */
    double ttft_ms;
    int up_status;
    bool up_sse;
    hl_buf up_body;
    hl_sse sse;
    hl_provider_decoder dec;
    hl_usage usage;
    hl_finish finish;
    bool got_done;
    bool stream_error;
    char stream_errmsg[256];
    char stream_errtype[48];   /* the upstream's error type ("overloaded_error", ...) */
    size_t out_bytes;          /* generated text bytes seen, for estimates */
    bool paused;
    /* client side of a stream: */
    bool client_started;
    hl_stream_encoder enc;
    hl_buf out;
} exchange;

/* ------------------------------------------------------------------ small helpers */

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool slice_eq(hl_slice s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool header_truthy(const hl_http_req *req, const char *name) {
    const hl_slice *v = hl_http_header_get(req, name);
    if (!v) return false;
    return (v->n == 4 && !strncasecmp(v->p, "true", 4)) || (v->n == 1 && v->p[0] == '1') ||
           (v->n == 3 && !strncasecmp(v->p, "yes", 3));
}

/* A non-negative integer header, 0 when absent or malformed. */
static long header_long(const hl_http_req *req, const char *name) {
    const hl_slice *v = hl_http_header_get(req, name);
    if (!v || v->n == 0 || v->n > 9) return 0;
    long x = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9') return 0;
        x = x * 10 + (v->p[i] - '0');
    }
    return x;
}

/* Constant-time comparison: time depends on the lengths only, never on where bytes differ. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) diff |= (unsigned char)((i < alen ? a[i] : 0) ^ b[i]);
    return diff == 0;
}

static uint64_t rng_next(uint64_t *s) {
    /* splitmix64: ids need to be unique, not secret. */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Takes the client's x-request-id when it is a sane token, else makes one. */
static void make_request_id(gw_worker *gwk, const hl_http_req *req, char *out, size_t n) {
    const hl_slice *v = hl_http_header_get(req, "x-request-id");
    if (v && v->n > 0 && v->n < 64) {
        bool ok = true;
        for (size_t i = 0; i < v->n && ok; i++) {
            char ch = v->p[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.';
        }
        if (ok) {
            snprintf(out, n, "%.*s", (int)v->n, v->p);
            return;
        }
    }
    uint64_t a = rng_next(&gwk->rng), b = rng_next(&gwk->rng);
    snprintf(out, n, "req_%016llx%08llx", (unsigned long long)a, (unsigned long long)(b >> 32));
}

/* x-request-id for everyone; Anthropic's SDK reads request-id. */
static void id_headers(const hl_ingress *ing, const char *request_id, hl_buf *h) {
    hl_buf_header(h, "x-request-id", request_id);
    if (ing == &hl_ingress_anthropic) hl_buf_header(h, "request-id", request_id);
}

static void respond_error(hl_conn *c, const hl_ingress *ing, const char *request_id,
                          const hl_api_error *err, const char *extra_headers) {
    hl_buf body, hdr;
    hl_buf_init(&body, 0);
    hl_buf_init(&hdr, 0);
    int status = ing->write_error(&body, err, request_id);
    id_headers(ing, request_id, &hdr);
    if (extra_headers) hl_buf_puts(&hdr, extra_headers);
    hl_conn_respond(c, status, hdr.data, "application/json", body.data ? body.data : "", body.len);
    hl_buf_release(&body);
    hl_buf_release(&hdr);
}

/* ------------------------------------------------------------------ exchange lifecycle */

/* Leaves the in-flight gauge once: before the response's last byte is written, so a client
 * that reads /metrics right after its answer never sees its own request still counted. */
static void leave_in_flight(exchange *ex) {
    if (!ex->counted) return;
    ex->counted = false;
    hl_metrics_in_flight(ex->gwk->metrics, -1);
}

/* The response is about to end: from here a failing write must not make the server call
 * on_abort for this exchange, which its caller frees itself. */
static void detach(exchange *ex) {
    leave_in_flight(ex);
    hl_conn_set_data(ex->conn, NULL);
}

static void exchange_closed(uv_handle_t *h) { free(h->data); }

static void exchange_free(exchange *ex) {
    leave_in_flight(ex);
    if (ex->call) hl_upstream_cancel(ex->call);
    if (ex->job) hl_builtin_cancel(ex->job);
    hl_chat_request_release(&ex->req);
    hl_buf_release(&ex->up_body);
    hl_sse_release(&ex->sse);
    hl_buf_release(&ex->out);
    hl_chat_response_release(&ex->held);
    if (ex->timer_inited) {
        /* The timer handle lives in ex: free ex once the loop is done with it. */
        ex->timer.data = ex;
        uv_close((uv_handle_t *)&ex->timer, exchange_closed);
        return;
    }
    free(ex);
}

static void route_headers(const exchange *ex, hl_buf *h) {
    id_headers(ex->ing, ex->request_id, h);
    if (ex->backend) hl_buf_header(h, "x-hybridllm-backend", ex->backend->cfg->name);
    if (ex->route.reason[0]) hl_buf_header(h, "x-hybridllm-route-reason", ex->route.reason);
    if (ex->model) hl_buf_header(h, "x-hybridllm-model", ex->model);
    if (ex->pii[0]) hl_buf_header(h, "x-hybridllm-pii-detected", ex->pii);
}

/* Final usage for the ledger: the upstream's, or an estimate marked as such. */
static hl_usage final_usage(const exchange *ex) {
    hl_usage u = ex->usage;
    if (!u.known) {
        u.input_tokens = hl_tokens_estimate(ex->req.text_bytes);
        u.output_tokens = hl_tokens_estimate(ex->out_bytes);
        u.estimated = true;
    }
    return u;
}

/* Writes the ledger line of the current attempt; returns its cost. */
static double record_attempt(exchange *ex, const char *status, const hl_usage *u, const char *error) {
    hl_ledger_record r = {0};
    double latency = now_ms() - ex->t0;
    r.timestamp = ex->wall0;
    r.request_id = ex->request_id;
    r.attempt = ex->attempt;
    r.cloud = hl_backend_is_cloud(ex->backend);
    r.backend = ex->backend->cfg->name;
    r.model = ex->model;
    r.route_reason = ex->route.reason;
    r.status = status;
    r.task_type = ex->route.task_type;
    r.task_inferred = !ex->req.task_type && ex->route.task_type;
    r.sensitive = ex->sensitive;
    r.stream = ex->req.stream;
    r.confidence = ex->attempt_judged ? ex->confidence : -1;
    r.usage = *u;
    r.latency_ms = latency;
    r.ttft_ms = ex->ttft_ms;
    r.http_status = ex->up_status;
    r.error = error;
    if (r.cloud) {
        const hl_price *p = hl_config_price(ex->gw->cfg, ex->model);
        r.cost_known = p != NULL;
        r.cost_usd = p ? hl_pricing_cloud(p, u) : 0;
    } else {
        r.cost_known = true;
        r.cost_usd = hl_pricing_local(ex->backend->cfg->hourly_cost_usd, latency);
    }
    hl_metrics_attempt(ex->gwk->metrics, (size_t)(ex->backend - ex->gw->bs->v), hl_metrics_status_of(status),
                       u->input_tokens, u->output_tokens, r.cost_usd, latency, ex->ttft_ms);
    r.tenant = ex->tenant[0] ? ex->tenant : NULL;
    r.pii = ex->pii[0] ? ex->pii : NULL;
    if (r.cloud && r.cost_known) hl_budgets_add(ex->gw->budgets, r.tenant, r.cost_usd, (time_t)wall_now());
    if (hl_ledger_append(ex->gw->ledger, &r) != HL_OK)
        hl_log(HL_LOG_ERROR, "ledger write failed for %s: %m", ex->request_id);
    return r.cost_usd;
}

static void start_attempt(exchange *ex);

/* Maps an upstream HTTP error to the client's error. */
static void upstream_http_error(exchange *ex, hl_api_error *err) {
    char msg[300], type[64];
    hl_upstream_error_parse(ex->up_body.data, ex->up_body.len, msg, sizeof msg, type, sizeof type);
    int s = ex->up_status;
    const char *name = ex->backend->cfg->name;
    if (s == 429)
        hl_api_error_set(err, 429, HL_AE_RATE_LIMIT, NULL, "upstream_rate_limited",
                         "Backend '%s' is rate limited: %s", name, msg);
    else if (s == 401 || s == 403)
        hl_api_error_set(err, 502, HL_AE_API, NULL, "upstream_auth_failed",
                         "Backend '%s' refused the gateway's credentials (HTTP %d): %s. Check %s.",
                         name, s, msg, ex->backend->cfg->api_key_env ? ex->backend->cfg->api_key_env : "its API key");
    else if (s == 413)
        hl_api_error_set(err, 413, HL_AE_TOO_LARGE, NULL, "upstream_request_too_large",
                         "Backend '%s': %s", name, msg);
    else if (s >= 400 && s < 500)
        hl_api_error_set(err, s == 404 ? 404 : 400, s == 404 ? HL_AE_NOT_FOUND : HL_AE_INVALID_REQUEST,
                         NULL, "upstream_invalid_request", "Backend '%s' rejected the request (HTTP %d): %s",
                         name, s, msg);
    else if (s == 529 || s == 503)
        hl_api_error_set(err, 503, HL_AE_OVERLOADED, NULL, "upstream_overloaded",
                         "Backend '%s' is overloaded (HTTP %d): %s", name, s, msg);
    else
        hl_api_error_set(err, 502, HL_AE_API, NULL, "upstream_error",
                         "Backend '%s' failed (HTTP %d): %s", name, s, msg);
}

static bool retryable_status(int s) { return s == 408 || s == 409 || s == 429 || s >= 500; }

/* Ends a request that has sent nothing yet: the next candidate, or the error. */
static void deliver(exchange *ex, hl_chat_response *resp, double cost);

static void fail_or_fallback(exchange *ex, const hl_api_error *err) {
    if (ex->cand + 1 < ex->route.n && now_ms() < ex->deadline) {
        ex->cand++;
        ex->retries = 0;
        start_attempt(ex);
        return;
    }
    if (ex->have_held) {
        /* Escalation failed everywhere: the local answer is better than an error. */
        hl_log(HL_LOG_WARN, "%s: escalation failed (%s); serving the local answer", ex->request_id, err->message);
        ex->backend = ex->held_backend;
        ex->model = ex->held_model;
        deliver(ex, &ex->held, ex->held_cost);
        exchange_free(ex);
        return;
    }
    hl_buf h;
    hl_buf_init(&h, 0);
    route_headers(ex, &h);
    hl_buf body;
    hl_buf_init(&body, 0);
    int status = ex->ing->write_error(&body, err, ex->request_id);
    detach(ex);
    hl_conn_respond(ex->conn, status, h.data, "application/json", body.data ? body.data : "", body.len);
    hl_buf_release(&h);
    hl_buf_release(&body);
    exchange_free(ex);
}

static void retry_fire(uv_timer_t *t) { start_attempt(t->data); }

/* Backoff before retry n (0-based) on b: base x 2^n capped at max, minus up to 25% jitter,
 * as the official SDKs do; an upstream's retry-after wins when it asks for at most a minute. */
static double retry_delay_ms(exchange *ex) {
    if (ex->retry_after_ms >= 0 && ex->retry_after_ms <= 60000) return ex->retry_after_ms;
    const hl_backend_cfg *c = ex->backend->cfg;
    double d = (double)c->retry_base_ms;
    for (int i = 0; i < ex->retries && d < (double)c->retry_max_ms; i++) d *= 2;
    if (d > (double)c->retry_max_ms) d = (double)c->retry_max_ms;
    double jitter = (double)(rng_next(&ex->gwk->rng) >> 11) / (double)(1ull << 53);
    return d * (1.0 - 0.25 * jitter);
}

/* An attempt failed before anything reached the client. retryable: the failure may pass
 * (connection errors, timeouts, 408/409/429/5xx/529); backend_fault: it counts against the
 * backend's circuit breaker. */
static void attempt_failed(exchange *ex, const hl_api_error *err, bool retryable, bool backend_fault) {
    hl_backend_report(ex->backend, !backend_fault, ex->probe, now_ms());
    ex->probe = false;
    if (ex->should_retry >= 0) retryable = ex->should_retry == 1;
    if (ex->no_retry) retryable = false;
    if (!retryable) {
        ex->cand = ex->route.n; /* another backend would fail the same way */
        fail_or_fallback(ex, err);
        return;
    }
    if (ex->retries < ex->backend->cfg->max_retries) {
        double delay = retry_delay_ms(ex);
        if (now_ms() + delay < ex->deadline) {
            ex->retries++;
            if (!ex->timer_inited) {
                uv_timer_init(hl_worker_loop(hl_conn_worker(ex->conn)), &ex->timer);
                ex->timer_inited = true;
            }
            ex->timer.data = ex;
            uv_timer_start(&ex->timer, retry_fire, (uint64_t)delay, 0);
            return;
        }
    }
    fail_or_fallback(ex, err);
}

static void flush_out(exchange *ex) {
    if (!ex->out.len) return;
    if (!ex->client_started) {
        hl_buf h;
        hl_buf_init(&h, 0);
        route_headers(ex, &h);
        hl_conn_stream_begin(ex->conn, 200, h.data, "text/event-stream; charset=utf-8");
        hl_buf_release(&h);
        ex->client_started = true;
    }
    hl_conn_stream_write(ex->conn, ex->out.data, ex->out.len);
    hl_buf_reset(&ex->out);
}

static void finish_stream(exchange *ex, hl_err err, const char *errmsg) {
    hl_usage u = final_usage(ex);
    bool ok = err == HL_OK && !ex->stream_error && (ex->got_done || ex->finish != HL_FINISH_NONE);
    char why[320];
    if (ok) {
        if (ex->ttft_ms >= 0) hl_backend_record_latency(ex->backend, ex->ttft_ms);
        record_attempt(ex, "ok", &u, NULL);
        ex->ing->encode_end(&ex->enc, &u, &ex->out);
    } else {
        if (ex->stream_error) snprintf(why, sizeof why, "upstream stream error: %s", ex->stream_errmsg);
        else if (err) snprintf(why, sizeof why, "upstream connection failed mid-stream: %s", errmsg);
        else snprintf(why, sizeof why, "upstream stream ended without finishing");
        record_attempt(ex, "error", &u, why);
        /* Keep what kind of failure it was: clients treat overload and rate limits apart. */
        hl_api_error e;
        bool overloaded = !strcmp(ex->stream_errtype, "overloaded_error");
        bool limited = !strcmp(ex->stream_errtype, "rate_limit_error");
        hl_api_error_set(&e, overloaded ? 529 : limited ? 429 : 502,
                         overloaded ? HL_AE_OVERLOADED : limited ? HL_AE_RATE_LIMIT : HL_AE_API, NULL,
                         "upstream_stream_error", "Backend '%s': %s", ex->backend->cfg->name, why);
        ex->ing->encode_error(&ex->enc, &e, &ex->out);
    }
    detach(ex);
    flush_out(ex);
    hl_conn_stream_end(ex->conn);
    exchange_free(ex);
}

/* ---- stream decoding: upstream SSE -> internal events -> OpenAI chunks */

static int on_stream_event(void *ud, const hl_stream_event *ev) {
    exchange *ex = ud;
    switch (ev->type) {
    case HL_EV_TEXT:
        ex->out_bytes += ev->text_len;
        /* fall through */
    case HL_EV_TOOL_CALL:
        if (ex->ttft_ms < 0) ex->ttft_ms = now_ms() - ex->t0;
        if (ev->type == HL_EV_TOOL_CALL) ex->out_bytes += ev->text_len;
        break;
    case HL_EV_FINISH:
        ex->finish = ev->finish;
        break;
    case HL_EV_USAGE:
        ex->usage = ev->usage; /* cumulative: replace, never add */
        break;
    case HL_EV_ERROR:
        ex->stream_error = true;
        snprintf(ex->stream_errmsg, sizeof ex->stream_errmsg, "%.*s", (int)ev->text_len, ev->text);
        snprintf(ex->stream_errtype, sizeof ex->stream_errtype, "%s", ev->error_type ? ev->error_type : "");
        return 0;
    case HL_EV_DONE:
        ex->got_done = true;
        return 0;
    default:
        break;
    }
    return ex->ing->encode_event(&ex->enc, ev, &ex->out) ? -1 : 0;
}

static int on_sse(void *ud, const hl_sse_event *sse) {
    exchange *ex = ud;
    if (ex->got_done || ex->stream_error) return 0; /* ignore anything after the end */
    int rc = ex->prov->decode(&ex->dec, sse, on_stream_event, ex);
    if (rc == HL_ERR_PARSE) {
        ex->stream_error = true;
        snprintf(ex->stream_errmsg, sizeof ex->stream_errmsg, "malformed stream event");
    }
    return 0;
}

/* ---- upstream callbacks */

static bool name_is(const char *p, size_t n, const char *lit) {
    return n == strlen(lit) && !strncasecmp(p, lit, n);
}

/* Retry hints: retry-after-ms (milliseconds), retry-after (seconds or an HTTP date),
 * x-should-retry (true/false, overrides the status). */
static void up_header(void *ud, const char *name, size_t nlen, const char *value, size_t vlen) {
    exchange *ex = ud;
    char v[64];
    if (vlen >= sizeof v) return;
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    if (name_is(name, nlen, "retry-after-ms")) {
        char *end;
        double ms = strtod(v, &end);
        if (end != v && ms >= 0) ex->retry_after_ms = ms;
    } else if (name_is(name, nlen, "retry-after") && ex->retry_after_ms < 0) {
        char *end;
        double secs = strtod(v, &end);
        struct tm tm = {0};
        if (end != v && *end == '\0' && secs >= 0) {
            ex->retry_after_ms = secs * 1000.0;
        } else if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
            double d = ((double)timegm(&tm) - wall_now()) * 1000.0;
            ex->retry_after_ms = d > 0 ? d : 0;
        }
    } else if (name_is(name, nlen, "x-should-retry")) {
        ex->should_retry = !strcasecmp(v, "true") ? 1 : !strcasecmp(v, "false") ? 0 : -1;
    }
}

static void up_status(void *ud, int status, const char *content_type) {
    exchange *ex = ud;
    ex->up_status = status;
    ex->up_sse = !strncasecmp(content_type, "text/event-stream", 17);
}

static int up_data(void *ud, const char *data, size_t len) {
    exchange *ex = ud;
    if (!(ex->attempt_stream && ex->up_status / 100 == 2 && ex->up_sse)) {
        return hl_buf_append(&ex->up_body, data, len) ? HL_UPSTREAM_ABORT : HL_UPSTREAM_CONTINUE;
    }
    if (hl_sse_feed(&ex->sse, data, len, on_sse, ex) != 0) {
        ex->stream_error = true;
        snprintf(ex->stream_errmsg, sizeof ex->stream_errmsg, "stream event over the size limit");
        return HL_UPSTREAM_ABORT;
    }
    flush_out(ex);
    if (hl_conn_congested(ex->conn)) {
        ex->paused = true;
        return HL_UPSTREAM_PAUSE;
    }
    return HL_UPSTREAM_CONTINUE;
}

/* Sends a complete answer in the client's shape: a response, or (for a client that asked to
 * stream while the attempt did not) the same answer as a stream. Ends the request; the caller
 * frees the exchange. */
static void deliver(exchange *ex, hl_chat_response *resp, double cost) {
    if (!ex->client_logprobs) {
        json_decref(resp->logprobs); /* asked for our confidence, not the client's */
        resp->logprobs = NULL;
    }
    if (ex->req.stream) {
        /* Replay the answer through the stream encoder, as if the upstream had streamed it. */
        hl_stream_event ev = {0};
        ev.type = HL_EV_START;
        ev.id = resp->id;
        ev.model = resp->model;
        ex->ing->encode_event(&ex->enc, &ev, &ex->out);
        if (resp->text && resp->text[0]) {
            ev = (hl_stream_event){.type = HL_EV_TEXT, .text = resp->text, .text_len = strlen(resp->text)};
            ex->ing->encode_event(&ex->enc, &ev, &ex->out);
        }
        for (size_t i = 0; i < resp->n_tool_calls; i++) {
            const hl_tool_call *tc = &resp->tool_calls[i];
            ev = (hl_stream_event){.type = HL_EV_TOOL_CALL, .index = (int)i, .tool_id = tc->id,
                                   .tool_name = tc->name, .text = tc->arguments,
                                   .text_len = tc->arguments ? strlen(tc->arguments) : 0};
            ex->ing->encode_event(&ex->enc, &ev, &ex->out);
        }
        ev = (hl_stream_event){.type = HL_EV_FINISH, .finish = resp->finish, .stop_sequence = resp->stop_sequence};
        ex->ing->encode_event(&ex->enc, &ev, &ex->out);
        ex->ing->encode_end(&ex->enc, &resp->usage, &ex->out);
        detach(ex);
        flush_out(ex);
        hl_conn_stream_end(ex->conn);
        return;
    }
    hl_buf body, h;
    hl_buf_init(&body, 0);
    hl_buf_init(&h, 0);
    ex->ing->write_response(&body, resp, ex->chat_id, ex->created);
    route_headers(ex, &h);
    hl_buf_puts(&h, "x-hybridllm-cost-usd: ");
    hl_buf_fixed(&h, cost, 10);
    hl_buf_puts(&h, "\r\n");
    if (ex->confidence >= 0) hl_buf_printf(&h, "x-hybridllm-confidence: %.4f\r\n", ex->confidence);
    detach(ex);
    hl_conn_respond(ex->conn, 200, h.data, "application/json", body.data ? body.data : "", body.len);
    hl_buf_release(&body);
    hl_buf_release(&h);
}

/* The judged local answer was below the threshold: the escalation targets become the
 * candidates (privacy-filtered by the router already). */
static void escalate(exchange *ex) {
    hl_route *r = &ex->route;
    for (int i = 0; i < r->n_escalate; i++) {
        r->candidates[i] = r->escalate[i];
        r->models[i] = r->escalate[i]->model;
    }
    r->n = r->n_escalate;
    r->n_escalate = 0;
    size_t n = strlen(r->reason);
    snprintf(r->reason + n, sizeof r->reason - n, "+escalated");
    ex->cand = 0;
    ex->retries = 0;
    ex->attempt_judged = false;
    ex->escalation_armed = false;
    start_attempt(ex);
}

static void up_done(void *ud, hl_err err, const char *errmsg) {
    exchange *ex = ud;
    ex->call = NULL;
    ex->job = NULL;
    if (ex->client_started) {
        finish_stream(ex, err, errmsg);
        return;
    }
    hl_api_error cerr;
    if (err != HL_OK) {
        hl_usage none = {0};
        char why[320];
        snprintf(why, sizeof why, "%s", errmsg);
        record_attempt(ex, "error", &none, why);
        hl_log(HL_LOG_WARN, "%s: backend %s: %s", ex->request_id, ex->backend->cfg->name, errmsg);
        if (err == HL_ERR_TIMEOUT)
            hl_api_error_set(&cerr, 504, HL_AE_TIMEOUT, NULL, "upstream_timeout",
                             "Backend '%s' did not answer in time: %s", ex->backend->cfg->name, errmsg);
        else if (ex->up_status)
            hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_connection_lost",
                             "Backend '%s' dropped the connection mid-response: %s", ex->backend->cfg->name, errmsg);
        else
            hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_unreachable",
                             "Backend '%s' could not be reached: %s", ex->backend->cfg->name, errmsg);
        attempt_failed(ex, &cerr, true, true);
        return;
    }
    if (ex->up_status / 100 != 2) {
        upstream_http_error(ex, &cerr);
        hl_usage none = {0};
        record_attempt(ex, "error", &none, cerr.message);
        /* OpenAI's insufficient_quota is a 429 for a spend limit: no retry can fix it. */
        if (ex->up_status == 429 && ex->up_body.data && strstr(ex->up_body.data, "insufficient_quota"))
            ex->no_retry = true;
        attempt_failed(ex, &cerr, retryable_status(ex->up_status), ex->up_status >= 500);
        return;
    }
    if (ex->attempt_stream) {
        if (!ex->up_sse) {
            hl_usage none = {0};
            hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_not_streaming",
                             "Backend '%s' answered a streaming request without an event stream.",
                             ex->backend->cfg->name);
            record_attempt(ex, "error", &none, cerr.message);
            attempt_failed(ex, &cerr, false, true);
            return;
        }
        hl_backend_report(ex->backend, true, ex->probe, now_ms());
        ex->probe = false;
        hl_sse_finish(&ex->sse);
        finish_stream(ex, HL_OK, "");
        return;
    }
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    if (ex->prov->parse_response(ex->up_body.data ? ex->up_body.data : "", ex->up_body.len, &resp) != HL_OK) {
        hl_usage none = {0};
        hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_invalid_response",
                         "Backend '%s' sent a response that is not a valid completion.", ex->backend->cfg->name);
        record_attempt(ex, "error", &none, cerr.message);
        hl_chat_response_release(&resp);
        attempt_failed(ex, &cerr, true, true);
        return;
    }
    hl_backend_report(ex->backend, true, ex->probe, now_ms());
    ex->probe = false;
    ex->usage = resp.usage;
    ex->out_bytes = resp.text ? strlen(resp.text) : 0;
    hl_backend_record_latency(ex->backend, now_ms() - ex->t0);
    hl_usage u = final_usage(ex);
    resp.usage = u;
    if (!resp.model || !resp.model[0]) {
        free(resp.model);
        resp.model = strdup(ex->model);
    }
    if (ex->attempt_judged) {
        ex->confidence = hl_confidence(resp.logprobs);
        if (ex->confidence >= 0 && ex->confidence < ex->route.escalate_below && ex->route.n_escalate) {
            /* Not sure enough: hold this answer, ask the escalation targets. */
            ex->held_cost = record_attempt(ex, "escalated", &u, NULL);
            ex->held = resp;
            ex->have_held = true;
            ex->held_backend = ex->backend;
            ex->held_model = ex->model;
            escalate(ex);
            return;
        }
    }
    double cost = record_attempt(ex, "ok", &u, NULL);
    deliver(ex, &resp, cost);
    hl_chat_response_release(&resp);
    exchange_free(ex);
}

static const hl_upstream_handlers up_handlers = {up_status, up_data, up_header, up_done};

/* The backend's own timeout, cut to what is left of the request's. */
static long attempt_timeout_ms(const exchange *ex) {
    double left = ex->deadline - now_ms();
    long t = ex->backend->cfg->timeout_ms;
    if (left < (double)t) t = left < 1 ? 1 : (long)left;
    return t;
}

static void start_attempt(exchange *ex) {
    hl_api_error err = {0};
    for (; ex->cand < ex->route.n; ex->cand++) {
        hl_backend *b = ex->route.candidates[ex->cand];
        /* The privacy guarantee, checked where it matters: right before data leaves. */
        if (ex->sensitive && hl_backend_is_cloud(b)) {
            hl_log(HL_LOG_ERROR, "%s: refused to send a sensitive request to cloud backend %s",
                   ex->request_id, b->cfg->name);
            continue;
        }
        const hl_provider *p = hl_provider_for(b->cfg->kind);
        if (p->check && p->check(&ex->req, &err) != HL_OK) continue;
        if (!hl_backend_admit(b, now_ms(), &ex->probe)) {
            if (!err.message[0])
                hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "circuit_open",
                                 "Backend '%s' is failing (circuit breaker open); no other backend "
                                 "could take the request.", b->cfg->name);
            ex->retries = 0;
            continue;
        }
        ex->backend = b;
        ex->model = ex->route.models[ex->cand];
        ex->prov = p;
        break;
    }
    if (ex->cand >= ex->route.n) {
        if (!ex->backend) {
            if (!err.message[0])
                hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "no_backend",
                                 "No backend can serve this request.");
            detach(ex);
            respond_error(ex->conn, ex->ing, ex->request_id, &err, NULL);
            exchange_free(ex);
            return;
        }
        ex->cand = ex->route.n - 1;
        fail_or_fallback(ex, &err);
        return;
    }
    ex->attempt++;
    ex->t0 = now_ms();
    atomic_store(&ex->backend->last_used_ms, ex->t0);
    ex->wall0 = wall_now();
    ex->ttft_ms = -1;
    ex->up_status = 0;
    ex->up_sse = false;
    memset(&ex->usage, 0, sizeof ex->usage);
    ex->finish = HL_FINISH_NONE;
    ex->got_done = ex->stream_error = ex->paused = false;
    ex->stream_errtype[0] = '\0';
    ex->retry_after_ms = -1;
    ex->should_retry = -1;
    ex->no_retry = false;
    ex->out_bytes = 0;
    hl_buf_reset(&ex->up_body);
    hl_sse_release(&ex->sse);
    hl_sse_init(&ex->sse, MAX_SSE_EVENT);
    ex->prov->decoder_init(&ex->dec);
    ex->ing->encoder_init(&ex->enc, ex->chat_id, ex->model, ex->created, ex->req.include_usage,
                          ex->request_id);

    /* A local answer to be judged on confidence is asked for whole, with logprobs (an
     * OpenAI-compatible server's; Messages backends have none and are not judged). */
    ex->attempt_judged = ex->escalation_armed && !hl_backend_is_cloud(ex->backend) &&
                         ex->backend->cfg->kind != HL_PROVIDER_ANTHROPIC;
    ex->attempt_stream = ex->req.stream && !ex->attempt_judged;
    ex->confidence = -1;
    if (ex->backend->builtin) {
        hl_err be = hl_builtin_start(ex->backend->builtin, ex->gwk->mailbox, &ex->req, ex->model,
                                     ex->attempt_stream, &up_handlers, ex, &ex->job);
        if (be == HL_OK) return;
        hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "backend_busy",
                         "Backend '%s' (builtin engine) has %d requests waiting already.",
                         ex->backend->cfg->name, ex->backend->cfg->max_queue);
        attempt_failed(ex, &err, be == HL_ERR_LIMIT, false);
        return;
    }
    bool stream = ex->req.stream, logprobs = ex->req.logprobs;
    ex->req.stream = ex->attempt_stream;
    if (ex->attempt_judged) ex->req.logprobs = true;
    hl_buf url, body;
    hl_buf_init(&url, 4096);
    hl_buf_init(&body, 0);
    struct curl_slist *headers = NULL;
    hl_err e = ex->prov->build(ex->backend, &ex->req, ex->model, &url, &body, &headers);
    ex->req.stream = stream;
    ex->req.logprobs = logprobs;
    if (!e) {
        hl_upstream_opts o = {
            .url = url.data,
            .headers = headers,
            .body_len = body.len,
            .timeout_ms = attempt_timeout_ms(ex),
            .connect_timeout_ms = ex->backend->cfg->connect_timeout_ms,
        };
        o.body = hl_buf_steal(&body);
        headers = NULL;
        e = hl_upstream_start(ex->gwk->up, &o, &up_handlers, ex, &ex->call);
    }
    curl_slist_free_all(headers);
    hl_buf_release(&url);
    hl_buf_release(&body);
    if (e) {
        hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Could not start the upstream call: %s.",
                         hl_err_str(e));
        detach(ex);
        respond_error(ex->conn, ex->ing, ex->request_id, &err, NULL);
        exchange_free(ex);
    }
}

/* The tenant a request belongs to: x-hybridllm-tenant when it is a sane token, else the name of
 * the client key it used. NULL when neither. */
static const char *request_tenant(const hl_http_req *req, const char *key_tenant, char *buf, size_t len) {
    const hl_slice *v = hl_http_header_get(req, "x-hybridllm-tenant");
    if (v && v->n > 0 && v->n < len) {
        for (size_t i = 0; i < v->n; i++) {
            char ch = v->p[i];
            if (!(isalnum((unsigned char)ch) || ch == '-' || ch == '_' || ch == '.')) return key_tenant;
        }
        memcpy(buf, v->p, v->n);
        buf[v->n] = '\0';
        return buf;
    }
    return key_tenant;
}

/* Reads the routing hints of a parsed request (headers override or add to the body's
 * metadata), decides whether it is sensitive, and fills the router's input. Returns whether
 * the request is sensitive. The gateway and `hybridllm route --explain` share this, so the
 * explanation is the decision. */
/* Runs the PII detector over everything of req that could reach an upstream: message text,
 * tool-call arguments and string fields passed through (user, ...). With redact, detected
 * values are replaced in place by typed placeholders, and *clean says whether that worked
 * everywhere. Fills pii with the types found. Returns whether anything was found (before
 * redaction). Passthrough strings are only scanned: with redact, PII there keeps the request
 * local (*clean false). */
/* Scans (and with redact, rewrites) one text. Returns false when redaction could not make
 * the text clean (the caller must then keep the request local). */
static bool scan_text(const hl_pii_detector *d, bool redact, char **text, hl_pii_report *rep) {
    char *t = *text;
    if (!t) return true;
    if (!redact) {
        hl_pii_scan(d, t, strlen(t), rep);
        return true;
    }
    char *red = NULL;
    size_t red_len = 0;
    if (hl_pii_redact(d, t, strlen(t), &red, &red_len, rep) != HL_OK) return false;
    if (red) {
        free(t);
        *text = red;
    }
    return true;
}

/* Every string inside a JSON value, decoded: in JSON text an escape ("\n166.2...") would hide
 * a value from the detector's boundary rules. Returns whether a string was rewritten. */
static bool scan_json(const hl_pii_detector *d, bool redact, json_t *v, hl_pii_report *rep, bool *clean) {
    bool changed = false;
    if (json_is_string(v)) {
        char *t = strndup(json_string_value(v), json_string_length(v));
        if (!t) {
            *clean = false; /* unscanned text is treated as unclean */
            return false;
        }
        char *orig = t;
        *clean &= scan_text(d, redact, &t, rep);
        if (t != orig) changed = !json_string_set(v, t);
        free(t);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) changed |= scan_json(d, redact, x, rep, clean);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) changed |= scan_json(d, redact, x, rep, clean);
    }
    return changed;
}

/* Tool-call arguments are JSON text: scanned as decoded strings (and raw, in case they are
 * not JSON at all). */
static void scan_arguments(const hl_pii_detector *d, bool redact, char **args, hl_pii_report *rep, bool *clean) {
    json_t *root = *args ? json_loads(*args, 0, NULL) : NULL;
    if (!root) {
        *clean &= scan_text(d, redact, args, rep);
        return;
    }
    if (scan_json(d, redact, root, rep, clean)) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (s) {
            free(*args);
            *args = s;
        }
    }
    json_decref(root);
}

static bool scan_pii(const hl_pii_detector *d, bool redact, hl_chat_request *req, char *pii, size_t pii_len,
                     bool *clean) {
    hl_pii_report rep = {0};
    *clean = true;
    for (size_t i = 0; i < req->n_messages; i++) {
        hl_message *m = &req->messages[i];
        *clean &= scan_text(d, redact, &m->text, &rep);
        for (size_t k = 0; k < m->n_tool_calls; k++) scan_arguments(d, redact, &m->tool_calls[k].arguments, &rep, clean);
    }
    if (req->system_blocks) scan_json(d, redact, req->system_blocks, &rep, clean);
    const char *key;
    json_t *val;
    json_object_foreach(req->passthrough, key, val) {
        if (!json_is_string(val)) continue;
        int before = rep.total;
        hl_pii_scan(d, json_string_value(val), json_string_length(val), &rep);
        if (rep.total > before && redact) *clean = false;
    }
    if (hl_pii_report_format(&rep, d, pii, pii_len) != HL_OK) snprintf(pii, pii_len, "many");
    return rep.total > 0;
}

static bool prepare_route(hl_chat_request *req, const hl_http_req *hreq, const char *key_tenant,
                          const char *request_id, char *tenant, size_t tenant_len, const bool *pii_detected,
                          hl_route_input *in) {
    const hl_slice *tt = hl_http_header_get(hreq, "x-hybridllm-task-type");
    if (tt && tt->n && tt->n < 64) {
        char *t = strndup(tt->p, tt->n);
        if (t) {
            free(req->task_type);
            req->task_type = t;
        }
    }
    if (header_truthy(hreq, "x-hybridllm-regulated")) req->regulated = true;
    if (header_truthy(hreq, "x-hybridllm-pii")) req->pii = true;
    bool sensitive = req->regulated || req->pii || *pii_detected;
    *in = (hl_route_input){
        .model = req->model,
        .task_type = req->task_type,
        .inferred_task = req->task_type ? NULL : hl_task_infer(req),
        .sensitive = sensitive,
        .tenant = request_tenant(hreq, key_tenant, tenant, tenant_len),
        .sticky_key = request_id,
        .prompt_tokens = hl_tokens_estimate(req->text_bytes),
        .max_tokens = req->max_tokens,
        .latency_budget_ms = header_long(hreq, "x-hybridllm-latency-budget-ms"),
        .now_ms = now_ms(),
    };
    return sensitive;
}

static void handle_chat(gw_worker *gwk, hl_conn *c, const hl_ingress *ing, const hl_http_req *hreq,
                        const char *body, size_t len, const char *request_id, const char *key_tenant) {
    hl_gateway *gw = gwk->gw;
    exchange *ex = calloc(1, sizeof *ex);
    hl_api_error err = {0};
    if (!ex) {
        hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        respond_error(c, ing, request_id, &err, NULL);
        return;
    }
    ex->ing = ing;
    ex->gw = gw;
    ex->gwk = gwk;
    hl_metrics_in_flight(gwk->metrics, 1);
    ex->counted = true;
    ex->conn = c;
    snprintf(ex->request_id, sizeof ex->request_id, "%s", request_id);
    snprintf(ex->chat_id, sizeof ex->chat_id, "%s%s", ing->id_prefix, request_id);
    ex->created = (long)time(NULL);
    hl_buf_init(&ex->up_body, MAX_UPSTREAM_BODY);
    hl_buf_init(&ex->out, 0);
    hl_sse_init(&ex->sse, MAX_SSE_EVENT);
    hl_chat_request_init(&ex->req);

    if (ing->parse_request(body, len, &ex->req, &err) != HL_OK) {
        if (!err.status) hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        exchange_free(ex);
        respond_error(c, ing, request_id, &err, NULL);
        return;
    }
    hl_route_input in;
    /* Detected PII makes a request sensitive, unless redact mode removed it first. */
    bool clean = true;
    bool detected = gw->pii && scan_pii(gw->pii, gw->cfg->privacy.redact, &ex->req, ex->pii, sizeof ex->pii, &clean) &&
                    (!gw->cfg->privacy.redact || !clean);
    ex->sensitive = prepare_route(&ex->req, hreq, key_tenant, ex->request_id, ex->tenant, sizeof ex->tenant,
                                  &detected, &in);
    if (in.tenant != ex->tenant) snprintf(ex->tenant, sizeof ex->tenant, "%s", in.tenant ? in.tenant : "");
    in.tenant = ex->tenant[0] ? ex->tenant : NULL;
    double spent, limit;
    const hl_budget_cfg *over = hl_budgets_exceeded(gw->budgets, in.tenant, (time_t)wall_now(), &spent, &limit);
    if (over && over->action == HL_BUDGET_LOCAL) in.budget_local = over->name;
    if (hl_router_route(gw->cfg, gw->bs, &in, &ex->route, &err, NULL) != HL_OK) {
        hl_buf h;
        hl_buf_init(&h, 0);
        if (ex->route.reason[0]) hl_buf_printf(&h, "x-hybridllm-route-reason: %s\r\n", ex->route.reason);
        if (ex->pii[0]) hl_buf_printf(&h, "x-hybridllm-pii-detected: %s\r\n", ex->pii);
        exchange_free(ex);
        respond_error(c, ing, request_id, &err, h.data);
        hl_buf_release(&h);
        return;
    }
    if (over && over->action == HL_BUDGET_REJECT && hl_backend_is_cloud(ex->route.candidates[0])) {
        hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "budget_exceeded",
                         "The cloud budget '%s' is spent ($%.2f of $%.2f this %s%s%s); requests that need "
                         "the cloud are refused until it resets.", over->name, spent, limit,
                         over->period == HL_BUDGET_MONTH ? "month" : "day", in.tenant ? " for tenant " : "",
                         in.tenant ? in.tenant : "");
        exchange_free(ex);
        respond_error(c, ing, request_id, &err, "x-should-retry: false\r\n");
        return;
    }
    hl_conn_set_data(c, ex);
    ex->deadline = now_ms() + (double)gw->cfg->request_timeout_ms;
    ex->client_logprobs = ex->req.logprobs;
    ex->confidence = -1;
    ex->escalation_armed = ex->route.escalate_below > 0 && ex->route.n_escalate > 0 &&
                           (!ex->req.stream || ex->route.escalate_streams);
    start_attempt(ex);
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
        hl_buf_printf(&b, ",\"kind\":\"%s\",\"location\":\"%s\",\"ready\":%s,\"warm\":%s,\"breaker\":\"%s\"",
                      be->cfg->kind == HL_PROVIDER_ANTHROPIC ? "anthropic"
                      : be->cfg->kind == HL_PROVIDER_BUILTIN ? "builtin" : "openai",
                      hl_backend_is_cloud(be) ? "cloud" : "local", atomic_load(&be->ready) ? "true" : "false",
                      atomic_load(&be->warm) ? "true" : "false", hl_breaker_state_name(be));
        double p95 = hl_backend_p95(be);
        if (p95 >= 0) hl_buf_printf(&b, ",\"p95_ms\":%.1f", p95);
        pthread_mutex_lock(&be->mu);
        hl_buf_puts(&b, ",\"model\":");
        hl_buf_json_str(&b, be->model, strlen(be->model));
        hl_buf_puts(&b, ",\"base_url\":");
        hl_buf_json_str(&b, be->base_url, strlen(be->base_url));
        hl_buf_puts(&b, ",\"status\":");
        hl_buf_json_str(&b, be->status, strlen(be->status));
        pthread_mutex_unlock(&be->mu);
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

static void models_add(hl_buf *b, bool *first, const char *id, const char *owner, long created,
                       const char **seen, size_t *n_seen) {
    for (size_t i = 0; i < *n_seen; i++)
        if (!strcmp(seen[i], id)) return;
    seen[(*n_seen)++] = id;
    hl_buf_puts(b, *first ? "{\"id\":" : ",{\"id\":");
    *first = false;
    hl_buf_json_str(b, id, strlen(id));
    hl_buf_printf(b, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":", created);
    hl_buf_json_str(b, owner, strlen(owner));
    hl_buf_puts(b, "}");
}

static void handle_models(hl_gateway *gw, hl_conn *c, const char *rid) {
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    bool first = true;
    size_t cap = 1, n_seen = 0;
    for (size_t i = 0; i < gw->bs->n; i++) cap += 2 + gw->bs->v[i].cfg->n_models;
    const char **seen = calloc(cap, sizeof *seen);
    if (seen) {
        models_add(&b, &first, "auto", "hybridllm", gw->started, seen, &n_seen);
        for (size_t i = 0; i < gw->bs->n; i++)
            models_add(&b, &first, gw->bs->v[i].cfg->name, "hybridllm", gw->started, seen, &n_seen);
        for (size_t i = 0; i < gw->bs->n; i++) {
            hl_backend *be = &gw->bs->v[i];
            pthread_mutex_lock(&be->mu);
            if (strcmp(be->model, "auto") != 0)
                models_add(&b, &first, be->model, be->cfg->name, gw->started, seen, &n_seen);
            pthread_mutex_unlock(&be->mu);
            for (size_t j = 0; j < be->cfg->n_models; j++)
                models_add(&b, &first, be->cfg->models[j], be->cfg->name, gw->started, seen, &n_seen);
        }
        free(seen);
    }
    hl_buf_puts(&b, "]}");
    char h[128];
    snprintf(h, sizeof h, "x-request-id: %s\r\n", rid);
    hl_conn_respond(c, 200, h, "application/json", b.data, b.len);
    hl_buf_release(&b);
}

/* True when the client presented one of the configured keys (or none are configured);
 * *tenant is then the key's name, or NULL. */
static bool authorized(const hl_gateway *gw, const hl_http_req *req, const char **tenant) {
    *tenant = NULL;
    if (!gw->n_keys) return true;
    const hl_slice *v = hl_http_header_get(req, "authorization");
    const char *key = NULL;
    size_t klen = 0;
    if (v && v->n > 7 && !strncasecmp(v->p, "Bearer ", 7)) {
        key = v->p + 7;
        klen = v->n - 7;
    } else if ((v = hl_http_header_get(req, "x-api-key"))) {
        key = v->p;
        klen = v->n;
    }
    if (!key) return false;
    bool ok = false;
    for (int i = 0; i < gw->n_keys; i++) {
        /* Every key is compared, matched or not, so timing says nothing about which. */
        bool eq = gw->keys[i] && ct_equal(key, klen, gw->keys[i], strlen(gw->keys[i]));
        if (eq) *tenant = gw->key_names[i];
        ok |= eq;
    }
    return ok;
}

/* ------------------------------------------------------------------ server hooks */

/* The API format of a path: Anthropic's for /v1/messages, OpenAI's for everything else. */
static const hl_ingress *ingress_of(hl_slice path) {
    return slice_eq(path, "/v1/messages") ? &hl_ingress_anthropic : &hl_ingress_openai;
}

static void on_request(hl_conn *c, const hl_http_req *req, const char *body, size_t len) {
    gw_worker *gwk = hl_worker_data(hl_conn_worker(c));
    hl_gateway *gw = gwk->gw;
    char rid[64];
    make_request_id(gwk, req, rid, sizeof rid);
    hl_api_error err = {0};
    hl_slice path = req->path;
    const hl_ingress *ing = ingress_of(path);
    bool get = slice_eq(req->method, "GET"), post = slice_eq(req->method, "POST");
    bool is_chat = slice_eq(path, "/v1/chat/completions") || slice_eq(path, "/v1/messages");
    bool is_models = slice_eq(path, "/v1/models");

    if (slice_eq(path, "/metrics")) {
        if (!get) goto method;
        hl_buf b;
        hl_buf_init(&b, 0);
        char h[128];
        snprintf(h, sizeof h, "x-request-id: %s\r\n", rid);
        if (hl_metrics_render(gw->metrics, HL_MAX_WORKERS, gw->bs, gw->cfg, gw->budgets, gw->ledger, gw->store, &b) == HL_OK)
            hl_conn_respond(c, 200, h, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        else
            hl_conn_respond(c, 500, h, "text/plain", "out of memory\n", 14);
        hl_buf_release(&b);
        return;
    }
    if (slice_eq(path, "/healthz") || slice_eq(path, "/readyz")) {
        if (!get) goto method;
        if (path.p[1] == 'h') handle_healthz(c, rid);
        else handle_readyz(gw, c, rid);
        return;
    }
    if (!is_chat && !is_models) {
        hl_api_error_set(&err, 404, HL_AE_NOT_FOUND, NULL, "unknown_url", "Unknown request URL: %s %.*s.",
                         post ? "POST" : get ? "GET" : "?", (int)(path.n > 200 ? 200 : path.n), path.p);
        respond_error(c, ing, rid, &err, NULL);
        return;
    }
    const char *key_tenant;
    if (!authorized(gw, req, &key_tenant)) {
        hl_api_error_set(&err, 401, HL_AE_AUTHENTICATION, NULL, "invalid_api_key",
                         "Missing or incorrect API key for this gateway. Send it as "
                         "'Authorization: Bearer <key>' or 'x-api-key: <key>'.");
        respond_error(c, ing, rid, &err, NULL);
        return;
    }
    if (is_models) {
        if (!get) goto method;
        handle_models(gw, c, rid);
        return;
    }
    if (!post) goto method;
    handle_chat(gwk, c, ing, req, body, len, rid, key_tenant);
    return;
method:
    hl_api_error_set(&err, 405, HL_AE_INVALID_REQUEST, NULL, "method_not_allowed",
                     "Method %.*s is not allowed for %.*s.", (int)(req->method.n > 16 ? 16 : req->method.n),
                     req->method.p, (int)(path.n > 200 ? 200 : path.n), path.p);
    respond_error(c, ing, rid, &err, is_chat ? "Allow: POST\r\n" : "Allow: GET\r\n");
}

static void on_abort(hl_conn *c) {
    exchange *ex = hl_conn_data(c);
    if (!ex) return;
    if ((ex->call || ex->job) && ex->backend) {
        if (ex->call) hl_upstream_cancel(ex->call);
        if (ex->job) hl_builtin_cancel(ex->job);
        ex->call = NULL;
        ex->job = NULL;
        hl_usage u = final_usage(ex);
        record_attempt(ex, "cancelled", &u, "client disconnected");
        if (ex->probe) hl_backend_probe_abandoned(ex->backend, now_ms());
    }
    exchange_free(ex);
}

static void on_drain(hl_conn *c) {
    exchange *ex = hl_conn_data(c);
    if (ex && ex->paused && ex->call) {
        ex->paused = false;
        hl_upstream_resume(ex->call);
    }
}

static void render_error(hl_worker *w, int status, const char *path, const char *message,
                         char *headers, size_t headers_len, char *out, size_t out_len) {
    (void)path;
    gw_worker *gwk = hl_worker_data(w);
    char rid[64];
    uint64_t a = rng_next(&gwk->rng), b2 = rng_next(&gwk->rng);
    snprintf(rid, sizeof rid, "req_%016llx%08llx", (unsigned long long)a, (unsigned long long)(b2 >> 32));
    hl_api_error err;
    hl_api_error_kind k = status == 413 || status == 431 ? HL_AE_TOO_LARGE
                          : status == 408 ? HL_AE_TIMEOUT : HL_AE_INVALID_REQUEST;
    hl_api_error_set(&err, status, k, NULL, NULL, "%s", message);
    const hl_ingress *ing = path && !strcmp(path, "/v1/messages") ? &hl_ingress_anthropic : &hl_ingress_openai;
    hl_buf h;
    hl_buf_init(&h, headers_len - 1);
    id_headers(ing, rid, &h);
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
    gwk->gw = ud;
    if (getrandom(&gwk->rng, sizeof gwk->rng, 0) != sizeof gwk->rng)
        gwk->rng = uv_hrtime() ^ (uint64_t)hl_worker_index(w) << 32;
    gwk->metrics = hl_metrics_new(gwk->gw->bs->n);
    if (!gwk->metrics || hl_builtin_mailbox_new(&gwk->mailbox, hl_worker_loop(w)) != HL_OK) {
        hl_metrics_free(gwk->metrics);
        free(gwk);
        return NULL;
    }
    if (hl_upstream_init(&gwk->up, hl_worker_loop(w)) != HL_OK) {
        hl_builtin_mailbox_close(gwk->mailbox);
        hl_metrics_free(gwk->metrics);
        free(gwk);
        return NULL;
    }
    if (hl_worker_index(w) < HL_MAX_WORKERS) gwk->gw->metrics[hl_worker_index(w)] = gwk->metrics;
    return gwk;
}

static void worker_stop(void *data) {
    gw_worker *gwk = data;
    if (!gwk) return;
    hl_upstream_close(gwk->up);
    hl_builtin_mailbox_close(gwk->mailbox);
    free(gwk);
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
    if (cfg->api_keys_env) {
        const char *env = getenv(cfg->api_keys_env);
        char *copy = env ? strdup(env) : NULL;
        char *save = NULL;
        /* "key" or "name:key" entries, comma-separated; the name becomes the tenant. */
        for (char *tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok && gw->n_keys < MAX_CLIENT_KEYS;
             tok = strtok_r(NULL, ", ", &save)) {
            char *colon = strchr(tok, ':');
            if (colon) *colon = '\0';
            gw->key_names[gw->n_keys] = colon ? strdup(tok) : NULL;
            gw->keys[gw->n_keys++] = strdup(colon ? colon + 1 : tok);
        }
        if (copy) explicit_bzero(copy, strlen(copy));
        free(copy);
        if (!gw->n_keys)
            hl_log(HL_LOG_WARN, "server.api_keys_env names %s, but it is empty or unset: every "
                                "/v1 request will be refused with 401", cfg->api_keys_env);
    }
    gw->hooks = (hl_server_hooks){worker_start, worker_stop, on_request, on_abort, on_drain, render_error, gw};
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
    char tenant[64], pii[160] = "";
    hl_route_input in;
    hl_pii_detector *d = NULL;
    bool detected = false;
    if (cfg->privacy.detect_pii &&
        hl_pii_detector_new(&d, (const char *const *)cfg->privacy.custom_patterns,
                            (const char *const *)cfg->privacy.custom_names, cfg->privacy.n_custom, NULL, 0) == HL_OK) {
        bool clean = true;
        detected = scan_pii(d, cfg->privacy.redact, &req, pii, sizeof pii, &clean) && (!cfg->privacy.redact || !clean);
        if (pii[0]) hl_buf_printf(out, "PII detected: %s%s\n", pii, cfg->privacy.redact ? " (redacted)" : "");
    }
    hl_pii_detector_free(d);
    prepare_route(&req, hreq, NULL, "explain", tenant, sizeof tenant, &detected, &in);
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
