/* hl_ledger_read: the one reader of ledger lines (see "The line" in hl_ledger.h). The store's
 * indexer parses with hl_ledger_parse_line; advise, simulate and the budgets' replay read a
 * journal file with hl_ledger_read, which validates and deduplicates exactly as the indexer
 * does, so every command counts the same records. In three parts: the line's JSON (read by
 * hand), its fields (types, ranges, the derived id of a CostTracker line), and a journal file
 * (lines, the set of keys already read). */
#include "hl_ledger.h"
#include "hl_buf.h"
#include "hl_utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_time.h"

enum { READ_CHUNK = 1 << 20 }; /* bytes read per read() */

/* ---- the JSON of one line ----
 *
 * A line is one flat JSON object (RFC 8259), read by hand rather than through a JSON tree:
 * every reader goes through here, the budgets' replay at start over a month of lines, and a
 * tree costs an allocation per value. Values of the known keys (the fields of hl_ledger.h) are
 * kept; the values of other keys are checked as JSON and skipped (nested arrays and objects
 * allowed, 256 levels at most). Strings are checked as UTF-8 and decoded (escapes, surrogate
 * pairs) into one buffer the size of the line; "\u0000" is refused (fields are C strings). A
 * known key given twice makes the line malformed. */

enum field {
    F_TIMESTAMP, F_SOURCE, F_INPUT_TOKENS, F_OUTPUT_TOKENS, F_LATENCY_MS, F_COST_USD, F_REQUEST_ID, F_ATTEMPT,
    F_BACKEND, F_MODEL, F_ROUTE_REASON, F_STATUS, F_STREAM, F_TTFT_MS, F_CACHED_INPUT_TOKENS,
    F_CACHE_WRITE_TOKENS, F_USAGE_ESTIMATED, F_TENANT, F_TASK_TYPE, F_TASK_INFERRED, F_SENSITIVE, F_PII,
    F_CONFIDENCE, F_HTTP_STATUS, F_ERROR, F_CLIENT_REQUEST_ID, F_KEY_ID, F_KEY_NAME,
    F_CONFIDENCE_MARGIN, F_CONFIDENCE_MIN, F_SHADOW, F_SCORE, F_SCORE_METHOD, F_AGREE, F_REFERENCE,
    F_REF_OUTPUT_TOKENS, F_EVAL_RUN, F_REPLICA, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "timestamp", "source", "input_tokens", "output_tokens", "latency_ms", "cost_usd", "request_id", "attempt",
    "backend", "model", "route_reason", "status", "stream", "ttft_ms", "cached_input_tokens",
    "cache_write_tokens", "usage_estimated", "tenant", "task_type", "task_inferred", "sensitive", "pii",
    "confidence", "http_status", "error", "client_request_id", "key_id", "key_name",
    "confidence_margin", "confidence_min", "shadow", "score", "score_method", "agree", "reference",
    "ref_output_tokens", "eval_run", "replica",
};

/* Their lengths, for matching a key in place (hl_ledger_read's hot loop). */
static unsigned char field_len[F_COUNT];

static void field_len_init(void) {
    for (int i = 0; i < F_COUNT; i++) field_len[i] = (unsigned char)strlen(field_names[i]);
}

typedef enum vkind { V_ABSENT = 0, V_NULL, V_STR, V_INT, V_REAL, V_BOOL, V_OTHER } vkind;

/* 16 bytes: a line's 38 slots are cleared for every line. */
typedef struct val {
    union {
        const char *s;        /* V_STR: in the decode buffer */
        long long i;          /* V_INT */
        double d;             /* V_REAL */
        bool b;               /* V_BOOL */
    } u;
    vkind k;
} val;

typedef struct scan {
    const char *p, *end;
    char *out;                /* the decode buffer's free end */
    const char *err;          /* why the line is not JSON */
    char msg[64];             /* a message naming a key */
    val f[F_COUNT];
} scan;

enum { MAX_DEPTH = 256 };

static bool bad(scan *sc, const char *why) {
    if (!sc->err) sc->err = why;
    return false;
}

static void skip_ws_run(scan *sc) {
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r')) sc->p++;
}

/* The writer's lines have no whitespace: one inlined test settles the common case (a hundred
 * calls a line). */
