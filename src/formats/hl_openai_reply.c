/* hl_openai_reply: the common upstream chat.completion reply read in one pass, without a tree.
 *
 * jansson spends about 4.4 us on the 330-byte reply of a small chat completion (its lexer reads
 * through a callback per character, and each object gets a hash table), on every non-streaming
 * request to an OpenAI-kind backend. This reader validates the whole body as JSON and picks the
 * fields hl_openai_parse_upstream_response keeps, with the same meaning. Anything it does not
 * handle the same way for certain (tool calls, logprobs objects, a text completion, \u escapes,
 * a repeated key it reads, long numbers, deep nesting, anything malformed) makes it give up
 * with HL_ERR_UNSUPPORTED, and the caller parses the body with jansson as before: the fast path
 * never decides an error. test/fuzz/fuzz_openai_reply.c checks that both readers agree. */
#include "hl_openai.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 32, MAX_NUMBER = 18 };

typedef struct rd {
    const char *p, *end;
} rd;

static void ws(rd *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) r->p++;
}

static bool at(rd *r, char c) { return r->p < r->end && *r->p == c; }

/* Bytes of the well-formed UTF-8 sequence at p (not ASCII), 0 when it is not one: overlong
 * forms, surrogates and code points past U+10FFFF are refused, as jansson refuses them. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0], cp;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A string at r->p: its raw bytes between the quotes in s[0..n), *esc when it has escapes.
 * false (give up) for \u escapes, control characters, bad UTF-8, no closing quote. */
static bool str_span(rd *r, const char **s, size_t *n, bool *esc) {
    if (!at(r, '"')) return false;
    const char *start = ++r->p;
    *esc = false;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            *s = start;
            *n = (size_t)(r->p - start);
            r->p++;
            return true;
        }
        if (c == '\\') {
            if (r->p + 1 >= r->end || !r->p[1] || !strchr("\"\\/bfnrt", r->p[1])) return false;
            *esc = true;
            r->p += 2;
        } else if (c < 0x20) {
            return false;
        } else if (c < 0x80) {
            r->p++;
        } else {
            size_t k = utf8_len((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (!k) return false;
            r->p += k;
        }
    }
    return false;
}

/* The string at r->p, unescaped, into *out (malloc'd). */
static hl_err str_copy(rd *r, char **out) {
    const char *s;
    size_t n;
    bool esc;
    if (!str_span(r, &s, &n, &esc)) return HL_ERR_UNSUPPORTED;
    char *o = malloc(n + 1);
    if (!o) return HL_ERR_NOMEM;
    if (!esc) {
        memcpy(o, s, n);
        o[n] = '\0';
    } else {
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (c == '\\') {
                c = s[++i];
                c = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
            }
            o[j++] = c;
        }
        o[j] = '\0';
    }
    free(*out);
    *out = o;
    return HL_OK;
}

/* A number at r->p. *is_int and *v when it is an integer (as jansson types it). false (give up)
 * when malformed, longer than MAX_NUMBER characters, or out of a double's range. */
static bool number(rd *r, bool *is_int, long long *v) {
    const char *s = r->p, *p = r->p;
    if (p < r->end && *p == '-') p++;
    if (p >= r->end || *p < '0' || *p > '9') return false;
    if (*p == '0') p++;
    else while (p < r->end && *p >= '0' && *p <= '9') p++;
    bool integer = true;
    if (p < r->end && *p == '.') {
        integer = false;
        if (++p >= r->end || *p < '0' || *p > '9') return false;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        integer = false;
        if (++p < r->end && (*p == '+' || *p == '-')) p++;
        if (p >= r->end || *p < '0' || *p > '9') return false;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
    }
    size_t n = (size_t)(p - s);
    if (n > MAX_NUMBER) return false;
    char buf[MAX_NUMBER + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    if (integer) {
        *v = strtoll(buf, NULL, 10);
    } else {
        double d = strtod(buf, NULL);
        if (errno == ERANGE || !isfinite(d)) return false;
    }
    if (errno) return false;
    *is_int = integer;
    r->p = p;
    return true;
}

static bool lit(rd *r, const char *s, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, s, n)) return false;
    r->p += n;
    return true;
}

static bool skip(rd *r, int depth);

/* The next member of an object whose '{' was read: 1 with its key (r->p at the value), 0 at
 * the closing brace (read), -1 to give up. A key with escapes gives up. */
