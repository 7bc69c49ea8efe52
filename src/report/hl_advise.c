/* hl_advise: the break-even advisor (see hl_advise.h). The arithmetic is done once, in
 * hl_advise_compute(), which also writes each step as {label, value, formula}; the text and
 * JSON renderers only lay those out, so what is printed is exactly what was computed. */
#include "hl_advise.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_ledger.h"
#include "hl_pricing.h"
#include "hl_report.h"

/* ---- prices ---- */

const hl_price *hl_advise_price(const hl_config *cfg, const char *model, const char **source) {
    return hl_pricing_lookup(cfg, model, source);
}

/* ---- numbers as people read them ---- */

/* Numbers are returned by value in small structs, so that several can be formatted within
 * one printf call (the temporaries live until the end of the full expression). Up to 1e15
 * with 4 decimals fits a grouped (24 characters and a sign); past that, %g. */
typedef struct grpstr {
    char s[28];
} grpstr;

typedef struct numstr {
    char s[32];
} numstr;

/* x with `decimals` decimals (0..4) and thousands separators. */
static grpstr grouped(double x, int decimals) {
    grpstr r;
    char tmp[64];
    if (!isfinite(x) || fabs(x) >= 1e15) {
        snprintf(r.s, sizeof r.s, "%.4g", x);
        return r;
    }
    snprintf(tmp, sizeof tmp, "%.*f", decimals, fabs(x));
    bool neg = x < 0 && strspn(tmp, "0.") != strlen(tmp); /* never "-0.00" */
    const char *dot = strchr(tmp, '.');
    size_t intlen = dot ? (size_t)(dot - tmp) : strlen(tmp), o = 0;
    if (neg) r.s[o++] = '-';
    for (size_t i = 0; i < intlen; i++) {
        if (i && (intlen - i) % 3 == 0) r.s[o++] = ',';
        r.s[o++] = tmp[i];
    }
    snprintf(r.s + o, sizeof r.s - o, "%s", dot ? dot : "");
    return r;
}

static numstr usd(double x) {
    /* cents, except for the small sums of a short ledger or one request */
    grpstr g = grouped(x, fabs(x) >= 1 || x == 0 ? 2 : fabs(x) >= 0.01 ? 4 : 6);
    numstr r;
    if (g.s[0] == '-') snprintf(r.s, sizeof r.s, "-$%s", g.s + 1);
    else snprintf(r.s, sizeof r.s, "$%s", g.s);
    return r;
}

static grpstr tok(double x) { return grouped(round(x), 0); }

void hl_advise_fmt_count(double x, int decimals, char *buf, size_t len) {
    snprintf(buf, len, "%s", grouped(x, decimals).s);
}

void hl_advise_fmt_usd(double x, char *buf, size_t len) { snprintf(buf, len, "%s", usd(x).s); }

static numstr pct(double share) {
    numstr r;
    /* Under 1%, two significant digits: 0.04% is not "0.0%". */
    if (share > 0 && share < 0.01) snprintf(r.s, sizeof r.s, "%.2g%%", share * 100.0);
    else snprintf(r.s, sizeof r.s, "%.1f%%", share * 100.0);
    return r;
}

/* ---- the ledger ---- */

static bool is_simple_task(const char *t) {
    return t && (!strcmp(t, "classification") || !strcmp(t, "extraction"));
}

static bool is_complex_task(const char *t) {
    return t && (!strcmp(t, "code_generation") || !strcmp(t, "analysis") || !strcmp(t, "reasoning"));
}

/* The task type entry of name (NULL: ""), added when new; past HL_ADVISE_MAX_TASKS, the last
 * entry takes the rest as "(other)". */
