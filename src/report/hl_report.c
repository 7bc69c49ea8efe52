/* hl_report: see hl_report.h. One hl_store_scan() feeds per-group accumulators (found through
 * a small open-addressing table keyed by the group's text); percentiles are selected at the
 * end; the renderers only format what was computed. */
#include "hl_report.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_pricing.h"

/* ---- accumulating ---- */

/* A growable array of doubles, bounded by HL_REPORT_MAX_ROWS. */
typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec;

static hl_err dvec_push(dvec *d, double x) {
    if (d->n == d->cap) {
        if (d->cap >= HL_REPORT_MAX_ROWS) return HL_ERR_LIMIT;
        size_t cap = d->cap ? d->cap * 2 : 64;
        double *v = realloc(d->v, cap * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = x;
    return HL_OK;
}

typedef struct acc {
    hl_report_row row;   /* sums and counts; the derived figures are filled in at the end */
    dvec latency, ttft;
} acc;

typedef struct ctx {
    const hl_report_opts *o;
    unsigned long long eval_skipped;
    acc total;
    acc *groups;         /* n_groups of them, in order of first appearance */
    size_t n_groups, cap_groups;
    uint32_t *slots;     /* open addressing: group index + 1, 0 = empty */
    size_t n_slots;      /* a power of two, kept at most half full */
    long null_group;     /* index of the group of records without a value, -1: none yet */
    char err[256];
} ctx;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static hl_err rehash(ctx *c, size_t n_slots) {
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return HL_ERR_NOMEM;
    for (size_t i = 0; i < c->n_groups; i++) {
        if (!c->groups[i].row.group) continue;
        size_t j = hash_str(c->groups[i].row.group) & (n_slots - 1);
        while (slots[j]) j = (j + 1) & (n_slots - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    return HL_OK;
}

static hl_err new_group(ctx *c, const char *name, acc **out) {
    if (c->n_groups >= HL_REPORT_MAX_GROUPS) {
        snprintf(c->err, sizeof c->err, "more than %d distinct groups: choose a coarser --group-by",
                 HL_REPORT_MAX_GROUPS);
        return HL_ERR_LIMIT;
    }
    if (c->n_groups == c->cap_groups) {
        size_t cap = c->cap_groups ? c->cap_groups * 2 : 16;
        acc *g = realloc(c->groups, cap * sizeof *g);
        if (!g) return HL_ERR_NOMEM;
        c->groups = g;
        c->cap_groups = cap;
    }
    acc *a = &c->groups[c->n_groups];
    memset(a, 0, sizeof *a);
    if (name && !(a->row.group = strdup(name))) return HL_ERR_NOMEM;
    c->n_groups++;
    *out = a;
    return HL_OK;
}

static hl_err find_group(ctx *c, const char *name, acc **out) {
    hl_err e;
    if (!name) {
        if (c->null_group < 0) {
            if ((e = new_group(c, NULL, out))) return e;
            c->null_group = (long)(c->n_groups - 1);
        }
        *out = &c->groups[c->null_group];
        return HL_OK;
    }
    if (c->n_groups * 2 >= c->n_slots && (e = rehash(c, c->n_slots ? c->n_slots * 2 : 64))) return e;
    size_t j = hash_str(name) & (c->n_slots - 1);
    for (; c->slots[j]; j = (j + 1) & (c->n_slots - 1)) {
        acc *a = &c->groups[c->slots[j] - 1];
        if (!strcmp(a->row.group, name)) {
            *out = a;
            return HL_OK;
        }
    }
    if ((e = new_group(c, name, out))) return e;
    c->slots[j] = (uint32_t)c->n_groups;
    return HL_OK;
}

static hl_err add(ctx *c, acc *a, const hl_store_row *r, bool first) {
    hl_report_row *w = &a->row;
    if (r->scored) {
        w->scored++;
        w->agreed += r->agree;
        w->score_sum += r->score;
    }
    if (r->cost_known) w->cost_usd += r->cost_usd;
    else w->unpriced++;
    if (r->shadow) { /* answered no client: its cost and its score only */
        w->shadow++;
        w->shadow_usd += r->cost_usd;
        return HL_OK;
    }
    w->attempts++;
    w->requests += first;
    w->input_tokens += r->input_tokens;
    w->output_tokens += r->output_tokens;
    w->cached_input_tokens += r->cached_input_tokens;
    w->errors += r->status == HL_STORE_STATUS_ERROR;
    w->escalations += r->status == HL_STORE_STATUS_ESCALATED;
    if (!r->cloud) {
        w->local_cost_usd += r->cost_usd;
        if (r->status == HL_STORE_STATUS_OK && c->o->cloud_price) {
            hl_usage u = {.input_tokens = r->input_tokens, .output_tokens = r->output_tokens,
                          .cached_input_tokens = r->cached_input_tokens,
                          .cache_write_tokens = r->cache_write_tokens};
            w->cloud_equiv_usd += hl_pricing_cloud(c->o->cloud_price, &u);
        }
    }
    hl_err e = HL_OK;
    if (r->status == HL_STORE_STATUS_OK || r->status == HL_STORE_STATUS_ESCALATED) {
        w->answered++;
        e = dvec_push(&a->latency, r->latency_ms);
        if (!e && r->stream && r->ttft_ms >= 0) e = dvec_push(&a->ttft, r->ttft_ms);
    }
    if (e == HL_ERR_LIMIT)
        snprintf(c->err, sizeof c->err, "more than %llu records in the range: narrow --from/--to",
                 HL_REPORT_MAX_ROWS);
    return e;
}

static hl_err on_row(void *p, const hl_store_row *r) {
    ctx *c = p;
    if (r->eval && !c->o->include_eval) {
        c->eval_skipped++;
        return HL_OK;
    }
    hl_err e = add(c, &c->total, r, r->first_in_range);
    if (e || c->o->group_by == HL_STORE_GROUP_NONE) return e;
    acc *a;
    if ((e = find_group(c, r->group, &a))) return e;
    return add(c, a, r, r->first_in_group);
}

/* ---- exact percentiles ---- */

/* Rearranges v[0..n) so that v[k] is the value a sort would put there, everything before it
 * is <= v[k] and everything after is >= v[k]; returns v[k]. Hoare partitioning around a
 * median of three, which keeps runs of equal values balanced. */
static double select_kth(double *v, size_t n, size_t k) {
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (lo < hi) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        double a = v[lo], b = v[mid], cc = v[hi];
        double pivot = a < b ? (b < cc ? b : (a < cc ? cc : a)) : (a < cc ? a : (b < cc ? cc : b));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (kk <= j) hi = j;
        else if (kk >= i) lo = i;
        else return v[kk];
    }
    return v[kk];
}

/* Nearest rank: the ceil(p*n/100)-th smallest, in integers so that no rounding moves it. */
static size_t rank_of(unsigned p, size_t n) {
    size_t r = (size_t)(((unsigned long long)p * n + 99) / 100);
    return r ? r - 1 : 0;
}

/* p50, p95, p99 of d (reordered). Each selection leaves the larger values after its rank, so
 * the next one only searches there. */
static void percentiles(dvec *d, double *p50, double *p95, double *p99) {
    if (!d->n) {
        *p50 = *p95 = *p99 = NAN;
        return;
    }
    size_t k50 = rank_of(50, d->n), k95 = rank_of(95, d->n), k99 = rank_of(99, d->n);
    *p50 = select_kth(d->v, d->n, k50);
    *p95 = select_kth(d->v + k50, d->n - k50, k95 - k50);
    *p99 = select_kth(d->v + k95, d->n - k95, k99 - k95);
}

static void finish(acc *a, bool priced) {
    hl_report_row *w = &a->row;
    double unused1, unused2;
    percentiles(&a->latency, &w->latency_p50_ms, &w->latency_p95_ms, &w->latency_p99_ms);
    percentiles(&a->ttft, &w->ttft_p50_ms, &unused1, &unused2);
    w->cost_per_inference = w->requests ? (w->cost_usd - w->shadow_usd) / (double)w->requests : NAN;
    w->agreement = w->scored ? (double)w->agreed / (double)w->scored : NAN;
    w->mean_score = w->scored ? w->score_sum / (double)w->scored : NAN;
    hl_report_wilson(w->agreed, w->scored, &w->agreement_lo, &w->agreement_hi);
    w->error_rate = w->attempts ? (double)w->errors / (double)w->attempts : 0;
    w->escalation_rate = w->requests ? (double)w->escalations / (double)w->requests : 0;
    if (priced) w->savings_usd = w->cloud_equiv_usd - w->local_cost_usd;
    else w->cloud_equiv_usd = w->savings_usd = NAN;
    free(a->latency.v);
    free(a->ttft.v);
    a->latency = a->ttft = (dvec){0};
}

void hl_report_wilson(unsigned long long k, unsigned long long n, double *lo, double *hi) {
    if (!n || k > n) {
        *lo = *hi = NAN;
        return;
    }
    const double z = 1.959963984540054; /* the normal's 97.5th percentile */
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
    double half = z / (1 + z2 / nn) * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    *lo = k == 0 ? 0 : fmax(0, centre - half);
    *hi = k == n ? 1 : fmin(1, centre + half);
}

static int cmp_rows(const void *pa, const void *pb) {
    const hl_report_row *a = pa, *b = pb;
    if (!a->group || !b->group) return !a->group - !b->group;
    return strcmp(a->group, b->group);
}

static void free_ctx(ctx *c) {
    for (size_t i = 0; i < c->n_groups; i++) {
        free(c->groups[i].row.group);
        free(c->groups[i].latency.v);
        free(c->groups[i].ttft.v);
    }
    free(c->groups);
    free(c->slots);
    free(c->total.latency.v);
    free(c->total.ttft.v);
}

hl_err hl_report_build(hl_store *s, const hl_report_opts *o, hl_report **out, char *errbuf,
                       size_t errbuf_len) {
    *out = NULL;
    if (errbuf_len) errbuf[0] = '\0';
    ctx c = {.o = o, .null_group = -1};
    hl_report *r = calloc(1, sizeof *r);
    hl_err e = r ? HL_OK : HL_ERR_NOMEM;
    if (!e) e = hl_store_scan_filtered(s, o->group_by, o->from_ms, o->to_ms, o->filter, on_row, &c);
    if (e) {
        snprintf(errbuf, errbuf_len, "%s", c.err[0] ? c.err : e == HL_ERR_NOMEM ? "out of memory"
                                                                                : hl_store_errmsg(s));
        free_ctx(&c);
        free(r);
        return e;
    }
    r->group_by = o->group_by;
    r->include_eval = o->include_eval;
    r->eval_skipped = c.eval_skipped;
    r->from_ms = o->from_ms;
    r->to_ms = o->to_ms;
    if (o->cloud_price) {
        r->has_cloud_price = true;
        r->cloud_price = *o->cloud_price;
        snprintf(r->cloud_model, sizeof r->cloud_model, "%s", o->cloud_price->model ? o->cloud_price->model : "");
        r->cloud_price.model = r->cloud_model;
    }
    finish(&c.total, r->has_cloud_price);
    r->total = c.total.row;
    r->n_rows = c.n_groups;
    if (c.n_groups && !(r->rows = calloc(c.n_groups, sizeof *r->rows))) {
        snprintf(errbuf, errbuf_len, "out of memory");
        free_ctx(&c);
        free(r);
        return HL_ERR_NOMEM;
    }
    for (size_t i = 0; i < c.n_groups; i++) {
        finish(&c.groups[i], r->has_cloud_price);
        r->rows[i] = c.groups[i].row;
        c.groups[i].row.group = NULL; /* moved to r */
    }
    if (r->n_rows > 1) qsort(r->rows, r->n_rows, sizeof *r->rows, cmp_rows);
    free_ctx(&c);
    *out = r;
    return HL_OK;
}

void hl_report_free(hl_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_rows; i++) free(r->rows[i].group);
    free(r->rows);
    free(r);
}

hl_err hl_report_format_parse(const char *name, hl_report_format *out) {
    static const char *const names[] = {"table", "json", "csv"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (hl_report_format)i;
            return HL_OK;
        }
    return HL_ERR_INVAL;
}

/* ---- rendering ---- */

static void range_text(long long ms, bool lower, char *out, size_t n) {
    if (lower ? ms <= HL_STORE_TIME_MIN : ms >= HL_STORE_TIME_MAX) snprintf(out, n, "%s", lower ? "start" : "end");
    else hl_store_format_time(ms, out, n);
}

/* Columns, in every format. Values are written through fmt_cell. */
typedef enum col_kind {
    C_COUNT, C_TOKENS, C_USD, C_USD_SMALL, C_MS, C_RATE, C_SAVINGS,
    C_SHADOW_N,        /* shadow figures: in the table only when the range has shadows */
    C_SHADOW_USD,
    C_SCORED,          /* a count of scored lines: in the table only when the range has some */
    C_AGREE,           /* an agreement rate: likewise */
    C_SCORE,           /* a mean score, 0..1: likewise */
    C_CI,              /* the table's "lo-hi%" of agreement_lo and agreement_hi */
} col_kind;

typedef enum col_where { W_ALL, W_TABLE, W_DATA } col_where; /* W_DATA: JSON and CSV only */

typedef struct col {
    const char *name;  /* JSON key and CSV header */
    const char *title; /* table header */
    col_kind kind;
    size_t off;        /* offset in hl_report_row */
    col_where where;
} col;

#define COL(n, t, k) {#n, t, k, offsetof(hl_report_row, n), W_ALL}
#define COLW(n, t, k, w) {#n, t, k, offsetof(hl_report_row, n), w}
static const col cols[] = {
    COL(requests, "requests", C_COUNT),
    COL(attempts, "attempts", C_COUNT),
    COL(input_tokens, "in tokens", C_TOKENS),
    COL(output_tokens, "out tokens", C_TOKENS),
    COL(cost_usd, "cost $", C_USD),
    COL(cost_per_inference, "$/inference", C_USD_SMALL),
    COL(latency_p50_ms, "p50 ms", C_MS),
    COL(latency_p95_ms, "p95 ms", C_MS),
    COL(latency_p99_ms, "p99 ms", C_MS),
    COL(ttft_p50_ms, "ttft p50", C_MS),
    COL(error_rate, "errors", C_RATE),
    COL(escalation_rate, "escal.", C_RATE),
    COL(shadow, "shadows", C_SHADOW_N),
    COL(shadow_usd, "shadow $", C_SHADOW_USD),
    COL(scored, "n scored", C_SCORED),
    COL(agreement, "agree", C_AGREE),
    COLW(agreement_lo, "95% CI", C_CI, W_TABLE),
    COLW(agreement_lo, "agree lo", C_AGREE, W_DATA),
    COLW(agreement_hi, "agree hi", C_AGREE, W_DATA),
    COL(mean_score, "score", C_SCORE),
    COL(unpriced, "unpriced", C_COUNT),
    COL(cloud_equiv_usd, "all-cloud $", C_SAVINGS),
    COL(savings_usd, "saved $", C_SAVINGS),
};
#define N_COLS (sizeof cols / sizeof cols[0])

/* Columns of unsigned long long counts. */
static bool is_count(col_kind k) { return k == C_COUNT || k == C_SCORED || k == C_SHADOW_N; }

/* The field of w that c names, as a double (counts are exact below 2^53). */
static double num_of(const hl_report_row *w, const col *c) {
    const char *p = (const char *)w + c->off;
    if (is_count(c->kind)) {
        unsigned long long v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    if (c->kind == C_TOKENS) {
        long long v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The text of one cell for the table (human units) or for CSV/JSON (exact). "" for NAN in
 * CSV, "-" in the table; JSON turns NAN into null itself. */
static void cell(const hl_report_row *w, const col *c, bool human, char *out, size_t n) {
    double x = num_of(w, c);
    if (is_count(c->kind) || c->kind == C_TOKENS) {
        snprintf(out, n, "%.0f", x);
        return;
    }
    if (c->kind == C_CI) {
        if (isnan(w->agreement_lo)) snprintf(out, n, "-");
        else snprintf(out, n, "%.1f-%.1f%%", w->agreement_lo * 100, w->agreement_hi * 100);
        return;
    }
    if (isnan(x)) {
        snprintf(out, n, "%s", human ? "-" : "");
    } else if (!human) {
        hl_buf b;
        hl_buf_init(&b, 64);
        if (hl_buf_double(&b, x) == HL_OK) snprintf(out, n, "%s", b.data);
        else snprintf(out, n, "%.17g", x);
        hl_buf_release(&b);
    } else if (c->kind == C_RATE || c->kind == C_AGREE) {
        snprintf(out, n, "%.1f%%", x * 100);
    } else if (c->kind == C_SCORE) {
        snprintf(out, n, "%.3f", x);
    } else if (c->kind == C_MS) {
        snprintf(out, n, "%.0f", x);
    } else if (c->kind == C_USD_SMALL) {
        snprintf(out, n, "%.6f", x);
    } else {
        snprintf(out, n, "%.2f", x);
    }
}

static bool col_shown(const hl_report *r, const col *c, bool table) {
    if (c->where == (table ? W_DATA : W_TABLE)) return false;
    if (table && (c->kind == C_SHADOW_N || c->kind == C_SHADOW_USD)) return r->total.shadow > 0;
    if (table && (c->kind == C_SCORED || c->kind == C_AGREE || c->kind == C_SCORE || c->kind == C_CI))
        return r->total.scored > 0;
    if (c->kind == C_SAVINGS && !r->has_cloud_price) return !table;
    if (table && c->kind == C_COUNT && !strcmp(c->name, "unpriced")) return r->total.unpriced > 0;
    return true;
}

static const char *label(const hl_report_row *w, bool total) {
    return total ? "TOTAL" : w->group ? w->group : "(none)";
}

static hl_err render_table(const hl_report *r, hl_buf *out) {
    char from[40], to[40];
    range_text(r->from_ms, true, from, sizeof from);
    range_text(r->to_ms, false, to, sizeof to);
    hl_err e = hl_buf_printf(out, "ledger report, %s .. %s (UTC), by %s", from, to,
                             hl_store_group_name(r->group_by));
    if (!e && r->has_cloud_price)
        e = hl_buf_printf(out, "; savings against %s at $%g in / $%g out per 1M tokens",
                          r->cloud_model[0] ? r->cloud_model : "the cloud",
                          r->cloud_price.input_per_mtok, r->cloud_price.output_per_mtok);
    if (!e) e = hl_buf_puts(out, "\n\n");
    /* Widths: the widest of title and every cell. */
    size_t nrow = r->n_rows + 1, width[N_COLS + 1];
    width[0] = strlen(hl_store_group_name(r->group_by));
    char buf[64];
    for (size_t i = 0; i < nrow; i++) {
        const hl_report_row *w = i < r->n_rows ? &r->rows[i] : &r->total;
        size_t l = strlen(label(w, i == r->n_rows));
        if (l > width[0]) width[0] = l;
    }
    for (size_t j = 0; j < N_COLS; j++) {
        width[j + 1] = strlen(cols[j].title);
        for (size_t i = 0; i < nrow; i++) {
            cell(i < r->n_rows ? &r->rows[i] : &r->total, &cols[j], true, buf, sizeof buf);
            if (strlen(buf) > width[j + 1]) width[j + 1] = strlen(buf);
        }
    }
    if (!e) e = hl_buf_printf(out, "%-*s", (int)width[0], hl_store_group_name(r->group_by));
    for (size_t j = 0; j < N_COLS && !e; j++)
        if (col_shown(r, &cols[j], true)) e = hl_buf_printf(out, "  %*s", (int)width[j + 1], cols[j].title);
    if (!e) e = hl_buf_puts(out, "\n");
    for (size_t i = 0; i < nrow && !e; i++) {
        const hl_report_row *w = i < r->n_rows ? &r->rows[i] : &r->total;
        if (i == r->n_rows && r->n_rows) {
            size_t dash = width[0];
            for (size_t j = 0; j < N_COLS; j++)
                if (col_shown(r, &cols[j], true)) dash += 2 + width[j + 1];
            for (size_t k = 0; k < dash && !e; k++) e = hl_buf_puts(out, "-");
            if (!e) e = hl_buf_puts(out, "\n");
        }
        if (!e) e = hl_buf_printf(out, "%-*s", (int)width[0], label(w, i == r->n_rows));
        for (size_t j = 0; j < N_COLS && !e; j++) {
            if (!col_shown(r, &cols[j], true)) continue;
            cell(w, &cols[j], true, buf, sizeof buf);
            e = hl_buf_printf(out, "  %*s", (int)width[j + 1], buf);
        }
        if (!e) e = hl_buf_puts(out, "\n");
    }
    if (!e && r->total.unpriced)
        e = hl_buf_printf(out, "\nnote: %llu cloud attempts have no price (cost_usd null) and are not "
                               "in the cost figures: add their models to `prices`.\n", r->total.unpriced);
    if (!e && r->total.shadow)
        e = hl_buf_printf(out, "\nnote: %llu shadow attempts answered no client: they are in cost $ (and shadow $) "
                               "only, not in requests, latency or rates.\n", r->total.shadow);
    if (!e && r->total.scored)
        e = hl_buf_puts(out, "\nagree: share of scored lines whose answer agreed with its reference, with its 95% "
                             "Wilson interval;\nscore: their mean score (0..1).\n");
    if (!e && r->eval_skipped)
        e = hl_buf_printf(out, "\nnote: %llu eval lines (`hybridllm eval` runs, not gateway traffic) are left out: "
                               "--include-eval counts them.\n", r->eval_skipped);
    if (!e && !r->has_cloud_price)
        e = hl_buf_puts(out, "\nsavings against all-cloud: give --cloud-model NAME --config FILE or "
                             "--cloud-price IN/OUT.\n");
    return e;
}

static hl_err json_row(const hl_report *r, const hl_report_row *w, bool total, hl_buf *out) {
    hl_err e = hl_buf_puts(out, "{");
    if (!e && !total) {
        e = hl_buf_puts(out, "\"group\":");
        if (!e) e = w->group ? hl_buf_json_str(out, w->group, strlen(w->group)) : hl_buf_puts(out, "null");
        if (!e) e = hl_buf_puts(out, ",");
    }
    bool first = true;
    for (size_t j = 0; j < N_COLS && !e; j++) {
        if (!col_shown(r, &cols[j], false)) continue;
        e = hl_buf_printf(out, "%s\"%s\":", first ? "" : ",", cols[j].name);
        first = false;
        if (e) break;
        double x = num_of(w, &cols[j]);
        if (isnan(x)) {
            e = hl_buf_puts(out, "null");
        } else {
            char buf[64];
            cell(w, &cols[j], false, buf, sizeof buf);
            e = hl_buf_puts(out, buf);
        }
    }
    if (!e) e = hl_buf_puts(out, "}");
    return e;
}

static hl_err render_json(const hl_report *r, hl_buf *out) {
    char t[40];
    hl_err e = hl_buf_printf(out, "{\"group_by\":\"%s\",\"from\":", hl_store_group_name(r->group_by));
    if (!e && r->from_ms <= HL_STORE_TIME_MIN) {
        e = hl_buf_puts(out, "null");
    } else if (!e) {
        hl_store_format_time(r->from_ms, t, sizeof t);
        e = hl_buf_printf(out, "\"%s\"", t);
    }
    if (!e) e = hl_buf_puts(out, ",\"to\":");
    if (!e && r->to_ms >= HL_STORE_TIME_MAX) {
        e = hl_buf_puts(out, "null");
    } else if (!e) {
        hl_store_format_time(r->to_ms, t, sizeof t);
        e = hl_buf_printf(out, "\"%s\"", t);
    }
    if (!e) e = hl_buf_printf(out, ",\"include_eval\":%s,\"eval_lines_skipped\":%llu", r->include_eval ? "true" : "false",
                              r->eval_skipped);
    if (!e) e = hl_buf_puts(out, ",\"cloud_price\":");
    if (!e && r->has_cloud_price) {
        const hl_price *p = &r->cloud_price;
        e = hl_buf_puts(out, "{\"model\":");
        if (!e) e = hl_buf_json_str(out, r->cloud_model, strlen(r->cloud_model));
        if (!e) e = hl_buf_puts(out, ",\"input_per_mtok\":");
        if (!e) e = hl_buf_double(out, p->input_per_mtok);
        if (!e) e = hl_buf_puts(out, ",\"output_per_mtok\":");
        if (!e) e = hl_buf_double(out, p->output_per_mtok);
        if (!e) e = hl_buf_puts(out, ",\"cached_input_per_mtok\":");
        if (!e) e = hl_buf_double(out, p->cached_input_per_mtok);
        if (!e) e = hl_buf_puts(out, ",\"cache_write_per_mtok\":");
        if (!e) e = hl_buf_double(out, p->cache_write_per_mtok);
        if (!e) e = hl_buf_puts(out, "}");
    } else if (!e) {
        e = hl_buf_puts(out, "null");
    }
    if (!e) e = hl_buf_puts(out, ",\"groups\":[");
    for (size_t i = 0; i < r->n_rows && !e; i++) {
        if (i) e = hl_buf_puts(out, ",");
        if (!e) e = json_row(r, &r->rows[i], false, out);
    }
    if (!e) e = hl_buf_puts(out, "],\"total\":");
    if (!e) e = json_row(r, &r->total, true, out);
    if (!e) e = hl_buf_puts(out, "}\n");
    return e;
}

/* An RFC 4180 field: quoted when it holds a comma, quote or line break, quotes doubled.
 * Records end with "\n" rather than the RFC's CRLF, which every CSV reader also takes. */
static hl_err csv_field(hl_buf *out, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) return hl_buf_puts(out, s);
    hl_err e = hl_buf_puts(out, "\"");
    for (; *s && !e; s++) e = *s == '"' ? hl_buf_puts(out, "\"\"") : hl_buf_append(out, s, 1);
    if (!e) e = hl_buf_puts(out, "\"");
    return e;
}

static hl_err render_csv(const hl_report *r, hl_buf *out) {
    hl_err e = hl_buf_puts(out, "group_by,group");
    for (size_t j = 0; j < N_COLS && !e; j++)
        if (cols[j].where != W_TABLE) e = hl_buf_printf(out, ",%s", cols[j].name);
    if (!e) e = hl_buf_puts(out, "\n");
    for (size_t i = 0; i <= r->n_rows && !e; i++) {
        bool total = i == r->n_rows;
        const hl_report_row *w = total ? &r->total : &r->rows[i];
        e = hl_buf_puts(out, total ? "total," : hl_store_group_name(r->group_by));
        if (!e && !total) e = hl_buf_puts(out, ",");
        if (!e && !total && w->group) e = csv_field(out, w->group);
        for (size_t j = 0; j < N_COLS && !e; j++) {
            if (cols[j].where == W_TABLE) continue;
            char buf[64];
            cell(w, &cols[j], false, buf, sizeof buf);
            e = hl_buf_puts(out, ",");
            if (!e) e = hl_buf_puts(out, buf);
        }
        if (!e) e = hl_buf_puts(out, "\n");
    }
    return e;
}

hl_err hl_report_render(const hl_report *r, hl_report_format f, hl_buf *out) {
    switch (f) {
    case HL_REPORT_TABLE: return render_table(r, out);
    case HL_REPORT_JSON: return render_json(r, out);
    case HL_REPORT_CSV: return render_csv(r, out);
    }
    return HL_ERR_INVAL;
}
