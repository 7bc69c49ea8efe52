/* hl_store: the backend-neutral half of the store (see hl_store.h): reading the journal from
 * the committed offset, parsing its lines, detecting rotation, batching the inserts with the
 * offset, and the background indexer thread. The database work is behind hl_store_ops
 * (hl_store_int.h).
 *
 * The journal's lines are read, validated and keyed by hl_ledger_parse_line (the line is
 * documented field by field in hl_ledger.h), the same parser advise, simulate and the budgets
 * use, so they all count the same records. Lines are at most HL_LEDGER_MAX_LINE bytes; a
 * partial last line waits for the next pass. */
#include "hl_store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hl_buf.h"
#include "hl_ledger.h"
#include "hl_log.h"
#include "hl_time.h"

enum {
    READ_CHUNK = 1 << 20, /* bytes read per pread() */
    BATCH_LINES = 65536,  /* lines per transaction. Request ids are random, so each insert
                             dirties a random page of the (request_id, attempt) index and each
                             commit writes those pages to the WAL: bigger batches share them
                             (1M lines: 26 s at 8192, 18 s at 65536). A crash replays at most
                             one batch, which the key makes harmless. */
    HEAD_MAX = 4096,      /* bytes of the journal's start hashed to recognize it */
    URGENT_LAG = 8 << 20, /* journal bytes to index (about 16,000 lines) that make a pass run
                             at normal priority */
    LOG_LIMIT = 5,        /* malformed/conflicting lines logged per pass; the rest are counted */
};

/* ---- errors ---- */

