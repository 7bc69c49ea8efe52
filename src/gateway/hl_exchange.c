/* hl_exchange: one request's life as a state machine (see hl_exchange.h).
 *
 * Phases and the transitions between them:
 *
 *              refused (parse, privacy, route, budget)
 *   ROUTING ----------------------------------------------------------+
 *      |  \ a fleet budget lease to wait for: WAITING (budget_wait)     v
 *      | first attempt     failed (retry, next candidate),        FINISHING --> DONE
 *      v                   or answer held for escalation              ^
 *   ATTEMPTING -----------------------------------> WAITING ---------+ nothing left to try
 *      |  ^ \--------- answered whole --------------|---|-----------> ^
 *      |  +----------------- timer ------------------+   |            |
 *      |                      timer, an answer held      v            |
 *      |                                              HOLDING --------+ answered, or all
 *      | first bytes                                     |  \          failed: the held one
 *      v                       first bytes               |   \ failed: back to WAITING
 *   STREAMING <------------------------------------------+
 *      +---------- the stream ended (its end, or an error event) ---> FINISHING
 *
 *   The client gone (hl_exchange_abort) in WAITING, ATTEMPTING, HOLDING or STREAMING: DONE.
 *
 *  - ROUTING: the body is parsed, privacy decided, the route and budgets checked; all
 *    synchronous, inside hl_exchange_start.
 *  - ATTEMPTING / HOLDING: one provider call in flight (struct attempt), nothing sent to the
 *    client yet, so a failure can still go elsewhere. HOLDING is the same with a local answer
 *    held (struct held) because its confidence was below the route's threshold: the
 *    escalation targets are being asked, and should they all fail the held answer is served.
 *  - WAITING: the next attempt is scheduled on the exchange's timer: after a backoff for a
 *    retry, or on the next loop turn for a fallback or an escalation. Attempts never start
 *    each other by recursion. Also, before the first attempt, a request whose key's budget
 *    needs more of its fleet lease (hl_keybudget.h) polls admission on the timer until it is
 *    admitted (ATTEMPTING) or refused (FINISHING).
 *  - STREAMING: the client has the response head and the first events; what happens next can
 *    only end this response (a mid-stream error is reported in the stream).
 *  - FINISHING: the last ledger line is written and the answer is going out; the connection
 *    no longer points at the exchange, so no server callback can reach it. Once the answer's
 *    last byte was handed to the connection, a request drawn for its route's shadow hands its
 *    request and captured answer to hl_shadow (offer_shadow), which starts nothing before a
 *    later loop turn: shadows are never on the client's path.
 *  - DONE: freed.
 *
 * Every callback checks its phase first (hl_ex_phase_ok): a callback in a phase that cannot
 * receive it is a bug; debug builds abort on it, others log and ignore it. Every transition
 * goes through ex_enter, which checks it against the diagram. */
#include "hl_exchange.h"
#include "hl_keybudget.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hl_anthropic.h"
#include "hl_log.h"
#include "hl_pricing.h"
#include "hl_privacy.h"
#include "hl_shadow.h"
#include "hl_spare.h"
#include "hl_stop.h"
#include "hl_task.h"
#include "hl_url.h"

/* ------------------------------------------------------------------ phases */

static const char *const phase_names[HL_EX_N_PHASES] = {"routing", "waiting", "attempting", "holding",
                                                        "streaming", "finishing", "done"};

/* transitions[from]: the phases `from` may go to (the diagram above). */
#define B(p) HL_EX_BIT(HL_EX_##p)
static const unsigned transitions[HL_EX_N_PHASES] = {
    [HL_EX_ROUTING] = B(ATTEMPTING) | B(WAITING) | B(FINISHING),
    [HL_EX_WAITING] = B(ATTEMPTING) | B(HOLDING) | B(FINISHING) | B(DONE),
    [HL_EX_ATTEMPTING] = B(STREAMING) | B(WAITING) | B(FINISHING) | B(DONE),
    [HL_EX_HOLDING] = B(STREAMING) | B(WAITING) | B(FINISHING) | B(DONE),
    [HL_EX_STREAMING] = B(FINISHING) | B(DONE),
    [HL_EX_FINISHING] = B(DONE),
    [HL_EX_DONE] = 0,
};
/* A call of the exchange's is in flight. */
#define IN_CALL (B(ATTEMPTING) | B(HOLDING) | B(STREAMING))
/* The connection still points at the exchange. */
#define LIVE (B(WAITING) | IN_CALL)

const char *hl_ex_phase_name(hl_ex_phase p) { return p < HL_EX_N_PHASES ? phase_names[p] : "?"; }

bool hl_ex_debug_checks(void) {
#if !defined(NDEBUG) || defined(HL_DEBUG)
    return true;
#else
    return false;
#endif
}

bool hl_ex_transition_ok(hl_ex_phase from, hl_ex_phase to) {
    return from < HL_EX_N_PHASES && to < HL_EX_N_PHASES && (transitions[from] & HL_EX_BIT(to));
}

bool hl_ex_phase_ok(hl_ex_phase phase, unsigned allowed, const char *where) {
    if (phase < HL_EX_N_PHASES && (allowed & HL_EX_BIT(phase))) return true;
    hl_log(HL_LOG_ERROR, "bug: %s called on an exchange in phase %s", where, hl_ex_phase_name(phase));
    if (hl_ex_debug_checks()) abort();
    return false;
}

/* ------------------------------------------------------------------ the exchange */

/* One upstream call: reset as a whole when the next one starts. */
typedef struct attempt {
    int n;                   /* 1-based count of the request's upstream calls */
    hl_backend *backend;
    const char *model;
    const hl_provider *prov;
    hl_provider_call *call;  /* in flight; NULL once it ended */
    bool probe;              /* its backend's (or replica's) half-open breaker probe */
    int replica;             /* the backend's replica it went to (hl_backend_admit_at); -1: none */
    bool replica_busy;       /* counted in the replica's in-flight: until its ledger line */
    bool stream;             /* events as they come (else one whole answer) */
    bool judged;             /* its answer is judged on confidence */
    bool paused;             /* its provider was asked to pause (slow client) */
    double t0, wall0;        /* start: monotonic ms, Unix time */
    double ttft_ms;          /* < 0: no token yet */
    int status;              /* upstream HTTP status, 0 when none */
    double retry_after_ms;   /* the upstream's retry hints (hl_provider_result) */
    int should_retry;
    bool no_retry;           /* a spend limit: retrying cannot help */
    hl_usage usage;
    hl_finish finish;
    bool got_done;           /* the stream ended properly */
    bool stream_error;
    char errmsg[256];
    char errtype[48];        /* the upstream's error type ("overloaded_error", ...) */
    size_t out_bytes;        /* generated text bytes seen, for estimates */
    size_t out_events;       /* text events seen: about one token each from a local server */
    double last_activity_ms; /* when the upstream last sent something (idle timer) */
    bool gw_stops;           /* the gateway applies the stop sequences (the upstream would not
                                say which matched): `stops` filters the text */
    bool stop_hit;           /* gw_stops: one matched; the rest of the upstream's answer is dropped */
    hl_stop_filter stops;
    double confidence;       /* of a judged answer; < 0 unknown */
    hl_conf_signals signals; /* of a judged answer: all its confidence signals (-1 unknown) */
} attempt;

/* Backends that said the prompt does not fit their context, and the error for the client
 * should no other backend take it (rare: kept out of the exchange's own allocation). */
typedef struct overflow {
    char names[200];
    hl_api_error err;
} overflow;

/* A local answer below the confidence threshold, kept while the escalation targets try. */
typedef struct held {
    bool present;
    hl_chat_response resp;
    double cost;
    hl_backend *backend;
    const char *model;
    double confidence;
    hl_conf_signals signals;
} held;

