/* hl_yaml: loads one YAML document with libyaml and reads it against a schema's tables, with
 * "file:line: key.path: problem" errors. It knows nothing of hybridllm; hl_config.c holds the
 * schema. See hl_yaml.h for the rules (strict typing, no aliases, one document). */
#include "hl_yaml.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB 1024LL
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- messages -------------------------------------------------------------------------- */

void hl_yaml_show(char *buf, size_t cap, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        if (i == HL_YAML_SHOW_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    buf[o] = '\0';
}

bool hl_yaml_is_null(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

const char *hl_yaml_describe(const yaml_node_t *n, char *buf, size_t cap) {
    if (!n) return "nothing";
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (hl_yaml_is_null(n)) return "an empty value";
    char t[HL_YAML_SHOW_MAX + 8];
    hl_yaml_show(t, sizeof t, (const char *)n->data.scalar.value, n->data.scalar.length);
    snprintf(buf, cap, "'%s'", t);
    return buf;
}

int hl_yaml_line(const yaml_node_t *n) {
    return n ? (int)n->start_mark.line + 1 : 1;
}

void hl_yaml_put_err(char *buf, size_t cap, const char *msg) {
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

static hl_err failv(hl_yaml *y, int line, hl_err code, const char *fmt, va_list ap) {
    char msg[1024], full[1400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (y->plen)
        snprintf(full, sizeof full, "%s:%d: %s: %s", y->name, line, y->path, msg);
    else
        snprintf(full, sizeof full, "%s:%d: %s", y->name, line, msg);
    hl_yaml_put_err(y->errbuf, y->errlen, full);
    return code;
}

hl_err hl_yaml_fail(hl_yaml *y, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_err err = failv(y, line, HL_ERR_INVAL, fmt, ap);
    va_end(ap);
    return err;
}

hl_err hl_yaml_fail_code(hl_yaml *y, int line, hl_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_err err = failv(y, line, code, fmt, ap);
    va_end(ap);
    return err;
}

hl_err hl_yaml_oom(hl_yaml *y, int line) {
    return hl_yaml_fail_code(y, line, HL_ERR_NOMEM, "out of memory");
}

/* ---- key paths ------------------------------------------------------------------------- */

/* A path that would not fit ends in "..." rather than overflowing. */
static void path_grew(hl_yaml *y, int n) {
    size_t room = sizeof y->path - y->plen;
    y->plen = n < 0 || (size_t)n >= room ? sizeof y->path - 1 : y->plen + (size_t)n;
    if (y->plen == sizeof y->path - 1) memcpy(y->path + y->plen - 3, "...", 3);
}

size_t hl_yaml_push_key(hl_yaml *y, const char *key, size_t len) {
    size_t mark = y->plen;
    char t[HL_YAML_SHOW_MAX + 8];
    hl_yaml_show(t, sizeof t, key, len);
    path_grew(y, snprintf(y->path + y->plen, sizeof y->path - y->plen, "%s%s",
                          y->plen ? "." : "", t));
    return mark;
}

size_t hl_yaml_push_index(hl_yaml *y, size_t i) {
    size_t mark = y->plen;
    path_grew(y, snprintf(y->path + y->plen, sizeof y->path - y->plen, "[%zu]", i));
    return mark;
}

void hl_yaml_pop(hl_yaml *y, size_t mark) {
    y->plen = mark;
    y->path[mark] = '\0';
}

/* ---- values ---------------------------------------------------------------------------- */

hl_err hl_yaml_visit(hl_yaml *y, int id, int line, const yaml_node_t **out) {
    yaml_node_t *n = yaml_document_get_node(&y->doc, id);
    if (!n) return hl_yaml_fail(y, line, "malformed YAML document");
    size_t i = (size_t)(id - 1);
    if (y->seen[i])
        return hl_yaml_fail(y, line, "YAML aliases (*name) are not supported; write the value out");
    y->seen[i] = 1;
    *out = n;
    return HL_OK;
}

hl_err hl_yaml_text(hl_yaml *y, const yaml_node_t *v, const char *what, const char **out) {
    char d[64];
    if (v->type != YAML_SCALAR_NODE || hl_yaml_is_null(v))
        return hl_yaml_fail(y, hl_yaml_line(v), "expected %s; got %s", what,
                            hl_yaml_describe(v, d, sizeof d));
    if (memchr(v->data.scalar.value, '\0', v->data.scalar.length))
        return hl_yaml_fail(y, hl_yaml_line(v), "must not contain a NUL character");
    *out = (const char *)v->data.scalar.value;
    return HL_OK;
}

hl_err hl_yaml_plain(hl_yaml *y, const yaml_node_t *v, const char *what, const char **out) {
    hl_err err = hl_yaml_text(y, v, what, out);
    if (err) return err;
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return hl_yaml_fail(y, hl_yaml_line(v),
                            "expected %s; got a quoted string (remove the quotes)", what);
    return HL_OK;
}

hl_err hl_yaml_set_str(hl_yaml *y, const yaml_node_t *v, char **field, const char *s) {
    char *copy = strdup(s);
    if (!copy) return hl_yaml_oom(y, hl_yaml_line(v));
    free(*field);
    *field = copy;
    return HL_OK;
}

bool hl_yaml_parse_ll(const char *s, long long *out) {
    bool neg = *s == '-';
    if (*s == '-' || *s == '+') s++;
    if (!*s) return false;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > ((unsigned long long)LLONG_MAX - d) / 10) return false; /* checked first */
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

hl_err hl_yaml_int(hl_yaml *y, const yaml_node_t *v, long long lo, long long hi, long long *out) {
    const char *s = NULL;
    hl_err err = hl_yaml_plain(y, v, "an integer", &s);
    if (err) return err;
    char d[64];
    long long x = 0;
    if (!is_int_text(s))
        return hl_yaml_fail(y, hl_yaml_line(v), "expected an integer; got %s",
                            hl_yaml_describe(v, d, sizeof d));
    if (!hl_yaml_parse_ll(s, &x) || x < lo || x > hi)
        return hl_yaml_fail(y, hl_yaml_line(v), "must be between %lld and %lld; got %s", lo, hi,
                            hl_yaml_describe(v, d, sizeof d));
    *out = x;
    return HL_OK;
}

/* Only binary suffixes: "4MB" would be ambiguous (10^6 or 2^20?), so it is an error that says
 * which suffixes exist. */
hl_err hl_yaml_size(hl_yaml *y, const yaml_node_t *v, long long lo, long long hi,
                    long long *out) {
    static const struct { const char *suffix; long long mult; } units[] = {
        {"", 1}, {"KiB", KIB}, {"MiB", KIB * KIB}, {"GiB", KIB * KIB * KIB},
    };
    const char *s = NULL;
    hl_err err = hl_yaml_plain(y, v, "a size in bytes (e.g. 4194304 or 4MiB)", &s);
    if (err) return err;
    char d[64];
    size_t nd = strspn(s, "0123456789");
    if (nd == 0)
        return hl_yaml_fail(y, hl_yaml_line(v), "expected a size in bytes (e.g. 4194304 or 4MiB); "
                            "got %s", hl_yaml_describe(v, d, sizeof d));
    const char *unit = s + nd + strspn(s + nd, " ");
    long long mult = 0;
    for (size_t i = 0; i < ARRAY_LEN(units); i++)
        if (!strcmp(unit, units[i].suffix)) mult = units[i].mult;
    if (!mult) {
        char u[HL_YAML_SHOW_MAX + 8];
        hl_yaml_show(u, sizeof u, unit, strlen(unit));
        return hl_yaml_fail(y, hl_yaml_line(v),
                            "unknown size suffix '%s' (use KiB, MiB, GiB or plain bytes)", u);
    }
    char num[24];
    long long x = 0;
    bool ok = nd < sizeof num;
    if (ok) {
        memcpy(num, s, nd);
        num[nd] = '\0';
        ok = hl_yaml_parse_ll(num, &x) && x <= LLONG_MAX / mult;
    }
    if (!ok || x * mult < lo || x * mult > hi)
        return hl_yaml_fail(y, hl_yaml_line(v), "must be between %lld and %lld bytes; got %s", lo,
                            hi, hl_yaml_describe(v, d, sizeof d));
    *out = x * mult;
    return HL_OK;
}

/* strtod alone would also take "nan", "inf" and hex. */
hl_err hl_yaml_double(hl_yaml *y, const yaml_node_t *v, double lo, double *out) {
    const char *s = NULL;
    hl_err err = hl_yaml_plain(y, v, "a number", &s);
    if (err) return err;
    char d[64];
    char *end = NULL;
    double x = strspn(s, "0123456789.eE+-") == strlen(s) && strpbrk(s, "0123456789")
                   ? strtod(s, &end) : 0;
    if (!end || *end)
        return hl_yaml_fail(y, hl_yaml_line(v), "expected a number; got %s",
                            hl_yaml_describe(v, d, sizeof d));
    if (!isfinite(x))
        return hl_yaml_fail(y, hl_yaml_line(v), "must be a finite number; got %s",
                            hl_yaml_describe(v, d, sizeof d));
    if (x < lo)
        return hl_yaml_fail(y, hl_yaml_line(v), "must be >= %g; got %s", lo,
                            hl_yaml_describe(v, d, sizeof d));
    *out = x;
    return HL_OK;
}

hl_err hl_yaml_bool(hl_yaml *y, const yaml_node_t *v, bool *out) {
    const char *s = NULL;
    hl_err err = hl_yaml_plain(y, v, "true or false", &s);
    if (err) return err;
    char d[64];
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return hl_yaml_fail(y, hl_yaml_line(v), "expected true or false; got %s",
                            hl_yaml_describe(v, d, sizeof d));
    return HL_OK;
}

hl_err hl_yaml_word(hl_yaml *y, const yaml_node_t *v, const char *const *words, size_t n,
                    int *out) {
    const char *s = NULL;
    char d[64], list[128] = "";
    hl_err err = hl_yaml_text(y, v, "a word", &s);
    if (err) return err;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, words[i])) {
            *out = (int)i;
            return HL_OK;
        }
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, words[i], sizeof list - strlen(list) - 1);
    }
    return hl_yaml_fail(y, hl_yaml_line(v), "expected one of %s; got %s", list,
                        hl_yaml_describe(v, d, sizeof d));
}