void hl_store_set_error(hl_store *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

const char *hl_store_errmsg(const hl_store *s) {
    return s && s->errmsg[0] ? s->errmsg : "no error";
}

/* ---- time ---- */

hl_err hl_store_parse_time(const char *s, size_t n, long long *ms_out) {
    return hl_time_parse_ms(s, n, ms_out);
}

void hl_store_format_time(long long ms, char *out, size_t out_len) { hl_time_format_ms(ms, out, out_len); }

/* ---- groups ---- */

static const char *const group_names[] = {
    [HL_STORE_GROUP_NONE] = "none",          [HL_STORE_GROUP_SOURCE] = "source",
    [HL_STORE_GROUP_BACKEND] = "backend",    [HL_STORE_GROUP_MODEL] = "model",
    [HL_STORE_GROUP_TASK_TYPE] = "task_type", [HL_STORE_GROUP_ROUTE_REASON] = "route_reason",
    [HL_STORE_GROUP_TENANT] = "tenant",      [HL_STORE_GROUP_KEY] = "key",
    [HL_STORE_GROUP_DAY] = "day",            [HL_STORE_GROUP_PROMPT_LENGTH] = "prompt_length",
    [HL_STORE_GROUP_HOUR] = "hour",          [HL_STORE_GROUP_WEEK] = "week",
    [HL_STORE_GROUP_MONTH] = "month",        [HL_STORE_GROUP_STATUS] = "status",
};

const char *hl_store_group_name(hl_store_group g) {
    return (unsigned)g < sizeof group_names / sizeof group_names[0] ? group_names[g] : "?";
}

hl_err hl_store_group_parse(const char *name, hl_store_group *out) {
    for (size_t i = 0; i < sizeof group_names / sizeof group_names[0]; i++)
        if (name && !strcmp(name, group_names[i])) {
            *out = (hl_store_group)i;
            return HL_OK;
        }
    return HL_ERR_INVAL;
}

/* ---- open, close, reading ---- */

static hl_err open_store(hl_store **out, const char *location, bool must_exist, char *errbuf, size_t errbuf_len) {
    *out = NULL;
    if (errbuf_len) errbuf[0] = '\0';
    if (!location || !*location) {
        snprintf(errbuf, errbuf_len, "store: no database path given");
        return HL_ERR_INVAL;
    }
    hl_store *s = calloc(1, sizeof *s);
    if (!s || !(s->location = strdup(location))) {
        free(s);
        snprintf(errbuf, errbuf_len, "store: out of memory");
        return HL_ERR_NOMEM;
    }
    s->ops = hl_store_location_is_pg(location) ? &hl_store_pg_ops : &hl_store_sqlite_ops;
    s->must_exist = must_exist;
    hl_err e = s->ops->open(s, location, errbuf, errbuf_len);
    if (e) {
        free(s->location);
        free(s);
        return e;
    }
    *out = s;
    return HL_OK;
}

hl_err hl_store_open(hl_store **out, const char *location, char *errbuf, size_t errbuf_len) {
    return open_store(out, location, false, errbuf, errbuf_len);
}

hl_err hl_store_open_existing(hl_store **out, const char *location, char *errbuf, size_t errbuf_len) {
    return open_store(out, location, true, errbuf, errbuf_len);
}

hl_err hl_store_open_later(hl_store **out, const char *location) {
    hl_store *s = calloc(1, sizeof *s);
    if (!s || !(s->location = strdup(location))) {
        free(s);
        return HL_ERR_NOMEM;
    }
    s->ops = hl_store_location_is_pg(location) ? &hl_store_pg_ops : &hl_store_sqlite_ops;
    *out = s;
    return HL_OK;
}

void hl_store_close(hl_store *s) {
    if (!s) return;
    hl_store_indexer_stop(s);
    if (s->impl) s->ops->close(s);
    free(s->location);
    free(s);
}

/* False (with the error set) for a handle from hl_store_open_later: it has no connection. */
static bool connected(hl_store *s) {
    if (s->impl) return true;
    hl_store_set_error(s, "store: not connected (opened for its background indexer only)");
    return false;
}

int hl_store_schema_version(hl_store *s) {
    return s->impl ? s->ops->schema_version(s) : 0;
}

const char *hl_store_kind(const hl_store *s) { return s->ops->name; }

hl_store_status hl_store_status_parse(const char *s) {
    if (!s) return HL_STORE_STATUS_OK; /* no status: a served answer (hl_ledger.h) */
    if (!strcmp(s, "ok")) return HL_STORE_STATUS_OK;
    if (!strcmp(s, "error")) return HL_STORE_STATUS_ERROR;
    if (!strcmp(s, "escalated")) return HL_STORE_STATUS_ESCALATED;
    if (!strcmp(s, "cancelled")) return HL_STORE_STATUS_CANCELLED;
    return HL_STORE_STATUS_OTHER;
}

bool hl_store_shared(const hl_store *s) { return s && s->ops->shared; }

bool hl_store_location_is_pg(const char *location) {
    return !strncmp(location, "postgresql://", 13) || !strncmp(location, "postgres://", 11);
}

static void put(char *out, size_t len, size_t *o, const char *p, size_t n) {
    while (n-- && *o + 1 < len) out[(*o)++] = *p++;
    if (len) out[*o] = '\0';
}

void hl_store_redact(const char *location, char *out, size_t out_len) {
    size_t o = 0;
    const char *p = location;
    if (out_len) out[0] = '\0';
    /* scheme://user:password@host...: the user info ends at the first '@' before any '/' or '?' */
    const char *scheme = strstr(location, "://");
    const char *end = scheme ? strpbrk(scheme + 3, "@/?") : NULL;
    const char *colon = end && *end == '@' ? memchr(scheme + 3, ':', (size_t)(end - scheme - 3)) : NULL;
    if (colon) {
        put(out, out_len, &o, p, (size_t)(colon + 1 - p));
        put(out, out_len, &o, "***", 3);
        p = end;
    }
    /* ...?password=secret&... */
    const char *pw;
    while ((pw = strstr(p, "password="))) {
        put(out, out_len, &o, p, (size_t)(pw + 9 - p));
        put(out, out_len, &o, "***", 3);
        p = pw + 9 + strcspn(pw + 9, "&");
    }
    put(out, out_len, &o, p, strlen(p));
}

hl_err hl_store_cloud_spend(hl_store *s, long long now_ms, hl_store_spend_fn fn, void *ctx) {
    if (!connected(s)) return HL_ERR_IO;
    long long day = now_ms / 86400000;
    int y;
    unsigned m, d;
    hl_time_civil_from_days(day, &y, &m, &d);
    return s->ops->cloud_spend(s, day, hl_time_days_from_civil(y, m, 1), fn, ctx);
}

hl_err hl_store_key_insert(hl_store *s, const hl_store_key *k, long long *id_out) {
    if (!connected(s)) return HL_ERR_IO;
    if (!k || !k->name || !k->prefix || !k->hash || strlen(k->hash) != 64) {
        hl_store_set_error(s, "key insert: invalid arguments");
        return HL_ERR_INVAL;
    }
    return s->ops->key_insert(s, k, id_out);
}

hl_err hl_store_key_update(hl_store *s, const hl_store_key *k) {
    if (!connected(s)) return HL_ERR_IO;
    if (!k || !k->name) {
        hl_store_set_error(s, "key update: invalid arguments");
        return HL_ERR_INVAL;
    }
    return s->ops->key_update(s, k);
}

hl_err hl_store_keys_list(hl_store *s, hl_store_key_fn fn, void *ctx) {
    if (!connected(s)) return HL_ERR_IO;
    return s->ops->keys_list(s, fn, ctx);
}

hl_err hl_store_key_spend(hl_store *s, long long now_ms, hl_store_key_spend_fn fn, void *ctx) {
    if (!connected(s)) return HL_ERR_IO;
    long long day = now_ms / 86400000;
    int y;
    unsigned m, d;
    hl_time_civil_from_days(day, &y, &m, &d);
    return s->ops->key_spend(s, day, hl_time_days_from_civil(y, m, 1), fn, ctx);
}

hl_err hl_store_key_touch(hl_store *s, long long id, long long ms) {
    if (!connected(s)) return HL_ERR_IO;
    return s->ops->key_touch(s, id, ms);
}

hl_err hl_store_heartbeat(hl_store *s, const char *id, long long now_ms, long long since_ms, int *live) {
    if (!connected(s)) return HL_ERR_IO;
    if (!id || !id[0] || strlen(id) > 128 || !live) {
        hl_store_set_error(s, "heartbeat: invalid arguments");
        return HL_ERR_INVAL;
    }
    *live = 1;
    hl_err e = s->ops->heartbeat(s, id, now_ms, since_ms, live);
    if (*live < 1) *live = 1;
    return e;
}

/* ---- budget leases ---- */

double hl_store_lease_grant(double cap_day, double cap_month, double spend_day, double spend_month, double others,
                            double mine, double want) {
    if (!(want > 0)) return 0;
    if (cap_day < 0 && cap_month < 0) return want;
    double room = 1e300;
    if (cap_day >= 0) room = cap_day - spend_day;
    if (cap_month >= 0 && cap_month - spend_month < room) room = cap_month - spend_month;
    room -= others + mine;
    if (room <= 0) return 0;
    return want < room ? want : room;
}

void hl_store_lease_subject(long long key_id, const char *tenant, char *out, size_t out_len) {
    if (key_id) snprintf(out, out_len, "key:%lld", key_id);
    else snprintf(out, out_len, "tenant:%s", tenant ? tenant : "");
}

hl_err hl_store_set_instance(hl_store *s, const char *id) {
    if (!id || strlen(id) >= sizeof s->instance) {
        hl_store_set_error(s, "instance: invalid id");
        return HL_ERR_INVAL;
    }
    snprintf(s->instance, sizeof s->instance, "%s", id);
    return HL_OK;
}

hl_err hl_store_lease_adjust(hl_store *s, const hl_store_lease_ask *a, long long now_ms, long long live_since_ms,
                             hl_store_lease_result *out) {
    memset(out, 0, sizeof *out);
    if (!connected(s)) return HL_ERR_IO;
    if (!s->instance[0] || !a || (!a->key_id && (!a->tenant || !a->tenant[0]))) {
        hl_store_set_error(s, "lease: %s", s->instance[0] ? "invalid arguments" : "no instance id set");
        return HL_ERR_INVAL;
    }
    char subj[200];
    hl_store_lease_subject(a->key_id, a->tenant, subj, sizeof subj);
    long long day = now_ms / 86400000;
    int y;
    unsigned m, d;
    hl_time_civil_from_days(day, &y, &m, &d);
    double mine = 0;
    hl_err e = s->ops->begin(s);
    if (e) return e;
    if ((e = s->ops->lease_read(s, subj, a, day, hl_time_days_from_civil(y, m, 1), now_ms, live_since_ms, out,
                                &mine)))
        goto fail;
    double delta = a->delta > 0 ? hl_store_lease_grant(a->cap_day, a->cap_month, out->spend_day, out->spend_month,
                                                      out->others, mine, a->delta)
                                : (a->delta < -mine ? -mine : a->delta);
    if (a->delta > 0 && delta >= a->delta && a->extra > 0) {
        /* Headroom: a share of what is left, so one busy instance cannot hold it all. */
        double left = hl_store_lease_grant(a->cap_day, a->cap_month, out->spend_day, out->spend_month, out->others,
                                           mine + delta, 1e300);
        double share = left / (2.0 * (a->sharers > 1 ? a->sharers : 1));
        delta += a->extra < share ? a->extra : share;
    }
    if (delta != 0 && (e = s->ops->lease_add(s, subj, delta, now_ms))) goto fail;
    if ((e = s->ops->commit(s))) goto fail;
    out->granted = delta;
    out->lease = mine + delta < 0 ? 0 : mine + delta;
    return HL_OK;
fail:
    s->ops->rollback(s);
    return e;
}

hl_err hl_store_leases_mine(hl_store *s, hl_store_lease_fn fn, void *ctx) {
    if (!connected(s)) return HL_ERR_IO;
    if (!s->instance[0]) {
        hl_store_set_error(s, "lease: no instance id set");
        return HL_ERR_INVAL;
    }
    return s->ops->leases_list(s, fn, ctx);
}

/* The attempt-varying dimension a group is keyed on (hl_rollup.h), 0 for the others. */
static unsigned same_of(hl_store_group g) {
    switch (g) {
    case HL_STORE_GROUP_SOURCE: return HL_ROLLUP_SAME_SOURCE;
    case HL_STORE_GROUP_BACKEND: return HL_ROLLUP_SAME_BACKEND;
    case HL_STORE_GROUP_MODEL: return HL_ROLLUP_SAME_MODEL;
    case HL_STORE_GROUP_ROUTE_REASON: return HL_ROLLUP_SAME_ROUTE;
    default: return 0;
    }
}

static const char *status_name(hl_store_status st) {
    static const char *const names[] = {"ok", "error", "cancelled", "escalated", "other"};
    return (unsigned)st < 5 ? names[st] : "other";
}

const char *hl_store_group_value(hl_store_group g, const hl_store_row *r, char *buf, size_t len) {
    char t[40];
    switch (g) {
    case HL_STORE_GROUP_SOURCE: return r->source;
    case HL_STORE_GROUP_BACKEND: return r->backend;
    case HL_STORE_GROUP_MODEL: return r->model;
    case HL_STORE_GROUP_TASK_TYPE: return r->task_type;
    case HL_STORE_GROUP_ROUTE_REASON: return r->route_reason;
    case HL_STORE_GROUP_TENANT: return r->tenant;
    case HL_STORE_GROUP_KEY: return r->key_name;
    case HL_STORE_GROUP_STATUS: return status_name(r->status);
    case HL_STORE_GROUP_PROMPT_LENGTH:
        return r->input_tokens <= 1000 ? "0-1k" : r->input_tokens <= 4000 ? "1k-4k" : r->input_tokens <= 8000 ? "4k-8k" : "8k+";
    case HL_STORE_GROUP_DAY:
    case HL_STORE_GROUP_HOUR:
    case HL_STORE_GROUP_MONTH:
        hl_store_format_time(r->ts_ms, t, sizeof t);
        t[g == HL_STORE_GROUP_DAY ? 10 : g == HL_STORE_GROUP_HOUR ? 13 : 7] = '\0';
        snprintf(buf, len, "%s", t);
        return buf;
    case HL_STORE_GROUP_WEEK: {
        long long day = r->ts_ms >= 0 ? r->ts_ms / 86400000 : -((-r->ts_ms + 86399999) / 86400000);
        long long monday = day - ((day % 7 + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
        hl_store_format_time(monday * 86400000, t, sizeof t);
        t[10] = '\0';
        snprintf(buf, len, "%s", t);
        return buf;
    }
    default: return NULL;
    }
}

typedef struct group_scan {
    hl_store_group g;
    hl_store_row_fn fn;
    void *ctx;
} group_scan;

static hl_err on_group_row(void *p, const hl_store_row *r) {
    group_scan *gs = p;
    char buf[64];
    hl_store_row w = *r;
    w.group = hl_store_group_value(gs->g, r, buf, sizeof buf);
    return gs->fn(gs->ctx, &w);
}

hl_err hl_store_scan(hl_store *s, hl_store_group g, long long from_ms, long long to_ms,
                     hl_store_row_fn fn, void *ctx) {
    if ((unsigned)g > HL_STORE_GROUP_LAST || from_ms > to_ms || !fn) {
        hl_store_set_error(s, "scan: invalid arguments");
        return HL_ERR_INVAL;
    }
    hl_store_query q = {.from_ms = from_ms, .to_ms = to_ms, .same = same_of(g)};
    group_scan gs = {g, fn, ctx};
    return hl_store_scan_query(s, &q, on_group_row, &gs);
}

hl_err hl_store_scan_query(hl_store *s, const hl_store_query *q, hl_store_row_fn fn, void *ctx) {
    if (!q || q->from_ms > q->to_ms || !fn || q->same > 15 || q->same_total > 15) {
        hl_store_set_error(s, "scan: invalid arguments");
        return HL_ERR_INVAL;
    }
    if (!connected(s)) return HL_ERR_IO;
    return s->ops->scan(s, q, fn, ctx);
}

hl_err hl_store_count(hl_store *s, unsigned long long *out) {
    *out = 0;
    if (!connected(s)) return HL_ERR_IO;
    return s->ops->count(s, out);
}

/* ---- one line ---- */

/* r from a parsed line (strings borrowed from e). */
static void record_from_entry(const hl_ledger_entry *e, hl_store_record *r) {
    const hl_ledger_record *l = &e->rec;
    *r = (hl_store_record){
        .ts_ms = e->ts_ms,
        .cloud = l->cloud,
        .input_tokens = l->usage.input_tokens,
        .output_tokens = l->usage.output_tokens,
        .latency_ms = l->latency_ms,
        .cost_usd = l->cost_usd,
        .cost_known = l->cost_known,
        .request_id = l->request_id,
        .attempt = l->attempt,
        .backend = l->backend,
        .model = l->model,
        .route_reason = l->route_reason,
        .status = l->status,
        .stream = l->stream,
        .ttft_ms = l->ttft_ms,
        .cached_input_tokens = l->usage.cached_input_tokens,
        .cache_write_tokens = l->usage.cache_write_tokens,
        .usage_estimated = l->usage.estimated,
        .tenant = l->tenant,
        .key_id = l->key_id,
        .key_name = l->key_name,
        .task_type = l->task_type,
        .task_inferred = l->task_inferred,
        .sensitive = l->sensitive,
        .confidence = l->confidence,
        .http_status = l->http_status,
        .error = l->error,
        .signals = l->signals,
        .confidence_margin = l->confidence_margin,
        .confidence_min = l->confidence_min,
        .shadow = l->shadow,
        .scored = l->scored,
        .score = l->score,
        .score_method = l->score_method,
        .agree = l->agree,
        .reference = l->reference,
        .ref_output_tokens = l->ref_output_tokens,
        .eval_run = l->eval_run,
        .replica = l->replica,
    };
}

/* ---- one index pass over an open journal ---- */

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* pread() of exactly n bytes (fewer only at end of file). */
static ssize_t pread_full(int fd, void *buf, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static bool head_hash(int fd, long long len, uint64_t *out) {
    char b[HEAD_MAX];
    if (len < 0 || len > HEAD_MAX) return false;
    if (pread_full(fd, b, (size_t)len, 0) != (ssize_t)len) return false;
    *out = fnv1a(b, (size_t)len);
    return true;
}

/* Counters of the open transaction: they join the pass's stats only when it commits, so the
 * stats say what is durable. */
typedef struct counts {
    unsigned long long lines, inserted, duplicates, conflicts, malformed;
} counts;

typedef struct pass {
    hl_store *s;
    const char *key;          /* the journal's name in journal_state */
    int fd;
    hl_store_journal_state st;
    hl_store_index_stats *stats;
    counts pending;
    bool in_tx;
    unsigned logged;          /* malformed or conflicting lines logged so far */
    /* Records parsed but not yet inserted (the backend takes them ops->batch at a time),
     * with the parsed lines their strings live in and the lines' offsets, for messages. */
    hl_store_record *recs;
    hl_ledger_entry *ents;
    long long *offs;
    hl_store_insert_result *res;
    size_t n;
    hl_rollup_acc *acc;       /* the rollups of the open transaction */
} pass;

static hl_err pass_begin(pass *p) {
    if (p->in_tx) return HL_OK;
    hl_err e = p->s->ops->begin(p->s);
    if (!e) p->in_tx = true;
    return e;
}

static void pass_drop(pass *p) {
    for (size_t i = 0; i < p->n; i++) hl_ledger_entry_release(&p->ents[i]);
    p->n = 0;
}

/* The leases settled by one batch: cost per subject. */
typedef struct settle_sum {
    char subject[200];
    double usd;
} settle_sum;

enum { SETTLE_MAX = 32 };

static hl_err settle_apply(hl_store *s, settle_sum *v, size_t *n) {
    hl_err e = HL_OK;
    long long now = (long long)time(NULL) * 1000;
    for (size_t i = 0; i < *n && !e; i++) e = s->ops->lease_add(s, v[i].subject, -v[i].usd, now);
    *n = 0;
    return e;
}

static hl_err settle_add(hl_store *s, settle_sum *v, size_t *n, const char *subject, double usd) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(v[i].subject, subject)) {
            v[i].usd += usd;
            return HL_OK;
        }
    hl_err e = *n == SETTLE_MAX ? settle_apply(s, v, n) : HL_OK;
    if (e) return e;
    snprintf(v[*n].subject, sizeof v[*n].subject, "%s", subject);
    v[(*n)++].usd = usd;
    return HL_OK;
}

/* In the transaction that inserted them: the cloud cost of the batch's new records made
 * with a virtual key leaves this instance's leases of their key and tenant (hl_store.h,
 * budget leases), so it is counted in the spend instead, once. */
static hl_err pass_settle(pass *p) {
    hl_store *s = p->s;
    if (!s->instance[0]) return HL_OK;
    settle_sum v[SETTLE_MAX];
    size_t n = 0;
    char subj[200];
    hl_err e = HL_OK;
    for (size_t i = 0; i < p->n && !e; i++) {
        const hl_store_record *r = &p->recs[i];
        if (p->res[i] != HL_STORE_INSERTED || !r->key_id || !r->cloud || !r->cost_known || !(r->cost_usd > 0))
            continue;
        hl_store_lease_subject(r->key_id, NULL, subj, sizeof subj);
        e = settle_add(s, v, &n, subj, r->cost_usd);
        if (!e && r->tenant && r->tenant[0]) {
            hl_store_lease_subject(0, r->tenant, subj, sizeof subj);
            e = settle_add(s, v, &n, subj, r->cost_usd);
        }
    }
    return e ? e : settle_apply(s, v, &n);
}

/* Inserts the records waiting in p's batch. */
static hl_err pass_flush(pass *p) {
    if (!p->n) return HL_OK;
    hl_err e = pass_begin(p);
    if (!e) e = p->s->ops->insert(p->s, p->recs, p->n, p->res);
    if (!e) e = pass_settle(p);
    if (!e) e = hl_rollup_acc_add(p->acc, p->s, p->recs, p->res, p->n);
    for (size_t i = 0; i < p->n && !e; i++) {
        if (p->res[i] == HL_STORE_INSERTED) {
            p->pending.inserted++;
        } else if (p->res[i] == HL_STORE_DUPLICATE) {
            p->pending.duplicates++;
        } else {
            p->pending.conflicts++;
            if (p->logged++ < LOG_LIMIT)
                hl_log(HL_LOG_WARN, "ledger %s: line at byte %lld: request %s attempt %lld is "
                       "already indexed from another line (another timestamp); the first is "
                       "kept (a client reusing x-request-id?)", p->key, p->offs[i],
                       p->recs[i].request_id, p->recs[i].attempt);
        }
    }
    pass_drop(p);
    return e;
}

/* Saves offset with the records inserted so far and commits them together. */
static hl_err pass_commit(pass *p, long long offset) {
    hl_err e = pass_flush(p);
    if (!e) e = pass_begin(p);
    if (!e) e = hl_rollup_acc_flush(p->acc, p->s);
    if (e) return e;
    p->st.offset = offset;
    if (p->st.head_len < HEAD_MAX && offset > p->st.head_len) {
        long long len = offset < HEAD_MAX ? offset : HEAD_MAX;
        if (!head_hash(p->fd, len, &p->st.head_hash)) {
            hl_store_set_error(p->s, "%s: cannot read: %s", p->key, strerror(errno));
            return HL_ERR_IO;
        }
        p->st.head_len = len;
    }
    if ((e = p->s->ops->save_state(p->s, p->key, &p->st)) || (e = p->s->ops->commit(p->s)))
        return e;
    p->in_tx = false;
    hl_store_index_stats *t = p->stats;
    t->lines += p->pending.lines;
    t->inserted += p->pending.inserted;
    t->duplicates += p->pending.duplicates;
    t->conflicts += p->pending.conflicts;
    t->malformed += p->pending.malformed;
    t->offset = offset;
    memset(&p->pending, 0, sizeof p->pending);
    return HL_OK;
}

static void pass_malformed(pass *p, long long off, const char *why) {
    p->pending.malformed++;
    if (p->logged++ < LOG_LIMIT)
        hl_log(HL_LOG_WARN, "ledger %s: line at byte %lld skipped: %s", p->key, off, why);
}

static hl_err pass_line(pass *p, const char *line, size_t n, long long off) {
    p->pending.lines++;
    if (hl_ledger_blank(line, n)) return HL_OK;
    char why[160];
    if (hl_ledger_parse_line(line, n, &p->ents[p->n], why, sizeof why) != HL_OK) {
        pass_malformed(p, off, why);
        return HL_OK;
    }
    record_from_entry(&p->ents[p->n], &p->recs[p->n]);
    p->offs[p->n] = off;
    return ++p->n == p->s->ops->batch ? pass_flush(p) : HL_OK;
}

/* Same file as last time: same identity, not shorter than what was read, and the same first
 * bytes (a file truncated and written again past the offset keeps its inode). */
static bool same_journal(int fd, const struct stat *sb, const hl_store_journal_state *st) {
    if (st->dev != (long long)sb->st_dev || st->ino != (long long)sb->st_ino || st->offset > (long long)sb->st_size)
        return false;
    uint64_t h;
    return st->head_len <= 0 || (head_hash(fd, st->head_len, &h) && h == st->head_hash);
}

/* Indexes the open journal fd, known as key. */
static hl_err index_fd(hl_store *s, const char *key, int fd, hl_store_index_stats *stats) {
    memset(stats, 0, sizeof *stats);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        hl_store_set_error(s, "%s: %s", key, strerror(errno));
        return HL_ERR_IO;
    }
    pass p = {.s = s, .key = key, .fd = fd, .stats = stats};
    size_t nb = s->ops->batch;
    p.recs = malloc(nb * sizeof *p.recs);
    p.ents = malloc(nb * sizeof *p.ents);
    p.offs = malloc(nb * sizeof *p.offs);
    p.res = malloc(nb * sizeof *p.res);
    p.acc = hl_rollup_acc_new();
    hl_buf buf;
    hl_buf_init(&buf, READ_CHUNK + HL_STORE_MAX_LINE + 1);
    bool found = false;
    hl_err e = HL_OK;
    long long start = 0;
    if (!p.recs || !p.ents || !p.offs || !p.res || !p.acc) {
        hl_store_set_error(s, "%s: out of memory", key);
        e = HL_ERR_NOMEM;
        goto out;
    }
    if ((e = s->ops->load_state(s, key, &p.st, &found))) goto out;
    bool same = found && same_journal(fd, &sb, &p.st);
    if (!same) {
        if (found) {
            stats->restarted = true;
            hl_log(HL_LOG_INFO, "ledger %s was rotated, truncated or replaced: indexing it from the start", key);
        }
        p.st = (hl_store_journal_state){.dev = (long long)sb.st_dev, .ino = (long long)sb.st_ino};
    }
    p.st.size = (long long)sb.st_size;
    stats->size = (long long)sb.st_size;
    stats->offset = p.st.offset;
    start = p.st.offset;
    long long pos = start; /* pos: file offset of buf.data[0] */
    /* A pass reads up to the size the file had when it began: a writer faster than the
     * indexer must not keep one pass (and its stats) from ever ending. */
    long long end = (long long)sb.st_size;
    for (;;) {
        long long want = end - (pos + (long long)buf.len);
        if (want <= 0) break;
        if (want > READ_CHUNK) want = READ_CHUNK;
        if ((e = hl_buf_reserve(&buf, (size_t)want))) {
            hl_store_set_error(s, "%s: %s", key, hl_err_str(e));
            goto out;
        }
        ssize_t got = pread_full(fd, buf.data + buf.len, (size_t)want, (off_t)(pos + (long long)buf.len));
        if (got < 0) {
            hl_store_set_error(s, "%s: cannot read: %s", key, strerror(errno));
            e = HL_ERR_IO;
            goto out;
        }
        if (got == 0) break;
        buf.len += (size_t)got;
        size_t at = 0;
        char *nl;
        while ((nl = memchr(buf.data + at, '\n', buf.len - at))) {
            size_t n = (size_t)(nl - (buf.data + at));
            if (n > HL_STORE_MAX_LINE) {
                p.pending.lines++;
                pass_malformed(&p, pos + (long long)at, "line longer than 1 MiB");
            } else if ((e = pass_line(&p, buf.data + at, n, pos + (long long)at))) {
                goto out;
            }
            at += n + 1;
            if (p.pending.lines >= BATCH_LINES && (e = pass_commit(&p, pos + (long long)at)))
                goto out;
        }
        hl_buf_consume(&buf, at);
        pos += (long long)at;
        /* No newline in more than a line's worth of bytes: not a ledger line. Skip what we
         * have; the rest of it up to the next newline will fail to parse on its own. */
        if (buf.len > HL_STORE_MAX_LINE) {
            p.pending.lines++;
            pass_malformed(&p, pos, "line longer than 1 MiB");
            pos += (long long)buf.len;
            hl_buf_reset(&buf);
        }
    }
    if (pos != p.st.offset || !found || !same || p.pending.lines) e = pass_commit(&p, pos);
out:
    pass_drop(&p);
    if (e && p.in_tx) s->ops->rollback(s);
    hl_rollup_acc_free(p.acc);
    stats->bytes = (unsigned long long)(stats->offset - start);
    hl_buf_release(&buf);
    free(p.recs);
    free(p.ents);
    free(p.offs);
    free(p.res);
    return e;
}

/* The name a journal has in journal_state: its absolute path, resolved through the directory
 * (so it is the same before the file exists and after it is replaced). */
static void journal_key(const char *path, char *out, size_t out_len) {
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    const char *base = basename(b);
    if (realpath(dirname(a), dir)) snprintf(out, out_len, "%s/%s", strcmp(dir, "/") ? dir : "", base);
    else snprintf(out, out_len, "%s", path);
}

hl_err hl_store_index(hl_store *s, const char *journal_path, hl_store_index_stats *stats) {
    hl_store_index_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!connected(s)) return HL_ERR_IO;
    int fd = open(journal_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return HL_OK;
        hl_store_set_error(s, "%s: %s", journal_path, strerror(errno));
        return HL_ERR_IO;
    }
    char key[PATH_MAX + 8];
    journal_key(journal_path, key, sizeof key);
    hl_err e = index_fd(s, key, fd, stats);
    int saved = errno;
    close(fd);
    errno = saved;
    return e;
}