struct hl_exchange {
    hl_ex_phase phase;
    hl_exchange_env *env;
    hl_conn *conn;
    const hl_ingress *ing;     /* the client's API format */
    char request_id[64];       /* the gateway's own: the ledger's key, the response ids */
    char client_id[64];        /* the client's x-request-id (echoed, recorded); "" when none */
    char chat_id[80];
    char tenant[64];           /* "" when none */
    hl_key_info key;           /* what the client's key decides */
    double key_reserved;       /* USD reserved against the key's budgets, released at the end */
    double key_est;            /* what admission reserves (while waiting for a lease) */
    hl_kb_ticket key_ticket;   /* its place in the line for the fleet's budget */
    bool budget_wait;          /* WAITING for a budget lease, not for an attempt */
    double budget_wait_until;  /* then refused */
    hl_key_rate rate;          /* the key's rate limits at admission (x-ratelimit-* headers) */
    hl_privacy_verdict privacy;
    long created;
    hl_chat_request req;
    hl_route route;
    int cand;                  /* index into route.candidates of the current attempt */
    int retries;               /* retries done on the current candidate */
    double deadline;           /* ms (uv_hrtime clock): the request's whole life ends here */
    bool escalation_armed;     /* the next local attempt is the one to judge */
    bool client_logprobs;      /* the client asked for logprobs itself */
    bool shadowed;             /* drawn for its route's shadow: the answer is captured and, once
                                  the client has it, offered to hl_shadow */
    hl_shadow_capture cap;     /* the served answer, for the comparison */
    bool counted;              /* still in the in-flight gauge */
    attempt at;
    held held;
    uv_timer_t timer;          /* schedules the next attempt */
    bool timer_inited;
    uv_timer_t idle;           /* a streamed attempt's upstream going silent */
    bool idle_inited;
    int closing;               /* handles still closing in ex_free */
    overflow *overflow;        /* context overflows seen; NULL until the first */
    /* client side of a stream: */
    hl_stream_encoder enc;
    hl_buf out;
};

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s) {
    /* splitmix64: ids need to be unique, not secret. */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Time-ordered, as a UUIDv7: 12 hex digits of the wall clock's milliseconds, then 12 random
 * ones. The store's unique (request_id, attempt) index then grows at its end instead of
 * dirtying a random page per insert (the indexer's CPU and page cache). */
void hl_exchange_new_id(uint64_t *rng, char *out, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    unsigned long long v[2] = {ms & 0xffffffffffffull, (unsigned long long)(rng_next(rng) >> 16)};
    char id[4 + 24 + 1] = "req_";
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 12; i++) id[4 + k * 12 + i] = "0123456789abcdef"[v[k] >> (4 * (11 - i)) & 15];
    id[28] = '\0';
    hl_strlcpy(out, id, n);
}

/* The id the client sees in x-request-id: its own when it sent one. */
static const char *echo_id(const hl_exchange *ex) { return ex->client_id[0] ? ex->client_id : ex->request_id; }

static bool ex_expect(const hl_exchange *ex, unsigned allowed, const char *where) {
    return hl_ex_phase_ok(ex->phase, allowed, where);
}

static void ex_enter(hl_exchange *ex, hl_ex_phase to) {
    if (!hl_ex_transition_ok(ex->phase, to)) {
        hl_log(HL_LOG_ERROR, "bug: exchange %s went from %s to %s", ex->request_id, hl_ex_phase_name(ex->phase),
               hl_ex_phase_name(to));
        if (hl_ex_debug_checks()) abort();
    }
    ex->phase = to;
}

/* ------------------------------------------------------------------ responses */

void hl_exchange_id_headers(const hl_ingress *ing, const char *request_id, hl_buf *h) {
    hl_buf_header(h, "x-request-id", request_id);
    if (ing == &hl_ingress_anthropic) hl_buf_header(h, "request-id", request_id);
}

void hl_exchange_respond_error(hl_conn *c, const hl_ingress *ing, const char *request_id,
                               const hl_api_error *err, const char *extra_headers) {
    hl_buf body, hdr;
    hl_buf_init(&body, 0);
    hl_buf_init(&hdr, 0);
    int status = ing->write_error(&body, err, request_id);
    hl_exchange_id_headers(ing, request_id, &hdr);
    if (extra_headers) hl_buf_puts(&hdr, extra_headers);
    hl_conn_respond(c, status, hdr.data, "application/json", body.data ? body.data : "", body.len);
    hl_buf_release(&body);
    hl_buf_release(&hdr);
}

/* Leaves the in-flight gauge once: before the response's last byte is written, so a client
 * that reads /metrics right after its answer never sees its own request still counted. */
static void leave_in_flight(hl_exchange *ex) {
    if (!ex->counted) return;
    ex->counted = false;
    hl_metrics_in_flight(ex->env->metrics, -1);
}

/* The answer is about to go out: from here a failing write must not make the server call
 * hl_exchange_abort, and the caller frees the exchange itself. */
static void enter_finishing(hl_exchange *ex) {
    ex_enter(ex, HL_EX_FINISHING);
    leave_in_flight(ex);
    if (ex->conn) hl_conn_set_data(ex->conn, NULL);
}

/* An exchange is past glibc's per-thread cache: each thread keeps its last one (hl_spare.h). */
static hl_spare ex_spare = HL_SPARE_INIT(sizeof(hl_exchange));

static void exchange_closed(uv_handle_t *h) {
    hl_exchange *ex = h->data;
    if (--ex->closing == 0) hl_spare_free(&ex_spare, ex);
}

/* The one place an exchange is freed. */
/* The attempt no longer counts in its replica's in-flight. */
static void replica_done(hl_exchange *ex) {
    if (!ex->at.replica_busy) return;
    hl_backend_replica_done(ex->at.backend, ex->at.replica);
    ex->at.replica_busy = false;
}

static void ex_free(hl_exchange *ex) {
    ex_enter(ex, HL_EX_DONE);
    if (ex->key_reserved > 0) hl_key_budgets_release(ex->env->key_budgets, &ex->key, ex->key_reserved);
    ex->key_reserved = 0;
    leave_in_flight(ex);
    if (ex->at.call) ex->at.prov->cancel(ex->at.call);
    replica_done(ex);
    hl_chat_request_release(&ex->req);
    hl_buf_release(&ex->out);
    if (ex->ing->encoder_release) ex->ing->encoder_release(&ex->enc);
    hl_chat_response_release(&ex->held.resp);
    hl_shadow_capture_release(&ex->cap);
    hl_stop_release(&ex->at.stops);
    free(ex->overflow);
    ex->overflow = NULL;
    /* The timer handles live in ex: free ex once the loop is done with them. */
    if (ex->timer_inited) {
        ex->timer.data = ex;
        ex->closing++;
        uv_close((uv_handle_t *)&ex->timer, exchange_closed);
    }
    if (ex->idle_inited) {
        ex->idle.data = ex;
        ex->closing++;
        uv_close((uv_handle_t *)&ex->idle, exchange_closed);
    }
    if (!ex->closing) hl_spare_free(&ex_spare, ex);
}

static void route_headers(const hl_exchange *ex, hl_buf *h) {
    hl_exchange_id_headers(ex->ing, echo_id(ex), h);
    hl_buf_header(h, "x-hybridllm-request-id", ex->request_id);
    if (ex->at.backend) hl_buf_header(h, "x-hybridllm-backend", ex->at.backend->cfg->name);
    if (ex->route.reason[0]) hl_buf_header(h, "x-hybridllm-route-reason", ex->route.reason);
    if (ex->at.model) hl_buf_header(h, "x-hybridllm-model", ex->at.model);
    if (ex->privacy.pii[0]) hl_buf_header(h, "x-hybridllm-pii-detected", ex->privacy.pii);
    if (ex->rate.limit_requests || ex->rate.limit_tokens) {
        char r[512];
        hl_exchange_rate_headers(&ex->rate, r, sizeof r);
        hl_buf_puts(h, r);
    }
}

/* What an error response says besides the request id. */
typedef enum { HDR_ID, HDR_REASON /* + route reason, PII found */, HDR_ROUTE /* + backend, model */ } hdr_mode;

/* Ends the exchange with err. */
static void finish_error(hl_exchange *ex, const hl_api_error *err, hdr_mode mode, const char *extra) {
    hl_buf h;
    hl_buf_init(&h, 0);
    if (mode == HDR_ROUTE) {
        route_headers(ex, &h);
    } else {
        hl_exchange_id_headers(ex->ing, echo_id(ex), &h);
        hl_buf_header(&h, "x-hybridllm-request-id", ex->request_id);
        if (mode == HDR_REASON && ex->route.reason[0]) hl_buf_header(&h, "x-hybridllm-route-reason", ex->route.reason);
        if (mode == HDR_REASON && ex->privacy.pii[0]) hl_buf_header(&h, "x-hybridllm-pii-detected", ex->privacy.pii);
    }
    if (extra) hl_buf_puts(&h, extra);
    hl_buf body;
    hl_buf_init(&body, 0);
    int status = ex->ing->write_error(&body, err, echo_id(ex));
    enter_finishing(ex);
    hl_conn_respond(ex->conn, status, h.data, "application/json", body.data ? body.data : "", body.len);
    hl_buf_release(&h);
    hl_buf_release(&body);
    ex_free(ex);
}

/* ------------------------------------------------------------------ the ledger */

hl_err hl_exchange_ledger_add(hl_exchange_env *env, const hl_ledger_record *r) {
    if (r->cloud) {
        hl_err e = hl_ledger_batch_flush(&env->lines); /* the lines before it stay before it */
        hl_err e2 = hl_ledger_append(env->ledger, r);
        return e ? e : e2;
    }
    hl_err e = hl_ledger_batch_add(&env->lines, r);
    hl_worker_before_send(env->worker);
    return e;
}

/* Final usage for the ledger: the upstream's, or an estimate marked as such. */
static hl_usage final_usage(const hl_exchange *ex) {
    hl_usage u = ex->at.usage;
    if (!u.known) {
        /* The prompt as the chat template makes it; the output as delivered: a local server
         * sends about one token an event, which 4 bytes a token undercounts for small
         * vocabularies. */
        long by_bytes = hl_tokens_estimate(ex->at.out_bytes);
        u.input_tokens = hl_chat_input_estimate(&ex->req);
        u.output_tokens = (long)ex->at.out_events > by_bytes ? (long)ex->at.out_events : by_bytes;
        u.estimated = true;
    }
    return u;
}

/* Writes the ledger line of the current attempt; returns its cost. */
static double record_attempt(hl_exchange *ex, const char *status, const hl_usage *u, const char *error) {
    replica_done(ex);
    const attempt *at = &ex->at;
    hl_exchange_env *env = ex->env;
    double latency = now_ms() - at->t0;
    char replica[256];
    const char *rurl = hl_backend_replica_url(at->backend, at->replica);
    if (rurl) hl_url_redact(rurl, replica, sizeof replica);
    hl_ledger_record r = {
        .timestamp = at->wall0,
        .request_id = ex->request_id,
        .client_request_id = ex->client_id[0] ? ex->client_id : NULL,
        .attempt = at->n,
        .cloud = hl_backend_is_cloud(at->backend),
        .backend = at->backend->cfg->name,
        .model = at->model,
        .route_reason = ex->route.reason,
        .status = status,
        .tenant = ex->tenant[0] ? ex->tenant : NULL,
        .key_id = ex->key.id,
        .key_name = ex->key.id ? ex->key.name : NULL,
        .pii = ex->privacy.pii[0] ? ex->privacy.pii : NULL,
        .task_type = ex->route.task_type,
        .task_inferred = !ex->req.task_type && ex->route.task_type,
        .sensitive = ex->privacy.sensitive,
        .stream = ex->req.stream,
        .usage = *u,
        .latency_ms = latency,
        .ttft_ms = at->ttft_ms,
        .confidence = at->confidence, /* judged, or the served side of a shadow; else -1 */
        /* The ledger takes margin and min together (a backend that gave no alternatives
         * leaves both out). */
        .signals = at->confidence >= 0 && at->signals.margin >= 0 && at->signals.min >= 0,
        .confidence_margin = at->signals.margin,
        .confidence_min = at->signals.min,
        .http_status = at->status,
        .error = error,
        .replica = rurl ? replica : NULL,
    };
    if (r.cloud) {
        const hl_price *p = hl_config_price(env->cfg, at->model);
        r.cost_known = p != NULL;
        r.cost_usd = p ? hl_pricing_cloud(p, u) : 0;
    } else {
        r.cost_known = true;
        r.cost_usd = hl_pricing_local(at->backend->cfg->hourly_cost_usd, latency);
    }
    hl_metrics_attempt(env->metrics, (size_t)(at->backend - env->bs->v), hl_metrics_status_of(status),
                       u->input_tokens, u->output_tokens, r.cost_usd, latency, at->ttft_ms);
    bool spent = r.cloud && r.cost_known;
    double wall = spent || ex->key.id ? wall_now() : 0; /* read once, and only when needed */
    if (spent) hl_budgets_add(env->budgets, r.tenant, r.cost_usd, (time_t)wall);
    hl_key_budgets_rate_charge(env->key_budgets, &ex->key, (long)u->output_tokens, (long long)(wall * 1000));
    if (hl_exchange_ledger_add(env, &r) != HL_OK)
        hl_log(HL_LOG_ERROR, "ledger write failed for %s: %m", ex->request_id);
    /* After the line: the indexer settles a fleet lease by the lines it finds (hl_keybudget.h). */
    if (spent) hl_key_budgets_add(env->key_budgets, &ex->key, r.cost_usd, (long long)(wall * 1000));
    return r.cost_usd;
}

/* ------------------------------------------------------------------ scheduling attempts */

static void run_attempt(hl_exchange *ex);

static int key_budget_poll(hl_exchange *ex);

static void on_timer(uv_timer_t *t) {
    hl_exchange *ex = t->data;
    if (!ex_expect(ex, B(WAITING), "the attempt timer")) return;
    if (ex->budget_wait) {
        int v = key_budget_poll(ex);
        if (v == 2) uv_timer_start(&ex->timer, on_timer, HL_KB_POLL_MS, 0);
        if (v != 1) return; /* waiting still, or refused (answered) */
        ex->budget_wait = false;
    }
    run_attempt(ex);
}

/* The next attempt runs after delay_ms (0: on the next loop turn), never from here. */
static void schedule(hl_exchange *ex, double delay_ms) {
    ex_enter(ex, HL_EX_WAITING);
    if (!ex->timer_inited) {
        uv_timer_init(hl_worker_loop(hl_conn_worker(ex->conn)), &ex->timer);
        ex->timer_inited = true;
    }
    ex->timer.data = ex;
    uv_timer_start(&ex->timer, on_timer, (uint64_t)delay_ms, 0);
}

/* Sends a complete answer in the client's shape. Ends the exchange. */
static void deliver(hl_exchange *ex, hl_chat_response *resp, double cost, double confidence);

/* The client has its whole answer (FINISHING): a drawn request's shadows are offered, with the
 * request and the captured answer handed over. Nothing here can delay the client. */
static void offer_shadow(hl_exchange *ex, long output_tokens) {
    if (!ex->shadowed) return;
    ex->shadowed = false;
    const attempt *at = &ex->at;
    hl_shadow_served s = {
        .request_id = ex->request_id, .client_id = ex->client_id[0] ? ex->client_id : NULL,
        .tenant = ex->tenant[0] ? ex->tenant : NULL, .route_reason = ex->route.reason,
        .task_type = ex->route.task_type, .pii = ex->privacy.pii[0] ? ex->privacy.pii : NULL,
        .task_inferred = !ex->req.task_type && ex->route.task_type, .key = &ex->key,
        .sensitive = ex->privacy.sensitive, .backend = at->backend, .attempts = at->n,
        .output_tokens = output_tokens, .confidence = hl_backend_is_cloud(at->backend) ? -1 : at->confidence,
        .signals = at->signals.margin >= 0 && at->signals.min >= 0, .confidence_margin = at->signals.margin,
        .confidence_min = at->signals.min,
    };
    hl_shadow_offer(ex->env, ex->route.rule, &s, &ex->req, &ex->cap);
}

/* Nothing was sent yet and the current candidate is out: the next one, the held answer, or
 * the error. */
static void fail_or_fallback(hl_exchange *ex, const hl_api_error *err) {
    if (ex->cand + 1 < ex->route.n && now_ms() < ex->deadline) {
        ex->cand++;
        ex->retries = 0;
        schedule(ex, 0);
        return;
    }
    if (ex->held.present) {
        /* Escalation failed everywhere: the local answer is better than an error. */
        hl_log(HL_LOG_WARN, "%s: escalation failed (%s); serving the local answer", ex->request_id, err->message);
        /* The answer served gets its `ok` line (its cost is on the `escalated` line). */
        hl_stop_release(&ex->at.stops);
        replica_done(ex);
        ex->at = (attempt){.n = ex->at.n + 1, .backend = ex->held.backend, .model = ex->held.model, .replica = -1,
                           .prov = hl_provider_for(ex->held.backend->cfg->kind), .judged = true,
                           .confidence = ex->held.confidence, .signals = ex->held.signals,
                           .t0 = now_ms(), .wall0 = wall_now(),
                           .ttft_ms = -1, .status = 200, .retry_after_ms = -1, .should_retry = -1};
        hl_usage u = ex->held.resp.usage;
        record_attempt(ex, "ok", &u, NULL);
        deliver(ex, &ex->held.resp, ex->held.cost, -1);
        return;
    }
    /* A rate limit that stays: the client's SDK waits as long as the upstream asked. */
    char extra[96] = "";
    if (err->status == 429 && ex->at.retry_after_ms >= 0)
        snprintf(extra, sizeof extra, "retry-after-ms: %.0f\r\nretry-after: %lld\r\n", ex->at.retry_after_ms,
                 ((long long)ex->at.retry_after_ms + 999) / 1000); /* whole seconds, rounded up */
    finish_error(ex, err, HDR_ROUTE, extra);
}

/* Backoff before retry n (0-based) on b: base x 2^n capped at max, minus up to 25% jitter,
 * as the official SDKs do; an upstream's retry-after wins when it asks for at most a minute. */
static double retry_delay_ms(hl_exchange *ex) {
    if (ex->at.retry_after_ms >= 0 && ex->at.retry_after_ms <= 60000) return ex->at.retry_after_ms;
    const hl_backend_cfg *c = ex->at.backend->cfg;
    double d = (double)c->retry_base_ms;
    for (int i = 0; i < ex->retries && d < (double)c->retry_max_ms; i++) d *= 2;
    if (d > (double)c->retry_max_ms) d = (double)c->retry_max_ms;
    double jitter = (double)(rng_next(&ex->env->rng) >> 11) / (double)(1ull << 53);
    return d * (1.0 - 0.25 * jitter);
}

/* An attempt failed before anything reached the client. retryable: the failure may pass
 * (connection errors, timeouts, 408/409/429/5xx/529); backend_fault: it counts against the
 * backend's circuit breaker. */
static void attempt_failed(hl_exchange *ex, const hl_api_error *err, bool retryable, bool backend_fault) {
    hl_backend_report_at(ex->at.backend, ex->at.replica, !backend_fault, ex->at.probe, now_ms());
    ex->at.probe = false;
    if (ex->at.should_retry >= 0) retryable = ex->at.should_retry == 1;
    if (ex->at.no_retry) retryable = false;
    if (!retryable) {
        ex->cand = ex->route.n; /* another backend would fail the same way */
        fail_or_fallback(ex, err);
        return;
    }
    if (ex->retries < ex->at.backend->cfg->max_retries) {
        double delay = retry_delay_ms(ex);
        if (now_ms() + delay < ex->deadline) {
            ex->retries++;
            schedule(ex, delay);
            return;
        }
    }
    fail_or_fallback(ex, err);
}

/* ------------------------------------------------------------------ the client side */

/* The response head of a stream: the client has its first bytes from here. */
static void open_stream(hl_exchange *ex) {
    hl_buf h;
    hl_buf_init(&h, 0);
    route_headers(ex, &h);
    hl_conn_stream_begin(ex->conn, 200, h.data, "text/event-stream; charset=utf-8");
    hl_buf_release(&h);
    ex_enter(ex, HL_EX_STREAMING);
}

static void flush_out(hl_exchange *ex) {
    if (!ex->out.len) return;
    if (ex->phase != HL_EX_STREAMING) open_stream(ex);
    hl_conn_stream_write(ex->conn, ex->out.data, ex->out.len);
    hl_buf_reset(&ex->out);
}

/* The stream's last bytes (in ex->out) and its end; the in-flight gauge is left first. */
static void end_stream(hl_exchange *ex) {
    if (ex->out.len && ex->phase != HL_EX_STREAMING) open_stream(ex);
    enter_finishing(ex);
    if (ex->out.len) hl_conn_stream_write(ex->conn, ex->out.data, ex->out.len);
    hl_buf_reset(&ex->out);
    hl_conn_stream_end(ex->conn);
}

/* Ends a streamed answer: its ledger line, the end or an error event, the last bytes. */
static void finish_stream(hl_exchange *ex, hl_err err, const char *errmsg) {
    attempt *at = &ex->at;
    hl_usage u = final_usage(ex);
    bool ok = err == HL_OK && !at->stream_error && (at->got_done || at->finish != HL_FINISH_NONE);
    char why[320];
    if (ok) {
        if (at->ttft_ms >= 0) hl_backend_record_latency_at(at->backend, at->replica, at->ttft_ms);
        if (ex->shadowed && ex->cap.logprobs && !hl_backend_is_cloud(at->backend)) {
            json_t *lp = json_pack("{s:O}", "content", ex->cap.logprobs);
            hl_confidence_signals(lp, &at->signals);
            at->confidence = at->signals.geomean;
            json_decref(lp);
        }
        record_attempt(ex, "ok", &u, NULL);
        ex->ing->encode_end(&ex->enc, &u, &ex->out);
    } else {
        if (at->stream_error) snprintf(why, sizeof why, "upstream stream error: %s", at->errmsg);
        else if (err) snprintf(why, sizeof why, "upstream connection failed mid-stream: %s", errmsg);
        else snprintf(why, sizeof why, "upstream stream ended without finishing");
        record_attempt(ex, "error", &u, why);
        /* Keep what kind of failure it was: clients treat overload and rate limits apart. */
        hl_api_error e;
        bool overloaded = !strcmp(at->errtype, "overloaded_error");
        bool limited = !strcmp(at->errtype, "rate_limit_error");
        hl_api_error_set(&e, overloaded ? 529 : limited ? 429 : 502,
                         overloaded ? HL_AE_OVERLOADED : limited ? HL_AE_RATE_LIMIT : HL_AE_API, NULL,
                         "upstream_stream_error", "Backend '%s': %s", at->backend->cfg->name, why);
        ex->ing->encode_error(&ex->enc, &e, &ex->out);
        ex->shadowed = false; /* nothing whole to compare with */
    }
    end_stream(ex);
    offer_shadow(ex, u.output_tokens);
    ex_free(ex);
}

/* Replays a whole answer through the stream encoder, for a client that asked to stream while
 * the attempt did not (a judged or held answer). */
static void replay_as_stream(hl_exchange *ex, hl_chat_response *resp) {
    const hl_ingress *ing = ex->ing;
    hl_stream_event ev = {.type = HL_EV_START, .id = resp->id, .model = resp->model};
    ing->encode_event(&ex->enc, &ev, &ex->out);
    if (resp->text && resp->text[0]) {
        ev = (hl_stream_event){.type = HL_EV_TEXT, .text = resp->text, .text_len = strlen(resp->text)};
        ing->encode_event(&ex->enc, &ev, &ex->out);
    }
    for (size_t i = 0; i < resp->n_tool_calls; i++) {
        const hl_tool_call *tc = &resp->tool_calls[i];
        ev = (hl_stream_event){.type = HL_EV_TOOL_CALL, .index = (int)i, .tool_id = tc->id, .tool_name = tc->name,
                               .text = tc->arguments, .text_len = tc->arguments ? strlen(tc->arguments) : 0};
        ing->encode_event(&ex->enc, &ev, &ex->out);
    }
    ev = (hl_stream_event){.type = HL_EV_FINISH, .finish = resp->finish, .stop_sequence = resp->stop_sequence};
    ing->encode_event(&ex->enc, &ev, &ex->out);
    ing->encode_end(&ex->enc, &resp->usage, &ex->out);
    end_stream(ex);
}

/* The signal a route's escalate.signal names; < 0 when the answer did not give it (then the
 * answer is served, as one without logprobs is). */
static double judged_signal(const hl_conf_signals *s, hl_conf_signal which) {
    switch (which) {
    case HL_SIGNAL_MARGIN: return s->margin;
    case HL_SIGNAL_MIN: return s->min;
    case HL_SIGNAL_GEOMEAN: break;
    }
    return s->geomean;
}

/* A judged answer was asked for 2 alternatives a token (for its margin); a client that asked
 * for logprobs itself gets the number it asked for (top_logprobs, -1 unset: none). */
static void trim_top_logprobs(json_t *logprobs, int keep) {
    size_t i;
    json_t *tok;
    if (keep < 0) keep = 0;
    json_array_foreach(json_object_get(logprobs, "content"), i, tok) {
        json_t *top = json_object_get(tok, "top_logprobs");
        while (json_array_size(top) > (size_t)keep) json_array_remove(top, json_array_size(top) - 1);
    }
}

static void deliver(hl_exchange *ex, hl_chat_response *resp, double cost, double confidence) {
    if (!ex->client_logprobs) {
        json_decref(resp->logprobs); /* asked for our confidence, not the client's */
        resp->logprobs = NULL;
    }
    size_t cap = ex->env->cfg->shadow_max_capture;
    long out_tokens = resp->usage.output_tokens;
    if (ex->req.stream) {
        replay_as_stream(ex, resp);
        if (ex->shadowed) hl_shadow_capture_take(&ex->cap, resp, cap);
        offer_shadow(ex, out_tokens);
        ex_free(ex);
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
    if (confidence >= 0) hl_buf_printf(&h, "x-hybridllm-confidence: %.4f\r\n", confidence);
    enter_finishing(ex);
    hl_conn_respond(ex->conn, 200, h.data, "application/json", body.data ? body.data : "", body.len);
    hl_buf_release(&body);
    hl_buf_release(&h);
    if (ex->shadowed) hl_shadow_capture_take(&ex->cap, resp, cap);
    offer_shadow(ex, out_tokens);
    ex_free(ex);
}

/* ------------------------------------------------------------------ provider callbacks */

static void on_status(void *ud, int status) {
    hl_exchange *ex = ud;
    if (!ex_expect(ex, IN_CALL, "provider on_status")) return;
    ex->at.status = status;
    if (ex->at.stream) ex->at.last_activity_ms = now_ms(); /* only a stream has an idle timer */
}

/* ------------------------------------------------------------------ the idle timer */

/* How long the current streamed attempt's upstream may stay silent now (0: no limit): the
 * backend's stream_idle_timeout_ms, and before the first token its first_token_timeout_ms
 * (unset: 4 x the idle timeout), for a cold local model loading. */
static long idle_limit_ms(const attempt *at) {
    const hl_backend_cfg *c = at->backend->cfg;
    if (at->ttft_ms >= 0) return c->stream_idle_timeout_ms;
    return c->first_token_timeout_ms > 0 ? c->first_token_timeout_ms : 4 * c->stream_idle_timeout_ms;
}

/* The upstream sent nothing for `limit` ms: the call is closed. Nothing reached the client
 * yet: the next candidate; else the stream ends with an error event. */
static void went_silent(hl_exchange *ex, long limit) {
    attempt *at = &ex->at;
    at->prov->cancel(at->call);
    at->call = NULL;
    bool first = at->ttft_ms < 0;
    char msg[200];
    snprintf(msg, sizeof msg, "the upstream sent nothing for %ld ms (%s)", limit,
             !first ? "stream_idle_timeout_ms"
             : at->backend->cfg->first_token_timeout_ms > 0 ? "first_token_timeout_ms"
                                                            : "before the first token: 4 x stream_idle_timeout_ms");
    hl_log(HL_LOG_WARN, "%s: backend %s: %s; closed", ex->request_id, at->backend->cfg->name, msg);
    hl_backend_report_at(at->backend, at->replica, false, at->probe, now_ms());
    at->probe = false;
    if (ex->phase == HL_EX_STREAMING) {
        at->stream_error = true;
        at->errtype[0] = '\0';
        snprintf(at->errmsg, sizeof at->errmsg, "%s", msg);
        finish_stream(ex, HL_ERR_TIMEOUT, msg);
        return;
    }
    hl_usage none = {0};
    record_attempt(ex, "error", &none, msg);
    hl_api_error cerr;
    hl_api_error_set(&cerr, 504, HL_AE_TIMEOUT, NULL, "upstream_timeout", "Backend '%s' went silent: %s.",
                     at->backend->cfg->name, msg);
    fail_or_fallback(ex, &cerr);
}

static void on_idle(uv_timer_t *t) {
    hl_exchange *ex = t->data;
    attempt *at = &ex->at;
    /* A late tick after the call ended is not an error: the timer is only stopped then. */
    if (!(HL_EX_BIT(ex->phase) & IN_CALL) || !at->call || !at->stream) return;
    long limit = idle_limit_ms(at);
    if (limit <= 0) return;
    double quiet = now_ms() - at->last_activity_ms;
    if (at->paused || quiet < (double)limit) {
        /* A paused upstream is silent because we asked it to be. */
        double wait = at->paused ? (double)limit : (double)limit - quiet;
        uv_timer_start(&ex->idle, on_idle, (uint64_t)(wait < 1 ? 1 : wait), 0);
        return;
    }
    went_silent(ex, limit);
}

/* (Re)arms the idle timer of a streamed attempt for its current limit. */
static void arm_idle(hl_exchange *ex) {
    attempt *at = &ex->at;
    long limit = at->stream ? idle_limit_ms(at) : 0;
    if (limit <= 0) {
        if (ex->idle_inited) uv_timer_stop(&ex->idle);
        return;
    }
    if (!ex->idle_inited) {
        uv_timer_init(hl_worker_loop(hl_conn_worker(ex->conn)), &ex->idle);
        ex->idle_inited = true;
    }
    ex->idle.data = ex;
    uv_timer_start(&ex->idle, on_idle, (uint64_t)limit, 0);
}

static void arm_idle(hl_exchange *ex);

/* gw_stops: a text event through the stop filter. What may begin a stop sequence is held
 * back; at a match the text before it and a finish naming the stop go to the client, and the
 * upstream call ends (its on_done then finishes the stream). */
static int stop_text(hl_exchange *ex, const hl_stream_event *ev) {
    attempt *at = &ex->at;
    if (at->stop_hit) return HL_PROVIDER_ABORT;
    hl_buf pass;
    hl_buf_init(&pass, 0);
    int m = hl_stop_feed(&at->stops, ev->text, ev->text_len, &pass);
    int rc = m == -2 ? HL_PROVIDER_ABORT : HL_PROVIDER_CONTINUE;
    if (pass.len) {
        hl_stream_event t = *ev;
        t.text = pass.data;
        t.text_len = pass.len;
        if (ex->ing->encode_event(&ex->enc, &t, &ex->out)) rc = HL_PROVIDER_ABORT;
    }
    hl_buf_release(&pass);
    if (m >= 0) {
        at->stop_hit = true;
        at->finish = HL_FINISH_STOP;
        hl_stream_event f = {.type = HL_EV_FINISH, .finish = HL_FINISH_STOP, .stop_sequence = ex->req.stop[m]};
        ex->ing->encode_event(&ex->enc, &f, &ex->out);
        rc = HL_PROVIDER_ABORT;
    }
    return rc;
}

/* gw_stops: the text held back was not a stop after all (the answer went on otherwise). */
static int stop_flush(hl_exchange *ex) {
    attempt *at = &ex->at;
    if (!at->stops.held.len) return HL_PROVIDER_CONTINUE;
    hl_buf pass;
    hl_buf_init(&pass, 0);
    int rc = hl_stop_flush(&at->stops, &pass) ? HL_PROVIDER_ABORT : HL_PROVIDER_CONTINUE;
    hl_stream_event t = {.type = HL_EV_TEXT, .text = pass.data, .text_len = pass.len};
    if (!rc && pass.len && ex->ing->encode_event(&ex->enc, &t, &ex->out)) rc = HL_PROVIDER_ABORT;
    hl_buf_release(&pass);
    return rc;
}

/* A streamed answer asked with 2 alternatives a token for a shadow's confidence: the client
 * gets the number it asked for. */
static int client_logprobs_event(hl_exchange *ex, const hl_stream_event *ev) {
    json_t *lp = json_pack("{s:o}", "content", json_deep_copy(ev->logprobs));
    if (!lp) return HL_PROVIDER_ABORT;
    trim_top_logprobs(lp, ex->req.top_logprobs);
    hl_stream_event t = *ev;
    t.logprobs = json_object_get(lp, "content");
    int rc = ex->ing->encode_event(&ex->enc, &t, &ex->out) ? HL_PROVIDER_ABORT : HL_PROVIDER_CONTINUE;
    json_decref(lp);
    return rc;
}

/* Stream events: tracked for the ledger, encoded for the client. */
static int on_event(void *ud, const hl_stream_event *ev) {
    hl_exchange *ex = ud;
    if (!ex_expect(ex, IN_CALL, "provider on_event")) return HL_PROVIDER_ABORT;
    attempt *at = &ex->at;
    at->last_activity_ms = now_ms();
    if (at->stop_hit) return HL_PROVIDER_ABORT; /* past the stop: nothing more is wanted */
    if (ex->shadowed) {
        hl_shadow_capture_event(&ex->cap, ev, ex->env->cfg->shadow_max_capture);
        /* asked for the shadow's confidence (2 alternatives a token), not the client's */
        if (ev->type == HL_EV_LOGPROBS && !ex->client_logprobs) return HL_PROVIDER_CONTINUE;
        if (ev->type == HL_EV_LOGPROBS && ex->req.top_logprobs < 2) return client_logprobs_event(ex, ev);
    }
    switch (ev->type) {
    case HL_EV_TEXT:
    case HL_EV_TOOL_CALL:
        if (at->ttft_ms < 0) {
            at->ttft_ms = at->last_activity_ms - at->t0;
            arm_idle(ex); /* the first token's longer allowance is over */
        }
        at->out_bytes += ev->text_len;
        at->out_events++;
        if (at->gw_stops && ev->type == HL_EV_TEXT) return stop_text(ex, ev);
        if (at->gw_stops && stop_flush(ex)) return HL_PROVIDER_ABORT;
        break;
    case HL_EV_FINISH:
        at->finish = ev->finish;
        if (at->gw_stops && stop_flush(ex)) return HL_PROVIDER_ABORT;
        break;
    case HL_EV_USAGE:
        at->usage = ev->usage; /* cumulative: replace, never add */
        break;
    case HL_EV_ERROR:
        at->stream_error = true;
        snprintf(at->errmsg, sizeof at->errmsg, "%.*s", (int)ev->text_len, ev->text);
        snprintf(at->errtype, sizeof at->errtype, "%s", ev->error_type ? ev->error_type : "");
        return HL_PROVIDER_CONTINUE;
    case HL_EV_DONE:
        at->got_done = true;
        return HL_PROVIDER_CONTINUE;
    default:
        break;
    }
    return ex->ing->encode_event(&ex->enc, ev, &ex->out) ? HL_PROVIDER_ABORT : HL_PROVIDER_CONTINUE;
}

/* A run of events is encoded: out to the client, and a pause while it cannot keep up. */
static void on_flush(void *ud) {
    hl_exchange *ex = ud;
    if (!ex_expect(ex, IN_CALL, "provider on_flush")) return;
    flush_out(ex);
    if (!ex->at.paused && ex->at.call && hl_conn_congested(ex->conn)) {
        ex->at.paused = true;
        ex->at.prov->pause(ex->at.call);
    }
}

/* Maps an upstream's refusal to the client's error. */
static void upstream_http_error(const hl_exchange *ex, const hl_provider_result *r, hl_api_error *err) {
    const char *msg = r->error_message ? r->error_message : "";
    int s = r->status;
    const hl_backend_cfg *bc = ex->at.backend->cfg;
    const char *name = bc->name;
    if (s == 429)
        hl_api_error_set(err, 429, HL_AE_RATE_LIMIT, NULL, "upstream_rate_limited",
                         "Backend '%s' is rate limited: %s", name, msg);
    else if (s == 401 || s == 403)
        hl_api_error_set(err, 502, HL_AE_API, NULL, "upstream_auth_failed",
                         "Backend '%s' refused the gateway's credentials (HTTP %d): %s. Check %s.", name, s, msg,
                         bc->api_key_env ? bc->api_key_env : "its API key");
    else if (s == 413)
        hl_api_error_set(err, 413, HL_AE_TOO_LARGE, NULL, "upstream_request_too_large", "Backend '%s': %s", name, msg);
    else if (s >= 400 && s < 500)
        hl_api_error_set(err, s == 404 ? 404 : 400, s == 404 ? HL_AE_NOT_FOUND : HL_AE_INVALID_REQUEST, NULL,
                         "upstream_invalid_request", "Backend '%s' rejected the request (HTTP %d): %s", name, s, msg);
    else if (s == 529 || s == 503)
        hl_api_error_set(err, 503, HL_AE_OVERLOADED, NULL, "upstream_overloaded",
                         "Backend '%s' is overloaded (HTTP %d): %s", name, s, msg);
    else
        hl_api_error_set(err, 502, HL_AE_API, NULL, "upstream_error", "Backend '%s' failed (HTTP %d): %s", name, s, msg);
}

static bool retryable_status(int s) { return s == 408 || s == 409 || s == 429 || s >= 500; }

/* The call ended without an answer: connection refused, reset, timeout. */
static void transport_failed(hl_exchange *ex, const hl_provider_result *r) {
    hl_api_error cerr;
    hl_usage none = {0};
    const char *name = ex->at.backend->cfg->name;
    record_attempt(ex, "error", &none, r->errmsg);
    hl_log(HL_LOG_WARN, "%s: backend %s: %s", ex->request_id, name, r->errmsg);
    if (!r->status && r->err != HL_ERR_TIMEOUT) hl_backend_suspect_at(ex->at.backend, ex->at.replica); /* gone? restarted? */
    if (r->err == HL_ERR_TIMEOUT)
        hl_api_error_set(&cerr, 504, HL_AE_TIMEOUT, NULL, "upstream_timeout",
                         "Backend '%s' did not answer in time: %s", name, r->errmsg);
    else if (r->status)
        hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_connection_lost",
                         "Backend '%s' dropped the connection mid-response: %s", name, r->errmsg);
    else
        hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_unreachable", "Backend '%s' could not be reached: %s",
                         name, r->errmsg);
    attempt_failed(ex, &cerr, true, true);
}

