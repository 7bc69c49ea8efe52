/* hl_eval_run: see hl_eval_run.h. A fixed set of slots, one per call in flight; each slot
 * takes the next item-backend pair when its call is over. A slot always starts its call from
 * its own timer (delay 0, or a retry's backoff), never from inside a provider callback, as
 * hl_exchange schedules its attempts. */
#include "hl_eval_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_builtin.h"
#include "hl_pricing.h"
#include "hl_provider.h"
#include "hl_upstream.h"

typedef struct run run;

typedef struct slot {
    run *r;
    size_t job;                /* item * n_backends + backend; SIZE_MAX: idle */
    hl_provider_call *call;    /* in flight; NULL otherwise */
    uv_timer_t timer;
    double t0;                 /* monotonic ms at the start of the attempt */
    bool logprobs;
    int status;                /* HTTP status the upstream answered */
} slot;

struct run {
    hl_eval_dataset *ds;
    const hl_eval_opts *o;
    hl_eval_results *res;
    uv_loop_t loop;
    hl_provider_env env;
    slot *slots;
    int n_slots;
    size_t next_job, total, done;
    uint64_t rng;
};

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double jitter01(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / (double)(1ull << 53);
}

static hl_backend *job_backend(const run *r, size_t job) { return r->o->backends[job % r->o->n_backends]; }
static hl_eval_item *job_item(const run *r, size_t job) { return &r->ds->v[job / r->o->n_backends]; }
static hl_eval_call *job_call(const run *r, size_t job) { return &r->res->calls[job]; }

static void slot_next(slot *s);
static void on_timer(uv_timer_t *t);

/* The pair is over: report progress, move on to the next pair. */
static void job_done(slot *s) {
    run *r = s->r;
    r->done++;
    if (r->o->progress) r->o->progress(r->o->ud, r->done, r->total);
    s->job = SIZE_MAX;
    slot_next(s);
}

static void set_cost(const run *r, hl_backend *b, hl_eval_call *c) {
    if (hl_backend_is_cloud(b)) {
        const hl_price *p = hl_config_price(r->o->cfg, hl_backend_model(b));
        c->cost_known = p != NULL;
        c->cost_usd = p ? hl_pricing_cloud(p, &c->usage) : 0;
    } else {
        c->cost_known = true;
        c->cost_usd = hl_pricing_local(b->cfg->hourly_cost_usd, c->latency_ms);
    }
}

/* Backoff before retry n (0-based), as the gateway waits (hl_exchange's retry_delay_ms). */
static double retry_delay(run *r, const hl_backend_cfg *bc, int n, double retry_after_ms) {
    if (retry_after_ms >= 0 && retry_after_ms <= 60000) return retry_after_ms;
    double d = (double)bc->retry_base_ms;
    for (int i = 0; i < n && d < (double)bc->retry_max_ms; i++) d *= 2;
    if (d > (double)bc->retry_max_ms) d = (double)bc->retry_max_ms;
    return d * (1.0 - 0.25 * jitter01(&r->rng));
}

/* A failed attempt: retried after a backoff when the gateway would retry it, else final. */
static void attempt_failed(slot *s, bool retryable, double retry_after_ms) {
    run *r = s->r;
    hl_eval_call *c = job_call(r, s->job);
    hl_backend *b = job_backend(r, s->job);
    c->status = HL_EVAL_ERROR;
    set_cost(r, b, c);
    if (retryable && c->retries < b->cfg->max_retries) {
        size_t item = s->job / r->o->n_backends;
        if (r->o->retried) r->o->retried(r->o->ud, item, s->job % r->o->n_backends, &r->res->privacy[item], c);
        double delay = retry_delay(r, b->cfg, c->retries, retry_after_ms);
        c->retries++;
        uv_timer_start(&s->timer, on_timer, (uint64_t)delay, 0);
        return;
    }
    job_done(s);
}

static bool retryable_status(int st) { return st == 408 || st == 409 || st == 429 || st >= 500; }

static void on_status(void *ud, int status) { ((slot *)ud)->status = status; }

static int on_event(void *ud, const hl_stream_event *ev) {
    (void)ud;
    (void)ev;
    return HL_PROVIDER_CONTINUE; /* calls are not streamed */
}

