/* hl_upstream: the dispatcher, and the libcurl client (see hl_upstream.h, hl_upstream_int.h).
 *
 * hl_upstream_start() sends a plain http:// URL to the built-in HTTP/1.1 client
 * (hl_upstream_http.c) and everything else (https://, and the rare http:// URL that client
 * declines) to libcurl. Setting HL_UPSTREAM_CURL=1 in the environment sends every URL to
 * libcurl: an escape hatch should some local server and the built-in client disagree.
 *
 * The libcurl half follows curl's docs/examples/multi-uv.c: a socket callback that starts and
 * stops a uv_poll per socket, a timer callback that arms one uv_timer, and a completion sweep
 * after every curl_multi_socket_action(). Two subtleties:
 *  - curl may call back into us (write callback) from inside curl_multi_socket_action() and
 *    curl_easy_pause(); handlers must not cancel their own call from there, they return
 *    HL_UPSTREAM_ABORT instead.
 *  - a poll handle is closed asynchronously; its memory is freed in the close callback.
 * Responses may come compressed (CURLOPT_ACCEPT_ENCODING): cloud answers cross the internet,
 * and curl decodes them before on_data. The built-in client asks for identity bodies. */
#include "hl_upstream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ shared */

void hl__upstream_link(hl_upstream *u, hl_upstream_call *c) {
    c->u = u;
    c->prev = NULL;
    c->next = u->calls;
    if (u->calls) u->calls->prev = c;
    u->calls = c;
    u->active++;
}

void hl__upstream_unlink(hl_upstream_call *c) {
    hl_upstream *u = c->u;
    if (c->prev) c->prev->next = c->next;
    else u->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    u->active--;
}

/* An environment variable curl reads for a proxy of plain http:// (curl reads http_proxy in
 * lower case only, ALL_PROXY in either), set and not empty. */
bool hl__upstream_http_proxy_set(void) {
    static const char *const names[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return true;
    }
    return false;
}

void hl__upstream_ref(hl_upstream *u) { u->refs++; }

void hl__upstream_unref(hl_upstream *u) {
    if (--u->refs > 0) return;
    hl__upstream_http_free(u->http);
    free(u);
}

/* ------------------------------------------------------------------ libcurl calls */

typedef struct curl_call {
    hl_upstream_call base; /* first: the dispatcher's view */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    bool status_sent;
    bool paused;
    char errbuf[CURL_ERROR_SIZE];
} curl_call;

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    hl_upstream *u;
} poll_ctx;

static void curl_call_free(curl_call *c) {
    hl__upstream_unlink(&c->base);
    curl_multi_remove_handle(c->base.u->multi, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->body);
    free(c);
}

static void send_status(curl_call *c) {
    if (c->status_sent) return;
    c->status_sent = true;
    long code = 0;
    char *ct = NULL;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
    c->base.h.on_status(c->base.ud, (int)code, ct ? ct : "");
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud) {
    curl_call *c = ud;
    size_t len = size * n;
    send_status(c);
    int r = c->base.h.on_data(c->base.ud, p, len);
    if (r == HL_UPSTREAM_PAUSE) {
        /* curl keeps this chunk and delivers it again after the pause ends; only pause before
         * consuming it. The handler has already consumed it, so report it consumed and pause
         * the transfer for what follows. */
        c->paused = true;
        curl_easy_pause(c->easy, CURLPAUSE_RECV);
        return len;
    }
    return r == HL_UPSTREAM_ABORT ? 0 : len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud) {
    curl_call *c = ud;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (colon && c->base.h.on_header) {
        const char *v = colon + 1, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
        c->base.h.on_header(c->base.ud, p, (size_t)(colon - p), v, (size_t)(end - v));
    }
    return len;
}

static void check_done(hl_upstream *u) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        curl_call *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode res = m->data.result;
        hl_err err = HL_OK;
        const char *msg = "";
        if (res == CURLE_OPERATION_TIMEDOUT) {
            err = HL_ERR_TIMEOUT;
            msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);
        } else if (res == CURLE_WRITE_ERROR) {
            err = HL_ERR_CANCELLED;
            msg = "aborted by the gateway";
        } else if (res != CURLE_OK) {
            err = HL_ERR_UPSTREAM;
            msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);
        } else {
            send_status(c); /* a response with an empty body */
        }
        char msgcopy[CURL_ERROR_SIZE];
        snprintf(msgcopy, sizeof msgcopy, "%s", msg);
        hl_upstream_handlers h = c->base.h;
        void *ud = c->base.ud;
        curl_call_free(c);
        h.on_done(ud, err, msgcopy);
    }
}

static void on_poll(uv_poll_t *p, int status, int events) {
    poll_ctx *ctx = p->data;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    hl_upstream *u = ctx->u;
    curl_multi_socket_action(u->multi, ctx->fd, flags, &running);
    check_done(u);
}

