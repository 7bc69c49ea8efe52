/* hl_report: see hl_report.h. Either one hl_store_scan_query() or one hl_store_rollup_scan()
 * feeds per-group accumulators (found through a small open-addressing table keyed by the
 * group's text); percentiles are selected (rows) or read from merged histograms (rollups) at
 * the end; the renderers only format what was computed. */
#include "hl_report.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_advise.h"
#include "hl_pricing.h"
#include "hl_rollup.h"

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
    dvec latency, ttft;  /* rows: every value */
    uint32_t *hlat, *httft; /* rollups: HL_HIST_BUCKETS counts each, allocated on first use */
    long long eq_plain, eq_cached, eq_write, eq_out; /* tokens priced as all-cloud */
    double busy_ms;      /* local lines' latency: the group's share of the hardware */
} acc;

/* One line, or one rollup cell of `lines` lines, as the accumulators see it. */
typedef struct item {
    const char *values[HL_REPORT_MAX_KEYS];
    unsigned long long lines, first_group, first_total; /* requests by the group's and the total's rule */
    bool cloud, shadow, eval, sensitive;
    hl_store_status status;
    long long in, out, cached, write, plain;
    double cost, busy_ms;
    unsigned long long unpriced, scored, agreed;
    double score_sum;
    /* latency: one value (rows) or histograms (rollups) */
    double latency_ms, ttft_ms;  /* ttft < 0: none */
    const uint64_t *hlat, *httft;
    size_t hlat_n, httft_n;
} item;

typedef struct ctx {
    const hl_report_opts *o;
    hl_store_group keys[HL_REPORT_MAX_KEYS];
    size_t n_keys;
    unsigned same;       /* the varying dimensions among the keys and filters (hl_rollup.h) */
    unsigned same_total; /* those among the filters: a filter on backend=x counts a request at
                            its first attempt on x, in the total as in the groups */
    long long time_hour[HL_REPORT_MAX_KEYS]; /* rollups: the hour whose time key time_text holds */
    char time_text[HL_REPORT_MAX_KEYS][40];
    bool rollups;
    unsigned long long eval_skipped;
    long long min_hour, max_hour; /* of the lines counted: the period of an unbounded range */
    acc total;
    acc *groups;         /* n_groups of them, in order of first appearance */
    size_t n_groups, cap_groups;
    uint32_t *slots;     /* open addressing: group index + 1, 0 = empty */
    size_t n_slots;      /* a power of two, kept at most half full */
    char err[256];
} ctx;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The lookup text of a group: its values separated by \x1f, \x1e for none (cut at n - 1
 * bytes: only a hash, the values themselves are compared). */
static void group_text(const ctx *c, const item *it, char *out, size_t n) {
    size_t o = 0;
    for (size_t k = 0; k < c->n_keys; k++) {
        const char *v = it->values[k] ? it->values[k] : "\x1e";
        if (k && o + 1 < n) out[o++] = '\x1f';
        size_t l = strlen(v);
        if (l > n - 1 - o) l = n - 1 - o;
        memcpy(out + o, v, l);
        o += l;
    }
    out[o] = '\0';
}