static hl_advise_task *task_of(hl_advise_measured *m, const char *name) {
    if (!name) name = "";
    for (size_t i = 0; i < m->n_tasks; i++)
        if (!strcmp(m->tasks[i].name, name)) return &m->tasks[i];
    if (m->n_tasks == HL_ADVISE_MAX_TASKS) {
        hl_advise_task *t = &m->tasks[HL_ADVISE_MAX_TASKS - 1];
        snprintf(t->name, sizeof t->name, "(other)");
        return t;
    }
    hl_advise_task *t = &m->tasks[m->n_tasks++];
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* A scored line measures a local answer: a local line's score, or a cloud shadow's score
 * against the local answer it shadowed. A cloud eval line measures the cloud: not counted. */
static void measure_score(hl_advise_measured *m, const hl_ledger_record *l) {
    if (!l->scored || (l->cloud && !l->shadow)) return;
    hl_advise_task *t = task_of(m, l->task_type);
    t->scored++;
    t->agreed += l->agree;
    m->scored++;
}

static hl_err measure_line(void *ud, const hl_ledger_entry *e, size_t line_no) {
    (void)line_no;
    hl_advise_measured *m = ud;
    const hl_ledger_record *l = &e->rec;
    if (l->eval_run) { /* an offline eval run, not gateway traffic: its scores only */
        m->eval_lines++;
        measure_score(m, l);
        return HL_OK;
    }
    if (m->first_ts < 0 || l->timestamp < m->first_ts) m->first_ts = l->timestamp;
    if (l->timestamp > m->last_ts) m->last_ts = l->timestamp;
    if (l->cost_known) {
        if (l->cloud) m->cloud_cost_usd += l->cost_usd;
        else m->local_cost_usd += l->cost_usd;
    } else {
        m->unknown_cost++;
    }
    if (!l->cloud && l->usage.output_tokens > 0 && l->latency_ms > 0) {
        m->local_output_tokens += l->usage.output_tokens;
        m->local_gen_ms += l->latency_ms;
    }
    measure_score(m, l);
    if (l->shadow) { /* spent, but it answered no client */
        m->shadow_lines++;
        if (l->cost_known) m->shadow_cost_usd += l->cost_usd;
        return HL_OK;
    }
    if (!l->cloud) {
        m->local_busy_ms += l->latency_ms;
        m->local_tokens += l->usage.input_tokens + l->usage.output_tokens;
    }
    const char *status = l->status ? l->status : "ok"; /* the brief's records have none */
    if (!strcmp(status, "escalated")) {
        m->escalated++;
    } else if (!strcmp(status, "ok")) {
        m->requests++;
        if (l->cloud) m->cloud_requests++;
        else m->local_requests++;
        m->input_tokens += l->usage.input_tokens;
        m->output_tokens += l->usage.output_tokens;
        m->sensitive += l->sensitive;
        m->simple_tasks += is_simple_task(l->task_type);
        m->complex_tasks += is_complex_task(l->task_type);
        hl_advise_task *t = task_of(m, l->task_type);
        t->requests++;
        t->tokens += l->usage.input_tokens + l->usage.output_tokens;
    } else {
        m->failed++;
    }
    return HL_OK;
}

hl_err hl_advise_measure(const char *path, double period_days, hl_advise_measured *m, char *errbuf,
                         size_t errbuf_len) {
    memset(m, 0, sizeof *m);
    m->path = path;
    m->first_ts = m->last_ts = -1;
    hl_ledger_read_stats st;
    hl_err rc = hl_ledger_read(path, 0, measure_line, m, &st, errbuf, errbuf_len);
    if (rc) return rc;
    m->lines = st.records;
    m->bad_lines = st.malformed;
    m->duplicate_lines = st.duplicates + st.conflicts;
    if (!m->requests || m->input_tokens + m->output_tokens <= 0) {
        snprintf(errbuf, errbuf_len, "%s: no served request with tokens (status \"ok\") in %zu records%s%s", path,
                 m->lines, st.malformed ? "; the first line skipped: " : "", st.malformed ? st.first_bad : "");
        return HL_ERR_INVAL;
    }
    m->period_days = period_days > 0 ? period_days : (m->last_ts - m->first_ts) / 86400.0;
    if (!(m->period_days > 0)) {
        snprintf(errbuf, errbuf_len,
                 "%s: the records cover no span of time (one timestamp); pass --period-days D to say how long "
                 "the ledger covers",
                 path);
        return HL_ERR_INVAL;
    }
    m->month_factor = 30.0 / m->period_days;
    if (st.malformed)
        snprintf(errbuf, errbuf_len, "%s:%zu: not a ledger record: %s", path, st.first_bad_line, st.first_bad);
    return HL_OK;
}

/* ---- the advice ---- */

void hl_advise_input_defaults(hl_advise_input *in) {
    memset(in, 0, sizeof *in);
    in->tokens_per_month = HL_ADVISE_BRIEF_TOKENS;
    in->input_share = HL_ADVISE_INPUT_SHARE;
    in->cloud_model = HL_ADVISE_CLOUD_MODEL;
    in->hardware_usd = HL_ADVISE_HARDWARE_USD;
    in->amortize_months = HL_ADVISE_AMORTIZE_MONTHS;
    in->power_usd_month = HL_ADVISE_POWER_USD_MONTH;
    in->busy_usd_hour = HL_ADVISE_BUSY_USD_HOUR;
    in->brief_scenario = true;
    in->target = HL_ADVISE_TARGET;
    in->min_samples = HL_ADVISE_MIN_SAMPLES;
}

const char *hl_advice_name(hl_advice a) {
    switch (a) {
    case HL_ADVICE_CLOUD: return "cloud";
    case HL_ADVICE_LOCAL: return "local";
    case HL_ADVICE_HYBRID: return "hybrid";
    case HL_ADVICE_MEASURE: return "measure (cloud now, local on a shadow share)";
    }
    return "?";
}

typedef struct brief_headline {
    const char *name;
    double in, out, headline;
} brief_headline;

/* "GPT-4o: ~$1,800/month token cost", "Claude 3.5 Sonnet: ~$1,080/month token cost". */
static const brief_headline brief_headlines[] = {
    {"GPT-4o", 5.00, 15.00, 1800.0},
    {"Claude 3.5 Sonnet", 3.00, 15.00, 1080.0},
};

bool hl_advise_brief_headline(const char *model, double *headline_usd, double *in_per_mtok, double *out_per_mtok) {
    const brief_headline *h = NULL;
    if (!model) return false;
    /* gpt-4o and its dated snapshots (gpt-4o-2024-05-13), not gpt-4o-mini */
    if (!strcmp(model, "gpt-4o") || (!strncmp(model, "gpt-4o-", 7) && model[7] >= '0' && model[7] <= '9'))
        h = &brief_headlines[0];
    else if (!strncmp(model, "claude-3-5-sonnet", 17))
        h = &brief_headlines[1];
    if (!h) return false;
    if (headline_usd) *headline_usd = h->headline;
    if (in_per_mtok) *in_per_mtok = h->in;
    if (out_per_mtok) *out_per_mtok = h->out;
    return true;
}

static void add_step(hl_advise_result *r, int section, const char *label, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_step(hl_advise_result *r, int section, const char *label, const char *value, const char *fmt, ...) {
    if (r->n_steps >= (int)(sizeof r->steps / sizeof r->steps[0])) return;
    hl_advise_step *s = &r->steps[r->n_steps++];
    s->section = section;
    snprintf(s->label, sizeof s->label, "%s", label);
    snprintf(s->value, sizeof s->value, "%s", value);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->formula, sizeof s->formula, fmt, ap);
    va_end(ap);
}

static void add_reason(hl_advise_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_reason(hl_advise_result *r, const char *fmt, ...) {
    if (r->n_reasons >= (int)(sizeof r->reasons / sizeof r->reasons[0])) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reasons[r->n_reasons++], sizeof r->reasons[0], fmt, ap);
    va_end(ap);
}

static void iso_time(double t, char *buf, size_t len) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void workload_steps(const hl_advise_input *in, hl_advise_result *r) {
    const hl_advise_measured *m = in->measured;
    char v[72];
    if (m) {
        double served = (double)(m->input_tokens + m->output_tokens);
        snprintf(v, sizeof v, "%zu lines", m->lines);
        char skipped[160] = "";
        if (m->bad_lines && m->duplicate_lines)
            snprintf(skipped, sizeof skipped, " (%zu more lines skipped: not a ledger record; %zu repeated a record)",
                     m->bad_lines, m->duplicate_lines);
        else if (m->bad_lines)
            snprintf(skipped, sizeof skipped, " (%zu more lines skipped: not a ledger record)", m->bad_lines);
        else if (m->duplicate_lines)
            snprintf(skipped, sizeof skipped, " (%zu more lines skipped: they repeated a record)", m->duplicate_lines);
        add_step(r, 0, "ledger records", v, "%s%s", m->path, skipped);
        char a[32] = "?", b[32] = "?";
        if (m->first_ts >= 0) iso_time(m->first_ts, a, sizeof a), iso_time(m->last_ts, b, sizeof b);
        snprintf(v, sizeof v, "%.2f days", m->period_days);
        add_step(r, 0, "period covered", v, "%s to %s%s", a, b,
                 fabs(m->period_days - (m->last_ts - m->first_ts) / 86400.0) > 1e-9 ? " (set by --period-days)" : "");
        snprintf(v, sizeof v, "x %.3f", m->month_factor);
        add_step(r, 0, "to a 30-day month", v, "= 30 days / %.2f days%s", m->period_days,
                 m->period_days < 7 ? " (under a week: a rough extrapolation)" : "");
        snprintf(v, sizeof v, "%zu", m->requests);
        add_step(r, 0, "served requests", v, "status ok: %zu local, %zu cloud; also %zu escalated and %zu failed attempts",
                 m->local_requests, m->cloud_requests, m->escalated, m->failed);
        add_step(r, 0, "tokens served", tok(served).s, "= %s input + %s output", tok((double)m->input_tokens).s,
                 tok((double)m->output_tokens).s);
        add_step(r, 0, "tokens per month", tok(r->tokens_per_month).s, "= %s x %.3f", tok(served).s, m->month_factor);
        add_step(r, 0, "input share", pct(r->input_share).s, "= %s / %s (measured)", tok((double)m->input_tokens).s,
                 tok(served).s);
        double spend = m->cloud_cost_usd + m->local_cost_usd;
        add_step(r, 0, "measured spend", usd(spend).s, "= %s cloud + %s local over the period (every attempt's cost_usd%s)",
                 usd(m->cloud_cost_usd).s, usd(m->local_cost_usd).s, m->unknown_cost ? "; some unpriced" : "");
        add_step(r, 0, "measured per month", usd(spend * m->month_factor).s, "= %s x %.3f", usd(spend).s,
                 m->month_factor);
        snprintf(v, sizeof v, "%zu", m->sensitive);
        add_step(r, 0, "sensitive requests", v, "%s of served requests: these must stay local",
                 pct((double)m->sensitive / (double)m->requests).s);
        snprintf(v, sizeof v, "%zu / %zu / %zu", m->simple_tasks, m->complex_tasks,
                 m->requests - m->simple_tasks - m->complex_tasks);
        add_step(r, 0, "task mix", v, "classification+extraction / code+analysis+reasoning / other");
    } else {
        add_step(r, 0, "tokens per month", tok(r->tokens_per_month).s, "%s",
                 in->brief_scenario ? "the product brief's scenario: \"10M tokens per month\"" : "--tokens-per-month");
        add_step(r, 0, "input share", pct(r->input_share).s, "%s",
                 fabs(r->input_share - HL_ADVISE_INPUT_SHARE) < 1e-12
                     ? "assumed: the brief gives no split; its logged example is 450 in / 200 out = 69% input"
                     : "--input-share");
    }
    add_step(r, 0, "input tokens", tok(r->input_tokens).s, "= %s x %.3f", tok(r->tokens_per_month).s, r->input_share);
    add_step(r, 0, "output tokens", tok(r->output_tokens).s, "= %s - %s", tok(r->tokens_per_month).s,
             tok(r->input_tokens).s);
}

/* Checks the inputs, sets the workload (tokens per month, input share) and finds the price. */
static hl_err compute_inputs(const hl_advise_input *in, hl_advise_result *r, const hl_price **pp, const char **psource,
                             char *errbuf, size_t errbuf_len) {
    const hl_advise_measured *m = in->measured;
    if (!in->cloud_model || !*in->cloud_model) {
        snprintf(errbuf, errbuf_len, "no cloud model given");
        return HL_ERR_INVAL;
    }
    if (!(in->hardware_usd >= 0) || !(in->amortize_months > 0) || !(in->power_usd_month >= 0) ||
        !(in->busy_usd_hour >= 0)) {
        snprintf(errbuf, errbuf_len, "hardware and power must be >= 0 and the amortization > 0 months");
        return HL_ERR_INVAL;
    }
    if (!(in->target > 0 && in->target <= 1) || in->min_samples < 1 || !(in->throughput_tps >= 0) ||
        !isfinite(in->throughput_tps)) {
        snprintf(errbuf, errbuf_len, "the target must be within (0, 1], the minimum samples >= 1 and the "
                                     "throughput >= 0");
        return HL_ERR_INVAL;
    }
    if (m) {
        double served = (double)(m->input_tokens + m->output_tokens);
        if (!(served > 0) || !(m->month_factor > 0)) {
            snprintf(errbuf, errbuf_len, "the ledger has no served tokens");
            return HL_ERR_INVAL;
        }
        r->tokens_per_month = served * m->month_factor;
        r->input_share = (double)m->input_tokens / served;
    } else {
        r->tokens_per_month = in->tokens_per_month;
        r->input_share = in->input_share;
    }
    if (!(r->tokens_per_month >= 0) || !isfinite(r->tokens_per_month) || !(r->input_share >= 0) ||
        !(r->input_share <= 1)) {
        snprintf(errbuf, errbuf_len, "tokens per month must be >= 0 and the input share within 0..1");
        return HL_ERR_INVAL;
    }
    const char *source = NULL;
    const hl_price *p = hl_advise_price(in->prices, in->cloud_model, &source);
    if (!p) {
        snprintf(errbuf, errbuf_len,
                 "no price for model '%s': add it to `prices` in a config given with --config, or use "
                 "gpt-4o, gpt-4o-mini or claude-3-5-sonnet-20241022 (built in)",
                 in->cloud_model);
        return HL_ERR_NOTFOUND;
    }
    *pp = p;
    *psource = source;
    return HL_OK;
}

/* Local throughput (output tokens per second of latency): stated, measured, or the brief's. */
static void throughput(const hl_advise_input *in, hl_advise_result *r) {
    const hl_advise_measured *m = in->measured;
    if (in->throughput_tps > 0) {
        r->throughput_tps = in->throughput_tps;
        r->throughput_source = "--throughput";
    } else if (m && m->local_output_tokens > 0 && m->local_gen_ms > 0) {
        r->throughput_tps = (double)m->local_output_tokens / (m->local_gen_ms / 1000.0);
        r->throughput_source = "measured: the ledger's local output tokens / their latency, one request at a time";
    } else {
        r->throughput_tps = HL_ADVISE_REQ_OUTPUT_TOKENS / (HL_ADVISE_REQ_LOCAL_MS / 1000.0);
        r->throughput_source = "the brief's CostTracker example: 200 output tokens in 1,800 ms";
    }
}

/* Machines for a load of busy hours: each gives HL_ADVISE_MACHINE_HOURS; at least one. */
static int machines_for(double hours) {
    double k = ceil(hours / HL_ADVISE_MACHINE_HOURS - 1e-9);
    return k < 1 ? 1 : k > 1e6 ? 1000000 : (int)k;
}

/* The smallest local share of the tokens at which a hybrid costs less than all-cloud: at share
 * s it needs k = machines_for(s x gpu_hours) machines and saves s x cloud - k x machine. Within
 * k machines the least s is k x machine / cloud, if k machines can serve it. < 0: none. */
static double break_even_share(const hl_advise_result *r) {
    if (!(r->cloud_usd > 0)) return -1;
    for (int k = 1; k <= r->machines; k++) {
        double s = k * r->machine_usd / r->cloud_usd;
        if (s > 1) return -1;
        if (s * r->gpu_hours <= k * HL_ADVISE_MACHINE_HOURS + 1e-9) return s;
    }
    return -1;
}

/* The arithmetic: every figure of the result from the workload and the price. */
static void compute_figures(const hl_advise_input *in, hl_advise_result *r, const hl_price *p) {
    const hl_advise_measured *m = in->measured;
    const double T = r->tokens_per_month, share = r->input_share;
    r->input_tokens = T * share;
    r->output_tokens = T - r->input_tokens;
    r->cloud_input_usd = r->input_tokens / 1e6 * p->input_per_mtok;
    r->cloud_output_usd = r->output_tokens / 1e6 * p->output_per_mtok;
    r->cloud_usd = r->cloud_input_usd + r->cloud_output_usd;
    r->blended_per_mtok = share * p->input_per_mtok + (1 - share) * p->output_per_mtok;
    throughput(in, r);
    r->gpu_hours = r->output_tokens / r->throughput_tps / 3600.0;
    r->machines = machines_for(r->gpu_hours);
    r->machine_usd = in->hardware_usd / in->amortize_months + in->power_usd_month;
    r->hardware_month_usd = r->machines * in->hardware_usd / in->amortize_months;
    r->local_usd = r->hardware_month_usd + r->machines * in->power_usd_month;
    r->saving_usd = r->cloud_usd - r->local_usd;
    double net = r->cloud_usd - r->machines * in->power_usd_month;
    r->months_to_recover = net > 0 ? r->machines * in->hardware_usd / net : -1;
    r->pays_back = r->months_to_recover >= 0 && r->months_to_recover <= in->amortize_months;
    /* Break-even for one machine, if one machine can serve that volume. */
    double per_machine_tokens = share < 1 ? r->throughput_tps * 3600.0 * HL_ADVISE_MACHINE_HOURS / (1 - share) : INFINITY;
    r->break_even_tokens = r->blended_per_mtok > 0 ? r->machine_usd / r->blended_per_mtok * 1e6 : -1;
    if (r->break_even_tokens > per_machine_tokens) r->break_even_tokens = -1;
    r->six_month_tokens =
        r->blended_per_mtok > 0 ? (in->hardware_usd / 6.0 + in->power_usd_month) / r->blended_per_mtok * 1e6 : -1;
    r->break_even_share = break_even_share(r);
    r->busy_ms_per_token = HL_ADVISE_REQ_LOCAL_MS / HL_ADVISE_REQ_TOKENS;
    if (m && m->local_tokens > 0 && m->local_busy_ms > 0) {
        r->busy_ms_per_token = m->local_busy_ms / (double)m->local_tokens;
        r->busy_measured = true;
    }
    r->busy_requests = T / HL_ADVISE_REQ_TOKENS;
    r->busy_hours = T * r->busy_ms_per_token / 3.6e6;
    r->busy_usd = r->busy_hours * in->busy_usd_hour;
    r->cover_hours = in->busy_usd_hour > 0 ? r->local_usd / in->busy_usd_hour : -1;
    r->brief_note = !m && fabs(T - HL_ADVISE_BRIEF_TOKENS) < 0.5 &&
                    (in->brief_scenario || hl_advise_brief_headline(in->cloud_model, NULL, NULL, NULL));
}

/* Section 1 of the steps: the cloud's cost. */
static void cloud_steps(const hl_advise_input *in, hl_advise_result *r, const hl_price *p, const char *source) {
    const hl_advise_measured *m = in->measured;
    const double share = r->input_share;
    char v[72];
    snprintf(v, sizeof v, "%s / %s", usd(p->input_per_mtok).s, usd(p->output_per_mtok).s);
    add_step(r, 1, "price per 1M in / out", v, "%s%s%s (%s)", in->cloud_model, strcmp(p->model, in->cloud_model) ? " priced as " : "",
             strcmp(p->model, in->cloud_model) ? p->model : "", source);
    add_step(r, 1, "input", usd(r->cloud_input_usd).s, "= %s / 1M x %s", tok(r->input_tokens).s,
             usd(p->input_per_mtok).s);
    add_step(r, 1, "output", usd(r->cloud_output_usd).s, "= %s / 1M x %s", tok(r->output_tokens).s,
             usd(p->output_per_mtok).s);
    add_step(r, 1, "cloud per month", usd(r->cloud_usd).s, "= %s + %s", usd(r->cloud_input_usd).s,
             usd(r->cloud_output_usd).s);
    snprintf(v, sizeof v, "%s per 1M", usd(r->blended_per_mtok).s);
    add_step(r, 1, "blended price", v, "= %.3f x %s + %.3f x %s", share, usd(p->input_per_mtok).s, 1 - share,
             usd(p->output_per_mtok).s);
    if (m) {
        double period_cloud = r->cloud_usd / m->month_factor, spend = m->cloud_cost_usd + m->local_cost_usd;
        add_step(r, 1, "all-cloud, the period", usd(period_cloud).s, "= %s / %.3f: the served tokens at this price",
                 usd(r->cloud_usd).s, m->month_factor);
        add_step(r, 1, "saved against all-cloud", usd(period_cloud - spend).s, "= %s - %s measured; %s per month",
                 usd(period_cloud).s, usd(spend).s, usd((period_cloud - spend) * m->month_factor).s);
    }
}

/* Section 2: the local hardware's cost, and the brief's busy-time view of it. */
static void local_steps(const hl_advise_input *in, hl_advise_result *r) {
    const double T = r->tokens_per_month;
    char v[72];
    bool hw_default = in->hardware_usd == HL_ADVISE_HARDWARE_USD && in->amortize_months == HL_ADVISE_AMORTIZE_MONTHS;
    snprintf(v, sizeof v, "%.1f tokens/s", r->throughput_tps);
    add_step(r, 2, "local throughput", v, "output tokens per second of latency: %s", r->throughput_source);
    snprintf(v, sizeof v, "%s h/month", grouped(r->gpu_hours, 1).s);
    add_step(r, 2, "busy GPU hours", v, "= %s output tokens / %.1f per s / 3,600", tok(r->output_tokens).s,
             r->throughput_tps);
    snprintf(v, sizeof v, "%d", r->machines);
    add_step(r, 2, "machines needed", v, "= %s h / %.0f busy hours a machine gives a month, rounded up", 
             grouped(r->gpu_hours, 1).s, HL_ADVISE_MACHINE_HOURS);
    if (r->machines == 1)
        add_step(r, 2, "hardware", usd(r->hardware_month_usd).s, "= %s / %g months%s", usd(in->hardware_usd).s,
                 in->amortize_months, hw_default ? " (the brief: RTX 4070 ~$550, 3-year amortization)" : "");
    else
        add_step(r, 2, "hardware", usd(r->hardware_month_usd).s, "= %d machines x %s / %g months%s", r->machines,
                 usd(in->hardware_usd).s, in->amortize_months,
                 hw_default ? " (the brief: RTX 4070 ~$550, 3-year amortization)" : "");
    add_step(r, 2, "power", usd(in->power_usd_month).s, "%s",
             in->power_usd_month == HL_ADVISE_POWER_USD_MONTH
                 ? "per month: our default, the brief gives no electricity figure (--power-usd-month)"
                 : "per month (--power-usd-month)");
    if (r->machines == 1)
        add_step(r, 2, "local per month", usd(r->local_usd).s, "= %s + %s", usd(r->hardware_month_usd).s,
                 usd(in->power_usd_month).s);
    else
        add_step(r, 2, "local per month", usd(r->local_usd).s, "= %s + %d x %s power", usd(r->hardware_month_usd).s,
                 r->machines, usd(in->power_usd_month).s);
    if (r->busy_measured)
        add_step(r, 2, "busy-time view", usd(r->busy_usd).s,
                 "= %s tokens x %.3f ms/token (measured locally) = %.3g h x $%g/h", tok(T).s, r->busy_ms_per_token,
                 r->busy_hours, in->busy_usd_hour);
    else
        add_step(r, 2, "busy-time view", usd(r->busy_usd).s,
                 "= %s requests of 650 tokens x 1,800 ms = %.3g h x $%g/h (the brief's CostTracker example)",
                 tok(r->busy_requests).s, r->busy_hours, in->busy_usd_hour);
    if (r->cover_hours >= 0) {
        snprintf(v, sizeof v, "%.0f busy h/month", r->cover_hours);
        add_step(r, 2, "busy rate pays local at", v, "= %s / $%g per hour (%.0f%% of a 720-hour month)",
                 usd(r->local_usd).s, in->busy_usd_hour, r->cover_hours / 720.0 * 100);
    }
}

/* Section 3: break-even. */
static void break_even_steps(const hl_advise_input *in, hl_advise_result *r) {
    char v[72];
    snprintf(v, sizeof v, "%s per month", usd(r->saving_usd).s);
    add_step(r, 3, "saving with local", v, "= %s cloud - %s local%s", usd(r->cloud_usd).s, usd(r->local_usd).s,
             r->saving_usd < 0 ? ": the cloud is cheaper" : "");
    char power[48];
    if (r->machines == 1) snprintf(power, sizeof power, "%s power", usd(in->power_usd_month).s);
    else snprintf(power, sizeof power, "%d x %s power", r->machines, usd(in->power_usd_month).s);
    if (r->pays_back) {
        snprintf(v, sizeof v, "%.1f months", r->months_to_recover);
        add_step(r, 3, "hardware recovered in", v, "= %s%s / (%s cloud - %s)", r->machines > 1 ? "machines x " : "",
                 usd(in->hardware_usd).s, usd(r->cloud_usd).s, power);
    } else if (r->months_to_recover >= 0) {
        add_step(r, 3, "hardware recovered in", "never",
                 "%.1f months, longer than the hardware's %g-month life: it never pays back", r->months_to_recover,
                 in->amortize_months);
    } else {
        add_step(r, 3, "hardware recovered in", "never", "the cloud costs %s a month, no more than the power (%s)",
                 usd(r->cloud_usd).s, usd(r->machines * in->power_usd_month).s);
    }
    if (r->break_even_tokens >= 0) {
        snprintf(v, sizeof v, "%s tokens/month", tok(r->break_even_tokens).s);
        add_step(r, 3, "break-even volume", v, "= %s / %s per 1M: above it local is cheaper", usd(r->machine_usd).s,
                 usd(r->blended_per_mtok).s);
        snprintf(v, sizeof v, "%s tokens/month", tok(r->six_month_tokens).s);
        add_step(r, 3, "6-month payback from", v, "= (%s / 6 + %s) / %s per 1M", usd(in->hardware_usd).s,
                 usd(in->power_usd_month).s, usd(r->blended_per_mtok).s);
    } else if (r->blended_per_mtok > 0) {
        add_step(r, 3, "break-even volume", "none",
                 "a machine's month of output at this throughput is worth less in the cloud than the machine");
    }
    if (r->break_even_share >= 0) {
        snprintf(v, sizeof v, "%s of the tokens", pct(r->break_even_share).s);
        add_step(r, 3, "hybrid break-even share", v,
                 "= %s hardware and power / %s cloud: a machine costs the same whatever share it serves",
                 usd(r->break_even_share * r->cloud_usd).s, usd(r->cloud_usd).s);
    } else {
        add_step(r, 3, "hybrid break-even share", "none", "even all-local costs more than the cloud (%s vs %s)",
                 usd(r->local_usd).s, usd(r->cloud_usd).s);
    }
}

/* Question 1: volume, the brief's tiers, checked against the arithmetic. */
static void volume_question(hl_advise_result *r, const char *months) {
    const double T = r->tokens_per_month;
    char (*q)[480] = r->matrix[0];
    if (T < 500e3) {
        snprintf(r->tier, sizeof r->tier, "under 500K");
        snprintf(q[0], sizeof q[0], "%s tokens/month is under 500K: \"Cloud APIs are cheaper. Use Claude 3.5 Sonnet.\"",
                 tok(T).s);
        snprintf(q[1], sizeof q[1], "cloud %s vs local %s per month%s", usd(r->cloud_usd).s, usd(r->local_usd).s,
                 r->saving_usd > 0 ? ": local is cheaper at these prices, but the brief counts the setup overhead" : "");
    } else if (T < 5e6) {
        snprintf(r->tier, sizeof r->tier, "500K-5M");
        snprintf(q[0], sizeof q[0],
                 "%s tokens/month is 500K-5M: \"Break-even zone. Depends on accuracy needs and privacy constraints.\"",
                 tok(T).s);
        snprintf(q[1], sizeof q[1], "%s", ""); /* which side wins, by how much */
        if (r->saving_usd <= 0)
            snprintf(q[1], sizeof q[1], "no zone at these prices: the cloud wins, %s vs local %s per month (local costs "
                                        "%.1fx as much)%s",
                     usd(r->cloud_usd).s, usd(r->local_usd).s, r->cloud_usd > 0 ? r->local_usd / r->cloud_usd : INFINITY,
                     r->break_even_tokens >= 0 ? "; local wins from the break-even volume below" : "");
        else
            snprintf(q[1], sizeof q[1], "local wins on price: %s vs cloud %s per month (%s saved, the cloud costs %.1fx "
                                        "as much); hardware recovered: %s",
                     usd(r->local_usd).s, usd(r->cloud_usd).s, usd(r->saving_usd).s, r->cloud_usd / r->local_usd, months);
    } else {
        snprintf(r->tier, sizeof r->tier, "5M+");
        snprintf(q[0], sizeof q[0],
                 "%s tokens/month is 5M+: \"Local models pay for hardware within 6 months. Implement hybrid routing.\"",
                 tok(T).s);
        if (r->months_to_recover >= 0 && r->months_to_recover <= 6)
            snprintf(q[1], sizeof q[1], "holds: the hardware is recovered in %s", months);
        else if (r->months_to_recover >= 0 && !r->pays_back)
            snprintf(q[1], sizeof q[1], "does not hold at these prices: the hardware %s", months);
        else if (r->months_to_recover >= 0)
            snprintf(q[1], sizeof q[1],
                     "does not hold at these prices: the hardware takes %s (6 months needs %s tokens/month)", months,
                     tok(r->six_month_tokens).s);
        else
            snprintf(q[1], sizeof q[1], "does not hold: the hardware is never recovered, the cloud costs no more "
                                        "than the power");
    }
}

/* Questions 2 and 3: privacy and accuracy, as answered, and what the ledger measured. */
static void privacy_accuracy_questions(const hl_advise_input *in, hl_advise_result *r) {
    const hl_advise_measured *m = in->measured;
    char (*q)[480];
    q = r->matrix[1];
    if (in->privacy == HL_PRIVACY_REQUIRED)
        snprintf(q[0], sizeof q[0], "required: \"Go local, no debate. GDPR, HIPAA, and customer contracts often require it.\"");
    else if (in->privacy == HL_PRIVACY_NO)
        snprintf(q[0], sizeof q[0], "not required: \"Cloud API is simpler. Skip the infrastructure overhead.\"");
    else
        snprintf(q[0], sizeof q[0], "not given (--privacy required|no)");
    if (m && m->sensitive)
        snprintf(q[1], sizeof q[1], "the ledger has %zu sensitive requests (%s): they must stay local, whatever the rest does",
                 m->sensitive, pct((double)m->sensitive / (double)m->requests).s);
    q = r->matrix[2];
    if (in->accuracy == HL_ACCURACY_CLASSIFICATION)
        snprintf(q[0], sizeof q[0], "classification/extraction: \"Local 7B models work fine. Use Mistral 7B.\"");
    else if (in->accuracy == HL_ACCURACY_REASONING)
        snprintf(q[0], sizeof q[0], "reasoning/code generation: \"Cloud models are significantly better. Use Claude 3.5 Sonnet.\"");
    else if (in->accuracy == HL_ACCURACY_UNSURE)
        snprintf(q[0], sizeof q[0], "unsure: \"Start with cloud, measure quality, swap to local if it meets thresholds.\"");
    else
        snprintf(q[0], sizeof q[0], "not given (--accuracy classification|reasoning|unsure)");
    if (m)
        snprintf(q[1], sizeof q[1], "measured mix: %s classification/extraction, %s code/analysis/reasoning, %s other",
                 pct((double)m->simple_tasks / (double)m->requests).s, pct((double)m->complex_tasks / (double)m->requests).s,
                 pct((double)(m->requests - m->simple_tasks - m->complex_tasks) / (double)m->requests).s);
    if (r->measured_agreement)
        snprintf(q[1] + strlen(q[1]), sizeof q[1] - strlen(q[1]),
                 "; agreement measured on %zu scored lines decides instead of --accuracy (below)", m->scored);
}

/* Per task type of the ledger: its measured agreement against the target. */
static void measured_verdicts(const hl_advise_input *in, hl_advise_result *r) {
    const hl_advise_measured *m = in->measured;
    if (!m || !m->scored) return;
    r->measured_agreement = true;
    double served = (double)(m->input_tokens + m->output_tokens), local_hours = 0;
    for (size_t i = 0; i < m->n_tasks; i++) {
        const hl_advise_task *t = &m->tasks[i];
        hl_advise_verdict *v = &r->verdicts[r->n_verdicts++];
        snprintf(v->task, sizeof v->task, "%s", t->name[0] ? t->name : "(no task type)");
        v->n = t->scored;
        v->agreed = t->agreed;
        v->rate = t->scored ? (double)t->agreed / (double)t->scored : NAN;
        hl_report_wilson(t->agreed, t->scored, &v->lo, &v->hi);
        v->token_share = served > 0 ? (double)t->tokens / served : 0;
        v->cloud_usd_month = v->token_share * r->cloud_usd;
        v->kind = t->scored < in->min_samples ? HL_VERDICT_MEASURING
                  : v->lo >= in->target - 1e-12 ? HL_VERDICT_LOCAL
                                                 : HL_VERDICT_CLOUD;
        if (v->kind == HL_VERDICT_LOCAL) {
            r->local_share += v->token_share;
            local_hours += v->token_share * r->gpu_hours;
        }
    }
    r->hybrid_machines = machines_for(local_hours);
    r->hybrid_usd = (1 - r->local_share) * r->cloud_usd + r->hybrid_machines * r->machine_usd;
}

/* The route config that measures before anything moves: the cloud serves, a local backend
 * answers 10% of the requests again, off the client's path, and the ledger scores them. */
static void measure_snippet(hl_advise_result *r) {
    snprintf(r->snippet, sizeof r->snippet,
             "routes:\n"
             "  - {name: privacy, when: {sensitive: true}, to: [local]}\n"
             "  - {name: default, to: [cloud], shadow: {rate: 0.1, to: [local]}}\n");
}

static void add_measure_reasons(hl_advise_result *r) {
    add_reason(r, "Measure before moving anything: keep the cloud serving and shadow 10%% of the requests to the "
                  "local model (the config below); the ledger scores every shadow answer against the served one.");
    add_reason(r, "After a few weeks `hybridllm report --group-by task_type` shows agreement per task type, and "
                  "`hybridllm advise --ledger` routes local the task types that reach the target.");
    measure_snippet(r);
}

/* The recommendation from measured agreement: the task types that reach the target go local
 * when their cloud spend pays for the machines they need. */
static void recommend_measured(const hl_advise_input *in, hl_advise_result *r) {
    int n_local = 0, n_measuring = 0;
    double moved = 0;
    for (int i = 0; i < r->n_verdicts; i++) {
        const hl_advise_verdict *v = &r->verdicts[i];
        n_local += v->kind == HL_VERDICT_LOCAL;
        n_measuring += v->kind == HL_VERDICT_MEASURING;
        if (v->kind == HL_VERDICT_LOCAL) moved += v->cloud_usd_month;
    }
    double saving = r->cloud_usd - r->hybrid_usd;
    if (!n_local) {
        r->advice = n_measuring ? HL_ADVICE_MEASURE : HL_ADVICE_CLOUD;
        add_reason(r, "No task type reaches the %s agreement target on enough samples: keep the cloud%s.",
                   pct(in->target).s, n_measuring ? " and the shadow running until the measurement is done" : "");
        if (n_measuring) measure_snippet(r);
        return;
    }
    if (saving <= 0) {
        r->advice = HL_ADVICE_CLOUD;
        add_reason(r, "The task types that reach the target carry %s of the tokens, %s of cloud spend a month: less "
                      "than the %d local machine(s) they need (%s); a hybrid needs %s of the tokens local to break "
                      "even.",
                   pct(r->local_share).s, usd(moved).s, r->hybrid_machines, usd(r->hybrid_machines * r->machine_usd).s,
                   r->break_even_share >= 0 ? pct(r->break_even_share).s : "more than 100%");
        return;
    }
    r->advice = n_local == r->n_verdicts ? HL_ADVICE_LOCAL : HL_ADVICE_HYBRID;
    add_reason(r, "Route the task types marked local above (%s of the tokens) to the local model: %s of cloud spend a "
                  "month moves to %d machine(s) at %s, saving %s a month.",
               pct(r->local_share).s, usd(moved).s, r->hybrid_machines, usd(r->hybrid_machines * r->machine_usd).s,
               usd(saving).s);
    if (n_local < r->n_verdicts)
        add_reason(r, "Keep the others in the cloud%s.",
                   n_measuring ? ", and the shadow running where the measurement is still short of samples" : "");
}

/* The hybrid's arithmetic with fixed hardware: what local share it needs to save at all. */
static void add_hybrid_share_reason(hl_advise_result *r) {
    if (r->break_even_share >= 0)
        add_reason(r, "A hybrid pays only above %s of the tokens local: its machines cost %s a month whatever share they "
                      "serve, and each 10%% of the tokens moved local saves %s of cloud spend (`hybridllm simulate` "
                      "replays a split).",
                   pct(r->break_even_share).s, usd(r->break_even_share * r->cloud_usd).s, usd(r->cloud_usd / 10).s);
    else
        add_reason(r, "No local share pays: even all-local (%s) costs more than all-cloud (%s).", usd(r->local_usd).s,
                   usd(r->cloud_usd).s);
}

/* The recommendation: privacy first, then accuracy (measured, else as answered), then volume
 * (the matrix's order of strength: privacy is "no debate", accuracy decides what local can
 * do at all). */
static void recommend(const hl_advise_input *in, hl_advise_result *r, const char *months) {
    const double T = r->tokens_per_month;
    double ratio = r->cloud_usd > 0 && r->local_usd > 0 ? fmax(r->cloud_usd, r->local_usd) / fmin(r->cloud_usd, r->local_usd)
                                                         : INFINITY;
    if (in->privacy == HL_PRIVACY_REQUIRED) {
        r->advice = HL_ADVICE_LOCAL;
        add_reason(r, "Privacy is required: the data must not leave your hardware, whatever the volume or the price.");
        if (in->accuracy == HL_ACCURACY_REASONING)
            add_reason(r, "Reasoning and code on a local model will be weaker (MMLU: Mistral 7B 62%%, Llama 3.1 70B "
                          "83%%, Claude 3.5 Sonnet 88%%): plan for a 70B model on a 24GB+ GPU.");
        if (r->saving_usd < 0)
            add_reason(r, "Local costs %s a month more than the cloud would at this volume; privacy decides, not price.",
                       usd(-r->saving_usd).s);
    } else if (r->measured_agreement) {
        recommend_measured(in, r);
    } else if (in->accuracy == HL_ACCURACY_REASONING) {
        r->advice = HL_ADVICE_CLOUD;
        add_reason(r, "Reasoning and code generation: cloud models are significantly better; use Claude 3.5 Sonnet.");
        if (T >= 5e6 && r->saving_usd > 0)
            add_reason(r, "At %s tokens/month, any classification or extraction share could still run locally "
                          "(hybrid): `hybridllm simulate` shows the split.",
                       tok(T).s);
    } else if (T < 500e3) {
        r->advice = HL_ADVICE_CLOUD;
        add_reason(r, "Under 500K tokens a month the cloud is %s a month against %s for local hardware, with no "
                      "infrastructure to run.",
                   usd(r->cloud_usd).s, usd(r->local_usd).s);
    } else if (r->saving_usd <= 0) {
        r->advice = HL_ADVICE_CLOUD;
        add_reason(r, "%s: the cloud wins at these prices, %s a month against %s for local hardware (local costs "
                      "%.1fx as much; hardware recovered: %s).",
                   T < 5e6 ? "The brief calls 500K-5M the break-even zone" : "The brief's 5M+ tier assumes local is cheaper",
                   usd(r->cloud_usd).s, usd(r->local_usd).s, ratio, months);
        if (r->break_even_tokens >= 0)
            add_reason(r, "Local wins from %s tokens a month at these prices.", tok(r->break_even_tokens).s);
    } else if (in->accuracy == HL_ACCURACY_CLASSIFICATION) {
        r->advice = HL_ADVICE_LOCAL;
        add_reason(r, "A narrow classification/extraction workload at %s tokens/month: a local 7B model (Mistral 7B) "
                      "takes all of it: local %s against cloud %s a month, %s saved (the cloud costs %.1fx as much); "
                      "hardware recovered: %s.",
                   tok(T).s, usd(r->local_usd).s, usd(r->cloud_usd).s, usd(r->saving_usd).s, ratio, months);
    } else if (in->accuracy == HL_ACCURACY_UNSURE || T < 5e6) {
        r->advice = HL_ADVICE_MEASURE;
        add_reason(r, "Local would win on price (%s against %s a month, %s saved; hardware recovered: %s) if its "
                      "quality holds, which nothing has measured yet: \"Start with cloud, measure quality, swap to "
                      "local if it meets thresholds.\"",
                   usd(r->local_usd).s, usd(r->cloud_usd).s, usd(r->saving_usd).s, months);
        add_measure_reasons(r);
    } else {
        r->advice = HL_ADVICE_HYBRID;
        add_reason(r, "Route classification, extraction and summarization to a local 7B model and reasoning and "
                      "code to the cloud; sensitive requests stay local.");
        add_reason(r, "All-local would save %s a month and recover the hardware in %s.", usd(r->saving_usd).s, months);
        add_hybrid_share_reason(r);
    }
}

hl_err hl_advise_compute(const hl_advise_input *in, hl_advise_result *r, char *errbuf, size_t errbuf_len) {
    memset(r, 0, sizeof *r);
    const hl_price *p = NULL;
    const char *source = NULL;
    HL_TRY(compute_inputs(in, r, &p, &source, errbuf, errbuf_len));
    r->price = *p;
    snprintf(r->price_source, sizeof r->price_source, "%s", source);
    compute_figures(in, r, p);
    /* the arithmetic, written down */
    workload_steps(in, r);
    cloud_steps(in, r, p, source);
    local_steps(in, r);
    break_even_steps(in, r);
    char months[160];
    if (r->pays_back)
        snprintf(months, sizeof months, "%.1f months", r->months_to_recover);
    else if (r->months_to_recover >= 0)
        snprintf(months, sizeof months, "never pays back (%.1f months, longer than its %g-month life)",
                 r->months_to_recover, in->amortize_months);
    else
        snprintf(months, sizeof months, "never (the cloud costs no more than the power)");
    volume_question(r, months);
    measured_verdicts(in, r);
    privacy_accuracy_questions(in, r);
    recommend(in, r, months);
    return HL_OK;
}

/* ---- rendering ---- */

static const char *section_title(int s) {
    switch (s) {
    case 0: return "Workload";
    case 1: return "Cloud cost per month";
    case 2: return "Local cost per month (amortized hardware)";
    default: return "Break-even";
    }
}

static hl_err render_brief_note(const hl_advise_result *r, hl_buf *o) {
    enum { N = sizeof brief_headlines / sizeof brief_headlines[0] };
    double share = r->input_share;
    hl_err e = hl_buf_printf(o, "\nNote: the brief's headline figures do not follow from its own prices\n"
                                "  The brief: 10M tokens a month cost ~$%s on %s and ~$%s on %s.\n"
                                "  Its own per-token prices give, for 10M tokens:\n",
                             tok(brief_headlines[0].headline).s, brief_headlines[0].name,
                             tok(brief_headlines[1].headline).s, brief_headlines[1].name);
    bool all_36 = true;
    for (size_t i = 0; !e && i < N; i++) {
        const brief_headline *h = &brief_headlines[i];
        double lo = 10 * h->in, hi = 10 * h->out, mid = 10 * (share * h->in + (1 - share) * h->out);
        e = hl_buf_printf(o, "    %-18s %s / %s  %s all input .. %s all output; %s at %.0f/%.0f\n", h->name,
                          usd(h->in).s, usd(h->out).s, usd(lo).s, usd(hi).s, usd(mid).s, share * 100,
                          (1 - share) * 100);
        if (fabs(h->headline - h->in * 10 * 36) > 0.005) all_36 = false;
    }
    for (size_t i = 0; !e && i < N; i++)
        e = hl_buf_printf(o, "%s~$%s is %.1fx", i ? " and " : "  ", tok(brief_headlines[i].headline).s,
                          brief_headlines[i].headline / (10 * brief_headlines[i].out));
    if (!e) e = hl_buf_puts(o, " the most any split costs.");
    if (!e && all_36) {
        e = hl_buf_puts(o, " Both equal 36 months of 10M tokens\n  at the input price (");
        for (size_t i = 0; !e && i < N; i++)
            e = hl_buf_printf(o, "%s%s x 10 x 36 = $%s", i ? "; " : "", usd(brief_headlines[i].in).s,
                              tok(brief_headlines[i].headline).s);
        if (!e) e = hl_buf_puts(o, "): three years of input, not a month of use.");
    }
    if (!e)
        e = hl_buf_printf(o, "\n  Its local figures ($45-$60 a month) are not its footnote's RTX 4070 either: "
                             "$550 / 36 = %s.\n"
                             "  This advisor computes from per-token prices, never from the brief's totals.\n",
                          usd(HL_ADVISE_HARDWARE_USD / HL_ADVISE_AMORTIZE_MONTHS).s);
    return e;
}

/* One verdict as a sentence: "route classification to local: 96.1% agreement (95% interval
 * 94.8%-97.0%) on 1,214 samples, saves $X a month". */
static hl_err render_verdict(const hl_advise_input *in, const hl_advise_verdict *v, hl_buf *o) {
    if (v->kind == HL_VERDICT_MEASURING)
        return hl_buf_printf(o, "  keep %s in the cloud: measurement still running, %s of %s samples%s%s\n", v->task,
                             tok((double)v->n).s, tok((double)in->min_samples).s, v->n ? " so far at " : "",
                             v->n ? pct(v->rate).s : "");
    char interval[200];
    snprintf(interval, sizeof interval, "%s agreement (95%% interval %s-%s) on %s samples", pct(v->rate).s, pct(v->lo).s,
             pct(v->hi).s, tok((double)v->n).s);
    if (v->kind == HL_VERDICT_LOCAL)
        return hl_buf_printf(o, "  route %s to local: %s, saves %s a month of cloud spend\n", v->task, interval,
                             usd(v->cloud_usd_month).s);
    return hl_buf_printf(o, "  keep %s in the cloud: %s, the lower bound is below the %s target\n", v->task, interval,
                         pct(in->target).s);
}

static hl_err render_verdicts(const hl_advise_input *in, const hl_advise_result *r, hl_buf *o) {
    hl_err e = hl_buf_printf(o, "\nMeasured agreement of the local model (target %s on the interval's lower bound, at "
                                "least %zu samples)\n",
                             pct(in->target).s, in->min_samples);
    for (int k = HL_VERDICT_LOCAL; k <= HL_VERDICT_MEASURING; k++) /* local first */
        for (int i = 0; !e && i < r->n_verdicts; i++)
            if ((int)r->verdicts[i].kind == k) e = render_verdict(in, &r->verdicts[i], o);
    if (!e && r->local_share > 0)
        e = hl_buf_printf(o, "  local: %s of the tokens; hybrid %s a month (%s cloud + %d machine(s) x %s) against "
                             "all-cloud %s\n",
                          pct(r->local_share).s, usd(r->hybrid_usd).s, usd((1 - r->local_share) * r->cloud_usd).s,
                          r->hybrid_machines, usd(r->machine_usd).s, usd(r->cloud_usd).s);
    return e;
}

hl_err hl_advise_render_text(const hl_advise_input *in, const hl_advise_result *r, hl_buf *o) {
    hl_err e = hl_buf_printf(o, "hybridllm advise: cloud or local, from the product brief's decision matrix\n");
    if (!e && !in->measured && in->brief_scenario)
        e = hl_buf_puts(o, "(no workload flags: the brief's scenario, 10M tokens a month; see --help)\n");
    int section = -1;
    for (int i = 0; !e && i < r->n_steps; i++) {
        const hl_advise_step *s = &r->steps[i];
        if (s->section != section) {
            section = s->section;
            e = hl_buf_printf(o, "\n%s\n", section_title(section));
        }
        if (!e) e = hl_buf_printf(o, "  %-24s %-24s %s\n", s->label, s->value, s->formula);
    }
    static const char *const questions[] = {"1. tokens/month", "2. privacy", "3. accuracy"};
    if (!e) e = hl_buf_puts(o, "\nDecision matrix (the brief's answers, then the arithmetic's check)\n");
    for (int i = 0; !e && i < 3; i++) {
        e = hl_buf_printf(o, "  %-16s %s\n", questions[i], r->matrix[i][0]);
        if (!e && r->matrix[i][1][0]) e = hl_buf_printf(o, "  %-16s check: %s\n", "", r->matrix[i][1]);
    }
    if (!e && r->measured_agreement) e = render_verdicts(in, r, o);
    if (!e) e = hl_buf_printf(o, "\nRecommendation: %s\n", hl_advice_name(r->advice));
    for (int i = 0; !e && i < r->n_reasons; i++) e = hl_buf_printf(o, "  - %s\n", r->reasons[i]);
    if (!e && r->snippet[0])
        e = hl_buf_printf(o, "\nRoute config to measure with (backend names are yours):\n%s", r->snippet);
    if (!e && r->brief_note) e = render_brief_note(r, o);
    return e;
}

static int jset(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v); }

