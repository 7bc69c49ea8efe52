/* hl_config: loads the gateway's YAML configuration into an hl_config.
 *
 * libyaml parses the whole file into a node tree (yaml_document_t) in which every node keeps
 * the line it started on; that is what lets each error name file, line and key. The tree is
 * then mapped onto the structs of hl_config.h by one table per mapping, each row
 * {key, handler, field offset, range, flags}. A mapping is walked in two passes: the first
 * goes through the file's keys and rejects unknown keys, duplicate keys and secrets and
 * checks that required keys are there; the second runs the handlers, in file order so that
 * errors come in the order a reader meets them, except that keys marked KEY_LAST wait for the
 * others. That is what lets `routes` check its backend names against `backends` wherever the
 * two appear in the file.
 *
 * The schema (config/hybridllm.yaml is the annotated example; defaults are in hl_config.h):
 *
 *   server:   listen "host:port" | "[v6]:port"; threads 0..256; max_body_bytes (1..1GiB) and
 *             max_header_bytes (1KiB..1MiB) as bytes or with a KiB/MiB/GiB suffix;
 *             max_headers 1..HL_HTTP_MAX_HEADERS; read/idle/shutdown_timeout_ms; api_keys_env.
 *             Every *_ms is 1..86400000.
 *   ledger:   path.
 *   backends: (required, >= 1) name, kind openai|anthropic, location local|cloud, base_url
 *             (string or list), api_key_env, model, models, hourly_cost_usd, timeout_ms,
 *             connect_timeout_ms.
 *   prices:   model, input_per_mtok, output_per_mtok, cached_input_per_mtok,
 *             cache_write_per_mtok.
 *   routes:   (required, >= 1) name, when {sensitive, task_type}, to (backend name or list).
 *
 * Typing is strict, because a config that loads but means something else is worse than one
 * that fails: numbers and booleans must be plain (unquoted) scalars, integers are decimal and
 * range-checked before they can overflow, floats must be finite. A mapping given as an empty
 * value (`server:` with every line under it commented out) counts as an empty mapping.
 * Aliases (*name) are rejected: a node reached twice is an alias, which also rules out
 * the self-referencing documents that libyaml can build. Only one YAML document is allowed. */
#include "hl_config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hl_buf.h"
#include "hl_http.h"
#include "hl_pii.h"

#define CFG_MAX_BYTES (1u << 20) /* a hand-written config is a few KiB; more is a mistake */
#define CFG_PATH_MAX 160         /* key paths are short: routes[12].when.task_type[3] */
#define CFG_SHOW_MAX 40          /* longest piece of user text quoted back in a message */
#define CFG_MAX_KEYS 32          /* most rows one table may have (checked per table) */
#define CFG_MAX_MS 86400000LL    /* one day: no timeout is longer; keeps ms*1e6 in range */
#define GIB (1024LL * 1024 * 1024)
#define MIB (1024LL * 1024)
#define KIB 1024LL
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef struct cfg_ctx {
    const char *name;       /* file name for messages (borrowed) */
    const char *text;       /* the YAML text (borrowed), for reader-error line numbers */
    size_t len;
    yaml_document_t *doc;
    unsigned char *seen;    /* one flag per node: reached once already (a second time = alias) */
    size_t n_nodes;
    hl_config *cfg;         /* the config being filled */
    char path[CFG_PATH_MAX];/* key path of the node being looked at, e.g. "backends[1].kind" */
    size_t plen;
    char *errbuf;
    size_t errlen;
} cfg_ctx;

typedef struct cfg_key cfg_key;
/* Fills obj from the value node v. k is the table row (for the field offset and range). */
typedef hl_err (*cfg_handler)(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj);

struct cfg_key {
    const char *name;
    cfg_handler fn;
    size_t off;       /* the field of obj that the generic handlers fill */
    long long lo, hi; /* accepted range for numbers (floats use lo only) */
    unsigned flags;
};

enum {
    KEY_REQUIRED = 1u << 0,
    /* The key holds a secret, which the file must not: rejected with a pointer to the *_env
     * key. Not listed among the expected keys. */
    KEY_SECRET = 1u << 1,
    /* Handled after the mapping's other keys, because it refers to what they declare. */
    KEY_LAST = 1u << 2,
};

/* ---- messages -------------------------------------------------------------------------- */

/* Copies user text for quoting in a message: printable ASCII only, at most CFG_SHOW_MAX
 * characters, so that a message stays one readable line whatever the file holds. */
static void show_text(char *buf, size_t cap, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        if (i == CFG_SHOW_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    buf[o] = '\0';
}

static bool is_null(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* Says what a node is, for "expected X; got Y". */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap) {
    if (!n) return "nothing";
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (is_null(n)) return "an empty value";
    char t[CFG_SHOW_MAX + 8];
    show_text(t, sizeof t, (const char *)n->data.scalar.value, n->data.scalar.length);
    snprintf(buf, cap, "'%s'", t);
    return buf;
}

static int line_of(const yaml_node_t *n) {
    return n ? (int)n->start_mark.line + 1 : 1;
}

/* Copies msg into the caller's buffer. If it does not fit, it is cut at a word boundary and
 * ends in "..."; control characters become '?', so the message is always one line. */
static void put_err(char *buf, size_t cap, const char *msg) {
    if (!buf || cap == 0) return;
    size_t n = strlen(msg);
    if (n < cap) {
        memcpy(buf, msg, n + 1);
    } else if (cap < 16) {
        memcpy(buf, msg, cap - 1);
        buf[cap - 1] = '\0';
    } else {
        size_t keep = cap - 4;
        size_t cut = keep;
        while (cut > keep / 2 && msg[cut] != ' ') cut--;
        if (cut > keep / 2) keep = cut;
        memcpy(buf, msg, keep);
        memcpy(buf + keep, "...", 4);
    }
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

/* Writes "name:line: path: problem" and returns code. */
static hl_err cfg_failv(cfg_ctx *c, int line, hl_err code, const char *fmt, va_list ap) {
    char msg[1024], full[1400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (c->plen)
        snprintf(full, sizeof full, "%s:%d: %s: %s", c->name, line, c->path, msg);
    else
        snprintf(full, sizeof full, "%s:%d: %s", c->name, line, msg);
    put_err(c->errbuf, c->errlen, full);
    return code;
}

/* A problem with the config's content (HL_ERR_INVAL). */
__attribute__((format(printf, 3, 4)))
static hl_err fail(cfg_ctx *c, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_err err = cfg_failv(c, line, HL_ERR_INVAL, fmt, ap);
    va_end(ap);
    return err;
}

/* Anything else: syntax, size, memory. */
__attribute__((format(printf, 4, 5)))
static hl_err fail_code(cfg_ctx *c, int line, hl_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_err err = cfg_failv(c, line, code, fmt, ap);
    va_end(ap);
    return err;
}

static hl_err oom(cfg_ctx *c, int line) {
    return fail_code(c, line, HL_ERR_NOMEM, "out of memory");
}

/* ---- key paths ------------------------------------------------------------------------- */

/* Appends ".key" (or "key" at the top) to the path; returns the length to restore with
 * path_pop(). A path that would not fit ends in "..." rather than overflowing. */
static size_t path_push_key(cfg_ctx *c, const char *key, size_t len) {
    size_t mark = c->plen;
    char t[CFG_SHOW_MAX + 8];
    show_text(t, sizeof t, key, len);
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%s", c->plen ? "." : "", t);
    c->plen = n < 0 || (size_t)n >= sizeof c->path - c->plen ? sizeof c->path - 1 : c->plen + (size_t)n;
    if (c->plen == sizeof c->path - 1) memcpy(c->path + c->plen - 3, "...", 3);
    return mark;
}

static size_t path_push_index(cfg_ctx *c, size_t i) {
    size_t mark = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%zu]", i);
    c->plen = n < 0 || (size_t)n >= sizeof c->path - c->plen ? sizeof c->path - 1 : c->plen + (size_t)n;
    if (c->plen == sizeof c->path - 1) memcpy(c->path + c->plen - 3, "...", 3);
    return mark;
}

static void path_pop(cfg_ctx *c, size_t mark) {
    c->plen = mark;
    c->path[mark] = '\0';
}

/* ---- nodes ------------------------------------------------------------------------------- */

/* Returns node id, refusing to reach any node twice: in a libyaml document an alias is the
 * aliased node's id used again. line is where the reference is, for the message. */
static hl_err visit(cfg_ctx *c, int id, int line, const yaml_node_t **out) {
    yaml_node_t *n = yaml_document_get_node(c->doc, id);
    if (!n) return fail(c, line, "malformed YAML document");
    size_t i = (size_t)(id - 1);
    if (c->seen[i])
        return fail(c, line, "YAML aliases (*name) are not supported; write the value out");
    c->seen[i] = 1;
    *out = n;
    return HL_OK;
}

/* A scalar that holds text: not a collection, not null, no NUL byte (we keep C strings). */
static hl_err get_text(cfg_ctx *c, const yaml_node_t *v, const char *what, const char **out) {
    char d[64];
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(c, line_of(v), "expected %s; got %s", what, describe(v, d, sizeof d));
    if (memchr(v->data.scalar.value, '\0', v->data.scalar.length))
        return fail(c, line_of(v), "must not contain a NUL character");
    *out = (const char *)v->data.scalar.value;
    return HL_OK;
}

/* A plain (unquoted) scalar, as numbers and booleans must be. */
static hl_err get_plain(cfg_ctx *c, const yaml_node_t *v, const char *what, const char **out) {
    hl_err err = get_text(c, v, what, out);
    if (err) return err;
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail(c, line_of(v), "expected %s; got a quoted string (remove the quotes)", what);
    return HL_OK;
}

static hl_err set_str(cfg_ctx *c, const yaml_node_t *v, char **field, const char *s) {
    char *copy = strdup(s);
    if (!copy) return oom(c, line_of(v));
    free(*field);
    *field = copy;
    return HL_OK;
}

static bool is_name_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

static bool has_space_or_ctl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) return true;
    return false;
}

