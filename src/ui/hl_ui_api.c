/* hl_ui_api: what the dashboard's /api/ endpoints compute (see hl_ui.h): the query's
 * parameters, and each view's JSON. Figures come from hl_report_build with the options
 * `hybridllm report` would use, and each view embeds the report's own JSON rendering, so a
 * chart and the report read the same numbers. Nothing here knows about HTTP. */
#include "hl_ui.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_advise.h"
#include "hl_budget.h"
#include "hl_keybudget.h"
#include "hl_ledger.h"
#include "hl_report.h"
#include "hl_time.h"

/* ------------------------------------------------------------------ the query */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes one application/x-www-form-urlencoded component into out (NUL-terminated). False
 * when it does not fit, has a bad escape, or decodes to a control character. */
static bool form_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n) return false;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return false;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f || o + 1 >= cap) return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}

/* A filter value: a name as the ledger writes them (printable, no quotes needed). */
static bool name_ok(const char *v) {
    if (!*v) return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return false;
    return true;
}

static hl_err qerr(char *param, size_t param_len, char *msg, size_t msg_len, const char *name, const char *fmt,
                   const char *detail) {
    snprintf(param, param_len, "%s", name);
    snprintf(msg, msg_len, fmt, detail);
    return HL_ERR_INVAL;
}

hl_err hl_ui_query_parse(const char *qs, size_t len, hl_ui_query *q, char *param, size_t param_len,
                         char *msg, size_t msg_len) {
    memset(q, 0, sizeof *q);
    q->from_ms = HL_STORE_TIME_MIN;
    q->to_ms = HL_STORE_TIME_MAX;
    static const char *const names[] = {"from", "to", "tenant", "backend", "task_type"};
    bool seen[5] = {false};
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && qs[end] != '&') end++;
        const char *eq = memchr(qs + i, '=', end - i);
        size_t kn = eq ? (size_t)(eq - (qs + i)) : end - i;
        char key[32], val[256];
        if (end == i) { /* "a=1&&b=2": an empty piece is harmless */
            i = end + 1;
            continue;
        }
        if (!form_decode(qs + i, kn, key, sizeof key)) return qerr(param, param_len, msg, msg_len, "", "A query parameter's name is not valid.%s", "");
        int k = -1;
        for (int j = 0; j < 5; j++)
            if (!strcmp(key, names[j])) k = j;
        if (k < 0) {
            char shown[40];
            snprintf(shown, sizeof shown, "%.32s", key);
            return qerr(param, param_len, msg, msg_len, shown,
                        "Unknown query parameter '%s': use from, to, tenant, backend or task_type.", shown);
        }
        if (seen[k]) return qerr(param, param_len, msg, msg_len, names[k], "'%s' is given twice.", names[k]);
        seen[k] = true;
        if (!eq || !form_decode(eq + 1, end - kn - i - 1, val, sizeof val))
            return qerr(param, param_len, msg, msg_len, names[k], "'%s' needs a value (at most 255 printable bytes).",
                        names[k]);
        if (k <= 1) {
            long long ms;
            if (!val[0] || hl_time_parse_ms(val, strlen(val), &ms) != HL_OK)
                return qerr(param, param_len, msg, msg_len, names[k],
                            "'%s' must be an ISO 8601 time such as 2024-05-01 or 2024-05-01T12:00:00Z.", names[k]);
            if (k == 0) q->from_ms = ms;
            else q->to_ms = ms;
        } else {
            char *dst = k == 2 ? q->tenant : k == 3 ? q->backend : q->task_type;
            size_t cap = k == 4 ? sizeof q->task_type : sizeof q->tenant;
            if (!name_ok(val) || strlen(val) >= cap)
                return qerr(param, param_len, msg, msg_len, names[k], "'%s' must be a non-empty name.", names[k]);
            memcpy(dst, val, strlen(val) + 1);
        }
        i = end + 1;
    }
    if (q->from_ms >= q->to_ms) return qerr(param, param_len, msg, msg_len, "from", "'from' must be before 'to'.%s", "");
    return HL_OK;
}