static inline void skip_ws(scan *sc) {
    if (sc->p < sc->end && (unsigned char)*sc->p <= ' ') skip_ws_run(sc);
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A \u escape at sc->p (just past the 'u'), a surrogate pair included. */
static bool read_u_escape(scan *sc, char **o) {
    int hi = sc->end - sc->p >= 4 ? hex4(sc->p) : -1;
    if (hi < 0) return bad(sc, "bad \\u escape");
    sc->p += 4;
    unsigned cp = (unsigned)hi;
    if (cp >= 0xdc00 && cp <= 0xdfff) return bad(sc, "lone low surrogate");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        int lo = sc->end - sc->p >= 6 && sc->p[0] == '\\' && sc->p[1] == 'u' ? hex4(sc->p + 2) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return bad(sc, "lone high surrogate");
        sc->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
    }
    if (cp == 0) return bad(sc, "\\u0000 in a string");
    *o += hl_utf8_put(*o, cp);
    return true;
}

/* A string at sc->p (on its opening quote), decoded and terminated at sc->out; *s points to
 * it and sc->out moves past it. */
static bool read_string(scan *sc, const char **s) {
    char *o = sc->out;
    sc->p++;
    while (sc->p < sc->end) {
        /* Most bytes are printable ASCII with nothing to decode: found eight at a time,
         * copied at once. */
        const char *q = sc->p + hl_json_plain_len(sc->p, (size_t)(sc->end - sc->p), 1);
        if (q > sc->p) {
            memcpy(o, sc->p, (size_t)(q - sc->p));
            o += q - sc->p;
            sc->p = q;
            if (q == sc->end) break;
        }
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            sc->p++;
            *o++ = '\0';
            *s = sc->out;
            sc->out = o;
            return true;
        }
        if (c < 0x20) return bad(sc, "control character in a string");
        if (c == '\\') {
            if (++sc->p >= sc->end) break;
            char e = *sc->p++;
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *k = strchr(from, e);
            if (e == 'u') {
                if (!read_u_escape(sc, &o)) return false;
            } else if (e && k) {
                *o++ = to[k - from];
            } else {
                return bad(sc, "bad escape in a string");
            }
            continue;
        }
        size_t n = c < 0x80 ? 1 : hl_utf8_valid_len((const unsigned char *)sc->p, (const unsigned char *)sc->end);
        if (!n) return bad(sc, "invalid UTF-8 in a string");
        memcpy(o, sc->p, n);
        o += n;
        sc->p += n;
    }
    return bad(sc, "unterminated string");
}

/* A number at sc->p. The numbers the writer makes (an integer, or digits with a point:
 * "0.240", "0.0000000033") are converted as they are checked, without strtoll/strtod, when
 * that gives the same value: at most 15 significant digits and 22 after the point, so the
 * digits as an integer and the power of ten are both exact doubles and one division rounds
 * correctly (Clinger's fast path). Anything else goes through strtoll/strtod. */
static bool read_number(scan *sc, val *v) {
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *st = sc->p, *p = sc->p, *end = sc->end;
    bool neg = p < end && *p == '-';
    p += neg;
    unsigned long long m = 0; /* the digits, exact while digits <= 15 (wraps harmlessly beyond) */
    int digits = 0, frac = 0; /* significant digits; digits after the point */
    if (p < end && *p == '0') p++;
    else if (p < end && *p >= '1' && *p <= '9')
        for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) m = m * 10 + (unsigned)(*p - '0');
    else return bad(sc, "bad number");
    bool is_int = true, exact = true;
    if (p < end && *p == '.') {
        is_int = false;
        if (++p >= end || *p < '0' || *p > '9') return bad(sc, "bad number");
        for (; p < end && *p >= '0' && *p <= '9'; p++, frac++) {
            digits += m || *p != '0';
            m = m * 10 + (unsigned)(*p - '0');
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = false;
        exact = false;
        if (++p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return bad(sc, "bad number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (exact && digits <= 15 && frac <= 22) {
        if (is_int) {
            v->k = V_INT;
            v->u.i = neg ? -(long long)m : (long long)m;
        } else {
            v->k = V_REAL;
            v->u.d = (double)m / pow10[frac];
            if (neg) v->u.d = -v->u.d;
        }
        sc->p = p;
        return true;
    }
    /* strtoll/strtod need a terminated copy: the decode buffer's free end holds it briefly */
    memcpy(sc->out, st, (size_t)(p - st));
    sc->out[p - st] = '\0';
    errno = 0;
    if (is_int) {
        v->u.i = strtoll(sc->out, NULL, 10);
        if (errno == ERANGE) return bad(sc, "integer out of range");
        v->k = V_INT;
    } else {
        v->u.d = strtod(sc->out, NULL);
        if (isinf(v->u.d)) return bad(sc, "number out of range");
        v->k = V_REAL;
    }
    sc->p = p;
    return true;
}

static bool read_value(scan *sc, val *v, int depth);

/* An array or object: checked, not kept (sc->out is rewound). */
static bool skip_container(scan *sc, int depth) {
    if (depth >= MAX_DEPTH) return bad(sc, "nested too deep");
    char close = *sc->p == '{' ? '}' : ']';
    char *mark = sc->out;
    val tmp;
    sc->p++;
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == close) {
        sc->p++;
        return true;
    }
    for (;;) {
        if (close == '}') {
            const char *key;
            if (sc->p >= sc->end || *sc->p != '"') return bad(sc, "object key expected");
            if (!read_string(sc, &key)) return false;
            skip_ws(sc);
            if (sc->p >= sc->end || *sc->p++ != ':') return bad(sc, "':' expected");
        }
        if (!read_value(sc, &tmp, depth + 1)) return false;
        sc->out = mark;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            skip_ws(sc);
            continue;
        }
        if (sc->p < sc->end && *sc->p == close) {
            sc->p++;
            return true;
        }
        return bad(sc, "',' or the end of an array or object expected");
    }
}

