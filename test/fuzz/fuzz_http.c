/* fuzz_http: libFuzzer target for hl_http, the first code to see a client's bytes.
 *
 * The input is parsed as a request head in one piece, then again as a prefix cut at a
 * position taken from the first byte, which must answer HL_ERR_AGAIN or exactly what the
 * whole did. The bytes after the head (or the whole input when there is no head) then go
 * through the chunked decoder in one piece and in two, which must agree. Small limits make
 * the fuzzer reach every ceiling. Parsing is a function of the bytes: the same head parsed
 * again gives the same answer, field for field. Any broken invariant aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_http.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static const hl_http_limits limits = {
    .max_head_bytes = 2048, .max_body_bytes = 4096, .max_headers = 16, .max_target_bytes = 256,
};

static bool slice_within(hl_slice s, const char *base, size_t len) {
    return s.p >= base && s.n <= len && (size_t)(s.p - base) <= len - s.n;
}

static void check_head(const char *s, size_t size, hl_err err, const hl_http_req *req,
                       size_t head_len, int status) {
    if (err == HL_ERR_AGAIN) {
        CHECK(status == 0 && size <= limits.max_head_bytes);
        return;
    }
    if (err != HL_OK) {
        CHECK(status == 400 || status == 413 || status == 414 || status == 431 ||
              status == 501 || status == 505);
        CHECK(strcmp(hl_http_reason(status), "Unknown") != 0);
        return;
    }
    CHECK(status == 0 && head_len <= size && head_len <= limits.max_head_bytes);
    CHECK(req->n_headers >= 0 && req->n_headers <= limits.max_headers);
    CHECK(slice_within(req->method, s, head_len) && req->method.n > 0);
    CHECK(slice_within(req->target, s, head_len) && req->target.n > 0);
    CHECK(req->target.n <= limits.max_target_bytes);
    CHECK(req->path.p == req->target.p && req->path.n <= req->target.n);
    CHECK(req->target.p[0] == '/' || (req->target.n == 1 && req->target.p[0] == '*'));
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->content_length >= -1 && req->content_length <= (int64_t)limits.max_body_bytes);
    CHECK(!(req->chunked && req->content_length >= 0));
    for (int i = 0; i < req->n_headers; i++) {
        const hl_http_header *h = &req->headers[i];
        CHECK(slice_within(h->name, s, head_len) && h->name.n > 0);
        CHECK(slice_within(h->value, s, head_len));
        CHECK(!memchr(h->value.p, '\r', h->value.n) && !memchr(h->value.p, '\n', h->value.n));
        CHECK(!memchr(h->value.p, '\0', h->value.n));
        if (h->value.n) CHECK(h->value.p[0] != ' ' && h->value.p[h->value.n - 1] != ' ');
        CHECK(hl_http_header_get(req, "x-nothing-like-this") == NULL);
    }
}

typedef struct decoded {
    hl_err err;
    int status;
    size_t consumed, out_n;
    char *out;
} decoded;

/* Decodes body[0..n) fed as two reads, the first of k bytes, keeping unconsumed bytes at
 * the front of the buffer as the server does. */
static decoded decode(const char *body, size_t n, size_t k) {
    decoded d = {HL_ERR_AGAIN, 0, 0, 0, malloc(n + 1)};
    char *buf = malloc(n + 1);
    hl_http_chunked c;
    hl_http_chunked_init(&c, limits.max_body_bytes);
    size_t have = 0, fed = 0;
    for (int round = 0; round < 2 && d.err == HL_ERR_AGAIN; round++) {
        size_t step = round == 0 ? k : n - fed;
        memcpy(buf + have, body + fed, step);
        have += step;
        fed += step;
        size_t consumed, out_len;
        int status = -1;
        d.err = hl_http_chunked_decode(&c, buf, have, &consumed, &out_len, &status);
        CHECK(consumed <= have && out_len <= consumed);
        CHECK(d.err == HL_ERR_AGAIN ? consumed == have && status == 0 : 1);
        CHECK(c.total <= limits.max_body_bytes);
        memcpy(d.out + d.out_n, buf, out_len);
        d.out_n += out_len;
        d.consumed += consumed;
        d.status = status;
        memmove(buf, buf + consumed, have - consumed);
        have -= consumed;
    }
    free(buf);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    hl_http_req *req = malloc(sizeof *req);
    size_t head_len = 0;
    int status = -1;
    hl_err err = hl_http_parse_head(s, size, &limits, req, &head_len, &status);
    check_head(s, size, err, req, head_len, status);
    hl_http_req *again = malloc(sizeof *again);
    size_t head_again = 0;
    int status_again = -1;
    CHECK(hl_http_parse_head(s, size, &limits, again, &head_again, &status_again) == err);
    CHECK(status_again == status && head_again == head_len);
    if (err == HL_OK) {
        CHECK(again->method.p == req->method.p && again->method.n == req->method.n);
        CHECK(again->target.p == req->target.p && again->target.n == req->target.n);
        CHECK(again->n_headers == req->n_headers && again->content_length == req->content_length);
        CHECK(again->chunked == req->chunked && again->minor_version == req->minor_version);
        for (int i = 0; i < req->n_headers; i++)
            CHECK(again->headers[i].name.p == req->headers[i].name.p &&
                  again->headers[i].value.n == req->headers[i].value.n);
    }
    free(again);

    /* A prefix, from its own exact-size copy so reads past it are caught. */
    size_t k = size ? data[0] % (size + 1) : 0;
    char *prefix = malloc(k ? k : 1);
    memcpy(prefix, s, k);
    size_t head_len2 = 0;
    int status2 = -1;
    hl_err err2 = hl_http_parse_head(prefix, k, &limits, req, &head_len2, &status2);
    CHECK(err2 == HL_ERR_AGAIN ||
          (err2 == err && status2 == status && (err != HL_OK || head_len2 == head_len)));
    free(prefix);

    const char *body = err == HL_OK ? s + head_len : s;
    size_t n = err == HL_OK ? size - head_len : size;
    size_t k2 = size > 1 ? data[1] % (n + 1) : 0;
    decoded whole = decode(body, n, n), split = decode(body, n, k2);
    CHECK(whole.err == split.err && whole.status == split.status);
    CHECK(whole.out_n == split.out_n && memcmp(whole.out, split.out, whole.out_n) == 0);
    if (whole.err == HL_OK) CHECK(whole.consumed == split.consumed);
    free(whole.out);
    free(split.out);
    free(req);
    return 0;
}