static hl_err rehash(ctx *c, size_t n_slots) {
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return HL_ERR_NOMEM;
    char key[2048];
    for (size_t i = 0; i < c->n_groups; i++) {
        item it = {0};
        for (size_t k = 0; k < c->n_keys; k++) it.values[k] = c->groups[i].row.values[k];
        group_text(c, &it, key, sizeof key);
        size_t j = hash_str(key) & (n_slots - 1);
        while (slots[j]) j = (j + 1) & (n_slots - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    return HL_OK;
}

static hl_err new_group(ctx *c, const item *it, acc **out) {
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
    acc *a = &c->groups[c->n_groups++];
    memset(a, 0, sizeof *a);
    for (size_t k = 0; k < c->n_keys; k++)
        if (it->values[k] && !(a->row.values[k] = strdup(it->values[k]))) return HL_ERR_NOMEM;
    *out = a;
    return HL_OK;
}

static bool same_group(const ctx *c, const acc *a, const item *it) {
    for (size_t k = 0; k < c->n_keys; k++) {
        const char *x = a->row.values[k], *y = it->values[k];
        if (!x != !y || (x && strcmp(x, y))) return false;
    }
    return true;
}

static hl_err find_group(ctx *c, const item *it, acc **out) {
    hl_err e;
    if (c->n_groups * 2 >= c->n_slots && (e = rehash(c, c->n_slots ? c->n_slots * 2 : 64))) return e;
    char key[2048];
    group_text(c, it, key, sizeof key);
    size_t j = hash_str(key) & (c->n_slots - 1);
    for (; c->slots[j]; j = (j + 1) & (c->n_slots - 1)) {
        acc *a = &c->groups[c->slots[j] - 1];
        if (same_group(c, a, it)) {
            *out = a;
            return HL_OK;
        }
    }
    if ((e = new_group(c, it, out))) return e;
    c->slots[j] = (uint32_t)c->n_groups;
    return HL_OK;
}

static hl_err hist_into(uint32_t **dense, const uint64_t *h, size_t n) {
    if (!n) return HL_OK;
    if (!*dense && !(*dense = calloc(HL_HIST_BUCKETS, sizeof **dense))) return HL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = h[i] >> HL_HIST_COUNT_BITS;
        if (b < HL_HIST_BUCKETS) (*dense)[b] += (uint32_t)(h[i] & ((1ULL << HL_HIST_COUNT_BITS) - 1));
    }
    return HL_OK;
}

static hl_err add(ctx *c, acc *a, const item *it, unsigned long long first) {
    hl_report_row *w = &a->row;
    w->scored += it->scored;
    w->agreed += it->agreed;
    w->score_sum += it->score_sum;
    w->cost_usd += it->cost;
    w->unpriced += it->unpriced;
    if (!it->sensitive) w->compared_usd += it->cost;
    if (!it->cloud) a->busy_ms += it->busy_ms;
    if (it->shadow) { /* answered no client: its cost and its score only */
        w->shadow += it->lines;
        w->shadow_usd += it->cost;
        return HL_OK;
    }
    w->attempts += it->lines;
    w->requests += first;
    if (it->sensitive) w->sensitive += first;
    w->input_tokens += it->in;
    w->output_tokens += it->out;
    w->cached_input_tokens += it->cached;
    if (it->status == HL_STORE_STATUS_ERROR) w->errors += it->lines;
    if (it->status == HL_STORE_STATUS_ESCALATED) w->escalations += it->lines;
    if (!it->cloud) w->local_cost_usd += it->cost;
    if (it->status == HL_STORE_STATUS_OK && !it->sensitive) {
        a->eq_plain += it->plain;
        a->eq_cached += it->cached;
        a->eq_write += it->write;
        a->eq_out += it->out;
    }
    if (it->status != HL_STORE_STATUS_OK && it->status != HL_STORE_STATUS_ESCALATED) return HL_OK;
    w->answered += it->lines;
    hl_err e;
    if (c->rollups) {
        e = hist_into(&a->hlat, it->hlat, it->hlat_n);
        if (!e) e = hist_into(&a->httft, it->httft, it->httft_n);
        return e;
    }
    e = dvec_push(&a->latency, it->latency_ms);
    if (!e && it->ttft_ms >= 0) e = dvec_push(&a->ttft, it->ttft_ms);
    if (e == HL_ERR_LIMIT)
        snprintf(c->err, sizeof c->err, "more than %llu records in the range: narrow --from/--to",
                 HL_REPORT_MAX_ROWS);
    return e;
}

static hl_err add_item(ctx *c, const item *it, long long hour) {
    if (it->eval && !c->o->include_eval) {
        c->eval_skipped += it->lines;
        return HL_OK;
    }
    if (hour < c->min_hour) c->min_hour = hour;
    if (hour > c->max_hour) c->max_hour = hour;
    hl_err e = add(c, &c->total, it, it->first_total);
    if (e || !c->n_keys) return e;
    acc *a;
    if ((e = find_group(c, it, &a))) return e;
    return add(c, a, it, it->first_group);
}

static long long hour_of(long long ms) { return ms >= 0 ? ms / 3600000 : -((-ms + 3599999) / 3600000); }
static long long day_of_hour(long long h) { return h >= 0 ? h / 24 : -((-h + 23) / 24); }

static hl_err on_row(void *p, const hl_store_row *r) {
    ctx *c = p;
    item it = {.lines = 1, .first_group = r->first_in_group, .first_total = r->first_in_range, .cloud = r->cloud,
               .shadow = r->shadow, .eval = r->eval, .sensitive = r->sensitive, .status = r->status,
               .in = r->input_tokens, .out = r->output_tokens, .cached = r->cached_input_tokens,
               .write = r->cache_write_tokens, .cost = r->cost_usd, .busy_ms = r->latency_ms,
               .unpriced = !r->cost_known, .scored = r->scored, .agreed = r->scored && r->agree,
               .score_sum = r->scored ? r->score : 0, .latency_ms = r->latency_ms,
               .ttft_ms = r->stream ? r->ttft_ms : -1};
    long long plain = r->input_tokens - r->cached_input_tokens - r->cache_write_tokens;
    it.plain = plain > 0 ? plain : 0;
    char bufs[HL_REPORT_MAX_KEYS][40];
    for (size_t k = 0; k < c->n_keys; k++) it.values[k] = hl_store_group_value(c->keys[k], r, bufs[k], sizeof bufs[k]);
    return add_item(c, &it, hour_of(r->ts_ms));
}

static hl_err on_cell(void *p, const hl_rollup_row *r) {
    ctx *c = p;
    unsigned long long n = (unsigned long long)r->attempts;
    item it = {.lines = n, .first_group = (r->firsts >> c->same) & 1 ? n : 0, .first_total = (r->firsts >> c->same_total) & 1 ? n : 0,
               .cloud = r->source && !strcmp(r->source, "cloud"), .shadow = r->flags & HL_ROLLUP_SHADOW,
               .eval = r->flags & HL_ROLLUP_EVAL, .sensitive = r->flags & HL_ROLLUP_SENSITIVE, .status = r->status,
               .in = r->input_tokens, .out = r->output_tokens, .cached = r->cached_input_tokens,
               .write = r->cache_write_tokens, .plain = r->plain_input_tokens, .cost = r->cost_usd,
               .busy_ms = r->latency_sum_ms, .unpriced = (unsigned long long)r->unpriced,
               .scored = (unsigned long long)r->scored, .agreed = (unsigned long long)r->agreed,
               .score_sum = r->score_sum, .hlat = r->latency_hist, .hlat_n = r->latency_n, .httft = r->ttft_hist,
               .httft_n = r->ttft_n};
    /* The same dimensions as a scanned row, for hl_store_group_value. */
    hl_store_row row = {.ts_ms = r->hour * 3600000, .status = r->status, .source = r->source, .backend = r->backend,
                        .model = r->model, .route_reason = r->route_reason, .tenant = r->tenant,
                        .key_name = r->key_name, .task_type = r->task_type};
    for (size_t k = 0; k < c->n_keys; k++) {
        hl_store_group g = c->keys[k];
        bool timed = g == HL_STORE_GROUP_HOUR || g == HL_STORE_GROUP_DAY || g == HL_STORE_GROUP_WEEK ||
                     g == HL_STORE_GROUP_MONTH;
        if (!timed) {
            it.values[k] = hl_store_group_value(g, &row, c->time_text[k], sizeof c->time_text[k]);
            continue;
        }
        /* Cells come in hour order: format a time key once per hour, not once per cell. */
        if (c->time_hour[k] != r->hour || !c->time_text[k][0]) {
            hl_store_group_value(g, &row, c->time_text[k], sizeof c->time_text[k]);
            c->time_hour[k] = r->hour;
        }
        it.values[k] = c->time_text[k];
    }
    return add_item(c, &it, r->hour);
}

/* The local busy time of the whole range (no filters), for the groups' hardware shares. */
typedef struct busy_ctx {
    double busy_ms;
    long long min_hour, max_hour;
    bool include_eval;
} busy_ctx;

static hl_err busy_row(void *p, const hl_store_row *r) {
    busy_ctx *b = p;
    if (r->eval && !b->include_eval) return HL_OK;
    if (!r->cloud) b->busy_ms += r->latency_ms;
    long long h = hour_of(r->ts_ms);
    if (h < b->min_hour) b->min_hour = h;
    if (h > b->max_hour) b->max_hour = h;
    return HL_OK;
}

static hl_err busy_cell(void *p, const hl_rollup_row *r) {
    busy_ctx *b = p;
    if ((r->flags & HL_ROLLUP_EVAL) && !b->include_eval) return HL_OK;
    if (!(r->source && !strcmp(r->source, "cloud"))) b->busy_ms += r->latency_sum_ms;
    if (r->hour < b->min_hour) b->min_hour = r->hour;
    if (r->hour > b->max_hour) b->max_hour = r->hour;
    return HL_OK;
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

/* The nearest-rank percentiles of a histogram: the bucket holding the ceil(p*n/100)-th
 * smallest value, read back (hl_rollup.h: within 2% of the exact one). */
static void hist_percentiles(const uint32_t *h, double *p50, double *p95, double *p99) {
    unsigned long long n = 0;
    for (int b = 0; h && b < HL_HIST_BUCKETS; b++) n += h[b];
    if (!n) {
        *p50 = *p95 = *p99 = NAN;
        return;
    }
    const unsigned ps[3] = {50, 95, 99};
    double *outs[3] = {p50, p95, p99};
    for (int k = 0; k < 3; k++) {
        unsigned long long rank = ((unsigned long long)ps[k] * n + 99) / 100, seen = 0;
        if (!rank) rank = 1;
        int b = 0;
        for (; b < HL_HIST_BUCKETS; b++)
            if ((seen += h[b]) >= rank) break;
        *outs[k] = hl_hist_value(b);
    }
}

static void finish(acc *a, const hl_report *r, double busy_all_ms, double hardware_total) {
    hl_report_row *w = &a->row;
    double unused1, unused2;
    if (r->from_rollups) {
        hist_percentiles(a->hlat, &w->latency_p50_ms, &w->latency_p95_ms, &w->latency_p99_ms);
        hist_percentiles(a->httft, &w->ttft_p50_ms, &unused1, &unused2);
    } else {
        percentiles(&a->latency, &w->latency_p50_ms, &w->latency_p95_ms, &w->latency_p99_ms);
        percentiles(&a->ttft, &w->ttft_p50_ms, &unused1, &unused2);
    }
    w->cost_per_inference = w->requests ? (w->cost_usd - w->shadow_usd) / (double)w->requests : NAN;
    w->agreement = w->scored ? (double)w->agreed / (double)w->scored : NAN;
    w->mean_score = w->scored ? w->score_sum / (double)w->scored : NAN;
    hl_report_wilson(w->agreed, w->scored, &w->agreement_lo, &w->agreement_hi);
    w->error_rate = w->attempts ? (double)w->errors / (double)w->attempts : 0;
    w->escalation_rate = w->requests ? (double)w->escalations / (double)w->requests : 0;
    if (r->has_cloud_price) {
        hl_usage u = {.input_tokens = a->eq_plain + a->eq_cached + a->eq_write, .output_tokens = a->eq_out,
                      .cached_input_tokens = a->eq_cached, .cache_write_tokens = a->eq_write};
        w->cloud_equiv_usd = hl_pricing_cloud(&r->cloud_price, &u);
        w->hardware_usd = busy_all_ms > 0 ? hardware_total * a->busy_ms / busy_all_ms : 0;
        w->savings_usd = w->cloud_equiv_usd - w->compared_usd - w->hardware_usd;
    } else {
        w->cloud_equiv_usd = w->savings_usd = w->compared_usd = w->hardware_usd = NAN;
    }
    free(a->latency.v);
    free(a->ttft.v);
    free(a->hlat);
    free(a->httft);
    a->latency = a->ttft = (dvec){0};
    a->hlat = a->httft = NULL;
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

/* Groups sort by their values, key by key, a missing value after the others (values past
 * the report's keys are NULL in every row). */
static int cmp_rows(const void *pa, const void *pb) {
    const hl_report_row *a = pa, *b = pb;
    for (size_t k = 0; k < HL_REPORT_MAX_KEYS; k++) {
        const char *x = a->values[k], *y = b->values[k];
        if (!x || !y) {
            if (!x != !y) return !x - !y;
            continue;
        }
        int c = strcmp(x, y);
        if (c) return c;
    }
    return 0;
}

static void free_acc(acc *a) {
    free(a->latency.v);
    free(a->ttft.v);
    free(a->hlat);
    free(a->httft);
}

static void free_ctx(ctx *c) {
    for (size_t i = 0; i < c->n_groups; i++) {
        for (size_t k = 0; k < HL_REPORT_MAX_KEYS; k++) free(c->groups[i].row.values[k]);
        free_acc(&c->groups[i]);
    }
    free(c->groups);
    free(c->slots);
    free_acc(&c->total);
}

void hl_report_opts_init(hl_report_opts *o) {
    *o = (hl_report_opts){.from_ms = HL_STORE_TIME_MIN, .to_ms = HL_STORE_TIME_MAX,
                          .hardware_usd = HL_ADVISE_HARDWARE_USD, .amortize_months = HL_ADVISE_AMORTIZE_MONTHS};
}

hl_err hl_report_parse_group_by(const char *list, hl_report_opts *o) {
    hl_store_group keys[HL_REPORT_MAX_KEYS] = {HL_STORE_GROUP_NONE};
    size_t n = 0;
    const char *p = list;
    if (!p || !*p) return HL_ERR_INVAL;
    while (true) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[32];
        if (!len || len >= sizeof name || n == HL_REPORT_MAX_KEYS) return HL_ERR_INVAL;
        memcpy(name, p, len);
        name[len] = '\0';
        hl_store_group g;
        if (hl_store_group_parse(name, &g) != HL_OK) return HL_ERR_INVAL;
        if (g == HL_STORE_GROUP_NONE && (n || end)) return HL_ERR_INVAL; /* "none" only alone */
        for (size_t k = 0; k < n; k++)
            if (keys[k] == g) return HL_ERR_INVAL;
        keys[n++] = g;
        if (!end) break;
        p = end + 1;
    }
    o->group_by = keys[0];
    for (size_t k = 1; k < HL_REPORT_MAX_KEYS; k++) o->then_by[k - 1] = keys[k];
    return HL_OK;
}

/* The keys of o, and the varying dimensions among them. HL_ERR_INVAL for a bad list. */
static hl_err keys_of(const hl_report_opts *o, ctx *c) {
    hl_store_group all[HL_REPORT_MAX_KEYS] = {o->group_by, o->then_by[0], o->then_by[1], o->then_by[2]};
    c->n_keys = 0;
    for (size_t k = 0; k < HL_REPORT_MAX_KEYS && all[k] != HL_STORE_GROUP_NONE; k++) {
        if ((unsigned)all[k] > HL_STORE_GROUP_LAST) return HL_ERR_INVAL;
        c->keys[c->n_keys++] = all[k];
        c->same |= all[k] == HL_STORE_GROUP_SOURCE ? HL_ROLLUP_SAME_SOURCE
                 : all[k] == HL_STORE_GROUP_BACKEND ? HL_ROLLUP_SAME_BACKEND
                 : all[k] == HL_STORE_GROUP_MODEL ? HL_ROLLUP_SAME_MODEL
                 : all[k] == HL_STORE_GROUP_ROUTE_REASON ? HL_ROLLUP_SAME_ROUTE : 0;
    }
    c->same_total = (o->filter.source ? HL_ROLLUP_SAME_SOURCE : 0) | (o->filter.backend ? HL_ROLLUP_SAME_BACKEND : 0) |
                    (o->filter.model ? HL_ROLLUP_SAME_MODEL : 0);
    c->same |= c->same_total;
    return HL_OK;
}

/* Why the rollups cannot answer (static text), or NULL when they can. */
static const char *why_rows(hl_store *s, const hl_report_opts *o, const ctx *c) {
    if (o->exact) return "--exact";
    for (size_t k = 0; k < c->n_keys; k++)
        if (c->keys[k] == HL_STORE_GROUP_PROMPT_LENGTH) return "prompt_length is not in the rollups";
    if ((o->from_ms > HL_STORE_TIME_MIN && o->from_ms % 3600000) || (o->to_ms < HL_STORE_TIME_MAX && o->to_ms % 3600000))
        return "the range does not fall on whole UTC hours";
    if (!hl_store_has_rollups(s)) return "the store has no rollups";
    return NULL;
}

static long long hour_bound(long long ms, bool lower) {
    if (lower) return ms <= HL_STORE_TIME_MIN ? HL_STORE_TIME_MIN / 3600000 : hour_of(ms);
    return ms >= HL_STORE_TIME_MAX ? HL_STORE_TIME_MAX / 3600000 : hour_of(ms);
}

static bool has_filter(const hl_store_filter *f) {
    return f->tenant || f->key_name || f->backend || f->model || f->task_type || f->source;
}

/* Runs the pass that fills c (and, with filters, the one that measures the whole range's
 * busy time and period into *b). */
static hl_err run_passes(hl_store *s, const hl_report_opts *o, ctx *c, busy_ctx *b) {
    hl_err e;
    if (c->rollups) {
        long long fh = hour_bound(o->from_ms, true), th = hour_bound(o->to_ms, false);
        bool hourly = false;
        for (size_t k = 0; k < c->n_keys; k++) hourly |= c->keys[k] == HL_STORE_GROUP_HOUR;
        e = hl_store_rollup_scan(s, fh, th, &o->filter, hourly, on_cell, c);
        if (!e && has_filter(&o->filter) && o->cloud_price) e = hl_store_rollup_scan(s, fh, th, NULL, hourly, busy_cell, b);
    } else {
        hl_store_query q = {.from_ms = o->from_ms, .to_ms = o->to_ms, .filter = o->filter, .same = c->same,
                            .same_total = c->same_total};
        e = hl_store_scan_query(s, &q, on_row, c);
        hl_store_query all = {.from_ms = o->from_ms, .to_ms = o->to_ms};
        if (!e && has_filter(&o->filter) && o->cloud_price) e = hl_store_scan_query(s, &all, busy_row, b);
    }
    if (!has_filter(&o->filter)) {
        b->busy_ms = c->total.busy_ms;
        b->min_hour = c->min_hour;
        b->max_hour = c->max_hour;
    }
    return e;
}

/* The joined label of a row's values. */
static hl_err join_values(hl_report_row *w, size_t n_keys) {
    if (n_keys == 1) {
        if (w->values[0] && !(w->group = strdup(w->values[0]))) return HL_ERR_NOMEM;
        return HL_OK;
    }
    size_t len = 1;
    for (size_t k = 0; k < n_keys; k++) len += (w->values[k] ? strlen(w->values[k]) : 6) + 2;
    if (!(w->group = malloc(len))) return HL_ERR_NOMEM;
    size_t o = 0;
    for (size_t k = 0; k < n_keys; k++)
        o += (size_t)snprintf(w->group + o, len - o, "%s%s", k ? ", " : "", w->values[k] ? w->values[k] : "(none)");
    return HL_OK;
}

hl_err hl_report_build(hl_store *s, const hl_report_opts *o, hl_report **out, char *errbuf,
                       size_t errbuf_len) {
    *out = NULL;
    if (errbuf_len) errbuf[0] = '\0';
    ctx c = {.o = o, .min_hour = HL_STORE_TIME_MAX, .max_hour = HL_STORE_TIME_MIN};
    busy_ctx b = {.min_hour = HL_STORE_TIME_MAX, .max_hour = HL_STORE_TIME_MIN, .include_eval = o->include_eval};
    if (keys_of(o, &c) != HL_OK) {
        snprintf(errbuf, errbuf_len, "bad group keys");
        return HL_ERR_INVAL;
    }
    hl_report *r = calloc(1, sizeof *r);
    hl_err e = r ? HL_OK : HL_ERR_NOMEM;
    if (r) {
        r->why_rows = why_rows(s, o, &c);
        r->from_rollups = c.rollups = !r->why_rows;
    }
    if (!e) e = run_passes(s, o, &c, &b);
    if (e) {
        snprintf(errbuf, errbuf_len, "%s", c.err[0] ? c.err : e == HL_ERR_NOMEM ? "out of memory"
                                                                                : hl_store_errmsg(s));
        free_ctx(&c);
        free(r);
        return e;
    }
    r->group_by = o->group_by;
    memcpy(r->keys, c.keys, sizeof r->keys);
    r->n_keys = c.n_keys;
    r->include_eval = o->include_eval;
    r->eval_skipped = c.eval_skipped;
    r->from_ms = o->from_ms;
    r->to_ms = o->to_ms;
    r->hardware_usd = o->hardware_usd > 0 && o->amortize_months > 0 ? o->hardware_usd : 0;
    r->amortize_months = o->amortize_months;
    if (o->from_ms > HL_STORE_TIME_MIN && o->to_ms < HL_STORE_TIME_MAX) r->period_hours = (double)(o->to_ms - o->from_ms) / 3.6e6;
    else if (b.max_hour >= b.min_hour) /* whole UTC days: the first with records to the end of the last */
        r->period_hours = (double)((day_of_hour(b.max_hour) - day_of_hour(b.min_hour) + 1) * 24);
    double hardware_total = b.busy_ms > 0 && r->hardware_usd > 0
                                ? r->hardware_usd / r->amortize_months / (30 * 24.0) * r->period_hours : 0;
    if (o->cloud_price) {
        r->has_cloud_price = true;
        r->cloud_price = *o->cloud_price;
        snprintf(r->cloud_model, sizeof r->cloud_model, "%s", o->cloud_price->model ? o->cloud_price->model : "");
        r->cloud_price.model = r->cloud_model;
    }
    finish(&c.total, r, b.busy_ms, hardware_total);
    r->total = c.total.row;
    r->n_rows = c.n_groups;
    if (c.n_groups && !(r->rows = calloc(c.n_groups, sizeof *r->rows))) e = HL_ERR_NOMEM;
    for (size_t i = 0; i < c.n_groups && !e; i++) {
        finish(&c.groups[i], r, b.busy_ms, hardware_total);
        r->rows[i] = c.groups[i].row;
        memset(c.groups[i].row.values, 0, sizeof c.groups[i].row.values); /* moved to r */
        e = join_values(&r->rows[i], c.n_keys);
    }
    free_ctx(&c);
    if (e) {
        snprintf(errbuf, errbuf_len, "out of memory");
        hl_report_free(r);
        return e;
    }
    if (r->n_rows > 1) qsort(r->rows, r->n_rows, sizeof *r->rows, cmp_rows);
    *out = r;
    return HL_OK;
}

void hl_report_free(hl_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_rows; i++) {
        free(r->rows[i].group);
        for (size_t k = 0; k < HL_REPORT_MAX_KEYS; k++) free(r->rows[i].values[k]);
    }
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
    C_SENSITIVE,       /* sensitive requests: in the table only with savings and some */
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
    COL(sensitive, "sensitive", C_SENSITIVE),
    COL(cloud_equiv_usd, "all-cloud $", C_SAVINGS),
    COL(compared_usd, "hybrid $", C_SAVINGS),
    COL(hardware_usd, "hardware $", C_SAVINGS),
    COL(savings_usd, "saved $", C_SAVINGS),
};
#define N_COLS (sizeof cols / sizeof cols[0])

/* Columns of unsigned long long counts. */
static bool is_count(col_kind k) { return k == C_COUNT || k == C_SCORED || k == C_SHADOW_N || k == C_SENSITIVE; }

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
    if (table && c->kind == C_SENSITIVE) return r->has_cloud_price && r->total.sensitive > 0;
    if (table && c->kind == C_COUNT && !strcmp(c->name, "unpriced")) return r->total.unpriced > 0;
    return true;
}