/* The escalation targets become the candidates (privacy-filtered by the router already). */
static void escalate(hl_exchange *ex) {
    hl_route *r = &ex->route;
    for (int i = 0; i < r->n_escalate; i++) {
        r->candidates[i] = r->escalate[i];
        r->models[i] = hl_backend_model(r->escalate[i]);
    }
    r->n = r->n_escalate;
    r->n_escalate = 0;
    size_t n = strlen(r->reason);
    snprintf(r->reason + n, sizeof r->reason - n, "+escalated");
    ex->cand = 0;
    ex->retries = 0;
    ex->escalation_armed = false;
    schedule(ex, 0);
}

/* A whole answer arrived (resp NULL: the body was not a valid completion). */
static void answered(hl_exchange *ex, hl_chat_response *resp) {
    attempt *at = &ex->at;
    hl_usage none = {0};
    if (!resp) {
        hl_api_error cerr;
        hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_invalid_response",
                         "Backend '%s' sent a response that is not a valid completion.", at->backend->cfg->name);
        record_attempt(ex, "error", &none, cerr.message);
        attempt_failed(ex, &cerr, true, true);
        return;
    }
    double now = now_ms();
    hl_backend_report_at(at->backend, at->replica, true, at->probe, now);
    at->probe = false;
    if (at->gw_stops) {
        int m = hl_stop_cut(ex->req.stop, ex->req.n_stop, resp->text);
        if (m >= 0) {
            free(resp->stop_sequence);
            resp->stop_sequence = strdup(ex->req.stop[m]);
            resp->finish = HL_FINISH_STOP;
        }
    }
    at->usage = resp->usage;
    at->out_bytes = resp->text ? strlen(resp->text) : 0;
    hl_backend_record_latency_at(at->backend, at->replica, now - at->t0);
    hl_usage u = final_usage(ex);
    resp->usage = u;
    if (!resp->model || !resp->model[0]) {
        free(resp->model);
        resp->model = strdup(at->model);
    }
    if (at->judged || (ex->shadowed && !hl_backend_is_cloud(at->backend))) {
        /* judged, or the served side of a comparison: asked with 2 alternatives a token */
        hl_confidence_signals(resp->logprobs, &at->signals);
        at->confidence = at->signals.geomean;
        if (ex->client_logprobs) trim_top_logprobs(resp->logprobs, ex->req.top_logprobs);
    }
    if (at->judged) {
        double signal = judged_signal(&at->signals, ex->route.escalate_signal);
        if (signal >= 0 && signal < ex->route.escalate_below && ex->route.n_escalate) {
            /* Not sure enough: hold this answer, ask the escalation targets. */
            ex->held = (held){.present = true, .resp = *resp, .backend = at->backend, .model = at->model,
                              .confidence = at->confidence, .signals = at->signals,
                              .cost = record_attempt(ex, "escalated", &u, NULL)};
            hl_chat_response_init(resp); /* taken */
            escalate(ex);
            return;
        }
    }
    double cost = record_attempt(ex, "ok", &u, NULL);
    deliver(ex, resp, cost, at->judged ? at->confidence : -1);
}

