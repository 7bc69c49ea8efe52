/* hl_jscan: a one-pass JSON reader for the hot paths' common bodies, without a tree.
 *
 * jansson builds a tree (a hash table per object, a malloc per value) and lexes through a
 * callback per character: several microseconds for a small chat body, paid on every request.
 * The fast readers built on these primitives (hl_openai_reply.c for upstream replies,
 * hl_openai_request.c for client requests) walk the bytes once and take only the shapes they
 * read with certainty; on anything else they give up and the caller parses with jansson as
 * before, so a fast reader never decides an error. Every primitive validates what it passes
 * over as jansson does (UTF-8, escapes, number syntax) and returns false ("give up") where
 * jansson might read the bytes differently: a \u0000 escape, a lone surrogate, a number longer
 * than HL_JS_MAX_NUMBER characters or out of range, nesting past HL_JS_MAX_DEPTH. */
#ifndef HL_JSCAN_H
#define HL_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include "hl_err.h"

enum { HL_JS_MAX_DEPTH = 32, HL_JS_MAX_NUMBER = 18 };

/* The reader: the next byte at p, the input ends at end (no terminator needed). */
typedef struct hl_js {
    const char *p, *end;
} hl_js;

static inline void hl_js_ws(hl_js *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) r->p++;
}

static inline bool hl_js_at(const hl_js *r, char c) { return r->p < r->end && *r->p == c; }

/* A key (k, n) equals want; with a constant want the length folds at compile time. */
static inline bool hl_js_key_is(const char *k, size_t n, const char *want) {
    return strlen(want) == n && !memcmp(k, want, n);
}

/* Marks bit in *seen; false when it was set already (a repeated key: give up, as jansson
 * either refuses it or keeps the last one). */
static inline bool hl_js_once(unsigned *seen, unsigned bit) {
    if (*seen & bit) return false;
    *seen |= bit;
    return true;
}

/* The string at r->p: its raw bytes between the quotes in s[0..n), *esc when it has escapes.
 * false for control characters, bad UTF-8, a bad escape, \u0000, a lone surrogate, no
 * closing quote. */
bool hl_js_str_span(hl_js *r, const char **s, size_t *n, bool *esc);

/* The string at r->p, unescaped, into *out (malloc'd, NUL-terminated; the old *out freed).
 * HL_ERR_UNSUPPORTED where hl_js_str_span gives up, HL_ERR_NOMEM. */
hl_err hl_js_str_copy(hl_js *r, char **out);

/* The number at r->p. *is_int as jansson types it (no fraction, no exponent); *iv its value
 * then, *dv its value as a double always. false when malformed, longer than
 * HL_JS_MAX_NUMBER characters or out of a double's range. */
bool hl_js_number(hl_js *r, bool *is_int, long long *iv, double *dv);

/* The literal s (n bytes: "true", "false", "null") at r->p. */
bool hl_js_lit(hl_js *r, const char *s, size_t n);

/* Skips the value at r->p (depth: its nesting), checking that it is well formed. It cannot
 * see repeated keys inside: a caller whose full parser refuses them must not skip objects. */
bool hl_js_skip(hl_js *r, int depth);

/* The next element of an array whose '[' was read: 1 with r->p at it, 0 at the closing bracket
 * (read), -1 to give up. *first starts true. */
int hl_js_element(hl_js *r, bool *first);

/* The next member of an object whose '{' was read: 1 with its key (r->p at the value), 0 at
 * the closing brace (read), -1 to give up. *first starts true. A key with escapes gives up. */
int hl_js_member(hl_js *r, bool *first, const char **k, size_t *kn);

#endif