static int member(rd *r, bool *first, const char **k, size_t *kn) {
    ws(r);
    if (at(r, '}')) {
        r->p++;
        return 0;
    }
    if (!*first) {
        if (!at(r, ',')) return -1;
        r->p++;
        ws(r);
    }
    *first = false;
    bool esc;
    if (!str_span(r, k, kn, &esc) || esc) return -1;
    ws(r);
    if (!at(r, ':')) return -1;
    r->p++;
    ws(r);
    return 1;
}

/* Skips the value at r->p, checking that it is well formed. */
static bool skip(rd *r, int depth) {
    if (depth > MAX_DEPTH) return false;
    ws(r);
    if (r->p >= r->end) return false;
    const char *s;
    size_t n;
    bool b;
    long long v;
    switch (*r->p) {
    case '"': return str_span(r, &s, &n, &b);
    case 't': return lit(r, "true", 4);
    case 'f': return lit(r, "false", 5);
    case 'n': return lit(r, "null", 4);
    case '{': {
        r->p++;
        bool first = true;
        int m;
        while ((m = member(r, &first, &s, &n)) == 1)
            if (!skip(r, depth + 1)) return false;
        return m == 0;
    }
    case '[': {
        r->p++;
        ws(r);
        if (at(r, ']')) {
            r->p++;
            return true;
        }
        for (;;) {
            if (!skip(r, depth + 1)) return false;
            ws(r);
            if (at(r, ']')) {
                r->p++;
                return true;
            }
            if (!at(r, ',')) return false;
            r->p++;
        }
    }
    default: return number(r, &b, &v);
    }
}

/* An integer member as get_long reads it: the integer, or 0 for any other value. */
static bool int_or_zero(rd *r, long *out) {
    bool is_int;
    long long v;
    *out = 0;
    if (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))) {
        if (!number(r, &is_int, &v)) return false;
        if (is_int) *out = (long)v;
        return true;
    }
    return skip(r, 1);
}

static bool key_is(const char *k, size_t n, const char *want) { return strlen(want) == n && !memcmp(k, want, n); }

/* Marks key bit in *seen; false when it was seen already (jansson keeps the last: give up). */
static bool once(unsigned *seen, unsigned bit) {
    if (*seen & bit) return false;
    *seen |= bit;
    return true;
}

/* {"cached_tokens": N} or {"reasoning_tokens": N}: the one field, 0 without it. */
static bool details(rd *r, const char *field, long *out) {
    *out = 0;
    if (!at(r, '{')) return skip(r, 2);
    r->p++;
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = member(r, &first, &k, &kn)) == 1) {
        if (key_is(k, kn, field)) {
            if (!once(&seen, 1) || !int_or_zero(r, out)) return false;
        } else if (!skip(r, 3)) {
            return false;
        }
    }
    return m == 0;
}

static bool usage(rd *r, hl_usage *u) {
    memset(u, 0, sizeof *u);
    if (!at(r, '{')) return skip(r, 1); /* not an object: no usage */
    r->p++;
    u->known = true;
    bool first = true, ok = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while (ok && (m = member(r, &first, &k, &kn)) == 1) {
        if (key_is(k, kn, "prompt_tokens")) ok = once(&seen, 1) && int_or_zero(r, &u->input_tokens);
        else if (key_is(k, kn, "completion_tokens")) ok = once(&seen, 2) && int_or_zero(r, &u->output_tokens);
        else if (key_is(k, kn, "prompt_tokens_details"))
            ok = once(&seen, 4) && details(r, "cached_tokens", &u->cached_input_tokens);
        else if (key_is(k, kn, "completion_tokens_details"))
            ok = once(&seen, 8) && details(r, "reasoning_tokens", &u->reasoning_tokens);
        else ok = skip(r, 2);
    }
    return ok && m == 0;
}