/* Notes that backend b cannot take the prompt (its context is too small) and sets the error
 * the client gets should no other backend take it. */
static void note_overflow(hl_exchange *ex, const hl_backend *b) {
    if (!ex->overflow && !(ex->overflow = calloc(1, sizeof *ex->overflow))) return;
    overflow *o = ex->overflow;
    size_t n = strlen(o->names);
    snprintf(o->names + n, sizeof o->names - n, "%s'%s'", n ? ", " : "", b->cfg->name);
    if (ex->privacy.sensitive)
        hl_api_error_set(&o->err, 400, HL_AE_INVALID_REQUEST, NULL, "context_length_exceeded",
                         "The prompt is too long for the context window of every local backend (%s); the "
                         "request is sensitive, so it may not go to a cloud backend. Shorten the prompt or "
                         "give a local backend a longer context.", o->names);
    else
        hl_api_error_set(&o->err, 400, HL_AE_INVALID_REQUEST, NULL, "context_length_exceeded",
                         "The prompt is too long for the context window of every backend that could take "
                         "it (%s).", o->names);
}

/* The backend said the prompt does not fit its context: not its fault, and not the
 * request's either while another backend may have a longer context. The next candidate. */
static void context_overflow(hl_exchange *ex) {
    attempt *at = &ex->at;
    hl_backend_report_at(at->backend, at->replica, true, at->probe, now_ms());
    at->probe = false;
    hl_log(HL_LOG_INFO, "%s: the prompt does not fit backend %s's context; trying the next candidate",
           ex->request_id, at->backend->cfg->name);
    note_overflow(ex, at->backend);
    hl_api_error oom;
    if (!ex->overflow) hl_api_error_set(&oom, 500, HL_AE_API, NULL, NULL, "Out of memory.");
    fail_or_fallback(ex, ex->overflow ? &ex->overflow->err : &oom);
}

