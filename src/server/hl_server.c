/* hl_server: event loops, listeners and the connection state machine (see hl_server.h).
 *
 * Memory of a connection: the struct, its input buffer and its body buffer. The input
 * buffer holds at most one request head plus what a pipelining client sent after it, capped
 * at max_header_bytes + max_body_bytes; past that we stop reading until the request in
 * progress ends. Response bytes the kernel does not take at once are copied into write
 * requests (freed in their callbacks); hl_conn_congested() lets the producer pause.
 *
 * Lifetimes: a connection is freed in the close callback of its last handle (TCP and timer);
 * CONN_CLOSING guards every path that could touch it in between. */
#include "hl_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "hl_buf.h"

#define HIGH_WATERMARK (1u << 20) /* queued response bytes before producers pause */
#define LOW_WATERMARK (256u << 10)
#define READ_CHUNK 65536

/* CONN_LINGER: the response is out and our side is shut down; what the client still sends
 * (say the rest of a body we refused) is read and dropped for a moment before closing, so
 * the kernel does not answer it with a reset that could destroy the response in flight. */
enum conn_state { CONN_HEAD, CONN_BODY, CONN_BUSY, CONN_LINGER, CONN_CLOSING };
#define LINGER_MS 2000

struct hl_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    hl_worker *w;
    hl_conn *prev, *next;
    enum conn_state state;
    int open_handles;      /* handles not yet closed; freed at 0 */
    hl_buf in;             /* bytes read, not yet consumed */
    hl_buf head;           /* head of the request being read or handled */
    hl_buf body;           /* decoded body of the request being read */
    hl_http_req req;       /* parsed head (slices into `head`) */
    size_t head_len;
    hl_http_chunked chunked;
    bool keep_alive;       /* of the current request */
    bool http10;
    bool streaming;        /* a streamed response is in progress */
    bool chunked_out;      /* ... with chunked framing */
    bool sent_continue;
    bool in_process;       /* conn_process() is on the stack */
    bool read_paused;
    bool eof;
    size_t pending;        /* response bytes queued in write requests */
    void *data;            /* the hooks' per-request state */
};

struct hl_worker {
    hl_server *s;
    int index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t drain_timer;
    int fd;
    hl_conn *conns;
    size_t n_conns;
    bool draining;
    bool stopped;
    void *data;
    time_t date_sec;
    char date[64];         /* "Date: ...\r\n" for date_sec */
};

struct hl_server {
    const hl_config *cfg;
    const hl_server_hooks *hooks;
    hl_http_limits limits;
    hl_worker *workers;
    int n_workers;
    int port;
    atomic_bool stopping;
};

typedef struct write_req {
    uv_write_t req;
    hl_conn *c;
    size_t len;
    char data[];
} write_req;

static void conn_process(hl_conn *c);
static void conn_close(hl_conn *c);

/* ------------------------------------------------------------------ listening */

static hl_err bind_socket(const hl_config *cfg, int *fd_out, int *port_out, char *errbuf, size_t errlen) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", *port_out ? *port_out : cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot resolve listen address %s: %s", cfg->listen_host, gai_strerror(rc));
        return HL_ERR_IO;
    }
    int one = 1;
    if (!*port_out) {
        /* SO_REUSEPORT would let a second gateway (same user) bind the same port and silently
         * take half the traffic. A plain bind first fails if anyone holds the port. */
        int probe = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (probe < 0 || bind(probe, res->ai_addr, res->ai_addrlen) != 0) {
            snprintf(errbuf, errlen, "cannot listen on %s:%s: %s", cfg->listen_host, port, strerror(errno));
            if (probe >= 0) close(probe);
            freeaddrinfo(res);
            return HL_ERR_IO;
        }
        close(probe);
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(errbuf, errlen, "cannot listen on %s:%s: %s", cfg->listen_host, port, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return HL_ERR_IO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return HL_OK;
}

/* ------------------------------------------------------------------ writing */

static void after_close(uv_handle_t *h) {
    hl_conn *c = h->data;
    if (--c->open_handles > 0) return;
    hl_worker *w = c->w;
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->n_conns--;
    hl_buf_release(&c->in);
    hl_buf_release(&c->head);
    hl_buf_release(&c->body);
    free(c);
    if (w->draining && w->n_conns == 0) uv_async_send(&w->wake);
}

static void on_written(uv_write_t *req, int status) {
    write_req *wr = (write_req *)req;
    hl_conn *c = wr->c;
    c->pending -= wr->len;
    free(wr);
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_BUSY && c->pending < LOW_WATERMARK && c->w->s->hooks->on_drain)
        c->w->s->hooks->on_drain(c);
}

