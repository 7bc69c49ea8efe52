/* hl_shadow: the shadow scheduler, the shadow calls, their scoring and their ledger lines (see
 * hl_shadow.h for the phases and the rules). */
#include "hl_shadow.h"

#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "hl_builtin.h"
#include "hl_compare.h"
#include "hl_log.h"
#include "hl_pricing.h"
#include "hl_upstream.h"

_Static_assert((int)HL_SHADOW_EXACT == (int)HL_CMP_EXACT && (int)HL_SHADOW_JSON == (int)HL_CMP_JSON &&
               (int)HL_SHADOW_TOOLS == (int)HL_CMP_TOOLS && (int)HL_SHADOW_TOKEN_F1 == (int)HL_CMP_TOKEN_F1 &&
               (int)HL_SHADOW_ROUGE_L == (int)HL_CMP_ROUGE_L && HL_SHADOW_AUTO == 0,
               "the config's compare words follow hl_cmp_method");

#define ATTEMPTS_PER_JOB 3   /* the shadow call, then two judge calls or one embeddings call */
#define JUDGE_TEXT_MAX 16384 /* bytes of the request and of each answer shown to the judge */
#define EMBED_BODY_MAX (8u << 20)

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *hl_shadow_result_name(hl_shadow_result r) {
    return r < HL_SHADOW_N_RESULTS ? hl_metrics_shadow_names[r] : "?";
}

/* ------------------------------------------------------------------ the draw and the queue */

bool hl_shadow_draw(const char *request_id, double rate) {
    if (!(rate > 0)) return false;
    if (rate >= 1) return true;
    /* FNV-1a, then a 64-bit finalizer: ids differ in few characters, the draw must not. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = request_id; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (double)(h >> 11) / (double)(1ull << 53) < rate;
}

hl_shadow_admit hl_shadow_admission(int running, int queued, int max_concurrent, int max_queue) {
    if (running < max_concurrent && queued == 0) return HL_SHADOW_RUN;
    if (queued < max_queue) return HL_SHADOW_QUEUE;
    return HL_SHADOW_DROP;
}

/* ------------------------------------------------------------------ capture */

void hl_shadow_capture_init(hl_shadow_capture *c) {
    memset(c, 0, sizeof *c);
    hl_chat_response_init(&c->resp);
}

void hl_shadow_capture_release(hl_shadow_capture *c) {
    hl_chat_response_release(&c->resp);
    json_decref(c->logprobs);
    hl_shadow_capture_init(c);
}

/* Appends s[0..n) to *dst (a NUL-terminated heap string or NULL). */
static bool append(char **dst, const char *s, size_t n) {
    size_t have = *dst ? strlen(*dst) : 0;
    char *p = realloc(*dst, have + n + 1);
    if (!p) return false;
    memcpy(p + have, s, n);
    p[have + n] = '\0';
    *dst = p;
    return true;
}

static void capture_over(hl_shadow_capture *c) {
    c->over = true;
    hl_chat_response_release(&c->resp);
    hl_chat_response_init(&c->resp);
}

/* A tool-call fragment: the call at ev->index, created on its first fragment. */
static bool capture_tool(hl_shadow_capture *c, const hl_stream_event *ev) {
    hl_chat_response *r = &c->resp;
    if (ev->index < 0 || ev->index > 128) return false;
    size_t i = (size_t)ev->index;
    if (i >= r->n_tool_calls) {
        hl_tool_call *v = realloc(r->tool_calls, (i + 1) * sizeof *v);
        if (!v) return false;
        memset(v + r->n_tool_calls, 0, (i + 1 - r->n_tool_calls) * sizeof *v);
        r->tool_calls = v;
        r->n_tool_calls = i + 1;
    }
    hl_tool_call *tc = &r->tool_calls[i];
    if (ev->tool_id && !tc->id && !(tc->id = strdup(ev->tool_id))) return false;
    if (ev->tool_name && !tc->name && !(tc->name = strdup(ev->tool_name))) return false;
    return append(&tc->arguments, ev->text ? ev->text : "", ev->text_len);
}

void hl_shadow_capture_event(hl_shadow_capture *c, const hl_stream_event *ev, size_t cap) {
    if (c->over) return;
    bool ok = true;
    switch (ev->type) {
    case HL_EV_TEXT:
        c->bytes += ev->text_len;
        ok = c->bytes <= cap && append(&c->resp.text, ev->text, ev->text_len);
        break;
    case HL_EV_TOOL_CALL:
        c->bytes += ev->text_len + (ev->tool_name ? strlen(ev->tool_name) : 0);
        ok = c->bytes <= cap && capture_tool(c, ev);
        break;
    case HL_EV_LOGPROBS:
        if (!c->logprobs) c->logprobs = json_array();
        ok = c->logprobs && !json_array_extend(c->logprobs, (json_t *)ev->logprobs);
        break;
    case HL_EV_FINISH:
        c->resp.finish = ev->finish;
        break;
    default:
        break;
    }
    if (!ok) capture_over(c);
}

void hl_shadow_capture_take(hl_shadow_capture *c, hl_chat_response *resp, size_t cap) {
    size_t n = resp->text ? strlen(resp->text) : 0;
    for (size_t i = 0; i < resp->n_tool_calls; i++)
        n += (resp->tool_calls[i].arguments ? strlen(resp->tool_calls[i].arguments) : 0) +
             (resp->tool_calls[i].name ? strlen(resp->tool_calls[i].name) : 0);
    c->bytes = n;
    if (n > cap) {
        capture_over(c);
        return;
    }
    hl_chat_response_release(&c->resp);
    c->resp.text = resp->text;
    c->resp.tool_calls = resp->tool_calls;
    c->resp.n_tool_calls = resp->n_tool_calls;
    c->resp.finish = resp->finish;
    resp->text = NULL;
    resp->tool_calls = NULL;
    resp->n_tool_calls = 0;
}

/* ------------------------------------------------------------------ the judge's verdict */

hl_err hl_shadow_judge_verdict(const char *reply, int *out) {
    const char *p = reply ? reply : "";
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '"' || *p == '*' || *p == '\'' ||
           *p == '(' || *p == '[')
        p++;
    if (!strncasecmp(p, "tie", 3) && !((p[3] >= 'a' && p[3] <= 'z') || (p[3] >= 'A' && p[3] <= 'Z'))) {
        *out = 0;
        return HL_OK;
    }
    char ch = p[0];
    if ((ch == 'A' || ch == 'B') &&
        !((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= 'A' && p[1] <= 'Z') || (p[1] >= '0' && p[1] <= '9'))) {
        *out = ch == 'B' ? 1 : -1;
        return HL_OK;
    }
    return HL_ERR_PARSE;
}