/* ---- numbers ----------------------------------------------------------------------------- */

/* Parses an optionally signed decimal integer. Returns false on anything else, including a
 * value past +-LLONG_MAX (checked before each digit, so nothing overflows). */
static bool parse_ll(const char *s, long long *out) {
    bool neg = *s == '-';
    if (*s == '-' || *s == '+') s++;
    if (!*s) return false;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > ((unsigned long long)LLONG_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

/* Whether s looks like an integer at all (as opposed to one out of range). */
static bool is_int_text(const char *s) {
    if (*s == '-' || *s == '+') s++;
    return *s && strspn(s, "0123456789") == strlen(s);
}

static hl_err get_ll(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, long long *out) {
    const char *s = NULL;
    hl_err err = get_plain(c, v, "an integer", &s);
    if (err) return err;
    char d[64];
    long long x = 0;
    if (!is_int_text(s))
        return fail(c, line_of(v), "expected an integer; got %s", describe(v, d, sizeof d));
    if (!parse_ll(s, &x) || x < k->lo || x > k->hi)
        return fail(c, line_of(v), "must be between %lld and %lld; got %s", k->lo, k->hi,
                    describe(v, d, sizeof d));
    *out = x;
    return HL_OK;
}

static hl_err h_int(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    long long x;
    hl_err err = get_ll(c, v, k, &x);
    if (!err) *(int *)((char *)obj + k->off) = (int)x; /* the table's range fits an int */
    return err;
}

static hl_err h_long(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    long long x;
    hl_err err = get_ll(c, v, k, &x);
    if (!err) *(long *)((char *)obj + k->off) = (long)x;
    return err;
}

/* A byte count: "4194304", "4MiB", "16 KiB". Only binary suffixes: "4MB" would be ambiguous
 * (10^6 or 2^20?), so it is an error that says which suffixes exist. */
static hl_err h_size(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const struct { const char *suffix; long long mult; } units[] = {
        {"", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
    };
    const char *s = NULL;
    hl_err err = get_plain(c, v, "a size in bytes (e.g. 4194304 or 4MiB)", &s);
    if (err) return err;
    char d[64];
    size_t nd = strspn(s, "0123456789");
    if (nd == 0)
        return fail(c, line_of(v), "expected a size in bytes (e.g. 4194304 or 4MiB); got %s",
                    describe(v, d, sizeof d));
    const char *unit = s + nd + strspn(s + nd, " ");
    long long mult = 0;
    for (size_t i = 0; i < ARRAY_LEN(units); i++)
        if (!strcmp(unit, units[i].suffix)) mult = units[i].mult;
    if (!mult) {
        char u[CFG_SHOW_MAX + 8];
        show_text(u, sizeof u, unit, strlen(unit));
        return fail(c, line_of(v), "unknown size suffix '%s' (use KiB, MiB, GiB or plain bytes)", u);
    }
    char num[24];
    long long x = 0;
    bool ok = nd < sizeof num;
    if (ok) {
        memcpy(num, s, nd);
        num[nd] = '\0';
        ok = parse_ll(num, &x) && x <= LLONG_MAX / mult;
    }
    if (!ok || x * mult < k->lo || x * mult > k->hi)
        return fail(c, line_of(v), "must be between %lld and %lld bytes; got %s", k->lo, k->hi,
                    describe(v, d, sizeof d));
    *(size_t *)((char *)obj + k->off) = (size_t)(x * mult);
    return HL_OK;
}

/* A finite decimal number >= k->lo. strtod alone would also take "nan", "inf" and hex. */
static hl_err h_double(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = get_plain(c, v, "a number", &s);
    if (err) return err;
    char d[64];
    char *end = NULL;
    double x = strspn(s, "0123456789.eE+-") == strlen(s) && strpbrk(s, "0123456789")
                   ? strtod(s, &end) : 0;
    if (!end || *end)
        return fail(c, line_of(v), "expected a number; got %s", describe(v, d, sizeof d));
    if (!isfinite(x))
        return fail(c, line_of(v), "must be a finite number; got %s", describe(v, d, sizeof d));
    if (x < (double)k->lo)
        return fail(c, line_of(v), "must be >= %lld; got %s", k->lo, describe(v, d, sizeof d));
    *(double *)((char *)obj + k->off) = x;
    return HL_OK;
}

static hl_err get_bool(cfg_ctx *c, const yaml_node_t *v, bool *out) {
    const char *s = NULL;
    hl_err err = get_plain(c, v, "true or false", &s);
    if (err) return err;
    char d[64];
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return fail(c, line_of(v), "expected true or false; got %s", describe(v, d, sizeof d));
    return HL_OK;
}

/* ---- strings ----------------------------------------------------------------------------- */

/* Any non-empty text, e.g. a file path. */
static hl_err h_str(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = get_text(c, v, "a string", &s);
    if (err) return err;
    if (!*s) return fail(c, line_of(v), "must not be empty");
    return set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
}

/* The name of an environment variable. The value is never quoted back: the usual mistake is
 * pasting the key itself here. */
static hl_err h_env(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = get_text(c, v, "the name of an environment variable", &s);
    if (err) return err;
    bool ok = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_';
    for (const char *p = s; ok && *p; p++)
        ok = is_name_char(*p) && *p != '.' && *p != '-';
    if (!ok)
        return fail(c, line_of(v), "expected the name of an environment variable "
                    "(letters, digits and _, not starting with a digit), not its value");
    return set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
}

/* A backend or route name: [A-Za-z0-9._-]+, safe in a header value and a log line. */
static hl_err get_name(cfg_ctx *c, const yaml_node_t *v, const char **out) {
    hl_err err = get_text(c, v, "a name", out);
    if (err) return err;
    const char *s = *out;
    char d[64];
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i])) n = 0;
    if (n == 0)
        return fail(c, line_of(v), "expected a name of letters, digits, '.', '_' and '-'; got %s",
                    describe(v, d, sizeof d));
    return HL_OK;
}

