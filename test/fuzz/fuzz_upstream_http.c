/* fuzz_upstream_http: libFuzzer target for the wire format of hl_upstream's built-in HTTP/1.1
 * client (hl_upstream_wire.c), which reads what an upstream server sends.
 *
 * The input is a response, read the way the client reads it: the head from an accumulating
 * buffer (1xx heads skipped), header fields iterated, then the body decoded in place. It is
 * read once whole, then again in pieces of a size taken from the first byte; both readings
 * must end the same way with the same status and the same body, and every slice must lie
 * inside the head. The first line of the input also goes through the URL splitter and, when
 * accepted, the request-head writer, whose measured and written lengths must agree. Any
 * broken invariant aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_upstream_int.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct outcome {
    hl_err err;
    int status;
    int body_mode;
    char *body; /* owned */
    size_t body_len;
} outcome;

static bool within(hl_slice s, const char *base, size_t len) {
    return s.p >= base && s.n <= len && (size_t)(s.p - base) <= len - s.n;
}

static void check_head(const char *h, size_t hlen, const hl__upstream_head *hd) {
    CHECK(hd->status >= 100 && hd->status <= 999);
    CHECK(hd->content_type.n == 0 || within(hd->content_type, h, hlen));
    size_t pos = 0;
    hl_slice name, value;
    int n = 0;
    while (hl__upstream_next_header(h, hlen, &pos, &name, &value)) {
        CHECK(within(name, h, hlen) && within(value, h, hlen) && name.n > 0);
        CHECK(pos <= hlen && ++n <= (int)hlen);
    }
}

/* Reads data[0..size) in pieces of step bytes (size: whole). */
static void read_response(const uint8_t *data, size_t size, size_t step, outcome *o) {
    char *buf = malloc(size ? size : 1);
    size_t have = 0, fed = 0, scan = 0;
    bool in_body = false;
    hl__upstream_head hd;
    hl__upstream_body dec;
    memset(o, 0, sizeof *o);
    o->err = HL_ERR_AGAIN;
    o->body = malloc(size ? size : 1);
    while (fed < size && o->err == HL_ERR_AGAIN) {
        size_t n = size - fed < step ? size - fed : step;
        memcpy(buf + have, data + fed, n);
        have += n;
        fed += n;
        size_t at = 0;
        while (at < have && o->err == HL_ERR_AGAIN) {
            const char *why = NULL;
            if (!in_body) {
                size_t hlen = 0;
                hl_err e = hl__upstream_parse_head(buf + at, have - at, &scan, &hd, &hlen, &why);
                if (e == HL_ERR_AGAIN) {
                    CHECK(scan <= have - at);
                    break;
                }
                if (e != HL_OK) {
                    CHECK(why && why[0]);
                    o->err = e;
                    break;
                }
                CHECK(hlen > 0 && hlen <= have - at && hlen <= HL__UPSTREAM_HEAD_MAX && scan == 0);
                check_head(buf + at, hlen, &hd);
                at += hlen;
                if (hd.status < 200) continue;
                o->status = hd.status;
                o->body_mode = hd.body;
                hl__upstream_body_init(&dec, &hd);
                in_body = true;
                if (hd.body == HL__UPSTREAM_BODY_NONE) o->err = HL_OK;
                continue;
            }
            size_t used = 0, out = 0, avail = have - at;
            hl_err e = hl__upstream_body_feed(&dec, buf + at, avail, &used, &out, &why);
            CHECK(used <= avail && out <= used);
            CHECK(o->body_len + out <= size);
            memcpy(o->body + o->body_len, buf + at, out);
            o->body_len += out;
            at += used;
            if (e == HL_ERR_AGAIN) CHECK(used == avail);
            else o->err = e;
            if (e != HL_OK && e != HL_ERR_AGAIN) CHECK(why && why[0]);
        }
        memmove(buf, buf + at, have - at);
        have -= at;
    }
    free(buf);
}

static void fuzz_url(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    if (n > 4096) return;
    char url[4097];
    memcpy(url, data, n);
    url[n] = '\0';
    hl__upstream_url u;
    if (!hl__upstream_http_url(url, &u)) return;
    CHECK(within(u.host, url, n) && within(u.authority, url, n) && u.port > 0);
    CHECK(u.target.n > 0 && u.target.p[0] == '/');
    static const char h[] = "Content-Type: application/json"; /* one line, NUL included */
    size_t len = hl__upstream_build_head(NULL, &u, h, sizeof h, "{}", 2);
    CHECK(len > 0);
    char *out = malloc(len);
    CHECK(hl__upstream_build_head(out, &u, h, sizeof h, "{}", 2) == len);
    CHECK(!memcmp(out + len - 4, "\r\n\r\n", 4));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_url(data, size);
    outcome whole, pieces;
    read_response(data, size, size ? size : 1, &whole);
    read_response(data, size, size ? 1 + data[0] % 23 : 1, &pieces);
    CHECK(whole.err == pieces.err);
    CHECK(whole.status == pieces.status && whole.body_mode == pieces.body_mode);
    CHECK(whole.body_len == pieces.body_len && !memcmp(whole.body, pieces.body, whole.body_len));
    free(whole.body);
    free(pieces.body);
    return 0;
}