static const char *label(const hl_report_row *w, bool total) {
    return total ? "TOTAL" : w->group ? w->group : "(none)";
}

/* Characters (code points) in UTF-8 text: what a terminal column holds, near enough
 * (wide CJK characters aside). */
static size_t text_width(const char *t) {
    size_t n = 0;
    for (; *t; t++) n += ((unsigned char)*t & 0xC0) != 0x80;
    return n;
}

/* t padded with spaces to width characters, on the left (right-aligned) or the right. */
static hl_err pad(hl_buf *out, const char *t, size_t width, bool right) {
    size_t w = text_width(t);
    hl_err e = HL_OK;
    for (size_t i = w; right && i < width && !e; i++) e = hl_buf_puts(out, " ");
    if (!e) e = hl_buf_puts(out, t);
    for (size_t i = w; !right && i < width && !e; i++) e = hl_buf_puts(out, " ");
    return e;
}

/* The first column's title: the keys joined ("day, source"). */
static void keys_title(const hl_report *r, char *out, size_t n) {
    size_t o = 0;
    out[0] = '\0';
    if (!r->n_keys) snprintf(out, n, "none");
    for (size_t k = 0; k < r->n_keys && o < n; k++)
        o += (size_t)snprintf(out + o, n - o, "%s%s", k ? ", " : "", hl_store_group_name(r->keys[k]));
}