bool hl_ui_view_of(hl_slice path, hl_ui_view *out) {
    static const struct {
        const char *path;
        hl_ui_view v;
    } views[] = {
        {"/api/filters", HL_UI_FILTERS}, {"/api/spend", HL_UI_SPEND},     {"/api/requests", HL_UI_REQUESTS},
        {"/api/latency", HL_UI_LATENCY}, {"/api/privacy", HL_UI_PRIVACY}, {"/api/budgets", HL_UI_BUDGETS},
        {"/api/advise", HL_UI_ADVISE},   {"/api/agreement", HL_UI_AGREEMENT},
    };
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        if (path.n == strlen(views[i].path) && !memcmp(path.p, views[i].path, path.n)) {
            *out = views[i].v;
            return true;
        }
    return false;
}

bool hl_ui_peer_is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return ((const unsigned char *)&in->sin_addr)[0] == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char lo[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        if (!memcmp(a, lo, 16)) return true;
        return !memcmp(a, mapped, 12) && a[12] == 127;
    }
    return false;
}

const hl_price *hl_ui_cloud_price(const hl_config *cfg) {
    for (size_t i = 0; cfg && i < cfg->n_backends; i++) {
        const hl_backend_cfg *b = &cfg->backends[i];
        if (b->location != HL_LOCATION_CLOUD || !b->model) continue;
        const hl_price *p = hl_config_price(cfg, b->model);
        if (p) return p;
    }
    return hl_advise_price(cfg, HL_ADVISE_CLOUD_MODEL, NULL);
}

/* ------------------------------------------------------------------ views over the report */

typedef struct view_ctx {
    const hl_ui_query *q;
    hl_store *s;
    const hl_ui_sources *src;
    hl_buf *out;
    char *err;
    size_t err_len;
} view_ctx;

/* o as `report` has it (hl_report_opts_init) for the query's range, grouped by g, with the
 * query's filters when filtered. */
static void report_opts(const view_ctx *v, hl_report_opts *o, hl_store_group g, bool filtered) {
    hl_report_opts_init(o);
    o->group_by = g;
    o->from_ms = v->q->from_ms;
    o->to_ms = v->q->to_ms;
    if (!filtered) return;
    o->filter.tenant = v->q->tenant[0] ? v->q->tenant : NULL;
    o->filter.backend = v->q->backend[0] ? v->q->backend : NULL;
    o->filter.task_type = v->q->task_type[0] ? v->q->task_type : NULL;
}

/* Appends `"key":` and the report's JSON (grouped by g, the query's filters plus source, with
 * the savings' cloud price) to the output. keep: NULL, or receives the report (the caller
 * frees it with hl_report_free). */
static hl_err put_report_keep(view_ctx *v, const char *key, hl_store_group g, const char *source, bool filtered,
                              hl_report **keep) {
    hl_report_opts o;
    report_opts(v, &o, g, filtered);
    o.filter.source = source;
    o.cloud_price = hl_ui_cloud_price(v->src->cfg);
    hl_report *r = NULL;
    hl_err e = hl_report_build(v->s, &o, &r, v->err, v->err_len);
    if (!e) e = hl_buf_printf(v->out, "\"%s\":", key);
    size_t at = v->out->len;
    if (!e) e = hl_report_render(r, HL_REPORT_JSON, v->out);
    if (!e && v->out->len > at && v->out->data[v->out->len - 1] == '\n') v->out->data[--v->out->len] = '\0';
    if (keep && !e) *keep = r;
    else hl_report_free(r);
    return e;
}

static hl_err put_report(view_ctx *v, const char *key, hl_store_group g, const char *source, bool filtered) {
    return put_report_keep(v, key, g, source, filtered, NULL);
}

/* The query as the views echo it. */
static hl_err put_query(view_ctx *v, const char *view) {
    char t[40];
    hl_err e = hl_buf_printf(v->out, "{\"object\":\"dashboard.%s\",\"query\":{\"from\":", view);
    if (!e && v->q->from_ms > HL_STORE_TIME_MIN) {
        hl_store_format_time(v->q->from_ms, t, sizeof t);
        e = hl_buf_json_str(v->out, t, strlen(t));
    } else if (!e) {
        e = hl_buf_puts(v->out, "null");
    }
    if (!e) e = hl_buf_puts(v->out, ",\"to\":");
    if (!e && v->q->to_ms < HL_STORE_TIME_MAX) {
        hl_store_format_time(v->q->to_ms, t, sizeof t);
        e = hl_buf_json_str(v->out, t, strlen(t));
    } else if (!e) {
        e = hl_buf_puts(v->out, "null");
    }
    const char *names[3] = {"tenant", "backend", "task_type"}, *vals[3] = {v->q->tenant, v->q->backend, v->q->task_type};
    for (int i = 0; i < 3 && !e; i++) {
        e = hl_buf_printf(v->out, ",\"%s\":", names[i]);
        if (!e) e = vals[i][0] ? hl_buf_json_str(v->out, vals[i], strlen(vals[i])) : hl_buf_puts(v->out, "null");
    }
    if (!e) e = hl_buf_puts(v->out, "},");
    return e;
}