static void on_done(void *ud, hl_provider_result *r) {
    hl_exchange *ex = ud;
    if (!ex_expect(ex, IN_CALL, "provider on_done")) return;
    attempt *at = &ex->at;
    at->call = NULL;
    at->retry_after_ms = r->retry_after_ms;
    at->should_retry = r->should_retry;
    at->no_retry = r->spend_limit;
    if (ex->idle_inited) uv_timer_stop(&ex->idle);
    if (r->stream_failure && !at->stream_error) {
        at->stream_error = true;
        snprintf(at->errmsg, sizeof at->errmsg, "%s", r->stream_failure);
    }
    if (at->stop_hit && at->stream) {
        /* The gateway ended the call at a stop sequence: a whole answer. */
        hl_backend_report_at(at->backend, at->replica, true, at->probe, now_ms());
        at->probe = false;
        finish_stream(ex, HL_OK, "");
        return;
    }
    if (ex->phase == HL_EX_STREAMING) {
        finish_stream(ex, r->err, r->errmsg);
        return;
    }
    if (r->err != HL_OK) {
        transport_failed(ex, r);
        return;
    }
    hl_api_error cerr;
    hl_usage none = {0};
    if (r->status / 100 != 2) {
        upstream_http_error(ex, r, &cerr);
        record_attempt(ex, "error", &none, cerr.message);
        if (r->context_overflow) {
            context_overflow(ex);
            return;
        }
        attempt_failed(ex, &cerr, retryable_status(r->status), r->status >= 500);
        return;
    }
    if (at->stream && r->not_streaming) {
        hl_api_error_set(&cerr, 502, HL_AE_API, NULL, "upstream_not_streaming",
                         "Backend '%s' answered a streaming request without an event stream.", at->backend->cfg->name);
        record_attempt(ex, "error", &none, cerr.message);
        attempt_failed(ex, &cerr, false, true);
        return;
    }
    if (at->stream) {
        hl_backend_report_at(at->backend, at->replica, true, at->probe, now_ms());
        at->probe = false;
        finish_stream(ex, HL_OK, "");
        return;
    }
    answered(ex, r->response);
}