/* ---- the background indexer ---- */

struct hl_store_indexer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled by kick and stop */
    pthread_cond_t done_cv;   /* broadcast after each pass */
    /* Under mu: */
    bool stop, kick, poke;
    unsigned long long requested; /* sync requests made */
    unsigned long long served;    /* requests covered by a finished pass */
    hl_err last_err;              /* of the last finished pass */
    hl_store_indexer_stats stats;
    dev_t cur_dev;                /* the file stats.offset is in; cur_known false: none */
    ino_t cur_ino;
    bool cur_known;
    /* Owned by the thread once it runs: */
    hl_store *conn;           /* its own connection; NULL until it could connect */
    char *path;
    char key[PATH_MAX + 8];
    long interval_ms;
    char *location;           /* where to connect while conn is NULL */
    char instance[129];       /* set on conn (hl_store_set_instance) */
    char open_err[512];       /* why the last connection attempt failed */
    int fd;                   /* the journal file being followed; -1: none yet */
    bool failing;             /* the last pass failed (logged once until it recovers) */
    bool may_idle;            /* a store of this gateway alone: SCHED_IDLE allowed */
    bool idle_policy;         /* the thread runs as SCHED_IDLE now (indexer_priority) */
    long long last_pass_ms;   /* how long the last pass took */
    long long last_offset;    /* where the last pass left ix->fd */
    hl_store_indexer_hooks hooks;
};