/* ------------------------------------------------------------------ jobs */

/* What the jobs of one offer share (reference-counted: the last job frees it). */
typedef struct offer {
    int refs;
    hl_chat_request req;
    hl_chat_response served;
    char request_id[64], client_id[64], tenant[64], route_reason[112], task_type[64], pii[160];
    bool task_inferred, sensitive;
    hl_key_info key;
    const hl_backend *served_backend;
    long served_tokens;
    double conf, margin, min;
    bool signals;
} offer;

typedef enum job_phase { J_QUEUED, J_CALLING, J_EMBEDDING, J_JUDGING, J_DONE } job_phase;

typedef struct job {
    struct job *next, *prev;   /* the scheduler's queue, then its running list */
    hl_shadow *sh;
    hl_exchange_env *env;
    const hl_route_rule *rule;
    offer *of;
    job_phase phase;
    hl_backend *backend;       /* the shadow target */
    const char *model;
    int attempt;               /* the shadow call's; the judge's or embeddings' follow it */
    double key_reserved;       /* USD reserved against the key's budgets, released when freed */
    double queued_at;
    /* the shadow call, then its outcome */
    hl_provider_call *call;
    const hl_provider *prov;
    double t0, wall0, latency_ms;
    int status;
    hl_usage usage;
    hl_chat_response cand;
    hl_conf_signals cand_sig;  /* the shadow answer's when local (-1 unknown) */
    /* an auxiliary call (judge or embeddings) */
    hl_backend *aux;
    const char *aux_model;
    hl_chat_request jreq;      /* the judge's request */
    int round;                 /* judge: 0, then 1 (positions swapped) */
    int verdicts[2];
    hl_upstream_call *up;      /* embeddings over HTTP */
    hl_builtin_embed *emb;     /* embeddings by the builtin engine */
    hl_buf body;
    double aux_t0, aux_wall0;
} job;

struct hl_shadow {
    uv_loop_t *loop;
    uv_timer_t kick;           /* starts queued jobs on a later loop turn */
    int running, queued;
    job *qhead, *qtail;
    job *live;                 /* running jobs, for hl_shadow_close */
};

static void offer_unref(offer *o) {
    if (!o || --o->refs > 0) return;
    hl_chat_request_release(&o->req);
    hl_chat_response_release(&o->served);
    free(o);
}

static void count(hl_exchange_env *env, hl_shadow_result r) { hl_metrics_shadow(env->metrics, (int)r); }

static void kick(hl_shadow *sh);

/* The job is over: out of the running list, its memory freed, the next one may start. */
static void job_free(job *j) {
    hl_shadow *sh = j->sh;
    if (j->phase != J_QUEUED && j->phase != J_DONE) {
        if (j->prev) j->prev->next = j->next;
        else sh->live = j->next;
        if (j->next) j->next->prev = j->prev;
        sh->running--;
        kick(sh);
    }
    j->phase = J_DONE;
    if (j->key_reserved > 0) hl_key_budgets_release(j->env->key_budgets, &j->of->key, j->key_reserved);
    hl_chat_response_release(&j->cand);
    hl_chat_request_release(&j->jreq);
    hl_buf_release(&j->body);
    offer_unref(j->of);
    free(j);
}

/* ------------------------------------------------------------------ ledger lines */

/* A shadow-side ledger line: the served request's identity, this call's facts. Returns its
 * cost; the budgets and the metrics count it like any attempt. */