static hl_err view_filters(view_ctx *v) {
    hl_err e = put_report(v, "tenant", HL_STORE_GROUP_TENANT, NULL, false);
    if (!e) e = hl_buf_puts(v->out, ",");
    if (!e) e = put_report(v, "backend", HL_STORE_GROUP_BACKEND, NULL, false);
    if (!e) e = hl_buf_puts(v->out, ",");
    if (!e) e = put_report(v, "task_type", HL_STORE_GROUP_TASK_TYPE, NULL, false);
    return e;
}

static hl_err view_spend(view_ctx *v) {
    hl_err e = put_report(v, "all", HL_STORE_GROUP_DAY, NULL, true);
    if (!e) e = hl_buf_puts(v->out, ",");
    if (!e) e = put_report(v, "cloud", HL_STORE_GROUP_DAY, "cloud", true);
    if (!e) e = hl_buf_puts(v->out, ",");
    if (!e) e = put_report(v, "local", HL_STORE_GROUP_DAY, "local", true);
    return e;
}

/* The rates: errors per attempt and escalations per request, as the report has them, and
 * fallbacks per request: attempts beyond a request's first that no escalation explains (a
 * retry or the next candidate after a failure). */
static hl_err view_requests(view_ctx *v) {
    hl_report *r = NULL;
    hl_err e = put_report(v, "by_route_reason", HL_STORE_GROUP_ROUTE_REASON, NULL, true);
    if (!e) e = hl_buf_puts(v->out, ",");
    if (!e) e = put_report_keep(v, "by_backend", HL_STORE_GROUP_BACKEND, NULL, true, &r);
    if (e) return e;
    const hl_report_row *t = &r->total;
    unsigned long long extra = t->attempts > t->requests + t->escalations ? t->attempts - t->requests - t->escalations : 0;
    e = hl_buf_printf(v->out,
                      ",\"rates\":{\"requests\":%llu,\"attempts\":%llu,\"errors\":%llu,\"escalations\":%llu,"
                      "\"fallbacks\":%llu,\"error_rate\":",
                      t->requests, t->attempts, t->errors, t->escalations, extra);
    if (!e) e = hl_buf_double(v->out, t->error_rate);
    if (!e) e = hl_buf_puts(v->out, ",\"fallback_rate\":");
    if (!e) e = hl_buf_double(v->out, t->requests ? (double)extra / (double)t->requests : 0);
    if (!e) e = hl_buf_puts(v->out, ",\"escalation_rate\":");
    if (!e) e = hl_buf_double(v->out, t->escalation_rate);
    if (!e) e = hl_buf_puts(v->out, "}");
    hl_report_free(r);
    return e;
}

/* Per backend in the range: its figures by day. */
static hl_err view_latency(view_ctx *v) {
    hl_report_opts o;
    report_opts(v, &o, HL_STORE_GROUP_BACKEND, true);
    hl_report *r = NULL;
    hl_err e = hl_report_build(v->s, &o, &r, v->err, v->err_len);
    if (e) return e;
    e = put_report(v, "by_backend", HL_STORE_GROUP_BACKEND, NULL, true);
    if (!e) e = hl_buf_puts(v->out, ",\"backends\":[");
    /* Each backend's days: the query with its backend filter (the query's own, if any, is
     * the same backend or leaves no rows). */
    hl_ui_query one = *v->q;
    view_ctx w = *v;
    w.q = &one;
    size_t shown = 0;
    for (size_t i = 0; i < r->n_rows && !e; i++) {
        if (!r->rows[i].group || strlen(r->rows[i].group) >= sizeof one.backend) continue;
        snprintf(one.backend, sizeof one.backend, "%s", r->rows[i].group);
        e = hl_buf_printf(v->out, "%s{\"backend\":", shown++ ? "," : "");
        if (!e) e = hl_buf_json_str(v->out, one.backend, strlen(one.backend));
        if (!e) e = hl_buf_puts(v->out, ",");
        if (!e) e = put_report(&w, "by_day", HL_STORE_GROUP_DAY, NULL, true);
        if (!e) e = hl_buf_puts(v->out, "}");
    }
    if (!e) e = hl_buf_puts(v->out, "]");
    hl_report_free(r);
    return e;
}