static json_t *jnum_or_null(double x, bool ok) { return ok ? json_real(x) : json_null(); }

static json_t *json_ledger(const hl_advise_measured *m, const hl_advise_result *r) {
    json_t *lg = json_object();
    if (!lg) return NULL;
    jset(lg, "path", json_string(m->path));
    jset(lg, "records", json_integer((json_int_t)m->lines));
    jset(lg, "skipped_lines", json_integer((json_int_t)m->bad_lines));
    jset(lg, "duplicate_lines", json_integer((json_int_t)m->duplicate_lines));
    jset(lg, "period_days", json_real(m->period_days));
    jset(lg, "month_factor", json_real(m->month_factor));
    jset(lg, "requests", json_integer((json_int_t)m->requests));
    jset(lg, "local_requests", json_integer((json_int_t)m->local_requests));
    jset(lg, "cloud_requests", json_integer((json_int_t)m->cloud_requests));
    jset(lg, "escalated", json_integer((json_int_t)m->escalated));
    jset(lg, "failed_attempts", json_integer((json_int_t)m->failed));
    jset(lg, "sensitive_requests", json_integer((json_int_t)m->sensitive));
    jset(lg, "input_tokens", json_integer((json_int_t)m->input_tokens));
    jset(lg, "output_tokens", json_integer((json_int_t)m->output_tokens));
    jset(lg, "cloud_cost_usd", json_real(m->cloud_cost_usd));
    jset(lg, "local_cost_usd", json_real(m->local_cost_usd));
    jset(lg, "unpriced_records", json_integer((json_int_t)m->unknown_cost));
    jset(lg, "spend_usd_per_month", json_real((m->cloud_cost_usd + m->local_cost_usd) * m->month_factor));
    jset(lg, "all_cloud_usd_per_month", json_real(r->cloud_usd));
    return lg;
}