static hl_err table_notes(const hl_report *r, hl_buf *out) {
    hl_err e = HL_OK;
    if (r->total.unpriced)
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
    if (!e && r->has_cloud_price) {
        e = hl_buf_puts(out, "\nall-cloud $: every answered request at the cloud price; hybrid $: what those "
                             "requests cost here;\nhardware $: ");
        if (!e && r->hardware_usd > 0)
            e = hl_buf_printf(out, "$%g of hardware over %g months, for %.0f hours, shared by local busy time",
                              r->hardware_usd, r->amortize_months, r->period_hours);
        else if (!e)
            e = hl_buf_puts(out, "none given (--hardware-usd)");
        if (!e) e = hl_buf_puts(out, ";\nsaved $ = all-cloud $ - hybrid $ - hardware $.");
        if (!e && r->total.sensitive)
            e = hl_buf_printf(out, " %llu sensitive requests are left out of all three: they could never have "
                                   "gone to the cloud.", r->total.sensitive);
        if (!e) e = hl_buf_puts(out, "\n");
    }
    if (!e && !r->has_cloud_price)
        e = hl_buf_puts(out, "\nsavings against all-cloud: give --cloud-model NAME (built-in prices, or --config "
                             "FILE's) or --cloud-price IN/OUT.\n");
    if (!e)
        e = r->from_rollups ? hl_buf_printf(out, "\npercentiles from the rollups' histograms (within %.0f%%); "
                                                 "--exact reads the rows.\n", HL_HIST_REL_ERROR * 100 + 0.5)
                            : hl_buf_printf(out, "\nfrom the rows (%s): percentiles exact.\n", r->why_rows);
    return e;
}