hl_err hl_yaml_strings(hl_yaml *y, const yaml_node_t *v, bool scalar_ok, const char *what,
                       hl_yaml_check_fn check, char ***out, size_t *n_out) {
    char d[64];
    size_t n = 0;
    if (scalar_ok && v->type == YAML_SCALAR_NODE && !hl_yaml_is_null(v))
        n = 1;
    else if (v->type == YAML_SEQUENCE_NODE)
        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    else
        return hl_yaml_fail(y, hl_yaml_line(v), "expected %s; got %s",
                            scalar_ok ? "a string or a list of strings" : "a list of strings",
                            hl_yaml_describe(v, d, sizeof d));
    if (n == 0 && what) return hl_yaml_fail(y, hl_yaml_line(v), "expected at least one %s", what);
    if (n == 0) return HL_OK;
    char **arr = calloc(n, sizeof *arr);
    if (!arr) return hl_yaml_oom(y, hl_yaml_line(v));
    *out = arr;
    *n_out = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = v;
        size_t mark = y->plen;
        const char *s = NULL;
        hl_err err = HL_OK;
        if (v->type == YAML_SEQUENCE_NODE) {
            mark = hl_yaml_push_index(y, i);
            err = hl_yaml_visit(y, v->data.sequence.items.start[i], hl_yaml_line(v), &item);
        }
        if (!err) err = hl_yaml_text(y, item, "a string", &s);
        if (!err && !(arr[i] = strdup(s))) err = hl_yaml_oom(y, hl_yaml_line(item));
        if (!err) err = check(y, item, arr[i]);
        if (err) return err;
        hl_yaml_pop(y, mark);
    }
    return HL_OK;
}