static json_t *json_workload(const hl_advise_input *in, const hl_advise_result *r) {
    const hl_advise_measured *m = in->measured;
    json_t *w = json_object(), *lg = NULL;
    if (!w || (m && !(lg = json_ledger(m, r)))) {
        json_decref(w);
        return NULL;
    }
    jset(w, "source", json_string(m ? "ledger" : in->brief_scenario ? "brief" : "flags"));
    jset(w, "tokens_per_month", json_real(r->tokens_per_month));
    jset(w, "input_share", json_real(r->input_share));
    jset(w, "input_tokens_per_month", json_real(r->input_tokens));
    jset(w, "output_tokens_per_month", json_real(r->output_tokens));
    if (lg) jset(w, "ledger", lg);
    return w;
}

static json_t *json_cloud(const hl_advise_input *in, const hl_advise_result *r) {
    json_t *c = json_object();
    if (!c) return NULL;
    jset(c, "model", json_string(in->cloud_model));
    jset(c, "priced_as", json_string(r->price.model));
    jset(c, "price_source", json_string(r->price_source));
    jset(c, "input_per_mtok", json_real(r->price.input_per_mtok));
    jset(c, "output_per_mtok", json_real(r->price.output_per_mtok));
    jset(c, "input_usd", json_real(r->cloud_input_usd));
    jset(c, "output_usd", json_real(r->cloud_output_usd));
    jset(c, "usd_per_month", json_real(r->cloud_usd));
    jset(c, "blended_per_mtok", json_real(r->blended_per_mtok));
    return c;
}