static double record(job *j, hl_ledger_record *r, const hl_backend *b, double latency_ms) {
    hl_exchange_env *env = j->env;
    const offer *o = j->of;
    r->request_id = o->request_id;
    r->client_request_id = o->client_id[0] ? o->client_id : NULL;
    r->cloud = hl_backend_is_cloud(b);
    r->backend = b->cfg->name;
    r->tenant = o->tenant[0] ? o->tenant : NULL;
    r->key_id = o->key.id;
    r->key_name = o->key.id ? o->key.name : NULL;
    r->pii = o->pii[0] ? o->pii : NULL;
    r->task_type = o->task_type[0] ? o->task_type : NULL;
    r->task_inferred = o->task_inferred;
    r->sensitive = o->sensitive;
    r->latency_ms = latency_ms;
    r->ttft_ms = -1;
    r->shadow = true;
    if (r->cloud) {
        const hl_price *p = hl_config_price(env->cfg, r->model);
        r->cost_known = p != NULL;
        r->cost_usd = p ? hl_pricing_cloud(p, &r->usage) : 0;
    } else {
        r->cost_known = true;
        r->cost_usd = hl_pricing_local(b->cfg->hourly_cost_usd, latency_ms);
    }
    hl_metrics_attempt(env->metrics, (size_t)(b - env->bs->v), hl_metrics_status_of(r->status),
                       r->usage.input_tokens, r->usage.output_tokens, r->cost_usd, latency_ms, -1);
    double now = wall_now();
    if (hl_exchange_ledger_add(env, r) != HL_OK)
        hl_log(HL_LOG_ERROR, "ledger write failed for shadow of %s", o->request_id);
    if (r->cloud && r->cost_known) { /* after the line: the indexer must find every cost counted */
        hl_budgets_add(env->budgets, r->tenant, r->cost_usd, (time_t)now);
        hl_key_budgets_add(env->key_budgets, &o->key, r->cost_usd, (long long)(now * 1000));
    }
    return r->cost_usd;
}

/* The shadow call's line: its outcome, and the comparison when scored (cmp != NULL). */
static void record_shadow(job *j, const char *error, const hl_cmp_result *cmp, const char *method) {
    char reason[128];
    snprintf(reason, sizeof reason, "%s+shadow", j->of->route_reason);
    hl_ledger_record r = {
        .timestamp = j->wall0, .attempt = j->attempt, .model = j->model, .route_reason = reason,
        .status = error ? "error" : "ok", .usage = j->usage, .http_status = j->status, .error = error,
        .confidence = -1,
    };
    if (cmp) {
        r.scored = true;
        r.score = cmp->score;
        r.score_method = method;
        r.agree = cmp->agree;
        r.reference = "served";
        r.ref_output_tokens = j->of->served_tokens;
        /* The local answer's confidence, whichever side is local. */
        if (!hl_backend_is_cloud(j->backend)) {
            r.confidence = j->cand_sig.geomean;
            r.signals = j->cand_sig.geomean >= 0 && j->cand_sig.margin >= 0 && j->cand_sig.min >= 0;
            r.confidence_margin = j->cand_sig.margin;
            r.confidence_min = j->cand_sig.min;
        } else if (!hl_backend_is_cloud(j->of->served_backend)) {
            r.confidence = j->of->conf;
            r.signals = j->of->signals && j->of->conf >= 0;
            r.confidence_margin = j->of->margin;
            r.confidence_min = j->of->min;
        }
    }
    record(j, &r, j->backend, j->latency_ms);
}

/* An auxiliary call's line (judge or embeddings): a cost of the comparison, never scored. */
static void record_aux(job *j, int attempt, const char *what, const hl_usage *u, int status, const char *error) {
    char reason[128];
    snprintf(reason, sizeof reason, "%s+%s", j->of->route_reason, what);
    hl_ledger_record r = {
        .timestamp = j->aux_wall0, .attempt = attempt, .model = j->aux_model, .route_reason = reason,
        .status = error ? "error" : "ok", .usage = *u, .http_status = status, .error = error, .confidence = -1,
    };
    record(j, &r, j->aux, now_ms() - j->aux_t0);
}

/* ------------------------------------------------------------------ the sample store */

/* Both texts, for a person to review: only when shadow.samples names a file (mode 0600). */
static void write_sample(job *j, const hl_cmp_result *cmp, const char *method) {
    const char *path = j->env->cfg->shadow_samples_path;
    if (!path) return;
    json_t *o = json_pack("{s:f, s:s, s:s, s:s, s:s?, s:f, s:s, s:b, s:s?, s:s?}", "timestamp", wall_now(),
                          "request_id", j->of->request_id, "served_backend", j->of->served_backend->cfg->name,
                          "shadow_backend", j->backend->cfg->name,
                          "task_type", j->of->task_type[0] ? j->of->task_type : NULL, "score", cmp->score,
                          "score_method", method, "agree", cmp->agree, "served_text", j->of->served.text,
                          "shadow_text", j->cand.text);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int fd = line ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (fd >= 0) {
        size_t n = strlen(line);
        line[n] = '\n'; /* json_dumps' NUL becomes the line's end */
        if (write(fd, line, n + 1) != (ssize_t)(n + 1))
            hl_log(HL_LOG_WARN, "shadow samples: cannot write %s", path);
        close(fd);
    } else if (line) {
        hl_log(HL_LOG_WARN, "shadow samples: cannot open %s: %m", path);
    }
    free(line);
}

/* SCORING is over: the line, the sample, the counter. */
static void compared(job *j, const hl_cmp_result *cmp, const char *method) {
    record_shadow(j, NULL, cmp, method);
    write_sample(j, cmp, method);
    count(j->env, HL_SHADOW_COMPARED);
    job_free(j);
}

/* The job failed after its call started: the shadow line says why (when the call itself
 * failed), the counter counts it. */
static void failed(job *j, const char *why, bool call_line) {
    hl_log(HL_LOG_INFO, "shadow of %s on %s failed: %s", j->of->request_id, j->backend->cfg->name, why);
    if (call_line) record_shadow(j, why, NULL, NULL);
    count(j->env, HL_SHADOW_FAILED);
    job_free(j);
}

