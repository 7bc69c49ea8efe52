/* hl_rollup: the backend-neutral half of the rollups (hl_rollup.h): histogram buckets, the
 * firsts mask, and the aggregator that turns a batch of inserted records (or, for migration
 * 7, every stored record) into cells that a backend adds to its rollups table. */
#include "hl_store_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_MASK ((1ULL << HL_HIST_COUNT_BITS) - 1)
#define FLUSH_CELLS 50000  /* the backfill adds its cells to the table this many at a time */
#define ACC_CELLS 4096     /* so does the indexer, at the latest when its pass commits */

int hl_hist_bucket(double ms) {
    if (!(ms >= HL_HIST_MIN_MS)) return 0;
    double b = floor(log(ms / HL_HIST_MIN_MS) / log(HL_HIST_GAMMA)) + 1;
    return b >= HL_HIST_BUCKETS - 1 ? HL_HIST_BUCKETS - 1 : (int)b;
}

double hl_hist_value(int b) {
    if (b <= 0) return 0;
    return HL_HIST_MIN_MS * pow(HL_HIST_GAMMA, b - 1) * 2 * HL_HIST_GAMMA / (1 + HL_HIST_GAMMA);
}

size_t hl_hist_merge(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out) {
    size_t i = 0, j = 0, n = 0;
    while (i < na || j < nb) {
        uint64_t ka = i < na ? a[i] >> HL_HIST_COUNT_BITS : UINT64_MAX;
        uint64_t kb = j < nb ? b[j] >> HL_HIST_COUNT_BITS : UINT64_MAX;
        if (ka == kb) out[n++] = (ka << HL_HIST_COUNT_BITS) | (((a[i++] & COUNT_MASK) + (b[j++] & COUNT_MASK)) & COUNT_MASK);
        else if (ka < kb) out[n++] = a[i++];
        else out[n++] = b[j++];
    }
    return n;
}

/* Counts one value into the entry list *h (ascending by bucket). */
static hl_err hist_add(uint64_t **h, size_t *n, size_t *cap, double ms) {
    uint64_t b = (uint64_t)hl_hist_bucket(ms);
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (((*h)[mid] >> HL_HIST_COUNT_BITS) < b) lo = mid + 1;
        else hi = mid;
    }
    if (lo < *n && ((*h)[lo] >> HL_HIST_COUNT_BITS) == b) {
        (*h)[lo]++;
        return HL_OK;
    }
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        uint64_t *v = realloc(*h, c * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        *h = v;
        *cap = c;
    }
    memmove(*h + lo + 1, *h + lo, (*n - lo) * sizeof **h);
    (*h)[lo] = (b << HL_HIST_COUNT_BITS) | 1;
    (*n)++;
    return HL_OK;
}

static bool same_str(const char *a, const char *b) {
    return a == b || (a && b && !strcmp(a, b));
}

unsigned hl_rollup_firsts(const hl_rollup_dims *self, const hl_rollup_dims *e, size_t n) {
    unsigned firsts = 0xFFFF;
    for (size_t k = 0; k < n; k++) {
        unsigned eq = (same_str(self->source, e[k].source) ? HL_ROLLUP_SAME_SOURCE : 0) |
                      (same_str(self->backend, e[k].backend) ? HL_ROLLUP_SAME_BACKEND : 0) |
                      (same_str(self->model, e[k].model) ? HL_ROLLUP_SAME_MODEL : 0) |
                      (same_str(self->route_reason, e[k].route_reason) ? HL_ROLLUP_SAME_ROUTE : 0);
        for (unsigned v = 0; v < 16; v++)
            if (!(v & ~eq)) firsts &= ~(1u << v); /* e agrees on every dimension of v */
    }
    return firsts;
}

/* ---- the aggregator: cells found by their key text ---- */

typedef struct agg {
    hl_rollup_cell *cells;
    char **keys;              /* owned; keys[i] is cells[i]'s, its strings point into it */
    size_t *key_len;
    uint64_t *hash;           /* of keys[i] */
    size_t n, cap;
    uint32_t *slots;          /* open addressing: index + 1 */
    size_t n_slots;
    size_t last;              /* index + 1 of the cell the last record went to; 0: none */
    bool day;                 /* cells per UTC day (rollups_day), else per hour */
} agg;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static const char *status_text(const char *s) {
    switch (hl_store_status_parse(s)) {
    case HL_STORE_STATUS_OK: return "ok";
    case HL_STORE_STATUS_ERROR: return "error";
    case HL_STORE_STATUS_CANCELLED: return "cancelled";
    case HL_STORE_STATUS_ESCALATED: return "escalated";
    default: return "other";
    }
}

