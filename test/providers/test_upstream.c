/* Tests for hl_upstream's built-in HTTP/1.1 client (http:// URLs): the wire format as pure
 * functions (URL, request head, response head, body framing split at every byte), then the
 * client against a scripted fake server on 127.0.0.1:0 in the same event loop: framing,
 * keep-alive reuse, the stale-connection retry, refused and timed-out connections, pause and
 * resume, abort, cancellation, malformed answers, limits and hl_upstream_close() with calls in
 * flight. Each test runs its own loop and checks, by closing it, that no handle was left. */
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hl_buf.h"
#include "hl_test.h"
#include "hl_upstream_int.h"

/* ------------------------------------------------------------------ the wire format */

HL_TEST(url_split) {
    hl__upstream_url u;
    HL_REQUIRE(hl__upstream_http_url("http://127.0.0.1:8000/v1/chat/completions", &u));
    HL_CHECK(u.host.n == 9 && !memcmp(u.host.p, "127.0.0.1", 9));
    HL_CHECK(u.authority.n == 14 && !memcmp(u.authority.p, "127.0.0.1:8000", 14));
    HL_CHECK_INT_EQ(u.port, 8000);
    HL_CHECK(u.target.n == 20 && !memcmp(u.target.p, "/v1/chat/completions", 20));
    HL_REQUIRE(hl__upstream_http_url("HTTP://localhost", &u));
    HL_CHECK_INT_EQ(u.port, 80);
    HL_CHECK(u.target.n == 1 && u.target.p[0] == '/');
    HL_REQUIRE(hl__upstream_http_url("http://[::1]:11434/api?x=1", &u));
    HL_CHECK(u.host.n == 3 && !memcmp(u.host.p, "::1", 3));
    HL_CHECK(u.authority.n == 11 && !memcmp(u.authority.p, "[::1]:11434", 11));
    HL_CHECK(u.target.n == 8 && !memcmp(u.target.p, "/api?x=1", 8));
    /* Everything else is libcurl's. */
    static const char *const others[] = {
        "https://api.openai.com/v1", "http://user:pw@host/", "http://host:0/", "http://host:65536/",
        "http://host:/", "http://:80/", "http://host/a b", "http://host/a#frag", "http://host?x",
        "http://ho%73t/", "http://[::1/", "ftp://host/", "http://host:80x/",
    };
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        if (hl__upstream_http_url(others[i], &u)) HL_FAIL_("accepted %s", others[i]);
    }
}

HL_TEST(request_head_bytes) {
    hl__upstream_url u;
    HL_REQUIRE(hl__upstream_http_url("http://127.0.0.1:8000/v1/chat/completions", &u));
    hl_buf h;
    hl_buf_init(&h, 0);
    hl_upstream_header_line(&h, "Content-Type: application/json");
    hl_upstream_header_line(&h, "Accept: text/event-stream");
    hl_upstream_header_line(&h, "Expect:"); /* "do not send" */
    hl_upstream_header_line(&h, "Authorization: Bearer sk-1");
    hl_upstream_header_line(&h, "Content-Length: 99"); /* ours to state */
    hl_upstream_header_line(&h, "X-Empty;");
    char out[512];
    size_t n = hl__upstream_build_head(NULL, &u, h.data, h.len, "{}", 2);
    HL_REQUIRE(n > 0 && n < sizeof out);
    HL_CHECK_INT_EQ(hl__upstream_build_head(out, &u, h.data, h.len, "{}", 2), n);
    out[n] = '\0';
    HL_CHECK_STR_EQ(out, "POST /v1/chat/completions HTTP/1.1\r\n"
                         "Content-Type: application/json\r\n"
                         "Accept: text/event-stream\r\n"
                         "Authorization: Bearer sk-1\r\n"
                         "X-Empty:\r\n"
                         "Host: 127.0.0.1:8000\r\n"
                         "Content-Length: 2\r\n\r\n");
    n = hl__upstream_build_head(out, &u, NULL, 0, NULL, 0);
    out[n] = '\0';
    HL_CHECK_STR_EQ(out, "GET /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n");
    hl_buf_reset(&h);
    hl_upstream_header_line(&h, "X-Bad: a\r\nInjected: 1");
    HL_CHECK_INT_EQ(hl__upstream_build_head(NULL, &u, h.data, h.len, NULL, 0), 0);
    hl_buf_release(&h);
}

typedef struct parsed {
    hl_err err;
    int status;
    int body_mode;
    bool keep_alive;
    char ctype[64];
    char body[4096];
    size_t body_len;
    const char *why;
} parsed;

/* Feeds resp to the parser in the pieces cut at cuts[0..n_cuts) (ascending), the way the
 * client does: the head from an accumulating buffer, the body decoded as it comes. */