static hl_err conn_write(hl_conn *c, const char *data, size_t len) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    if (!len) return HL_OK;
    if (c->pending == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)len) return HL_OK;
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN) {
            return HL_ERR_IO;
        }
    }
    write_req *wr = malloc(sizeof *wr + len);
    if (!wr) return HL_ERR_NOMEM;
    wr->c = c;
    wr->len = len;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(wr);
        return HL_ERR_IO;
    }
    c->pending += len;
    return HL_OK;
}

static const char *date_header(hl_worker *w) {
    time_t now = time(NULL);
    if (now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        w->date_sec = now;
    }
    return w->date;
}

static hl_err write_head(hl_conn *c, hl_buf *b, int status, const char *headers,
                         const char *content_type, long long content_length) {
    bool close_after = !c->keep_alive || c->w->draining;
    hl_err e = hl_buf_puts(b, "HTTP/1.1 ");
    if (!e) e = hl_buf_i64(b, status);
    if (!e) e = hl_buf_append(b, " ", 1);
    if (!e) e = hl_buf_puts(b, hl_http_reason(status));
    if (!e) e = hl_buf_append(b, "\r\n", 2);
    if (!e) e = hl_buf_puts(b, date_header(c->w));
    if (!e) e = hl_buf_puts(b, "Server: hybridllm\r\n");
    if (!e) e = hl_buf_header(b, "Content-Type", content_type);
    if (!e && content_length >= 0) {
        e = hl_buf_puts(b, "Content-Length: ");
        if (!e) e = hl_buf_i64(b, content_length);
        if (!e) e = hl_buf_append(b, "\r\n", 2);
    }
    if (!e && content_length < 0 && c->chunked_out) e = hl_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (!e && content_length < 0) e = hl_buf_puts(b, "Cache-Control: no-cache\r\n");
    if (!e) e = hl_buf_puts(b, close_after ? "Connection: close\r\n" : (c->http10 ? "Connection: keep-alive\r\n" : ""));
    if (!e && headers) e = hl_buf_puts(b, headers);
    if (!e) e = hl_buf_puts(b, "\r\n");
    return e;
}

/* ------------------------------------------------------------------ request lifecycle */

static void on_timeout(uv_timer_t *t);

