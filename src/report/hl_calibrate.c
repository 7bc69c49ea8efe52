/* hl_calibrate: reads the scored lines of a ledger into samples per task type, sweeps the
 * escalation threshold over each signal's observed values, and renders the curve, the choice
 * and a routes snippet (see hl_calibrate.h for the rules). */
#include "hl_calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hl_ledger.h"
#include "hl_report.h"

static const char *const signal_names[HL_CAL_SIGNALS] = {"geomean", "margin", "min"};

/* ---- reading ---------------------------------------------------------------------------- */

#define MAX_NAMES 64

typedef struct name_tally {
    char name[MAX_NAMES][64];
    size_t n[MAX_NAMES];
    size_t count;
} name_tally;

/* An eval line kept until the read says whether its reference backend is a cloud one. */
typedef struct pending {
    size_t task;
    hl_cal_sample s;
    char ref[64];
} pending;

typedef struct load_ctx {
    hl_cal_data *d;
    const char *task_filter;
    name_tally local, cloud;
    pending *pend;
    size_t n_pend, cap_pend;
} load_ctx;

static void tally(name_tally *t, const char *name) {
    if (!name || strlen(name) >= sizeof t->name[0]) return;
    for (size_t i = 0; i < t->count; i++)
        if (!strcmp(t->name[i], name)) {
            t->n[i]++;
            return;
        }
    if (t->count == MAX_NAMES) return;
    strcpy(t->name[t->count], name);
    t->n[t->count++] = 1;
}

static bool tallied(const name_tally *t, const char *name) {
    for (size_t i = 0; i < t->count; i++)
        if (!strcmp(t->name[i], name)) return true;
    return false;
}

static void most_used(const name_tally *t, char *out, size_t len) {
    size_t best = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->count; i++)
        if (t->n[i] > best) best = t->n[i], snprintf(out, len, "%s", t->name[i]);
}

static bool same_task(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* The task's index, added when new; -1 when out of memory or room. */
static long task_index(hl_cal_data *d, const char *name) {
    for (size_t i = 0; i < d->n_tasks; i++)
        if (same_task(d->tasks[i].name, name)) return (long)i;
    if (d->n_tasks == HL_CAL_MAX_TASKS) return -1;
    hl_cal_task *t = &d->tasks[d->n_tasks];
    memset(t, 0, sizeof *t);
    if (name && !(t->name = strdup(name))) return -1;
    return (long)d->n_tasks++;
}

static hl_err add_sample(hl_cal_task *t, const hl_cal_sample *s) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        hl_cal_sample *v = realloc(t->v, cap * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        t->v = v, t->cap = cap;
    }
    t->v[t->n++] = *s;
    return HL_OK;
}

static bool served_status(const char *status) { return !status || !strcmp(status, "ok"); }

static hl_err on_entry(void *ctx, const hl_ledger_entry *en, size_t line_no) {
    load_ctx *c = ctx;
    hl_cal_data *d = c->d;
    const hl_ledger_record *r = &en->rec;
    (void)line_no;
    d->records++;
    if (c->task_filter && !same_task(c->task_filter, r->task_type)) return HL_OK;
    if (served_status(r->status)) tally(r->cloud ? &c->cloud : &c->local, r->backend);
    bool priced_cloud = r->cloud && served_status(r->status) && r->cost_known && !r->error;
    bool sample = r->scored && r->confidence >= 0 && r->reference;
    if (!priced_cloud && !sample) return HL_OK;
    long ti = task_index(d, r->task_type);
    if (ti < 0) return HL_ERR_LIMIT;
    hl_cal_task *t = &d->tasks[ti];
    if (priced_cloud) {
        t->cloud_cost_sum += r->cost_usd, t->cloud_cost_n++;
        d->cloud_cost_sum += r->cost_usd, d->cloud_cost_n++;
    }
    if (!sample) return HL_OK;
    hl_cal_sample s = {{(float)r->confidence, -1, -1}, r->agree};
    if (r->signals) s.s[HL_SIGNAL_MARGIN] = (float)r->confidence_margin, s.s[HL_SIGNAL_MIN] = (float)r->confidence_min;
    if (r->shadow && !strcmp(r->reference, "served")) {
        d->samples++;
        return add_sample(t, &s);
    }
    if (!r->eval_run || r->cloud || !strcmp(r->reference, "expected") || !strcmp(r->reference, "served") ||
        strlen(r->reference) >= sizeof c->pend->ref)
        return HL_OK;
    if (c->n_pend == c->cap_pend) {
        size_t cap = c->cap_pend ? c->cap_pend * 2 : 64;
        pending *p = realloc(c->pend, cap * sizeof *p);
        if (!p) return HL_ERR_NOMEM;
        c->pend = p, c->cap_pend = cap;
    }
    pending *p = &c->pend[c->n_pend++];
    p->task = (size_t)ti;
    p->s = s;
    strcpy(p->ref, r->reference);
    return HL_OK;
}