hl_err hl_yaml_seq_len(hl_yaml *y, const yaml_node_t *v, const char *what, size_t *n) {
    char d[64];
    if (hl_yaml_is_null(v)) {
        *n = 0;
        return HL_OK;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return hl_yaml_fail(y, hl_yaml_line(v), "expected a list of %s; got %s", what,
                            hl_yaml_describe(v, d, sizeof d));
    *n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    return HL_OK;
}

hl_err hl_yaml_seq_item(hl_yaml *y, const yaml_node_t *v, size_t i, const yaml_node_t **out) {
    return hl_yaml_visit(y, v->data.sequence.items.start[i], hl_yaml_line(v), out);
}

/* ---- mappings -------------------------------------------------------------------------- */

static const hl_yaml_key *row_at(const void *rows, size_t stride, size_t i) {
    return (const hl_yaml_key *)(const void *)((const char *)rows + i * stride);
}

/* "unknown key 'x' (expected one of: a, b, c)" */
static hl_err fail_unknown(hl_yaml *y, const yaml_node_t *kn, const void *rows, size_t stride,
                           size_t nrows) {
    char list[600] = "", d[64];
    size_t o = 0;
    for (size_t i = 0; i < nrows; i++) {
        const hl_yaml_key *k = row_at(rows, stride, i);
        if (k->flags & HL_YAML_REFUSED) continue;
        int n = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", k->name);
        if (n < 0 || (size_t)n >= sizeof list - o) {
            /* Never a cut name: drop the partial one and say the list goes on. */
            list[o] = '\0';
            if (o + 5 < sizeof list) memcpy(list + o, ", ...", 6);
            break;
        }
        o += (size_t)n;
    }
    return hl_yaml_fail(y, hl_yaml_line(kn), "unknown key %s (expected one of: %s)",
                        hl_yaml_describe(kn, d, sizeof d), list);
}

/* What the first pass of hl_yaml_map() gathers: each row's value, in file order. */
typedef struct map_scan {
    const yaml_node_t *vals[HL_YAML_MAX_KEYS];
    int lines[HL_YAML_MAX_KEYS];
    size_t order[HL_YAML_MAX_KEYS]; /* rows in the order the file has them */
    size_t n_order;
} map_scan;

/* First pass over one key/value pair: finds its row and remembers its value. */
static hl_err scan_pair(hl_yaml *y, const yaml_node_t *m, const yaml_node_pair_t *pair,
                        const void *rows, size_t stride, size_t nrows, hl_yaml_set_fn set,
                        void *obj, map_scan *sc) {
    const yaml_node_t *kn = NULL;
    char d[64];
    hl_err err = hl_yaml_visit(y, pair->key, hl_yaml_line(m), &kn);
    if (err) return err;
    if (kn->type != YAML_SCALAR_NODE)
        return hl_yaml_fail(y, hl_yaml_line(kn), "expected a key name; got %s",
                            hl_yaml_describe(kn, d, sizeof d));
    const char *ks = (const char *)kn->data.scalar.value;
    size_t klen = kn->data.scalar.length, i = 0;
    for (; i < nrows; i++) {
        const char *name = row_at(rows, stride, i)->name;
        if (strlen(name) == klen && !memcmp(name, ks, klen)) break;
    }
    size_t mark = hl_yaml_push_key(y, ks, klen);
    if (i == nrows) return fail_unknown(y, kn, rows, stride, nrows);
    const hl_yaml_key *k = row_at(rows, stride, i);
    if (k->flags & HL_YAML_REFUSED) return set(y, kn, k, obj);
    if (sc->vals[i])
        return hl_yaml_fail(y, hl_yaml_line(kn), "duplicate key (first set on line %d)",
                            sc->lines[i]);
    if ((err = hl_yaml_visit(y, pair->value, hl_yaml_line(kn), &sc->vals[i]))) return err;
    sc->lines[i] = hl_yaml_line(kn);
    sc->order[sc->n_order++] = i; /* at most once per row: duplicates were refused above */
    hl_yaml_pop(y, mark);
    return HL_OK;
}

hl_err hl_yaml_map(hl_yaml *y, const yaml_node_t *m, const void *rows, size_t stride,
                   size_t nrows, hl_yaml_set_fn set, void *obj) {
    map_scan sc = {.n_order = 0};
    char d[64];
    hl_err err;
    if (nrows > HL_YAML_MAX_KEYS)
        return hl_yaml_fail(y, hl_yaml_line(m), "internal: table too large");
    if (m && m->type != YAML_MAPPING_NODE && !hl_yaml_is_null(m))
        return hl_yaml_fail(y, hl_yaml_line(m), "expected a mapping (key: value lines); got %s",
                            hl_yaml_describe(m, d, sizeof d));
    const yaml_node_pair_t *pairs =
        m && m->type == YAML_MAPPING_NODE ? m->data.mapping.pairs.start : NULL;
    size_t npairs = pairs ? (size_t)(m->data.mapping.pairs.top - pairs) : 0;
    for (size_t p = 0; p < npairs; p++)
        if ((err = scan_pair(y, m, &pairs[p], rows, stride, nrows, set, obj, &sc))) return err;
    for (size_t i = 0; i < nrows; i++) {
        const hl_yaml_key *k = row_at(rows, stride, i);
        if (!(k->flags & HL_YAML_REQUIRED) || sc.vals[i]) continue;
        hl_yaml_push_key(y, k->name, strlen(k->name));
        return hl_yaml_fail(y, hl_yaml_line(m), "required key is missing");
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < sc.n_order; j++) {
            const hl_yaml_key *k = row_at(rows, stride, sc.order[j]);
            if (((k->flags & HL_YAML_LAST) != 0) != (pass == 1)) continue;
            size_t mark = hl_yaml_push_key(y, k->name, strlen(k->name));
            if ((err = set(y, sc.vals[sc.order[j]], k, obj))) return err;
            hl_yaml_pop(y, mark);
        }
    }
    return HL_OK;
}