static void add_stats(hl_store_indexer_stats *t, const hl_store_index_stats *s) {
    t->inserted += s->inserted;
    t->duplicates += s->duplicates;
    t->conflicts += s->conflicts;
    t->malformed += s->malformed;
}

static void indexer_pass_end(hl_store_indexer *ix, hl_err e, const hl_store_index_stats *old_file,
                             const hl_store_index_stats *cur);

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pass competes with the event loops for the cores: at normal priority, the tens of
 * milliseconds it takes each interval delay the requests that arrive meanwhile (at one
 * connection, p99 went from 0.3 to 1.5 ms). So the thread runs as SCHED_IDLE, on the CPU
 * time the loops leave, unless that time may not be enough to keep up: when the journal
 * grew by more than URGENT_LAG since the last pass (a busy gateway: its cores are full) or
 * the last pass took more than half an interval, the pass runs at normal priority.
 * Never on a shared store: there the passes write this gateway's heartbeat, and a starved
 * thread would let the others take it for dead and its budget leases for free. Where the
 * policy cannot be set the thread stays as it is. */
static void indexer_priority(hl_store_indexer *ix) {
    struct stat fs;
    long long backlog = ix->fd >= 0 && fstat(ix->fd, &fs) == 0 ? (long long)fs.st_size - ix->last_offset : URGENT_LAG;
    bool idle = ix->may_idle && ix->last_pass_ms * 2 <= ix->interval_ms && backlog < URGENT_LAG;
    if (idle == ix->idle_policy) return;
    struct sched_param sp = {.sched_priority = 0};
    if (pthread_setschedparam(pthread_self(), idle ? SCHED_IDLE : SCHED_OTHER, &sp) == 0) ix->idle_policy = idle;
}