static void timer_arm(hl_conn *c, long ms) { uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0); }

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_shutdown(uv_shutdown_t *req, int status) {
    hl_conn *c = req->data;
    free(req);
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    hl_buf_reset(&c->in);
    timer_arm(c, LINGER_MS);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* Closes once queued bytes are out: uv_shutdown completes after pending writes. */
static void conn_close_after_writes(hl_conn *c) {
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    req->data = c;
    c->state = CONN_BUSY; /* nothing more is read or answered; on_shutdown closes */
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->keep_alive = false;
    c->data = NULL;
}

/* The request in progress is answered: go on with the next one or close. */
static void request_done(hl_conn *c) {
    c->data = NULL;
    c->streaming = false;
    c->chunked_out = false;
    hl_buf_reset(&c->body);
    if (!c->keep_alive || c->w->draining || c->eof) {
        conn_close_after_writes(c);
        return;
    }
    c->state = CONN_HEAD;
    c->sent_continue = false;
    timer_arm(c, c->in.len ? c->w->s->cfg->read_timeout_ms : c->w->s->cfg->idle_timeout_ms);
    if (c->read_paused) {
        c->read_paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    }
    if (!c->in_process) conn_process(c);
}

/* Answers a request the server itself refused, then closes (the framing is unknown). */
/* The path of the request line at the start of buf, when it is readable, into out. */
static const char *request_path(const char *buf, size_t len, char *out, size_t out_len) {
    const char *sp = buf ? memchr(buf, ' ', len < 32 ? len : 32) : NULL;
    if (!sp) return NULL;
    size_t i = 0;
    for (const char *p = sp + 1; p < buf + len && *p != ' ' && *p != '?' && *p != '\r'; p++) {
        if (i + 1 >= out_len) return NULL;
        out[i++] = *p;
    }
    out[i] = '\0';
    return i ? out : NULL;
}

static void protocol_error(hl_conn *c, int status, const char *msg) {
    char body[768], headers[256], pathbuf[64];
    body[0] = headers[0] = '\0';
    /* Before the head is parsed it is at the start of `in`; after, in `head`. */
    const char *path = c->state == CONN_HEAD ? request_path(c->in.data, c->in.len, pathbuf, sizeof pathbuf)
                                             : request_path(c->head.data, c->head.len, pathbuf, sizeof pathbuf);
    c->w->s->hooks->render_error(c->w, status, path, msg, headers, sizeof headers, body, sizeof body);
    c->keep_alive = false;
    hl_buf head;
    hl_buf_init(&head, 0);
    if (write_head(c, &head, status, headers, "application/json", (long long)strlen(body)) == HL_OK &&
        hl_buf_puts(&head, body) == HL_OK)
        conn_write(c, head.data, head.len);
    hl_buf_release(&head);
    conn_close_after_writes(c);
}

static void rebase_slice(hl_slice *s, const char *from, const char *to) {
    if (s->p) s->p = to + (s->p - from);
}

static void rebase_head(hl_http_req *r, const char *from, const char *to) {
    rebase_slice(&r->method, from, to);
    rebase_slice(&r->target, from, to);
    rebase_slice(&r->path, from, to);
    for (int i = 0; i < r->n_headers; i++) {
        rebase_slice(&r->headers[i].name, from, to);
        rebase_slice(&r->headers[i].value, from, to);
    }
}

static void dispatch(hl_conn *c) {
    c->state = CONN_BUSY;
    uv_timer_stop(&c->timer);
    c->w->s->hooks->on_request(c, &c->req, c->body.data ? c->body.data : "", c->body.len);
}

static void conn_process(hl_conn *c) {
    const hl_server *s = c->w->s;
    c->in_process = true;
    while (c->state == CONN_HEAD || c->state == CONN_BODY) {
        int status = 400;
        if (c->state == CONN_HEAD) {
            if (!c->in.len) break;
            hl_err e = hl_http_parse_head(c->in.data, c->in.len, &s->limits, &c->req, &c->head_len, &status);
            if (e == HL_ERR_AGAIN) break;
            if (e) {
                protocol_error(c, status, status == 431 ? "Request header fields too large."
                               : status == 413 ? "Request body too large."
                               : status == 414 ? "Request target too long."
                               : status == 501 ? "Transfer-Encoding not implemented."
                               : status == 505 ? "HTTP version not supported."
                               : "Malformed HTTP request.");
                break;
            }
            c->keep_alive = c->req.keep_alive;
            c->http10 = c->req.minor_version == 0;
            /* Move the head out of `in` (which moves as bytes are read and consumed) into
             * `head`, and rebase the slices onto it. */
            hl_buf_reset(&c->head);
            if (hl_buf_append(&c->head, c->in.data, c->head_len)) {
                protocol_error(c, 431, "Request header fields too large.");
                break;
            }
            rebase_head(&c->req, c->in.data, c->head.data);
            hl_buf_consume(&c->in, c->head_len);
            c->state = CONN_BODY;
            hl_buf_reset(&c->body);
            if (c->req.chunked) hl_http_chunked_init(&c->chunked, s->cfg->max_body_bytes);
            if (c->req.expect_continue && !c->http10 && (c->req.chunked || c->req.content_length > 0) &&
                !c->sent_continue && c->in.len == 0) {
                c->sent_continue = true;
                conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            }
        }
        /* CONN_BODY */
        if (c->req.chunked) {
            size_t consumed = 0, out_len = 0;
            hl_err e = hl_http_chunked_decode(&c->chunked, c->in.data ? c->in.data : (char *)"", c->in.len,
                                              &consumed, &out_len, &status);
            if (out_len && hl_buf_append(&c->body, c->in.data, out_len)) {
                protocol_error(c, 413, "Request body too large.");
                break;
            }
            hl_buf_consume(&c->in, consumed);
            if (e == HL_ERR_AGAIN) break;
            if (e) {
                protocol_error(c, status, status == 413 ? "Request body too large." : "Malformed chunked body.");
                break;
            }
        } else if (c->req.content_length > 0) {
            size_t want = (size_t)c->req.content_length - c->body.len;
            size_t take = c->in.len < want ? c->in.len : want;
            if (take && hl_buf_append(&c->body, c->in.data, take)) {
                protocol_error(c, 413, "Request body too large.");
                break;
            }
            hl_buf_consume(&c->in, take);
            if (c->body.len < (size_t)c->req.content_length) break;
        }
        dispatch(c);
    }
    c->in_process = false;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    hl_conn *c = h->data;
    if (hl_buf_reserve(&c->in, READ_CHUNK) != HL_OK) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(c->in.data + c->in.len, READ_CHUNK);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    hl_conn *c = st->data;
    if (c->state == CONN_CLOSING) return;
    if (c->state == CONN_LINGER) {
        if (n < 0) conn_close(c);
        else hl_buf_reset(&c->in); /* dropped */
        return;
    }
    if (n == UV_ENOBUFS) {
        /* Input ceiling reached. While busy: wait for the response to end. */
        if (c->state == CONN_BUSY) {
            uv_read_stop(st);
            c->read_paused = true;
        } else {
            protocol_error(c, 431, "Request too large.");
        }
        return;
    }
    if (n < 0) {
        c->eof = true;
        conn_close(c);
        return;
    }
    if (n == 0) return;
    c->in.len += (size_t)n;
    c->in.data[c->in.len] = '\0';
    if (c->state == CONN_HEAD && c->in.len == (size_t)n) timer_arm(c, c->w->s->cfg->read_timeout_ms);
    if (c->state == CONN_BUSY) {
        /* Pipelined bytes wait; cap what we hold. */
        if (c->in.len > c->w->s->cfg->max_header_bytes + c->w->s->cfg->max_body_bytes) {
            uv_read_stop(st);
            c->read_paused = true;
        }
        return;
    }
    conn_process(c);
}

static void on_timeout(uv_timer_t *t) {
    hl_conn *c = t->data;
    if (c->state == CONN_LINGER) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_HEAD && c->in.len == 0) {
        conn_close(c); /* idle keep-alive connection */
        return;
    }
    if (c->state == CONN_HEAD || c->state == CONN_BODY) {
        protocol_error(c, 408, "Request not received in time.");
    }
}

