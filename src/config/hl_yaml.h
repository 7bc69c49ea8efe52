/* hl_yaml: a YAML document read for a schema, with every error saying where.
 *
 * It exists so that hl_config.c holds only hybridllm's schema: this file knows YAML (libyaml
 * loads the whole text into a node tree in which every node keeps its line), key paths
 * ("backends[1].kind") and typed values, and nothing about the gateway.
 *
 * Every error is written once, as one line "name:line: key.path: problem", into the caller's
 * buffer, and the function returns the hl_err that goes with it (HL_ERR_INVAL for content,
 * HL_ERR_PARSE for YAML syntax, HL_ERR_LIMIT for size, HL_ERR_NOMEM); callers only pass the
 * code up. Typing is strict: numbers and booleans are plain (unquoted) scalars, integers are
 * decimal and range-checked before they can overflow, floats are finite. Aliases (*name) are
 * refused: every node may be reached once (hl_yaml_visit), which also rules out the
 * self-referencing documents libyaml can build. Only one document is allowed.
 *
 * A mapping is walked against a table of rows that begin with an hl_yaml_key (name, flags);
 * see hl_yaml_map(). An empty value (`server:` with everything under it commented out)
 * stands for an empty mapping or list. */
#ifndef HL_YAML_H
#define HL_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "hl_err.h"

#define HL_YAML_PATH_MAX 160 /* key paths are short: routes[12].when.task_type[3] */
#define HL_YAML_SHOW_MAX 40  /* longest piece of user text quoted back in a message */
#define HL_YAML_MAX_KEYS 48  /* most rows one mapping table may have */

/* One document being read. Fields are the walker's; callers use the functions below. A
 * schema may embed it as the first member of its own context to reach its state from
 * callbacks. */
typedef struct hl_yaml {
    const char *name;  /* file name for messages (borrowed) */
    const char *text;  /* the YAML text (borrowed), for reader-error line numbers */
    size_t len;
    yaml_document_t doc;
    bool doc_ok;
    unsigned char *seen; /* one flag per node: reached once already (again = an alias) */
    size_t n_nodes;
    char path[HL_YAML_PATH_MAX]; /* key path of the node being looked at */
    size_t plen;
    char *errbuf;      /* the caller's (borrowed); may be NULL */
    size_t errlen;
} hl_yaml;

/* Parses text (len bytes, at most max_bytes) as one YAML document. *root is its top node, or
 * NULL for an empty document. On error, errbuf holds the message and the hl_yaml still needs
 * hl_yaml_close(). name and text are borrowed until hl_yaml_close(). */
hl_err hl_yaml_open(hl_yaml *y, const char *name, const char *text, size_t len,
                    size_t max_bytes, char *errbuf, size_t errlen, const yaml_node_t **root);
/* Frees the document; every node pointer and string from it becomes invalid. */
void hl_yaml_close(hl_yaml *y);

/* ---- messages ---- */