static void indexer_pass(hl_store_indexer *ix) {
    hl_store_index_stats old_file = {0}, cur = {0};
    hl_err e = HL_OK;
    long long t0 = mono_ms();
    if (ix->hooks.before_pass) ix->hooks.before_pass(ix->hooks.ctx);
    if (!ix->conn && hl_store_open(&ix->conn, ix->location, ix->open_err, sizeof ix->open_err) != HL_OK) {
        indexer_pass_end(ix, HL_ERR_IO, &old_file, &cur);
        return;
    }
    snprintf(ix->conn->instance, sizeof ix->conn->instance, "%s", ix->instance);
    struct stat ps;
    bool path_ok = stat(ix->path, &ps) == 0;
    if (ix->fd >= 0) {
        struct stat fs;
        if (fstat(ix->fd, &fs) == 0 && (!path_ok || fs.st_ino != ps.st_ino || fs.st_dev != ps.st_dev)) {
            /* The journal was renamed away (rotation): lines may have reached it after the last
             * pass, so read it to its end before following the new file. */
            e = index_fd(ix->conn, ix->key, ix->fd, &old_file);
            close(ix->fd);
            ix->fd = -1;
        }
    }
    if (!e && ix->fd < 0 && path_ok) {
        ix->fd = open(ix->path, O_RDONLY | O_CLOEXEC);
        if (ix->fd < 0 && errno != ENOENT) {
            hl_store_set_error(ix->conn, "%s: %s", ix->path, strerror(errno));
            e = HL_ERR_IO;
        }
    }
    if (!e && ix->fd >= 0) {
        indexer_priority(ix);
        e = index_fd(ix->conn, ix->key, ix->fd, &cur);
        ix->last_offset = cur.offset;
    } else {
        ix->last_offset = 0;
    }
    if (!e && ix->hooks.after_pass) ix->hooks.after_pass(ix->hooks.ctx, ix->conn);
    ix->last_pass_ms = mono_ms() - t0;
    indexer_pass_end(ix, e, &old_file, &cur);
}

