/* hl_ledger_read: the one reader of ledger lines (see "The line" in hl_ledger.h). The store's
 * indexer parses with hl_ledger_parse_line; advise, simulate and the budgets' replay read a
 * journal file with hl_ledger_read, which validates and deduplicates exactly as the indexer
 * does, so every command counts the same records. */
#include "hl_ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_time.h"

enum { READ_CHUNK = 1 << 20 }; /* bytes read per read() */

/* ---- one line ---- */

/* Each getter: missing or null leaves the default and succeeds; a value of another type
 * fails (the line is malformed). */
static bool get_str(json_t *o, const char *k, const char **out) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return false;
    *out = json_string_value(v);
    return true;
}

static bool get_num(json_t *o, const char *k, double *out, bool *present) {
    json_t *v = json_object_get(o, k);
    *present = false;
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    *present = true;
    return true;
}

/* An integer within [lo, hi]. */
static bool get_int(json_t *o, const char *k, long long lo, long long hi, long long *out, bool *present) {
    json_t *v = json_object_get(o, k);
    *present = false;
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return false;
    long long x = (long long)json_integer_value(v);
    if (x < lo || x > hi) return false;
    *out = x;
    *present = true;
    return true;
}

static bool get_bool(json_t *o, const char *k, bool *out) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return false;
    *out = json_is_true(v);
    return true;
}

/* Two 64-bit multiplicative hashes (FNV-1a, and the same walk with another basis and
 * multiplier), each through a splitmix64 finalizer: a 128-bit hash for keys and derived ids. Not cryptographic: ledger lines are
 * written by the gateway or by the operator's own tools. */
static uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct hasher {
    uint64_t a, c;
    size_t n;
} hasher;

static hasher hash_start(void) { return (hasher){1469598103934665603ull, 0x6c62272e07bb0142ull, 0}; }

static void hash_add(hasher *h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ b[i]) * 1099511628211ull;
        h->c = (h->c ^ b[i]) * 0x9e3779b97f4a7c15ull;
    }
    h->n += n;
}

static void hash_end(const hasher *h, uint64_t out[2]) {
    out[0] = mix64(h->a ^ h->n);
    out[1] = mix64(h->c + 0x9e3779b97f4a7c15ull * h->n);
}

/* The id of a line without request_id: "ct-" and a hash of the brief's six fields. */
static void derive_id(hl_ledger_entry *e) {
    const hl_ledger_record *r = &e->rec;
    char canon[200];
    int n = snprintf(canon, sizeof canon, "%lld|%s|%ld|%ld|%.17g|", e->ts_us, r->cloud ? "cloud" : "local",
                     r->usage.input_tokens, r->usage.output_tokens, r->latency_ms);
    if (r->cost_known) n += snprintf(canon + n, sizeof canon - (size_t)n, "%.17g", r->cost_usd);
    else n += snprintf(canon + n, sizeof canon - (size_t)n, "null");
    uint64_t h[2];
    hasher hs = hash_start();
    hash_add(&hs, canon, (size_t)n);
    hash_end(&hs, h);
    snprintf(e->id_buf, sizeof e->id_buf, "ct-%016llx%016llx", (unsigned long long)h[0], (unsigned long long)h[1]);
    e->rec.request_id = e->id_buf;
    e->id_derived = true;
}