static const hl_provider_events provider_events = {on_status, on_event, on_flush, on_done};

/* ------------------------------------------------------------------ attempts */

/* The backend's own timeout, cut to what is left of the request's. */
static long attempt_timeout_ms(const hl_exchange *ex, const hl_backend *b, double now) {
    double left = ex->deadline - now;
    long t = b->cfg->timeout_ms;
    if (left < (double)t) t = left < 1 ? 1 : (long)left;
    return t;
}

/* Moves ex->cand to the first candidate, from the current one, that may take the request:
 * privacy (checked again right before data leaves), the provider's own limits, the circuit
 * breaker. err receives why the skipped ones could not. Returns false when none is left. */
static bool pick_candidate(hl_exchange *ex, double now, bool *probe, int *replica, hl_api_error *err) {
    for (; ex->cand < ex->route.n; ex->cand++) {
        hl_backend *b = ex->route.candidates[ex->cand];
        if (ex->privacy.sensitive && hl_backend_is_cloud(b)) {
            hl_log(HL_LOG_ERROR, "%s: refused to send a sensitive request to cloud backend %s", ex->request_id,
                   b->cfg->name);
            continue;
        }
        const hl_provider *p = hl_provider_for(b->cfg->kind);
        if (p->check && p->check(&ex->req, err) != HL_OK) continue;
        /* The router checks a configured context_window; this one is what the server said. */
        long window = b->cfg->context_window ? 0 : hl_backend_context_window(b);
        if (window > 0 && hl_chat_input_estimate(&ex->req) > window) {
            hl_log(HL_LOG_INFO, "%s: skipped backend %s: the prompt needs ~%ld tokens, its context is %ld",
                   ex->request_id, b->cfg->name, hl_chat_input_estimate(&ex->req), window);
            note_overflow(ex, b);
            ex->retries = 0;
            continue;
        }
        if (!hl_backend_admit_at(b, now, rng_next(&ex->env->rng), probe, replica)) {
            if (!err->message[0])
                hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "circuit_open",
                                 "Backend '%s' is failing (circuit breaker open); no other backend "
                                 "could take the request.", b->cfg->name);
            ex->retries = 0;
            continue;
        }
        return true;
    }
    return false;
}