/* A model name or task type: non-empty, no whitespace or control characters. */
static hl_err check_token(cfg_ctx *c, const yaml_node_t *v, char *s) {
    char d[64];
    if (!*s || has_space_or_ctl(s))
        return fail(c, line_of(v), "expected a name without spaces; got %s",
                    describe(v, d, sizeof d));
    return HL_OK;
}

static hl_err h_model(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = get_text(c, v, "a model name", &s);
    if (!err) err = check_token(c, v, (char *)s); /* check_token only reads */
    if (!err) err = set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
    return err;
}

/* An upstream base URL: http:// or https://, stored without trailing slashes so that paths
 * can be appended as "/chat/completions". */
static hl_err check_url(cfg_ctx *c, const yaml_node_t *v, char *s) {
    char d[64];
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') s[--n] = '\0';
    size_t scheme = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!scheme || n == scheme || has_space_or_ctl(s))
        return fail(c, line_of(v), "expected an http:// or https:// URL; got %s",
                    describe(v, d, sizeof d));
    return HL_OK;
}

static hl_err check_backend_ref(cfg_ctx *c, const yaml_node_t *v, char *s) {
    if (hl_config_backend(c->cfg, s)) return HL_OK;
    char d[64], names[160] = "";
    size_t o = 0;
    for (size_t i = 0; i < c->cfg->n_backends && o < sizeof names; i++) {
        int n = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                         c->cfg->backends[i].name);
        if (n < 0 || (size_t)n >= sizeof names - o) {
            memcpy(names + sizeof names - 4, "...", 4);
            break;
        }
        o += (size_t)n;
    }
    return fail(c, line_of(v), "unknown backend %s (declared: %s)", describe(v, d, sizeof d),
                names);
}

/* A string or (scalar_ok) a list of strings, copied into a new array. Each element passes
 * check, which may edit it in place. *out and *n are set before the elements are filled, so
 * on error hl_config_free() frees whatever was copied. */
static hl_err get_str_list(cfg_ctx *c, const yaml_node_t *v, bool scalar_ok, const char *what,
                           hl_err (*check)(cfg_ctx *, const yaml_node_t *, char *),
                           char ***out, size_t *n_out) {
    char d[64];
    size_t n = 0;
    if (scalar_ok && v->type == YAML_SCALAR_NODE && !is_null(v))
        n = 1;
    else if (v->type == YAML_SEQUENCE_NODE)
        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    else
        return fail(c, line_of(v), "expected %s; got %s",
                    scalar_ok ? "a string or a list of strings" : "a list of strings",
                    describe(v, d, sizeof d));
    if (n == 0 && what) return fail(c, line_of(v), "expected at least one %s", what);
    if (n == 0) return HL_OK;
    char **arr = calloc(n, sizeof *arr);
    if (!arr) return oom(c, line_of(v));
    *out = arr;
    *n_out = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = v;
        size_t mark = c->plen;
        const char *s = NULL;
        hl_err err = HL_OK;
        if (v->type == YAML_SEQUENCE_NODE) {
            mark = path_push_index(c, i);
            err = visit(c, v->data.sequence.items.start[i], line_of(v), &item);
        }
        if (!err) err = get_text(c, item, "a string", &s);
        if (!err && !(arr[i] = strdup(s))) err = oom(c, line_of(item));
        if (!err) err = check(c, item, arr[i]);
        if (err) return err;
        path_pop(c, mark);
    }
    return HL_OK;
}

/* ---- mappings ---------------------------------------------------------------------------- */

/* "unknown key 'x' (expected one of: a, b, c)" */
static hl_err fail_unknown(cfg_ctx *c, const yaml_node_t *kn, const cfg_key *keys, size_t nkeys) {
    char list[600] = "", d[64];
    size_t o = 0;
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].flags & KEY_SECRET) continue;
        int n = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", keys[i].name);
        if (n < 0 || (size_t)n >= sizeof list - o) {
            /* Never a cut name: drop the partial one and say the list goes on. */
            list[o] = '\0';
            if (o + 5 < sizeof list) memcpy(list + o, ", ...", 6);
            break;
        }
        o += (size_t)n;
    }
    return fail(c, line_of(kn), "unknown key %s (expected one of: %s)", describe(kn, d, sizeof d),
                list);
}

/* Walks mapping m with table keys, filling obj; see the comment at the top for the two
 * passes. An empty value stands for an empty mapping. */
static hl_err map_walk(cfg_ctx *c, const yaml_node_t *m, const cfg_key *keys, size_t nkeys,
                       void *obj) {
    const yaml_node_t *vals[CFG_MAX_KEYS] = {0};
    int lines[CFG_MAX_KEYS] = {0};
    size_t order[CFG_MAX_KEYS]; /* table rows in the order the file has them */
    size_t n_order = 0;
    char d[64];
    hl_err err;
    if (nkeys > CFG_MAX_KEYS) return fail(c, line_of(m), "internal: table too large");
    if (m && m->type != YAML_MAPPING_NODE && !is_null(m))
        return fail(c, line_of(m), "expected a mapping (key: value lines); got %s",
                    describe(m, d, sizeof d));
    const yaml_node_pair_t *pairs = m && m->type == YAML_MAPPING_NODE ? m->data.mapping.pairs.start : NULL;
    size_t npairs = pairs ? (size_t)(m->data.mapping.pairs.top - pairs) : 0;

    for (size_t p = 0; p < npairs; p++) {
        const yaml_node_t *kn = NULL;
        if ((err = visit(c, pairs[p].key, line_of(m), &kn))) return err;
        if (kn->type != YAML_SCALAR_NODE)
            return fail(c, line_of(kn), "expected a key name; got %s", describe(kn, d, sizeof d));
        const char *ks = (const char *)kn->data.scalar.value;
        size_t klen = kn->data.scalar.length;
        size_t i = 0;
        while (i < nkeys && !(strlen(keys[i].name) == klen && !memcmp(keys[i].name, ks, klen)))
            i++;
        size_t mark = path_push_key(c, ks, klen);
        if (i == nkeys) return fail_unknown(c, kn, keys, nkeys);
        if (keys[i].flags & KEY_SECRET) return keys[i].fn(c, kn, &keys[i], obj);
        if (vals[i]) return fail(c, line_of(kn), "duplicate key (first set on line %d)", lines[i]);
        if ((err = visit(c, pairs[p].value, line_of(kn), &vals[i]))) return err;
        lines[i] = line_of(kn);
        order[n_order++] = i; /* at most once per row: duplicates were refused above */
        path_pop(c, mark);
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (!(keys[i].flags & KEY_REQUIRED) || vals[i]) continue;
        path_push_key(c, keys[i].name, strlen(keys[i].name));
        return fail(c, line_of(m), "required key is missing");
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < n_order; j++) {
            size_t i = order[j];
            bool late = (keys[i].flags & KEY_LAST) != 0;
            if (late != (pass == 1)) continue;
            size_t mark = path_push_key(c, keys[i].name, strlen(keys[i].name));
            if ((err = keys[i].fn(c, vals[i], &keys[i], obj))) return err;
            path_pop(c, mark);
        }
    }
    return HL_OK;
}