hl_err hl_cal_load(const char *path, const char *task_type, hl_cal_data *d, char *msg, size_t msg_len) {
    memset(d, 0, sizeof *d);
    load_ctx *c = calloc(1, sizeof *c);
    if (!c) return HL_ERR_NOMEM;
    c->d = d;
    c->task_filter = task_type;
    hl_ledger_read_stats st;
    hl_err e = hl_ledger_read(path, 0, on_entry, c, &st, msg, msg_len);
    if (e == HL_ERR_LIMIT) snprintf(msg, msg_len, "%s: more than %d task types", path, HL_CAL_MAX_TASKS);
    else if (e == HL_ERR_NOMEM) snprintf(msg, msg_len, "out of memory reading %s", path);
    for (size_t i = 0; !e && i < c->n_pend; i++) /* eval lines whose reference is a cloud backend */
        if (tallied(&c->cloud, c->pend[i].ref)) {
            e = add_sample(&d->tasks[c->pend[i].task], &c->pend[i].s);
            d->samples++;
        }
    if (!e) {
        d->bad_lines = st.malformed;
        if (st.malformed) snprintf(msg, msg_len, "line %zu: %s", st.first_bad_line, st.first_bad);
        most_used(&c->local, d->local_backend, sizeof d->local_backend);
        most_used(&c->cloud, d->cloud_backend, sizeof d->cloud_backend);
    }
    free(c->pend);
    free(c);
    return e;
}

void hl_cal_data_release(hl_cal_data *d) {
    for (size_t i = 0; i < d->n_tasks; i++) {
        free(d->tasks[i].name);
        free(d->tasks[i].v);
    }
    memset(d, 0, sizeof *d);
}

/* ---- the sweep -------------------------------------------------------------------------- */

typedef struct pair { float v; bool agree; } pair;

static int pair_desc(const void *x, const void *y) {
    float a = ((const pair *)x)->v, b = ((const pair *)y)->v;
    return a > b ? -1 : a < b;
}

/* ROC AUC of v for predicting agree (Mann-Whitney with mid-ranks for ties), over p sorted
 * descending; < 0 when either class is empty. */
static double auc_sorted(const pair *p, size_t n) {
    size_t pos = 0;
    double rank_sum = 0; /* ranks ascending: the last element has rank 1 */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j].v == p[i].v) j++;
        double mid = (double)(n - j + 1 + n - i) / 2; /* ranks n-j+1 .. n-i */
        for (size_t k = i; k < j; k++)
            if (p[k].agree) pos++, rank_sum += mid;
        i = j;
    }
    size_t neg = n - pos;
    if (!pos || !neg) return -1;
    return (rank_sum - (double)pos * (double)(pos + 1) / 2) / ((double)pos * (double)neg);
}

/* The samples with signal k known, sorted by it descending, into p (room for t->n). */
static size_t known(const hl_cal_task *t, int k, pair *p, size_t *agreeing) {
    size_t n = 0;
    *agreeing = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].s[k] >= 0) {
            p[n++] = (pair){t->v[i].s[k], t->v[i].agree};
            *agreeing += t->v[i].agree;
        }
    qsort(p, n, sizeof *p, pair_desc);
    return n;
}

