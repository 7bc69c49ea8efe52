/* hl_config: hybridllm's configuration schema, and the loader that reads a YAML file with it.
 *
 * Every key is one row of a table below: its name, type, the field it fills, its default,
 * its bounds and its help text, written once (hl_config_print_reference() prints them).
 * Defaults are set from the rows before a mapping is read (for the top level when the config
 * is created, for each item of a list before the item is read), so a key left out keeps its
 * row's default. Lists of mappings (backends, prices, routes, budgets, splits, custom PII
 * patterns) are read by one walker, walk_seq(), from a cfg_table that says the item's size,
 * how many items are allowed, and what to check once an item is read.
 *
 * YAML itself (the node tree, key paths, typed scalars, "file:line: key: problem" errors,
 * unknown and duplicate keys) is hl_yaml.c's. What is left here is what only hybridllm knows:
 * names, URLs, backend references, which keys go with which backend kind.
 *
 * The top level's routes row is read last (HL_YAML_LAST), so that routes can check their
 * backend names against backends wherever the two appear in the file. Secrets never live in
 * the file: keys such as api_key are recognised only to be refused with a pointer to the
 * *_env key that names an environment variable instead.
 *
 * Custom PII patterns are compiled here with PCRE2, with the flags the detector uses, so that
 * a bad one stops the start with its file and line; the config does not depend on the
 * router (the detector checks them again when it is created). */
#include "hl_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "hl_buf.h"
#include "hl_yaml.h"

#define CFG_MAX_BYTES (1u << 20) /* a hand-written config is a few KiB; more is a mistake */
#define CFG_MAX_MS 86400000LL    /* one day: no timeout is longer; keeps ms*1e6 in range */
#define GIB (1024LL * 1024 * 1024)
#define MIB (1024LL * 1024)
#define KIB 1024LL
#define MAX_TOKENS 100000000LL   /* bound of every token count */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The reader's state: the YAML document (first, so hl_yaml callbacks can reach the rest)
 * and the config being filled. */
typedef struct cfg_ctx {
    hl_yaml y;
    hl_config *cfg;
} cfg_ctx;

typedef enum cfg_type {
    T_INT,      /* decimal integer in [lo, hi], into an int or a long (by the field's size) */
    T_SIZE,     /* bytes with an optional KiB/MiB/GiB suffix, in [lo, hi], into a size_t */
    T_DOUBLE,   /* finite number >= lo */
    T_BOOL,     /* true / false */
    T_TRISTATE, /* true / false into an hl_tristate; left out: HL_ANY, or see the help */
    T_ENUM,     /* one of words, its index into an enum field */
    T_CHOICE,   /* one of two words into a bool: the second is true */
    T_WORD_STR, /* one of words, copied as a string */
    T_STR,      /* non-empty text */
    T_STR_OR_EMPTY, /* text; "" allowed */
    T_ENV,      /* the name of an environment variable */
    T_TOKEN,    /* a name without spaces (model, tenant); what: "a model name" */
    T_STRS,     /* a string or a list of them, each passing check, into char ** + count */
    T_LISTEN,   /* "host:port" or "[v6]:port" into listen_host and listen_port */
    T_MAP,      /* a nested mapping, read with sub into the field at off */
    T_SEQ,      /* a list of mappings, read with sub into an array + count */
    T_CUSTOM,   /* fn does it all */
    T_SECRET,   /* refused: help says where the secret goes instead */
} cfg_type;

typedef struct cfg_key cfg_key;
typedef struct cfg_table cfg_table;
typedef hl_err (*cfg_fn)(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj);

enum {
    F_SCALAR_OK = 1u << 0, /* T_STRS: a single string is a one-item list */
    F_NULL_OK = 1u << 1,   /* T_STRS: an empty value is an empty list */
};

/* One key: everything about it is in its row. */
struct cfg_key {
    hl_yaml_key key;      /* name; HL_YAML_REQUIRED / _REFUSED / _LAST */
    cfg_type type;
    size_t off, size;     /* the field it fills and its size */
    size_t off_n;         /* T_STRS, T_SEQ: the count field */
    long long lo, hi;     /* bounds: T_INT, T_SIZE (lo..hi); T_DOUBLE (lo) */
    long long def;        /* default of T_INT, T_SIZE, T_BOOL, T_ENUM, T_CHOICE */
    double def_d;         /* default of T_DOUBLE; NAN: computed (see help) */
    const char *def_s;    /* default of T_STR, T_LISTEN; NULL: none */
    const char *help;
    const char *const *words; /* T_ENUM, T_CHOICE, T_WORD_STR */
    size_t n_words;
    const char *what;     /* T_TOKEN, T_STRS: what a value is, for messages */
    unsigned flags;       /* F_* */
    hl_yaml_check_fn check; /* T_STRS: each string */
    const cfg_table *sub; /* T_MAP, T_SEQ */
    cfg_fn fn;            /* T_CUSTOM */
    const char *shown;    /* T_CUSTOM: the type named in the reference; NULL: "string" */
};

/* A mapping's rows; for a list of mappings, also the item and its limits. */
struct cfg_table {
    const cfg_key *keys;
    size_t n;
    size_t item_size;     /* T_SEQ: sizeof one item */
    long line_off;        /* T_SEQ: offset of the item's `int line`, or -1 */
    const char *what;     /* T_SEQ: "expected a list of <what>" */
    size_t min, max;      /* T_SEQ: item count; max 0: no limit */
    const char *too_few;  /* message below min */
    const char *too_many; /* "at most <max> <too_many>" */
    /* T_SEQ: run once an item is read (defaults that depend on other keys, combinations). */
    hl_err (*check)(cfg_ctx *c, const yaml_node_t *item, void *elem, size_t i);
};

#define FIELD(st, f) .off = offsetof(st, f), .size = sizeof(((st *)0)->f)
#define TABLE(rows) .keys = rows, .n = ARRAY_LEN(rows)
#define FIELD_PTR(obj, k, type) ((type *)(void *)((char *)(obj) + (k)->off))
#define COUNT_PTR(obj, k) ((size_t *)(void *)((char *)(obj) + (k)->off_n))

static hl_err walk_map(cfg_ctx *c, const yaml_node_t *m, const cfg_table *t, void *obj);
static hl_err walk_seq(cfg_ctx *c, const yaml_node_t *v, const cfg_table *t, void *arr_field,
                       size_t *n);

/* ---- what only hybridllm knows about a value ------------------------------------------- */

static bool is_name_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

static bool has_space_or_ctl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) return true;
    return false;
}

/* A backend, route or budget name: [A-Za-z0-9._-]+, safe in a header value and a log line. */
static hl_err get_name(hl_yaml *y, const yaml_node_t *v, const char **out) {
    hl_err err = hl_yaml_text(y, v, "a name", out);
    if (err) return err;
    const char *s = *out;
    char d[64];
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i])) n = 0;
    if (n == 0)
        return hl_yaml_fail(y, hl_yaml_line(v), "expected a name of letters, digits, '.', '_' "
                            "and '-'; got %s", hl_yaml_describe(v, d, sizeof d));
    return HL_OK;
}

/* A model name, task type or tenant: non-empty, no whitespace or control characters. */
static hl_err check_token(hl_yaml *y, const yaml_node_t *v, char *s) {
    char d[64];
    if (!*s || has_space_or_ctl(s))
        return hl_yaml_fail(y, hl_yaml_line(v), "expected a name without spaces; got %s",
                            hl_yaml_describe(v, d, sizeof d));
    return HL_OK;
}

/* An upstream base URL: http:// or https://, stored without trailing slashes so that paths
 * can be appended as "/chat/completions". */
static hl_err check_url(hl_yaml *y, const yaml_node_t *v, char *s) {
    char d[64];
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') s[--n] = '\0';
    size_t scheme = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!scheme || n == scheme || has_space_or_ctl(s))
        return hl_yaml_fail(y, hl_yaml_line(v), "expected an http:// or https:// URL; got %s",
                            hl_yaml_describe(v, d, sizeof d));
    return HL_OK;
}

static hl_err check_backend_ref(hl_yaml *y, const yaml_node_t *v, char *s) {
    const hl_config *cfg = ((cfg_ctx *)(void *)y)->cfg;
    if (hl_config_backend(cfg, s)) return HL_OK;
    char d[64], names[160] = "";
    size_t o = 0;
    for (size_t i = 0; i < cfg->n_backends && o < sizeof names; i++) {
        int n = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", cfg->backends[i].name);
        if (n < 0 || (size_t)n >= sizeof names - o) {
            memcpy(names + sizeof names - 4, "...", 4);
            break;
        }
        o += (size_t)n;
    }
    return hl_yaml_fail(y, hl_yaml_line(v), "unknown backend %s (declared: %s)",
                        hl_yaml_describe(v, d, sizeof d), names);
}

/* The name of an environment variable. The value is never quoted back: the usual mistake is
 * pasting the key itself here. */