/* The brief's six fields. NULL, or why the line is not a record. */
static const char *parse_required(json_t *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    const char *ts = NULL, *source = NULL;
    bool present;
    long long v;
    if (!get_str(root, "timestamp", &ts) || !ts) return "timestamp missing or not a string";
    if (hl_time_parse_us(ts, strlen(ts), &e->ts_us) != HL_OK) return "timestamp is not ISO 8601";
    if (e->ts_us < 0) return "timestamp before 1970";
    e->ts_ms = e->ts_us / 1000;
    r->timestamp = (double)e->ts_us / 1e6;
    if (!get_str(root, "source", &source) || !source) return "source missing or not a string";
    if (!strcmp(source, "cloud")) r->cloud = true;
    else if (strcmp(source, "local") != 0) return "source is neither cloud nor local";
    if (!get_int(root, "input_tokens", 0, LONG_MAX, &v, &present) || !present)
        return "input_tokens missing or not a count";
    r->usage.input_tokens = (long)v;
    if (!get_int(root, "output_tokens", 0, LONG_MAX, &v, &present) || !present)
        return "output_tokens missing or not a count";
    r->usage.output_tokens = (long)v;
    r->usage.known = true;
    if (!get_num(root, "latency_ms", &r->latency_ms, &present) || !present) return "latency_ms missing or not a number";
    if (r->latency_ms < 0) return "latency_ms is negative";
    if (!json_object_get(root, "cost_usd")) return "cost_usd missing";
    if (!get_num(root, "cost_usd", &r->cost_usd, &r->cost_known)) return "cost_usd is not a number";
    if (!r->cost_known) r->cost_usd = 0;
    return NULL;
}

/* Identity: request_id and attempt, or a derived id. */
static const char *parse_identity(json_t *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    long long v = 1;
    bool present;
    if (!get_str(root, "request_id", &r->request_id)) return "request_id is not a string";
    if (r->request_id && !r->request_id[0]) return "request_id is empty";
    if (!get_int(root, "attempt", 1, INT_MAX, &v, &present)) return "attempt is not an integer >= 1";
    if (r->request_id && !present) return "attempt missing (required with request_id)";
    r->attempt = r->request_id ? (int)v : 1;
    if (!r->request_id) derive_id(e);
    return NULL;
}

static const char *parse_optional(json_t *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    if (!get_str(root, "backend", &r->backend) || !get_str(root, "model", &r->model) ||
        !get_str(root, "route_reason", &r->route_reason) || !get_str(root, "status", &r->status) ||
        !get_str(root, "tenant", &r->tenant) || !get_str(root, "task_type", &r->task_type) ||
        !get_str(root, "pii", &r->pii) || !get_str(root, "error", &r->error))
        return "a text field holds a non-string";
    bool present;
    r->ttft_ms = r->confidence = -1;
    double d;
    if (!get_num(root, "ttft_ms", &d, &present) || (present && d < 0)) return "ttft_ms is not a number >= 0";
    if (present) r->ttft_ms = d;
    if (!get_num(root, "confidence", &d, &present) || (present && d < 0)) return "confidence is not a number >= 0";
    if (present) r->confidence = d;
    long long v;
    if (!get_int(root, "cached_input_tokens", 0, LONG_MAX, &v, &present)) return "cached_input_tokens is not a count";
    if (present) r->usage.cached_input_tokens = (long)v;
    if (!get_int(root, "cache_write_tokens", 0, LONG_MAX, &v, &present)) return "cache_write_tokens is not a count";
    if (present) r->usage.cache_write_tokens = (long)v;
    if (!get_int(root, "http_status", 0, 999, &v, &present)) return "http_status is not an integer 0..999";
    if (present) r->http_status = (int)v;
    if (!get_bool(root, "stream", &r->stream) || !get_bool(root, "usage_estimated", &r->usage.estimated) ||
        !get_bool(root, "task_inferred", &r->task_inferred) || !get_bool(root, "sensitive", &r->sensitive))
        return "a boolean field holds something else";
    return NULL;
}

bool hl_ledger_blank(const char *line, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') return false;
    return true;
}