static json_t *json_local(const hl_advise_input *in, const hl_advise_result *r) {
    json_t *l = json_object();
    if (!l) return NULL;
    jset(l, "hardware_usd", json_real(in->hardware_usd));
    jset(l, "amortize_months", json_real(in->amortize_months));
    jset(l, "hardware_usd_per_month", json_real(r->hardware_month_usd));
    jset(l, "power_usd_per_month", json_real(in->power_usd_month));
    jset(l, "usd_per_month", json_real(r->local_usd));
    jset(l, "busy_usd_per_hour", json_real(in->busy_usd_hour));
    jset(l, "busy_ms_per_token", json_real(r->busy_ms_per_token));
    jset(l, "busy_hours_per_month", json_real(r->busy_hours));
    jset(l, "busy_usd_per_month", json_real(r->busy_usd));
    jset(l, "busy_hours_to_pay_local", jnum_or_null(r->cover_hours, r->cover_hours >= 0));
    jset(l, "throughput_tokens_per_s", json_real(r->throughput_tps));
    jset(l, "throughput_source", json_string(r->throughput_source));
    jset(l, "gpu_hours_per_month", json_real(r->gpu_hours));
    jset(l, "machines", json_integer(r->machines));
    jset(l, "machine_usd_per_month", json_real(r->machine_usd));
    return l;
}