static void parse_pieces(const char *resp, size_t len, const size_t *cuts, int n_cuts, parsed *out) {
    char buf[8192];
    size_t have = 0, pos = 0, scan = 0;
    bool in_body = false;
    hl__upstream_head hd;
    hl__upstream_body dec;
    memset(out, 0, sizeof *out);
    out->err = HL_ERR_AGAIN;
    for (int piece = 0; piece <= n_cuts && out->err == HL_ERR_AGAIN; piece++) {
        size_t end = piece < n_cuts ? cuts[piece] : len;
        memcpy(buf + have, resp + pos, end - pos);
        have += end - pos;
        pos = end;
        size_t at = 0;
        while (at < have) {
            if (!in_body) {
                size_t hlen;
                hl_err e = hl__upstream_parse_head(buf + at, have - at, &scan, &hd, &hlen, &out->why);
                if (e == HL_ERR_AGAIN) break;
                if (e != HL_OK) {
                    out->err = e;
                    return;
                }
                at += hlen;
                if (hd.status < 200) continue;
                out->status = hd.status;
                out->body_mode = hd.body;
                out->keep_alive = hd.keep_alive;
                snprintf(out->ctype, sizeof out->ctype, "%.*s", (int)hd.content_type.n, hd.content_type.p);
                hl__upstream_body_init(&dec, &hd);
                in_body = true;
                if (hd.body == HL__UPSTREAM_BODY_NONE) {
                    out->err = HL_OK;
                    return;
                }
                continue;
            }
            size_t used, n;
            hl_err e = hl__upstream_body_feed(&dec, buf + at, have - at, &used, &n, &out->why);
            memcpy(out->body + out->body_len, buf + at, n);
            out->body_len += n;
            at += used;
            if (e != HL_ERR_AGAIN) {
                out->err = e;
                return;
            }
        }
        memmove(buf, buf + at, have - at); /* what the head parser has not taken yet */
        have -= at;
    }
}

static const char chunked_resp[] =
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "transfer-encoding:  chunked \r\n"
    "X-Other: a\tb\r\n"
    "\r\n"
    "5\r\ndata:\r\n"
    "1b;ext=1\r\n {\"choices\":[{\"delta\":1}]}\n\r\n"
    "0\r\nTrailer-Field: x\r\n\r\n";
static const char chunked_body[] = "data: {\"choices\":[{\"delta\":1}]}\n";

HL_TEST(parser_chunked_split_at_every_byte) {
    size_t len = sizeof chunked_resp - 1;
    parsed p;
    parse_pieces(chunked_resp, len, NULL, 0, &p);
    HL_REQUIRE(p.err == HL_OK);
    HL_CHECK_INT_EQ(p.status, 200);
    HL_CHECK_STR_EQ(p.ctype, "text/event-stream");
    HL_CHECK(p.keep_alive && p.body_mode == HL__UPSTREAM_BODY_CHUNKED);
    HL_CHECK(p.body_len == sizeof chunked_body - 1 && !memcmp(p.body, chunked_body, p.body_len));
    /* Every cut into two pieces, and every cut into three. */
    int bad = 0;
    for (size_t i = 1; i < len; i++) {
        for (size_t j = i; j < len; j++) {
            size_t cuts[2] = {i, j};
            parse_pieces(chunked_resp, len, cuts, j == i ? 1 : 2, &p);
            if (p.err != HL_OK || p.body_len != sizeof chunked_body - 1 || memcmp(p.body, chunked_body, p.body_len) ||
                strcmp(p.ctype, "text/event-stream") != 0) {
                if (bad++ < 3) HL_FAIL_("cut at %zu, %zu: err %d, body %zu bytes", i, j, p.err, p.body_len);
            }
        }
    }
}

HL_TEST(parser_framing) {
    parsed p;
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    parse_pieces(r, strlen(r), NULL, 0, &p);
    HL_CHECK(p.err == HL_OK && p.body_len == 5 && !memcmp(p.body, "hello", 5) && p.keep_alive);
    r = "HTTP/1.0 200 OK\nContent-Type: application/json\n\n{\"a\":1}";
    parse_pieces(r, strlen(r), NULL, 0, &p);
    HL_CHECK(p.err == HL_ERR_AGAIN && p.body_mode == HL__UPSTREAM_BODY_CLOSE && !p.keep_alive);
    HL_CHECK(p.body_len == 7 && !strcmp(p.ctype, "application/json"));
    r = "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
    parse_pieces(r, strlen(r), NULL, 0, &p);
    HL_CHECK(p.err == HL_OK && p.status == 204 && p.body_len == 0);
    r = "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n";
    parse_pieces(r, strlen(r), NULL, 0, &p);
    HL_CHECK(p.err == HL_OK && !p.keep_alive);
    r = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    parse_pieces(r, strlen(r), NULL, 0, &p);
    HL_CHECK(p.err == HL_OK && p.body_len == 1 && !p.keep_alive); /* chunked wins; then close */
    r = "HTTP/1.1 200\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok";
    parse_pieces(r, strlen(r), NULL, 0, &p);
    HL_CHECK(p.err == HL_OK && p.status == 200 && p.body_len == 2);
}