static hl_err get_env_name(hl_yaml *y, const yaml_node_t *v, const char **out) {
    hl_err err = hl_yaml_text(y, v, "the name of an environment variable", out);
    if (err) return err;
    const char *s = *out;
    bool ok = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_';
    for (const char *p = s; ok && *p; p++)
        ok = is_name_char(*p) && *p != '.' && *p != '-';
    if (!ok)
        return hl_yaml_fail(y, hl_yaml_line(v), "expected the name of an environment variable "
                            "(letters, digits and _, not starting with a digit), not its value");
    return HL_OK;
}

/* "host:port" or "[ipv6]:port" into a new host string (without brackets) and a port. Returns
 * NULL or what is wrong (the caller adds the value); *host is NULL if out of memory. */
static const char *split_listen(const char *s, char **host_out, int *port_out) {
    const char *host = s, *host_end, *port;
    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        port = host_end && host_end[1] == ':' ? host_end + 2 : NULL;
    } else {
        host_end = strrchr(s, ':');
        port = host_end ? host_end + 1 : NULL;
        if (host_end && memchr(s, ':', (size_t)(host_end - s)))
            return "an IPv6 address needs brackets, e.g. [::1]:8741";
    }
    if (!port || host_end == host || has_space_or_ctl(s) ||
        memchr(host, '[', (size_t)(host_end - host)))
        return "expected host:port (e.g. 127.0.0.1:8741 or [::1]:8741)";
    long long p;
    if (strspn(port, "0123456789") != strlen(port) || !hl_yaml_parse_ll(port, &p) || p < 1 ||
        p > 65535)
        return "port must be between 1 and 65535";
    *host_out = strndup(host, (size_t)(host_end - host));
    *port_out = (int)p;
    return NULL;
}

static hl_err set_listen(cfg_ctx *c, const yaml_node_t *v, const char *s) {
    char *host = NULL, d[64];
    int port = 0;
    const char *problem = split_listen(s, &host, &port);
    if (problem)
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "%s; got %s", problem,
                            hl_yaml_describe(v, d, sizeof d));
    if (!host) return hl_yaml_oom(&c->y, hl_yaml_line(v));
    free(c->cfg->listen_host);
    c->cfg->listen_host = host;
    c->cfg->listen_port = port;
    return HL_OK;
}

/* ---- rows: reading a value, and its default -------------------------------------------- */

/* Stores an integer in an int or a long field, as the row's size says (its bounds fit). */
static void store_int(void *obj, const cfg_key *k, long long x) {
    if (k->size == sizeof(int))
        *FIELD_PTR(obj, k, int) = (int)x;
    else
        *FIELD_PTR(obj, k, long) = (long)x;
}

/* The scalar types: one value into one field. */
static hl_err set_scalar(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_yaml *y = &c->y;
    long long x = 0;
    double dx = 0;
    bool b = false;
    int i = 0;
    hl_err err;
    switch (k->type) {
    case T_INT:
        if (!(err = hl_yaml_int(y, v, k->lo, k->hi, &x))) store_int(obj, k, x);
        return err;
    case T_SIZE:
        if (!(err = hl_yaml_size(y, v, k->lo, k->hi, &x))) *FIELD_PTR(obj, k, size_t) = (size_t)x;
        return err;
    case T_DOUBLE:
        if (!(err = hl_yaml_double(y, v, (double)k->lo, &dx))) *FIELD_PTR(obj, k, double) = dx;
        return err;
    case T_BOOL:
        if (!(err = hl_yaml_bool(y, v, &b))) *FIELD_PTR(obj, k, bool) = b;
        return err;
    case T_TRISTATE:
        if (!(err = hl_yaml_bool(y, v, &b))) *FIELD_PTR(obj, k, hl_tristate) = b ? HL_YES : HL_NO;
        return err;
    case T_ENUM:
        if (!(err = hl_yaml_word(y, v, k->words, k->n_words, &i))) *FIELD_PTR(obj, k, int) = i;
        return err;
    case T_CHOICE:
        if (!(err = hl_yaml_word(y, v, k->words, k->n_words, &i)))
            *FIELD_PTR(obj, k, bool) = i == 1;
        return err;
    case T_WORD_STR:
        if ((err = hl_yaml_word(y, v, k->words, k->n_words, &i))) return err;
        return hl_yaml_set_str(y, v, FIELD_PTR(obj, k, char *), k->words[i]);
    default:
        return hl_yaml_fail(y, hl_yaml_line(v), "internal: bad row type");
    }
}

/* The text types. */
static hl_err set_text(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_yaml *y = &c->y;
    const char *s = "";
    hl_err err = HL_OK;
    switch (k->type) {
    case T_STR:
        if ((err = hl_yaml_text(y, v, "a string", &s))) return err;
        if (!*s) return hl_yaml_fail(y, hl_yaml_line(v), "must not be empty");
        break;
    case T_STR_OR_EMPTY:
        if (!(v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0))
            err = hl_yaml_text(y, v, "a string", &s);
        break;
    case T_ENV:
        err = get_env_name(y, v, &s);
        break;
    case T_TOKEN:
        if (!(err = hl_yaml_text(y, v, k->what, &s))) err = check_token(y, v, (char *)s);
        break; /* check_token only reads */
    case T_LISTEN:
        if ((err = hl_yaml_text(y, v, "host:port", &s))) return err;
        return set_listen(c, v, s);
    default:
        return hl_yaml_fail(y, hl_yaml_line(v), "internal: bad row type");
    }
    return err ? err : hl_yaml_set_str(y, v, FIELD_PTR(obj, k, char *), s);
}

/* hl_yaml_map's callback: reads v for row key into obj. */
static hl_err set_row(hl_yaml *y, const yaml_node_t *v, const hl_yaml_key *key, void *obj) {
    cfg_ctx *c = (cfg_ctx *)(void *)y;
    const cfg_key *k = (const cfg_key *)(const void *)key;
    switch (k->type) {
    case T_STR: case T_STR_OR_EMPTY: case T_ENV: case T_TOKEN: case T_LISTEN:
        return set_text(c, v, k, obj);
    case T_STRS:
        if ((k->flags & F_NULL_OK) && hl_yaml_is_null(v)) return HL_OK;
        return hl_yaml_strings(y, v, (k->flags & F_SCALAR_OK) != 0, k->what, k->check,
                               FIELD_PTR(obj, k, char **), COUNT_PTR(obj, k));
    case T_MAP:
        return walk_map(c, v, k->sub, (char *)obj + k->off);
    case T_SEQ:
        return walk_seq(c, v, k->sub, (char *)obj + k->off, COUNT_PTR(obj, k));
    case T_CUSTOM:
        return k->fn(c, v, k, obj);
    case T_SECRET:
        return hl_yaml_fail(y, hl_yaml_line(v), "%s", k->help);
    default:
        return set_scalar(c, v, k, obj);
    }
}

/* Sets every row's default in obj, nested mappings included. */
static hl_err apply_defaults(cfg_ctx *c, const cfg_table *t, void *obj) {
    for (size_t i = 0; i < t->n; i++) {
        const cfg_key *k = &t->keys[i];
        hl_err err = HL_OK;
        switch (k->type) {
        case T_INT: store_int(obj, k, k->def); break;
        case T_SIZE: *FIELD_PTR(obj, k, size_t) = (size_t)k->def; break;
        case T_DOUBLE: *FIELD_PTR(obj, k, double) = k->def_d; break;
        case T_BOOL: case T_CHOICE: *FIELD_PTR(obj, k, bool) = k->def != 0; break;
        case T_TRISTATE: case T_ENUM: *FIELD_PTR(obj, k, int) = (int)k->def; break;
        case T_STR:
            if (k->def_s) err = hl_yaml_set_str(&c->y, NULL, FIELD_PTR(obj, k, char *), k->def_s);
            break;
        case T_LISTEN: {
            char *host = NULL;
            split_listen(k->def_s, &host, &c->cfg->listen_port);
            if (!host) return hl_yaml_oom(&c->y, 1);
            free(c->cfg->listen_host);
            c->cfg->listen_host = host;
            break;
        }
        case T_MAP: err = apply_defaults(c, k->sub, (char *)obj + k->off); break;
        default: break;
        }
        if (err) return err;
    }
    return HL_OK;
}

static hl_err walk_map(cfg_ctx *c, const yaml_node_t *m, const cfg_table *t, void *obj) {
    return hl_yaml_map(&c->y, m, t->keys, sizeof *t->keys, t->n, set_row, obj);
}

/* The one walker for lists of mappings: allocates the items (stored in the pointer field at
 * arr_field, and *n_out set, before any is read, so that hl_config_free() frees a half-read
 * list), then reads each one with its defaults set first, its line noted and t->check run
 * last. */