static json_t *json_break_even(const hl_advise_result *r) {
    json_t *b = json_object();
    if (!b) return NULL;
    jset(b, "saving_usd_per_month", json_real(r->saving_usd));
    jset(b, "months_to_recover", jnum_or_null(r->months_to_recover, r->months_to_recover >= 0));
    jset(b, "pays_back", json_boolean(r->pays_back));
    jset(b, "hybrid_break_even_share", jnum_or_null(r->break_even_share, r->break_even_share >= 0));
    jset(b, "break_even_tokens_per_month", jnum_or_null(r->break_even_tokens, r->break_even_tokens >= 0));
    jset(b, "six_month_payback_tokens_per_month", jnum_or_null(r->six_month_tokens, r->six_month_tokens >= 0));
    return b;
}

static json_t *json_decision(const hl_advise_result *r) {
    static const char *const qn[] = {"tokens_per_month", "privacy", "accuracy"};
    json_t *d = json_object(), *matrix = json_array(), *reasons = json_array();
    bool ok = d && matrix && reasons;
    for (int i = 0; ok && i < 3; i++) {
        json_t *q = json_pack("{s:s, s:s, s:s?}", "question", qn[i], "brief", r->matrix[i][0], "check",
                              r->matrix[i][1][0] ? r->matrix[i][1] : NULL);
        ok = q && !json_array_append_new(matrix, q);
    }
    for (int i = 0; ok && i < r->n_reasons; i++) ok = !json_array_append_new(reasons, json_string(r->reasons[i]));
    if (!ok) {
        json_decref(d);
        json_decref(matrix);
        json_decref(reasons);
        return NULL;
    }
    jset(d, "tier", json_string(r->tier));
    jset(d, "matrix", matrix);
    jset(d, "advice", json_string(hl_advice_name(r->advice)));
    jset(d, "reasons", reasons);
    jset(d, "config_snippet", r->snippet[0] ? json_string(r->snippet) : json_null());
    return d;
}