static hl_err view_agreement(view_ctx *v) {
    return put_report(v, "by_task_type", HL_STORE_GROUP_TASK_TYPE, NULL, true);
}

/* ------------------------------------------------------------------ privacy, from the journal */

#define MAX_PII_TYPES 32

typedef struct privacy_acc {
    const hl_ui_query *q;
    unsigned long long sensitive, sensitive_cloud, sensitive_local, requests;
    struct {
        char name[48];
        unsigned long long n;
    } types[MAX_PII_TYPES];
    size_t n_types;
    unsigned long long other_types; /* attempts with a type past MAX_PII_TYPES */
} privacy_acc;

static bool eq_or_any(const char *want, const char *have) { return !want[0] || (have && !strcmp(want, have)); }

static void count_type(privacy_acc *a, const char *name, size_t n) {
    if (!n) return;
    for (size_t i = 0; i < a->n_types; i++)
        if (strlen(a->types[i].name) == n && !memcmp(a->types[i].name, name, n)) {
            a->types[i].n++;
            return;
        }
    if (a->n_types == MAX_PII_TYPES || n >= sizeof a->types[0].name) {
        a->other_types++;
        return;
    }
    memcpy(a->types[a->n_types].name, name, n);
    a->types[a->n_types].name[n] = '\0';
    a->types[a->n_types++].n = 1;
}

/* Every attempt counts, shadows included: a shadow sent to the cloud is a cloud call too. */
static hl_err on_privacy(void *ctx, const hl_ledger_entry *en, size_t line_no) {
    (void)line_no;
    privacy_acc *a = ctx;
    const hl_ledger_record *r = &en->rec;
    if (en->ts_ms < a->q->from_ms || en->ts_ms >= a->q->to_ms || r->eval_run) return HL_OK;
    if (!eq_or_any(a->q->tenant, r->tenant) || !eq_or_any(a->q->backend, r->backend) ||
        !eq_or_any(a->q->task_type, r->task_type))
        return HL_OK;
    a->requests += !r->shadow && r->attempt <= 1;
    if (!r->sensitive) return HL_OK;
    a->sensitive++;
    if (r->cloud) a->sensitive_cloud++;
    else a->sensitive_local++;
    /* "email:1,phone:2" (or "many"): each type once per attempt */
    for (const char *p = r->pii; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        count_type(a, p, colon ? (size_t)(colon - p) : n);
        p = end ? end + 1 : NULL;
    }
    return HL_OK;
}

static hl_err view_privacy(view_ctx *v) {
    privacy_acc a = {.q = v->q};
    hl_ledger_read_stats st;
    const char *path = v->src->cfg ? v->src->cfg->ledger_path : NULL;
    hl_err e = path ? hl_ledger_read(path, 0, on_privacy, &a, &st, v->err, v->err_len) : HL_ERR_IO;
    if (e == HL_ERR_IO && path && errno == ENOENT) e = HL_OK; /* nothing written yet */
    if (e) return e;
    e = hl_buf_printf(v->out,
                      "\"attempts_sensitive\":%llu,\"cloud_calls_sensitive\":%llu,\"local_calls_sensitive\":%llu,"
                      "\"requests\":%llu,\"by_type\":{",
                      a.sensitive, a.sensitive_cloud, a.sensitive_local, a.requests);
    for (size_t i = 0; i < a.n_types && !e; i++) {
        if (i) e = hl_buf_puts(v->out, ",");
        if (!e) e = hl_buf_json_str(v->out, a.types[i].name, strlen(a.types[i].name));
        if (!e) e = hl_buf_printf(v->out, ":%llu", a.types[i].n);
    }
    if (!e && a.other_types) e = hl_buf_printf(v->out, "%s\"other\":%llu", a.n_types ? "," : "", a.other_types);
    if (!e) e = hl_buf_puts(v->out, "}");
    return e;
}

/* ------------------------------------------------------------------ budgets */

/* The UTC period containing now: its start and end in ms. */
static void period_of(long long now_ms, bool month, long long *start, long long *end) {
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (month) tm.tm_mday = 1;
    *start = (long long)timegm(&tm) * 1000;
    if (month) tm.tm_mon += 1;
    else tm.tm_mday += 1;
    *end = (long long)timegm(&tm) * 1000;
}