/* Publishes a pass's outcome (stats, error) and logs a failure once until it recovers. */
static void indexer_pass_end(hl_store_indexer *ix, hl_err e, const hl_store_index_stats *old_file,
                             const hl_store_index_stats *cur) {
    const char *why = ix->conn ? hl_store_errmsg(ix->conn) : ix->open_err;
    pthread_mutex_lock(&ix->mu);
    ix->last_err = e;
    ix->stats.passes++;
    add_stats(&ix->stats, old_file);
    add_stats(&ix->stats, cur);
    struct stat fs;
    if (ix->fd >= 0) {
        ix->stats.offset = cur->offset;
        ix->stats.lag_bytes = cur->size > cur->offset ? cur->size - cur->offset : 0;
        ix->cur_known = fstat(ix->fd, &fs) == 0;
        ix->cur_dev = fs.st_dev;
        ix->cur_ino = fs.st_ino;
    }
    if (e) {
        ix->stats.errors++;
        snprintf(ix->stats.last_error, sizeof ix->stats.last_error, "%s", why);
    } else {
        ix->stats.last_error[0] = '\0';
    }
    pthread_mutex_unlock(&ix->mu);
    if (e && !ix->failing) hl_log(HL_LOG_ERROR, "ledger indexer: %s (retrying every %ld ms)", why, ix->interval_ms);
    if (!e && ix->failing) hl_log(HL_LOG_INFO, "ledger indexer: working again");
    ix->failing = e != HL_OK;
}