/* ---- documents ------------------------------------------------------------------------- */

static hl_err syntax_error(hl_yaml *y, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR) return hl_yaml_oom(y, 1);
    int line = (int)p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < y->len; i++)
            line += y->text[i] == '\n';
    }
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->context)
        return hl_yaml_fail_code(y, line, HL_ERR_PARSE, "YAML syntax error: %s (%s at line %d)",
                                 problem, p->context, (int)p->context_mark.line + 1);
    return hl_yaml_fail_code(y, line, HL_ERR_PARSE, "YAML syntax error: %s", problem);
}

/* Loads the first document, then makes sure no second one follows: a reader that stops
 * after the first would silently ignore it. */
static hl_err load_one(hl_yaml *y, yaml_parser_t *parser) {
    yaml_document_t extra;
    if (!yaml_parser_load(parser, &y->doc)) return syntax_error(y, parser);
    y->doc_ok = true;
    if (!yaml_parser_load(parser, &extra)) return syntax_error(y, parser);
    bool more = yaml_document_get_root_node(&extra) != NULL;
    int extra_line = (int)extra.start_mark.line + 1;
    yaml_document_delete(&extra);
    if (more)
        return hl_yaml_fail(y, extra_line,
                            "only one YAML document is allowed (found a second '---')");
    return HL_OK;
}