/* The length of a list of mappings (backends, prices, routes); an empty value is an empty
 * list. */
static hl_err get_seq(cfg_ctx *c, const yaml_node_t *v, const char *what, size_t *n) {
    char d[64];
    if (is_null(v)) {
        *n = 0;
        return HL_OK;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, line_of(v), "expected a list of %s; got %s", what, describe(v, d, sizeof d));
    *n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    return HL_OK;
}

static hl_err h_secret_backend(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k, (void)obj;
    return fail(c, line_of(v), "secrets are not read from the config file; put the key in an "
                "environment variable and name it with api_key_env");
}

static hl_err h_secret_server(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k, (void)obj;
    return fail(c, line_of(v), "secrets are not read from the config file; put the keys in an "
                "environment variable and name it with api_keys_env");
}

/* ---- server, ledger ---------------------------------------------------------------------- */

/* "host:port" or "[ipv6]:port"; the host is stored without brackets. */
static hl_err h_listen(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_config *cfg = obj;
    const char *s = NULL;
    char d[64];
    hl_err err = get_text(c, v, "host:port", &s);
    if (err) return err;
    (void)k;
    const char *host = s, *host_end, *port;
    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        port = host_end && host_end[1] == ':' ? host_end + 2 : NULL;
    } else {
        host_end = strrchr(s, ':');
        port = host_end ? host_end + 1 : NULL;
        if (host_end && memchr(s, ':', (size_t)(host_end - s)))
            return fail(c, line_of(v), "an IPv6 address needs brackets, e.g. [::1]:8741; got %s",
                        describe(v, d, sizeof d));
    }
    if (!port || host_end == host || has_space_or_ctl(s) || memchr(host, '[', (size_t)(host_end - host)))
        return fail(c, line_of(v), "expected host:port (e.g. 127.0.0.1:8741 or [::1]:8741); got %s",
                    describe(v, d, sizeof d));
    long long p;
    if (strspn(port, "0123456789") != strlen(port) || !parse_ll(port, &p) || p < 1 || p > 65535)
        return fail(c, line_of(v), "port must be between 1 and 65535; got %s",
                    describe(v, d, sizeof d));
    char *h = strndup(host, (size_t)(host_end - host));
    if (!h) return oom(c, line_of(v));
    free(cfg->listen_host);
    cfg->listen_host = h;
    cfg->listen_port = (int)p;
    return HL_OK;
}

static const cfg_key server_keys[] = {
    {"listen", h_listen, 0, 0, 0, 0},
    {"threads", h_int, offsetof(hl_config, threads), 0, 256, 0},
    {"max_body_bytes", h_size, offsetof(hl_config, max_body_bytes), 1, GIB, 0},
    {"max_header_bytes", h_size, offsetof(hl_config, max_header_bytes), KIB, MIB, 0},
    {"max_headers", h_int, offsetof(hl_config, max_headers), 1, HL_HTTP_MAX_HEADERS, 0},
    {"read_timeout_ms", h_long, offsetof(hl_config, read_timeout_ms), 1, CFG_MAX_MS, 0},
    {"idle_timeout_ms", h_long, offsetof(hl_config, idle_timeout_ms), 1, CFG_MAX_MS, 0},
    {"shutdown_timeout_ms", h_long, offsetof(hl_config, shutdown_timeout_ms), 1, CFG_MAX_MS, 0},
    {"request_timeout_ms", h_long, offsetof(hl_config, request_timeout_ms), 1, CFG_MAX_MS, 0},
    {"health_interval_ms", h_long, offsetof(hl_config, health_interval_ms), 100, CFG_MAX_MS, 0},
    {"api_keys_env", h_env, offsetof(hl_config, api_keys_env), 0, 0, 0},
    {"api_keys", h_secret_server, 0, 0, 0, KEY_SECRET},
};
_Static_assert(ARRAY_LEN(server_keys) <= CFG_MAX_KEYS, "server_keys too long");

/* A string that may be empty ("" turns the thing it names off). */
static hl_err h_str_empty_ok(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = "";
    if (!(v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)) {
        hl_err err = get_text(c, v, "a string", &s);
        if (err) return err;
    }
    return set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
}

static const cfg_key ledger_keys[] = {
    {"path", h_str, offsetof(hl_config, ledger_path), 0, 0, 0},
    {"store", h_str_empty_ok, offsetof(hl_config, ledger_store_path), 0, 0, 0},
    {"index_interval_ms", h_long, offsetof(hl_config, ledger_index_interval_ms), 10, CFG_MAX_MS, 0},
};

static hl_err h_server(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k;
    return map_walk(c, v, server_keys, ARRAY_LEN(server_keys), obj);
}

static hl_err h_ledger(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k;
    return map_walk(c, v, ledger_keys, ARRAY_LEN(ledger_keys), obj);
}

/* ---- backends ---------------------------------------------------------------------------- */

static hl_err h_backend_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_backend_cfg *b = obj;
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(c, v, &s);
    if (err) return err;
    for (const hl_backend_cfg *o = c->cfg->backends; o < b; o++)
        if (!strcmp(o->name, s))
            return fail(c, line_of(v), "duplicate backend name %s (backends[%zu], line %d)",
                        describe(v, d, sizeof d), (size_t)(o - c->cfg->backends), o->line);
    return set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
}

/* One of a fixed set of words; "expected one of openai, anthropic; got 'ollama'". */
static hl_err get_word(cfg_ctx *c, const yaml_node_t *v, const char *const *words, size_t n,
                       int *out) {
    const char *s = NULL;
    char d[64], list[128] = "";
    hl_err err = get_text(c, v, "a word", &s);
    if (err) return err;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, words[i])) {
            *out = (int)i;
            return HL_OK;
        }
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, words[i], sizeof list - strlen(list) - 1);
    }
    return fail(c, line_of(v), "expected one of %s; got %s", list, describe(v, d, sizeof d));
}

static hl_err h_kind(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {
        [HL_PROVIDER_OPENAI] = "openai", [HL_PROVIDER_ANTHROPIC] = "anthropic",
        [HL_PROVIDER_BUILTIN] = "builtin",
    };
    int i = 0;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    (void)k;
    if (!err) ((hl_backend_cfg *)obj)->kind = (hl_provider_kind)i;
    return err;
}

static hl_err h_location(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {
        [HL_LOCATION_LOCAL] = "local", [HL_LOCATION_CLOUD] = "cloud",
    };
    int i = 0;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    (void)k;
    if (!err) ((hl_backend_cfg *)obj)->location = (hl_location)i;
    return err;
}

static hl_err h_base_url(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_backend_cfg *b = obj;
    (void)k;
    return get_str_list(c, v, true, "URL", check_url, &b->base_urls, &b->n_base_urls);
}

static hl_err h_models(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_backend_cfg *b = obj;
    (void)k;
    if (is_null(v)) return HL_OK;
    return get_str_list(c, v, false, NULL, check_token, &b->models, &b->n_models);
}