/* The literal word (n bytes) at sc->p. */
static bool literal(scan *sc, const char *word, size_t n) {
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0) return bad(sc, "invalid token");
    sc->p += n;
    return true;
}

static bool read_value(scan *sc, val *v, int depth) {
    skip_ws(sc);
    if (sc->p >= sc->end) return bad(sc, "value expected");
    switch (*sc->p) {
    case '"': v->k = V_STR; return read_string(sc, &v->u.s);
    case '{': case '[': v->k = V_OTHER; return skip_container(sc, depth);
    case 't': v->k = V_BOOL; v->u.b = true; return literal(sc, "true", 4);
    case 'f': v->k = V_BOOL; v->u.b = false; return literal(sc, "false", 5);
    case 'n': v->k = V_NULL; return literal(sc, "null", 4);
    default: return read_number(sc, v);
    }
}

/* The field named key, trying `next` first: the writer puts the fields in enum order (bar
 * the optional ones), so the key after field f is most often f + 1. */
static int field_of(const char *key, int next) {
    if (next >= 0 && next < F_COUNT && !strcmp(field_names[next], key)) return next;
    for (int i = 0; i < F_COUNT; i++)
        if (field_names[i][0] == key[0] && !strcmp(field_names[i], key)) return i;
    return -1;
}

/* The object of a line into sc->f. NULL, or why the line is not a flat JSON object. */
static const char *read_object(scan *sc) {
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != '{') {
        if (sc->p < sc->end && *sc->p == '[') return "not a JSON object";
        return "not JSON: '{' expected";
    }
    sc->p++;
    skip_ws(sc);
    bool first = true;
    int next = 0;
    while (!(first && sc->p < sc->end && *sc->p == '}')) {
        const char *key;
        char *mark = sc->out;
        if (sc->p >= sc->end || *sc->p != '"') return "not JSON: object key expected";
        /* The expected key, as the writer spells it (no escapes), is taken in place. */
        int f = -1;
        if (next < F_COUNT) {
            size_t kl = field_len[next];
            if ((size_t)(sc->end - sc->p) > kl + 1 && sc->p[kl + 1] == '"' && !memcmp(sc->p + 1, field_names[next], kl)) {
                f = next;
                sc->p += kl + 2;
            }
        }
        if (f < 0) {
            if (!read_string(sc, &key)) return NULL; /* sc->err says why */
            f = field_of(key, next);
            sc->out = mark;
        }
        if (f >= 0) next = f + 1;
        skip_ws(sc);
        if (sc->p >= sc->end || *sc->p++ != ':') return "not JSON: ':' expected";
        val v;
        if (!read_value(sc, &v, 1)) return NULL; /* sc->err says why */
        if (f >= 0 && sc->f[f].k != V_ABSENT) {
            snprintf(sc->msg, sizeof sc->msg, "%s given twice", field_names[f]);
            return sc->msg;
        }
        if (f >= 0) sc->f[f] = v;
        else sc->out = mark; /* an unknown key's value is not kept */
        first = false;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            skip_ws(sc);
            continue;
        }
        if (sc->p < sc->end && *sc->p == '}') break;
        return "not JSON: ',' or '}' expected";
    }
    sc->p++;
    skip_ws(sc);
    return sc->p == sc->end ? NULL : "not JSON: bytes after the object";
}

/* Each getter: missing or null leaves the default and succeeds; a value of another type
 * fails (the line is malformed). */