static long long hour_of(long long ms) {
    return ms >= 0 ? ms / 3600000 : -((-ms + 3599999) / 3600000);
}

static void agg_free(agg *a) {
    for (size_t i = 0; i < a->n; i++) {
        free(a->keys[i]);
        free(a->cells[i].lat);
        free(a->cells[i].ttft);
    }
    free(a->cells);
    free(a->keys);
    free(a->key_len);
    free(a->hash);
    free(a->slots);
    bool day = a->day;
    memset(a, 0, sizeof *a);
    a->day = day;
}

static hl_err agg_grow(agg *a) {
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 256;
        hl_rollup_cell *cells = realloc(a->cells, c * sizeof *cells);
        if (!cells) return HL_ERR_NOMEM;
        a->cells = cells;
        char **keys = realloc(a->keys, c * sizeof *keys);
        if (!keys) return HL_ERR_NOMEM;
        a->keys = keys;
        size_t *kl = realloc(a->key_len, c * sizeof *kl);
        if (!kl) return HL_ERR_NOMEM;
        a->key_len = kl;
        uint64_t *hs = realloc(a->hash, c * sizeof *hs);
        if (!hs) return HL_ERR_NOMEM;
        a->hash = hs;
        a->cap = c;
    }
    if ((a->n + 1) * 2 > a->n_slots) {
        size_t ns = a->n_slots ? a->n_slots * 2 : 1024;
        uint32_t *slots = calloc(ns, sizeof *slots);
        if (!slots) return HL_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++) {
            size_t j = a->hash[i] & (ns - 1);
            while (slots[j]) j = (j + 1) & (ns - 1);
            slots[j] = (uint32_t)i + 1;
        }
        free(a->slots);
        a->slots = slots;
        a->n_slots = ns;
    }
    return HL_OK;
}

/* The cell of r (created empty when new). The key: hour, flags and firsts as bytes (HEAD),
 * then eight NUL-terminated strings: the seven dimensions and the status. */
enum { HEAD = sizeof(long long) + 2 * sizeof(unsigned) };

/* A dimension of a record (NULL: none) equals a cell's ("" for none, as in the key). */
static bool same_dim(const char *cell, const char *rec) { return !strcmp(cell, rec ? rec : ""); }

/* Whether r goes to cell c: the same test as equal keys, without building the key. */
static bool in_cell(const hl_rollup_cell *c, const hl_store_record *r, long long hour, unsigned flags,
                    unsigned firsts) {
    return c->hour == hour && c->flags == flags && c->firsts == firsts &&
           !strcmp(c->source, r->cloud ? "cloud" : "local") && same_dim(c->backend, r->backend) &&
           same_dim(c->model, r->model) && same_dim(c->route_reason, r->route_reason) &&
           same_dim(c->tenant, r->tenant) && same_dim(c->key_name, r->key_name) &&
           same_dim(c->task_type, r->task_type) && !strcmp(c->status, status_text(r->status));
}

static hl_err agg_cell(agg *a, const hl_store_record *r, unsigned flags, unsigned firsts, hl_rollup_cell **out) {
    char head[HEAD];
    long long hour = hour_of(r->ts_ms);
    if (a->day) hour -= ((hour % 24) + 24) % 24;
    /* Consecutive lines mostly share a cell: the last one is tried first. */
    if (a->last && in_cell(&a->cells[a->last - 1], r, hour, flags, firsts)) {
        *out = &a->cells[a->last - 1];
        return HL_OK;
    }
    memcpy(head, &hour, sizeof hour);
    memcpy(head + sizeof hour, &flags, sizeof flags);
    memcpy(head + sizeof hour + sizeof flags, &firsts, sizeof firsts);
    const char *parts[8] = {head, r->cloud ? "cloud" : "local", r->backend, r->model, r->route_reason,
                            r->tenant, r->key_name, r->task_type};
    size_t lens[9], len = HEAD;
    lens[0] = HEAD;
    for (int i = 1; i < 8; i++) len += (lens[i] = parts[i] ? strlen(parts[i]) : 0) + 1;
    const char *st = status_text(r->status);
    lens[8] = strlen(st);
    len += lens[8] + 1;
    char stackbuf[1024], *key = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!key) return HL_ERR_NOMEM;
    memcpy(key, head, HEAD);
    size_t o = HEAD;
    for (int i = 1; i < 9; i++) {
        const char *p = i < 8 ? parts[i] : st;
        if (lens[i]) memcpy(key + o, p, lens[i]);
        o += lens[i];
        key[o++] = '\0';
    }
    hl_err e = agg_grow(a);
    if (e) goto out;
    uint64_t h = fnv(key, len);
    size_t j = h & (a->n_slots - 1);
    for (; a->slots[j]; j = (j + 1) & (a->n_slots - 1)) {
        size_t i = a->slots[j] - 1;
        if (a->hash[i] == h && a->key_len[i] == len && !memcmp(a->keys[i], key, len)) {
            *out = &a->cells[i];
            a->last = i + 1;
            goto out;
        }
    }
    char *owned = malloc(len);
    if (!owned) {
        e = HL_ERR_NOMEM;
        goto out;
    }
    memcpy(owned, key, len);
    hl_rollup_cell *c = &a->cells[a->n];
    memset(c, 0, sizeof *c);
    const char **dims[8] = {NULL, &c->source, &c->backend, &c->model, &c->route_reason, &c->tenant, &c->key_name,
                            &c->task_type};
    o = HEAD;
    for (int i = 1; i < 8; i++) {
        *dims[i] = owned + o;
        o += lens[i] + 1;
    }
    c->status = owned + o;
    c->hour = hour;
    c->flags = flags;
    c->firsts = firsts;
    a->keys[a->n] = owned;
    a->key_len[a->n] = len;
    a->hash[a->n] = h;
    a->slots[j] = (uint32_t)++a->n;
    a->last = a->n;
    *out = c;