static hl_err h_template_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {"plain", "chatml", "llama-2", "llama-3", "mistral", "phi-3"};
    int i = 0;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    if (!err) err = set_str(c, v, (char **)(void *)((char *)obj + k->off), words[i]);
    return err;
}

static hl_err h_tristate(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    bool b = false;
    hl_err err = get_bool(c, v, &b);
    if (!err) *(hl_tristate *)((char *)obj + k->off) = b ? HL_YES : HL_NO;
    return err;
}

static const cfg_key backend_keys[] = {
    {"name", h_backend_name, offsetof(hl_backend_cfg, name), 0, 0, KEY_REQUIRED},
    {"kind", h_kind, 0, 0, 0, KEY_REQUIRED},
    {"location", h_location, 0, 0, 0, KEY_REQUIRED},
    {"base_url", h_base_url, 0, 0, 0, 0}, /* required unless kind is builtin: checked after */
    {"api_key_env", h_env, offsetof(hl_backend_cfg, api_key_env), 0, 0, 0},
    {"model", h_model, offsetof(hl_backend_cfg, model), 0, 0, KEY_REQUIRED},
    {"models", h_models, 0, 0, 0, 0},
    {"hourly_cost_usd", h_double, offsetof(hl_backend_cfg, hourly_cost_usd), 0, 0, 0},
    {"timeout_ms", h_long, offsetof(hl_backend_cfg, timeout_ms), 1, CFG_MAX_MS, 0},
    {"connect_timeout_ms", h_long, offsetof(hl_backend_cfg, connect_timeout_ms), 1, CFG_MAX_MS, 0},
    {"max_retries", h_int, offsetof(hl_backend_cfg, max_retries), 0, 10, 0},
    {"retry_base_ms", h_long, offsetof(hl_backend_cfg, retry_base_ms), 1, CFG_MAX_MS, 0},
    {"retry_max_ms", h_long, offsetof(hl_backend_cfg, retry_max_ms), 1, CFG_MAX_MS, 0},
    {"breaker_failures", h_int, offsetof(hl_backend_cfg, breaker_failures), 1, 1000000, 0},
    {"breaker_window_ms", h_long, offsetof(hl_backend_cfg, breaker_window_ms), 1, CFG_MAX_MS, 0},
    {"breaker_open_ms", h_long, offsetof(hl_backend_cfg, breaker_open_ms), 1, CFG_MAX_MS, 0},
    {"context_window", h_long, offsetof(hl_backend_cfg, context_window), 1, 100000000, 0},
    {"warmup", h_tristate, offsetof(hl_backend_cfg, warmup), 0, 0, 0},
    {"keep_warm_ms", h_long, offsetof(hl_backend_cfg, keep_warm_ms), 1000, CFG_MAX_MS, 0},
    {"model_path", h_str, offsetof(hl_backend_cfg, model_path), 0, 0, 0},
    {"threads", h_int, offsetof(hl_backend_cfg, threads), 0, 256, 0},
    {"context_size", h_long, offsetof(hl_backend_cfg, context_size), 16, 10000000, 0},
    {"chat_template", h_template_name, offsetof(hl_backend_cfg, chat_template), 0, 0, 0},
    {"max_queue", h_int, offsetof(hl_backend_cfg, max_queue), 1, 100000, 0},
    {"max_sequences", h_int, offsetof(hl_backend_cfg, max_sequences), 1, 256, 0},
    {"repack_weights", h_tristate, offsetof(hl_backend_cfg, repack_weights), 0, 0, 0},
    {"api_key", h_secret_backend, 0, 0, 0, KEY_SECRET},
    {"apiKey", h_secret_backend, 0, 0, 0, KEY_SECRET},
    {"key", h_secret_backend, 0, 0, 0, KEY_SECRET},
};
_Static_assert(ARRAY_LEN(backend_keys) <= CFG_MAX_KEYS, "backend_keys too long");

/* What depends on the kind: a builtin backend runs a model file here, so it has a model_path
 * and no URL, and is local by nature; the others need a base_url. */
static hl_err check_backend_kind(cfg_ctx *c, const yaml_node_t *item, hl_backend_cfg *b) {
    hl_err err = HL_OK;
    if (b->kind == HL_PROVIDER_BUILTIN) {
        const char *bad = b->n_base_urls ? "base_url" : b->api_key_env ? "api_key_env" : NULL;
        if (bad) {
            path_push_key(c, bad, strlen(bad));
            err = fail(c, line_of(item), "not used by a builtin backend (it runs model_path in this process)");
        } else if (!b->model_path) {
            path_push_key(c, "model_path", 10);
            err = fail(c, line_of(item), "required key is missing (the GGUF file of a builtin backend)");
        } else if (b->location != HL_LOCATION_LOCAL) {
            path_push_key(c, "location", 8);
            err = fail(c, line_of(item), "a builtin backend runs on this machine: expected local");
        } else {
            if (!b->max_sequences) b->max_sequences = 4;
            return HL_OK;
        }
    } else {
        const char *bad = b->model_path ? "model_path" : b->chat_template ? "chat_template"
                          : b->max_sequences ? "max_sequences"
                          : b->repack_weights != HL_ANY ? "repack_weights" : NULL;
        if (!b->n_base_urls) {
            path_push_key(c, "base_url", 8);
            err = fail(c, line_of(item), "required key is missing");
        } else if (bad) {
            path_push_key(c, bad, strlen(bad));
            err = fail(c, line_of(item), "only a builtin backend takes this key");
        } else {
            return HL_OK;
        }
    }
    return err;
}

static hl_err h_backends(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_config *cfg = obj;
    size_t n = 0;
    hl_err err = get_seq(c, v, "backends", &n);
    (void)k;
    if (err) return err;
    if (n == 0) return fail(c, line_of(v), "at least one backend is required");
    if (!(cfg->backends = calloc(n, sizeof *cfg->backends))) return oom(c, line_of(v));
    cfg->n_backends = n;
    for (size_t i = 0; i < n; i++) {
        hl_backend_cfg *b = &cfg->backends[i];
        const yaml_node_t *item = NULL;
        size_t mark = path_push_index(c, i);
        if ((err = visit(c, v->data.sequence.items.start[i], line_of(v), &item))) return err;
        b->hourly_cost_usd = 0.05;
        b->timeout_ms = 600000;
        b->connect_timeout_ms = 5000;
        b->max_retries = 2;
        b->retry_base_ms = 500;
        b->retry_max_ms = 8000;
        b->breaker_failures = 5;
        b->breaker_window_ms = 30000;
        b->breaker_open_ms = 15000;
        b->line = line_of(item);
        b->max_queue = 16;
        if ((err = map_walk(c, item, backend_keys, ARRAY_LEN(backend_keys), b))) return err;
        if (b->warmup == HL_ANY) b->warmup = b->location == HL_LOCATION_LOCAL ? HL_YES : HL_NO;
        if ((err = check_backend_kind(c, item, b))) return err;
        path_pop(c, mark);
    }
    return HL_OK;
}

/* ---- prices ------------------------------------------------------------------------------ */

static hl_err h_price_model(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_price *p = obj;
    char d[64];
    hl_err err = h_model(c, v, k, obj);
    if (err) return err;
    for (const hl_price *o = c->cfg->prices; o < p; o++)
        if (!strcmp(o->model, p->model))
            return fail(c, line_of(v), "duplicate price for %s (also prices[%zu])",
                        describe(v, d, sizeof d), (size_t)(o - c->cfg->prices));
    return HL_OK;
}