static hl_err render_table(const hl_report *r, hl_buf *out) {
    char from[40], to[40], title[160];
    range_text(r->from_ms, true, from, sizeof from);
    range_text(r->to_ms, false, to, sizeof to);
    keys_title(r, title, sizeof title);
    hl_err e = hl_buf_printf(out, "ledger report, %s .. %s (UTC), by %s", from, to, title);
    if (!e && r->has_cloud_price)
        e = hl_buf_printf(out, "; savings against %s at $%g in / $%g out per 1M tokens",
                          r->cloud_model[0] ? r->cloud_model : "the cloud",
                          r->cloud_price.input_per_mtok, r->cloud_price.output_per_mtok);
    if (!e) e = hl_buf_puts(out, "\n\n");
    /* Widths, in characters: the widest of title and every cell. */
    size_t nrow = r->n_rows + 1, width[N_COLS + 1];
    width[0] = text_width(title);
    char buf[64];
    for (size_t i = 0; i < nrow; i++) {
        const hl_report_row *w = i < r->n_rows ? &r->rows[i] : &r->total;
        size_t l = text_width(label(w, i == r->n_rows));
        if (l > width[0]) width[0] = l;
    }
    for (size_t j = 0; j < N_COLS; j++) {
        width[j + 1] = text_width(cols[j].title);
        for (size_t i = 0; i < nrow; i++) {
            cell(i < r->n_rows ? &r->rows[i] : &r->total, &cols[j], true, buf, sizeof buf);
            if (text_width(buf) > width[j + 1]) width[j + 1] = text_width(buf);
        }
    }
    if (!e) e = pad(out, title, width[0], false);
    for (size_t j = 0; j < N_COLS && !e; j++)
        if (col_shown(r, &cols[j], true)) {
            e = hl_buf_puts(out, "  ");
            if (!e) e = pad(out, cols[j].title, width[j + 1], true);
        }
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
        if (!e) e = pad(out, label(w, i == r->n_rows), width[0], false);
        for (size_t j = 0; j < N_COLS && !e; j++) {
            if (!col_shown(r, &cols[j], true)) continue;
            cell(w, &cols[j], true, buf, sizeof buf);
            e = hl_buf_puts(out, "  ");
            if (!e) e = pad(out, buf, width[j + 1], true);
        }
        if (!e) e = hl_buf_puts(out, "\n");
    }
    if (!e) e = table_notes(r, out);
    return e;
}