/* Every candidate over p (sorted descending): "escalate all", then each distinct value. */
static hl_err sweep(const pair *p, size_t n, hl_cal_result *r) {
    r->curve = malloc((n + 1) * sizeof *r->curve);
    if (!r->curve) return HL_ERR_NOMEM;
    r->curve[0] = (hl_cal_point){INFINITY, 1, 1, n, n};
    r->n_curve = 1;
    size_t kept_agree = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j].v == p[i].v) kept_agree += p[j++].agree;
        size_t esc = n - j, agreeing = kept_agree + esc;
        r->curve[r->n_curve++] = (hl_cal_point){p[i].v, (double)agreeing / (double)n, (double)esc / (double)n, esc, agreeing};
        i = j;
    }
    return HL_OK;
}

hl_err hl_cal_compute(const hl_cal_data *d, const hl_cal_task *t, double target, int signal, double cloud_cost,
                      hl_cal_result *r) {
    memset(r, 0, sizeof *r);
    r->task = t->name;
    pair *p = malloc((t->n ? t->n : 1) * sizeof *p);
    if (!p) return HL_ERR_NOMEM;
    int best = -1;
    for (int k = 0; k < HL_CAL_SIGNALS; k++) {
        r->n[k] = known(t, k, p, &r->agreeing[k]);
        r->auc[k] = r->n[k] >= HL_CAL_MIN_SAMPLES ? auc_sorted(p, r->n[k]) : -1;
        if (r->auc[k] >= 0 && (best < 0 || r->auc[k] > r->auc[best])) best = k;
    }
    r->signal = (hl_conf_signal)(signal >= 0 ? signal : best >= 0 ? best : HL_SIGNAL_GEOMEAN);
    size_t n = known(t, (int)r->signal, p, &r->agreeing[r->signal]);
    r->enough = n >= HL_CAL_MIN_SAMPLES;
    hl_err e = r->enough ? sweep(p, n, r) : HL_OK;
    free(p);
    if (e || !r->enough) return e;
    for (size_t i = 0; i < r->n_curve; i++) /* smallest cloud share reaching the target */
        if (r->curve[i].agreement >= target && r->curve[i].escalated <= r->curve[r->chosen].escalated) r->chosen = i;
    hl_report_wilson(r->curve[r->chosen].agreeing, n, &r->ci_lo, &r->ci_hi);
    r->cloud_cost = cloud_cost >= 0      ? cloud_cost
                    : t->cloud_cost_n    ? t->cloud_cost_sum / (double)t->cloud_cost_n
                    : d->cloud_cost_n    ? d->cloud_cost_sum / (double)d->cloud_cost_n
                                         : -1;
    return HL_OK;
}

void hl_cal_result_release(hl_cal_result *r) {
    free(r->curve);
    memset(r, 0, sizeof *r);
}

/* ---- rendering -------------------------------------------------------------------------- */

#define P(...) (e = e ? e : hl_buf_printf(out, __VA_ARGS__))

static const char *task_label(const char *t) { return t ? t : "(no task type)"; }

/* The rows shown: about HL_CAL_CURVE_ROWS spread over the curve, the chosen one always. */
static bool shown_row(const hl_cal_result *r, size_t i) {
    if (i == r->chosen || i == 0 || i + 1 == r->n_curve || r->n_curve <= HL_CAL_CURVE_ROWS) return true;
    size_t step = (r->n_curve + HL_CAL_CURVE_ROWS - 2) / (HL_CAL_CURVE_ROWS - 1);
    return i % step == 0;
}

static hl_err text_curve(const hl_cal_result *r, hl_buf *out) {
    hl_err e = HL_OK;
    P("  curve (%s; answers at or above the threshold stay local):\n", signal_names[r->signal]);
    P("    %-12s %10s %12s %16s\n", "threshold", "agreement", "cloud share", "cloud $/1k req");
    for (size_t i = 0; i < r->n_curve; i++) {
        if (!shown_row(r, i)) continue;
        const hl_cal_point *c = &r->curve[i];
        char th[32], cost[32];
        if (isinf(c->threshold)) snprintf(th, sizeof th, "all cloud");
        else snprintf(th, sizeof th, "%.4f", c->threshold);
        if (r->cloud_cost >= 0) snprintf(cost, sizeof cost, "%.4f", c->cloud_share * r->cloud_cost * 1000);
        else snprintf(cost, sizeof cost, "unknown");
        P("    %-12s %9.1f%% %11.1f%% %16s%s\n", th, 100 * c->agreement, 100 * c->cloud_share, cost,
          i == r->chosen ? "  <- chosen" : "");
    }
    return e;
}