/* Runs hooks.poked (the mutex released meanwhile). Under mu. */
static void indexer_poked(hl_store_indexer *ix) {
    ix->poke = false;
    if (!ix->hooks.poked || !ix->conn) return;
    pthread_mutex_unlock(&ix->mu);
    ix->hooks.poked(ix->hooks.ctx, ix->conn);
    pthread_mutex_lock(&ix->mu);
}

static void *indexer_main(void *arg) {
    hl_store_indexer *ix = arg;
    pthread_mutex_lock(&ix->mu);
    while (!ix->stop) {
        /* The next pass is due interval_ms after the last one began; pokes in between run
         * their hook without moving it. */
        struct timespec until = hl_time_after(CLOCK_MONOTONIC, ix->interval_ms);
        while (!ix->stop && !ix->kick) {
            if (ix->poke) {
                indexer_poked(ix);
                continue;
            }
            if (pthread_cond_timedwait(&ix->cv, &ix->mu, &until) != 0) break;
        }
        if (ix->stop) break;
        ix->kick = false;
        unsigned long long serving = ix->requested; /* requests made before this pass began */
        pthread_mutex_unlock(&ix->mu);
        indexer_pass(ix);
        pthread_mutex_lock(&ix->mu);
        ix->served = serving;
        pthread_cond_broadcast(&ix->done_cv);
    }
    unsigned long long serving = ix->requested;
    pthread_mutex_unlock(&ix->mu);
    indexer_pass(ix); /* the last one: every line complete before stop() */
    pthread_mutex_lock(&ix->mu);
    ix->served = serving;
    pthread_cond_broadcast(&ix->done_cv);
    pthread_mutex_unlock(&ix->mu);
    return NULL;
}