static void conn_close(hl_conn *c) {
    if (c->state == CONN_CLOSING) return;
    bool busy = c->state == CONN_BUSY && c->data;
    c->state = CONN_CLOSING;
    if (busy && c->w->s->hooks->on_abort) c->w->s->hooks->on_abort(c);
    c->data = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, after_close);
    uv_close((uv_handle_t *)&c->timer, after_close);
}

static void on_connection(uv_stream_t *server, int status) {
    hl_worker *w = server->data;
    if (status < 0 || w->draining) return;
    hl_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(&w->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->w = w;
        c->open_handles = 1;
        c->tcp.data = c;
        w->n_conns++;
        c->next = w->conns;
        if (w->conns) w->conns->prev = c;
        w->conns = c;
        c->state = CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, after_close);
        return;
    }
    uv_timer_init(&w->loop, &c->timer);
    c->w = w;
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->state = CONN_HEAD;
    hl_buf_init(&c->in, w->s->cfg->max_header_bytes + w->s->cfg->max_body_bytes + READ_CHUNK);
    hl_buf_init(&c->head, w->s->cfg->max_header_bytes);
    hl_buf_init(&c->body, w->s->cfg->max_body_bytes);
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    uv_tcp_nodelay(&c->tcp, 1);
    timer_arm(c, w->s->cfg->idle_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* ------------------------------------------------------------------ response API */

hl_err hl_conn_respond(hl_conn *c, int status, const char *headers, const char *content_type,
                       const char *body, size_t len) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_err e = write_head(c, &b, status, headers, content_type, (long long)len);
    if (!e) e = hl_buf_append(&b, body, len);
    if (!e) e = conn_write(c, b.data, b.len);
    hl_buf_release(&b);
    if (e) {
        conn_close(c);
        return e;
    }
    request_done(c);
    return HL_OK;
}

hl_err hl_conn_stream_begin(hl_conn *c, int status, const char *headers, const char *content_type) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    c->streaming = true;
    c->chunked_out = !c->http10;
    if (c->http10) c->keep_alive = false; /* close-delimited */
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_err e = write_head(c, &b, status, headers, content_type, -1);
    if (!e) e = conn_write(c, b.data, b.len);
    hl_buf_release(&b);
    return e;
}

hl_err hl_conn_stream_write(hl_conn *c, const char *data, size_t len) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    if (!len) return HL_OK;
    if (!c->chunked_out) return conn_write(c, data, len);
    /* Frame and payload in one buffer so that one write carries the chunk. */
    char frame[24];
    int n = snprintf(frame, sizeof frame, "%zx\r\n", len);
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_err e = hl_buf_append(&b, frame, (size_t)n);
    if (!e) e = hl_buf_append(&b, data, len);
    if (!e) e = hl_buf_append(&b, "\r\n", 2);
    if (!e) e = conn_write(c, b.data, b.len);
    hl_buf_release(&b);
    return e;
}

void hl_conn_stream_end(hl_conn *c) {
    if (c->state == CONN_CLOSING) return;
    if (c->chunked_out && conn_write(c, "0\r\n\r\n", 5) != HL_OK) {
        conn_close(c);
        return;
    }
    request_done(c);
}