HL_TEST(parser_rejects) {
    static const struct { const char *resp; hl_err err; const char *why; } cases[] = {
        {"HTTP/2 200 OK\r\n\r\n", HL_ERR_PARSE, "malformed response status line"},
        {"HTTP/1.1 20 OK\r\n\r\n", HL_ERR_PARSE, "malformed response status line"},
        {"HTTP/1.1 200OK\r\n\r\n", HL_ERR_PARSE, "malformed response status line"},
        {"ICY 200 OK\r\n\r\n", HL_ERR_PARSE, "malformed response status line"},
        {"\r\nHTTP/1.1 200 OK\r\n\r\n", HL_ERR_PARSE, "malformed response status line"},
        {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", HL_ERR_PARSE, "malformed response header"},
        {"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", HL_ERR_PARSE, "malformed response header"},
        {"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", HL_ERR_PARSE, "obsolete line folding in a response header"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HL_ERR_PARSE,
         "malformed Content-Length in the response"},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HL_ERR_PARSE, "malformed Content-Length in the response"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HL_ERR_UNSUPPORTED,
         "unsupported Transfer-Encoding in the response"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HL_ERR_PARSE,
         "malformed chunked framing in the response body"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        parsed p;
        parse_pieces(cases[i].resp, strlen(cases[i].resp), NULL, 0, &p);
        if (p.err != cases[i].err || !p.why || strcmp(p.why, cases[i].why) != 0)
            HL_FAIL_("case %zu: err %d (%s)", i, p.err, p.why ? p.why : "-");
    }
    /* A head that never ends: HL_ERR_LIMIT at HL__UPSTREAM_HEAD_MAX, not before. */
    static char big[HL__UPSTREAM_HEAD_MAX + 64];
    size_t n = (size_t)snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\n");
    while (n + 20 < sizeof big) n += (size_t)snprintf(big + n, sizeof big - n, "X-Filler: 0123456\r\n");
    size_t scan = 0, hlen;
    hl__upstream_head hd;
    const char *why = NULL;
    HL_CHECK_INT_EQ(hl__upstream_parse_head(big, HL__UPSTREAM_HEAD_MAX - 1, &scan, &hd, &hlen, &why), HL_ERR_AGAIN);
    HL_CHECK_INT_EQ(hl__upstream_parse_head(big, HL__UPSTREAM_HEAD_MAX, &scan, &hd, &hlen, &why), HL_ERR_LIMIT);
    HL_CHECK_STR_EQ(why, "response headers over 64 KiB");
}

/* A header value and a reason phrase take visible bytes, SP, HTAB and obs-text: every byte
 * value at every position of a 19-byte value (the parser checks eight bytes at a time, then
 * byte by byte), against the rule itself. */
HL_TEST(field_bytes_at_every_offset) {
    for (int pos = 0; pos < 19; pos++) {
        for (int ch = 1; ch < 256; ch++) {
            if (ch == '\r' || ch == '\n') continue; /* they end the line */
            char value[20];
            memset(value, 'v', sizeof value - 1);
            value[sizeof value - 1] = '\0';
            value[pos] = (char)ch;
            bool ok = ch == '\t' || (ch >= 0x20 && ch != 0x7f);
            /* OWS around the value is trimmed, not checked as a field byte: keep it inside */
            if ((pos == 0 || pos == 18) && (ch == ' ' || ch == '\t')) continue;
            char resp[128];
            int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 %s\r\nX-A: %s\r\nContent-Length: 0\r\n\r\n", "OK", value);
            parsed p;
            parse_pieces(resp, (size_t)n, NULL, 0, &p);
            if ((p.err == HL_OK) != ok) HL_FAIL_("header value byte 0x%02x at %d: err %d", ch, pos, p.err);
            n = snprintf(resp, sizeof resp, "HTTP/1.1 200 %s\r\nContent-Length: 0\r\n\r\n", value);
            parse_pieces(resp, (size_t)n, NULL, 0, &p);
            if ((p.err == HL_OK) != ok) HL_FAIL_("reason byte 0x%02x at %d: err %d", ch, pos, p.err);
        }
    }
}

/* ------------------------------------------------------------------ a scripted fake server */

enum {
    ACT_RESPOND,       /* write the bytes, keep the connection */
    ACT_RESPOND_CLOSE, /* write the bytes, then close */
    ACT_CLOSE,         /* close without answering */
    ACT_HOLD,          /* never answer */
    ACT_TRICKLE,       /* write the bytes one at a time, a timer tick apart */
    ACT_HEAD_TRICKLE,  /* write the head at once, then trickle the body */
};

typedef struct step {
    int action;
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
} step;

typedef struct fake {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    int accepts, requests, closed; /* connections accepted, requests read, connections closed */
    const step *steps;             /* for request i: steps[min(i, n_steps - 1)] */
    int n_steps;
    char last_req[4096];
    size_t last_req_len;
    struct fconn *conns;
} fake;

typedef struct fconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    fake *f;
    struct fconn *next;
    char *in;
    size_t in_len;
    const char *tr; /* trickle */
    size_t tr_len, tr_pos;
    bool closing;
    int open_handles;
} fconn;

#define FAKE_IN_MAX (1 << 20)

typedef struct fwrite_req {
    uv_write_t req;
    char data[];
} fwrite_req;

static void fwritten(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void fconn_write(fconn *k, const char *p, size_t n) {
    if (k->closing) return;
    fwrite_req *w = malloc(sizeof *w + n);
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &b, 1, fwritten) != 0) free(w);
}

static void fconn_freed(uv_handle_t *h) {
    fconn *k = h->data;
    if (--k->open_handles) return;
    fake *f = k->f;
    for (fconn **pp = &f->conns; *pp; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    }
    free(k->in);
    free(k);
}

static void fconn_close(fconn *k) {
    if (k->closing) return;
    k->closing = true;
    k->f->closed++;
    uv_close((uv_handle_t *)&k->tcp, fconn_freed);
    uv_close((uv_handle_t *)&k->timer, fconn_freed);
}

static void trickle(uv_timer_t *t) {
    fconn *k = t->data;
    if (k->tr_pos >= k->tr_len) {
        uv_timer_stop(t);
        return;
    }
    fconn_write(k, k->tr + k->tr_pos++, 1);
}

