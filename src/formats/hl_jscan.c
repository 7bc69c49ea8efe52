/* hl_jscan: the one-pass JSON reader's primitives (see hl_jscan.h). */
#include "hl_jscan.h"
#include "hl_buf.h"
#include "hl_utf8.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* The four hex digits at p (before end) as *cp. */
static bool hex4(const char *p, const char *end, unsigned *cp) {
    if (end - p < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d > 15) return false;
        v = v << 4 | d;
    }
    *cp = v;
    return true;
}

/* The \u escape at p ('\\' 'u' ...; a surrogate pair as one): its code point and length (6 or
 * 12); 0 when jansson would refuse it or read it as a NUL that would cut the C string. */
static size_t u_escape(const char *p, const char *end, unsigned *cp) {
    unsigned hi, lo;
    if (!hex4(p + 2, end, &hi) || hi == 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) return 0;
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 6;
    }
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 12;
}

bool hl_js_str_span(hl_js *r, const char **s, size_t *n, bool *esc) {
    if (!hl_js_at(r, '"')) return false;
    const char *start = ++r->p;
    *esc = false;
    while ((r->p += hl_json_plain_len(r->p, (size_t)(r->end - r->p), 1)) < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            *s = start;
            *n = (size_t)(r->p - start);
            r->p++;
            return true;
        }
        if (c == '\\') {
            if (r->p + 1 >= r->end) return false;
            unsigned cp;
            size_t k = 2;
            switch (r->p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': break;
            case 'u':
                if (!(k = u_escape(r->p, r->end, &cp))) return false;
                break;
            default: return false;
            }
            *esc = true;
            r->p += k;
        } else if (c < 0x80) {
            return false; /* a control character */
        } else {
            size_t k = hl_utf8_valid_len((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (!k) return false;
            r->p += k;
        }
    }
    return false;
}

hl_err hl_js_str_copy(hl_js *r, char **out) {
    const char *s;
    size_t n;
    bool esc;
    if (!hl_js_str_span(r, &s, &n, &esc)) return HL_ERR_UNSUPPORTED;
    char *o = malloc(n + 1); /* unescaping never lengthens: \uXXXX is 6 bytes for at most 3 */
    if (!o) return HL_ERR_NOMEM;
    if (!esc) {
        memcpy(o, s, n);
        o[n] = '\0';
    } else {
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (c != '\\') {
                o[j++] = c;
                continue;
            }
            c = s[++i];
            if (c == 'u') {
                unsigned cp;
                size_t k = u_escape(s + i - 1, s + n, &cp); /* checked by the span */
                j += hl_utf8_put(o + j, cp);
                i += k - 2;
                continue;
            }
            o[j++] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        }
        o[j] = '\0';
    }
    free(*out);
    *out = o;
    return HL_OK;
}

bool hl_js_number(hl_js *r, bool *is_int, long long *iv, double *dv) {
    const char *s = r->p, *p = r->p;
    unsigned long long mag = 0; /* the integer part's digits; exact while n <= 18 */
    if (p < r->end && *p == '-') p++;
    if (p >= r->end || *p < '0' || *p > '9') return false;
    if (*p == '0') p++;
    else while (p < r->end && *p >= '0' && *p <= '9') mag = mag * 10 + (unsigned)(*p++ - '0');
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
    if (n > HL_JS_MAX_NUMBER) return false;
    if (integer) { /* 18 characters always fit: what strtoll would read */
        *iv = *s == '-' ? -(long long)mag : (long long)mag;
        *dv = (double)*iv;
    } else {
        char buf[HL_JS_MAX_NUMBER + 1];
        memcpy(buf, s, n);
        buf[n] = '\0';
        errno = 0;
        *dv = strtod(buf, NULL);
        if (errno || !isfinite(*dv)) return false;
    }
    *is_int = integer;
    r->p = p;
    return true;
}

bool hl_js_lit(hl_js *r, const char *s, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, s, n)) return false;
    r->p += n;
    return true;
}

/* To the next item of an array or object (close: its ']' or '}'): 1 at the item, 0 past the
 * closing bracket, -1 when neither a comma nor the bracket follows. A bracket right after a
 * comma is left to the item's reader, which refuses it. */
static int next_item(hl_js *r, bool *first, char close) {
    hl_js_ws(r);
    if (hl_js_at(r, close)) {
        r->p++;
        return 0;
    }
    if (!*first) {
        if (!hl_js_at(r, ',')) return -1;
        r->p++;
        hl_js_ws(r);
    }
    *first = false;
    return 1;
}

int hl_js_member(hl_js *r, bool *first, const char **k, size_t *kn) {
    int m = next_item(r, first, '}');
    if (m != 1) return m;
    bool esc;
    if (!hl_js_str_span(r, k, kn, &esc) || esc) return -1;
    hl_js_ws(r);
    if (!hl_js_at(r, ':')) return -1;
    r->p++;
    hl_js_ws(r);
    return 1;
}

int hl_js_element(hl_js *r, bool *first) { return next_item(r, first, ']'); }

bool hl_js_skip(hl_js *r, int depth) {
    if (depth > HL_JS_MAX_DEPTH) return false;
    hl_js_ws(r);
    if (r->p >= r->end) return false;
    const char *s;
    size_t n;
    bool b;
    long long v;
    double d;
    switch (*r->p) {
    case '"': return hl_js_str_span(r, &s, &n, &b);
    case 't': return hl_js_lit(r, "true", 4);
    case 'f': return hl_js_lit(r, "false", 5);
    case 'n': return hl_js_lit(r, "null", 4);
    case '{': {
        r->p++;
        bool first = true;
        int m;
        while ((m = hl_js_member(r, &first, &s, &n)) == 1)
            if (!hl_js_skip(r, depth + 1)) return false;
        return m == 0;
    }
    case '[': {
        r->p++;
        bool first = true;
        int m;
        while ((m = hl_js_element(r, &first)) == 1)
            if (!hl_js_skip(r, depth + 1)) return false;
        return m == 0;
    }
    default: return hl_js_number(r, &b, &v, &d);
    }
}