/* ------------------------------------------------------------------ scoring */

static void start_judge(job *j);
static void start_embed(job *j);

/* The shadow answer is in: score it as the route says. */
static void score(job *j) {
    int how = j->rule->shadow_compare;
    if (how == HL_SHADOW_EMBEDDING) {
        start_embed(j);
        return;
    }
    if (how == HL_SHADOW_JUDGE) {
        start_judge(j);
        return;
    }
    hl_cmp_result res;
    const char *tt = j->of->task_type[0] ? j->of->task_type : NULL;
    hl_err e = hl_compare(&j->of->served, &j->cand, tt, (hl_cmp_method)how, j->rule->shadow_threshold, &res);
    if (e != HL_OK) {
        record_shadow(j, NULL, NULL, NULL);
        failed(j, "the comparison failed", false);
        return;
    }
    compared(j, &res, hl_cmp_method_name(res.method));
}

/* ------------------------------------------------------------------ the shadow call */

static void call_status(void *ud, int status) { ((job *)ud)->status = status; }
static int call_event(void *ud, const hl_stream_event *ev) {
    (void)ud, (void)ev;
    return HL_PROVIDER_CONTINUE; /* never streamed */
}

static void call_done(void *ud, hl_provider_result *r) {
    job *j = ud;
    j->call = NULL;
    j->latency_ms = now_ms() - j->t0;
    char why[320];
    if (r->err != HL_OK) {
        snprintf(why, sizeof why, "%s", r->errmsg ? r->errmsg : hl_err_str(r->err));
        failed(j, why, true);
        return;
    }
    if (r->status / 100 != 2 || !r->response) {
        snprintf(why, sizeof why, "HTTP %d: %s", r->status,
                 r->error_message ? r->error_message : "not a valid completion");
        failed(j, why, true);
        return;
    }
    j->cand = *r->response;
    hl_chat_response_init(r->response); /* taken */
    j->usage = j->cand.usage;
    if (!j->usage.known) {
        j->usage.input_tokens = hl_chat_input_estimate(&j->of->req);
        j->usage.output_tokens = hl_tokens_estimate(j->cand.text ? strlen(j->cand.text) : 0);
        j->usage.estimated = true;
    }
    if (!hl_backend_is_cloud(j->backend)) hl_confidence_signals(j->cand.logprobs, &j->cand_sig);
    score(j);
}

static const hl_provider_events call_events = {call_status, call_event, NULL, call_done};

/* Starts a provider call of req on b, whole and at the shadow's timeout. */
static hl_err start_provider(job *j, hl_backend *b, const hl_chat_request *req, const hl_provider_events *ev,
                             hl_provider_call **out) {
    const hl_provider *p = hl_provider_for(b->cfg->kind);
    hl_api_error err = {0};
    if (p->check && p->check(req, &err) != HL_OK) return HL_ERR_UNSUPPORTED;
    hl_provider_spec spec = {
        .backend = b, .req = req, .model = hl_backend_model(b), .stream = false,
        .logprobs = !hl_backend_is_cloud(b) && b->cfg->kind != HL_PROVIDER_ANTHROPIC,
        .timeout_ms = j->env->cfg->shadow_timeout_ms, .connect_timeout_ms = b->cfg->connect_timeout_ms,
    };
    j->prov = p;
    return p->start(&j->env->prov, &spec, ev, j, out);
}

/* QUEUED -> CALLING; a slot is held from here. */
static void start_call(job *j) {
    hl_shadow *sh = j->sh;
    j->phase = J_CALLING;
    sh->running++;
    j->next = sh->live;
    j->prev = NULL;
    if (sh->live) sh->live->prev = j;
    sh->live = j;
    hl_backend *b = j->backend;
    if (b->cfg->kind == HL_PROVIDER_BUILTIN && (!b->builtin || !hl_builtin_idle(b->builtin))) {
        count(j->env, HL_SHADOW_DROPPED_BUSY); /* the engine serves clients first */
        job_free(j);
        return;
    }
    j->model = hl_backend_model(b);
    j->t0 = now_ms();
    j->wall0 = wall_now();
    hl_err e = start_provider(j, b, &j->of->req, &call_events, &j->call);
    if (e == HL_ERR_LIMIT) {
        count(j->env, HL_SHADOW_DROPPED_BUSY);
        job_free(j);
    } else if (e != HL_OK) {
        failed(j, e == HL_ERR_UNSUPPORTED ? "the backend cannot take this request" : hl_err_str(e), false);
    }
}

/* ------------------------------------------------------------------ the judge */

/* An answer as the judge reads it: its text, then its tool calls. */
static void put_answer(hl_buf *b, const hl_chat_response *r) {
    hl_buf_printf(b, "%.*s", JUDGE_TEXT_MAX, r->text ? r->text : "");
    for (size_t i = 0; i < r->n_tool_calls; i++)
        hl_buf_printf(b, "\n[tool call] %s(%.*s)", r->tool_calls[i].name ? r->tool_calls[i].name : "",
                      JUDGE_TEXT_MAX, r->tool_calls[i].arguments ? r->tool_calls[i].arguments : "");
}