hl_err hl_store_indexer_start(hl_store *s, const char *journal_path, long interval_ms,
                              const hl_store_indexer_hooks *hooks) {
    if (s->indexer || !journal_path || interval_ms < 1) {
        hl_store_set_error(s, s->indexer ? "an indexer already runs on this store" : "indexer: invalid arguments");
        return HL_ERR_INVAL;
    }
    hl_store_indexer *ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->path = strdup(journal_path)) || !(ix->location = strdup(s->location))) {
        if (ix) free(ix->path);
        free(ix);
        hl_store_set_error(s, "out of memory");
        return HL_ERR_NOMEM;
    }
    ix->fd = -1;
    ix->interval_ms = interval_ms;
    ix->may_idle = !s->ops->shared;
    snprintf(ix->instance, sizeof ix->instance, "%s", s->instance);
    if (hooks) ix->hooks = *hooks;
    journal_key(journal_path, ix->key, sizeof ix->key);
    char err[512];
    hl_err e = s->impl ? hl_store_open(&ix->conn, s->location, err, sizeof err) : HL_OK;
    if (e) {
        hl_store_set_error(s, "indexer: %s", err);
        free(ix->path);
        free(ix->location);
        free(ix);
        return e;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ix->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&ix->done_cv, NULL);
    pthread_mutex_init(&ix->mu, NULL);
    if (pthread_create(&ix->thread, NULL, indexer_main, ix) != 0) {
        hl_store_set_error(s, "indexer: cannot start a thread: %s", strerror(errno));
        pthread_cond_destroy(&ix->cv);
        pthread_cond_destroy(&ix->done_cv);
        pthread_mutex_destroy(&ix->mu);
        hl_store_close(ix->conn);
        free(ix->path);
        free(ix->location);
        free(ix);
        return HL_ERR_IO;
    }
    s->indexer = ix;
    return HL_OK;
}

void hl_store_indexer_kick(hl_store *s) {
    hl_store_indexer *ix = s ? s->indexer : NULL;
    if (!ix) return;
    pthread_mutex_lock(&ix->mu);
    ix->kick = true;
    pthread_cond_signal(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
}

void hl_store_indexer_poke(hl_store *s) {
    hl_store_indexer *ix = s ? s->indexer : NULL;
    if (!ix) return;
    pthread_mutex_lock(&ix->mu);
    ix->poke = true;
    pthread_cond_signal(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
}

hl_err hl_store_indexer_sync(hl_store *s) {
    hl_store_indexer *ix = s ? s->indexer : NULL;
    if (!ix) return HL_ERR_INVAL;
    pthread_mutex_lock(&ix->mu);
    unsigned long long seq = ++ix->requested;
    ix->kick = true;
    pthread_cond_signal(&ix->cv);
    while (ix->served < seq) pthread_cond_wait(&ix->done_cv, &ix->mu);
    hl_err e = ix->last_err;
    pthread_mutex_unlock(&ix->mu);
    return e;
}

void hl_store_indexer_stop(hl_store *s) {
    hl_store_indexer *ix = s ? s->indexer : NULL;
    if (!ix) return;
    pthread_mutex_lock(&ix->mu);
    ix->stop = true;
    pthread_cond_signal(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
    pthread_join(ix->thread, NULL);
    s->indexer = NULL;
    if (ix->fd >= 0) close(ix->fd);
    hl_store_close(ix->conn);
    pthread_cond_destroy(&ix->cv);
    pthread_cond_destroy(&ix->done_cv);
    pthread_mutex_destroy(&ix->mu);
    free(ix->path);
    free(ix->location);
    free(ix);
}

void hl_store_indexer_stats_get(hl_store *s, hl_store_indexer_stats *out) {
    memset(out, 0, sizeof *out);
    hl_store_indexer *ix = s ? s->indexer : NULL;
    if (!ix) return;
    /* The lag is measured now, not at the end of the last pass (when it is 0 by
     * construction): the journal's size now, less what the index has of that file. */
    struct stat ps;
    bool have = stat(ix->path, &ps) == 0;
    pthread_mutex_lock(&ix->mu);
    *out = ix->stats;
    if (have) {
        long long indexed = ix->cur_known && ix->cur_dev == ps.st_dev && ix->cur_ino == ps.st_ino ? out->offset : 0;
        out->lag_bytes = (long long)ps.st_size > indexed ? (long long)ps.st_size - indexed : 0;
    }
    pthread_mutex_unlock(&ix->mu);
}