static hl_err text_task(const hl_cal_result *r, double target, hl_buf *out) {
    hl_err e = HL_OK;
    int best = -1;
    for (int k = 0; k < HL_CAL_SIGNALS; k++)
        if (r->auc[k] >= 0 && (best < 0 || r->auc[k] > r->auc[best])) best = k;
    P("\n%s\n", task_label(r->task));
    P("  %-8s %8s %10s %6s\n", "signal", "samples", "agreeing", "AUC");
    for (int k = 0; k < HL_CAL_SIGNALS; k++) {
        char auc[16] = "-";
        if (r->auc[k] >= 0) snprintf(auc, sizeof auc, "%.3f", r->auc[k]);
        P("  %-8s %8zu %10zu %6s%s\n", signal_names[k], r->n[k], r->agreeing[k], auc,
          k == best ? "  separates best" : "");
    }
    if (!r->enough) {
        P("  %zu samples with %s known: at least %d are needed; no threshold\n", r->n[r->signal],
          signal_names[r->signal], HL_CAL_MIN_SAMPLES);
        return e;
    }
    if (!e) e = text_curve(r, out);
    const hl_cal_point *c = &r->curve[r->chosen];
    size_t n = r->n[r->signal];
    if (isinf(c->threshold))
        P("  chosen: no threshold keeps local answers at %.1f%% agreement: send %s to the cloud\n", 100 * target,
          task_label(r->task));
    else
        P("  chosen: escalate.below %.4f, signal %s\n", c->threshold, signal_names[r->signal]);
    P("    agreement %.1f%% (95%% CI %.1f%%-%.1f%%) on %zu samples; cloud share %.1f%%", 100 * c->agreement,
      100 * r->ci_lo, 100 * r->ci_hi, n, 100 * c->cloud_share);
    if (r->cloud_cost >= 0) P("; cloud $%.4f per 1k requests\n", c->cloud_share * r->cloud_cost * 1000);
    else P("; cloud cost unknown (no priced cloud line; give --cloud-price)\n");
    return e;
}

hl_err hl_cal_render_text(const hl_cal_data *d, const hl_cal_result *r, size_t n, double target, hl_buf *out) {
    hl_err e = HL_OK;
    P("calibrate: target agreement %.1f%%; %zu ledger records, %zu samples (local answers scored against the "
      "cloud's)\n", 100 * target, d->records, d->samples);
    for (size_t i = 0; i < n && !e; i++) e = text_task(&r[i], target, out);
    return e;
}

static hl_err json_num_or_null(hl_buf *out, double x, bool known) {
    return known ? hl_buf_double(out, x) : hl_buf_puts(out, "null");
}

static hl_err json_task(const hl_cal_result *r, hl_buf *out) {
    hl_err e = HL_OK;
    P("{\"task_type\":");
    if (!e) e = r->task ? hl_buf_json_str(out, r->task, strlen(r->task)) : hl_buf_puts(out, "null");
    P(",\"signal\":\"%s\",\"enough\":%s,\"signals\":{", signal_names[r->signal], r->enough ? "true" : "false");
    for (int k = 0; k < HL_CAL_SIGNALS; k++) {
        P("%s\"%s\":{\"samples\":%zu,\"agreeing\":%zu,\"auc\":", k ? "," : "", signal_names[k], r->n[k], r->agreeing[k]);
        if (!e) e = json_num_or_null(out, r->auc[k], r->auc[k] >= 0);
        P("}");
    }
    P("},\"cloud_cost_per_request\":");
    if (!e) e = json_num_or_null(out, r->cloud_cost, r->enough && r->cloud_cost >= 0);
    P(",\"curve\":[");
    bool first = true;
    for (size_t i = 0; i < r->n_curve && !e; i++) {
        if (!shown_row(r, i)) continue;
        const hl_cal_point *c = &r->curve[i];
        P("%s{\"threshold\":", first ? "" : ",");
        first = false;
        if (!e) e = json_num_or_null(out, c->threshold, !isinf(c->threshold));
        P(",\"agreement\":%.6f,\"cloud_share\":%.6f}", c->agreement, c->cloud_share);
    }
    P("],\"chosen\":");
    if (!r->enough) return e ? e : hl_buf_puts(out, "null}");
    const hl_cal_point *c = &r->curve[r->chosen];
    P("{\"threshold\":");
    if (!e) e = json_num_or_null(out, c->threshold, !isinf(c->threshold));
    P(",\"agreement\":%.6f,\"ci_low\":%.6f,\"ci_high\":%.6f,\"samples\":%zu,\"cloud_share\":%.6f}}", c->agreement,
      r->ci_lo, r->ci_hi, r->n[r->signal], c->cloud_share);
    return e;
}