static hl_err walk_seq(cfg_ctx *c, const yaml_node_t *v, const cfg_table *t, void *arr_field,
                       size_t *n_out) {
    hl_yaml *y = &c->y;
    size_t n = 0;
    hl_err err = hl_yaml_seq_len(y, v, t->what, &n);
    if (err) return err;
    if (n < t->min) return hl_yaml_fail(y, hl_yaml_line(v), "%s", t->too_few);
    if (t->max && n > t->max)
        return hl_yaml_fail(y, hl_yaml_line(v), "at most %zu %s", t->max, t->too_many);
    if (n == 0) return HL_OK;
    char *items = calloc(n, t->item_size);
    if (!items) return hl_yaml_oom(y, hl_yaml_line(v));
    memcpy(arr_field, &items, sizeof items); /* the field is a pointer to the item type */
    *n_out = n;
    for (size_t i = 0; i < n; i++) {
        void *elem = items + i * t->item_size;
        const yaml_node_t *item = NULL;
        size_t mark = hl_yaml_push_index(y, i);
        if ((err = hl_yaml_seq_item(y, v, i, &item))) return err;
        if ((err = apply_defaults(c, t, elem))) return err;
        if (t->line_off >= 0) *(int *)(void *)((char *)elem + t->line_off) = hl_yaml_line(item);
        if ((err = walk_map(c, item, t, elem))) return err;
        if (t->check && (err = t->check(c, item, elem, i))) return err;
        hl_yaml_pop(y, mark);
    }
    return HL_OK;
}

/* ---- the schema -------------------------------------------------------------------------- */

#define K(name) .key = {name, 0}
#define KF(name, flags) .key = {name, flags}
#define WORDS(w) .words = w, .n_words = ARRAY_LEN(w)
#define SECRET(name, what, env_key)                                                         \
    {KF(name, HL_YAML_REFUSED), .type = T_SECRET,                                           \
     .help = "secrets are not read from the config file; put the " what " in an environment " \
             "variable and name it with " env_key}