static void fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    fconn *k = h->data;
    buf->base = k->in + k->in_len;
    buf->len = FAKE_IN_MAX - k->in_len;
}

static size_t content_length_of(const char *head, size_t n) {
    for (size_t i = 0; i + 16 <= n; i++)
        if (!strncasecmp(head + i, "\ncontent-length:", 16)) return (size_t)strtoul(head + i + 16, NULL, 10);
    return 0;
}

static void fake_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    fconn *k = s->data;
    if (nread < 0) {
        fconn_close(k);
        return;
    }
    k->in_len += (size_t)nread;
    for (;;) { /* every complete request in the buffer */
        char *end = memmem(k->in, k->in_len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end - k->in) + 4, total = head + content_length_of(k->in, head);
        if (k->in_len < total) return;
        fake *f = k->f;
        size_t keep = total < sizeof f->last_req ? total : sizeof f->last_req - 1;
        memcpy(f->last_req, k->in, keep);
        f->last_req[keep] = '\0';
        f->last_req_len = keep;
        memmove(k->in, k->in + total, k->in_len - total);
        k->in_len -= total;
        const step *st = &f->steps[f->requests < f->n_steps ? f->requests : f->n_steps - 1];
        f->requests++;
        size_t n = st->len ? st->len : st->bytes ? strlen(st->bytes) : 0;
        switch (st->action) {
        case ACT_RESPOND:
            fconn_write(k, st->bytes, n);
            break;
        case ACT_RESPOND_CLOSE:
            fconn_write(k, st->bytes, n);
            fconn_close(k);
            return;
        case ACT_CLOSE:
            fconn_close(k);
            return;
        case ACT_TRICKLE:
        case ACT_HEAD_TRICKLE:
            k->tr = st->bytes;
            k->tr_len = n;
            k->tr_pos = 0;
            if (st->action == ACT_HEAD_TRICKLE) {
                const char *body = strstr(st->bytes, "\r\n\r\n") + 4;
                k->tr_pos = (size_t)(body - st->bytes);
                fconn_write(k, st->bytes, k->tr_pos);
            }
            uv_timer_start(&k->timer, trickle, 1, 1);
            break;
        default:
            break;
        }
    }
}

static void fake_accept(uv_stream_t *l, int status) {
    fake *f = l->data;
    if (status < 0) return;
    fconn *k = calloc(1, sizeof *k);
    k->in = malloc(FAKE_IN_MAX);
    k->f = f;
    uv_tcp_init(f->loop, &k->tcp);
    uv_timer_init(f->loop, &k->timer);
    k->tcp.data = k->timer.data = k;
    k->open_handles = 2;
    k->next = f->conns;
    f->conns = k;
    if (uv_accept(l, (uv_stream_t *)&k->tcp) != 0) {
        fconn_close(k);
        return;
    }
    f->accepts++;
    uv_read_start((uv_stream_t *)&k->tcp, fake_alloc, fake_read);
}

static void fake_start(fake *f, uv_loop_t *loop, const step *steps, int n_steps) {
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->steps = steps;
    f->n_steps = n_steps;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    uv_tcp_bind(&f->listener, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&f->listener, 64, fake_accept);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&ss, &len);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void fake_stop(fake *f) {
    uv_close((uv_handle_t *)&f->listener, NULL);
    for (fconn *k = f->conns; k; k = k->next) fconn_close(k);
}

/* ------------------------------------------------------------------ the client side */

typedef struct rec {
    hl_upstream_call *call;
    uv_loop_t *loop;
    int status, n_status, n_data, n_done;
    char ctype[128];
    char headers[2048];
    size_t headers_len;
    hl_buf body;
    hl_err err;
    char msg[256];
    bool order_ok;
    /* behaviour */
    bool pause;        /* PAUSE after every piece; a timer resumes */
    bool resume_now;   /* ... or resume synchronously from the next loop turn's check */
    int abort_after;   /* ABORT on that piece (1-based; 0: never) */
    int cancel_after;  /* cancel from inside on_data on that piece */
    uv_timer_t resume_timer;
    bool timer_inited;
    int resumes;
} rec;

static void rec_init(rec *r, uv_loop_t *loop) {
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->order_ok = true;
    hl_buf_init(&r->body, 0);
}

static void rec_release(rec *r) {
    hl_buf_release(&r->body);
    if (r->timer_inited) {
        uv_close((uv_handle_t *)&r->resume_timer, NULL);
        uv_run(r->loop, UV_RUN_NOWAIT); /* the handle lives in r: let the loop let go of it */
    }
}

static void on_status(void *ud, int status, const char *ct) {
    rec *r = ud;
    if (r->n_status || r->n_data) r->order_ok = false;
    r->n_status++;
    r->status = status;
    snprintf(r->ctype, sizeof r->ctype, "%s", ct);
}

static void resume_fire(uv_timer_t *t) {
    rec *r = t->data;
    r->resumes++;
    hl_upstream_resume(r->call);
}

static int on_data(void *ud, const char *p, size_t n) {
    rec *r = ud;
    if (r->n_status != 1 || r->n_done) r->order_ok = false;
    r->n_data++;
    hl_buf_append(&r->body, p, n);
    if (r->abort_after && r->n_data == r->abort_after) return HL_UPSTREAM_ABORT;
    if (r->cancel_after && r->n_data == r->cancel_after) {
        hl_upstream_cancel(r->call);
        return HL_UPSTREAM_CONTINUE;
    }
    if (r->pause) {
        if (!r->timer_inited) {
            uv_timer_init(r->loop, &r->resume_timer);
            r->resume_timer.data = r;
            r->timer_inited = true;
        }
        uv_timer_start(&r->resume_timer, resume_fire, 2, 0);
        return HL_UPSTREAM_PAUSE;
    }
    return HL_UPSTREAM_CONTINUE;
}