hl_err hl_cal_render_json(const hl_cal_data *d, const hl_cal_result *r, size_t n, double target, hl_buf *out) {
    hl_err e = HL_OK;
    P("{\"target\":%.6f,\"min_samples\":%d,\"records\":%zu,\"samples\":%zu,\"task_types\":[", target,
      HL_CAL_MIN_SAMPLES, d->records, d->samples);
    for (size_t i = 0; i < n && !e; i++) {
        if (i) P(",");
        if (!e) e = json_task(&r[i], out);
    }
    P("]}\n");
    return e;
}

/* ---- the config snippet ----------------------------------------------------------------- */

static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

static bool writable_task(const char *t) {
    if (!t || !*t || strlen(t) > 120) return false;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return false;
    return true;
}

static hl_err snippet_rule(const hl_cal_result *r, size_t idx, const char *local, const char *cloud, hl_buf *out) {
    hl_err e = HL_OK;
    char name[160];
    size_t n = (size_t)snprintf(name, sizeof name, "calibrated-");
    bool renamed = false;
    for (const char *p = r->task; *p && n + 1 < sizeof name; p++) {
        renamed |= !is_name_char(*p);
        name[n++] = is_name_char(*p) ? *p : '_';
    }
    name[n] = '\0';
    P("  - name: %s", name);
    if (renamed) P("-%zu", idx); /* two task types may sanitize alike */
    P("\n    when: {task_type: [\"");
    for (const char *p = r->task; *p && !e; p++) P(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    P("\"]}\n");
    const hl_cal_point *c = &r->curve[r->chosen];
    if (isinf(c->threshold)) {
        P("    to: [%s]   # no threshold reaches the target: the cloud answers\n", cloud);
    } else if (c->escalated == 0 && !(c->threshold > 0)) {
        P("    to: [%s]   # every local answer reaches the target: no escalation\n", local);
    } else {
        P("    to: [%s]\n    escalate: {below: %.6g, signal: %s, to: [%s]}", local, c->threshold,
          signal_names[r->signal], cloud);
        P("   # agreement %.1f%% (95%% CI %.1f%%-%.1f%%), cloud share %.1f%%, %zu samples\n", 100 * c->agreement,
          100 * r->ci_lo, 100 * r->ci_hi, 100 * c->cloud_share, r->n[r->signal]);
    }
    return e;
}

hl_err hl_cal_write_config(const hl_cal_result *r, size_t n, double target, const char *local_backend,
                           const char *cloud_backend, hl_buf *out) {
    hl_err e = HL_OK;
    P("# Written by `hybridllm calibrate --target %.4g`: escalation thresholds from measured agreement.\n"
      "# Put these rules in your config's `routes:` list, before the catch-all rule.\n", target);
    size_t rules = 0;
    for (size_t i = 0; i < n; i++) rules += r[i].enough && writable_task(r[i].task);
    P("routes:%s\n", rules ? "" : " []");
    for (size_t i = 0; i < n && !e; i++) {
        if (!r[i].enough) {
            P("  # %s: fewer than %d samples, no rule\n", writable_task(r[i].task) ? r[i].task : "(a task type)",
              HL_CAL_MIN_SAMPLES);
            continue;
        }
        if (!writable_task(r[i].task)) {
            P("  # %s: cannot be matched by a rule, not written\n", r[i].task ? "a task type with control characters"
                                                                           : "requests without a task type");
            continue;
        }
        e = snippet_rule(&r[i], i, local_backend, cloud_backend, out);
    }
    return e;
}