static hl_err json_row(const hl_report *r, const hl_report_row *w, bool total, hl_buf *out) {
    hl_err e = hl_buf_puts(out, "{");
    if (!e && !total) {
        e = hl_buf_puts(out, "\"group\":");
        if (!e) e = w->group ? hl_buf_json_str(out, w->group, strlen(w->group)) : hl_buf_puts(out, "null");
        if (!e) e = hl_buf_puts(out, ",\"keys\":{");
        for (size_t k = 0; k < r->n_keys && !e; k++) {
            e = hl_buf_printf(out, "%s\"%s\":", k ? "," : "", hl_store_group_name(r->keys[k]));
            if (!e) e = w->values[k] ? hl_buf_json_str(out, w->values[k], strlen(w->values[k])) : hl_buf_puts(out, "null");
        }
        if (!e) e = hl_buf_puts(out, "},");
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
    hl_err e = hl_buf_puts(out, "{\"group_by\":\"");
    for (size_t k = 0; k < r->n_keys && !e; k++) e = hl_buf_printf(out, "%s%s", k ? "," : "", hl_store_group_name(r->keys[k]));
    if (!e && !r->n_keys) e = hl_buf_puts(out, "none");
    if (!e) e = hl_buf_printf(out, "\",\"computed_from\":\"%s\",\"from\":", r->from_rollups ? "rollups" : "rows");
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
    if (!e && r->has_cloud_price)
        e = hl_buf_printf(out, ",\"hardware\":{\"hardware_usd\":%.17g,\"amortize_months\":%.17g,\"period_hours\":%.17g}",
                          r->hardware_usd, r->amortize_months, r->period_hours);
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

/* group_by holds the keys ("day,source", quoted); with several keys each one also has its
 * own column after group. */
static hl_err render_csv(const hl_report *r, hl_buf *out) {
    char keys[160];
    keys_title(r, keys, sizeof keys);
    for (char *p = keys; (p = strstr(p, ", "));) memmove(p + 1, p + 2, strlen(p + 2) + 1);
    bool split = r->n_keys > 1;
    hl_err e = hl_buf_puts(out, "group_by,group");
    for (size_t k = 0; split && k < r->n_keys && !e; k++) e = hl_buf_printf(out, ",%s", hl_store_group_name(r->keys[k]));
    for (size_t j = 0; j < N_COLS && !e; j++)
        if (cols[j].where != W_TABLE) e = hl_buf_printf(out, ",%s", cols[j].name);
    if (!e) e = hl_buf_puts(out, "\n");
    for (size_t i = 0; i <= r->n_rows && !e; i++) {
        bool total = i == r->n_rows;
        const hl_report_row *w = total ? &r->total : &r->rows[i];
        e = total ? hl_buf_puts(out, "total") : csv_field(out, keys);
        if (!e) e = hl_buf_puts(out, ",");
        if (!e && !total && w->group) e = csv_field(out, w->group);
        for (size_t k = 0; split && k < r->n_keys && !e; k++) {
            e = hl_buf_puts(out, ",");
            if (!e && !total && w->values[k]) e = csv_field(out, w->values[k]);
        }
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