static hl_err fail(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static hl_err fail(char *why, size_t why_len, const char *fmt, ...) {
    if (why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return HL_ERR_PARSE;
}

hl_err hl_ledger_parse_line(const char *line, size_t len, hl_ledger_entry *e, char *why, size_t why_len) {
    memset(e, 0, sizeof *e);
    if (why_len) why[0] = '\0';
    if (hl_ledger_blank(line, len)) return fail(why, why_len, "blank line");
    if (len > HL_LEDGER_MAX_LINE) return fail(why, why_len, "line longer than 1 MiB");
    json_error_t je;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return fail(why, why_len, "not JSON: %s", je.text);
    const char *bad = json_is_object(root) ? NULL : "not a JSON object";
    e->rec.attempt = 1;
    if (!bad) bad = parse_required(root, e);
    if (!bad) bad = parse_optional(root, e);
    if (!bad) bad = parse_identity(root, e);
    if (bad) {
        json_decref(root);
        memset(e, 0, sizeof *e);
        return fail(why, why_len, "%s", bad);
    }
    e->doc = root;
    return HL_OK;
}

void hl_ledger_entry_release(hl_ledger_entry *e) {
    if (!e) return;
    json_decref(e->doc);
    e->doc = NULL;
}

hl_err hl_ledger_line_time(const char *line, size_t len, long long *ms_out) {
    static const char pre[] = "{\"timestamp\":\"";
    const size_t np = sizeof pre - 1;
    if (len > np && !memcmp(line, pre, np)) {
        const char *q = memchr(line + np, '"', len - np);
        long long ms;
        if (q && !memchr(line + np, '\\', (size_t)(q - line - np)) &&
            hl_time_parse_ms(line + np, (size_t)(q - line - np), &ms) == HL_OK && ms >= 0) {
            *ms_out = ms;
            return HL_OK;
        }
    }
    hl_ledger_entry e;
    char why[8];
    HL_TRY(hl_ledger_parse_line(line, len, &e, why, sizeof why));
    *ms_out = e.ts_ms;
    hl_ledger_entry_release(&e);
    return HL_OK;
}

/* ---- the keys already read ---- */

/* Open addressing over a 128-bit hash of "request_id\0attempt" and the timestamp it was first
 * read with. A slot with both halves 0 is free (a hash of 0 is stored as 1). */
typedef struct seen_slot {
    uint64_t h[2];
    long long ts_ms;
} seen_slot;

typedef struct seen_set {
    seen_slot *v;
    size_t cap, n;             /* cap: a power of two */
} seen_set;

typedef enum seen_result { SEEN_NEW, SEEN_DUPLICATE, SEEN_CONFLICT } seen_result;

static hl_err seen_grow(seen_set *s) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    seen_slot *v = calloc(cap, sizeof *v);
    if (!v) return HL_ERR_NOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->v[i].h[0] && !s->v[i].h[1]) continue;
        size_t j = (size_t)s->v[i].h[0] & (cap - 1);
        while (v[j].h[0] || v[j].h[1]) j = (j + 1) & (cap - 1);
        v[j] = s->v[i];
    }
    free(s->v);
    s->v = v;
    s->cap = cap;
    return HL_OK;
}

static hl_err seen_add(seen_set *s, const hl_ledger_entry *e, seen_result *out) {
    if ((s->n + 1) * 10 > s->cap * 7) HL_TRY(seen_grow(s));
    char att[16];
    int an = snprintf(att, sizeof att, "%d", e->rec.attempt);
    uint64_t h[2];
    hasher hs = hash_start();
    hash_add(&hs, e->rec.request_id, strlen(e->rec.request_id) + 1); /* with its '\0' */
    hash_add(&hs, att, (size_t)an);
    hash_end(&hs, h);
    if (!h[0] && !h[1]) h[1] = 1;
    size_t j = (size_t)h[0] & (s->cap - 1);
    for (; s->v[j].h[0] || s->v[j].h[1]; j = (j + 1) & (s->cap - 1)) {
        if (s->v[j].h[0] == h[0] && s->v[j].h[1] == h[1]) {
            *out = s->v[j].ts_ms == e->ts_ms ? SEEN_DUPLICATE : SEEN_CONFLICT;
            return HL_OK;
        }
    }
    s->v[j] = (seen_slot){{h[0], h[1]}, e->ts_ms};
    s->n++;
    *out = SEEN_NEW;
    return HL_OK;
}

/* ---- a journal file ---- */

typedef struct reader {
    hl_ledger_entry_fn fn;
    void *ctx;
    hl_ledger_read_stats *st;
    seen_set seen;
} reader;

static void malformed(reader *rd, const char *why) {
    if (!rd->st->malformed++) {
        rd->st->first_bad_line = rd->st->lines;
        snprintf(rd->st->first_bad, sizeof rd->st->first_bad, "%s", why);
    }
}