/* An answer: taken from the result, its usage estimated when the upstream sent none. */
static void answered(slot *s, hl_chat_response *resp) {
    run *r = s->r;
    hl_eval_call *c = job_call(r, s->job);
    hl_eval_item *it = job_item(r, s->job);
    hl_backend *b = job_backend(r, s->job);
    c->resp = *resp;
    hl_chat_response_init(resp); /* taken */
    if (!c->resp.usage.known) {
        c->resp.usage.input_tokens = hl_chat_input_estimate(&it->req);
        c->resp.usage.output_tokens = hl_tokens_estimate(c->resp.text ? strlen(c->resp.text) : 0);
        c->resp.usage.estimated = true;
    }
    if (!c->resp.model || !c->resp.model[0]) {
        free(c->resp.model);
        c->resp.model = strdup(hl_backend_model(b));
    }
    c->usage = c->resp.usage;
    c->status = HL_EVAL_OK;
    c->error[0] = '\0';
    if (s->logprobs) {
        hl_conf_signals sig;
        hl_confidence_signals(c->resp.logprobs, &sig);
        c->confidence = sig.geomean;
        c->signals = sig.margin >= 0 && sig.min >= 0; /* the ledger takes both or neither */
        c->confidence_margin = sig.margin;
        c->confidence_min = sig.min;
    }
    set_cost(r, b, c);
    job_done(s);
}

static void on_done(void *ud, hl_provider_result *res) {
    slot *s = ud;
    run *r = s->r;
    hl_eval_call *c = job_call(r, s->job);
    s->call = NULL;
    c->latency_ms = now_ms() - s->t0;
    c->http_status = res->status;
    if (res->err != HL_OK) {
        snprintf(c->error, sizeof c->error, "%s%s", res->err == HL_ERR_TIMEOUT ? "timeout: " : "",
                 res->errmsg ? res->errmsg : hl_err_str(res->err));
        if (!res->status && res->err != HL_ERR_TIMEOUT) hl_backend_suspect(job_backend(r, s->job));
        attempt_failed(s, true, res->retry_after_ms);
        return;
    }
    if (res->status / 100 != 2) {
        snprintf(c->error, sizeof c->error, "HTTP %d: %s", res->status,
                 res->error_message && res->error_message[0] ? res->error_message : "(no message)");
        bool retry = retryable_status(res->status) && !res->spend_limit && !res->context_overflow;
        if (res->should_retry >= 0) retry = res->should_retry == 1 && !res->spend_limit;
        attempt_failed(s, retry, res->retry_after_ms);
        return;
    }
    if (!res->response) {
        snprintf(c->error, sizeof c->error, "the answer is not a valid completion");
        attempt_failed(s, true, -1);
        return;
    }
    answered(s, res->response);
}

static const hl_provider_events events = {on_status, on_event, NULL, on_done};

/* Starts the slot's attempt (from its timer). */
static void start_attempt(slot *s) {
    run *r = s->r;
    size_t bi = s->job % r->o->n_backends;
    hl_eval_call *c = job_call(r, s->job);
    hl_eval_item *it = job_item(r, s->job);
    hl_backend *b = job_backend(r, s->job);
    const hl_provider *p = hl_provider_for(b->cfg->kind);
    c->attempt = (int)(bi + 1 + r->o->n_backends * (size_t)c->retries);
    c->wall0 = wall_now();
    c->latency_ms = 0;
    c->http_status = 0;
    c->error[0] = '\0';
    hl_api_error aerr = {0};
    if (p->check && p->check(&it->req, &aerr) != HL_OK) {
        snprintf(c->error, sizeof c->error, "refused by backend kind %s: %.200s", p->name, aerr.message);
        attempt_failed(s, false, -1);
        return;
    }
    s->logprobs = !hl_backend_is_cloud(b) && b->cfg->kind != HL_PROVIDER_ANTHROPIC;
    s->status = 0;
    hl_provider_spec spec = {
        .backend = b, .req = &it->req, .model = hl_backend_model(b), .stream = false, .logprobs = s->logprobs,
        .timeout_ms = r->o->timeout_ms > 0 ? r->o->timeout_ms : b->cfg->timeout_ms,
        .connect_timeout_ms = b->cfg->connect_timeout_ms,
    };
    s->t0 = now_ms();
    atomic_store(&b->last_used_ms, s->t0);
    hl_err e = p->start(&r->env, &spec, &events, s, &s->call);
    if (e == HL_OK) return;
    if (e == HL_ERR_LIMIT) { /* the engine's queue is full: try again soon, not a retry */
        uv_timer_start(&s->timer, on_timer, 20, 0);
        return;
    }
    snprintf(c->error, sizeof c->error, "could not start the call: %s", hl_err_str(e));
    attempt_failed(s, false, -1);
}