static void on_header(void *ud, const char *name, size_t nlen, const char *value, size_t vlen) {
    rec *r = ud;
    if (r->n_status) r->order_ok = false;
    int n = snprintf(r->headers + r->headers_len, sizeof r->headers - r->headers_len, "%.*s=%.*s|", (int)nlen,
                     name, (int)vlen, value);
    if (n > 0 && (size_t)n < sizeof r->headers - r->headers_len) r->headers_len += (size_t)n;
}

static void on_done(void *ud, hl_err err, const char *msg) {
    rec *r = ud;
    r->n_done++;
    r->err = err;
    r->call = NULL;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

static const hl_upstream_handlers handlers = {on_status, on_data, on_header, on_done};

static hl_err start_call(hl_upstream *u, const char *url, const char *body, rec *r, long timeout_ms,
                         long connect_timeout_ms) {
    hl_buf h;
    hl_buf_init(&h, 0);
    hl_upstream_header_line(&h, "Content-Type: application/json");
    hl_upstream_header_line(&h, "Accept: application/json");
    hl_upstream_header_line(&h, "Expect:");
    hl_upstream_header_line(&h, "Authorization: Bearer sk-test");
    size_t headers_len = h.len;
    hl_upstream_opts o = {
        .url = url,
        .headers_len = headers_len,
        .headers = hl_buf_steal(&h),
        .body = body ? strdup(body) : NULL,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = connect_timeout_ms,
    };
    return hl_upstream_start(u, &o, &handlers, r, &r->call);
}

static bool watchdog_fired;
static void watchdog(uv_timer_t *t) {
    (void)t;
    watchdog_fired = true;
}

/* Runs the loop until *v >= want (or 5 s: a failure). Nothing sleeps: each turn waits for I/O. */
static bool run_until(uv_loop_t *loop, const int *v, int want) {
    uv_timer_t wd;
    uv_timer_init(loop, &wd);
    watchdog_fired = false;
    uv_timer_start(&wd, watchdog, 5000, 0);
    while (*v < want && !watchdog_fired) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *v >= want;
}

typedef struct env {
    uv_loop_t loop;
    hl_upstream *u;
    fake f;
    char url[128];
} env;

static bool env_init(env *e, const step *steps, int n_steps, const char *path) {
    signal(SIGPIPE, SIG_IGN); /* as the server does: the fake writes to clients that left */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_init(&e->loop);
    fake_start(&e->f, &e->loop, steps, n_steps);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d%s", e->f.port, path);
    return hl_upstream_init(&e->u, &e->loop) == HL_OK;
}

/* Closes the client and the server; every handle must then be gone. */
static void env_release(env *e) {
    if (e->u) hl_upstream_close(e->u);
    fake_stop(&e->f);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    HL_CHECK_INT_EQ(uv_loop_close(&e->loop), 0);
}

/* ------------------------------------------------------------------ the client against it */

HL_TEST(content_length_body_and_request_bytes) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                               "X-Request-Id: abc\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/v1/chat/completions"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{\"model\":\"m\"}", &r, 5000, 1000) == HL_OK);
    HL_CHECK_INT_EQ(hl_upstream_active(e.u), 1);
    HL_CHECK_INT_EQ(r.n_done, 0); /* never from inside hl_upstream_start() */
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_STR_EQ(r.msg, "");
    HL_CHECK_INT_EQ(r.status, 200);
    HL_CHECK_STR_EQ(r.ctype, "application/json");
    HL_CHECK_STR_EQ(r.body.data, "{\"ok\":true}");
    HL_CHECK_STR_EQ(r.headers, "Content-Type=application/json|X-Request-Id=abc|Content-Length=11|");
    HL_CHECK(r.order_ok);
    HL_CHECK_INT_EQ(hl_upstream_active(e.u), 0);
    char want[512];
    snprintf(want, sizeof want,
             "POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
             "Authorization: Bearer sk-test\r\nHost: 127.0.0.1:%d\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}",
             e.f.port);
    HL_CHECK_STR_EQ(e.f.last_req, want);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(chunked_body_trickled_byte_by_byte) {
    static const step steps[] = {{ACT_TRICKLE, chunked_resp, sizeof chunked_resp - 1}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(r.status, 200);
    HL_CHECK_STR_EQ(r.ctype, "text/event-stream");
    HL_CHECK_STR_EQ(r.body.data, chunked_body);
    HL_CHECK(r.n_data > 1);
    HL_CHECK(r.order_ok);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(close_delimited_body) {
    static const step steps[] = {{ACT_RESPOND_CLOSE, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, NULL, &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_STR_EQ(r.body.data, "until the end");
    HL_CHECK(!strncmp(e.f.last_req, "GET / HTTP/1.1\r\n", 16));
    rec_release(&r);
    env_release(&e);
}

HL_TEST(keep_alive_reuses_the_connection) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    for (int i = 0; i < 3; i++) {
        rec r;
        rec_init(&r, &e.loop);
        HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
        HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
        HL_CHECK_INT_EQ(r.err, HL_OK);
        HL_CHECK_STR_EQ(r.body.data, "ok");
        rec_release(&r);
    }
    HL_CHECK_INT_EQ(e.f.requests, 3);
    HL_CHECK_INT_EQ(e.f.accepts, 1);
    /* Two at once need two connections; both go back to the pool. */
    rec a, b;
    rec_init(&a, &e.loop);
    rec_init(&b, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &a, 5000, 1000) == HL_OK);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &b, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &a.n_done, 1) && run_until(&e.loop, &b.n_done, 1));
    HL_CHECK(a.err == HL_OK && b.err == HL_OK);
    HL_CHECK_INT_EQ(e.f.accepts, 2);
    rec_release(&a);
    rec_release(&b);
    rec c;
    rec_init(&c, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &c, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &c.n_done, 1));
    HL_CHECK_INT_EQ(e.f.accepts, 2);
    rec_release(&c);
    env_release(&e);
}