/* One complete line (without its '\n'). */
static hl_err read_line(reader *rd, const char *line, size_t n) {
    hl_ledger_read_stats *st = rd->st;
    st->lines++;
    if (hl_ledger_blank(line, n)) {
        st->blank++;
        return HL_OK;
    }
    hl_ledger_entry e;
    char why[160];
    if (hl_ledger_parse_line(line, n, &e, why, sizeof why) != HL_OK) {
        malformed(rd, why);
        return HL_OK;
    }
    seen_result sr;
    hl_err rc = seen_add(&rd->seen, &e, &sr);
    if (!rc && sr == SEEN_NEW) {
        st->records++;
        rc = rd->fn(rd->ctx, &e, st->lines);
    } else if (!rc) {
        if (sr == SEEN_DUPLICATE) st->duplicates++;
        else st->conflicts++;
    }
    hl_ledger_entry_release(&e);
    return rc;
}

/* Splits buf into lines and reads the complete ones; what is left (a line cut by the chunk
 * edge) is moved to the front. A run of more than a line's worth without a newline is
 * skipped up to the next newline, as one malformed line. */
static hl_err read_lines(reader *rd, hl_buf *buf, bool *skipping) {
    size_t at = 0;
    char *nl;
    hl_err rc = HL_OK;
    while (!rc && (nl = memchr(buf->data + at, '\n', buf->len - at))) {
        size_t n = (size_t)(nl - (buf->data + at));
        if (*skipping) {
            *skipping = false;
        } else if (n > HL_LEDGER_MAX_LINE) {
            rd->st->lines++;
            malformed(rd, "line longer than 1 MiB");
        } else {
            rc = read_line(rd, buf->data + at, n);
        }
        at += n + 1;
        rd->st->end_offset += (long long)(n + 1);
    }
    hl_buf_consume(buf, at);
    if (buf->len > HL_LEDGER_MAX_LINE) {
        if (!*skipping) {
            rd->st->lines++;
            malformed(rd, "line longer than 1 MiB");
        }
        *skipping = true;
        rd->st->end_offset += (long long)buf->len;
        hl_buf_reset(buf);
    }
    return rc;
}

static hl_err read_fd(reader *rd, int fd) {
    hl_buf buf;
    hl_buf_init(&buf, READ_CHUNK + HL_LEDGER_MAX_LINE + 1);
    bool skipping = false;
    hl_err rc = HL_OK;
    for (;;) {
        if ((rc = hl_buf_reserve(&buf, READ_CHUNK))) break;
        ssize_t got = read(fd, buf.data + buf.len, READ_CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = HL_ERR_IO;
            break;
        }
        if (got == 0) break;
        buf.len += (size_t)got;
        if ((rc = read_lines(rd, &buf, &skipping))) break;
    }
    if (!rc) rd->st->partial = buf.len > 0 || skipping;
    hl_buf_release(&buf);
    return rc;
}

hl_err hl_ledger_read(const char *path, long long offset, hl_ledger_entry_fn fn, void *ctx,
                      hl_ledger_read_stats *st, char *errbuf, size_t errbuf_len) {
    memset(st, 0, sizeof *st);
    if (errbuf_len) errbuf[0] = '\0';
    st->end_offset = offset;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (offset > 0 && lseek(fd, (off_t)offset, SEEK_SET) < 0)) {
        int saved = errno;
        snprintf(errbuf, errbuf_len, "%s: %s", path, strerror(saved));
        if (fd >= 0) close(fd);
        errno = saved;
        return HL_ERR_IO;
    }
    reader rd = {.fn = fn, .ctx = ctx, .st = st};
    hl_err rc = read_fd(&rd, fd);
    int saved = errno;
    if (rc == HL_ERR_IO) snprintf(errbuf, errbuf_len, "%s: cannot read: %s", path, strerror(saved));
    else if (rc == HL_ERR_NOMEM) snprintf(errbuf, errbuf_len, "%s: out of memory", path);
    free(rd.seen.v);
    close(fd);
    errno = saved;
    return rc;
}
