/* hl_buf: see hl_buf.h. */
#include "hl_buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hl_buf_init(hl_buf *b, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

void hl_buf_release(hl_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void hl_buf_reset(hl_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

hl_err hl_buf_reserve(hl_buf *b, size_t extra) {
    if (extra > b->max - b->len) return HL_ERR_LIMIT;
    size_t need = b->len + extra + 1; /* + NUL */
    if (need <= b->cap) return HL_OK;
    size_t cap = b->cap ? b->cap : 1024; /* most buffers hold a line, a head or a small body */
    while (cap < need) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p) return HL_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return HL_OK;
}

hl_err hl_buf_append_grow(hl_buf *b, const void *p, size_t n) {
    hl_err err = hl_buf_reserve(b, n);
    if (err) return err;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return HL_OK;
}

size_t hl_strlcpy(char *dst, const char *src, size_t n) {
    if (!src) src = "";
    size_t len = strlen(src), k = len < n ? len : n - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
    return len;
}

hl_err hl_buf_vprintf(hl_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) return HL_ERR_INVAL;
    if ((size_t)n < sizeof small) return hl_buf_append(b, small, (size_t)n);
    hl_err err = hl_buf_reserve(b, (size_t)n);
    if (err) return err;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return HL_OK;
}

hl_err hl_buf_printf(hl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_err err = hl_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return err;
}

hl_err hl_buf_json_str(hl_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    hl_err err = hl_buf_reserve(b, n + 2);
    if (err) return err;
    size_t plain = hl_json_plain_len(s, n, 0);
    if (plain == n) { /* nothing to escape: most strings */
        char *o = b->data + b->len;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        o[n + 2] = '\0';
        b->len += n + 2;
        return HL_OK;
    }
    b->data[b->len++] = '"';
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    /* i: the next byte to escape (the first is known), then past it to the next one */
    for (size_t i = plain; i < n; i++, i += hl_json_plain_len(s + i, n - i, 0)) {
        unsigned char c = (unsigned char)s[i];
        if ((err = hl_buf_append(b, s + run, i - run))) return err;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        if ((err = hl_buf_append(b, esc, elen))) return err;
        run = i + 1;
    }
    if ((err = hl_buf_append(b, s + run, n - run))) return err;
    return hl_buf_append(b, "\"", 1);
}

void hl_buf_consume(hl_buf *b, size_t n) {
    if (n >= b->len) {
        hl_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *hl_buf_steal(hl_buf *b) {
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

hl_err hl_buf_double(hl_buf *b, double x) {
    char tmp[40];
    if (x == 0) x = 0; /* -0 as 0: a JSON reader takes "-0" for the integer 0, so -0 would not survive a round trip */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (strtod(tmp, NULL) == x) break;
    }
    return hl_buf_puts(b, tmp);
}

hl_err hl_buf_i64(hl_buf *b, long long v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    return hl_buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

hl_err hl_buf_fixed(hl_buf *b, double x, int decimals) {
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12};
    if (decimals < 0 || decimals > 12 || !(x == x) || x * pow10[decimals] > 9e15 || x * pow10[decimals] < -9e15)
        return hl_buf_printf(b, "%.*f", decimals < 0 ? 0 : decimals > 12 ? 12 : decimals, x);
    bool neg = x < 0;
    double scaled = (neg ? -x : x) * pow10[decimals] + 0.5;
    unsigned long long u = (unsigned long long)scaled;
    unsigned long long whole = u, frac = 0;
    if (decimals) {
        unsigned long long p = (unsigned long long)pow10[decimals];
        whole = u / p;
        frac = u % p;
    }
    char tmp[48];
    int i = (int)sizeof tmp;
    for (int d = 0; d < decimals; d++) {
        tmp[--i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    if (decimals) tmp[--i] = '.';
    do {
        tmp[--i] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    if (neg && u) tmp[--i] = '-';
    return hl_buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