/* One budget's line: spend so far, and the forecast at the same rate to the period's end. */
static hl_err put_budget(view_ctx *v, bool *first, const char *kind, const char *name, const char *tenant,
                         bool month, double limit, double spent) {
    long long start, end, now = v->src->now_ms;
    period_of(now, month, &start, &end);
    double elapsed = (double)(now - start) / (double)(end - start);
    double forecast = elapsed > 0 ? spent / elapsed : spent;
    char a[40], b[40];
    hl_store_format_time(start, a, sizeof a);
    hl_store_format_time(end, b, sizeof b);
    hl_err e = hl_buf_printf(v->out, "%s{\"kind\":\"%s\",\"name\":", *first ? "" : ",", kind);
    *first = false;
    if (!e) e = hl_buf_json_str(v->out, name, strlen(name));
    if (!e) e = hl_buf_puts(v->out, ",\"tenant\":");
    if (!e) e = tenant ? hl_buf_json_str(v->out, tenant, strlen(tenant)) : hl_buf_puts(v->out, "null");
    if (!e) e = hl_buf_printf(v->out, ",\"period\":\"%s\",\"period_start\":\"%s\",\"period_end\":\"%s\",\"limit_usd\":",
                              month ? "month" : "day", a, b);
    if (!e) e = hl_buf_double(v->out, limit);
    if (!e) e = hl_buf_puts(v->out, ",\"spent_usd\":");
    if (!e) e = hl_buf_double(v->out, spent);
    if (!e) e = hl_buf_puts(v->out, ",\"forecast_usd\":");
    if (!e) e = hl_buf_double(v->out, forecast);
    if (!e) e = hl_buf_printf(v->out, ",\"elapsed_share\":");
    if (!e) e = hl_buf_double(v->out, elapsed);
    if (!e) e = hl_buf_puts(v->out, "}");
    return e;
}

typedef struct key_budget_ctx {
    view_ctx *v;
    bool *first;
    hl_err e;
} key_budget_ctx;

static hl_err on_key(void *ctx, const hl_store_key *k) {
    key_budget_ctx *c = ctx;
    if (k->revoked || (k->budget_day_usd < 0 && k->budget_month_usd < 0)) return HL_OK;
    double day = 0, month = 0;
    hl_key_budgets_spent(c->v->src->key_budgets, k->id, c->v->src->now_ms, &day, &month);
    if (k->budget_month_usd >= 0)
        c->e = put_budget(c->v, c->first, "key", k->name, k->tenant, true, k->budget_month_usd, month);
    if (!c->e && k->budget_day_usd >= 0)
        c->e = put_budget(c->v, c->first, "key", k->name, k->tenant, false, k->budget_day_usd, day);
    return c->e;
}

/* The config's tenants' budgets (tenants:), against the store's cloud spend per tenant. */
typedef struct tenant_spend {
    const hl_config *cfg;
    double *day, *month;      /* per cfg->tenants[i] */
} tenant_spend;

static void on_tenant_spend(void *ctx, const char *tenant, double day_usd, double month_usd) {
    tenant_spend *t = ctx;
    for (size_t i = 0; i < t->cfg->n_tenants; i++)
        if (tenant && !strcmp(t->cfg->tenants[i].name, tenant)) {
            t->day[i] = day_usd;
            t->month[i] = month_usd;
        }
}

static hl_err put_tenant_budgets(view_ctx *v, bool *first) {
    const hl_config *cfg = v->src->cfg;
    size_t n = cfg ? cfg->n_tenants : 0;
    if (!n || !v->s) return HL_OK;
    tenant_spend t = {cfg, calloc(n, sizeof(double)), calloc(n, sizeof(double))};
    hl_err e = t.day && t.month ? hl_store_cloud_spend(v->s, v->src->now_ms, on_tenant_spend, &t) : HL_ERR_NOMEM;
    if (e && e != HL_ERR_NOMEM) snprintf(v->err, v->err_len, "%s", hl_store_errmsg(v->s));
    for (size_t i = 0; i < n && !e; i++) {
        const hl_tenant_cfg *tc = &cfg->tenants[i];
        if (tc->budget_month_usd >= 0)
            e = put_budget(v, first, "tenant", tc->name, tc->name, true, tc->budget_month_usd, t.month[i]);
        if (!e && tc->budget_day_usd >= 0)
            e = put_budget(v, first, "tenant", tc->name, tc->name, false, tc->budget_day_usd, t.day[i]);
    }
    free(t.day);
    free(t.month);
    return e;
}