int hl_yaml_line(const yaml_node_t *n); /* 1-based; 1 for NULL */
bool hl_yaml_is_null(const yaml_node_t *n); /* plain "", ~, null */
/* "a mapping", "a list", "an empty value" or the text quoted ('...', shortened); uses buf. */
const char *hl_yaml_describe(const yaml_node_t *n, char *buf, size_t cap);
/* Copies printable ASCII of s into buf (others as '?'), at most HL_YAML_SHOW_MAX characters. */
void hl_yaml_show(char *buf, size_t cap, const char *s, size_t len);
/* Copies msg into buf as one line, cut at a word boundary with "..." if it does not fit. */
void hl_yaml_put_err(char *buf, size_t cap, const char *msg);
/* Writes "name:line: path: problem" and returns HL_ERR_INVAL (hl_yaml_fail) or code. */
hl_err hl_yaml_fail(hl_yaml *y, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
hl_err hl_yaml_fail_code(hl_yaml *y, int line, hl_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
hl_err hl_yaml_oom(hl_yaml *y, int line);

/* ---- key paths: push returns the mark that hl_yaml_pop() restores ---- */

size_t hl_yaml_push_key(hl_yaml *y, const char *key, size_t len);
size_t hl_yaml_push_index(hl_yaml *y, size_t i);
void hl_yaml_pop(hl_yaml *y, size_t mark);

/* ---- values ---- */

/* Node id, refused if reached before (an alias). line is where the reference is. */
hl_err hl_yaml_visit(hl_yaml *y, int id, int line, const yaml_node_t **out);
/* A scalar holding text (not null, no NUL byte); *out is borrowed from the document. what
 * names the expected value in the message ("a string"). */
hl_err hl_yaml_text(hl_yaml *y, const yaml_node_t *v, const char *what, const char **out);
/* The same, unquoted, as numbers and booleans must be. */
hl_err hl_yaml_plain(hl_yaml *y, const yaml_node_t *v, const char *what, const char **out);
/* Optionally signed decimal; false on anything else or past +-LLONG_MAX. */
bool hl_yaml_parse_ll(const char *s, long long *out);
hl_err hl_yaml_int(hl_yaml *y, const yaml_node_t *v, long long lo, long long hi, long long *out);
/* Bytes: "4194304", "4MiB", "16 KiB" (KiB, MiB, GiB only), within [lo, hi]. */
hl_err hl_yaml_size(hl_yaml *y, const yaml_node_t *v, long long lo, long long hi,
                    long long *out);
/* A finite decimal number >= lo. */
hl_err hl_yaml_double(hl_yaml *y, const yaml_node_t *v, double lo, double *out);
hl_err hl_yaml_bool(hl_yaml *y, const yaml_node_t *v, bool *out);
/* One of n words; *out is its index. */
hl_err hl_yaml_word(hl_yaml *y, const yaml_node_t *v, const char *const *words, size_t n,
                    int *out);
/* A copy of text into *field (freeing the old one). */
hl_err hl_yaml_set_str(hl_yaml *y, const yaml_node_t *v, char **field, const char *s);

/* A string or (scalar_ok) a list of strings, copied into a new array of n strings. Each one
 * passes check, which may edit it in place. With what set, an empty list is an error
 * ("expected at least one <what>"). *out and *n are set before the elements are filled, so on
 * error the caller frees whatever was copied (NULL elements included). */
typedef hl_err (*hl_yaml_check_fn)(hl_yaml *y, const yaml_node_t *v, char *s);
hl_err hl_yaml_strings(hl_yaml *y, const yaml_node_t *v, bool scalar_ok, const char *what,
                       hl_yaml_check_fn check, char ***out, size_t *n);

/* The length of a list (an empty value is an empty list); what names its items for the
 * message ("expected a list of backends"). */
hl_err hl_yaml_seq_len(hl_yaml *y, const yaml_node_t *v, const char *what, size_t *n);
/* Item i of list v, visited (so an alias is refused). */
hl_err hl_yaml_seq_item(hl_yaml *y, const yaml_node_t *v, size_t i, const yaml_node_t **out);

/* ---- mappings ---- */

enum {
    HL_YAML_REQUIRED = 1u << 0, /* missing: "required key is missing" */
    /* Recognised only to be refused (a secret in the file): set() is called with the key
     * node at once and its error returned; not listed among the expected keys. */
    HL_YAML_REFUSED = 1u << 1,
    HL_YAML_LAST = 1u << 2, /* set() after the mapping's other keys (it refers to them) */
};

typedef struct hl_yaml_key {
    const char *name;
    unsigned flags;
} hl_yaml_key;

/* Fills obj from value v for the row key (the first member of the caller's row). */
typedef hl_err (*hl_yaml_set_fn)(hl_yaml *y, const yaml_node_t *v, const hl_yaml_key *key,
                                 void *obj);

/* Walks mapping m (NULL or an empty value: an empty mapping) against n rows, each `stride`
 * bytes and starting with an hl_yaml_key. First pass: unknown keys, duplicates, refused keys
 * and missing required keys are errors. Second pass: set() for each key, in file order (so
 * the first mistake a reader meets is the one reported), HL_YAML_LAST keys after the rest.
 * The path names each key while its value is set. */
hl_err hl_yaml_map(hl_yaml *y, const yaml_node_t *m, const void *rows, size_t stride,
                   size_t n, hl_yaml_set_fn set, void *obj);

#endif