static void on_timer(uv_timer_t *t) { start_attempt(t->data); }

/* Gives the slot the next pair: refused ones are settled at once, the first to be asked is
 * started from the timer. Idle when none is left. */
static void slot_next(slot *s) {
    run *r = s->r;
    while (r->next_job < r->total) {
        size_t job = r->next_job++;
        size_t item = job / r->o->n_backends;
        hl_eval_call *c = job_call(r, job);
        if (r->res->privacy[item].sensitive && hl_backend_is_cloud(job_backend(r, job))) {
            c->status = HL_EVAL_REFUSED;
            snprintf(c->error, sizeof c->error, "sensitive item: never sent to a cloud backend");
            r->done++;
            if (r->o->progress) r->o->progress(r->o->ud, r->done, r->total);
            continue;
        }
        s->job = job;
        uv_timer_start(&s->timer, on_timer, 0, 0);
        return;
    }
    s->job = SIZE_MAX;
}

void hl_eval_results_release(hl_eval_results *res) {
    if (res->calls)
        for (size_t i = 0; i < res->n_items * res->n_backends; i++) hl_chat_response_release(&res->calls[i].resp);
    free(res->calls);
    free(res->privacy);
    memset(res, 0, sizeof *res);
}

static hl_err results_init(hl_eval_results *res, const hl_eval_dataset *ds, const hl_eval_opts *o) {
    memset(res, 0, sizeof *res);
    res->n_items = ds->n;
    res->n_backends = o->n_backends;
    res->calls = calloc(ds->n * o->n_backends + 1, sizeof *res->calls);
    res->privacy = calloc(ds->n + 1, sizeof *res->privacy);
    if (!res->calls || !res->privacy) {
        hl_eval_results_release(res);
        return HL_ERR_NOMEM;
    }
    for (size_t i = 0; i < ds->n * o->n_backends; i++) {
        hl_chat_response_init(&res->calls[i].resp);
        res->calls[i].confidence = -1;
    }
    return HL_OK;
}

static void on_close(uv_handle_t *h) { (void)h; }

hl_err hl_eval_run(hl_eval_dataset *ds, const hl_eval_opts *o, hl_eval_results *res) {
    HL_TRY(results_init(res, ds, o));
    const hl_config *cfg = o->cfg;
    for (size_t i = 0; i < ds->n; i++)
        hl_privacy_decide(o->pii, cfg->privacy.redact, &ds->v[i].req, &res->privacy[i]);
    run r = {.ds = ds, .o = o, .res = res, .total = ds->n * o->n_backends, .rng = (uint64_t)uv_hrtime()};
    if (uv_loop_init(&r.loop) != 0) {
        hl_eval_results_release(res);
        return HL_ERR_IO;
    }
    hl_err e = HL_OK;
    r.n_slots = o->concurrency < 1 ? 1 : o->concurrency;
    if ((size_t)r.n_slots > r.total) r.n_slots = r.total ? (int)r.total : 1;
    if (!(r.slots = calloc((size_t)r.n_slots, sizeof *r.slots)) || hl_upstream_init(&r.env.up, &r.loop) != HL_OK ||
        hl_builtin_mailbox_new(&r.env.mailbox, &r.loop) != HL_OK) {
        e = HL_ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < r.n_slots; i++) {
        slot *s = &r.slots[i];
        s->r = &r;
        s->job = SIZE_MAX;
        uv_timer_init(&r.loop, &s->timer);
        s->timer.data = s;
    }
    for (int i = 0; i < r.n_slots; i++) slot_next(&r.slots[i]);
    /* The mailbox's async handle keeps the loop alive: run until every pair is done. */
    while (r.done < r.total) uv_run(&r.loop, UV_RUN_ONCE);
out:
    if (r.slots)
        for (int i = 0; i < r.n_slots; i++)
            if (r.slots[i].r) uv_close((uv_handle_t *)&r.slots[i].timer, on_close);
    if (r.env.up) hl_upstream_close(r.env.up);
    if (r.env.mailbox) hl_builtin_mailbox_close(r.env.mailbox);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    free(r.slots);
    if (e != HL_OK) hl_eval_results_release(res);
    return e;
}