static const char *verdict_name(hl_advise_verdict_kind k) {
    return k == HL_VERDICT_LOCAL ? "local" : k == HL_VERDICT_CLOUD ? "cloud" : "measuring";
}

static json_t *json_measured(const hl_advise_input *in, const hl_advise_result *r) {
    json_t *o = json_object(), *tasks = json_array();
    bool ok = o && tasks;
    for (int i = 0; ok && i < r->n_verdicts; i++) {
        const hl_advise_verdict *v = &r->verdicts[i];
        json_t *t = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:f, s:f}", "task_type", v->task, "verdict",
                              verdict_name(v->kind), "samples", (json_int_t)v->n, "agreed", (json_int_t)v->agreed,
                              "agreement", jnum_or_null(v->rate, v->n > 0), "agreement_lo",
                              jnum_or_null(v->lo, v->n > 0), "agreement_hi", jnum_or_null(v->hi, v->n > 0),
                              "token_share", v->token_share, "cloud_usd_per_month", v->cloud_usd_month);
        ok = t && !json_array_append_new(tasks, t);
    }
    if (!ok) {
        json_decref(o);
        json_decref(tasks);
        return NULL;
    }
    jset(o, "target", json_real(in->target));
    jset(o, "min_samples", json_integer((json_int_t)in->min_samples));
    jset(o, "task_types", tasks);
    jset(o, "local_share", json_real(r->local_share));
    jset(o, "hybrid_usd_per_month", json_real(r->hybrid_usd));
    jset(o, "hybrid_machines", json_integer(r->hybrid_machines));
    return o;
}