hl_err hl_yaml_open(hl_yaml *y, const char *name, const char *text, size_t len,
                    size_t max_bytes, char *errbuf, size_t errlen, const yaml_node_t **root) {
    *y = (hl_yaml){.name = name, .text = text, .len = len, .errbuf = errbuf, .errlen = errlen};
    *root = NULL;
    if (!text && len) return hl_yaml_fail(y, 1, "no text given");
    if (len > max_bytes)
        return hl_yaml_fail_code(y, 1, HL_ERR_LIMIT, "config is too large (%zu bytes; the limit "
                                 "is %zu)", len, max_bytes);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return hl_yaml_oom(y, 1);
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    hl_err err = load_one(y, &parser);
    yaml_parser_delete(&parser);
    if (err) return err;
    y->n_nodes = (size_t)(y->doc.nodes.top - y->doc.nodes.start);
    if (!(y->seen = calloc(y->n_nodes ? y->n_nodes : 1, 1))) return hl_yaml_oom(y, 1);
    return y->n_nodes ? hl_yaml_visit(y, 1, 1, root) : HL_OK;
}

void hl_yaml_close(hl_yaml *y) {
    free(y->seen);
    y->seen = NULL;
    if (y->doc_ok) yaml_document_delete(&y->doc);
    y->doc_ok = false;
}