/* Our fixed rubric: pairwise, one word back. */
static const char judge_system[] =
    "You are a strict evaluator. You are shown a request and two answers to it, A and B. Decide "
    "which answer serves the request better: first correctness (facts, labels, fields, the "
    "right tool with the right arguments), then completeness, then following the request's "
    "instructions and format. Length and style do not count unless the request asks for them. "
    "If both are equally good, or equally wrong, say TIE. Reply with exactly one word: A, B or TIE.";

/* The judge's request for this round: round 0 shows the served answer as A, round 1 as B. */
static hl_err build_judge(job *j) {
    hl_chat_request_release(&j->jreq);
    hl_chat_request *q = &j->jreq;
    hl_buf u;
    hl_buf_init(&u, 0);
    hl_buf_puts(&u, "Request:\n<<<\n");
    for (size_t i = 0; i < j->of->req.n_messages; i++) {
        const hl_message *m = &j->of->req.messages[i];
        hl_buf_printf(&u, "%s: %.*s\n", hl_role_name(m->role), JUDGE_TEXT_MAX, m->text ? m->text : "");
    }
    const hl_chat_response *a = j->round == 0 ? &j->of->served : &j->cand;
    const hl_chat_response *b = j->round == 0 ? &j->cand : &j->of->served;
    hl_buf_puts(&u, ">>>\n\nAnswer A:\n<<<\n");
    put_answer(&u, a);
    hl_buf_puts(&u, "\n>>>\n\nAnswer B:\n<<<\n");
    put_answer(&u, b);
    hl_buf_puts(&u, "\n>>>\n\nWhich answer is better? Reply A, B or TIE.");
    q->messages = calloc(2, sizeof *q->messages);
    q->model = strdup("judge");
    q->passthrough = json_object();
    if (!q->messages || !q->model || !q->passthrough || !u.data) {
        hl_buf_release(&u);
        return HL_ERR_NOMEM;
    }
    q->n_messages = 2;
    q->messages[0] = (hl_message){.role = HL_ROLE_SYSTEM, .text = strdup(judge_system)};
    q->messages[1] = (hl_message){.role = HL_ROLE_USER, .text = hl_buf_steal(&u)};
    q->max_tokens = 8;
    q->has_temperature = true;
    q->temperature = 0;
    q->text_bytes = strlen(q->messages[1].text) + sizeof judge_system;
    return q->messages[0].text ? HL_OK : HL_ERR_NOMEM;
}

static void judge_done(void *ud, hl_provider_result *r) {
    job *j = ud;
    j->call = NULL;
    int attempt = j->attempt + 1 + j->round;
    hl_usage none = {0};
    if (r->err != HL_OK || r->status / 100 != 2 || !r->response) {
        char why[320];
        snprintf(why, sizeof why, "judge: %s", r->err ? (r->errmsg ? r->errmsg : hl_err_str(r->err))
                                                      : r->error_message ? r->error_message : "no valid answer");
        record_aux(j, attempt, "judge", &none, r->status, why);
        record_shadow(j, NULL, NULL, NULL);
        failed(j, why, false);
        return;
    }
    hl_usage u = r->response->usage;
    int v = 0;
    bool ok = hl_shadow_judge_verdict(r->response->text, &v) == HL_OK;
    record_aux(j, attempt, "judge", &u, r->status, ok ? NULL : "the judge's reply is not A, B or TIE");
    if (!ok) {
        record_shadow(j, NULL, NULL, NULL);
        failed(j, "the judge's reply is not A, B or TIE", false);
        return;
    }
    /* The shadow answer's side: B in round 0, A in round 1. */
    j->verdicts[j->round] = j->round == 0 ? v : -v;
    if (j->round++ == 0) {
        start_judge(j);
        return;
    }
    /* Each verdict gives the shadow answer 1 (better), 0.5 (tie) or 0 (worse). */
    double s = ((j->verdicts[0] + 1) / 2.0 + (j->verdicts[1] + 1) / 2.0) / 2.0;
    hl_cmp_result res = {.score = s, .agree = s >= j->rule->shadow_threshold};
    compared(j, &res, "judge");
}

static const hl_provider_events judge_events = {call_status, call_event, NULL, judge_done};

/* SCORING by the judge: one round (the caller's j->round). */
static void start_judge(job *j) {
    j->phase = J_JUDGING;
    j->aux = hl_backends_find(j->env->bs, j->rule->shadow_judge);
    if (!j->aux || build_judge(j) != HL_OK) {
        record_shadow(j, NULL, NULL, NULL);
        failed(j, "the judge could not be asked", false);
        return;
    }
    j->aux_model = hl_backend_model(j->aux);
    j->aux_t0 = now_ms();
    j->aux_wall0 = wall_now();
    hl_err e = start_provider(j, j->aux, &j->jreq, &judge_events, &j->call);
    if (e != HL_OK) {
        record_shadow(j, NULL, NULL, NULL);
        failed(j, "the judge could not be asked", false);
    }
}

/* ------------------------------------------------------------------ embeddings */

/* Both answers embedded (vecs: 2 x dim): the cosine is the score. */
static void embedded(job *j, const float *vecs, size_t dim, long tokens, int status) {
    hl_usage u = {.input_tokens = tokens, .known = tokens >= 0, .estimated = tokens < 0};
    if (tokens < 0) u.input_tokens = 0;
    record_aux(j, j->attempt + 1, "embed", &u, status, NULL);
    hl_cmp_result res = {.score = hl_cmp_cosine(vecs, vecs + dim, dim)};
    res.agree = res.score >= j->rule->shadow_threshold;
    compared(j, &res, "embedding");
}