static const cfg_key price_keys[] = {
    {"model", h_price_model, offsetof(hl_price, model), 0, 0, KEY_REQUIRED},
    {"input_per_mtok", h_double, offsetof(hl_price, input_per_mtok), 0, 0, KEY_REQUIRED},
    {"output_per_mtok", h_double, offsetof(hl_price, output_per_mtok), 0, 0, KEY_REQUIRED},
    {"cached_input_per_mtok", h_double, offsetof(hl_price, cached_input_per_mtok), 0, 0, 0},
    {"cache_write_per_mtok", h_double, offsetof(hl_price, cache_write_per_mtok), 0, 0, 0},
};

static hl_err h_prices(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_config *cfg = obj;
    size_t n = 0;
    hl_err err = get_seq(c, v, "prices", &n);
    (void)k;
    if (err || n == 0) return err;
    if (!(cfg->prices = calloc(n, sizeof *cfg->prices))) return oom(c, line_of(v));
    cfg->n_prices = n;
    for (size_t i = 0; i < n; i++) {
        hl_price *p = &cfg->prices[i];
        const yaml_node_t *item = NULL;
        size_t mark = path_push_index(c, i);
        if ((err = visit(c, v->data.sequence.items.start[i], line_of(v), &item))) return err;
        /* NAN marks "not given" (the handler accepts only finite numbers). */
        p->cached_input_per_mtok = p->cache_write_per_mtok = NAN;
        if ((err = map_walk(c, item, price_keys, ARRAY_LEN(price_keys), p))) return err;
        if (isnan(p->cached_input_per_mtok)) p->cached_input_per_mtok = p->input_per_mtok;
        if (isnan(p->cache_write_per_mtok)) p->cache_write_per_mtok = p->input_per_mtok;
        path_pop(c, mark);
    }
    return HL_OK;
}

/* ---- routes ------------------------------------------------------------------------------ */

static hl_err h_route_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(c, v, &s);
    if (err) return err;
    for (const hl_route_rule *o = c->cfg->routes; o < r; o++)
        if (!strcmp(o->name, s))
            return fail(c, line_of(v), "duplicate route name %s (routes[%zu], line %d)",
                        describe(v, d, sizeof d), (size_t)(o - c->cfg->routes), o->line);
    return set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
}

static hl_err h_sensitive(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    bool b = false;
    hl_err err = get_bool(c, v, &b);
    (void)k;
    if (!err) ((hl_route_rule *)obj)->sensitive = b ? HL_YES : HL_NO;
    return err;
}

static hl_err h_task_type(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    (void)k;
    return get_str_list(c, v, true, "task type", check_token, &r->task_types, &r->n_task_types);
}

static hl_err h_when_model(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    (void)k;
    return get_str_list(c, v, true, "model alias", check_token, &r->models, &r->n_models);
}

static hl_err h_tenant(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    (void)k;
    return get_str_list(c, v, true, "tenant", check_token, &r->tenants, &r->n_tenants);
}

static const cfg_key when_keys[] = {
    {"sensitive", h_sensitive, 0, 0, 0, 0},
    {"task_type", h_task_type, 0, 0, 0, 0},
    {"model", h_when_model, 0, 0, 0, 0},
    {"tenant", h_tenant, 0, 0, 0, 0},
    {"min_prompt_tokens", h_long, offsetof(hl_route_rule, min_prompt_tokens), 1, 100000000, 0},
    {"max_prompt_tokens", h_long, offsetof(hl_route_rule, max_prompt_tokens), 1, 100000000, 0},
    {"latency_budget_below_ms", h_long, offsetof(hl_route_rule, latency_budget_below_ms), 1, CFG_MAX_MS, 0},
};

static hl_err h_when(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k;
    return map_walk(c, v, when_keys, ARRAY_LEN(when_keys), obj);
}

static hl_err h_to(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    (void)k;
    return get_str_list(c, v, true, "backend name", check_backend_ref, &r->to, &r->n_to);
}

static hl_err h_split_to(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_split *sp = obj;
    const char *s = NULL;
    (void)k;
    hl_err err = get_text(c, v, "a backend name", &s);
    if (!err && !(sp->to = strdup(s))) err = oom(c, line_of(v));
    if (!err) err = check_backend_ref(c, v, sp->to);
    return err;
}

static hl_err h_split_weight(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    long long x;
    hl_err err = get_ll(c, v, k, &x);
    if (!err) ((hl_split *)obj)->weight = (unsigned)x;
    return err;
}

static const cfg_key split_keys[] = {
    {"to", h_split_to, 0, 0, 0, KEY_REQUIRED},
    {"weight", h_split_weight, 0, 1, 1000000, KEY_REQUIRED},
};

static hl_err h_split(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    size_t n = 0;
    (void)k;
    hl_err err = get_seq(c, v, "split", &n);
    if (err) return err;
    if (n < 2) return fail(c, line_of(v), "a split needs at least two entries ({to, weight})");
    if (!(r->split = calloc(n, sizeof *r->split))) return oom(c, line_of(v));
    r->n_split = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = NULL;
        size_t mark = path_push_index(c, i);
        if ((err = visit(c, v->data.sequence.items.start[i], line_of(v), &item))) return err;
        if ((err = map_walk(c, item, split_keys, ARRAY_LEN(split_keys), &r->split[i]))) return err;
        path_pop(c, mark);
    }
    return HL_OK;
}

static hl_err h_sticky(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {[HL_STICKY_REQUEST] = "request", [HL_STICKY_TENANT] = "tenant"};
    int i = 0;
    (void)k;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    if (!err) ((hl_route_rule *)obj)->sticky = (hl_sticky)i;
    return err;
}

static hl_err h_escalate_below(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_err err = h_double(c, v, k, obj);
    double x = ((hl_route_rule *)obj)->escalate_below;
    if (!err && !(x > 0 && x <= 1)) return fail(c, line_of(v), "must be in (0, 1]");
    return err;
}

static hl_err h_escalate_to(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_route_rule *r = obj;
    (void)k;
    return get_str_list(c, v, true, "backend name", check_backend_ref, &r->escalate_to, &r->n_escalate_to);
}

static hl_err h_escalate_stream(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {"off", "buffer"};
    int i = 0;
    (void)k;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    if (!err) ((hl_route_rule *)obj)->escalate_streams = i == 1;
    return err;
}

static const cfg_key escalate_keys[] = {
    {"below", h_escalate_below, offsetof(hl_route_rule, escalate_below), 0, 0, KEY_REQUIRED},
    {"to", h_escalate_to, 0, 0, 0, KEY_REQUIRED},
    {"stream", h_escalate_stream, 0, 0, 0, 0},
};

static hl_err h_escalate(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k;
    ((hl_route_rule *)obj)->escalate_streams = true;
    return map_walk(c, v, escalate_keys, ARRAY_LEN(escalate_keys), obj);
}

static const cfg_key route_keys[] = {
    {"name", h_route_name, offsetof(hl_route_rule, name), 0, 0, KEY_REQUIRED},
    {"when", h_when, 0, 0, 0, 0},
    {"to", h_to, 0, 0, 0, 0},
    {"split", h_split, 0, 0, 0, 0},
    {"sticky", h_sticky, 0, 0, 0, 0},
    {"escalate", h_escalate, 0, 0, 0, 0},
};

