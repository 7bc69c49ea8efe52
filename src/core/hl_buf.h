/* hl_buf: a growable byte buffer with a hard ceiling.
 *
 * Every buffer that grows with untrusted input is created with a maximum size; reaching it
 * is HL_ERR_LIMIT, never a silent cut. The data is always NUL-terminated (the terminator is
 * not counted in len) so text can be handed to C string functions. */
#ifndef HL_BUF_H
#define HL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include "hl_err.h"

typedef struct hl_buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
    size_t max;   /* ceiling for len; 0 means SIZE_MAX/2 */
} hl_buf;

/* Initializes an empty buffer that may hold at most max bytes (0: no practical limit). */
void hl_buf_init(hl_buf *b, size_t max);
/* Frees the data and resets the buffer to empty; the ceiling is kept. */
void hl_buf_release(hl_buf *b);
/* Empties the buffer but keeps its allocation. */
void hl_buf_reset(hl_buf *b);
/* Ensures room for extra more bytes. HL_ERR_LIMIT past the ceiling, HL_ERR_NOMEM. */
hl_err hl_buf_reserve(hl_buf *b, size_t extra);
/* Appends n bytes from p (copies). Inline: most appends fit the allocation, and the request
 * path makes hundreds of them; the rest goes to hl_buf_append_grow. */
hl_err hl_buf_append_grow(hl_buf *b, const void *p, size_t n);
static inline hl_err hl_buf_append(hl_buf *b, const void *p, size_t n) {
    if (n < b->cap - b->len) { /* room for the bytes and the NUL; so len + n <= max too */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return HL_OK;
    }
    return hl_buf_append_grow(b, p, n);
}
/* Appends the C string s. Always inlined: with a literal, its length is a constant (a call
 * to strlen costs more than the copy of a short literal). */
static inline __attribute__((always_inline)) hl_err hl_buf_puts(hl_buf *b, const char *s) {
    return hl_buf_append(b, s, strlen(s));
}
hl_err hl_buf_printf(hl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
hl_err hl_buf_vprintf(hl_buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259 requires. */
hl_err hl_buf_json_str(hl_buf *b, const char *s, size_t n);
/* The bytes of the word v (8 bytes of a string, little-endian) that a JSON string cannot carry
 * as they are, as the high bit of each: '"', '\\', a control character and, with ascii_only,
 * a byte >= 0x80. Exact for the lowest byte flagged (a borrow only runs upward from a flagged
 * byte), which is all a scan needs. */
static inline unsigned long long hl_json_special_bytes(unsigned long long v, int ascii_only) {
    const unsigned long long ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    unsigned long long q = v ^ (ones * '"'), bs = v ^ (ones * '\\');
    unsigned long long m = ((q - ones) & ~q) | ((bs - ones) & ~bs) | ((v - ones * 0x20) & ~v);
    if (ascii_only) m |= v;
    return m & highs;
}

/* The length of the longest prefix of s[0..n) that a JSON string carries as it is: no '"',
 * no '\\', no control character and, with ascii_only, no byte >= 0x80 (which a reader must
 * check as UTF-8). Eight bytes a step, the last step overlapping the one before (or, under 8
 * bytes, the string padded with spaces): the string scans of the request path (the escaper,
 * the one-pass readers) spend most of their time here. */
static inline size_t hl_json_plain_len(const char *s, size_t n, int ascii_only) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    unsigned long long v, m;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, s + i, 8);
        if ((m = hl_json_special_bytes(v, ascii_only))) return i + (size_t)(__builtin_ctzll(m) >> 3);
    }
    if (i == n) return n;
    if (n >= 8) { /* bytes before i are plain: the lowest flag is at i or past it */
        memcpy(&v, s + n - 8, 8);
        m = hl_json_special_bytes(v, ascii_only);
        return m ? n - 8 + (size_t)(__builtin_ctzll(m) >> 3) : n;
    }
    v = 0x2020202020202020ull;
    memcpy(&v, s, n);
    m = hl_json_special_bytes(v, ascii_only);
    return m ? (size_t)(__builtin_ctzll(m) >> 3) : n;
#else
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || (ascii_only && c >= 0x80)) break;
    }
    return i;
#endif
}
/* Appends "name: value\r\n" (an HTTP header line). Inline for the same reason as
 * hl_buf_puts: the names are literals. */
static inline __attribute__((always_inline)) hl_err hl_buf_header(hl_buf *b, const char *name, const char *value) {
    hl_err e = hl_buf_puts(b, name);
    if (!e) e = hl_buf_append(b, ": ", 2);
    if (!e) e = hl_buf_puts(b, value);
    return e ? e : hl_buf_append(b, "\r\n", 2);
}
/* Copies the string src (NULL: "") into dst of size n, cut to n - 1 bytes, always
 * terminated (n > 0): snprintf(dst, n, "%s", src) without printf's cost on the request path.
 * Returns strlen(src), as snprintf does, so a cut shows as a result >= n. */
size_t hl_strlcpy(char *dst, const char *src, size_t n);
/* Appends a decimal integer (no printf: this is on the request path). */
hl_err hl_buf_i64(hl_buf *b, long long v);
/* Appends x with exactly `decimals` digits after the point (0..12), rounded half away from
 * zero; for |x| < 9e15 / 10^decimals (money and milliseconds), else falls back to printf. */
hl_err hl_buf_fixed(hl_buf *b, double x, int decimals);
/* Appends x in the shortest decimal form that reads back as the same double ("0.9", not
 * "0.90000000000000002"). */
hl_err hl_buf_double(hl_buf *b, double x);
/* Removes the first n bytes (n <= len), moving the rest to the front. */
void hl_buf_consume(hl_buf *b, size_t n);
/* Takes ownership of the data: returns it (caller frees with free()) and empties b. */
char *hl_buf_steal(hl_buf *b);

#endif