static void embed_failed(job *j, int status, const char *why) {
    hl_usage none = {0};
    record_aux(j, j->attempt + 1, "embed", &none, status, why);
    record_shadow(j, NULL, NULL, NULL);
    failed(j, why, false);
}

static void builtin_embedded(void *ud, const hl_builtin_embed_result *r) {
    job *j = ud;
    j->emb = NULL;
    if (r->err || r->n != 2) {
        embed_failed(j, 500, "the builtin engine could not embed the answers");
        return;
    }
    embedded(j, r->vecs, r->dim, (long)r->n_tokens[0] + r->n_tokens[1], 200);
}

static void up_status(void *ud, int status, const char *ct) {
    (void)ct;
    ((job *)ud)->status = status;
}

static int up_data(void *ud, const char *data, size_t len) {
    job *j = ud;
    if (j->body.len + len > EMBED_BODY_MAX) return HL_UPSTREAM_ABORT;
    return hl_buf_append(&j->body, data, len) ? HL_UPSTREAM_ABORT : HL_UPSTREAM_CONTINUE;
}

hl_err hl_shadow_embeddings_parse(const char *body, size_t len, float **vecs, size_t *dim, long *tokens) {
    *vecs = NULL;
    *dim = 0;
    *tokens = -1;
    json_t *root = json_loadb(body ? body : "", len, 0, NULL);
    json_t *data = json_object_get(root, "data");
    bool ok = json_array_size(data) == 2;
    size_t d = ok ? json_array_size(json_object_get(json_array_get(data, 0), "embedding")) : 0;
    ok = ok && d > 0 && d <= HL_SHADOW_MAX_DIM;
    float *v = ok ? calloc(2 * d, sizeof *v) : NULL;
    ok = ok && v;
    for (size_t i = 0; ok && i < 2; i++) {
        json_t *e = json_object_get(json_array_get(data, i), "embedding");
        ok = json_array_size(e) == d;
        for (size_t k = 0; ok && k < d; k++) {
            json_t *x = json_array_get(e, k);
            ok = json_is_number(x) && fabs(json_number_value(x)) <= FLT_MAX; /* finite as a float */
            if (ok) v[i * d + k] = (float)json_number_value(x);
        }
    }
    json_t *pt = json_object_get(json_object_get(root, "usage"), "prompt_tokens");
    long t = json_is_integer(pt) && json_integer_value(pt) >= 0 ? (long)json_integer_value(pt) : -1;
    json_decref(root);
    if (!ok) {
        free(v);
        return HL_ERR_PARSE;
    }
    *vecs = v;
    *dim = d;
    *tokens = t;
    return HL_OK;
}

static void up_done(void *ud, hl_err err, const char *errmsg) {
    job *j = ud;
    j->up = NULL;
    char why[320];
    float *v = NULL;
    size_t dim = 0;
    long tokens = -1;
    if (err != HL_OK) {
        snprintf(why, sizeof why, "embeddings: %s", errmsg ? errmsg : hl_err_str(err));
        embed_failed(j, 0, why);
    } else if (j->status / 100 != 2 || hl_shadow_embeddings_parse(j->body.data, j->body.len, &v, &dim, &tokens)) {
        snprintf(why, sizeof why, "embeddings: HTTP %d, no two vectors", j->status);
        embed_failed(j, j->status, why);
    } else {
        embedded(j, v, dim, tokens, j->status);
        free(v);
    }
}

static const hl_upstream_handlers up_handlers = {up_status, up_data, NULL, up_done};

/* The embeddings call of an OpenAI-kind backend: both answers in one request. */
static hl_err start_http_embed(job *j) {
    hl_backend *b = j->aux;
    hl_buf url, headers;
    hl_buf_init(&url, 4096);
    hl_buf_init(&headers, 0);
    json_t *in = json_pack("{s:s, s:[s,s], s:s}", "model", j->aux_model, "input",
                           j->of->served.text ? j->of->served.text : "", j->cand.text ? j->cand.text : "",
                           "encoding_format", "float");
    char *body = in ? json_dumps(in, JSON_COMPACT) : NULL;
    json_decref(in);
    hl_err e = body ? hl_buf_printf(&url, "%s/embeddings", hl_backend_base_url(b)) : HL_ERR_NOMEM;
    if (!e) e = hl_provider_header_add(&headers, "Content-Type", "application/json");
    if (!e) e = hl_provider_header_add(&headers, "Expect", "");
    if (!e && b->api_key) e = hl_provider_bearer_add(&headers, b->api_key);
    if (!e) {
        hl_upstream_opts o = {.url = url.data, .headers_len = headers.len, .body = body, .body_len = strlen(body),
                              .timeout_ms = j->env->cfg->shadow_timeout_ms,
                              .connect_timeout_ms = b->cfg->connect_timeout_ms, .ca_file = b->cfg->ca_file};
        o.headers = hl_buf_steal(&headers);
        body = NULL;
        hl_buf_reset(&j->body);
        j->status = 0;
        e = hl_upstream_start(j->env->prov.up, &o, &up_handlers, j, &j->up);
    }
    free(body);
    if (headers.data) explicit_bzero(headers.data, headers.len);
    hl_buf_release(&headers);
    hl_buf_release(&url);
    return e;
}