out:
    if (key != stackbuf) free(key);
    return e;
}

static hl_err agg_add(agg *a, const hl_store_record *r, unsigned firsts) {
    unsigned flags = (r->shadow ? HL_ROLLUP_SHADOW : 0) | (r->eval_run ? HL_ROLLUP_EVAL : 0) |
                     (r->sensitive ? HL_ROLLUP_SENSITIVE : 0);
    hl_rollup_cell *c;
    hl_err e = agg_cell(a, r, flags, firsts, &c);
    if (e) return e;
    c->attempts++;
    c->input_tokens += r->input_tokens;
    c->output_tokens += r->output_tokens;
    c->cached_input_tokens += r->cached_input_tokens;
    c->cache_write_tokens += r->cache_write_tokens;
    long long plain = r->input_tokens - r->cached_input_tokens - r->cache_write_tokens;
    c->plain_input_tokens += plain > 0 ? plain : 0;
    if (r->cost_known) c->cost_usd += r->cost_usd;
    else c->unpriced++;
    if (r->scored) {
        c->scored++;
        c->agreed += r->agree;
        c->score_sum += r->score;
    }
    c->latency_sum_ms += r->latency_ms;
    e = hist_add(&c->lat, &c->lat_n, &c->lat_cap, r->latency_ms);
    if (!e && r->stream && r->ttft_ms >= 0) e = hist_add(&c->ttft, &c->ttft_n, &c->ttft_cap, r->ttft_ms);
    return e;
}

static hl_err agg_flush(hl_store *s, agg *a) {
    hl_err e = a->n ? s->ops->rollup_merge(s, a->day, a->cells, a->n) : HL_OK;
    agg_free(a);
    return e;
}

/* ---- the indexer's batches ---- */

typedef struct prior_list {
    hl_rollup_dims v[64];
    char *owned[64][4];
    size_t n;
    bool more;                /* attempts beyond 64: the mask is taken over the first 64 */
} prior_list;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void on_prior(void *ctx, const hl_rollup_dims *d) {
    prior_list *p = ctx;
    if (p->n == 64) {
        p->more = true;
        return;
    }
    char **o = p->owned[p->n];
    o[0] = dup_or_null(d->source);
    o[1] = dup_or_null(d->backend);
    o[2] = dup_or_null(d->model);
    o[3] = dup_or_null(d->route_reason);
    p->v[p->n++] = (hl_rollup_dims){o[0], o[1], o[2], o[3]};
}

static void prior_free(prior_list *p) {
    for (size_t i = 0; i < p->n; i++)
        for (int k = 0; k < 4; k++) free(p->owned[i][k]);
    p->n = 0;
}

static hl_rollup_dims dims_of(const hl_store_record *r) {
    return (hl_rollup_dims){r->cloud ? "cloud" : "local", r->backend, r->model, r->route_reason};
}

/* The cells of the open transaction's batches, per hour and per day. */
struct hl_rollup_acc {
    agg a, d;
};

hl_rollup_acc *hl_rollup_acc_new(void) {
    hl_rollup_acc *x = calloc(1, sizeof *x);
    if (x) x->d.day = true;
    return x;
}

void hl_rollup_acc_drop(hl_rollup_acc *x) {
    if (!x) return;
    agg_free(&x->a);
    agg_free(&x->d);
}