static bool get_str(const scan *sc, enum field k, const char **out) {
    const val *v = &sc->f[k];
    if (v->k == V_ABSENT || v->k == V_NULL) return true;
    if (v->k != V_STR) return false;
    *out = v->u.s;
    return true;
}

static bool get_num(const scan *sc, enum field k, double *out, bool *present) {
    const val *v = &sc->f[k];
    *present = false;
    if (v->k == V_ABSENT || v->k == V_NULL) return true;
    if (v->k != V_INT && v->k != V_REAL) return false;
    *out = v->k == V_INT ? (double)v->u.i : v->u.d;
    *present = true;
    return true;
}

/* An integer within [lo, hi]. */
static bool get_int(const scan *sc, enum field k, long long lo, long long hi, long long *out, bool *present) {
    const val *v = &sc->f[k];
    *present = false;
    if (v->k == V_ABSENT || v->k == V_NULL) return true;
    if (v->k != V_INT || v->u.i < lo || v->u.i > hi) return false;
    *out = v->u.i;
    *present = true;
    return true;
}

static bool get_bool(const scan *sc, enum field k, bool *out) {
    const val *v = &sc->f[k];
    if (v->k == V_ABSENT || v->k == V_NULL) return true;
    if (v->k != V_BOOL) return false;
    *out = v->u.b;
    return true;
}

/* ---- one line: the fields ---- */

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
static const char *parse_required(scan *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    const char *ts = NULL, *source = NULL;
    bool present;
    long long v;
    if (!get_str(root, F_TIMESTAMP, &ts) || !ts) return "timestamp missing or not a string";
    if (hl_time_parse_us(ts, strlen(ts), &e->ts_us) != HL_OK) return "timestamp is not ISO 8601";
    if (e->ts_us < 0) return "timestamp before 1970";
    e->ts_ms = e->ts_us / 1000;
    r->timestamp = (double)e->ts_us / 1e6;
    if (!get_str(root, F_SOURCE, &source) || !source) return "source missing or not a string";
    if (!strcmp(source, "cloud")) r->cloud = true;
    else if (strcmp(source, "local") != 0) return "source is neither cloud nor local";
    if (!get_int(root, F_INPUT_TOKENS, 0, LONG_MAX, &v, &present) || !present)
        return "input_tokens missing or not a count";
    r->usage.input_tokens = (long)v;
    if (!get_int(root, F_OUTPUT_TOKENS, 0, LONG_MAX, &v, &present) || !present)
        return "output_tokens missing or not a count";
    r->usage.output_tokens = (long)v;
    r->usage.known = true;
    if (!get_num(root, F_LATENCY_MS, &r->latency_ms, &present) || !present) return "latency_ms missing or not a number";
    if (r->latency_ms < 0) return "latency_ms is negative";
    if (root->f[F_COST_USD].k == V_ABSENT) return "cost_usd missing";
    if (!get_num(root, F_COST_USD, &r->cost_usd, &r->cost_known)) return "cost_usd is not a number";
    if (!r->cost_known) r->cost_usd = 0;
    return NULL;
}

/* Identity: request_id and attempt, or a derived id. */
static const char *parse_identity(scan *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    long long v = 1;
    bool present;
    if (!get_str(root, F_REQUEST_ID, &r->request_id)) return "request_id is not a string";
    if (r->request_id && !r->request_id[0]) return "request_id is empty";
    if (!get_int(root, F_ATTEMPT, 1, INT_MAX, &v, &present)) return "attempt is not an integer >= 1";
    if (r->request_id && !present) return "attempt missing (required with request_id)";
    r->attempt = r->request_id ? (int)v : 1;
    if (!r->request_id) derive_id(e);
    return NULL;
}