/* SCORING by embeddings: both answers through the route's embeddings backend. */
static void start_embed(job *j) {
    j->phase = J_EMBEDDING;
    j->aux = hl_backends_find(j->env->bs, j->rule->shadow_embeddings);
    if (!j->aux) {
        record_shadow(j, NULL, NULL, NULL);
        failed(j, "no embeddings backend", false);
        return;
    }
    j->aux_model = hl_backend_model(j->aux);
    j->aux_t0 = now_ms();
    j->aux_wall0 = wall_now();
    hl_err e = HL_ERR_UNSUPPORTED;
    if (j->aux->cfg->kind == HL_PROVIDER_OPENAI) {
        e = start_http_embed(j);
    } else if (j->aux->cfg->kind == HL_PROVIDER_BUILTIN && j->aux->builtin) {
        const char *a = j->of->served.text ? j->of->served.text : "", *c = j->cand.text ? j->cand.text : "";
        hl_builtin_input in[2] = {{.text = a, .len = strlen(a)}, {.text = c, .len = strlen(c)}};
        e = hl_builtin_embed_start(j->aux->builtin, j->env->prov.mailbox, in, 2, builtin_embedded, j, &j->emb);
    }
    if (e != HL_OK) embed_failed(j, 0, "the embeddings call could not start");
}

/* ------------------------------------------------------------------ the scheduler */

static void on_kick(uv_timer_t *t) {
    hl_shadow *sh = t->data;
    const hl_config *cfg = NULL;
    while (sh->qhead) {
        job *j = sh->qhead;
        cfg = j->env->cfg;
        if (sh->running >= cfg->shadow_max_concurrent) break;
        sh->qhead = j->next;
        if (!sh->qhead) sh->qtail = NULL;
        sh->queued--;
        j->next = NULL;
        if (now_ms() - j->queued_at > (double)cfg->shadow_timeout_ms) {
            count(j->env, HL_SHADOW_DROPPED_BUSY); /* waited too long for a slot */
            job_free(j);
            continue;
        }
        start_call(j);
    }
}

/* Queued jobs start on a later loop turn, never from inside the caller. */
static void kick(hl_shadow *sh) {
    if (sh->qhead) uv_timer_start(&sh->kick, on_kick, 0, 0);
}

hl_shadow *hl_shadow_new(uv_loop_t *loop) {
    hl_shadow *sh = calloc(1, sizeof *sh);
    if (!sh) return NULL;
    sh->loop = loop;
    uv_timer_init(loop, &sh->kick);
    sh->kick.data = sh;
    return sh;
}

static void shadow_closed(uv_handle_t *h) { free(h->data); }

void hl_shadow_close(hl_shadow *sh) {
    if (!sh) return;
    while (sh->qhead) {
        job *j = sh->qhead;
        sh->qhead = j->next;
        job_free(j);
    }
    sh->qtail = NULL;
    sh->queued = 0;
    while (sh->live) {
        job *j = sh->live;
        if (j->call) j->prov->cancel(j->call);
        if (j->up) hl_upstream_cancel(j->up);
        if (j->emb) hl_builtin_embed_cancel(j->emb);
        job_free(j);
    }
    uv_timer_stop(&sh->kick);
    uv_close((uv_handle_t *)&sh->kick, shadow_closed);
}

/* ------------------------------------------------------------------ offers */

/* May this request's data go to b for a shadow? Local: always. Cloud: the route's opt-in, a
 * request that is not sensitive, a key allowed the cloud and that backend. */
static bool privacy_permits(const hl_route_rule *rule, const offer *o, const hl_backend *b) {
    if (!b || !hl_backend_is_cloud(b)) return true;
    return rule->shadow_cloud && !o->sensitive && o->key.cloud_allowed &&
           hl_keys_list_allows(o->key.backends, b->cfg->name);
}

/* Is a configured cloud budget this request's spend counts against spent? */
static bool budget_spent(hl_exchange_env *env, const offer *o) {
    double spent, limit;
    return hl_budgets_exceeded(env->budgets, o->tenant[0] ? o->tenant : NULL, (time_t)wall_now(), &spent, &limit);
}

/* The worst case of one call of o's request to b when b is a priced cloud backend, else 0. */
static double cloud_worst_case(hl_exchange_env *env, const offer *o, const hl_backend *b) {
    if (!b || !hl_backend_is_cloud(b)) return 0;
    const hl_price *p = hl_config_price(env->cfg, hl_backend_model(b));
    if (!p) return 0;
    long out = hl_exchange_reserve_tokens(env->cfg, b->cfg, o->req.max_tokens);
    return ((double)hl_chat_input_estimate(&o->req) * p->input_per_mtok + (double)out * p->output_per_mtok) / 1e6;
}

/* Reserves the worst case of a shadow to b (and of its judge's two calls, answers
 * included, counted as the prompt again) against the key's and its tenant's budgets, as a
 * request would be. *reserved: what to release when the job is freed (0: nothing). False:
 * the budget cannot hold it now (a fleet lease that is not there yet counts as that: a
 * shadow never waits). */
static bool key_budget_admits(hl_exchange_env *env, const hl_route_rule *rule, const offer *o, const hl_backend *b,
                              double *reserved) {
    *reserved = 0;
    if (!o->key.id) return true;
    const hl_backend *judge = rule->shadow_judge ? hl_backends_find(env->bs, rule->shadow_judge) : NULL;
    double est = cloud_worst_case(env, o, b) + 2 * 2 * cloud_worst_case(env, o, judge);
    if (est <= 0) return true;
    hl_kb_ticket ticket = {0};
    hl_kb_refusal why;
    if (hl_key_budgets_admit(env->key_budgets, &o->key, est, (long long)(wall_now() * 1000), &ticket, &why) !=
        HL_KB_ADMIT)
        return false;
    *reserved = est;
    return true;
}