void hl_rollup_acc_free(hl_rollup_acc *x) {
    hl_rollup_acc_drop(x);
    free(x);
}

hl_err hl_rollup_acc_flush(hl_rollup_acc *x, hl_store *s) {
    hl_err e = agg_flush(s, &x->a);
    if (!e) e = agg_flush(s, &x->d);
    hl_rollup_acc_drop(x);
    return e;
}

hl_err hl_rollup_acc_add(hl_rollup_acc *x, hl_store *s, const hl_store_record *r, const hl_store_insert_result *res,
                         size_t n) {
    agg *a = &x->a, *d = &x->d;
    hl_err e = HL_OK;
    for (size_t i = 0; i < n && !e; i++) {
        if (res[i] != HL_STORE_INSERTED) continue;
        unsigned firsts = 0xFFFF;
        if (r[i].attempt > 1) {
            prior_list p = {.n = 0};
            e = s->ops->prior(s, r[i].request_id, r[i].attempt, on_prior, &p);
            hl_rollup_dims self = dims_of(&r[i]);
            if (!e) firsts = hl_rollup_firsts(&self, p.v, p.n);
            prior_free(&p);
        }
        if (!e) e = agg_add(a, &r[i], firsts);
        if (!e) e = agg_add(d, &r[i], firsts);
    }
    /* Distinct cells are few (one per hour and combination of dimensions); past ACC_CELLS
     * they go to the tables now, which bounds the memory a pass takes. */
    if (!e && a->n + d->n >= ACC_CELLS) e = hl_rollup_acc_flush(x, s);
    return e;
}

/* ---- the backfill ---- */

typedef struct backfill {
    hl_store *s;
    agg a, d;
    char *request;            /* the request whose attempts p holds */
    prior_list p;
} backfill;

static hl_err on_record(void *ctx, const hl_store_record *r) {
    backfill *b = ctx;
    if (!b->request || strcmp(b->request, r->request_id)) {
        prior_free(&b->p);
        free(b->request);
        if (!(b->request = strdup(r->request_id))) return HL_ERR_NOMEM;
    }
    hl_rollup_dims self = dims_of(r);
    unsigned firsts = hl_rollup_firsts(&self, b->p.v, b->p.n);
    on_prior(&b->p, &self);
    hl_err e = agg_add(&b->a, r, firsts);
    if (!e) e = agg_add(&b->d, r, firsts);
    if (!e && b->a.n >= FLUSH_CELLS) e = agg_flush(b->s, &b->a);
    if (!e && b->d.n >= FLUSH_CELLS) e = agg_flush(b->s, &b->d);
    return e;
}

hl_err hl_rollup_backfill(hl_store *s) {
    backfill b = {.s = s, .d = {.day = true}};
    hl_err e = s->ops->each_record(s, on_record, &b);
    prior_free(&b.p);
    free(b.request);
    if (!e) e = agg_flush(s, &b.a);
    if (!e) e = agg_flush(s, &b.d);
    agg_free(&b.a);
    agg_free(&b.d);
    return e;
}

/* ---- reading ---- */

bool hl_store_has_rollups(hl_store *s) {
    return s && s->impl && s->ops->schema_version(s) >= 7;
}

static long long floor24(long long h) { return h - ((h % 24) + 24) % 24; }

hl_err hl_store_rollup_scan(hl_store *s, long long from_hour, long long to_hour, const hl_store_filter *f,
                            bool hourly, hl_rollup_row_fn fn, void *ctx) {
    if (!s || !s->impl) return HL_ERR_IO;
    if (!fn || from_hour > to_hour) {
        hl_store_set_error(s, "rollup scan: invalid arguments");
        return HL_ERR_INVAL;
    }
    if (!hl_store_has_rollups(s)) {
        hl_store_set_error(s, "the store has no rollups (schema before 7)");
        return HL_ERR_UNSUPPORTED;
    }
    hl_store_filter none = {0};
    if (!f) f = &none;
    long long d0 = floor24(from_hour) == from_hour ? from_hour : floor24(from_hour) + 24, d1 = floor24(to_hour);
    if (hourly || d0 >= d1) return s->ops->rollup_scan(s, false, from_hour, to_hour, f, fn, ctx);
    hl_err e = d0 > from_hour ? s->ops->rollup_scan(s, false, from_hour, d0, f, fn, ctx) : HL_OK;
    if (!e) e = s->ops->rollup_scan(s, true, d0, d1, f, fn, ctx);
    if (!e && to_hour > d1) e = s->ops->rollup_scan(s, false, d1, to_hour, f, fn, ctx);
    return e;
}