static hl_err view_budgets(view_ctx *v) {
    const hl_config *cfg = v->src->cfg;
    bool first = true;
    hl_err e = hl_buf_puts(v->out, "\"budgets\":[");
    time_t now = (time_t)(v->src->now_ms / 1000);
    for (size_t i = 0; cfg && i < cfg->n_budgets && !e; i++) {
        const hl_budget_cfg *b = &cfg->budgets[i];
        double spent = hl_budgets_spent(v->src->budgets, i, b->tenant, now);
        e = put_budget(v, &first, "config", b->name, b->tenant, b->period == HL_BUDGET_MONTH, b->limit_usd, spent);
    }
    if (!e) e = put_tenant_budgets(v, &first);
    if (!e && v->s && v->src->key_budgets) {
        key_budget_ctx c = {v, &first, HL_OK};
        e = hl_store_keys_list(v->s, on_key, &c);
        if (e && !c.e) snprintf(v->err, v->err_len, "%s", hl_store_errmsg(v->s));
    }
    if (!e) e = hl_buf_puts(v->out, "]");
    return e;
}

/* ------------------------------------------------------------------ the advisor */

static hl_err view_advise(view_ctx *v) {
    const hl_config *cfg = v->src->cfg;
    const hl_price *p = hl_ui_cloud_price(cfg);
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.prices = cfg;
    in.cloud_model = p && p->model ? p->model : HL_ADVISE_CLOUD_MODEL;
    hl_advise_measured *m = malloc(sizeof *m);
    hl_advise_result *r = malloc(sizeof *r);
    hl_err e = m && r ? HL_OK : HL_ERR_NOMEM;
    char msg[512] = "";
    if (!e) e = hl_advise_measure(cfg->ledger_path, 0, m, msg, sizeof msg);
    if (!e) {
        in.measured = m;
        in.brief_scenario = false;
        e = hl_advise_compute(&in, r, msg, sizeof msg);
    }
    if (!e) {
        e = hl_buf_puts(v->out, "\"advise\":");
        size_t at = v->out->len;
        if (!e) e = hl_advise_render_json(&in, r, v->out);
        while (!e && v->out->len > at && v->out->data[v->out->len - 1] == '\n') v->out->data[--v->out->len] = '\0';
    } else if (e != HL_ERR_NOMEM) {
        /* No served request yet, or no price: a view with nothing to draw, and why. */
        e = hl_buf_puts(v->out, "\"advise\":null,\"why\":");
        if (!e) e = hl_buf_json_str(v->out, msg, strlen(msg));
    }
    free(m);
    free(r);
    return e;
}

/* ------------------------------------------------------------------ dispatch */

hl_err hl_ui_build(hl_ui_view view, const hl_ui_query *q, hl_store *s, const hl_ui_sources *src, hl_buf *out,
                   char *errbuf, size_t errbuf_len) {
    static const char *const names[] = {"filters", "spend", "requests", "latency", "privacy", "budgets",
                                        "advise", "agreement"};
    if (errbuf_len) errbuf[0] = '\0';
    bool needs_store = view != HL_UI_PRIVACY && view != HL_UI_ADVISE && view != HL_UI_BUDGETS;
    if (needs_store && !s) {
        snprintf(errbuf, errbuf_len, "no ledger store");
        return HL_ERR_IO;
    }
    view_ctx v = {q, s, src, out, errbuf, errbuf_len};
    hl_err e = put_query(&v, names[view]);
    if (e) return e;
    switch (view) {
    case HL_UI_FILTERS: e = view_filters(&v); break;
    case HL_UI_SPEND: e = view_spend(&v); break;
    case HL_UI_REQUESTS: e = view_requests(&v); break;
    case HL_UI_LATENCY: e = view_latency(&v); break;
    case HL_UI_PRIVACY: e = view_privacy(&v); break;
    case HL_UI_BUDGETS: e = view_budgets(&v); break;
    case HL_UI_ADVISE: e = view_advise(&v); break;
    case HL_UI_AGREEMENT: e = view_agreement(&v); break;
    }
    if (!e) e = hl_buf_puts(out, "}");
    if (e && errbuf_len && !errbuf[0]) snprintf(errbuf, errbuf_len, "%s", hl_err_str(e));
    return e;
}