/* Starts the attempt on the current candidate (or the next usable one). */
static void run_attempt(hl_exchange *ex) {
    hl_api_error err;
    hl_api_error_clear(&err);
    bool probe = false;
    int replica = -1;
    replica_done(ex); /* the last attempt's, should it have no line */
    double now = now_ms();
    if (!pick_candidate(ex, now, &probe, &replica, &err)) {
        if (!err.message[0] && ex->overflow) err = ex->overflow->err;
        if (!err.message[0])
            hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "no_backend", "No backend can serve this request.");
        if (!ex->at.backend) {
            finish_error(ex, &err, HDR_ID, NULL);
            return;
        }
        ex->cand = ex->route.n - 1;
        fail_or_fallback(ex, &err);
        return;
    }
    hl_backend *b = ex->route.candidates[ex->cand];
    const hl_provider *prov = hl_provider_for(b->cfg->kind);
    /* A local answer to be judged on confidence is asked for whole, with logprobs (Messages
     * backends have none and are not judged). */
    bool judged = ex->escalation_armed && !hl_backend_is_cloud(b) && b->cfg->kind != HL_PROVIDER_ANTHROPIC;
    /* A local answer that a shadow will be compared with: its confidence is wanted too. */
    bool shadow_lp = ex->shadowed && !hl_backend_is_cloud(b) && b->cfg->kind != HL_PROVIDER_ANTHROPIC;
    hl_shadow_capture_release(&ex->cap); /* a new attempt: a new answer */
    /* An Anthropic client is told which stop sequence matched; OpenAI-compatible servers do not
     * say, so the gateway applies them itself. */
    bool gw_stops = ex->ing == &hl_ingress_anthropic && ex->req.n_stop > 0 && b->cfg->kind == HL_PROVIDER_OPENAI;
    hl_stop_release(&ex->at.stops);
    ex->at = (attempt){
        .n = ex->at.n + 1, .backend = b, .model = ex->route.models[ex->cand], .prov = prov, .probe = probe,
        .replica = replica, .replica_busy = replica >= 0,
        .stream = ex->req.stream && !judged, .judged = judged, .t0 = now, .wall0 = wall_now(),
        .ttft_ms = -1, .retry_after_ms = -1, .should_retry = -1, .confidence = -1, .gw_stops = gw_stops,
        .signals = {-1, -1, -1},
    };
    ex->at.last_activity_ms = ex->at.t0;
    hl_stop_init(&ex->at.stops, ex->req.stop, gw_stops ? ex->req.n_stop : 0);
    atomic_store(&b->last_used_ms, ex->at.t0);
    if (ex->ing->encoder_release) ex->ing->encoder_release(&ex->enc);
    ex->ing->encoder_init(&ex->enc, ex->chat_id, ex->at.model, ex->created, ex->req.include_usage, echo_id(ex));
    hl_buf_reset(&ex->out);
    ex_enter(ex, ex->held.present ? HL_EX_HOLDING : HL_EX_ATTEMPTING);
    hl_provider_spec spec = {
        .backend = b, .base_url = hl_backend_replica_url(b, replica), .req = &ex->req, .model = ex->at.model,
        .stream = ex->at.stream, .logprobs = judged || shadow_lp,
        .timeout_ms = attempt_timeout_ms(ex, b, now), .connect_timeout_ms = b->cfg->connect_timeout_ms,
        .no_stop = gw_stops,
        .native_responses = ex->ing == &hl_ingress_responses && b->cfg->kind == HL_PROVIDER_OPENAI &&
                            b->cfg->location == HL_LOCATION_CLOUD,
    };
    /* A backend's max_tokens stands in for a request without one (what its reservation counted). */
    long asked = ex->req.max_tokens;
    if (asked <= 0 && b->cfg->max_tokens > 0) ex->req.max_tokens = b->cfg->max_tokens;
    hl_err e = prov->start(&ex->env->prov, &spec, &provider_events, ex, &ex->at.call);
    ex->req.max_tokens = asked;
    if (e == HL_OK) {
        arm_idle(ex);
        return;
    }
    if (e == HL_ERR_LIMIT) {
        hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "backend_busy",
                         "Backend '%s' has %d requests waiting already.", b->cfg->name, b->cfg->max_queue);
        attempt_failed(ex, &err, true, false);
        return;
    }
    hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Could not start the upstream call: %s.", hl_err_str(e));
    finish_error(ex, &err, HDR_ID, NULL);
}

/* ------------------------------------------------------------------ routing */

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

/* The tenant a request belongs to. With client keys the key decides: its name, or none (a
 * header naming another tenant would spend that tenant's budget, or escape its own). Without
 * keys (no identity at all): x-hybridllm-tenant when it is a sane token. NULL when neither. */
static const char *request_tenant(const hl_http_req *req, const char *key_tenant, bool header_allowed, char *buf,
                                  size_t len) {
    const hl_slice *v = header_allowed ? hl_http_header_get(req, "x-hybridllm-tenant") : NULL;
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

void hl_exchange_read_hints(hl_chat_request *req, const hl_http_req *hreq) {
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
}

void hl_exchange_route_input(const hl_chat_request *req, const hl_http_req *hreq, const char *key_tenant,
                             bool header_tenant, const char *sticky_key, bool sensitive, char *tenant,
                             size_t tenant_len, hl_route_input *in) {
    const char *t = request_tenant(hreq, key_tenant, header_tenant, tenant, tenant_len);
    if (t != tenant) hl_strlcpy(tenant, t, tenant_len);
    *in = (hl_route_input){
        .model = req->model,
        .task_type = req->task_type,
        .inferred_task = req->task_type ? NULL : hl_task_infer(req),
        .sensitive = sensitive,
        .tenant = tenant[0] ? tenant : NULL,
        .sticky_key = sticky_key,
        .prompt_tokens = hl_tokens_estimate(req->text_bytes),
        .max_tokens = req->max_tokens,
        .latency_budget_ms = header_long(hreq, "x-hybridllm-latency-budget-ms"),
        .now_ms = now_ms(),
    };
}

/* Drops the backends in v[0..*n) that list does not allow (keeping models[] aligned when
 * given). */
static void keep_allowed(const char *list, hl_backend **v, const char **models, int *n) {
    int k = 0;
    for (int i = 0; i < *n; i++) {
        if (!hl_keys_list_allows(list, v[i]->cfg->name)) continue;
        if (models) models[k] = models[i];
        v[k++] = v[i];
    }
    *n = k;
}

bool hl_exchange_key_permits(const hl_key_info *key, const char *model, hl_route *route, hl_api_error *err) {
    if (key->models[0] && !hl_keys_list_allows(key->models, model)) {
        hl_api_error_set(err, 403, HL_AE_PERMISSION, "model", "model_not_allowed",
                         "This API key may not use model '%.100s'.", model ? model : "");
        return false;
    }
    if (!key->backends[0]) return true;
    keep_allowed(key->backends, route->candidates, route->models, &route->n);
    keep_allowed(key->backends, route->escalate, NULL, &route->n_escalate);
    if (route->n) return true;
    hl_api_error_set(err, 403, HL_AE_PERMISSION, NULL, "backend_not_allowed",
                     "This API key may not use any backend that serves this request.");
    return false;
}

/* OpenAI's spelling of a duration in x-ratelimit-reset-*: "250ms", "1.5s", "6m0s". */
static void reset_str(double s, char *out, size_t n) {
    if (s < 1) snprintf(out, n, "%dms", (int)(s * 1000 + 0.5));
    else if (s < 60) snprintf(out, n, "%.3gs", s);
    else snprintf(out, n, "%dm%ds", (int)(s / 60), (int)s % 60);
}

/* The x-ratelimit-* header lines of r (the kinds that have a limit) into out. */
void hl_exchange_rate_headers(const hl_key_rate *r, char *out, size_t n) {
    char a[32], b[32];
    size_t k = 0;
    out[0] = '\0';
    if (r->retry_after_s > 0) {
        long sec = (long)r->retry_after_s + ((double)(long)r->retry_after_s < r->retry_after_s);
        k += (size_t)snprintf(out + k, n - k, "retry-after: %ld\r\nretry-after-ms: %ld\r\n", sec < 1 ? 1 : sec,
                              (long)(r->retry_after_s * 1000 + 0.5));
    }
    if (r->limit_requests && k < n) {
        reset_str(r->reset_requests_s, a, sizeof a);
        k += (size_t)snprintf(out + k, n - k,
                              "x-ratelimit-limit-requests: %lld\r\nx-ratelimit-remaining-requests: %lld\r\n"
                              "x-ratelimit-reset-requests: %s\r\n", r->limit_requests, r->remaining_requests, a);
    }
    if (r->limit_tokens && k < n) {
        reset_str(r->reset_tokens_s, b, sizeof b);
        snprintf(out + k, n - k,
                 "x-ratelimit-limit-tokens: %lld\r\nx-ratelimit-remaining-tokens: %lld\r\n"
                 "x-ratelimit-reset-tokens: %s\r\n", r->limit_tokens, r->remaining_tokens, b);
    }
}

/* The key's requests and tokens per minute: false when over (answered 429 with the headers
 * OpenAI clients read to wait). */
static bool key_rate_admits(hl_exchange *ex, const hl_route_input *in) {
    hl_key_rate r;
    if (hl_key_budgets_rate(ex->env->key_budgets, &ex->key, in->prompt_tokens, (long long)(wall_now() * 1000), &r)) {
        ex->rate = r;
        return true;
    }
    char h[768];
    hl_exchange_rate_headers(&r, h, sizeof h);
    hl_api_error err;
    hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "rate_limit_exceeded",
                     "Rate limit of this API key reached (%lld requests, %lld tokens per minute); retry in %.1f s.",
                     r.limit_requests, r.limit_tokens, r.retry_after_s);
    finish_error(ex, &err, HDR_ID, h);
    return false;
}