HL_TEST(connection_close_is_not_reused) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    for (int i = 0; i < 2; i++) {
        rec r;
        rec_init(&r, &e.loop);
        HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
        HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
        HL_CHECK_INT_EQ(r.err, HL_OK);
        rec_release(&r);
    }
    HL_CHECK_INT_EQ(e.f.accepts, 2);
    env_release(&e);
}

HL_TEST(stale_pooled_connection_is_retried_once) {
    /* Request 2 arrives on the pooled connection, which the server then drops unanswered (as
     * if it had closed it just before): the client sends it again on a fresh connection. */
    static const step steps[] = {
        {ACT_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 0},
        {ACT_CLOSE, NULL, 0},
        {ACT_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 0},
    };
    env e;
    HL_REQUIRE(env_init(&e, steps, 3, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    rec_release(&r);
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_STR_EQ(r.body.data, "two");
    HL_CHECK_INT_EQ(e.f.requests, 3);
    HL_CHECK_INT_EQ(e.f.accepts, 2);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(fresh_connection_closed_unanswered_is_an_error) {
    static const step steps[] = {{ACT_CLOSE, NULL, 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_UPSTREAM);
    char want[128];
    snprintf(want, sizeof want, "upstream 127.0.0.1:%d closed the connection before responding", e.f.port);
    HL_CHECK_STR_EQ(r.msg, want);
    HL_CHECK_INT_EQ(e.f.requests, 1); /* no retry on a fresh connection */
    HL_CHECK_INT_EQ(r.n_status, 0);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(server_closing_idle_connection) {
    /* The server answers, then closes: the pooled connection notices and is not used again. */
    static const step steps[] = {{ACT_RESPOND_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    for (int i = 0; i < 2; i++) {
        rec r;
        rec_init(&r, &e.loop);
        HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
        HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
        HL_CHECK_INT_EQ(r.err, HL_OK);
        HL_CHECK_STR_EQ(r.body.data, "ok");
        rec_release(&r);
    }
    HL_CHECK_INT_EQ(e.f.requests, 2);
    HL_CHECK_INT_EQ(e.f.accepts, 2);
    env_release(&e);
}

HL_TEST(connection_refused) {
    env e;
    static const step steps[] = {{ACT_HOLD, NULL, 0}};
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    /* A port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    HL_REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", ntohs(a.sin_port));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, url, "{}", &r, 5000, 1000) == HL_OK);
    HL_CHECK_INT_EQ(r.n_done, 0);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_UPSTREAM);
    char want[64];
    snprintf(want, sizeof want, "connection refused to 127.0.0.1:%d", ntohs(a.sin_port));
    HL_CHECK_STR_EQ(r.msg, want);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(localhost_is_resolved) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/x", e.f.port);
    for (int i = 0; i < 2; i++) { /* the second from the address cache, on the pooled connection */
        rec r;
        rec_init(&r, &e.loop);
        HL_REQUIRE(start_call(e.u, url, "{}", &r, 5000, 1000) == HL_OK);
        HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
        HL_CHECK_INT_EQ(r.err, HL_OK); /* ::1 may be refused first: then 127.0.0.1 */
        HL_CHECK_STR_EQ(r.body.data, "ok");
        rec_release(&r);
    }
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: localhost:%d\r\n", e.f.port);
    HL_CHECK(strstr(e.f.last_req, host) != NULL);
    HL_CHECK_INT_EQ(e.f.accepts, 1);
    env_release(&e);
}

HL_TEST(connect_timeout) {
    /* A listener whose accept queue is full drops SYNs: the connection never completes. Only
     * loopback is used. */
    env e;
    static const step steps[] = {{ACT_HOLD, NULL, 0}};
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    int l = socket(AF_INET, SOCK_STREAM, 0), filler = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    HL_REQUIRE(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 0) == 0);
    HL_REQUIRE(getsockname(l, (struct sockaddr *)&a, &alen) == 0);
    HL_REQUIRE(connect(filler, (struct sockaddr *)&a, sizeof a) == 0); /* fills the queue */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", ntohs(a.sin_port));
    rec r;
    rec_init(&r, &e.loop);
    uint64_t t0 = uv_now(&e.loop);
    HL_REQUIRE(start_call(e.u, url, "{}", &r, 5000, 150) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_TIMEOUT);
    char want[96];
    snprintf(want, sizeof want, "connecting to 127.0.0.1:%d timed out after 150 ms", ntohs(a.sin_port));
    HL_CHECK_STR_EQ(r.msg, want);
    HL_CHECK(uv_now(&e.loop) - t0 >= 150 && uv_now(&e.loop) - t0 < 1000);
    close(filler);
    close(l);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(whole_call_timeout) {
    static const step steps[] = {
        {ACT_HOLD, NULL, 0},
        {ACT_HEAD_TRICKLE, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nslow body", 0},
    };
    env e;
    HL_REQUIRE(env_init(&e, steps, 2, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 100, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_TIMEOUT);
    char want[128];
    snprintf(want, sizeof want, "timed out after 100 ms waiting for the response from 127.0.0.1:%d", e.f.port);
    HL_CHECK_STR_EQ(r.msg, want);
    rec_release(&r);
    /* Timed out in the body; the connection is closed, the server sees it. */
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 150, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_TIMEOUT);
    HL_CHECK(strstr(r.msg, "timed out after 150 ms receiving the response body from") != NULL);
    HL_CHECK_INT_EQ(r.status, 200);
    HL_REQUIRE(run_until(&e.loop, &e.f.closed, 2));
    rec_release(&r);
    env_release(&e);
}

/* A long chunked answer, in many pieces. */
static char *long_chunked(size_t chunks, hl_buf *expect) {
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_buf_puts(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i < chunks; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "data: {\"n\":%zu}\n\n", i);
        hl_buf_printf(&b, "%x\r\n%s\r\n", n, line);
        hl_buf_puts(expect, line);
    }
    hl_buf_puts(&b, "0\r\n\r\n");
    return hl_buf_steal(&b);
}

HL_TEST(pause_and_resume_deliver_everything_in_order) {
    hl_buf expect;
    hl_buf_init(&expect, 0);
    char *resp = long_chunked(20000, &expect); /* ~400 KB: many reads, the server's buffer fills */
    step steps[] = {{ACT_RESPOND, resp, strlen(resp)}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    r.pause = true;
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 20000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK(r.body.len == expect.len && !memcmp(r.body.data, expect.data, expect.len));
    HL_CHECK(r.resumes > 1);
    HL_CHECK(r.order_ok);
    /* The connection went back to the pool. */
    rec_release(&r);
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 20000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK(r.err == HL_OK && r.body.len == expect.len);
    HL_CHECK_INT_EQ(e.f.accepts, 1);
    rec_release(&r);
    env_release(&e);
    free(resp);
    hl_buf_release(&expect);
}

HL_TEST(abort_ends_with_cancelled) {
    static const step steps[] = {{ACT_HEAD_TRICKLE, "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n"
                                                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    r.abort_after = 2;
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_CANCELLED);
    HL_CHECK_INT_EQ(r.n_data, 2);
    HL_REQUIRE(run_until(&e.loop, &e.f.closed, 1)); /* the connection is not pooled */
    rec_release(&r);
    env_release(&e);
}

HL_TEST(cancel_mid_response) {
    static const step steps[] = {{ACT_HEAD_TRICKLE, "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n"
                                                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    /* From inside on_data. */
    rec r;
    rec_init(&r, &e.loop);
    r.cancel_after = 2;
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &e.f.closed, 1));
    HL_CHECK_INT_EQ(r.n_done, 0);
    HL_CHECK_INT_EQ(r.n_data, 2);
    HL_CHECK_INT_EQ(hl_upstream_active(e.u), 0);
    rec_release(&r);
    /* From outside, once the body has started. */
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_data, 1));
    hl_upstream_cancel(r.call);
    HL_REQUIRE(run_until(&e.loop, &e.f.closed, 2));
    HL_CHECK_INT_EQ(r.n_done, 0);
    HL_CHECK_INT_EQ(hl_upstream_active(e.u), 0);
    rec_release(&r);
    /* Before it even connected. */
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    hl_upstream_cancel(r.call);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    HL_CHECK_INT_EQ(r.n_done, 0);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(malformed_status_line) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 OK 200\r\n\r\n", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_UPSTREAM);
    char want[96];
    snprintf(want, sizeof want, "malformed response status line (from 127.0.0.1:%d)", e.f.port);
    HL_CHECK_STR_EQ(r.msg, want);
    HL_CHECK_INT_EQ(r.n_status, 0);
    rec_release(&r);
    env_release(&e);
}

HL_TEST(header_over_the_limit) {
    hl_buf big;
    hl_buf_init(&big, 0);
    hl_buf_puts(&big, "HTTP/1.1 200 OK\r\n");
    while (big.len < 70 * 1024) hl_buf_puts(&big, "X-Filler: 0123456789abcdef0123456789abcdef\r\n");
    hl_buf_puts(&big, "Content-Length: 0\r\n\r\n");
    step steps[] = {{ACT_RESPOND, big.data, big.len}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_UPSTREAM);
    HL_CHECK(!strncmp(r.msg, "response headers over 64 KiB", 28));
    HL_CHECK_INT_EQ(r.headers_len, 0);
    rec_release(&r);
    env_release(&e);
    hl_buf_release(&big);
}

HL_TEST(big_head_under_the_limit_then_reuse) {
    hl_buf big;
    hl_buf_init(&big, 0);
    hl_buf_puts(&big, "HTTP/1.1 200 OK\r\n");
    while (big.len < 40 * 1024) hl_buf_puts(&big, "X-Filler: 0123456789abcdef0123456789abcdef\r\n");
    hl_buf_puts(&big, "Content-Length: 2\r\n\r\nok");
    step steps[] = {{ACT_RESPOND, big.data, big.len}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    for (int i = 0; i < 2; i++) {
        rec r;
        rec_init(&r, &e.loop);
        HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
        HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
        HL_CHECK_INT_EQ(r.err, HL_OK);
        HL_CHECK_STR_EQ(r.body.data, "ok");
        rec_release(&r);
    }
    HL_CHECK_INT_EQ(e.f.accepts, 1);
    env_release(&e);
    hl_buf_release(&big);
}

HL_TEST(body_cut_short) {
    static const step steps[] = {
        {ACT_RESPOND_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0},
        {ACT_RESPOND_CLOSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 0},
    };
    env e;
    HL_REQUIRE(env_init(&e, steps, 2, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_UPSTREAM);
    HL_CHECK(strstr(r.msg, "closed the connection with 7 bytes of the body missing") != NULL);
    rec_release(&r);
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_ERR_UPSTREAM);
    HL_CHECK(strstr(r.msg, "in the middle of the chunked body") != NULL);
    HL_CHECK_STR_EQ(r.body.data, "abc");
    rec_release(&r);
    env_release(&e);
}

HL_TEST(close_with_calls_in_flight) {
    static const step steps[] = {{ACT_HOLD, NULL, 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r[3];
    for (int i = 0; i < 3; i++) {
        rec_init(&r[i], &e.loop);
        HL_REQUIRE(start_call(e.u, e.url, "{}", &r[i], 5000, 1000) == HL_OK);
    }
    HL_REQUIRE(run_until(&e.loop, &e.f.requests, 3));
    rec late;
    rec_init(&late, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &late, 5000, 1000) == HL_OK); /* still connecting */
    hl_upstream_close(e.u);
    e.u = NULL;
    HL_REQUIRE(run_until(&e.loop, &e.f.closed, 3));
    for (int i = 0; i < 3; i++) {
        HL_CHECK_INT_EQ(r[i].n_done, 0);
        rec_release(&r[i]);
    }
    HL_CHECK_INT_EQ(late.n_done, 0);
    rec_release(&late);
    env_release(&e);
}

HL_TEST(close_while_resolving) {
    env e;
    static const step steps[] = {{ACT_HOLD, NULL, 0}};
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/", e.f.port);
    HL_REQUIRE(start_call(e.u, url, "{}", &r, 5000, 1000) == HL_OK);
    hl_upstream_close(e.u); /* the resolution is in the thread pool: its callback still runs */
    e.u = NULL;
    env_release(&e);
    HL_CHECK_INT_EQ(r.n_done, 0);
    rec_release(&r);
}

HL_TEST(informational_responses_are_skipped) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                               "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(r.status, 201);
    HL_CHECK_STR_EQ(r.headers, "Content-Length=1|");
    HL_CHECK_STR_EQ(r.body.data, "x");
    rec_release(&r);
    env_release(&e);
}

HL_TEST(error_status_with_empty_body) {
    static const step steps[] = {{ACT_RESPOND, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n", 0}};
    env e;
    HL_REQUIRE(env_init(&e, steps, 1, "/"));
    rec r;
    rec_init(&r, &e.loop);
    HL_REQUIRE(start_call(e.u, e.url, "{}", &r, 5000, 1000) == HL_OK);
    HL_REQUIRE(run_until(&e.loop, &r.n_done, 1));
    HL_CHECK_INT_EQ(r.err, HL_OK);
    HL_CHECK_INT_EQ(r.status, 503);
    HL_CHECK_STR_EQ(r.ctype, "");
    HL_CHECK_INT_EQ(r.n_data, 0);
    HL_CHECK_INT_EQ(r.n_status, 1);
    rec_release(&r);
    env_release(&e);
}

HL_TEST_MAIN()

/* An http proxy in the environment sends plain http:// to libcurl, which applies it and
 * NO_PROXY (the built-in client speaks no proxy); without one the built-in client keeps them.
 * https:// is never the built-in client's (url_split). */
HL_TEST(http_proxy_in_the_environment_means_libcurl) {
    static const char *const names[] = {"http_proxy", "all_proxy", "ALL_PROXY", "HL_UPSTREAM_CURL"};
    char *saved[4];
    for (size_t i = 0; i < 4; i++) {
        const char *v = getenv(names[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(names[i]);
    }
    uv_loop_t loop;
    HL_REQUIRE(uv_loop_init(&loop) == 0);
    for (int round = 0; round < 4; round++) {
        if (round == 1) setenv("http_proxy", "http://127.0.0.1:3128", 1);
        if (round == 2) {
            unsetenv("http_proxy");
            setenv("ALL_PROXY", "socks5h://127.0.0.1:1080", 1);
        }
        if (round == 3) setenv("ALL_PROXY", "", 1); /* empty: none, as for curl */
        hl_upstream *u;
        HL_REQUIRE(hl_upstream_init(&u, &loop) == HL_OK);
        if (u->curl_only != (round == 1 || round == 2)) HL_FAIL_("round %d: curl_only %d", round, u->curl_only);
        hl_upstream_close(u);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    HL_CHECK(uv_loop_close(&loop) == 0);
    for (size_t i = 0; i < 4; i++) {
        if (saved[i]) setenv(names[i], saved[i], 1);
        else unsetenv(names[i]);
        free(saved[i]);
    }
}