/* What a shadow to b would come to before it is queued: admitted (N_RESULTS) or dropped. */
static hl_shadow_result screen(hl_exchange_env *env, const hl_route_rule *rule, const offer *o, const hl_backend *b) {
    const hl_backend *judge = rule->shadow_judge ? hl_backends_find(env->bs, rule->shadow_judge) : NULL;
    const hl_backend *emb = rule->shadow_embeddings ? hl_backends_find(env->bs, rule->shadow_embeddings) : NULL;
    if (!privacy_permits(rule, o, b) || !privacy_permits(rule, o, judge) || !privacy_permits(rule, o, emb))
        return HL_SHADOW_DROPPED_PRIVACY;
    bool cloud = hl_backend_is_cloud(b) || (judge && hl_backend_is_cloud(judge)) || (emb && hl_backend_is_cloud(emb));
    if (cloud && budget_spent(env, o)) return HL_SHADOW_DROPPED_BUDGET;
    return HL_SHADOW_N_RESULTS;
}

static offer *offer_new(const hl_shadow_served *s, hl_chat_request *req, hl_shadow_capture *cap) {
    offer *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->req = *req;
    hl_chat_request_init(req);
    o->served = cap->resp;
    hl_chat_response_init(&cap->resp);
    snprintf(o->request_id, sizeof o->request_id, "%s", s->request_id);
    snprintf(o->client_id, sizeof o->client_id, "%s", s->client_id ? s->client_id : "");
    snprintf(o->tenant, sizeof o->tenant, "%s", s->tenant ? s->tenant : "");
    snprintf(o->route_reason, sizeof o->route_reason, "%s", s->route_reason ? s->route_reason : "");
    snprintf(o->task_type, sizeof o->task_type, "%s", s->task_type ? s->task_type : "");
    snprintf(o->pii, sizeof o->pii, "%s", s->pii ? s->pii : "");
    o->task_inferred = s->task_inferred;
    o->sensitive = s->sensitive;
    o->key = *s->key;
    o->served_backend = s->backend;
    o->served_tokens = s->output_tokens;
    o->conf = s->confidence;
    o->signals = s->signals;
    o->margin = s->confidence_margin;
    o->min = s->confidence_min;
    o->refs = 1;
    return o;
}

/* Queues one job of o on b (already screened, reserved against the key's budgets: the job
 * owns that reservation), or drops it when the scheduler is full. */
static void enqueue(hl_exchange_env *env, const hl_route_rule *rule, offer *o, hl_backend *b, int attempt,
                    double reserved) {
    hl_shadow *sh = env->shadow;
    const hl_config *cfg = env->cfg;
    job *j = NULL;
    if (hl_shadow_admission(sh->running, sh->queued, cfg->shadow_max_concurrent, cfg->shadow_max_queue) ==
        HL_SHADOW_DROP) {
        count(env, HL_SHADOW_DROPPED_BUSY);
    } else if (!(j = calloc(1, sizeof *j))) {
        count(env, HL_SHADOW_FAILED);
    }
    if (!j) {
        if (reserved > 0) hl_key_budgets_release(env->key_budgets, &o->key, reserved);
        return;
    }
    *j = (job){.sh = sh, .env = env, .rule = rule, .of = o, .phase = J_QUEUED, .backend = b,
               .attempt = attempt, .key_reserved = reserved, .queued_at = now_ms(), .cand_sig = {-1, -1, -1}};
    hl_chat_response_init(&j->cand);
    hl_chat_request_init(&j->jreq);
    hl_buf_init(&j->body, EMBED_BODY_MAX);
    o->refs++;
    if (sh->qtail) sh->qtail->next = j;
    else sh->qhead = j;
    sh->qtail = j;
    sh->queued++;
    kick(sh);
}

void hl_shadow_offer(hl_exchange_env *env, const hl_route_rule *rule, const hl_shadow_served *served,
                     hl_chat_request *req, hl_shadow_capture *cap) {
    if (!env->shadow || !rule || !rule->n_shadow_to) goto out;
    if (cap->over) {
        for (size_t i = 0; i < rule->n_shadow_to; i++) count(env, HL_SHADOW_SKIPPED_SIZE);
        goto out;
    }
    offer *o = offer_new(served, req, cap);
    if (!o) goto out;
    int attempt = served->attempts + 1;
    for (size_t i = 0; i < rule->n_shadow_to; i++) {
        hl_backend *b = hl_backends_find(env->bs, rule->shadow_to[i]);
        if (!b || b == served->backend) continue; /* nothing to compare with itself */
        hl_shadow_result r = screen(env, rule, o, b);
        double reserved = 0;
        if (r == HL_SHADOW_N_RESULTS && !key_budget_admits(env, rule, o, b, &reserved)) r = HL_SHADOW_DROPPED_BUDGET;
        if (r != HL_SHADOW_N_RESULTS) {
            count(env, r);
            continue;
        }
        enqueue(env, rule, o, b, attempt, reserved);
        attempt += ATTEMPTS_PER_JOB;
    }
    offer_unref(o);
out:
    hl_chat_request_release(req);
    hl_shadow_capture_release(cap);
}