static const cfg_key server_keys[] = {
    {K("listen"), .type = T_LISTEN, .def_s = "127.0.0.1:8741",
     .help = "address to listen on: host:port, or [v6]:port"},
    {K("threads"), .type = T_INT, FIELD(hl_config, threads), .lo = 0, .hi = 256, .def = 0,
     .help = "event loops; 0: one per core"},
    {K("max_body_bytes"), .type = T_SIZE, FIELD(hl_config, max_body_bytes), .lo = 1, .hi = GIB,
     .def = 4 * MIB, .help = "largest request body"},
    {K("max_header_bytes"), .type = T_SIZE, FIELD(hl_config, max_header_bytes), .lo = KIB,
     .hi = MIB, .def = 16 * KIB, .help = "largest request head (request line and headers)"},
    {K("max_headers"), .type = T_INT, FIELD(hl_config, max_headers), .lo = 1,
     .hi = HL_CONFIG_MAX_HEADERS, .def = 64, .help = "most header fields in a request"},
    {K("read_timeout_ms"), .type = T_INT, FIELD(hl_config, read_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 30000, .help = "a request must arrive completely within this"},
    {K("idle_timeout_ms"), .type = T_INT, FIELD(hl_config, idle_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 60000, .help = "an idle keep-alive connection is closed after this"},
    {K("shutdown_timeout_ms"), .type = T_INT, FIELD(hl_config, shutdown_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 30000, .help = "how long SIGTERM waits for requests to finish"},
    {K("write_timeout_ms"), .type = T_INT, FIELD(hl_config, write_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 30000,
     .help = "a client that takes none of its response for this long is disconnected"},
    {K("max_connections"), .type = T_INT, FIELD(hl_config, max_connections), .lo = 0,
     .hi = 16777216, .def = 0,
     .help = "open client connections at most, above which new ones get a 503 at once; 0: "
             "from the file-descriptor limit"},
    {K("request_timeout_ms"), .type = T_INT, FIELD(hl_config, request_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 600000, .help = "a chat request's whole life, retries included"},
    {K("health_interval_ms"), .type = T_INT, FIELD(hl_config, health_interval_ms), .lo = 100,
     .hi = CFG_MAX_MS, .def = 10000, .help = "how often backends that are not ready, local ones and auto models are probed"},
    {K("api_keys_env"), .type = T_ENV, FIELD(hl_config, api_keys_env),
     .help = "environment variable with the comma-separated client keys; unset: no auth"},
    SECRET("api_keys", "keys", "api_keys_env"),
    {K("admin_key_env"), .type = T_ENV, FIELD(hl_config, admin_key_env),
     .help = "environment variable with the key of the admin API (/admin/keys); unset: /admin/ "
             "answers 404"},
    SECRET("admin_key", "admin key", "admin_key_env"),
    {K("key_reserve_max_tokens"), .type = T_INT, FIELD(hl_config, key_reserve_max_tokens), .lo = 1,
     .hi = 10000000, .def = 4096,
     .help = "output tokens reserved against a virtual key's budget for a request that sets no "
             "max_tokens"},
    {K("status_requires_key"), .type = T_BOOL, FIELD(hl_config, status_requires_key), .def = false,
     .help = "/metrics and /readyz answer only with a client key (/healthz stays open)"},
};

static hl_err h_ca_file(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj);

static const cfg_key upstream_keys[] = {
    {K("ca_file"), .type = T_CUSTOM, FIELD(hl_config, upstream_ca_file), .fn = h_ca_file,
     .shown = "file", .help = "PEM file of the CAs trusted for every https:// backend instead of "
                              "the system's; a backend's ca_file wins. Proxies: HTTPS_PROXY, "
                              "NO_PROXY from the environment"},
};

static const cfg_key ledger_keys[] = {
    {K("path"), .type = T_STR, FIELD(hl_config, ledger_path), .def_s = "hybridllm-ledger.jsonl",
     .help = "the JSON-lines journal of every request"},
    {K("store"), .type = T_STR_OR_EMPTY, FIELD(hl_config, ledger_store_path),
     .help = "index of the journal: a SQLite file or a postgresql:// URI; default: the "
             "journal's path with .db; \"\" turns it off"},
    {K("index_interval_ms"), .type = T_INT, FIELD(hl_config, ledger_index_interval_ms), .lo = 10,
     .hi = CFG_MAX_MS, .def = 1000, .help = "how often the store catches up with the journal"},
};

/* Unique names in a list: the items before obj, each `size` bytes from base, their name at
 * name_off. Returns the earlier item with this name, or NULL. */
static const void *find_earlier(const void *base, const void *obj, size_t size,
                                size_t name_off, const char *name) {
    for (const char *o = base; o < (const char *)obj; o += size)
        if (!strcmp(*(char *const *)(const void *)(o + name_off), name)) return o;
    return NULL;
}

static hl_err h_backend_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(&c->y, v, &s);
    if (err) return err;
    const hl_backend_cfg *o = find_earlier(c->cfg->backends, obj, sizeof *o,
                                           offsetof(hl_backend_cfg, name), s);
    if (o)
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "duplicate backend name %s (backends[%zu], "
                            "line %d)", hl_yaml_describe(v, d, sizeof d),
                            (size_t)(o - c->cfg->backends), o->line);
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

/* A CA bundle: a file that must be readable now (a typo fails at start, not at the first
 * cloud call as a TLS error). The contents are read by libcurl, as PEM, per connection. */
static hl_err h_ca_file(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char d[64];
    hl_err err = hl_yaml_text(&c->y, v, "a file name", &s);
    if (err) return err;
    if (!*s) return hl_yaml_fail(&c->y, hl_yaml_line(v), "must not be empty");
    FILE *f = fopen(s, "rb");
    if (!f)
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "cannot read the CA file %s: %s",
                            hl_yaml_describe(v, d, sizeof d), strerror(errno));
    fclose(f);
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

/* Whether an http:// or https:// URL's host is a loopback address (127.0.0.0/8, ::1,
 * localhost): traffic that never leaves the machine. */
static bool url_is_loopback(const char *url) {
    const char *h = strstr(url, "://");
    if (!h) return false;
    h += 3;
    const char *at = h + strcspn(h, "/?#"), *u = memchr(h, '@', (size_t)(at - h));
    if (u) h = u + 1; /* user info */
    size_t n = strcspn(h, "/?#");
    if (n && h[0] == '[') return n >= 5 && !strncmp(h, "[::1]", 5);
    size_t hn = strcspn(h, ":/?#");
    if (hn == 9 && !strncasecmp(h, "localhost", 9)) return true;
    if (hn < 4 || strncmp(h, "127.", 4)) return false;
    for (size_t i = 4; i < hn; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.')) return false;
    return true;
}

static const char *const kind_words[] = {
    [HL_PROVIDER_OPENAI] = "openai", [HL_PROVIDER_ANTHROPIC] = "anthropic",
    [HL_PROVIDER_BUILTIN] = "builtin",
};
static const char *const location_words[] = {[HL_LOCATION_LOCAL] = "local",
                                             [HL_LOCATION_CLOUD] = "cloud"};
/* In hl_engine_pooling's order (hl_engine.h): the index is the engine's value. */
static const char *const pooling_words[] = {"model", "mean", "cls", "last"};
static const char *const template_words[] = {"plain", "chatml", "llama-2", "llama-3", "mistral",
                                             "phi-3", "qwen3"};
_Static_assert(sizeof(hl_provider_kind) == sizeof(int) && sizeof(hl_location) == sizeof(int) &&
               sizeof(hl_tristate) == sizeof(int) && sizeof(hl_sticky) == sizeof(int) &&
               sizeof(hl_budget_period) == sizeof(int) && sizeof(hl_budget_action) == sizeof(int),
               "enum fields are filled as int");

/* A builtin backend's max_sequences when not given; the others must leave it 0. */
#define MAX_SEQUENCES_DEFAULT 4
#define STR_(x) #x
#define STR(x) STR_(x)

static const cfg_key backend_keys[] = {
    {KF("name", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_backend_cfg, name),
     .fn = h_backend_name, .shown = "name",
     .help = "unique; a client may also send it as `model` to force it"},
    {KF("kind", HL_YAML_REQUIRED), .type = T_ENUM, FIELD(hl_backend_cfg, kind), WORDS(kind_words),
     .help = "openai (and compatible servers), anthropic, or builtin (a GGUF model in process)"},
    {KF("location", HL_YAML_REQUIRED), .type = T_ENUM, FIELD(hl_backend_cfg, location),
     WORDS(location_words), .help = "local (data stays on the machine) or cloud"},
    {K("base_url"), .type = T_STRS, FIELD(hl_backend_cfg, base_urls),
     .off_n = offsetof(hl_backend_cfg, n_base_urls), .flags = F_SCALAR_OK, .what = "URL",
     .check = check_url, .help = "required unless builtin; several: the first that answers "
                                 "(or, with replicas: true, all of them, balanced)"},
    {K("replicas"), .type = T_BOOL, FIELD(hl_backend_cfg, replicas), .def = false,
     .help = "the base_url list is replicas of one server: each request goes to the healthy one "
             "with fewer requests in flight of two picked at random; each has its own probe, "
             "circuit breaker and latency"},
    {K("api_key_env"), .type = T_ENV, FIELD(hl_backend_cfg, api_key_env),
     .help = "environment variable holding the upstream key"},
    {KF("model", HL_YAML_REQUIRED), .type = T_TOKEN, FIELD(hl_backend_cfg, model),
     .what = "a model name", .help = "default upstream model; auto: the first from GET /models"},
    {K("models"), .type = T_STRS, FIELD(hl_backend_cfg, models),
     .off_n = offsetof(hl_backend_cfg, n_models), .flags = F_NULL_OK, .check = check_token,
     .help = "more model names this backend serves"},
    {K("hourly_cost_usd"), .type = T_DOUBLE, FIELD(hl_backend_cfg, hourly_cost_usd), .lo = 0,
     .def_d = 0.05, .help = "local cost model: busy time times this"},
    {K("timeout_ms"), .type = T_INT, FIELD(hl_backend_cfg, timeout_ms), .lo = 1, .hi = CFG_MAX_MS,
     .def = 600000, .help = "one whole upstream attempt"},
    {K("connect_timeout_ms"), .type = T_INT, FIELD(hl_backend_cfg, connect_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 5000, .help = "connecting to the upstream"},
    {K("max_retries"), .type = T_INT, FIELD(hl_backend_cfg, max_retries), .lo = 0, .hi = 10,
     .def = 2, .help = "retries on this backend before the next candidate"},
    {K("retry_base_ms"), .type = T_INT, FIELD(hl_backend_cfg, retry_base_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 500, .help = "first backoff; doubles per retry, minus jitter"},
    {K("retry_max_ms"), .type = T_INT, FIELD(hl_backend_cfg, retry_max_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 8000, .help = "longest backoff"},
    {K("breaker_failures"), .type = T_INT, FIELD(hl_backend_cfg, breaker_failures), .lo = 1,
     .hi = 1000000, .def = 5, .help = "failed attempts within breaker_window_ms that open the "
                                      "circuit breaker"},
    {K("breaker_window_ms"), .type = T_INT, FIELD(hl_backend_cfg, breaker_window_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 30000, .help = "window of breaker_failures"},
    {K("breaker_open_ms"), .type = T_INT, FIELD(hl_backend_cfg, breaker_open_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 15000, .help = "how long an open breaker skips the backend before "
                                             "one probe request"},
    {K("max_tokens"), .type = T_INT, FIELD(hl_backend_cfg, max_tokens), .lo = 1, .hi = MAX_TOKENS, .def = 0,
     .help = "output tokens asked for when a request sets none (sent upstream; virtual keys' budgets "
             "reserve it); unset: the upstream's default"},
    {K("context_window"), .type = T_INT, FIELD(hl_backend_cfg, context_window), .lo = 1,
     .hi = MAX_TOKENS, .def = 0, .help = "tokens the model takes; unset: what the server says "
                                         "(llama.cpp /props, vLLM max_model_len, Ollama), else not checked"},
    {K("stream_idle_timeout_ms"), .type = T_INT, FIELD(hl_backend_cfg, stream_idle_timeout_ms), .lo = 0,
     .hi = CFG_MAX_MS, .def = 60000, .help = "a stream silent this long is ended (next candidate "
                                             "when nothing reached the client); 0: off"},
    {K("first_token_timeout_ms"), .type = T_INT, FIELD(hl_backend_cfg, first_token_timeout_ms), .lo = 0,
     .hi = CFG_MAX_MS, .def = 0, .help = "the same before the stream's first byte (a cold model "
                                         "loading); unset: 4 x stream_idle_timeout_ms"},
    {K("warmup"), .type = T_TRISTATE, FIELD(hl_backend_cfg, warmup),
     .help = "send one tiny completion at start; default: true for local backends"},
    {K("keep_warm_ms"), .type = T_INT, FIELD(hl_backend_cfg, keep_warm_ms), .lo = 1000,
     .hi = CFG_MAX_MS, .def = 0, .help = "ping a local backend idle this long; unset: off"},
    {K("ca_file"), .type = T_CUSTOM, FIELD(hl_backend_cfg, ca_file), .fn = h_ca_file,
     .shown = "file", .help = "PEM file of the CAs trusted for https:// instead of the system's; "
                              "default: upstream.ca_file"},
    {K("allow_insecure_http"), .type = T_BOOL, FIELD(hl_backend_cfg, allow_insecure_http),
     .def = false, .help = "let a cloud backend use http:// to a host outside loopback (its key "
                           "and prompts cross the network unencrypted)"},
    {K("model_path"), .type = T_STR, FIELD(hl_backend_cfg, model_path),
     .help = "builtin only, required: the GGUF file"},
    {K("threads"), .type = T_INT, FIELD(hl_backend_cfg, threads), .lo = 0, .hi = 256, .def = 0,
     .help = "builtin only: matmul threads; 0: one per core"},
    {K("context_size"), .type = T_INT, FIELD(hl_backend_cfg, context_size), .lo = 16,
     .hi = 10000000, .def = 0, .help = "builtin only: tokens; unset: the model's, at most 4096"},
    {K("chat_template"), .type = T_WORD_STR, FIELD(hl_backend_cfg, chat_template),
     WORDS(template_words), .help = "builtin only: template family; unset: from the model"},
    {K("max_queue"), .type = T_INT, FIELD(hl_backend_cfg, max_queue), .lo = 1, .hi = 100000,
     .def = 16, .help = "requests waiting for the engine before 503"},
    {K("max_sequences"), .type = T_INT, FIELD(hl_backend_cfg, max_sequences), .lo = 1, .hi = 256,
     .def = 0, .help = "builtin only: requests generated together (one KV cache each); "
                       "default " STR(MAX_SEQUENCES_DEFAULT)},
    {K("repack_weights"), .type = T_TRISTATE, FIELD(hl_backend_cfg, repack_weights),
     .help = "builtin only: false runs Q4_0/Q8_0 weights in the file's layout (less memory, "
             "slower decode); default true"},
    {K("pooling"), .type = T_ENUM, FIELD(hl_backend_cfg, pooling), WORDS(pooling_words),
     .help = "builtin only: how /v1/embeddings pools the hidden states (mean, cls or last "
             "token); default model: the GGUF's pooling_type, else mean"},
    SECRET("api_key", "key", "api_key_env"),
    SECRET("apiKey", "key", "api_key_env"),
    SECRET("key", "key", "api_key_env"),
};

/* Fails naming key (which the item lacks or should not have) at the item's line. */
static hl_err fail_key(cfg_ctx *c, const yaml_node_t *item, const char *key, const char *msg) {
    hl_yaml_push_key(&c->y, key, strlen(key));
    return hl_yaml_fail(&c->y, hl_yaml_line(item), "%s", msg);
}

/* What depends on the kind: a builtin backend runs a model file here, so it has a model_path
 * and no URL, and is local by nature; the others need a base_url. */
static hl_err check_backend(cfg_ctx *c, const yaml_node_t *item, void *elem, size_t i) {
    hl_backend_cfg *b = elem;
    (void)i;
    if (b->warmup == HL_ANY) b->warmup = b->location == HL_LOCATION_LOCAL ? HL_YES : HL_NO;
    if (b->kind == HL_PROVIDER_BUILTIN) {
        const char *bad = b->n_base_urls ? "base_url" : b->api_key_env ? "api_key_env"
                          : b->replicas ? "replicas" : NULL;
        if (bad)
            return fail_key(c, item, bad, "not used by a builtin backend (it runs model_path in "
                                          "this process)");
        if (!b->model_path)
            return fail_key(c, item, "model_path", "required key is missing (the GGUF file of a "
                                                   "builtin backend)");
        if (b->location != HL_LOCATION_LOCAL)
            return fail_key(c, item, "location", "a builtin backend runs on this machine: "
                                                 "expected local");
        if (!b->max_sequences) b->max_sequences = MAX_SEQUENCES_DEFAULT;
        return HL_OK;
    }
    const char *bad = b->model_path ? "model_path" : b->chat_template ? "chat_template"
                      : b->max_sequences ? "max_sequences"
                      : b->repack_weights != HL_ANY ? "repack_weights"
                      : b->pooling ? "pooling" : NULL;
    if (!b->n_base_urls) return fail_key(c, item, "base_url", "required key is missing");
    if (bad) return fail_key(c, item, bad, "only a builtin backend takes this key");
    for (size_t u = 0; b->location == HL_LOCATION_CLOUD && !b->allow_insecure_http && u < b->n_base_urls; u++) {
        if (strncmp(b->base_urls[u], "http://", 7) || url_is_loopback(b->base_urls[u])) continue;
        char msg[200];
        snprintf(msg, sizeof msg, "a cloud backend's http:// URL outside loopback sends its key "
                 "and prompts unencrypted (base_url[%zu]): use https://, or set "
                 "allow_insecure_http: true", u);
        return fail_key(c, item, "base_url", msg);
    }
    return HL_OK;
}

static const cfg_table backends_table = {
    TABLE(backend_keys), .item_size = sizeof(hl_backend_cfg),
    .line_off = offsetof(hl_backend_cfg, line), .what = "backends", .min = 1,
    .too_few = "at least one backend is required", .check = check_backend,
};

/* ---- prices ------------------------------------------------------------------------------ */

static hl_err h_price_model(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char d[64];
    hl_err err = hl_yaml_text(&c->y, v, k->what, &s);
    if (!err) err = check_token(&c->y, v, (char *)s); /* check_token only reads */
    if (!err) err = hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
    if (err) return err;
    const hl_price *o = find_earlier(c->cfg->prices, obj, sizeof *o, offsetof(hl_price, model), s);
    if (o)
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "duplicate price for %s (also prices[%zu])",
                            hl_yaml_describe(v, d, sizeof d), (size_t)(o - c->cfg->prices));
    return HL_OK;
}

static const cfg_key price_keys[] = {
    {KF("model", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_price, model), .fn = h_price_model,
     .shown = "name",
     .what = "a model name", .help = "upstream model name; also prices names it starts (gpt-4o "
                                     "prices gpt-4o-2024-08-06)"},
    {KF("input_per_mtok", HL_YAML_REQUIRED), .type = T_DOUBLE, FIELD(hl_price, input_per_mtok),
     .lo = 0, .help = "USD per million input tokens"},
    {KF("output_per_mtok", HL_YAML_REQUIRED), .type = T_DOUBLE, FIELD(hl_price, output_per_mtok),
     .lo = 0, .help = "USD per million output tokens"},
    {K("cached_input_per_mtok"), .type = T_DOUBLE, FIELD(hl_price, cached_input_per_mtok),
     .lo = 0, .def_d = NAN, .help = "cache reads; default: input_per_mtok"},
    {K("cache_write_per_mtok"), .type = T_DOUBLE, FIELD(hl_price, cache_write_per_mtok), .lo = 0,
     .def_d = NAN, .help = "cache creation (Anthropic); default: input_per_mtok"},
};

/* NAN marks "not given" (the reader accepts only finite numbers). */
static hl_err check_price(cfg_ctx *c, const yaml_node_t *item, void *elem, size_t i) {
    hl_price *p = elem;
    (void)c, (void)item, (void)i;
    if (isnan(p->cached_input_per_mtok)) p->cached_input_per_mtok = p->input_per_mtok;
    if (isnan(p->cache_write_per_mtok)) p->cache_write_per_mtok = p->input_per_mtok;
    return HL_OK;
}

static const cfg_table prices_table = {
    TABLE(price_keys), .item_size = sizeof(hl_price), .line_off = -1, .what = "prices",
    .check = check_price,
};

/* ---- routes ------------------------------------------------------------------------------ */

static hl_err h_route_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(&c->y, v, &s);
    if (err) return err;
    const hl_route_rule *o = find_earlier(c->cfg->routes, obj, sizeof *o,
                                          offsetof(hl_route_rule, name), s);
    if (o)
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "duplicate route name %s (routes[%zu], line "
                            "%d)", hl_yaml_describe(v, d, sizeof d),
                            (size_t)(o - c->cfg->routes), o->line);
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

static const cfg_key when_keys[] = {
    {K("sensitive"), .type = T_TRISTATE, FIELD(hl_route_rule, sensitive),
     .help = "declared regulated/PII, or PII detected; unset: any"},
    {K("task_type"), .type = T_STRS, FIELD(hl_route_rule, task_types),
     .off_n = offsetof(hl_route_rule, n_task_types), .flags = F_SCALAR_OK, .what = "task type",
     .check = check_token, .help = "declared or inferred task type(s)"},
    {K("model"), .type = T_STRS, FIELD(hl_route_rule, models),
     .off_n = offsetof(hl_route_rule, n_models), .flags = F_SCALAR_OK, .what = "model alias",
     .check = check_token, .help = "aliases a client may send as `model`"},
    {K("tenant"), .type = T_STRS, FIELD(hl_route_rule, tenants),
     .off_n = offsetof(hl_route_rule, n_tenants), .flags = F_SCALAR_OK, .what = "tenant",
     .check = check_token, .help = "x-hybridllm-tenant, else the client's API key"},
    {K("min_prompt_tokens"), .type = T_INT, FIELD(hl_route_rule, min_prompt_tokens), .lo = 1,
     .hi = MAX_TOKENS, .def = 0, .help = "estimated prompt size at least; unset: any"},
    {K("max_prompt_tokens"), .type = T_INT, FIELD(hl_route_rule, max_prompt_tokens), .lo = 1,
     .hi = MAX_TOKENS, .def = 0, .help = "estimated prompt size at most; unset: any"},
    {K("latency_budget_below_ms"), .type = T_INT, FIELD(hl_route_rule, latency_budget_below_ms),
     .lo = 1, .hi = CFG_MAX_MS, .def = 0,
     .help = "the request's x-hybridllm-latency-budget-ms is below this; unset: any"},
};
static const cfg_table when_table = {TABLE(when_keys)};

static hl_err h_split_to(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char **to = FIELD_PTR(obj, k, char *);
    hl_err err = hl_yaml_text(&c->y, v, "a backend name", &s);
    if (!err) err = hl_yaml_set_str(&c->y, v, to, s);
    if (!err) err = check_backend_ref(&c->y, v, *to);
    return err;
}

static const cfg_key split_keys[] = {
    {KF("to", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_split, to), .fn = h_split_to,
     .help = "backend name"},
    {KF("weight", HL_YAML_REQUIRED), .type = T_INT, FIELD(hl_split, weight), .lo = 1,
     .hi = 1000000, .help = "relative share"},
};
static const cfg_table split_table = {
    TABLE(split_keys), .item_size = sizeof(hl_split), .line_off = -1, .what = "split", .min = 2,
    .too_few = "a split needs at least two entries ({to, weight})",
};

static hl_err h_escalate_below(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    double x = 0;
    hl_err err = hl_yaml_double(&c->y, v, (double)k->lo, &x);
    if (err) return err;
    if (!(x > 0 && x <= 1)) return hl_yaml_fail(&c->y, hl_yaml_line(v), "must be in (0, 1]");
    *FIELD_PTR(obj, k, double) = x;
    return HL_OK;
}

static const char *const stream_words[] = {"off", "buffer"};
static const char *const signal_words[] = {[HL_SIGNAL_GEOMEAN] = "geomean", [HL_SIGNAL_MARGIN] = "margin",
                                           [HL_SIGNAL_MIN] = "min"};

const char *hl_conf_signal_name(hl_conf_signal s) {
    return (size_t)s < sizeof signal_words / sizeof signal_words[0] ? signal_words[s] : "geomean";
}

static const cfg_key escalate_keys[] = {
    {KF("below", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_route_rule, escalate_below),
     .lo = 0, .fn = h_escalate_below, .shown = "number",
     .help = "escalate when the local answer's confidence is below this, in (0, 1]"},
    {KF("to", HL_YAML_REQUIRED), .type = T_STRS, FIELD(hl_route_rule, escalate_to),
     .off_n = offsetof(hl_route_rule, n_escalate_to), .flags = F_SCALAR_OK,
     .what = "backend name", .check = check_backend_ref, .help = "backends to escalate to"},
    {K("stream"), .type = T_CHOICE, FIELD(hl_route_rule, escalate_streams), WORDS(stream_words),
     .def = 1, .help = "streamed requests: buffer them to escalate, or off"},
    {K("signal"), .type = T_ENUM, FIELD(hl_route_rule, escalate_signal), WORDS(signal_words),
     .def = HL_SIGNAL_GEOMEAN,
     .help = "the confidence `below` reads: geomean (of token probabilities), margin (first "
             "token's top-1 minus top-2 probability) or min (least token probability)"},
};
static const cfg_table escalate_table = {TABLE(escalate_keys)};

/* A share in [0, 1]. */
static hl_err h_rate(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    double x = 0;
    hl_err err = hl_yaml_double(&c->y, v, 0, &x);
    if (err) return err;
    if (!(x >= 0 && x <= 1)) return hl_yaml_fail(&c->y, hl_yaml_line(v), "must be in [0, 1]");
    *FIELD_PTR(obj, k, double) = x;
    return HL_OK;
}

/* One backend's name, which must be declared. */
static hl_err h_backend_ref(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = get_name(&c->y, v, &s);
    if (!err) err = check_backend_ref(&c->y, v, (char *)s); /* only reads */
    return err ? err : hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

/* hl_shadow_compare's order. */
static const char *const compare_words[] = {"auto", "exact", "json", "tools", "token_f1", "rouge_l",
                                            "embedding", "judge"};
static const cfg_key shadow_route_keys[] = {
    {KF("rate", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_route_rule, shadow_rate),
     .fn = h_rate, .shown = "number", .help = "share of the route's requests shadowed, in [0, 1] "
                                              "(drawn from the request id)"},
    {KF("to", HL_YAML_REQUIRED), .type = T_STRS, FIELD(hl_route_rule, shadow_to),
     .off_n = offsetof(hl_route_rule, n_shadow_to), .flags = F_SCALAR_OK,
     .what = "backend name", .check = check_backend_ref,
     .help = "backends asked the same request after the client has its answer"},
    {K("compare"), .type = T_ENUM, FIELD(hl_route_rule, shadow_compare), WORDS(compare_words),
     .def = HL_SHADOW_AUTO, .help = "how the answers are scored; auto: by task type (exact for "
                                    "classification, json for extraction, tools, else rouge_l)"},
    {K("threshold"), .type = T_CUSTOM, FIELD(hl_route_rule, shadow_threshold), .def_d = 0.5,
     .fn = h_escalate_below, .shown = "number",
     .help = "token_f1, rouge_l, embedding, judge: the answers agree at this score, in (0, 1]; default 0.5"},
    {K("embeddings"), .type = T_CUSTOM, FIELD(hl_route_rule, shadow_embeddings),
     .fn = h_backend_ref, .shown = "name", .help = "compare embedding: the backend that embeds both answers"},
    {K("judge"), .type = T_CUSTOM, FIELD(hl_route_rule, shadow_judge), .fn = h_backend_ref,
     .shown = "name", .help = "compare judge: the backend asked which answer is better (twice, "
                              "positions swapped)"},
    {K("cloud"), .type = T_BOOL, FIELD(hl_route_rule, shadow_cloud), .def = false,
     .help = "allow cloud backends in to, judge and embeddings (never for sensitive requests)"},
};
static const cfg_table shadow_route_table = {TABLE(shadow_route_keys)};

static const char *const sticky_words[] = {[HL_STICKY_REQUEST] = "request",
                                           [HL_STICKY_TENANT] = "tenant"};
static const cfg_key route_keys[] = {
    {KF("name", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_route_rule, name),
     .fn = h_route_name, .shown = "name",
     .help = "shown in x-hybridllm-route-reason and the ledger"},
    {K("when"), .type = T_MAP, .sub = &when_table,
     .help = "conditions, all of which must hold; unset ones match anything"},
    {K("to"), .type = T_STRS, FIELD(hl_route_rule, to), .off_n = offsetof(hl_route_rule, n_to),
     .flags = F_SCALAR_OK, .what = "backend name", .check = check_backend_ref,
     .help = "backends in preference order (or split)"},
    {K("split"), .type = T_SEQ, FIELD(hl_route_rule, split),
     .off_n = offsetof(hl_route_rule, n_split), .sub = &split_table,
     .help = "weighted backends {to, weight} (or to)"},
    {K("sticky"), .type = T_ENUM, FIELD(hl_route_rule, sticky), WORDS(sticky_words),
     .def = HL_STICKY_REQUEST, .help = "a split draws per request, or per tenant"},
    {K("escalate"), .type = T_MAP, .sub = &escalate_table,
     .help = "local first, cloud when the local answer's confidence is low"},
    {K("shadow"), .type = T_MAP, .sub = &shadow_route_table,
     .help = "compare another backend's answer with the served one, off the critical path"},
};

/* A shadow's backends: cloud ones only with the opt-in; what compare needs. */
static hl_err check_shadow(cfg_ctx *c, const yaml_node_t *item, hl_route_rule *r) {
    char msg[200];
    if (r->shadow_threshold <= 0) r->shadow_threshold = 0.5; /* the row's default */
    const hl_config *cfg = c->cfg;
    for (size_t j = 0; j < r->n_shadow_to + 2; j++) {
        const char *name = j < r->n_shadow_to ? r->shadow_to[j] : j == r->n_shadow_to ? r->shadow_judge
                                                                                       : r->shadow_embeddings;
        const hl_backend_cfg *b = name ? hl_config_backend(cfg, name) : NULL;
        if (!b || b->location != HL_LOCATION_CLOUD || r->shadow_cloud) continue;
        snprintf(msg, sizeof msg, "backend '%s' is a cloud backend: set shadow.cloud: true to "
                 "allow it (sensitive requests are never shadowed to the cloud)", name);
        return fail_key(c, item, j < r->n_shadow_to ? "shadow.to" : j == r->n_shadow_to ? "shadow.judge"
                                                                                        : "shadow.embeddings", msg);
    }
    if (r->shadow_compare == HL_SHADOW_EMBEDDING && !r->shadow_embeddings)
        return fail_key(c, item, "shadow.embeddings", "compare: embedding needs embeddings: BACKEND");
    if (r->shadow_compare == HL_SHADOW_JUDGE && !r->shadow_judge)
        return fail_key(c, item, "shadow.judge", "compare: judge needs judge: BACKEND");
    const hl_backend_cfg *eb = r->shadow_embeddings ? hl_config_backend(cfg, r->shadow_embeddings) : NULL;
    if (eb && eb->kind == HL_PROVIDER_ANTHROPIC)
        return fail_key(c, item, "shadow.embeddings", "an anthropic backend serves no embeddings: name an "
                        "openai-kind or builtin one");
    if (r->shadow_embeddings && r->shadow_compare != HL_SHADOW_EMBEDDING)
        return fail_key(c, item, "shadow.embeddings", "is used only with compare: embedding");
    if (r->shadow_judge && r->shadow_compare != HL_SHADOW_JUDGE)
        return fail_key(c, item, "shadow.judge", "is used only with compare: judge");
    return HL_OK;
}

static hl_err check_route(cfg_ctx *c, const yaml_node_t *item, void *elem, size_t i) {
    hl_route_rule *r = elem;
    (void)i;
    if (!r->n_to == !r->n_split)
        return hl_yaml_fail(&c->y, r->line, "a route needs exactly one of `to` (a preference "
                            "list) and `split` (weighted backends)");
    return r->n_shadow_to ? check_shadow(c, item, r) : HL_OK;
}

static const cfg_table routes_table = {
    TABLE(route_keys), .item_size = sizeof(hl_route_rule),
    .line_off = offsetof(hl_route_rule, line), .what = "routes", .min = 1,
    .too_few = "at least one route is required", .check = check_route,
};

/* ---- budgets ----------------------------------------------------------------------------- */

static hl_err h_budget_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(&c->y, v, &s);
    if (err) return err;
    if (find_earlier(c->cfg->budgets, obj, sizeof(hl_budget_cfg), offsetof(hl_budget_cfg, name), s))
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "duplicate budget name %s",
                            hl_yaml_describe(v, d, sizeof d));
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

static const char *const period_words[] = {[HL_BUDGET_MONTH] = "month", [HL_BUDGET_DAY] = "day"};
static const char *const scope_words[] = {"global", "tenant"};
static const char *const action_words[] = {[HL_BUDGET_LOCAL] = "local",
                                           [HL_BUDGET_REJECT] = "reject"};
static const cfg_key budget_keys[] = {
    {KF("name", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_budget_cfg, name),
     .fn = h_budget_name, .shown = "name", .help = "unique"},
    {KF("period", HL_YAML_REQUIRED), .type = T_ENUM, FIELD(hl_budget_cfg, period),
     WORDS(period_words), .help = "calendar month or day, UTC"},
    {KF("limit_usd", HL_YAML_REQUIRED), .type = T_DOUBLE, FIELD(hl_budget_cfg, limit_usd),
     .lo = 0, .help = "cloud spend cap"},
    {K("scope"), .type = T_CHOICE, FIELD(hl_budget_cfg, per_tenant), WORDS(scope_words),
     .def = 0, .help = "one cap for all, or one per tenant"},
    {K("tenant"), .type = T_TOKEN, FIELD(hl_budget_cfg, tenant), .what = "a tenant name",
     .help = "only this tenant; unset: all"},
    {K("action"), .type = T_ENUM, FIELD(hl_budget_cfg, action), WORDS(action_words),
     .def = HL_BUDGET_LOCAL, .help = "at the cap: skip cloud backends (local), or answer 429 "
                                     "(reject)"},
};
static const cfg_table budgets_table = {
    TABLE(budget_keys), .item_size = sizeof(hl_budget_cfg),
    .line_off = offsetof(hl_budget_cfg, line), .what = "budgets",
};

/* ---- tenants ----------------------------------------------------------------------------- */

static hl_err h_tenant_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    char d[64];
    hl_err err = get_name(&c->y, v, &s);
    if (err) return err;
    if (find_earlier(c->cfg->tenants, obj, sizeof(hl_tenant_cfg), offsetof(hl_tenant_cfg, name), s))
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "duplicate tenant name %s",
                            hl_yaml_describe(v, d, sizeof d));
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

static const cfg_key tenant_keys[] = {
    {KF("name", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(hl_tenant_cfg, name),
     .fn = h_tenant_name, .shown = "name", .help = "the tenant of virtual keys (keys create --tenant)"},
    {K("rpm"), .type = T_INT, FIELD(hl_tenant_cfg, rpm), .lo = 0, .hi = 1000000000, .def = 0,
     .help = "requests per minute for all the tenant's keys together; 0: no limit"},
    {K("tpm"), .type = T_INT, FIELD(hl_tenant_cfg, tpm), .lo = 0, .hi = 1000000000000LL, .def = 0,
     .help = "tokens per minute for all the tenant's keys together; 0: no limit"},
    {K("budget_day_usd"), .type = T_DOUBLE, FIELD(hl_tenant_cfg, budget_day_usd), .lo = 0, .def_d = NAN,
     .help = "cloud spend per UTC day of all the tenant's keys together, reserved at admission; unset: none"},
    {K("budget_month_usd"), .type = T_DOUBLE, FIELD(hl_tenant_cfg, budget_month_usd), .lo = 0, .def_d = NAN,
     .help = "the same per UTC calendar month; unset: none"},
};
static const cfg_table tenants_table = {
    TABLE(tenant_keys), .item_size = sizeof(hl_tenant_cfg),
    .line_off = offsetof(hl_tenant_cfg, line), .what = "tenants",
};

/* ---- privacy ----------------------------------------------------------------------------- */

typedef struct custom_pattern {
    char *name, *pattern;
    int line; /* of the pattern, for its compile error */
} custom_pattern;

static hl_err h_cp_name(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = hl_yaml_text(&c->y, v, "a pattern name", &s);
    if (err) return err;
    size_t n = strlen(s);
    if (n == 0 || n > HL_CONFIG_MAX_PII_NAME ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != n)
        return hl_yaml_fail(&c->y, hl_yaml_line(v), "expected 1-%d letters, digits or _",
                            HL_CONFIG_MAX_PII_NAME);
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

static hl_err h_cp_pattern(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = hl_yaml_text(&c->y, v, "a PCRE2 pattern", &s);
    if (err) return err;
    ((custom_pattern *)obj)->line = hl_yaml_line(v);
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

static const cfg_key pattern_keys[] = {
    {KF("name", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(custom_pattern, name),
     .fn = h_cp_name, .help = "names the detected type and its placeholder ([NAME_1])"},
    {KF("pattern", HL_YAML_REQUIRED), .type = T_CUSTOM, FIELD(custom_pattern, pattern),
     .fn = h_cp_pattern, .help = "PCRE2 pattern, UTF-8"},
};

/* The detector's placeholders for its built-in types ([EMAIL_1], ...): a custom pattern that
 * matches one would make every redaction fail. test_config checks this list against the
 * detector's type names. */
static const char *const builtin_pii_tags[] = {
    "EMAIL", "PHONE", "SSN", "CREDIT_CARD", "IBAN", "IPV4", "IPV6", "UK_NINO", "ES_DNI", "NL_BSN",
    "IT_CODICE_FISCALE", "FR_NIR", "DE_STEUER_ID", "OPENAI_KEY", "ANTHROPIC_KEY", "AWS_ACCESS_KEY",
    "AWS_SECRET", "GITHUB_TOKEN", "GITLAB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY",
    "PRIVATE_KEY", "JWT", "PASSWORD_IN_URL", "ENV_SECRET"};

/* Whether re matches a non-empty part of text (an empty match proves nothing). */
static bool matches_some(const pcre2_code *re, const char *text, pcre2_match_data *md) {
    size_t n = strlen(text);
    for (size_t off = 0; off <= n;) {
        if (pcre2_match(re, (PCRE2_SPTR)text, n, off, 0, md, NULL) < 0) return false;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) return true;
        off = (ov[1] > off ? ov[1] : off) + 1;
    }
    return false;
}

/* Writes into ph the first placeholder ([TAG_1] or [TAG_99], built-in tags, then the
 * pattern's own) that re matches; false if none. */
static bool hits_placeholder(const pcre2_code *re, const char *name, char *ph, size_t cap) {
    char own[HL_CONFIG_MAX_PII_NAME + 1];
    size_t i = 0;
    for (; name[i] && i < sizeof own - 1; i++)
        own[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    own[i] = '\0';
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    bool hit = false;
    for (size_t t = 0; md && t <= ARRAY_LEN(builtin_pii_tags) && !hit; t++) {
        const char *tag = t < ARRAY_LEN(builtin_pii_tags) ? builtin_pii_tags[t] : own;
        for (int num = 1; num <= 99 && !hit; num += 98) {
            snprintf(ph, cap, "[%s_%d]", tag, num);
            hit = matches_some(re, ph, md);
        }
    }
    pcre2_match_data_free(md);
    return hit;
}

/* Compiles the pattern as the detector will (UTF, any bytes matched), so a bad one stops the
 * start with its line. */
static hl_err compile_pattern(cfg_ctx *c, const custom_pattern *cp) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)cp->pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    size_t mark = hl_yaml_push_key(&c->y, "pattern", 7);
    if (!re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", code);
        return hl_yaml_fail(&c->y, cp->line, "custom PII pattern '%s': %s at offset %zu",
                            cp->name, (const char *)msg, (size_t)off);
    }
    char ph[HL_CONFIG_MAX_PII_NAME + 8];
    bool hit = hits_placeholder(re, cp->name, ph, sizeof ph);
    pcre2_code_free(re);
    if (hit)
        return hl_yaml_fail(&c->y, cp->line, "custom PII pattern '%s' matches the placeholder "
                            "%s, so redacted text could never come out clean", cp->name, ph);
    hl_yaml_pop(&c->y, mark);
    return HL_OK;
}

static hl_err check_pattern(cfg_ctx *c, const yaml_node_t *item, void *elem, size_t i) {
    const custom_pattern *cp = elem;
    for (const custom_pattern *o = cp - i; o < cp; o++)
        if (!strcmp(o->name, cp->name))
            return hl_yaml_fail(&c->y, hl_yaml_line(item), "duplicate pattern name '%s'", cp->name);
    return compile_pattern(c, cp);
}

static const cfg_table patterns_table = {
    TABLE(pattern_keys), .item_size = sizeof(custom_pattern), .line_off = -1,
    .what = "custom_patterns", .max = HL_CONFIG_MAX_PII_PATTERNS,
    .too_many = "custom patterns", .check = check_pattern,
};

/* Read as {name, pattern} items, kept as the two parallel arrays of hl_privacy_cfg. */
static hl_err h_custom_patterns(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    hl_privacy_cfg *p = obj;
    custom_pattern *cps = NULL;
    size_t n = 0;
    (void)k;
    hl_err err = walk_seq(c, v, &patterns_table, &cps, &n);
    if (n && (p->custom_names = calloc(n, sizeof(char *))) &&
        (p->custom_patterns = calloc(n, sizeof(char *)))) {
        for (size_t i = 0; i < n; i++) {
            p->custom_names[i] = cps[i].name;
            p->custom_patterns[i] = cps[i].pattern;
        }
        p->n_custom = n;
    } else if (n) {
        for (size_t i = 0; i < n; i++) free(cps[i].name), free(cps[i].pattern);
        if (!err) err = hl_yaml_oom(&c->y, hl_yaml_line(v));
    }
    free(cps);
    return err;
}

static const cfg_key privacy_keys[] = {
    {K("detect_pii"), .type = T_BOOL, FIELD(hl_privacy_cfg, detect_pii), .def = true,
     .help = "detected PII makes a request sensitive"},
    {K("redact"), .type = T_BOOL, FIELD(hl_privacy_cfg, redact), .def = false,
     .help = "replace detected values with typed placeholders before any upstream call instead"},
    {K("custom_patterns"), .type = T_CUSTOM, .fn = h_custom_patterns, .shown = "list",
     .help = "more PII types: a list of {name, pattern}"},
};

static hl_err h_samples(cfg_ctx *c, const yaml_node_t *v, const cfg_key *k, void *obj) {
    const char *s = NULL;
    hl_err err = hl_yaml_text(&c->y, v, "a file name", &s);
    if (err) return err;
    if (!*s) return hl_yaml_fail(&c->y, hl_yaml_line(v), "must not be empty");
    return hl_yaml_set_str(&c->y, v, FIELD_PTR(obj, k, char *), s);
}

static const cfg_key shadow_keys[] = {
    {K("max_concurrent"), .type = T_INT, FIELD(hl_config, shadow_max_concurrent), .lo = 1,
     .hi = 1024, .def = 2, .help = "shadow calls in flight at most, per event loop"},
    {K("max_queue"), .type = T_INT, FIELD(hl_config, shadow_max_queue), .lo = 0, .hi = 100000,
     .def = 16, .help = "shadows waiting for a slot at most, per event loop; more are dropped "
                        "and counted"},
    {K("timeout_ms"), .type = T_INT, FIELD(hl_config, shadow_timeout_ms), .lo = 1,
     .hi = CFG_MAX_MS, .def = 60000, .help = "one shadow call, and how long a shadow may wait for a slot"},
    {K("max_capture_bytes"), .type = T_SIZE, FIELD(hl_config, shadow_max_capture), .lo = KIB,
     .hi = 64 * MIB, .def = 256 * KIB,
     .help = "a served answer longer than this (text and tool calls) is not shadowed (counted)"},
    {K("samples"), .type = T_CUSTOM, FIELD(hl_config, shadow_samples_path), .fn = h_samples,
     .shown = "file", .help = "a local JSONL file (mode 0600) where both answers' texts are kept "
                              "for a person to review; unset: texts are never kept"},
};

/* ---- the top level ----------------------------------------------------------------------- */

static const cfg_table server_table = {TABLE(server_keys)};
static const cfg_table ledger_table = {TABLE(ledger_keys)};
static const cfg_table upstream_table = {TABLE(upstream_keys)};
static const cfg_table privacy_table = {TABLE(privacy_keys)};
static const cfg_table shadow_table = {TABLE(shadow_keys)};

/* routes comes last so that it can check its targets against backends. */
static const cfg_key root_keys[] = {
    {K("server"), .type = T_MAP, .off = 0, .sub = &server_table, .help = "the HTTP listener"},
    {K("ledger"), .type = T_MAP, .off = 0, .sub = &ledger_table, .help = "the cost ledger"},
    {K("upstream"), .type = T_MAP, .off = 0, .sub = &upstream_table,
     .help = "how backends are reached (TLS trust)"},
    {KF("backends", HL_YAML_REQUIRED), .type = T_SEQ, FIELD(hl_config, backends),
     .off_n = offsetof(hl_config, n_backends), .sub = &backends_table,
     .help = "the upstreams, at least one"},
    {K("prices"), .type = T_SEQ, FIELD(hl_config, prices), .off_n = offsetof(hl_config, n_prices),
     .sub = &prices_table, .help = "USD per million tokens, per upstream model"},
    {K("budgets"), .type = T_SEQ, FIELD(hl_config, budgets),
     .off_n = offsetof(hl_config, n_budgets), .sub = &budgets_table, .help = "cloud spend caps"},
    {K("tenants"), .type = T_SEQ, FIELD(hl_config, tenants),
     .off_n = offsetof(hl_config, n_tenants), .sub = &tenants_table,
     .help = "rate limits per tenant of virtual keys, divided among live instances"},
    {K("privacy"), .type = T_MAP, .off = offsetof(hl_config, privacy), .sub = &privacy_table,
     .help = "the PII detector run on every request"},
    {K("shadow"), .type = T_MAP, .off = 0, .sub = &shadow_table,
     .help = "limits of the shadow comparisons routes ask for (routes[].shadow)"},
    {KF("routes", HL_YAML_REQUIRED | HL_YAML_LAST), .type = T_SEQ, FIELD(hl_config, routes),
     .off_n = offsetof(hl_config, n_routes), .sub = &routes_table,
     .help = "routing rules, tried in order; the first match wins"},
};
static const cfg_table root_table = {TABLE(root_keys)};
_Static_assert(ARRAY_LEN(backend_keys) <= HL_YAML_MAX_KEYS, "backend_keys too long");
_Static_assert(ARRAY_LEN(server_keys) <= HL_YAML_MAX_KEYS, "server_keys too long");

/* ---- the reference --------------------------------------------------------------------- */

/* "(integer 1..86400000, default 30000)" and the like: what a row accepts and its default. */
static void print_kind(FILE *f, const cfg_key *k) {
    static const char *const names[] = {
        [T_INT] = "integer", [T_SIZE] = "bytes", [T_DOUBLE] = "number", [T_BOOL] = "true|false",
        [T_TRISTATE] = "true|false", [T_STR] = "string", [T_STR_OR_EMPTY] = "string",
        [T_ENV] = "env var name", [T_TOKEN] = "name", [T_STRS] = "string or list",
        [T_LISTEN] = "host:port", [T_MAP] = "mapping", [T_SEQ] = "list", [T_CUSTOM] = "string",
    };
    if (k->words) {
        fputc('(', f);
        for (size_t i = 0; i < k->n_words; i++) fprintf(f, "%s%s", i ? "|" : "", k->words[i]);
    } else {
        fprintf(f, "(%s", k->shown ? k->shown : names[k->type] ? names[k->type] : "value");
    }
    if (k->type == T_INT || k->type == T_SIZE) fprintf(f, " %lld..%lld", k->lo, k->hi);
    if (k->type == T_DOUBLE) fprintf(f, " >= %lld", k->lo);
    if (k->key.flags & HL_YAML_REQUIRED)
        fputs(", required", f);
    else if ((k->type == T_INT || k->type == T_SIZE) && k->def >= k->lo)
        fprintf(f, ", default %lld", k->def);
    else if (k->type == T_DOUBLE && !isnan(k->def_d))
        fprintf(f, ", default %g", k->def_d);
    else if (k->type == T_BOOL)
        fprintf(f, ", default %s", k->def ? "true" : "false");
    else if ((k->type == T_ENUM || k->type == T_CHOICE) && (size_t)k->def < k->n_words)
        fprintf(f, ", default %s", k->words[k->def]);
    else if (k->def_s)
        fprintf(f, ", default %s", k->def_s);
    fputc(')', f);
}

static void print_table(FILE *f, const cfg_table *t, const char *prefix) {
    for (size_t i = 0; i < t->n; i++) {
        const cfg_key *k = &t->keys[i];
        if (k->type == T_SECRET) continue;
        char path[128];
        snprintf(path, sizeof path, "%s%s", prefix, k->key.name);
        fprintf(f, "%s ", path);
        print_kind(f, k);
        fprintf(f, ": %s\n", k->help ? k->help : "");
        if (k->type == T_MAP || k->type == T_SEQ) {
            strncat(path, k->type == T_SEQ ? "[]." : ".", sizeof path - strlen(path) - 1);
            print_table(f, k->sub, path);
        } else if (k->fn == h_custom_patterns) { /* a list read by its handler */
            strncat(path, "[].", sizeof path - strlen(path) - 1);
            print_table(f, &patterns_table, path);
        }
    }
}

void hl_config_print_reference(FILE *out) {
    print_table(out, &root_table, "");
}

/* ---- entry points ------------------------------------------------------------------------ */

static hl_err config_new(cfg_ctx *c, const char *name) {
    if (!(c->cfg = calloc(1, sizeof *c->cfg))) return hl_yaml_oom(&c->y, 1);
    if (!(c->cfg->path = strdup(name))) return hl_yaml_oom(&c->y, 1);
    return apply_defaults(c, &root_table, c->cfg);
}

hl_err hl_config_parse(const char *name, const char *text, size_t len, hl_config **out,
                       char *errbuf, size_t errbuf_len) {
    cfg_ctx c = {.cfg = NULL};
    const yaml_node_t *root = NULL;
    *out = NULL;
    if (errbuf && errbuf_len) errbuf[0] = '\0';
    if (!name) name = "(config)";
    hl_err err = hl_yaml_open(&c.y, name, text, len, CFG_MAX_BYTES, errbuf, errbuf_len, &root);
    if (!err) err = config_new(&c, name);
    if (!err) err = walk_map(&c, root, &root_table, c.cfg);
    /* upstream.ca_file may come after backends in the file: apply it once all is read. */
    for (size_t i = 0; !err && c.cfg->upstream_ca_file && i < c.cfg->n_backends; i++) {
        hl_backend_cfg *b = &c.cfg->backends[i];
        if (!b->ca_file && !(b->ca_file = strdup(c.cfg->upstream_ca_file))) err = HL_ERR_NOMEM;
    }
    hl_yaml_close(&c.y);
    if (err)
        hl_config_free(c.cfg);
    else
        *out = c.cfg;
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
        hl_yaml_put_err(errbuf, errbuf_len, msg);
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
        hl_yaml_put_err(errbuf, errbuf_len, msg);
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
        free(b->ca_file);
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
        free_strv(r->shadow_to, r->n_shadow_to);
        free(r->shadow_embeddings);
        free(r->shadow_judge);
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
    for (size_t i = 0; i < cfg->n_tenants; i++) free(cfg->tenants[i].name);
    free(cfg->tenants);
    free(cfg->backends);
    free(cfg->prices);
    free(cfg->routes);
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->api_keys_env);
    free(cfg->admin_key_env);
    free(cfg->upstream_ca_file);
    free(cfg->ledger_path);
    free(cfg->ledger_store_path);
    free(cfg->shadow_samples_path);
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
