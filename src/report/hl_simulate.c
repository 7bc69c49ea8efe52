/* hl_simulate: replays a workload through the real router (see hl_simulate.h). */
#include "hl_simulate.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_advise.h"
#include "hl_backend.h"
#include "hl_ledger.h"
#include "hl_pricing.h"
#include "hl_report.h"
#include "hl_router.h"

/* The built-in workload is the brief's scenario, 10M tokens a month. The brief gives no task
 * mix, so this one is ours, taken from what the brief says each side is for: routine work
 * local ("classification, extraction, summarization ... simple Q&A: the gap doesn't matter")
 * and complex work in the cloud ("code generation, analysis, reasoning"). Its closing advice
 * is for workloads where "accuracy isn't critical", so routine work dominates: 80% of requests
 * are routine (classification 30%, extraction 20%, summarization 20%, untyped Q&A 10%, which
 * the router's catch-all rule takes) and 20% complex (code 10%, analysis 5%, reasoning 5%).
 * Mean sizes give 550 input and 235 output tokens per request, 70% input (the share advise
 * assumes), near the brief's logged example of 450 in / 200 out.
 *
 * Confidence is what a local 7B model's answer would score (the gateway's geometric-mean token
 * probability). Assumed, not measured: high on narrow tasks, low on reasoning, where Mistral
 * 7B's MMLU is 62%. With these normals the share below the brief's 0.7 threshold is about
 * 0.6% for classification, 1.2% extraction, 6.7% summarization, 20% untyped Q&A, 55% analysis
 * and 70% code and reasoning. Replace them with a measured ledger (--ledger) when you have one. */
const hl_sim_task_profile hl_sim_default_mix[] = {
    {"classification", 0.30, 300, 50, 0.90, 0.08},
    {"extraction", 0.20, 600, 150, 0.88, 0.08},
    {"summarization", 0.20, 1000, 300, 0.85, 0.10},
    {NULL, 0.10, 300, 250, 0.80, 0.12},
    {"code_generation", 0.10, 500, 600, 0.62, 0.15},
    {"analysis", 0.05, 800, 400, 0.68, 0.15},
    {"reasoning", 0.05, 400, 500, 0.62, 0.15},
};
const size_t hl_sim_default_mix_n = sizeof hl_sim_default_mix / sizeof hl_sim_default_mix[0];

void hl_sim_gen_defaults(hl_sim_gen *g) {
    memset(g, 0, sizeof *g);
    g->tokens_per_month = HL_ADVISE_BRIEF_TOKENS;
    g->sensitive_share = 0.10;
    g->seed = 1;
    g->mix = hl_sim_default_mix;
    g->n_mix = hl_sim_default_mix_n;
}

/* ---- deterministic draws ---- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* What request i draws from: its own stream, the same under every policy. */
static uint64_t req_hash(uint64_t seed, size_t i) { return splitmix64(seed ^ splitmix64((uint64_t)i + 1)); }

/* Uniform in [0, 1) for draw number k of a request. */
static double u01(uint64_t h, uint64_t k) { return (double)(splitmix64(h ^ (k * 0x2545f4914f6cdd1dull)) >> 11) * 0x1p-53; }

enum { DRAW_TASK = 1, DRAW_SENSITIVE, DRAW_IN, DRAW_OUT, DRAW_CONF1, DRAW_CONF2 };