static json_t *json_steps(const hl_advise_result *r) {
    static const char *const sn[] = {"workload", "cloud", "local", "break_even"};
    json_t *steps = json_array();
    for (int i = 0; steps && i < r->n_steps; i++) {
        const hl_advise_step *s = &r->steps[i];
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "section", sn[s->section], "label", s->label, "value", s->value,
                              "formula", s->formula);
        if (!j || json_array_append_new(steps, j)) {
            json_decref(steps);
            return NULL;
        }
    }
    return steps;
}

static json_t *json_brief_note(const hl_advise_result *r) {
    json_t *note = json_array();
    for (size_t i = 0; note && i < sizeof brief_headlines / sizeof brief_headlines[0]; i++) {
        const brief_headline *h = &brief_headlines[i];
        json_t *j = json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f}", "model", h->name, "brief_usd_per_month",
                              h->headline, "input_per_mtok", h->in, "output_per_mtok", h->out, "all_input_usd",
                              10 * h->in, "all_output_usd", 10 * h->out, "at_input_share_usd",
                              10 * (r->input_share * h->in + (1 - r->input_share) * h->out));
        if (!j || json_array_append_new(note, j)) {
            json_decref(note);
            return NULL;
        }
    }
    return note;
}

hl_err hl_advise_render_json(const hl_advise_input *in, const hl_advise_result *r, hl_buf *out) {
    json_t *root = json_object();
    static const char *const keys[] = {"workload", "cloud", "local", "break_even", "decision", "arithmetic",
                                       "measured_agreement", "brief_discrepancy"};
    json_t *parts[] = {json_workload(in, r), json_cloud(in, r), json_local(in, r), json_break_even(r),
                       json_decision(r), json_steps(r), r->measured_agreement ? json_measured(in, r) : NULL,
                       r->brief_note ? json_brief_note(r) : NULL};
    bool ok = root != NULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        bool wanted = i < 6 || (i == 6 ? r->measured_agreement : r->brief_note);
        if (wanted && (!ok || !parts[i])) ok = false;
        if (ok && wanted) jset(root, keys[i], parts[i]);
        else json_decref(parts[i]);
    }
    hl_err rc = HL_ERR_NOMEM;
    char *text = ok ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) : NULL;
    if (text) {
        rc = hl_buf_puts(out, text);
        if (!rc) rc = hl_buf_puts(out, "\n");
        free(text);
    }
    json_decref(root);
    return rc;
}