/* The order is documented in hl_exchange.h (and README, virtual keys). */
long hl_exchange_reserve_tokens(const hl_config *cfg, const hl_backend_cfg *b, long max_tokens) {
    if (max_tokens > 0) return max_tokens;
    if (b && b->max_tokens > 0) return b->max_tokens;
    if (b && b->kind == HL_PROVIDER_ANTHROPIC) return HL_ANTHROPIC_DEFAULT_MAX_TOKENS;
    return cfg->key_reserve_max_tokens;
}

/* Answers a budget refusal (429, no retry). */
static void key_budget_refused(hl_exchange *ex, const hl_kb_refusal *why) {
    hl_api_error err;
    hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "budget_exceeded",
                     "The %s budget of this API key%s is spent or reserved ($%.4f of $%.2f, this request may cost "
                     "up to $%.4f); requests that need the cloud are refused until it resets.",
                     why->month ? "monthly" : "daily", why->tenant ? "'s tenant" : "", why->spent, why->limit,
                     ex->key_est);
    finish_error(ex, &err, HDR_ID, "x-should-retry: false\r\n");
}

/* Admission against the key's (and its tenant's) budgets with ex->key_est: 1 admitted, 0
 * refused (answered), 2 wait (a fleet lease is being asked for; poll again). */
static int key_budget_poll(hl_exchange *ex) {
    hl_kb_refusal why = {0};
    hl_kb_verdict v = hl_key_budgets_admit(ex->env->key_budgets, &ex->key, ex->key_est, (long long)(wall_now() * 1000),
                                           &ex->key_ticket, &why);
    if (v == HL_KB_ADMIT) {
        ex->key_reserved = ex->key_est;
        return 1;
    }
    if (v == HL_KB_WAIT && now_ms() < ex->budget_wait_until) return 2;
    if (v == HL_KB_WAIT) {
        hl_api_error err;
        hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "budget_unavailable",
                         "The budget of this API key could not be reserved: the ledger store did not answer "
                         "in time. Retry later.");
        finish_error(ex, &err, HDR_ID, NULL);
        return 0;
    }
    key_budget_refused(ex, &why);
    return 0;
}

/* Reserves the worst case of the route against the key's and its tenant's budgets: the
 * prompt's estimated tokens plus the output tokens of hl_exchange_reserve_tokens at the
 * dearest cloud candidate's prices. 1 admitted, 0 refused (answered 429), 2 wait (a fleet
 * lease: the caller polls key_budget_poll). */
static int key_budget_admits(hl_exchange *ex, const hl_route_input *in) {
    if (!ex->key.id) return 1;
    double est = 0;
    for (int i = 0; i < ex->route.n; i++) {
        if (!hl_backend_is_cloud(ex->route.candidates[i])) continue;
        const hl_price *p = hl_config_price(ex->env->cfg, ex->route.models[i]);
        if (!p) continue;
        long out = hl_exchange_reserve_tokens(ex->env->cfg, ex->route.candidates[i]->cfg, in->max_tokens);
        double c = ((double)in->prompt_tokens * p->input_per_mtok + (double)out * p->output_per_mtok) / 1e6;
        if (c > est) est = c;
    }
    if (est <= 0) return 1; /* nothing priced in the cloud: nothing to reserve */
    ex->key_est = est;
    ex->budget_wait_until = now_ms() + HL_KB_WAIT_MS;
    return key_budget_poll(ex);
}

/* Refuses a request whose route needs the cloud while its budget says reject. */
static bool budget_refuses(hl_exchange *ex, const hl_budget_cfg *over, const hl_route_input *in, double spent,
                           double limit) {
    if (!over || over->action != HL_BUDGET_REJECT || !hl_backend_is_cloud(ex->route.candidates[0])) return false;
    hl_api_error err;
    hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "budget_exceeded",
                     "The cloud budget '%s' is spent ($%.2f of $%.2f this %s%s%s); requests that need "
                     "the cloud are refused until it resets.", over->name, spent, limit,
                     over->period == HL_BUDGET_MONTH ? "month" : "day", in->tenant ? " for tenant " : "",
                     in->tenant ? in->tenant : "");
    finish_error(ex, &err, HDR_ID, "x-should-retry: false\r\n");
    return true;
}

/* ROUTING: privacy, the route, the budgets. Returns 0 when the request was refused (the
 * exchange is then answered and freed), 1 when it goes on, 2 when it waits for a budget
 * lease. */
static int route(hl_exchange *ex, const hl_http_req *hreq) {
    hl_exchange_env *env = ex->env;
    hl_exchange_read_hints(&ex->req, hreq);
    hl_privacy_decide(env->pii, env->cfg->privacy.redact, &ex->req, &ex->privacy);
    /* A key whose traffic stays local makes every request of it sensitive. */
    if (!ex->key.cloud_allowed) ex->privacy.sensitive = true;
    hl_route_input in;
    const char *key_tenant = ex->key.tenant[0] ? ex->key.tenant : NULL;
    hl_exchange_route_input(&ex->req, hreq, key_tenant, !env->keys_decide_tenant && !ex->key.id, ex->request_id,
                            ex->privacy.sensitive, ex->tenant,
                            sizeof ex->tenant, &in);
    if (!key_rate_admits(ex, &in)) return 0;
    double spent, limit;
    const hl_budget_cfg *over = hl_budgets_exceeded(env->budgets, in.tenant, (time_t)wall_now(), &spent, &limit);
    if (over && over->action == HL_BUDGET_LOCAL) in.budget_local = over->name;
    hl_api_error err;
    hl_api_error_clear(&err);
    if (hl_router_route(env->cfg, env->bs, &in, &ex->route, &err, NULL) != HL_OK ||
        !hl_exchange_key_permits(&ex->key, ex->req.model, &ex->route, &err)) {
        finish_error(ex, &err, HDR_REASON, NULL);
        return 0;
    }
    return budget_refuses(ex, over, &in, spent, limit) ? 0 : key_budget_admits(ex, &in);
}

void hl_exchange_start(hl_exchange_env *env, hl_conn *c, const hl_ingress *ing, const hl_http_req *hreq,
                       const char *body, size_t len, const char *request_id, const char *client_id,
                       const hl_key_info *key) {
    hl_exchange *ex = hl_spare_calloc(&ex_spare);
    hl_api_error err;
    hl_api_error_clear(&err);
    if (!ex) {
        hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        hl_exchange_respond_error(c, ing, client_id[0] ? client_id : request_id, &err, NULL);
        return;
    }
    ex->phase = HL_EX_ROUTING;
    ex->env = env;
    ex->conn = c;
    ex->ing = ing;
    ex->counted = true;
    ex->key = *key;
    hl_metrics_in_flight(env->metrics, 1);
    hl_strlcpy(ex->request_id, request_id, sizeof ex->request_id);
    hl_strlcpy(ex->client_id, client_id, sizeof ex->client_id);
    size_t pl = hl_strlcpy(ex->chat_id, ing->id_prefix, sizeof ex->chat_id);
    if (pl < sizeof ex->chat_id) hl_strlcpy(ex->chat_id + pl, request_id, sizeof ex->chat_id - pl);
    ex->created = (long)time(NULL);
    hl_buf_init(&ex->out, 0);
    hl_chat_request_init(&ex->req);
    hl_chat_response_init(&ex->held.resp);
    hl_shadow_capture_init(&ex->cap);
    if (ing->parse_request(body, len, &ex->req, &err) != HL_OK) {
        if (!err.status) hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        finish_error(ex, &err, HDR_ID, NULL);
        return;
    }
    /* Anthropic's beta features, named by the client: for Anthropic backends only. */
    const hl_slice *beta = hl_http_header_get(hreq, "anthropic-beta");
    if (beta && beta->n && beta->n < 1024 && !memchr(beta->p, '\r', beta->n) && !memchr(beta->p, '\n', beta->n) &&
        !(ex->req.anthropic_beta = strndup(beta->p, beta->n))) {
        hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        finish_error(ex, &err, HDR_ID, NULL);
        return;
    }
    int go = route(ex, hreq);
    if (!go) return;
    hl_conn_set_data(c, ex);
    ex->deadline = now_ms() + (double)env->cfg->request_timeout_ms;
    ex->client_logprobs = ex->req.logprobs;
    ex->shadowed = env->shadow && ex->route.rule && ex->route.rule->n_shadow_to &&
                   hl_shadow_draw(ex->request_id, ex->route.rule->shadow_rate);
    ex->escalation_armed = ex->route.escalate_below > 0 && ex->route.n_escalate > 0 &&
                           (!ex->req.stream || ex->route.escalate_streams);
    if (go == 2) {
        ex->budget_wait = true;
        schedule(ex, HL_KB_POLL_MS);
        return;
    }
    run_attempt(ex);
}

/* ------------------------------------------------------------------ the client's events */

void hl_exchange_abort(hl_exchange *ex) {
    if (!ex_expect(ex, LIVE, "hl_exchange_abort")) return;
    attempt *at = &ex->at;
    if (at->call) {
        at->prov->cancel(at->call);
        at->call = NULL;
        hl_usage u = final_usage(ex);
        record_attempt(ex, "cancelled", &u, "client disconnected");
        if (at->probe) hl_backend_probe_abandoned_at(at->backend, at->replica, now_ms());
    }
    ex_free(ex);
}

void hl_exchange_drain(hl_exchange *ex) {
    if (!ex_expect(ex, LIVE, "hl_exchange_drain")) return;
    if (ex->at.paused && ex->at.call) {
        ex->at.paused = false;
        ex->at.prov->resume(ex->at.call);
    }
}