bool hl_conn_congested(const hl_conn *c) { return c->pending > HIGH_WATERMARK; }

hl_worker *hl_conn_worker(hl_conn *c) { return c->w; }
void hl_conn_set_data(hl_conn *c, void *data) { c->data = data; }
void *hl_conn_data(hl_conn *c) { return c->data; }
uv_loop_t *hl_worker_loop(hl_worker *w) { return &w->loop; }
void *hl_worker_data(hl_worker *w) { return w->data; }
int hl_worker_index(const hl_worker *w) { return w->index; }

/* ------------------------------------------------------------------ workers */

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_finish(hl_worker *w) {
    if (w->stopped) return;
    w->stopped = true;
    if (w->s->hooks->worker_stop) w->s->hooks->worker_stop(w->data);
    w->data = NULL;
    uv_walk(&w->loop, close_walk, NULL);
}

static void on_drain_timeout(uv_timer_t *t) {
    hl_worker *w = t->data;
    /* Requests still running past shutdown_timeout_ms are aborted (and recorded as such). */
    for (hl_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

static void on_wake(uv_async_t *a) {
    hl_worker *w = a->data;
    if (!w->draining) {
        w->draining = true;
        if (!uv_is_closing((uv_handle_t *)&w->listener)) uv_close((uv_handle_t *)&w->listener, NULL);
        for (hl_conn *c = w->conns, *next; c; c = next) {
            next = c->next;
            if (c->state == CONN_HEAD && c->in.len == 0) conn_close(c);
        }
        uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)w->s->cfg->shutdown_timeout_ms, 0);
    }
    if (w->n_conns == 0) worker_finish(w);
}

static void worker_main(void *arg) {
    hl_worker *w = arg;
    if (w->s->hooks->worker_start) w->data = w->s->hooks->worker_start(w, w->s->hooks->ud);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    worker_finish(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

hl_err hl_server_init(hl_server **out, const hl_config *cfg, const hl_server_hooks *hooks,
                      char *errbuf, size_t errbuf_len) {
    hl_server *s = calloc(1, sizeof *s);
    if (!s) return HL_ERR_NOMEM;
    s->cfg = cfg;
    s->hooks = hooks;
    s->limits.max_head_bytes = cfg->max_header_bytes;
    s->limits.max_body_bytes = cfg->max_body_bytes;
    s->limits.max_headers = cfg->max_headers;
    s->n_workers = cfg->threads > 0 ? cfg->threads : (int)uv_available_parallelism();
    if (s->n_workers < 1) s->n_workers = 1;
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers) {
        free(s);
        return HL_ERR_NOMEM;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = 0;
    for (int i = 0; i < s->n_workers; i++) {
        hl_worker *w = &s->workers[i];
        w->s = s;
        w->index = i;
        w->fd = -1;
        hl_err e = bind_socket(cfg, &w->fd, &port, errbuf, errbuf_len);
        if (e) {
            s->n_workers = i;
            hl_server_free(s);
            return e;
        }
        uv_loop_init(&w->loop);
        uv_tcp_init(&w->loop, &w->listener);
        w->listener.data = w;
        uv_tcp_open(&w->listener, w->fd);
        uv_async_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_timer_init(&w->loop, &w->drain_timer);
        w->drain_timer.data = w;
        if (uv_listen((uv_stream_t *)&w->listener, 1024, on_connection) != 0) {
            snprintf(errbuf, errbuf_len, "cannot listen on port %d", port);
            s->n_workers = i + 1;
            hl_server_free(s);
            return HL_ERR_IO;
        }
    }
    s->port = port;
    *out = s;
    return HL_OK;
}

int hl_server_run(hl_server *s) {
    for (int i = 0; i < s->n_workers; i++)
        if (uv_thread_create(&s->workers[i].thread, worker_main, &s->workers[i]) != 0) return 1;
    for (int i = 0; i < s->n_workers; i++) uv_thread_join(&s->workers[i].thread);
    return 0;
}

void hl_server_stop(hl_server *s) {
    atomic_store(&s->stopping, true);
    for (int i = 0; i < s->n_workers; i++) uv_async_send(&s->workers[i].wake);
}

void hl_server_free(hl_server *s) {
    if (!s) return;
    for (int i = 0; i < s->n_workers; i++) {
        hl_worker *w = &s->workers[i];
        uv_walk(&w->loop, close_walk, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    free(s->workers);
    free(s);
}

int hl_server_port(const hl_server *s) { return s->port; }
int hl_server_workers(const hl_server *s) { return s->n_workers; }
