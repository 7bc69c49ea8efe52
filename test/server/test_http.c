/* Tests for hl_http: the request-head parser (answers, statuses, limits at and one past
 * their ceiling, any split of the bytes), pipelining, and the chunked decoder. */
#include "hl_http.h"
#include "hl_test.h"

#include <stdint.h>

static hl_http_limits test_limits(void) {
    return (hl_http_limits){.max_head_bytes = 8192, .max_body_bytes = 1 << 20,
                            .max_headers = 64, .max_target_bytes = 0};
}

typedef struct result {
    hl_err err;
    int status;
    size_t head_len; /* only with HL_OK */
} result;

/* Parses s[0..n) from an exact-size copy, so ASan catches any read past the end. */
static result parse_n(const char *s, size_t n, const hl_http_limits *lim, hl_http_req *req) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    result r = {0, -1, 0};
    r.err = hl_http_parse_head(copy, n, lim, req, &r.head_len, &r.status);
    if (r.err != HL_OK) r.head_len = 0;
    free(copy);
    return r;
}

/* Parses s whole, then every prefix of it: each prefix must give HL_ERR_AGAIN or the very
 * answer the whole gives, which is what feeding the bytes in any split amounts to. Returns
 * the whole's answer; req is filled from the whole (slices point into s). */
static result parse_all_prefixes(const char *s, size_t n, const hl_http_limits *lim,
                                 hl_http_req *req) {
    static hl_http_req scratch;
    result whole = parse_n(s, n, lim, &scratch);
    bool settled = false;
    for (size_t k = 0; k <= n; k++) {
        result r = parse_n(s, k, lim, &scratch);
        if (r.err == HL_ERR_AGAIN) {
            if (settled) HL_FAIL_("prefix %zu: AGAIN after an answer", k);
            if (r.status != 0) HL_FAIL_("prefix %zu: AGAIN with status %d", k, r.status);
            continue;
        }
        settled = true;
        if (r.err != whole.err || r.status != whole.status || r.head_len != whole.head_len) {
            HL_FAIL_("prefix %zu of %zu: err %d status %d head %zu; whole: %d %d %zu", k, n,
                     r.err, r.status, r.head_len, whole.err, whole.status, whole.head_len);
            break;
        }
    }
    result r = {0, -1, 0};
    r.err = hl_http_parse_head(s, n, lim, req, &r.head_len, &r.status);
    return r;
}

static bool slice_is(hl_slice s, const char *lit) {
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* --- the table: one request head per row, with the answer it must get --------------- */

typedef struct head_case {
    const char *name;
    const char *raw;
    hl_err err;
    int status;     /* 0 with HL_OK / HL_ERR_AGAIN */
    long head_len;  /* with HL_OK; -1: the whole input */
    int64_t content_length;
    bool chunked, keep_alive, expect_continue;
    size_t len; /* 0: strlen(raw); set for rows with a NUL inside */
} head_case;

#define OK_(name, raw, cl, ch, ka, ex) {name, raw, HL_OK, 0, -1, cl, ch, ka, ex, 0}
#define ERR_(name, raw, err, st) {name, raw, err, st, 0, 0, false, false, false, 0}
#define ERRN_(name, raw, err, st) {name, raw, err, st, 0, 0, false, false, false, \
                                   sizeof raw - 1}