static hl_err h_routes(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_config *cfg = obj;
    size_t n = 0;
    hl_err err = get_seq(c, v, "routes", &n);
    (void)k;
    if (err) return err;
    if (n == 0) return fail(c, line_of(v), "at least one route is required");
    if (!(cfg->routes = calloc(n, sizeof *cfg->routes))) return oom(c, line_of(v));
    cfg->n_routes = n;
    for (size_t i = 0; i < n; i++) {
        hl_route_rule *r = &cfg->routes[i];
        const yaml_node_t *item = NULL;
        size_t mark = path_push_index(c, i);
        if ((err = visit(c, v->data.sequence.items.start[i], line_of(v), &item))) return err;
        r->line = line_of(item);
        if ((err = map_walk(c, item, route_keys, ARRAY_LEN(route_keys), r))) return err;
        if (!r->n_to == !r->n_split)
            return fail(c, r->line, "a route needs exactly one of `to` (a preference list) and "
                                    "`split` (weighted backends)");
        path_pop(c, mark);
    }
    return HL_OK;
}

/* ---- budgets ----------------------------------------------------------------------------- */

static hl_err h_budget_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_budget_cfg *b = obj;
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(c, v, &s);
    if (err) return err;
    for (const hl_budget_cfg *o = c->cfg->budgets; o < b; o++)
        if (!strcmp(o->name, s))
            return fail(c, line_of(v), "duplicate budget name %s", describe(v, d, sizeof d));
    return set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
}

static hl_err h_period(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {[HL_BUDGET_MONTH] = "month", [HL_BUDGET_DAY] = "day"};
    int i = 0;
    (void)k;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    if (!err) ((hl_budget_cfg *)obj)->period = (hl_budget_period)i;
    return err;
}

static hl_err h_scope(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {"global", "tenant"};
    int i = 0;
    (void)k;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    if (!err) ((hl_budget_cfg *)obj)->per_tenant = i == 1;
    return err;
}

static hl_err h_budget_action(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    static const char *const words[] = {[HL_BUDGET_LOCAL] = "local", [HL_BUDGET_REJECT] = "reject"};
    int i = 0;
    (void)k;
    hl_err err = get_word(c, v, words, ARRAY_LEN(words), &i);
    if (!err) ((hl_budget_cfg *)obj)->action = (hl_budget_action)i;
    return err;
}

static hl_err h_budget_tenant(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = get_text(c, v, "a tenant name", &s);
    if (!err) err = set_str(c, v, (char **)(void *)((char *)obj + k->off), s);
    if (!err) err = check_token(c, v, ((hl_budget_cfg *)obj)->tenant);
    return err;
}

static const cfg_key budget_keys[] = {
    {"name", h_budget_name, offsetof(hl_budget_cfg, name), 0, 0, KEY_REQUIRED},
    {"period", h_period, 0, 0, 0, KEY_REQUIRED},
    {"limit_usd", h_double, offsetof(hl_budget_cfg, limit_usd), 0, 0, KEY_REQUIRED},
    {"scope", h_scope, 0, 0, 0, 0},
    {"tenant", h_budget_tenant, offsetof(hl_budget_cfg, tenant), 0, 0, 0},
    {"action", h_budget_action, 0, 0, 0, 0},
};

static hl_err h_budgets(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_config *cfg = obj;
    size_t n = 0;
    hl_err err = get_seq(c, v, "budgets", &n);
    (void)k;
    if (err || n == 0) return err;
    if (!(cfg->budgets = calloc(n, sizeof *cfg->budgets))) return oom(c, line_of(v));
    cfg->n_budgets = n;
    for (size_t i = 0; i < n; i++) {
        hl_budget_cfg *b = &cfg->budgets[i];
        const yaml_node_t *item = NULL;
        size_t mark = path_push_index(c, i);
        if ((err = visit(c, v->data.sequence.items.start[i], line_of(v), &item))) return err;
        b->line = line_of(item);
        if ((err = map_walk(c, item, budget_keys, ARRAY_LEN(budget_keys), b))) return err;
        path_pop(c, mark);
    }
    return HL_OK;
}

/* ---- privacy ----------------------------------------------------------------------------- */

typedef struct custom_pattern {
    char *name, *pattern;
    int line; /* of the pattern, for its compile error */
} custom_pattern;

static hl_err h_cp_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    (void)k;
    hl_err err = get_text(c, v, "a pattern name", &s);
    if (err) return err;
    size_t n = strlen(s);
    if (n == 0 || n > HL_PII_MAX_NAME || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != n)
        return fail(c, line_of(v), "expected 1-%d letters, digits or _", HL_PII_MAX_NAME);
    return set_str(c, v, &((custom_pattern *)obj)->name, s);
}

static hl_err h_cp_pattern(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    (void)k;
    hl_err err = get_text(c, v, "a PCRE2 pattern", &s);
    if (err) return err;
    ((custom_pattern *)obj)->line = line_of(v);
    return set_str(c, v, &((custom_pattern *)obj)->pattern, s);
}

static const cfg_key custom_pattern_keys[] = {
    {"name", h_cp_name, 0, 0, 0, KEY_REQUIRED},
    {"pattern", h_cp_pattern, 0, 0, 0, KEY_REQUIRED},
};

static hl_err h_custom_patterns(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_privacy_cfg *p = obj;
    size_t n = 0;
    (void)k;
    hl_err err = get_seq(c, v, "custom_patterns", &n);
    if (err || n == 0) return err;
    if (n > HL_PII_MAX_CUSTOM) return fail(c, line_of(v), "at most %d custom patterns", HL_PII_MAX_CUSTOM);
    if (!(p->custom_names = calloc(n, sizeof(char *))) || !(p->custom_patterns = calloc(n, sizeof(char *))))
        return oom(c, line_of(v));
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = NULL;
        custom_pattern cp = {0};
        size_t mark = path_push_index(c, i);
        if ((err = visit(c, v->data.sequence.items.start[i], line_of(v), &item))) return err;
        err = map_walk(c, item, custom_pattern_keys, ARRAY_LEN(custom_pattern_keys), &cp);
        p->custom_names[i] = cp.name;
        p->custom_patterns[i] = cp.pattern;
        p->n_custom = i + 1;
        if (err) return err;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->custom_names[j], cp.name)) return fail(c, line_of(item), "duplicate pattern name '%s'", cp.name);
        /* Compile it now, under its own name (placeholders depend on it), so that a bad
         * pattern stops the start with its line. */
        hl_pii_detector *d = NULL;
        const char *name = cp.name, *pat = cp.pattern;
        char msg[256];
        if (hl_pii_detector_new(&d, &pat, &name, 1, msg, sizeof msg) != HL_OK) {
            path_push_key(c, "pattern", 7);
            return fail(c, cp.line, "%s", msg);
        }
        hl_pii_detector_free(d);
        path_pop(c, mark);
    }
    return HL_OK;
}

static hl_err h_bool(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    bool b = false;
    hl_err err = get_bool(c, v, &b);
    if (!err) *(bool *)((char *)obj + k->off) = b;
    return err;
}

static const cfg_key privacy_keys[] = {
    {"detect_pii", h_bool, offsetof(hl_privacy_cfg, detect_pii), 0, 0, 0},
    {"redact", h_bool, offsetof(hl_privacy_cfg, redact), 0, 0, 0},
    {"custom_patterns", h_custom_patterns, 0, 0, 0, 0},
};

static hl_err h_privacy(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    (void)k;
    return map_walk(c, v, privacy_keys, ARRAY_LEN(privacy_keys), &((hl_config *)obj)->privacy);
}