static void on_timer(uv_timer_t *t) {
    hl_upstream *u = t->data;
    int running;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(u);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *ud) {
    (void)multi;
    hl_upstream *u = ud;
    if (timeout_ms < 0) uv_timer_stop(&u->timer);
    else uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void poll_closed(uv_handle_t *h) { free(h->data); }

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp) {
    (void)easy;
    hl_upstream *u = ud;
    poll_ctx *ctx = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (ctx) {
            uv_poll_stop(&ctx->poll);
            curl_multi_assign(u->multi, fd, NULL);
            uv_close((uv_handle_t *)&ctx->poll, poll_closed);
        }
        return 0;
    }
    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        if (!ctx) return -1;
        ctx->fd = fd;
        ctx->u = u;
        if (uv_poll_init_socket(u->loop, &ctx->poll, fd) != 0) {
            free(ctx);
            return -1;
        }
        ctx->poll.data = ctx;
        curl_multi_assign(u->multi, fd, ctx);
    }
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    uv_poll_start(&ctx->poll, events, on_poll);
    return 0;
}

/* A header block (hl_upstream_opts.headers) as curl's list; curl reads the same conventions.
 * *ok false when a line could not be added. */
static struct curl_slist *curl_headers(const char *block, size_t len, bool *ok) {
    struct curl_slist *list = NULL;
    *ok = true;
    for (const char *line = block, *end = block ? block + len : NULL; line && line < end; line += strlen(line) + 1) {
        struct curl_slist *l = curl_slist_append(list, line);
        if (!l) {
            *ok = false;
            break;
        }
        list = l;
    }
    return list;
}

static hl_err curl_start(hl_upstream *u, hl_upstream_opts *o, const hl_upstream_handlers *h, void *ud,
                         hl_upstream_call **out) {
    curl_call *c = calloc(1, sizeof *c);
    CURL *e = c ? curl_easy_init() : NULL;
    bool headers_ok = false;
    struct curl_slist *headers = e ? curl_headers(o->headers, o->headers_len, &headers_ok) : NULL;
    if (o->headers) explicit_bzero(o->headers, o->headers_len); /* credentials: curl has its copy */
    free(o->headers);
    o->headers = NULL;
    if (!e || !headers_ok) {
        if (e) curl_easy_cleanup(e);
        curl_slist_free_all(headers);
        free(c);
        free(o->body);
        o->body = NULL;
        return HL_ERR_NOMEM;
    }
    c->easy = e;
    c->headers = headers;
    c->body = o->body;
    c->base.h = *h;
    c->base.ud = ud;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    if (h->on_header) {
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* gzip/deflate/br if built in */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Verification stays on (curl's default); a private CA replaces the system bundle. */
    if (o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (c->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    }
    o->body = NULL;
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(c->headers);
        free(c->body);
        free(c);
        return HL_ERR_NOMEM;
    }
    hl__upstream_link(u, &c->base);
    *out = &c->base;
    return HL_OK;
}

static void curl_resume(curl_call *c) {
    if (!c->paused) return;
    c->paused = false;
    /* May deliver buffered data to write_cb before returning. */
    curl_easy_pause(c->easy, CURLPAUSE_CONT);
}

/* ------------------------------------------------------------------ the public API */

hl_err hl_upstream_init(hl_upstream **out, uv_loop_t *loop) {
    hl_upstream *u = calloc(1, sizeof *u);
    if (!u) return HL_ERR_NOMEM;
    u->loop = loop;
    u->refs = 1; /* open; hl_upstream_close() drops it */
    const char *env = getenv("HL_UPSTREAM_CURL");
    u->curl_only = (env && !strcmp(env, "1")) || hl__upstream_http_proxy_set();
    u->multi = curl_multi_init();
    if (!u->multi) {
        free(u);
        return HL_ERR_NOMEM;
    }
    hl_err e = hl__upstream_http_init(u);
    if (e != HL_OK) {
        curl_multi_cleanup(u->multi);
        free(u);
        return e;
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    hl__upstream_ref(u); /* the timer, until its close callback */
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 256L);
    *out = u;
    return HL_OK;
}

static void timer_closed(uv_handle_t *h) { hl__upstream_unref(h->data); }

void hl_upstream_close(hl_upstream *u) {
    u->closing = true;
    while (u->calls) hl_upstream_cancel(u->calls);
    hl__upstream_http_close(u);
    curl_multi_cleanup(u->multi); /* closes sockets through socket_cb(REMOVE) */
    u->multi = NULL;
    uv_close((uv_handle_t *)&u->timer, timer_closed);
    hl__upstream_unref(u);
}

hl_err hl_upstream_start(hl_upstream *u, hl_upstream_opts *o, const hl_upstream_handlers *h,
                         void *ud, hl_upstream_call **out) {
    hl__upstream_url url;
    if (!u->curl_only && hl__upstream_http_url(o->url, &url))
        return hl__upstream_http_start(u, &url, o, h, ud, out);
    return curl_start(u, o, h, ud, out);
}

void hl_upstream_resume(hl_upstream_call *c) {
    if (c->builtin) hl__upstream_http_resume(c);
    else curl_resume((curl_call *)c);
}

void hl_upstream_cancel(hl_upstream_call *c) {
    if (c->builtin) hl__upstream_http_cancel(c);
    else curl_call_free((curl_call *)c);
}

size_t hl_upstream_active(const hl_upstream *u) { return u->active; }

hl_err hl_upstream_header_line(hl_buf *h, const char *line) { return hl_buf_append(h, line, strlen(line) + 1); }