static const head_case head_cases[] = {
    OK_("simple get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false),
    OK_("post with length",
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
        "application/json\r\nContent-Length: 17\r\n\r\n",
        17, false, true, false),
    OK_("no headers", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false),
    OK_("lf only", "GET / HTTP/1.1\nHost: a\nContent-Length: 3\n\n", 3, false, true, false),
    OK_("mixed line ends", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\nB: 2\r\n\n", -1, false, true,
        false),
    OK_("leading empty lines", "\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true,
        false),
    OK_("http/1.0 closes", "GET / HTTP/1.0\r\n\r\n", -1, false, false, false),
    OK_("http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", -1, false,
        true, false),
    OK_("1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", -1, false, false,
        false),
    OK_("close wins", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n", -1,
        false, false, false),
    OK_("close in second field",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nConnection: "
        "close\r\n\r\n",
        -1, false, false, false),
    OK_("closed is not close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", -1,
        false, true, false),
    OK_("chunked", "POST /v1/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", -1,
        true, true, false),
    OK_("chunked any case",
        "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING:  Chunked \r\n\r\n", -1, true, true,
        false),
    OK_("expect",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", 2,
        false, true, true),
    OK_("expect any case", "POST / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\n\r\n", -1,
        false, true, true),
    OK_("expect ignored in 1.0", "POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", -1, false,
        false, false),
    OK_("other expect ignored", "POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", -1,
        false, true, false),
    OK_("identical lengths",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n"
        "\r\n",
        5, false, true, false),
    OK_("length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 ,7,  7\r\n\r\n", 7,
        false, true, false),
    OK_("length zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, false,
        true, false),
    OK_("length leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n",
        42, false, true, false),
    OK_("asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false),
    OK_("empty value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \t\r\n\r\n", -1,
        false, true, false),
    OK_("obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n", -1, false,
        true, false),
    OK_("token method", "M-SEARCH! / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false),
    OK_("tabs around value",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t chunked\t\r\n\r\n", -1, true, true,
        false),
    OK_("leading lf lines", "\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false),
    {"body not part of head", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
     HL_OK, 0, 47, 4, false, true, false, 0},

    ERR_("lowercase version", "GET / http/1.1\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("space before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("trailing space", "GET / HTTP/1.1 \r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("http/0.9 request", "GET /\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("authority form", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("asterisk with more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("control in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("version junk", "GET / HTTP/1.1x\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("version two digits", "GET / HTTP/11.1\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("bare cr after line", "GET / HTTP/1.1\rHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nA: b\rc\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("bare cr in blank line", "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\rx", HL_ERR_PARSE,
         400),
    ERR_("bare cr before line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n  c\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("space before first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("bad name char", "GET / HTTP/1.1\r\nHost: a\r\nA(b: c\r\n\r\n", HL_ERR_PARSE, 400),
    ERRN_("nul in name", "GET / HTTP/1.1\r\nHost: a\r\nA\0b: c\r\n\r\n", HL_ERR_PARSE, 400),
    ERRN_("nul in value", "GET / HTTP/1.1\r\nHost: a\r\nA: b\0c\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("control in value", "GET / HTTP/1.1\r\nHost: a\r\nA: b\x1b[c\r\n\r\n", HL_ERR_PARSE,
         400),
    ERR_("del in value", "GET / HTTP/1.1\r\nHost: a\r\nA: b\x7f\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("length and chunked",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("chunked and length",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 5\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("unknown coding and length",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
         "Content-Length: 5\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("chunked in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("conflicting lengths",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: "
         "6\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("conflicting list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("length plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("length negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("length hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("length junk", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("length inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", HL_ERR_PARSE,
         400),
    ERR_("length empty list item", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERRN_("error before end stops early", "GET / HTTP/1.1\r\nHost: a\r\nA\0", HL_ERR_PARSE,
          400),

    /* The order of the checks: the line end before the version, the framing's smuggling
     * checks before the coding and the length's size. */
    ERR_("http/2 bare cr", "GET / HTTP/2.0\rx\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("http/2 trailing space", "GET / HTTP/2.0 \r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("unknown coding in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("huge length and chunked",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("bare cr after empty lines", "\r\n\n\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", HL_ERR_PARSE,
         400),
    ERR_("http/2", "GET / HTTP/2.0\r\n\r\n", HL_ERR_UNSUPPORTED, 505),
    ERR_("http/1.2", "GET / HTTP/1.2\r\n\r\n", HL_ERR_UNSUPPORTED, 505),
    ERR_("http/0.9", "GET / HTTP/0.9\r\n\r\n", HL_ERR_UNSUPPORTED, 505),
    ERR_("gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),
    ERR_("gzip, chunked",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),
    ERR_("chunked twice",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),
    ERR_("two te fields",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),
    ERR_("identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),
    ERR_("empty te", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),
    ERR_("chunkedx", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),

    /* Host (RFC 9112 3.2): required in 1.1, where it may be empty; 1.0 may omit it. The
     * framing's errors come first. */
    ERR_("1.1 without host", "GET / HTTP/1.1\r\n\r\n", HL_ERR_PARSE, 400),
    ERR_("1.1 post without host",
         "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n"
         "Connection: close\r\n\r\n",
         HL_ERR_PARSE, 400),
    ERR_("1.1 host-like name", "GET / HTTP/1.1\r\nHosts: a\r\nX-Host: b\r\n\r\n", HL_ERR_PARSE,
         400),
    OK_("1.1 empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", -1, false, true, false),
    OK_("1.1 host any case", "GET / HTTP/1.1\r\nhOST: a\r\n\r\n", -1, false, true, false),
    OK_("1.0 without host", "GET / HTTP/1.0\r\n\r\n", -1, false, false, false),
    OK_("1.0 post without host", "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n", 2, false,
        false, false),
    ERR_("gzip without host", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
         HL_ERR_UNSUPPORTED, 501),

    ERR_("length over limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n",
         HL_ERR_LIMIT, 413),
    ERR_("length overflows",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
         "99999999999999999999999999\r\n\r\n",
         HL_ERR_LIMIT, 413),
    ERR_("length over int64",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n"
         "\r\n",
         HL_ERR_LIMIT, 413),
};

/* The missing Host is the one 400 whose reason the status does not say: req.error names it
 * (the server sends it to the client); other errors leave it NULL. */
HL_TEST(missing_host_reason) {
    hl_http_limits lim = test_limits();
    hl_http_req req;
    size_t head_len = 0;
    int status = 0;
    const char *no_host = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    HL_CHECK_INT_EQ(
        hl_http_parse_head(no_host, strlen(no_host), &lim, &req, &head_len, &status),
        HL_ERR_PARSE);
    HL_CHECK_INT_EQ(status, 400);
    HL_CHECK(req.error && strstr(req.error, "Host"));
    const char *bad = "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n";
    HL_CHECK_INT_EQ(hl_http_parse_head(bad, strlen(bad), &lim, &req, &head_len, &status),
                    HL_ERR_PARSE);
    HL_CHECK(req.error == NULL);
    const char *ok = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    HL_CHECK_INT_EQ(hl_http_parse_head(ok, strlen(ok), &lim, &req, &head_len, &status), HL_OK);
    HL_CHECK(req.error == NULL);
}

HL_TEST(head_table) {
    hl_http_limits lim = test_limits();
    for (size_t t = 0; t < sizeof head_cases / sizeof head_cases[0]; t++) {
        const head_case *c = &head_cases[t];
        size_t n = c->len ? c->len : strlen(c->raw);
        hl_http_req req;
        result r = parse_all_prefixes(c->raw, n, &lim, &req);
        if (r.err != c->err || r.status != c->status) {
            HL_FAIL_("%s: got err %d status %d, expected %d %d", c->name, r.err, r.status,
                     c->err, c->status);
            continue;
        }
        if (c->err != HL_OK) continue;
        size_t want_len = c->head_len < 0 ? n : (size_t)c->head_len;
        if (r.head_len != want_len ||
            req.content_length != c->content_length || req.chunked != c->chunked ||
            req.keep_alive != c->keep_alive || req.expect_continue != c->expect_continue)
            HL_FAIL_("%s: head_len %zu cl %lld chunked %d keep_alive %d expect %d", c->name,
                     r.head_len, (long long)req.content_length, req.chunked, req.keep_alive,
                     req.expect_continue);
    }
}

HL_TEST(head_fields) {
    hl_http_limits lim = test_limits();
    const char raw[] = "POST /v1/chat/completions?stream=true&x=1 HTTP/1.1\r\n"
                       "Host: localhost:8080\r\n"
                       "Authorization:\t Bearer sk-test \t\r\n"
                       "X-Empty:\r\n"
                       "Content-Length: 2\r\n\r\n{}";
    hl_http_req req;
    size_t head_len;
    int status;
    HL_REQUIRE(hl_http_parse_head(raw, sizeof raw - 1, &lim, &req, &head_len, &status) ==
               HL_OK);
    HL_CHECK_INT_EQ(status, 0);
    HL_CHECK_INT_EQ(head_len, sizeof raw - 3);
    HL_CHECK(slice_is(req.method, "POST"));
    HL_CHECK(slice_is(req.target, "/v1/chat/completions?stream=true&x=1"));
    HL_CHECK(slice_is(req.path, "/v1/chat/completions"));
    HL_CHECK_INT_EQ(req.minor_version, 1);
    HL_REQUIRE(req.n_headers == 4);
    HL_CHECK(slice_is(req.headers[1].name, "Authorization"));
    HL_CHECK(slice_is(req.headers[1].value, "Bearer sk-test"));
    HL_CHECK(slice_is(req.headers[2].value, ""));
    const hl_slice *v = hl_http_header_get(&req, "authorization");
    HL_CHECK(v && slice_is(*v, "Bearer sk-test"));
    v = hl_http_header_get(&req, "HOST");
    HL_CHECK(v && slice_is(*v, "localhost:8080"));
    HL_CHECK(hl_http_header_get(&req, "X-Missing") == NULL);
    HL_CHECK(hl_http_header_get(&req, "Hos") == NULL);
    HL_CHECK_INT_EQ(req.content_length, 2);

    const char star[] = "OPTIONS * HTTP/1.0\r\n\r\n";
    HL_REQUIRE(hl_http_parse_head(star, sizeof star - 1, &lim, &req, &head_len, &status) ==
               HL_OK);
    HL_CHECK(slice_is(req.path, "*"));
    HL_CHECK_INT_EQ(req.minor_version, 0);
    HL_CHECK_INT_EQ(req.n_headers, 0);
}

/* The parser must not keep anything from an earlier, longer request in the same struct. */
HL_TEST(head_struct_reused) {
    hl_http_limits lim = test_limits();
    hl_http_req req;
    size_t head_len;
    int status;
    const char a[] =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n";
    const char b[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    HL_REQUIRE(hl_http_parse_head(a, sizeof a - 1, &lim, &req, &head_len, &status) == HL_OK);
    HL_REQUIRE(hl_http_parse_head(b, sizeof b - 1, &lim, &req, &head_len, &status) == HL_OK);
    HL_CHECK_INT_EQ(req.n_headers, 1);
    HL_CHECK(!req.chunked && !req.expect_continue && req.keep_alive);
    HL_CHECK_INT_EQ(req.content_length, -1);
}

/* Builds "GET <target> HTTP/1.1\r\nHost: a\r\n" + n_headers - 1 "X-<i>: v\r\n" (n_headers
 * fields, at least Host) + one header padded so the whole head is total bytes long (when total
 * > 0) + "\r\n". */
static size_t build_head(char *out, size_t cap, size_t target_len, int n_headers,
                         size_t total) {
    size_t n = 0;
    n += (size_t)snprintf(out + n, cap - n, "GET /");
    for (size_t i = 1; i < target_len; i++) out[n++] = 'a';
    n += (size_t)snprintf(out + n, cap - n, " HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < n_headers; i++)
        n += (size_t)snprintf(out + n, cap - n, "X-%d: v\r\n", i);
    if (total) {
        /* "P: " + pad + "\r\n" + "\r\n" */
        size_t pad = total - n - 7;
        n += (size_t)snprintf(out + n, cap - n, "P: ");
        memset(out + n, 'p', pad);
        n += pad;
        n += (size_t)snprintf(out + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(out + n, cap - n, "\r\n");
    return n;
}

HL_TEST(limit_head_bytes) {
    static char raw[9000];
    hl_http_limits lim = test_limits();
    lim.max_head_bytes = 1000;
    hl_http_req req;

    size_t n = build_head(raw, sizeof raw, 1, 0, 1000);
    HL_REQUIRE(n == 1000);
    result r = parse_all_prefixes(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(r.head_len, 1000);

    n = build_head(raw, sizeof raw, 1, 0, 1001);
    r = parse_all_prefixes(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(r.status, 431);

    /* An unfinished head: waiting at exactly the ceiling, 431 one byte past it. */
    memset(raw, 'x', sizeof raw);
    memcpy(raw, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 19);
    r = parse_n(raw, 1000, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_ERR_AGAIN);
    r = parse_n(raw, 1001, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(r.status, 431);

    /* A complete head followed by body bytes past the ceiling is fine. */
    n = build_head(raw, sizeof raw, 1, 0, 1000);
    memset(raw + n, 'b', 500);
    r = parse_n(raw, n + 500, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(r.head_len, 1000);
}

HL_TEST(limit_target) {
    static char raw[20000];
    hl_http_limits lim = test_limits();
    lim.max_head_bytes = sizeof raw;
    hl_http_req req;
    size_t default_target = 8192;

    size_t n = build_head(raw, sizeof raw, default_target, 0, 0);
    result r = parse_n(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(req.target.n, default_target);
    n = build_head(raw, sizeof raw, default_target + 1, 0, 0);
    r = parse_n(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(r.status, 414);

    lim.max_target_bytes = 100;
    n = build_head(raw, sizeof raw, 100, 0, 0);
    r = parse_all_prefixes(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    n = build_head(raw, sizeof raw, 101, 0, 0);
    r = parse_all_prefixes(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.status, 414);
    /* Known too long before the line ends. */
    r = parse_n(raw, 5 + 101, &lim, &req);
    HL_CHECK_INT_EQ(r.status, 414);

    /* A long target in a small head: whichever ceiling the bytes reach first answers. */
    lim.max_head_bytes = 50;
    r = parse_n(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.status, 431);
}

HL_TEST(limit_header_count) {
    static char raw[4000];
    hl_http_limits lim = test_limits();
    lim.max_headers = 10;
    hl_http_req req;

    size_t n = build_head(raw, sizeof raw, 1, 10, 0);
    result r = parse_all_prefixes(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(req.n_headers, 10);
    n = build_head(raw, sizeof raw, 1, 11, 0);
    r = parse_all_prefixes(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(r.status, 431);

    /* A limit above the struct's capacity is clamped to it. */
    lim.max_headers = 1000;
    n = build_head(raw, sizeof raw, 1, HL_HTTP_MAX_HEADERS, 0);
    r = parse_n(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(req.n_headers, HL_HTTP_MAX_HEADERS);
    n = build_head(raw, sizeof raw, 1, HL_HTTP_MAX_HEADERS + 1, 0);
    r = parse_n(raw, n, &lim, &req);
    HL_CHECK_INT_EQ(r.status, 431);
}

HL_TEST(limit_body) {
    hl_http_limits lim = test_limits();
    lim.max_body_bytes = 100;
    hl_http_req req;
    const char at[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n";
    const char past[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n";
    result r = parse_all_prefixes(at, sizeof at - 1, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(req.content_length, 100);
    r = parse_all_prefixes(past, sizeof past - 1, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(r.status, 413);

    lim.max_body_bytes = 0; /* no body at all */
    const char zero[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    HL_CHECK_INT_EQ(parse_n(zero, sizeof zero - 1, &lim, &req).err, HL_OK);
    HL_CHECK_INT_EQ(parse_n(at, sizeof at - 1, &lim, &req).status, 413);

    lim.max_body_bytes = SIZE_MAX; /* still capped by what content_length can hold */
    const char big[] =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n";
    HL_CHECK_INT_EQ(parse_n(big, sizeof big - 1, &lim, &req).status, 413);
    const char max64[] =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n";
    HL_CHECK_INT_EQ(parse_n(max64, sizeof max64 - 1, &lim, &req).err, HL_OK);
    HL_CHECK_INT_EQ(req.content_length, INT64_MAX);
}

/* Three requests back to back in one buffer, as a pipelining client sends them: the
 * caller steps over each head and its body. */
HL_TEST(pipelined) {
    const char raw[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                       "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
                       "\r\nPOST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n"
                       "GET /d HTTP/1.0\r\n\r\n";
    const char *want_paths[] = {"/a", "/b", "/c", "/d"};
    const char *want_bodies[] = {"hello", "", "abc", ""};
    hl_http_limits lim = test_limits();
    char buf[sizeof raw];
    memcpy(buf, raw, sizeof raw);
    size_t off = 0, len = sizeof raw - 1;
    for (int i = 0; i < 4; i++) {
        hl_http_req req;
        size_t head_len;
        int status;
        HL_REQUIRE(hl_http_parse_head(buf + off, len - off, &lim, &req, &head_len, &status) ==
                   HL_OK);
        HL_CHECK(slice_is(req.path, want_paths[i]));
        off += head_len;
        if (req.chunked) {
            hl_http_chunked c;
            hl_http_chunked_init(&c, 100);
            size_t consumed, out_len;
            HL_REQUIRE(hl_http_chunked_decode(&c, buf + off, len - off, &consumed, &out_len,
                                              &status) == HL_OK);
            HL_CHECK(out_len == strlen(want_bodies[i]) &&
                     memcmp(buf + off, want_bodies[i], out_len) == 0);
            off += consumed;
        } else if (req.content_length > 0) {
            HL_CHECK(memcmp(buf + off, want_bodies[i], (size_t)req.content_length) == 0);
            off += (size_t)req.content_length;
        }
    }
    HL_CHECK_INT_EQ(off, len);

    /* Every prefix of the whole pipeline parses as AGAIN or as the first request. */
    hl_http_req req;
    result r = parse_all_prefixes(raw, len, &lim, &req);
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(r.head_len, 48);
}

HL_TEST(reason_phrases) {
    HL_CHECK_STR_EQ(hl_http_reason(200), "OK");
    HL_CHECK_STR_EQ(hl_http_reason(100), "Continue");
    HL_CHECK_STR_EQ(hl_http_reason(404), "Not Found");
    HL_CHECK_STR_EQ(hl_http_reason(413), "Content Too Large");
    HL_CHECK_STR_EQ(hl_http_reason(431), "Request Header Fields Too Large");
    HL_CHECK_STR_EQ(hl_http_reason(429), "Too Many Requests");
    HL_CHECK_STR_EQ(hl_http_reason(502), "Bad Gateway");
    HL_CHECK_STR_EQ(hl_http_reason(505), "HTTP Version Not Supported");
    HL_CHECK_STR_EQ(hl_http_reason(299), "Unknown");
    HL_CHECK_STR_EQ(hl_http_reason(-1), "Unknown");
}

/* --- chunked bodies ---------------------------------------------------------------- */

typedef struct chunk_case {
    const char *name;
    const char *raw;
    size_t max_body;
    hl_err err;
    int status;
    const char *body;  /* decoded, with HL_OK */
    size_t consumed;   /* with HL_OK; 0: all of raw */
} chunk_case;

static const chunk_case chunk_cases[] = {
    {"one chunk", "5\r\nhello\r\n0\r\n\r\n", 100, HL_OK, 0, "hello", 0},
    {"empty body", "0\r\n\r\n", 100, HL_OK, 0, "", 0},
    {"several chunks", "3\r\nabc\r\n1\r\nd\r\nA\r\n0123456789\r\n0\r\n\r\n", 100, HL_OK, 0,
     "abcd0123456789", 0},
    {"hex case", "a\r\n0123456789\r\nB\r\n0123456789A\r\n0\r\n\r\n", 100, HL_OK, 0,
     "01234567890123456789A", 0},
    {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 100, HL_OK, 0, "hello", 0},
    {"crlf in data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", 100, HL_OK, 0, "\r\n\r\n", 0},
    {"extensions", "5;name=value\r\nhello\r\n0;last;q=\"a b\"\r\n\r\n", 100, HL_OK, 0, "hello",
     0},
    {"whitespace before extension", "5 \t;x\r\nhello\r\n0\r\n\r\n", 100, HL_OK, 0, "hello", 0},
    {"trailers", "5\r\nhello\r\n0\r\nX-Checksum: 1\r\nX-Other:  two \r\n\r\n", 100, HL_OK, 0,
     "hello", 0},
    {"next request follows", "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 100,
     HL_OK, 0, "hi", 12},
    {"body at limit", "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", 10, HL_OK, 0, "abcdefghij", 0},

    {"body past limit", "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n", 10, HL_ERR_LIMIT, 413, 0, 0},
    {"chunk past limit", "b\r\n", 10, HL_ERR_LIMIT, 413, 0, 0},
    {"huge size", "ffffffffffffffff\r\n", 100, HL_ERR_LIMIT, 413, 0, 0},
    {"size overflows", "10000000000000000\r\n", SIZE_MAX, HL_ERR_PARSE, 400, 0, 0},
    {"empty size", "\r\nhello\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"not hex", "g\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"sign", "+5\r\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"hex prefix", "0x5\r\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"space without extension", "5 \r\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"space inside size", "1 0\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"lf only size line", "5\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"bare cr size line", "5\rhello", 100, HL_ERR_PARSE, 400, 0, 0},
    {"data too long", "5\r\nhello!\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"lf only after data", "5\r\nhello\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"control in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"lf only end", "0\r\n\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"folded trailer", "0\r\nA: b\r\n c\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"bad trailer char", "0\r\nA: b\x7f\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"bare cr trailer", "0\r\nA: b\rx\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"lf only trailer", "0\r\nA: b\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"lf only after extension", "5;x\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"junk after whitespace", "5 x\r\nhello\r\n0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"cr only after data", "5\r\nhello\r\r0\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"trailer starts with colon", "0\r\n: b\r\n\r\n", 100, HL_ERR_PARSE, 400, 0, 0},
    {"tab in extension", "5;a=\"b\tc\"\r\nhello\r\n0\r\n\r\n", 100, HL_OK, 0, "hello", 0},
    {"zero limit, empty body", "0\r\n\r\n", 0, HL_OK, 0, "", 0},
    {"zero limit, one byte", "1\r\n", 0, HL_ERR_LIMIT, 413, 0, 0},
};

/* Decodes raw in pieces of the given sizes (cycled; 0: all at once) the way the server
 * would: unconsumed bytes stay at the front of the connection buffer and the next read is
 * appended to them. Returns the final error; *out gets the decoded bytes. */
static hl_err decode_in_pieces(const char *raw, size_t n, size_t max_body, const size_t *pieces,
                               size_t n_pieces, char *out, size_t *out_n, int *status,
                               size_t *total_consumed) {
    hl_http_chunked c;
    hl_http_chunked_init(&c, max_body);
    char *buf = malloc(n + 1);
    size_t have = 0, fed = 0, p = 0;
    hl_err err = HL_ERR_AGAIN;
    *out_n = 0;
    *total_consumed = 0;
    while (err == HL_ERR_AGAIN) {
        size_t step = n_pieces ? pieces[p++ % n_pieces] : n;
        if (step > n - fed) step = n - fed;
        memcpy(buf + have, raw + fed, step);
        have += step;
        fed += step;
        size_t consumed, out_len;
        err = hl_http_chunked_decode(&c, buf, have, &consumed, &out_len, status);
        if (consumed > have || out_len > consumed) {
            HL_FAIL_("consumed %zu out %zu of %zu", consumed, out_len, have);
            break;
        }
        if (err == HL_ERR_AGAIN && consumed != have) HL_FAIL_("AGAIN left bytes unconsumed");
        memcpy(out + *out_n, buf, out_len);
        *out_n += out_len;
        *total_consumed += consumed;
        memmove(buf, buf + consumed, have - consumed);
        have -= consumed;
        if (fed == n && err == HL_ERR_AGAIN) break;
    }
    free(buf);
    return err;
}

HL_TEST(chunked_table) {
    for (size_t t = 0; t < sizeof chunk_cases / sizeof chunk_cases[0]; t++) {
        const chunk_case *c = &chunk_cases[t];
        size_t n = strlen(c->raw);
        char out[256];
        size_t out_n, consumed;
        int status;
        hl_err err = decode_in_pieces(c->raw, n, c->max_body, NULL, 0, out, &out_n, &status,
                                      &consumed);
        if (err != c->err || status != c->status) {
            HL_FAIL_("%s: err %d status %d, expected %d %d", c->name, err, status, c->err,
                     c->status);
            continue;
        }
        if (err != HL_OK) continue;
        if (out_n != strlen(c->body) || memcmp(out, c->body, out_n) != 0 ||
            consumed != (c->consumed ? c->consumed : n))
            HL_FAIL_("%s: decoded %zu bytes, consumed %zu", c->name, out_n, consumed);
    }
}

/* Each row again, split in two at every position, and fed one byte at a time, and in
 * pieces of 2 and 3 bytes: the same body and the same answer each time. */
HL_TEST(chunked_every_split) {
    for (size_t t = 0; t < sizeof chunk_cases / sizeof chunk_cases[0]; t++) {
        const chunk_case *c = &chunk_cases[t];
        size_t n = strlen(c->raw);
        char whole[256], out[256];
        size_t whole_n, whole_consumed, out_n, consumed;
        int whole_status, status;
        hl_err whole_err = decode_in_pieces(c->raw, n, c->max_body, NULL, 0, whole, &whole_n,
                                            &whole_status, &whole_consumed);
        for (size_t k = 0; k <= n + 3; k++) {
            size_t pieces[2] = {k, n};
            size_t n_pieces = 2;
            if (k == n + 1) pieces[0] = 1, n_pieces = 1;
            if (k == n + 2) pieces[0] = 2, n_pieces = 1;
            if (k == n + 3) pieces[0] = 3, pieces[1] = 1;
            hl_err err = decode_in_pieces(c->raw, n, c->max_body, pieces, n_pieces, out,
                                          &out_n, &status, &consumed);
            if (err != whole_err || status != whole_status ||
                (err == HL_OK && (out_n != whole_n || memcmp(out, whole, out_n) != 0 ||
                                  consumed != whole_consumed))) {
                HL_FAIL_("%s split %zu: err %d status %d out %zu", c->name, k, err, status,
                         out_n);
                break;
            }
        }
    }
}

HL_TEST(chunked_partial_and_sticky) {
    hl_http_chunked c;
    hl_http_chunked_init(&c, 100);
    char buf[64];
    size_t consumed, out_len;
    int status;
    /* Data is handed over as it arrives, before its chunk is complete. */
    memcpy(buf, "a\r\n01234", 8);
    HL_CHECK_INT_EQ(hl_http_chunked_decode(&c, buf, 8, &consumed, &out_len, &status),
                    HL_ERR_AGAIN);
    HL_CHECK_INT_EQ(consumed, 8);
    HL_CHECK(out_len == 5 && memcmp(buf, "01234", 5) == 0);
    HL_CHECK_INT_EQ(c.total, 5);
    HL_CHECK_INT_EQ(hl_http_chunked_decode(&c, buf, 0, &consumed, &out_len, &status),
                    HL_ERR_AGAIN);
    memcpy(buf, "56789\r\n0\r\n\r\nrest", 17);
    HL_CHECK_INT_EQ(hl_http_chunked_decode(&c, buf, 17, &consumed, &out_len, &status),
                    HL_OK);
    HL_CHECK_INT_EQ(consumed, 12);
    HL_CHECK(out_len == 5 && memcmp(buf, "56789", 5) == 0);
    HL_CHECK_INT_EQ(c.total, 10);
    /* Done: nothing more is taken. */
    HL_CHECK_INT_EQ(hl_http_chunked_decode(&c, buf + 12, 4, &consumed, &out_len, &status),
                    HL_OK);
    HL_CHECK_INT_EQ(consumed, 0);
    HL_CHECK_INT_EQ(out_len, 0);

    hl_http_chunked_init(&c, 100);
    memcpy(buf, "zz", 2);
    HL_CHECK_INT_EQ(hl_http_chunked_decode(&c, buf, 2, &consumed, &out_len, &status),
                    HL_ERR_PARSE);
    HL_CHECK_INT_EQ(status, 400);
    memcpy(buf, "0\r\n\r\n", 5);
    HL_CHECK_INT_EQ(hl_http_chunked_decode(&c, buf, 5, &consumed, &out_len, &status),
                    HL_ERR_PARSE);
    HL_CHECK_INT_EQ(status, 400);
    HL_CHECK_INT_EQ(consumed, 0);
}

HL_TEST(chunked_line_limits) {
    static char raw[40000];
    char out[64];
    size_t out_n, consumed;
    int status;
    /* A size line of exactly 4096 bytes (CRLF not counted) is accepted; one more is not. */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 0;
        raw[n++] = '1';
        raw[n++] = ';';
        memset(raw + n, 'e', 4094 + (size_t)extra);
        n += 4094 + (size_t)extra;
        memcpy(raw + n, "\r\nx\r\n0\r\n\r\n", 10);
        n += 10;
        hl_err err = decode_in_pieces(raw, n, 100, NULL, 0, out, &out_n, &status, &consumed);
        HL_CHECK_INT_EQ(err, extra ? HL_ERR_LIMIT : HL_OK);
        HL_CHECK_INT_EQ(status, extra ? 413 : 0);
    }
    /* The digits count toward the size line's ceiling too (leading zeros). */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 4095 + (size_t)extra;
        memset(raw, '0', n);
        memcpy(raw + n, "1\r\nx\r\n0\r\n\r\n", 11);
        n += 11;
        hl_err err = decode_in_pieces(raw, n, 100, NULL, 0, out, &out_n, &status, &consumed);
        HL_CHECK_INT_EQ(err, extra ? HL_ERR_LIMIT : HL_OK);
        HL_CHECK_INT_EQ(status, extra ? 413 : 0);
    }
    /* The trailer ceiling counts every byte after the last chunk's size line except the
     * final LF: 16384 is accepted, one more is not. */
    for (int extra = 0; extra <= 1; extra++) {
        static const size_t lens[4] = {4094, 4094, 4094, 4093}; /* +CRLF each, +CR: 16384 */
        size_t n = 0;
        memcpy(raw, "0\r\n", 3);
        n = 3;
        for (int i = 0; i < 4; i++) {
            size_t len = lens[i] + (i == 3 ? (size_t)extra : 0);
            memcpy(raw + n, "X:", 2);
            memset(raw + n + 2, 'v', len - 2);
            memcpy(raw + n + len, "\r\n", 2);
            n += len + 2;
        }
        memcpy(raw + n, "\r\n", 2);
        n += 2;
        hl_err err = decode_in_pieces(raw, n, 100, NULL, 0, out, &out_n, &status, &consumed);
        HL_CHECK_INT_EQ(err, extra ? HL_ERR_LIMIT : HL_OK);
        HL_CHECK_INT_EQ(status, extra ? 413 : 0);
    }
    /* Trailers: many short lines still add up to a ceiling. */
    size_t n = 0;
    memcpy(raw, "0\r\n", 3);
    n = 3;
    while (n < 20000) {
        memcpy(raw + n, "X-Trailer: 0123456789\r\n", 23);
        n += 23;
    }
    memcpy(raw + n, "\r\n", 2);
    n += 2;
    HL_CHECK_INT_EQ(decode_in_pieces(raw, n, 100, NULL, 0, out, &out_n, &status, &consumed),
                    HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(status, 413);
}

/* Pseudo-random pieces over a large body: decoding stays linear and exact. */
HL_TEST(chunked_random_pieces) {
    enum { BODY = 200000 };
    char *body = malloc(BODY), *raw = malloc(BODY * 2), *out = malloc(BODY);
    uint32_t seed = 12345;
    size_t n = 0, b = 0;
    for (size_t i = 0; i < BODY; i++) body[i] = (char)('a' + i % 26);
    while (b < BODY) {
        seed = seed * 1103515245 + 12345;
        size_t chunk = (seed >> 16) % 5000 + 1;
        if (chunk > BODY - b) chunk = BODY - b;
        n += (size_t)sprintf(raw + n, "%zx\r\n", chunk);
        memcpy(raw + n, body + b, chunk);
        n += chunk;
        b += chunk;
        memcpy(raw + n, "\r\n", 2);
        n += 2;
    }
    memcpy(raw + n, "0\r\n\r\n", 5);
    n += 5;
    size_t pieces[64];
    for (int i = 0; i < 64; i++) {
        seed = seed * 1103515245 + 12345;
        pieces[i] = (seed >> 16) % 3000 + 1;
    }
    size_t out_n, consumed;
    int status;
    HL_CHECK_INT_EQ(decode_in_pieces(raw, n, BODY, pieces, 64, out, &out_n, &status,
                                     &consumed), HL_OK);
    HL_CHECK(out_n == BODY && memcmp(out, body, BODY) == 0);
    HL_CHECK_INT_EQ(consumed, n);
    HL_CHECK_INT_EQ(decode_in_pieces(raw, n, BODY - 1, pieces, 64, out, &out_n, &status,
                                     &consumed), HL_ERR_LIMIT);
    free(body);
    free(raw);
    free(out);
}

HL_TEST_MAIN()