/* The top level. routes comes last so that it can check its targets against backends. */
static const cfg_key root_keys[] = {
    {"server", h_server, 0, 0, 0, 0},
    {"ledger", h_ledger, 0, 0, 0, 0},
    {"backends", h_backends, 0, 0, 0, KEY_REQUIRED},
    {"prices", h_prices, 0, 0, 0, 0},
    {"budgets", h_budgets, 0, 0, 0, 0},
    {"privacy", h_privacy, 0, 0, 0, 0},
    {"routes", h_routes, 0, 0, 0, KEY_REQUIRED | KEY_LAST},
};

/* ---- entry points ------------------------------------------------------------------------ */

static hl_err yaml_fail(cfg_ctx *c, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR) return oom(c, 1);
    int line = (int)p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < c->len; i++)
            line += c->text[i] == '\n';
    }
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->context)
        return fail_code(c, line, HL_ERR_PARSE, "YAML syntax error: %s (%s at line %d)", problem,
                         p->context, (int)p->context_mark.line + 1);
    return fail_code(c, line, HL_ERR_PARSE, "YAML syntax error: %s", problem);
}

static hl_config *config_new(const char *name) {
    hl_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    cfg->path = strdup(name);
    cfg->listen_host = strdup("127.0.0.1");
    cfg->ledger_path = strdup("hybridllm-ledger.jsonl");
    cfg->ledger_index_interval_ms = 1000;
    cfg->listen_port = 8741;
    cfg->threads = 0;
    cfg->max_body_bytes = 4 * MIB;
    cfg->max_header_bytes = 16 * KIB;
    cfg->max_headers = 64;
    cfg->read_timeout_ms = 30000;
    cfg->idle_timeout_ms = 60000;
    cfg->shutdown_timeout_ms = 30000;
    cfg->request_timeout_ms = 600000;
    cfg->health_interval_ms = 10000;
    cfg->privacy.detect_pii = true;
    if (!cfg->path || !cfg->listen_host || !cfg->ledger_path) {
        hl_config_free(cfg);
        return NULL;
    }
    return cfg;
}

hl_err hl_config_parse(const char *name, const char *text, size_t len, hl_config **out,
                       char *errbuf, size_t errbuf_len) {
    cfg_ctx c = {.name = name ? name : "(config)", .text = text, .len = len,
                 .errbuf = errbuf, .errlen = errbuf_len};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool parser_ok = false, doc_ok = false;
    hl_config *cfg = NULL;
    hl_err err;

    *out = NULL;
    if (errbuf && errbuf_len) errbuf[0] = '\0';
    if (!text && len) {
        err = fail(&c, 1, "no text given");
        goto out;
    }
    if (len > CFG_MAX_BYTES) {
        err = fail_code(&c, 1, HL_ERR_LIMIT, "config is too large (%zu bytes; the limit is %u)",
                        len, CFG_MAX_BYTES);
        goto out;
    }
    if (!(cfg = config_new(c.name)) || !yaml_parser_initialize(&parser)) {
        err = oom(&c, 1);
        goto out;
    }
    parser_ok = true;
    c.cfg = cfg;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        err = yaml_fail(&c, &parser);
        goto out;
    }
    doc_ok = true;
    c.doc = &doc;

    /* A second document would be silently ignored by a reader that stops after the first. */
    if (!yaml_parser_load(&parser, &extra)) {
        err = yaml_fail(&c, &parser);
        goto out;
    }
    bool more = yaml_document_get_root_node(&extra) != NULL;
    int extra_line = (int)extra.start_mark.line + 1;
    yaml_document_delete(&extra);
    if (more) {
        err = fail(&c, extra_line, "only one YAML document is allowed (found a second '---')");
        goto out;
    }

    c.n_nodes = (size_t)(doc.nodes.top - doc.nodes.start);
    if (!(c.seen = calloc(c.n_nodes ? c.n_nodes : 1, 1))) {
        err = oom(&c, 1);
        goto out;
    }
    const yaml_node_t *root = NULL;
    if (c.n_nodes && (err = visit(&c, 1, 1, &root))) goto out;
    err = map_walk(&c, root, root_keys, ARRAY_LEN(root_keys), cfg);

out:
    free(c.seen);
    if (doc_ok) yaml_document_delete(&doc);
    if (parser_ok) yaml_parser_delete(&parser);
    if (err)
        hl_config_free(cfg);
    else
        *out = cfg;
    return err;
}

hl_err hl_config_load(const char *path, hl_config **out, char *errbuf, size_t errbuf_len) {
    hl_buf b;
    char chunk[16384];
    hl_err err = HL_OK;
    FILE *f = fopen(path, "rb");

    *out = NULL;
    hl_buf_init(&b, CFG_MAX_BYTES);
    if (!f) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: cannot open: %s", path, strerror(errno));
        put_err(errbuf, errbuf_len, msg);
        err = HL_ERR_IO;
        goto out;
    }
    size_t n = 0;
    while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        err = hl_buf_append(&b, chunk, n);
    if (err || ferror(f)) {
        char msg[512];
        if (err == HL_ERR_LIMIT)
            snprintf(msg, sizeof msg, "%s: too large (the limit is %u bytes)", path, CFG_MAX_BYTES);
        else
            snprintf(msg, sizeof msg, "%s: cannot read: %s", path,
                     err ? hl_err_str(err) : strerror(errno));
        put_err(errbuf, errbuf_len, msg);
        err = err ? err : HL_ERR_IO;
        goto out;
    }
    err = hl_config_parse(path, b.data ? b.data : "", b.len, out, errbuf, errbuf_len);

out:
    if (f) fclose(f);
    hl_buf_release(&b);
    return err;
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void hl_config_free(hl_config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        hl_backend_cfg *b = &cfg->backends[i];
        free(b->name);
        free_strv(b->base_urls, b->n_base_urls);
        free(b->api_key_env);
        free(b->model);
        free_strv(b->models, b->n_models);
        free(b->model_path);
        free(b->chat_template);
    }
    for (size_t i = 0; i < cfg->n_prices; i++) free(cfg->prices[i].model);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        hl_route_rule *r = &cfg->routes[i];
        free(r->name);
        free_strv(r->task_types, r->n_task_types);
        free_strv(r->to, r->n_to);
        free_strv(r->models, r->n_models);
        free_strv(r->tenants, r->n_tenants);
        free_strv(r->escalate_to, r->n_escalate_to);
        for (size_t j = 0; j < r->n_split; j++) free(r->split[j].to);
        free(r->split);
    }
    free_strv(cfg->privacy.custom_names, cfg->privacy.n_custom);
    free_strv(cfg->privacy.custom_patterns, cfg->privacy.n_custom);
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        free(cfg->budgets[i].name);
        free(cfg->budgets[i].tenant);
    }
    free(cfg->budgets);
    free(cfg->backends);
    free(cfg->prices);
    free(cfg->routes);
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->api_keys_env);
    free(cfg->ledger_path);
    free(cfg->ledger_store_path);
    free(cfg);
}

const hl_backend_cfg *hl_config_backend(const hl_config *cfg, const char *name) {
    for (size_t i = 0; cfg && name && i < cfg->n_backends; i++)
        if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name))
            return &cfg->backends[i];
    return NULL;
}

const hl_price *hl_config_price(const hl_config *cfg, const char *model) {
    const hl_price *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; cfg && model && i < cfg->n_prices; i++) {
        const hl_price *p = &cfg->prices[i];
        if (!p->model) continue;
        size_t n = strlen(p->model);
        if (!strcmp(p->model, model)) return p;
        if (n > best_len && !strncmp(model, p->model, n) && model[n] == '-') {
            best = p;
            best_len = n;
        }
    }
    return best;
}