/* choices[0].message: its content; gives up on tool calls. */
static hl_err message(rd *r, hl_chat_response *t) {
    r->p++; /* '{' */
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = member(r, &first, &k, &kn)) == 1) {
        if (key_is(k, kn, "content")) {
            if (!once(&seen, 1)) return HL_ERR_UNSUPPORTED;
            if (at(r, '"')) HL_TRY(str_copy(r, &t->text));
            else if (!lit(r, "null", 4)) return HL_ERR_UNSUPPORTED; /* parts: the full parser */
        } else if (key_is(k, kn, "tool_calls")) {
            if (!lit(r, "null", 4)) return HL_ERR_UNSUPPORTED;
        } else if (!skip(r, 3)) {
            return HL_ERR_UNSUPPORTED;
        }
    }
    return m == 0 ? HL_OK : HL_ERR_UNSUPPORTED;
}

/* choices[0]: the message, the finish reason; gives up on a logprobs object. */
static hl_err choice(rd *r, hl_chat_response *t, bool *have_msg) {
    r->p++; /* '{' */
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = member(r, &first, &k, &kn)) == 1) {
        if (key_is(k, kn, "message")) {
            if (!once(&seen, 1) || !at(r, '{')) return HL_ERR_UNSUPPORTED;
            HL_TRY(message(r, t));
            *have_msg = true;
        } else if (key_is(k, kn, "finish_reason")) {
            if (!once(&seen, 2)) return HL_ERR_UNSUPPORTED;
            if (at(r, '"')) {
                char *f = NULL;
                HL_TRY(str_copy(r, &f));
                t->finish = hl_openai_parse_finish(f);
                free(f);
            } else if (!skip(r, 2)) {
                return HL_ERR_UNSUPPORTED;
            }
        } else if (key_is(k, kn, "logprobs") || key_is(k, kn, "text")) {
            if (!lit(r, "null", 4)) return HL_ERR_UNSUPPORTED;
        } else if (!skip(r, 2)) {
            return HL_ERR_UNSUPPORTED;
        }
    }
    return m == 0 ? HL_OK : HL_ERR_UNSUPPORTED;
}

static hl_err choices(rd *r, hl_chat_response *t, bool *have_msg) {
    r->p++; /* '[' */
    ws(r);
    if (!at(r, '{')) return HL_ERR_UNSUPPORTED; /* empty, or not an object: the full parser */
    HL_TRY(choice(r, t, have_msg));
    for (;;) {
        ws(r);
        if (at(r, ']')) {
            r->p++;
            return HL_OK;
        }
        if (!at(r, ',')) return HL_ERR_UNSUPPORTED;
        r->p++;
        if (!skip(r, 1)) return HL_ERR_UNSUPPORTED;
    }
}

static hl_err root(rd *r, hl_chat_response *t) {
    ws(r);
    if (!at(r, '{')) return HL_ERR_UNSUPPORTED;
    r->p++;
    bool first = true, have_msg = false;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = member(r, &first, &k, &kn)) == 1) {
        bool ok = true;
        if (key_is(k, kn, "id") || key_is(k, kn, "model")) {
            bool id = k[0] == 'i';
            if (!once(&seen, id ? 1 : 2)) return HL_ERR_UNSUPPORTED;
            if (at(r, '"')) HL_TRY(str_copy(r, id ? &t->id : &t->model));
            else ok = skip(r, 1);
        } else if (key_is(k, kn, "created")) {
            ok = once(&seen, 4) && int_or_zero(r, &t->created);
        } else if (key_is(k, kn, "choices")) {
            if (!once(&seen, 8) || !at(r, '[')) return HL_ERR_UNSUPPORTED;
            HL_TRY(choices(r, t, &have_msg));
        } else if (key_is(k, kn, "usage")) {
            ok = once(&seen, 16) && usage(r, &t->usage);
        } else {
            ok = skip(r, 1);
        }
        if (!ok) return HL_ERR_UNSUPPORTED;
    }
    if (m != 0 || !have_msg) return HL_ERR_UNSUPPORTED;
    ws(r);
    return r->p == r->end ? HL_OK : HL_ERR_UNSUPPORTED;
}

hl_err hl_openai_reply_fast(const char *body, size_t len, hl_chat_response *resp) {
    rd r = {body, body + len};
    hl_chat_response t = {0};
    hl_err e = body ? root(&r, &t) : HL_ERR_UNSUPPORTED;
    if (e) {
        free(t.id);
        free(t.model);
        free(t.text);
        return e;
    }
    resp->id = t.id;
    resp->model = t.model;
    resp->created = t.created;
    resp->text = t.text;
    resp->finish = t.finish;
    resp->usage = t.usage;
    return HL_OK;
}