static double draw_confidence(uint64_t h, double mean, double sd) {
    double a = 1.0 - u01(h, DRAW_CONF1), b = u01(h, DRAW_CONF2); /* a in (0, 1] */
    double z = sqrt(-2.0 * log(a)) * cos(2.0 * M_PI * b);
    double c = mean + sd * z;
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- workloads ---- */

void hl_sim_workload_release(hl_sim_workload *w) {
    free(w->v);
    for (size_t i = 0; i < w->n_tasks; i++) free(w->tasks[i]);
    memset(w, 0, sizeof *w);
}

/* Index of task in w->tasks, added when new; -1 for NULL. */
static hl_err intern_task(hl_sim_workload *w, const char *task, int *idx) {
    *idx = -1;
    if (!task) return HL_OK;
    for (size_t i = 0; i < w->n_tasks; i++)
        if (!strcmp(w->tasks[i], task)) {
            *idx = (int)i;
            return HL_OK;
        }
    if (w->n_tasks >= HL_SIM_MAX_TASKS) return HL_ERR_LIMIT;
    if (!(w->tasks[w->n_tasks] = strdup(task))) return HL_ERR_NOMEM;
    *idx = (int)w->n_tasks++;
    return HL_OK;
}

static hl_err push(hl_sim_workload *w, const hl_sim_request *q) {
    if (w->n == w->cap) {
        if (w->cap >= HL_SIM_MAX_REQUESTS) return HL_ERR_LIMIT;
        size_t cap = w->cap ? w->cap * 2 : 4096;
        if (cap > HL_SIM_MAX_REQUESTS) cap = HL_SIM_MAX_REQUESTS;
        hl_sim_request *v = realloc(w->v, cap * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = *q;
    w->input_tokens += q->input_tokens;
    w->output_tokens += q->output_tokens;
    w->sensitive += q->sensitive;
    return HL_OK;
}

static long draw_tokens(uint64_t h, uint64_t k, long mean) {
    long t = lround((double)mean * (0.5 + u01(h, k)));
    return t < 1 ? 1 : t;
}

hl_err hl_sim_generate(const hl_sim_gen *g, hl_sim_workload *w) {
    memset(w, 0, sizeof *w);
    double total_share = 0;
    for (size_t i = 0; i < g->n_mix; i++) {
        if (!(g->mix[i].share >= 0) || g->mix[i].input_tokens < 0 || g->mix[i].output_tokens < 0 ||
            g->mix[i].input_tokens + g->mix[i].output_tokens <= 0)
            return HL_ERR_INVAL;
        total_share += g->mix[i].share;
    }
    if (!(total_share > 0) || !(g->tokens_per_month > 0) || !isfinite(g->tokens_per_month) ||
        !(g->sensitive_share >= 0 && g->sensitive_share <= 1))
        return HL_ERR_INVAL;
    int idx[64];
    if (g->n_mix > sizeof idx / sizeof idx[0]) return HL_ERR_LIMIT;
    hl_err rc = HL_OK;
    for (size_t i = 0; !rc && i < g->n_mix; i++) rc = intern_task(w, g->mix[i].task, &idx[i]);
    double target = g->tokens_per_month < HL_SIM_SAMPLE_TOKENS ? g->tokens_per_month : HL_SIM_SAMPLE_TOKENS;
    double tokens = 0;
    for (size_t i = 0; !rc && tokens < target; i++) {
        uint64_t h = req_hash(g->seed, i);
        double pick = u01(h, DRAW_TASK) * total_share, acc = 0;
        size_t t = g->n_mix - 1;
        for (size_t j = 0; j < g->n_mix; j++) {
            acc += g->mix[j].share;
            if (pick < acc) {
                t = j;
                break;
            }
        }
        const hl_sim_task_profile *p = &g->mix[t];
        hl_sim_request q = {
            .task = idx[t],
            .sensitive = u01(h, DRAW_SENSITIVE) < g->sensitive_share,
            .input_tokens = p->input_tokens ? draw_tokens(h, DRAW_IN, p->input_tokens) : 0,
            .output_tokens = p->output_tokens ? draw_tokens(h, DRAW_OUT, p->output_tokens) : 0,
            .confidence = draw_confidence(h, p->conf_mean, p->conf_sd),
        };
        rc = push(w, &q);
        tokens += (double)(q.input_tokens + q.output_tokens);
    }
    if (rc) {
        hl_sim_workload_release(w);
        return rc;
    }
    /* Within the sample cap the workload is the month (it overshoots by less than one
     * request); past it, a sample scaled up. */
    w->month_factor = g->tokens_per_month > HL_SIM_SAMPLE_TOKENS ? g->tokens_per_month / tokens : 1.0;
    char t[48];
    hl_advise_fmt_count(g->tokens_per_month, 0, t, sizeof t);
    snprintf(w->source, sizeof w->source, "generated: %s tokens/month%s, seed %llu, %.0f%% sensitive%s", t,
             fabs(g->tokens_per_month - HL_ADVISE_BRIEF_TOKENS) < 0.5 ? " (the brief's scenario)" : "",
             (unsigned long long)g->seed, g->sensitive_share * 100,
             w->month_factor != 1.0 ? ", a 50M-token sample scaled up" : "");
    return HL_OK;
}

static const hl_sim_task_profile *default_profile(const char *task) {
    const hl_sim_task_profile *none = NULL;
    for (size_t i = 0; i < hl_sim_default_mix_n; i++) {
        const hl_sim_task_profile *p = &hl_sim_default_mix[i];
        if (!p->task) none = p;
        else if (task && !strcmp(task, p->task)) return p;
    }
    return none;
}

/* A request id with a number: an escalated line's confidence, or the index of a served
 * request still waiting for one. */
typedef struct id_num {
    char *id;                 /* owned */
    double conf, margin, min; /* as in hl_sim_request */
    bool signals;
    size_t idx;
} id_num;

typedef struct id_list {
    id_num *v;
    size_t n, cap;
} id_list;

/* The confidence signal sig of q, as the gateway's escalation reads it (the geometric mean
 * when q does not have the others). */
static double signal_of(const hl_sim_request *q, hl_conf_signal sig) {
    if (!q->signals || sig == HL_SIGNAL_GEOMEAN) return q->confidence;
    return sig == HL_SIGNAL_MARGIN ? q->margin : q->min;
}

static hl_err id_list_push(id_list *l, const char *id, const hl_sim_request *q, size_t idx) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        id_num *v = realloc(l->v, cap * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *copy = strdup(id);
    if (!copy) return HL_ERR_NOMEM;
    l->v[l->n++] = (id_num){copy, q->confidence, q->margin, q->min, q->signals, idx};
    return HL_OK;
}

static void id_list_free(id_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].id);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_id(const void *a, const void *b) { return strcmp(((const id_num *)a)->id, ((const id_num *)b)->id); }

typedef struct ledger_ctx {
    hl_sim_workload *w;
    double first_ts, last_ts;
    /* The gateway writes a held local answer's confidence on its "escalated" line and the
     * served cloud answer on another line of the same request, with no confidence. Lines of
     * concurrent requests interleave, so the two are matched by request id once every line
     * is read, not by adjacency. */
    id_list escalated;        /* request id -> the escalated line's confidence (first kept) */
    id_list waiting;          /* served requests without a confidence of their own */
} ledger_ctx;

static hl_err ledger_line(void *ud, const hl_ledger_entry *e, size_t line_no) {
    (void)line_no;
    ledger_ctx *c = ud;
    const hl_ledger_record *l = &e->rec;
    if (!l->eval_run) {
        if (c->first_ts < 0 || l->timestamp < c->first_ts) c->first_ts = l->timestamp;
        if (l->timestamp > c->last_ts) c->last_ts = l->timestamp;
    }
    if (l->scored && (!l->cloud || l->shadow)) { /* a local answer's measured agreement */
        int t;
        hl_err rc = intern_task(c->w, l->task_type, &t);
        if (rc) return rc;
        size_t slot = t >= 0 ? (size_t)t : HL_SIM_MAX_TASKS;
        c->w->agree_n[slot]++;
        c->w->agree_k[slot] += l->agree;
        c->w->scored++;
    }
    if (l->shadow || l->eval_run) return HL_OK; /* answered no client of the gateway */
    const char *status = l->status ? l->status : "ok";
    hl_sim_request q = {.sensitive = l->sensitive, .input_tokens = l->usage.input_tokens,
                        .output_tokens = l->usage.output_tokens, .confidence = l->confidence,
                        .signals = l->signals, .margin = l->confidence_margin, .min = l->confidence_min};
    if (!strcmp(status, "escalated") && l->confidence >= 0) return id_list_push(&c->escalated, l->request_id, &q, 0);
    if (strcmp(status, "ok") != 0) return HL_OK;
    hl_err rc = intern_task(c->w, l->task_type, &q.task);
    if (!rc && q.confidence > 1) q.confidence = 1;
    if (!rc && q.confidence < 0) rc = id_list_push(&c->waiting, l->request_id, &q, c->w->n);
    return rc ? rc : push(c->w, &q);
}

/* Gives each served request without a confidence its escalated line's, else one drawn from
 * the default mix's profile for its task type (request i draws from its own stream). */
static void resolve_confidences(ledger_ctx *c, uint64_t seed) {
    id_list *es = &c->escalated, *wt = &c->waiting;
    if (es->n) qsort(es->v, es->n, sizeof *es->v, cmp_id);
    size_t j = 0;
    if (wt->n) qsort(wt->v, wt->n, sizeof *wt->v, cmp_id);
    for (size_t i = 0; i < wt->n; i++) {
        hl_sim_request *q = &c->w->v[wt->v[i].idx];
        int d = 1;
        while (j < es->n && (d = strcmp(es->v[j].id, wt->v[i].id)) < 0) j++;
        if (j < es->n && d == 0) {
            q->confidence = es->v[j].conf > 1 ? 1 : es->v[j].conf;
            q->signals = es->v[j].signals;
            q->margin = es->v[j].margin;
            q->min = es->v[j].min;
        } else {
            const hl_sim_task_profile *p = default_profile(q->task >= 0 ? c->w->tasks[q->task] : NULL);
            q->confidence = draw_confidence(req_hash(seed, wt->v[i].idx), p->conf_mean, p->conf_sd);
        }
    }
}

hl_err hl_sim_load_ledger(const char *path, double period_days, uint64_t seed, hl_sim_workload *w, char *errbuf,
                          size_t errbuf_len) {
    memset(w, 0, sizeof *w);
    ledger_ctx c = {.w = w, .first_ts = -1, .last_ts = -1};
    hl_ledger_read_stats st;
    hl_err rc = hl_ledger_read(path, 0, ledger_line, &c, &st, errbuf, errbuf_len);
    if (rc == HL_ERR_LIMIT)
        snprintf(errbuf, errbuf_len, "%s: more than %u served requests or %d task types", path, HL_SIM_MAX_REQUESTS,
                 HL_SIM_MAX_TASKS);
    else if (rc == HL_ERR_NOMEM)
        snprintf(errbuf, errbuf_len, "%s: out of memory", path);
    if (!rc && !w->n) {
        snprintf(errbuf, errbuf_len, "%s: no served request (status \"ok\") in %zu records", path, st.records);
        rc = HL_ERR_INVAL;
    }
    double days = period_days > 0 ? period_days : (c.last_ts - c.first_ts) / 86400.0;
    if (!rc && !(days > 0)) {
        snprintf(errbuf, errbuf_len, "%s: the records cover no span of time; pass --period-days D", path);
        rc = HL_ERR_INVAL;
    }
    if (!rc) resolve_confidences(&c, seed);
    id_list_free(&c.escalated);
    id_list_free(&c.waiting);
    if (rc) {
        hl_sim_workload_release(w);
        return rc;
    }
    w->month_factor = 30.0 / days;
    size_t skipped = st.malformed + st.duplicates + st.conflicts;
    snprintf(w->source, sizeof w->source, "ledger %s: %zu served requests over %.2f days (money x %.3f to 30 days)%s",
             path, w->n, days, w->month_factor, skipped ? "; some lines skipped" : "");
    if (st.malformed) snprintf(errbuf, errbuf_len, "%s:%zu: not a ledger record: %s", path, st.first_bad_line, st.first_bad);
    return HL_OK;
}

/* ---- backends ---- */

typedef struct latency_row {
    const char *match; /* case-insensitive substring of the upstream model */
    double lo, hi;
} latency_row;

/* The brief's latency figures: its "Inference latency (avg)" table, its AlgoVesta 400-token
 * measurements (Llama 3.1 8B ~1,200 ms) and its hardware table (Llama 2 13B, Phi-3.5-mini). */
static const latency_row brief_latency[] = {
    {"claude-3-5-sonnet", 600, 900}, {"gpt-4o", 800, 1200}, {"70b", 2000, 4000}, {"13b", 2000, 3000},
    {"mistral", 1500, 2500},         {"8b", 1200, 1200},    {"phi-3", 800, 1200},
};
static const latency_row cloud_default = {"(cloud default: the brief's cloud range)", 600, 1200};
static const latency_row local_default = {"(local default: Mistral 7B)", 1500, 2500};

typedef struct sim_backend {
    double lo, hi;
    uint64_t salt;            /* latency draws differ per backend, not per policy */
    const hl_price *price;    /* NULL: unpriced */
    const char *price_source;
    bool cloud, judged, used;
} sim_backend;

static void backend_profile(const hl_backend *b, const hl_sim_options *o, sim_backend *s) {
    memset(s, 0, sizeof *s);
    s->cloud = hl_backend_is_cloud(b);
    s->judged = !s->cloud && b->cfg->kind != HL_PROVIDER_ANTHROPIC;
    s->salt = fnv1a(b->cfg->name);
    const latency_row *row = s->cloud ? &cloud_default : &local_default;
    for (size_t i = 0; i < sizeof brief_latency / sizeof brief_latency[0]; i++)
        if (strcasestr(b->model, brief_latency[i].match)) {
            row = &brief_latency[i];
            break;
        }
    s->lo = row->lo;
    s->hi = row->hi;
    for (size_t i = 0; i < o->n_latency; i++)
        if (!strcmp(o->latency[i].name, b->cfg->name) || !strcmp(o->latency[i].name, b->model)) {
            s->lo = o->latency[i].lo_ms;
            s->hi = o->latency[i].hi_ms;
        }
    if (s->cloud) {
        s->price = b->price;
        s->price_source = b->price ? "policy config" : NULL;
        if (!s->price) s->price = hl_advise_price(o->prices, b->model, &s->price_source);
    }
}

static double backend_latency(const sim_backend *s, uint64_t h) { return s->lo + (s->hi - s->lo) * u01(h, s->salt); }

static void describe_backends(const hl_backends *bs, const sim_backend *sb, hl_sim_result *r) {
    size_t off = 0;
    for (size_t i = 0; i < bs->n && off < sizeof r->backends - 1; i++) {
        if (!sb[i].used) continue;
        const hl_backend *b = &bs->v[i];
        char cost[160];
        if (!sb[i].cloud) {
            snprintf(cost, sizeof cost, "local, $%g/h busy", b->cfg->hourly_cost_usd);
        } else if (sb[i].price) {
            char a[48], c[48];
            hl_advise_fmt_usd(sb[i].price->input_per_mtok, a, sizeof a);
            hl_advise_fmt_usd(sb[i].price->output_per_mtok, c, sizeof c);
            snprintf(cost, sizeof cost, "cloud, %s/%s per 1M (%s)", a, c,
                     !strncmp(sb[i].price_source, "built-in", 8) ? "built-in" : sb[i].price_source);
        } else {
            snprintf(cost, sizeof cost, "cloud, NO PRICE (counted as $0)");
        }
        int n = snprintf(r->backends + off, sizeof r->backends - off, "%s%s (%s): %s, %.0f-%.0f ms", off ? "; " : "",
                         b->cfg->name, b->model, cost, sb[i].lo, sb[i].hi);
        if (n < 0) break;
        off += (size_t)n;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank. */
static double percentile(const double *sorted, size_t n, double p) {
    if (!n) return 0;
    size_t k = (size_t)ceil(p * (double)n);
    return sorted[k ? k - 1 : 0];
}

static int first_of(const hl_backends *bs, bool cloud) {
    for (size_t i = 0; i < bs->n; i++)
        if (hl_backend_is_cloud(&bs->v[i]) == cloud) return (int)i;
    return -1;
}

hl_err hl_sim_run(const hl_sim_workload *w, const hl_sim_policy *p, const hl_sim_options *o, hl_sim_result *r,
                  char *errbuf, size_t errbuf_len) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", p->name);
    r->requests = w->n;
    hl_backends bs = {0};
    sim_backend *sb = NULL;
    double *lat = NULL;
    hl_err rc = hl_backends_init(&bs, p->cfg, false);
    if (rc) goto out;
    rc = HL_ERR_NOMEM;
    if (!(sb = calloc(bs.n ? bs.n : 1, sizeof *sb)) || !(lat = malloc((w->n ? w->n : 1) * sizeof *lat))) goto out;
    for (size_t i = 0; i < bs.n; i++) {
        atomic_store(&bs.v[i].ready, true);
        backend_profile(&bs.v[i], o, &sb[i]);
    }
    int direct = -1;
    if (p->kind != HL_SIM_ROUTER) {
        direct = first_of(&bs, p->kind == HL_SIM_ALL_CLOUD);
        if (direct < 0) {
            snprintf(errbuf, errbuf_len, "policy %s: the config has no %s backend", p->name,
                     p->kind == HL_SIM_ALL_CLOUD ? "cloud" : "local");
            rc = HL_ERR_INVAL;
            goto out;
        }
    }
    size_t n_lat = 0, agree_count = 0;
    double agree_sum = 0;
    for (size_t i = 0; i < w->n; i++) {
        const hl_sim_request *q = &w->v[i];
        uint64_t h = req_hash(o->seed, i);
        int first = direct, esc = -1;
        if (p->kind == HL_SIM_ROUTER) {
            char id[32];
            snprintf(id, sizeof id, "sim-%zu", i);
            hl_route_input in = {
                .model = "auto",
                .task_type = q->task >= 0 ? w->tasks[q->task] : NULL,
                .sensitive = q->sensitive,
                .sticky_key = id,
                .prompt_tokens = q->input_tokens,
                .max_tokens = q->output_tokens,
            };
            hl_route route;
            hl_api_error e = {0};
            if (hl_router_route(p->cfg, &bs, &in, &route, &e, NULL) != HL_OK) {
                if (!r->refused++)
                    snprintf(r->refusal, sizeof r->refusal, "%d %s: %.150s", e.status, e.code, e.message);
                continue;
            }
            first = (int)(route.candidates[0] - bs.v);
            /* As the gateway: a local answer is judged when the rule escalates. */
            if (route.escalate_below > 0 && route.n_escalate > 0 && sb[first].judged &&
                signal_of(q, route.escalate_signal) < route.escalate_below)
                esc = (int)(route.escalate[0] - bs.v);
        }
        double ms = 0;
        bool reached_cloud = false;
        int calls[2] = {first, esc};
        for (int k = 0; k < 2 && calls[k] >= 0; k++) {
            sim_backend *s = &sb[calls[k]];
            double t = backend_latency(s, h);
            s->used = true;
            ms += t;
            if (s->cloud) {
                hl_usage u = {.input_tokens = q->input_tokens, .output_tokens = q->output_tokens};
                if (s->price) r->cloud_usd += hl_pricing_cloud(s->price, &u);
                else r->unpriced++;
                r->cloud_tokens += q->input_tokens + q->output_tokens;
                reached_cloud = true;
            } else {
                r->local_usd += hl_pricing_local(bs.v[calls[k]].cfg->hourly_cost_usd, t);
                if (!r->fixed_usd_month) r->fixed_usd_month = o->local_fixed_usd_month;
            }
        }
        if (q->sensitive && reached_cloud) r->violations++;
        if (esc >= 0) r->escalated++;
        size_t slot = q->task >= 0 ? (size_t)q->task : HL_SIM_MAX_TASKS;
        if (sb[esc >= 0 ? esc : first].cloud) {
            r->served_cloud++;
            agree_sum += 1;
            agree_count++;
        } else {
            r->served_local++;
            if (w->agree_n[slot]) {
                agree_sum += (double)w->agree_k[slot] / (double)w->agree_n[slot];
                agree_count++;
            } else {
                r->unmeasured_local++;
            }
        }
        r->tokens += q->input_tokens + q->output_tokens;
        lat[n_lat++] = ms;
    }
    qsort(lat, n_lat, sizeof *lat, cmp_double);
    r->p50_ms = percentile(lat, n_lat, 0.50);
    r->p95_ms = percentile(lat, n_lat, 0.95);
    r->usd_month = (r->cloud_usd + r->local_usd) * w->month_factor;
    r->per_1k_requests = n_lat ? (r->cloud_usd + r->local_usd) / (double)n_lat * 1000.0 : 0;
    r->expected_agreement = agree_count ? agree_sum / (double)agree_count : NAN;
    describe_backends(&bs, sb, r);
    rc = HL_OK;
out:
    if (rc == HL_ERR_NOMEM) snprintf(errbuf, errbuf_len, "out of memory");
    free(lat);
    free(sb);
    hl_backends_release(&bs);
    return rc;
}

/* ---- the brief's router ---- */

static bool safe_name(const char *s) {
    if (!s || !*s || strlen(s) > 128) return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-", *s)) return false;
    return true;
}

hl_err hl_sim_brief_config(const char *cloud_model, const char *local_model, double local_usd_hour, hl_config **out,
                           char *errbuf, size_t errbuf_len) {
    *out = NULL;
    if (!cloud_model) cloud_model = HL_ADVISE_CLOUD_MODEL;
    if (!local_model) local_model = "mistral-7b";
    if (!safe_name(cloud_model) || !safe_name(local_model) || !(local_usd_hour >= 0) || !isfinite(local_usd_hour)) {
        snprintf(errbuf, errbuf_len, "model names are letters, digits and ._:/- and the hourly cost >= 0");
        return HL_ERR_INVAL;
    }
    bool anthropic = !strncmp(cloud_model, "claude", 6);
    char text[2048];
    int n = snprintf(
        text, sizeof text,
        "# The brief's InferenceRouter, privacy first.\n"
        "backends:\n"
        "  - {name: cloud, kind: %s, location: cloud, base_url: %s, model: \"%s\"}\n"
        "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:8000/v1, model: \"%s\", "
        "hourly_cost_usd: %.17g}\n"
        "routes:\n"
        "  - {name: privacy, when: {sensitive: true}, to: [local]}\n"
        "  - {name: complex-task, when: {task_type: [code_generation, analysis, reasoning]}, to: [cloud]}\n"
        "  - {name: simple-task, when: {task_type: [classification, extraction]}, to: [local]}\n"
        "  - {name: default, to: [local], escalate: {below: 0.7, to: [cloud]}}\n",
        anthropic ? "anthropic" : "openai", anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1",
        cloud_model, local_model, local_usd_hour);
    if (n < 0 || (size_t)n >= sizeof text) return HL_ERR_LIMIT;
    return hl_config_parse("(built-in brief router)", text, (size_t)n, out, errbuf, errbuf_len);
}

hl_err hl_sim_measured_config(const char *cloud_model, const char *local_model, double local_usd_hour,
                              const hl_sim_workload *w, double target, size_t min_samples, hl_config **out,
                              size_t *n_local, char *names, size_t names_len, char *errbuf, size_t errbuf_len) {
    *out = NULL;
    *n_local = 0;
    if (names_len) names[0] = '\0';
    if (!cloud_model) cloud_model = HL_ADVISE_CLOUD_MODEL;
    if (!local_model) local_model = "mistral-7b";
    if (!safe_name(cloud_model) || !safe_name(local_model) || !(local_usd_hour >= 0) || !isfinite(local_usd_hour) ||
        !(target > 0 && target <= 1) || min_samples < 1) {
        snprintf(errbuf, errbuf_len, "model names are letters, digits and ._:/-, the hourly cost >= 0, the target "
                                     "within (0, 1] and the minimum samples >= 1");
        return HL_ERR_INVAL;
    }
    hl_buf b;
    hl_buf_init(&b, 2048);
    bool anthropic = !strncmp(cloud_model, "claude", 6);
    hl_err e = hl_buf_printf(
        &b,
        "# Routes from measured agreement: task types whose agreement reaches the target go local.\n"
        "backends:\n"
        "  - {name: cloud, kind: %s, location: cloud, base_url: %s, model: \"%s\"}\n"
        "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:8000/v1, model: \"%s\", "
        "hourly_cost_usd: %.17g}\n"
        "routes:\n"
        "  - {name: privacy, when: {sensitive: true}, to: [local]}\n",
        anthropic ? "anthropic" : "openai", anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1",
        cloud_model, local_model, local_usd_hour);
    size_t off = 0;
    for (size_t t = 0; !e && t < w->n_tasks; t++) {
        double lo, hi;
        hl_report_wilson(w->agree_k[t], w->agree_n[t], &lo, &hi);
        if (w->agree_n[t] < min_samples || !(lo >= target - 1e-12) || !safe_name(w->tasks[t])) continue;
        e = hl_buf_printf(&b, "%s%s", *n_local ? ", " : "  - {name: measured-local, when: {task_type: [", w->tasks[t]);
        int n = snprintf(names + off, names_len > off ? names_len - off : 0, "%s%s", *n_local ? ", " : "", w->tasks[t]);
        if (n > 0 && off + (size_t)n < names_len) off += (size_t)n;
        (*n_local)++;
    }
    if (!e && *n_local) e = hl_buf_puts(&b, "]}, to: [local]}\n");
    if (!e) e = hl_buf_puts(&b, "  - {name: default, to: [cloud]}\n");
    if (!e) e = hl_config_parse("(measured-agreement router)", b.data, b.len, out, errbuf, errbuf_len);
    else snprintf(errbuf, errbuf_len, "out of memory");
    hl_buf_release(&b);
    return e;
}

/* ---- reports ---- */

typedef struct cell {
    char s[48];
} cell;

static cell c_count(double x) {
    cell c;
    hl_advise_fmt_count(x, 0, c.s, sizeof c.s);
    return c;
}

static cell c_usd(double x) {
    cell c;
    hl_advise_fmt_usd(x, c.s, sizeof c.s);
    return c;
}

static cell c_pct(double part, double whole) {
    cell c;
    snprintf(c.s, sizeof c.s, "%.1f%%", whole > 0 ? part / whole * 100 : 0);
    return c;
}

typedef cell (*cell_fn)(const hl_sim_result *r, const hl_sim_workload *w);

static cell f_requests(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count((double)r->requests); }
static cell f_local(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_pct((double)r->served_local, (double)r->requests); }
static cell f_cloud(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_pct((double)r->served_cloud, (double)r->requests); }
static cell f_escalated(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count((double)r->escalated); }
static cell f_refused(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count((double)r->refused); }
static cell f_tokens(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count((double)r->tokens); }
static cell f_cloud_tokens(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count((double)r->cloud_tokens); }
static cell f_cloud_usd(const hl_sim_result *r, const hl_sim_workload *w) { return c_usd(r->cloud_usd * w->month_factor); }
static cell f_local_usd(const hl_sim_result *r, const hl_sim_workload *w) { return c_usd(r->local_usd * w->month_factor); }
static cell f_total(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_usd(r->usd_month); }
static cell f_per_1k(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_usd(r->per_1k_requests); }
static cell f_fixed(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_usd(r->fixed_usd_month); }
static cell f_all_in(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_usd(r->usd_month + r->fixed_usd_month); }
static cell f_p50(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count(r->p50_ms); }
static cell f_p95(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count(r->p95_ms); }
static cell f_violations(const hl_sim_result *r, const hl_sim_workload *w) { (void)w; return c_count((double)r->violations); }
static cell f_agreement(const hl_sim_result *r, const hl_sim_workload *w) {
    (void)w;
    cell c;
    if (isnan(r->expected_agreement)) snprintf(c.s, sizeof c.s, "-");
    else if (r->unmeasured_local) snprintf(c.s, sizeof c.s, "%.1f%% (%zu unmeasured)", r->expected_agreement * 100, r->unmeasured_local);
    else snprintf(c.s, sizeof c.s, "%.1f%%", r->expected_agreement * 100);
    return c;
}

static const struct {
    const char *label;
    cell_fn fn;
} rows[] = {
    {"requests", f_requests},
    {"served local", f_local},
    {"served cloud", f_cloud},
    {"escalated (conf < 0.7)", f_escalated},
    {"refused by the router", f_refused},
    {"tokens", f_tokens},
    {"tokens sent to the cloud", f_cloud_tokens},
    {"cloud $/month", f_cloud_usd},
    {"local busy $/month", f_local_usd},
    {"total $/month", f_total},
    {"$ per 1K requests", f_per_1k},
    {"local hardware $/month", f_fixed},
    {"total with hardware", f_all_in},
    {"p50 latency ms", f_p50},
    {"p95 latency ms", f_p95},
    {"privacy violations", f_violations},
    {"expected agreement", f_agreement}, /* shown when the ledger measured agreement */
};

/* The measured agreement per task type the replay used. */
static hl_err render_measured(const hl_sim_workload *w, hl_buf *o) {
    hl_err e = hl_buf_puts(o, "\n\nmeasured agreement of local answers (the ledger's scored lines; 95% Wilson interval)");
    for (size_t t = 0; !e && t <= HL_SIM_MAX_TASKS; t++) {
        if ((t < HL_SIM_MAX_TASKS && t >= w->n_tasks) || !w->agree_n[t]) continue;
        double lo, hi;
        hl_report_wilson(w->agree_k[t], w->agree_n[t], &lo, &hi);
        e = hl_buf_printf(o, "\n  %-24s %5.1f%% (%.1f%%-%.1f%%) on %s samples",
                          t < HL_SIM_MAX_TASKS ? w->tasks[t] : "(no task type)",
                          (double)w->agree_k[t] / (double)w->agree_n[t] * 100, lo * 100, hi * 100,
                          c_count((double)w->agree_n[t]).s);
    }
    if (!e)
        e = hl_buf_puts(o, "\n  expected agreement: a cloud answer counts 1 (the reference), a local one its task "
                           "type's measured rate");
    return e;
}

hl_err hl_sim_render_text(const hl_sim_workload *w, const hl_sim_result *rs, size_t n, hl_buf *o) {
    hl_err e = hl_buf_printf(o, "hybridllm simulate: policies side by side, replayed through the router\n\nworkload: %s\n",
                             w->source);
    /* the mix as replayed */
    if (!e) e = hl_buf_puts(o, "  mix:");
    for (int t = 0; !e && t <= (int)w->n_tasks; t++) {
        if (t == (int)w->n_tasks) t = -1; /* the untyped requests last */
        size_t k = 0;
        for (size_t i = 0; i < w->n; i++) k += w->v[i].task == t;
        if (k) e = hl_buf_printf(o, " %s %s,", t < 0 ? "(no task type)" : w->tasks[t], c_pct((double)k, (double)w->n).s);
        if (t < 0) break;
    }
    if (!e) {
        o->len--; /* the last comma */
        o->data[o->len] = '\0';
        e = hl_buf_printf(o, "\n  %s requests, %s tokens (%s input), %s sensitive\n\n", c_count((double)w->n).s,
                          c_count((double)(w->input_tokens + w->output_tokens)).s,
                          c_pct((double)w->input_tokens, (double)(w->input_tokens + w->output_tokens)).s,
                          c_count((double)w->sensitive).s);
    }
    if (!e) e = hl_buf_printf(o, "%-26s", "");
    for (size_t j = 0; !e && j < n; j++) e = hl_buf_printf(o, " %16.16s", rs[j].name);
    for (size_t i = 0; !e && i < sizeof rows / sizeof rows[0]; i++) {
        if (rows[i].fn == f_agreement && !w->scored) continue;
        e = hl_buf_printf(o, "\n%-26s", rows[i].label);
        for (size_t j = 0; !e && j < n; j++) e = hl_buf_printf(o, " %16s", rows[i].fn(&rs[j], w).s);
    }
    if (!e && w->scored) e = render_measured(w, o);
    if (!e) e = hl_buf_puts(o, "\n\nbackends\n");
    for (size_t j = 0; !e && j < n; j++) e = hl_buf_printf(o, "  %-16s %s\n", rs[j].name, rs[j].backends);
    for (size_t j = 0; !e && j < n; j++)
        if (rs[j].refusal[0]) e = hl_buf_printf(o, "  %s refused %zu, the first: %s\n", rs[j].name, rs[j].refused, rs[j].refusal);
    for (size_t j = 0; !e && j < n; j++)
        if (rs[j].unpriced)
            e = hl_buf_printf(o, "  %s: %zu cloud calls to a model with no price, counted as $0: give prices with --config\n",
                              rs[j].name, rs[j].unpriced);
    if (!e)
        e = hl_buf_puts(
            o,
            "\nhow to read it\n"
            "  Latency is drawn uniformly within each backend's range (the brief's figures by model); an escalated\n"
            "  request pays the local attempt and the cloud one. Local cost is the brief's busy-time model\n"
            "  (hourly_cost_usd x latency); \"local hardware\" is advise's amortized hardware + power, carried by any\n"
            "  policy that uses a local backend. A local answer's confidence per task type is an assumption\n"
            "  (docs/advisor.md); a ledger's recorded confidences replace it. all-cloud and all-local bypass the\n"
            "  router, as an application without the gateway would: only all-cloud can leak sensitive requests.\n"
            "  $/month rows are scaled to a 30-day month; the other rows count the workload as replayed.\n");
    return e;
}

hl_err hl_sim_render_json(const hl_sim_workload *w, const hl_sim_result *rs, size_t n, hl_buf *out) {
    hl_err rc = HL_ERR_NOMEM;
    json_t *root = json_object(), *mix = json_object(), *pol = json_array();
    if (!root || !mix || !pol) goto out;
    for (int t = -1; t < (int)w->n_tasks; t++) {
        size_t k = 0;
        for (size_t i = 0; i < w->n; i++) k += w->v[i].task == t;
        if (k && json_object_set_new(mix, t < 0 ? "(none)" : w->tasks[t], json_integer((json_int_t)k))) goto out;
    }
    json_t *wj = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:o}", "source", w->source, "requests", (json_int_t)w->n,
                           "input_tokens", (json_int_t)w->input_tokens, "output_tokens", (json_int_t)w->output_tokens,
                           "sensitive", (json_int_t)w->sensitive, "month_factor", w->month_factor, "mix", mix);
    mix = NULL;
    if (wj && w->scored) { /* measured agreement per task type: {samples, agreed} */
        json_t *ag = json_object();
        for (size_t t = 0; ag && t <= HL_SIM_MAX_TASKS; t++) {
            if ((t < HL_SIM_MAX_TASKS && t >= w->n_tasks) || !w->agree_n[t]) continue;
            json_object_set_new(ag, t < HL_SIM_MAX_TASKS ? w->tasks[t] : "(none)",
                                json_pack("{s:I, s:I}", "samples", (json_int_t)w->agree_n[t], "agreed",
                                          (json_int_t)w->agree_k[t]));
        }
        if (!ag || json_object_set_new(wj, "agreement", ag)) {
            json_decref(wj);
            wj = NULL;
        }
    }
    if (!wj || json_object_set_new(root, "workload", wj)) goto out;
    for (size_t j = 0; j < n; j++) {
        const hl_sim_result *r = &rs[j];
        json_t *p = json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s?, s:s}", "name",
            r->name, "requests", (json_int_t)r->requests, "served_local", (json_int_t)r->served_local, "served_cloud",
            (json_int_t)r->served_cloud, "escalated", (json_int_t)r->escalated, "refused", (json_int_t)r->refused,
            "privacy_violations", (json_int_t)r->violations, "unpriced_cloud_calls", (json_int_t)r->unpriced, "tokens",
            (json_int_t)r->tokens, "cloud_tokens", (json_int_t)r->cloud_tokens, "cloud_usd_per_month",
            r->cloud_usd * w->month_factor, "local_busy_usd_per_month", r->local_usd * w->month_factor, "usd_per_month",
            r->usd_month, "usd_per_1k_requests", r->per_1k_requests, "local_hardware_usd_per_month", r->fixed_usd_month,
            "p50_ms", r->p50_ms, "p95_ms", r->p95_ms, "first_refusal", r->refusal[0] ? r->refusal : NULL, "backends",
            r->backends);
        if (!p || json_object_set_new(p, "expected_agreement",
                                      isnan(r->expected_agreement) ? json_null() : json_real(r->expected_agreement)) ||
            json_object_set_new(p, "unmeasured_local", json_integer((json_int_t)r->unmeasured_local)) ||
            json_array_append_new(pol, p))
            goto out;
    }
    json_object_set_new(root, "policies", pol);
    pol = NULL;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    if (!text) goto out;
    rc = hl_buf_puts(out, text);
    if (!rc) rc = hl_buf_puts(out, "\n");
    free(text);
out:
    json_decref(root);
    json_decref(mix);
    json_decref(pol);
    return rc;
}