static const char *parse_optional(scan *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    if (!get_str(root, F_BACKEND, &r->backend) || !get_str(root, F_MODEL, &r->model) ||
        !get_str(root, F_ROUTE_REASON, &r->route_reason) || !get_str(root, F_STATUS, &r->status) ||
        !get_str(root, F_TENANT, &r->tenant) || !get_str(root, F_TASK_TYPE, &r->task_type) ||
        !get_str(root, F_PII, &r->pii) || !get_str(root, F_ERROR, &r->error) ||
        !get_str(root, F_CLIENT_REQUEST_ID, &r->client_request_id) || !get_str(root, F_KEY_NAME, &r->key_name))
        return "a text field holds a non-string";
    bool present;
    r->ttft_ms = r->confidence = -1;
    double d;
    if (!get_num(root, F_TTFT_MS, &d, &present) || (present && d < 0)) return "ttft_ms is not a number >= 0";
    if (present) r->ttft_ms = d;
    if (!get_num(root, F_CONFIDENCE, &d, &present) || (present && d < 0)) return "confidence is not a number >= 0";
    if (present) r->confidence = d;
    long long v;
    if (!get_int(root, F_KEY_ID, 1, LLONG_MAX, &v, &present)) return "key_id is not an integer >= 1";
    if (present) r->key_id = v;
    if (!get_int(root, F_CACHED_INPUT_TOKENS, 0, LONG_MAX, &v, &present)) return "cached_input_tokens is not a count";
    if (present) r->usage.cached_input_tokens = (long)v;
    if (!get_int(root, F_CACHE_WRITE_TOKENS, 0, LONG_MAX, &v, &present)) return "cache_write_tokens is not a count";
    if (present) r->usage.cache_write_tokens = (long)v;
    if (!get_int(root, F_HTTP_STATUS, 0, 999, &v, &present)) return "http_status is not an integer 0..999";
    if (present) r->http_status = (int)v;
    if (!get_bool(root, F_STREAM, &r->stream) || !get_bool(root, F_USAGE_ESTIMATED, &r->usage.estimated) ||
        !get_bool(root, F_TASK_INFERRED, &r->task_inferred) || !get_bool(root, F_SENSITIVE, &r->sensitive))
        return "a boolean field holds something else";
    return NULL;
}

/* A number in 0..1 or null: *present tells which. */
static bool get_unit(const scan *sc, enum field k, double *out, bool *present) {
    return get_num(sc, k, out, present) && (!*present || (*out >= 0 && *out <= 1));
}

/* The quality fields: shadow, the comparison (all of score, score_method, agree, reference and
 * ref_output_tokens, or none), the extra confidence signals (both or neither), eval_run. */
static const char *parse_quality(scan *root, hl_ledger_entry *e) {
    hl_ledger_record *r = &e->rec;
    bool margin, min;
    if (!get_unit(root, F_CONFIDENCE_MARGIN, &r->confidence_margin, &margin) ||
        !get_unit(root, F_CONFIDENCE_MIN, &r->confidence_min, &min))
        return "confidence_margin or confidence_min is not a number 0..1";
    if (margin != min) return "confidence_margin and confidence_min come together";
    r->signals = margin;
    if (!get_bool(root, F_SHADOW, &r->shadow)) return "shadow is not a boolean";
    if (!get_str(root, F_EVAL_RUN, &r->eval_run)) return "eval_run is not a string";
    if (!get_str(root, F_REPLICA, &r->replica)) return "replica is not a string";
    if (!get_unit(root, F_SCORE, &r->score, &r->scored)) return "score is not a number 0..1";
    bool agree_present = root->f[F_AGREE].k == V_BOOL;
    long long v;
    bool tokens;
    if (!get_str(root, F_SCORE_METHOD, &r->score_method) || !get_str(root, F_REFERENCE, &r->reference) ||
        !get_bool(root, F_AGREE, &r->agree) ||
        !get_int(root, F_REF_OUTPUT_TOKENS, 0, LLONG_MAX, &v, &tokens))
        return "a comparison field has the wrong type";
    if (tokens) r->ref_output_tokens = v;
    bool any = r->score_method || r->reference || agree_present || tokens;
    if (r->scored != any || (r->scored && !(r->score_method && r->reference && agree_present && tokens)))
        return "score, score_method, agree, reference and ref_output_tokens come together";
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
    char *buf = malloc(len + 1);
    if (!buf) return fail(why, why_len, "out of memory");
    static pthread_once_t lengths = PTHREAD_ONCE_INIT;
    pthread_once(&lengths, field_len_init);
    scan sc = {.p = line, .end = line + len, .out = buf};
    const char *bad_line = read_object(&sc);
    if (!bad_line && sc.err) bad_line = sc.err;
    if (bad_line) {
        free(buf);
        return fail(why, why_len, "%s%s", sc.err && bad_line == sc.err ? "not JSON: " : "", bad_line);
    }
    e->rec.attempt = 1;
    const char *wrong = parse_required(&sc, e);
    if (!wrong) wrong = parse_optional(&sc, e);
    if (!wrong) wrong = parse_quality(&sc, e);
    if (!wrong) wrong = parse_identity(&sc, e);
    if (wrong) {
        free(buf);
        memset(e, 0, sizeof *e);
        return fail(why, why_len, "%s", wrong);
    }
    e->doc = buf;
    return HL_OK;
}

void hl_ledger_entry_release(hl_ledger_entry *e) {
    if (!e) return;
    free(e->doc);
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
