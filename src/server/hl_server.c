/* hl_server: event loops, listeners and the connection state machine (see hl_server.h).
 *
 * Memory of a connection: the struct, its input buffer and its body buffer. The input
 * buffer holds at most one request head plus what a pipelining client sent after it, capped
 * at max_header_bytes + max_body_bytes; past that we stop reading until the request in
 * progress ends. Response bytes the kernel does not take at once are copied into write
 * requests (freed in their callbacks); hl_conn_congested() lets the producer pause.
 *
 * Response bytes are bounded too: a streaming producer pauses past the high watermark, and a
 * pipelining client's next request is not even parsed while more than that waits for it. A
 * client that takes no bytes for write_timeout_ms is cut, whatever the state (a response in
 * progress, or the last one before closing): progress is measured on libuv's write queue, so
 * a slow reader of a large response is not cut while it reads.
 *
 * Accepting: each worker polls its listening socket itself and calls accept4() (libuv's own
 * accept loop retries EMFILE in a tight loop, with a reserve-fd trick that fails once another
 * thread takes the descriptor it frees: both loops then spin). Out of descriptors (EMFILE,
 * ENFILE), a worker sheds its oldest idle keep-alive connection and retries, or stops polling
 * for ACCEPT_PAUSE_MS. Past max_connections (over all workers) a new connection gets a canned
 * 503 and is closed at once, before anything is allocated or parsed.
 *
 * Lifetimes: a connection is freed in the close callback of its last handle (TCP and two
 * timers); CONN_CLOSING guards every path that could touch it in between. */
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
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "hl_buf.h"
#include "hl_log.h"

#define HIGH_WATERMARK (1u << 20) /* queued response bytes before producers pause */
#define LOW_WATERMARK (256u << 10)
#define HOLD_MAX (64u << 10)      /* held stream bytes written at once past this */
#define READ_CHUNK 65536
#define ACCEPT_BATCH 64      /* accepts per poll wakeup, so one loop's clients do not starve */
#define ACCEPT_PAUSE_MS 50   /* no descriptor left and nothing to shed: retry after this */
#define FD_RESERVE 64        /* descriptors kept for the ledger, store, logs, models, health */
#define FD_RESERVE_PER_WORKER 8 /* a loop's epoll, wake-up pipes and timers */

/* CONN_LINGER: the response is out and our side is shut down; what the client still sends
 * (say the rest of a body we refused) is read and dropped for a moment before closing, so
 * the kernel does not answer it with a reset that could destroy the response in flight. */
enum conn_state { CONN_HEAD, CONN_BODY, CONN_BUSY, CONN_LINGER, CONN_CLOSING };
#define LINGER_MS 2000

struct hl_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;      /* read, idle and linger timeouts: fires at `due` or before (timer_arm) */
    uint64_t due;          /* loop time (ms) the current timeout ends; 0: none (a request is served) */
    uv_timer_t wtimer;     /* write timeout: runs while response bytes wait for the client */
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
    bool out_blocked;      /* the next pipelined request waits for output to drain */
    size_t pending;        /* response bytes queued in write requests */
    size_t out_total;      /* response bytes ever handed to the socket or libuv's queue */
    size_t delivered_mark; /* bytes_delivered() at the last sign of progress */
    uint64_t progress_at;  /* loop time of the last sign of progress */
    uint64_t idle_since;   /* loop time the connection last became idle (for shedding) */
    void *data;            /* the hooks' per-request state */
    hl_buf held;           /* streamed bytes not yet written: the head, until the first chunk
                              goes out with it; later chunks, until the end of this loop turn
                              (on_flush) or of the stream: one write for them all */
    bool chunk_sent;       /* the streamed response's first chunk went out */
    hl_conn *held_next;    /* in the worker's list of connections holding a head */
    bool held_listed;
};

struct hl_worker {
    hl_server *s;
    int index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_poll_t listener;    /* readable: connections to accept on fd */
    uv_timer_t accept_timer; /* resumes polling after a pause for descriptors */
    bool accept_paused;
    uint64_t emfile_logged; /* loop time of the last "out of descriptors" warning */
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
    uv_check_t flush;      /* after this turn's I/O: writes the bytes still held */
    uv_prepare_t flush_early; /* the same before the loop waits for I/O: bytes held by a
                              timer's callback do not wait for the next event */
    hl_conn *held;         /* connections holding bytes */
    bool before_send;      /* hooks->before_send is due before the next byte goes out */
};

struct hl_server {
    const hl_config *cfg;
    const hl_server_hooks *hooks;
    hl_http_limits limits;
    hl_worker *workers;
    int n_workers;
    int port;
    int max_conns;          /* open connections at most, over all workers */
    atomic_int n_open;      /* open connections, over all workers */
    atomic_ulong refused;   /* connections refused at max_conns */
    char refusal[512];      /* the canned 503 */
    size_t refusal_len;
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
static void flush_arm(hl_worker *w);

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
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
    atomic_fetch_sub(&w->s->n_open, 1);
    if (c->held_listed)
        for (hl_conn **p = &w->held; *p; p = &(*p)->held_next)
            if (*p == c) {
                *p = c->held_next;
                break;
            }
    hl_buf_release(&c->in);
    hl_buf_release(&c->head);
    hl_buf_release(&c->body);
    hl_buf_release(&c->held);
    free(c);
    if (w->draining && w->n_conns == 0) uv_async_send(&w->wake);
}

/* Response bytes the client's side has taken: those handed to the socket, less what waits in
 * libuv's queue and in the kernel's send queue (SIOCOUTQ: not yet acknowledged). Counting at
 * the kernel matters: Linux reports a full socket writable again only once a good part of its
 * buffer drained, which for a slow but steady reader can take longer than the timeout. */
static size_t bytes_delivered(hl_conn *c) {
    size_t d = c->out_total - uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
        d -= (size_t)outq < d ? (size_t)outq : d;
    return d;
}

/* Write timeout. While response bytes wait in write requests, a tick checks whether the
 * client took any since the last one; none for write_timeout_ms cuts the connection. */
static void on_write_tick(uv_timer_t *t) {
    hl_conn *c = t->data;
    if (c->state == CONN_CLOSING) return;
    if (c->pending == 0 || uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_timer_stop(t); /* all with the kernel: the write callbacks follow */
        return;
    }
    size_t delivered = bytes_delivered(c);
    uint64_t now = uv_now(&c->w->loop);
    if (delivered != c->delivered_mark) {
        c->delivered_mark = delivered;
        c->progress_at = now;
    } else if (now - c->progress_at >= (uint64_t)c->w->s->cfg->write_timeout_ms) {
        conn_close(c); /* a request in progress is aborted (on_abort records it) */
    }
}

static void watch_writes(hl_conn *c) {
    if (uv_is_active((uv_handle_t *)&c->wtimer)) return;
    long t = c->w->s->cfg->write_timeout_ms;
    uint64_t tick = (uint64_t)(t >= 4000 ? 1000 : t >= 4 ? t / 4 : 1);
    c->delivered_mark = bytes_delivered(c);
    c->progress_at = uv_now(&c->w->loop);
    uv_timer_start(&c->wtimer, on_write_tick, tick, tick);
}

static void conn_process(hl_conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

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
    if (c->pending == 0) uv_timer_stop(&c->wtimer);
    if (c->state == CONN_BUSY && c->pending < LOW_WATERMARK && c->w->s->hooks->on_drain)
        c->w->s->hooks->on_drain(c);
    if (c->state == CONN_CLOSING) return;
    if (c->out_blocked && c->pending < LOW_WATERMARK) {
        /* The pipelined requests that waited for the client to read go on. */
        c->out_blocked = false;
        if (!c->in_process) conn_process(c);
        if (c->state == CONN_HEAD && !c->out_blocked && c->read_paused) {
            c->read_paused = false;
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
        }
    } else if (c->pending == 0 && c->w->draining && c->state == CONN_HEAD && c->in.len == 0) {
        conn_close(c); /* shutting down: the last response went out */
    }
}

/* Sends bufs: what the kernel takes now is written at once, the rest is copied into one
 * write request. */
static hl_err conn_writev_now(hl_conn *c, const uv_buf_t *bufs, unsigned nbufs) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
    if (!total) return HL_OK;
    if (c->w->before_send) { /* hl_worker_before_send: first, say, the ledger's lines */
        c->w->before_send = false;
        c->w->s->hooks->before_send(c->w->data);
    }
    size_t skip = 0;
    if (c->pending == 0) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
        if (n > 0) c->out_total += (size_t)n;
        if (n >= 0 && (size_t)n == total) return HL_OK;
        if (n > 0) skip = (size_t)n;
        else if (n != UV_EAGAIN) return HL_ERR_IO;
    }
    size_t len = total - skip;
    write_req *wr = malloc(sizeof *wr + len);
    if (!wr) return HL_ERR_NOMEM;
    wr->c = c;
    wr->len = len;
    size_t off = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t bl = bufs[i].len, from = 0;
        if (skip >= bl) {
            skip -= bl;
            continue;
        }
        from = skip;
        skip = 0;
        memcpy(wr->data + off, bufs[i].base + from, bl - from);
        off += bl - from;
    }
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(wr);
        return HL_ERR_IO;
    }
    c->pending += len;
    c->out_total += len;
    watch_writes(c);
    return HL_OK;
}

/* conn_writev_now, after the held head if there is one (nbufs <= 3): one write for both. */
static hl_err conn_writev(hl_conn *c, const uv_buf_t *bufs, unsigned nbufs) {
    if (!c->held.len) return conn_writev_now(c, bufs, nbufs);
    uv_buf_t v[4] = {uv_buf_init(c->held.data, (unsigned)c->held.len)};
    for (unsigned i = 0; i < nbufs && i < 3; i++) v[i + 1] = bufs[i];
    hl_err e = conn_writev_now(c, v, (nbufs < 3 ? nbufs : 3) + 1);
    hl_buf_reset(&c->held); /* what the kernel did not take was copied */
    return e;
}

/* Lists c for on_flush (its held bytes go out at the end of this loop turn at the latest). */
static void hold_until_flush(hl_conn *c) {
    hl_worker *w = c->w;
    if (!c->held_listed) {
        c->held_listed = true;
        c->held_next = w->held;
        w->held = c;
    }
    flush_arm(w);
}

/* The end of a loop turn: what is due before sending (hl_worker_before_send), then the held
 * bytes go out (whole responses, a head no chunk followed, later chunks). */
static void flush_turn(hl_worker *w) {
    uv_check_stop(&w->flush);
    uv_prepare_stop(&w->flush_early);
    if (w->before_send) {
        w->before_send = false;
        w->s->hooks->before_send(w->data);
    }
    hl_conn *c = w->held;
    w->held = NULL;
    while (c) {
        hl_conn *next = c->held_next;
        c->held_next = NULL;
        c->held_listed = false;
        if (c->held.len && c->state != CONN_CLOSING && conn_writev(c, NULL, 0) != HL_OK) conn_close(c);
        c = next;
    }
}

static void on_flush(uv_check_t *h) { flush_turn(h->data); }
static void on_flush_early(uv_prepare_t *h) { flush_turn(h->data); }

static void flush_arm(hl_worker *w) {
    if (!uv_is_active((uv_handle_t *)&w->flush)) {
        uv_check_start(&w->flush, on_flush);
        uv_prepare_start(&w->flush_early, on_flush_early);
    }
}

void hl_worker_before_send(hl_worker *w) {
    if (!w->s->hooks->before_send) return;
    w->before_send = true;
    flush_arm(w);
}

static hl_err conn_write(hl_conn *c, const char *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return conn_writev(c, &b, 1);
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

/* The connection's timeout ends ms from now. The timer is restarted only when it would fire
 * after that: one due earlier fires, finds `due` later and waits for the rest (on_timeout). In
 * steady keep-alive traffic (read timeout, served, idle timeout, read timeout...) a request then
 * costs no timer operation at all, as nginx keeps its timers. */
static void timer_arm(hl_conn *c, long ms) {
    uint64_t now = uv_now(&c->w->loop);
    c->due = now + (uint64_t)ms;
    if (uv_is_active((uv_handle_t *)&c->timer) && now + uv_timer_get_due_in(&c->timer) <= c->due) return;
    uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
}

/* No timeout (a request is being served: the exchange has its own). The timer, if running,
 * fires and finds none. */
static void timer_clear(hl_conn *c) { c->due = 0; }

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
    timer_clear(c);
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
    c->idle_since = uv_now(&c->w->loop);
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
    timer_clear(c);
    c->w->s->hooks->on_request(c, &c->req, c->body.data ? c->body.data : "", c->body.len);
}

static void conn_process(hl_conn *c) {
    const hl_server *s = c->w->s;
    c->in_process = true;
    while (c->state == CONN_HEAD || c->state == CONN_BODY) {
        int status = 400;
        if (c->state == CONN_HEAD) {
            if (!c->in.len) break;
            if (c->pending > HIGH_WATERMARK) {
                /* A pipelining client that does not read: answer nothing more until it
                 * takes what waits (on_written resumes), so output stays bounded. */
                c->out_blocked = true;
                if (!c->read_paused) {
                    uv_read_stop((uv_stream_t *)&c->tcp);
                    c->read_paused = true;
                }
                break;
            }
            hl_err e = hl_http_parse_head(c->in.data, c->in.len, &s->limits, &c->req, &c->head_len, &status);
            if (e == HL_ERR_AGAIN) break;
            if (e) {
                protocol_error(c, status, c->req.error ? c->req.error
                               : status == 431 ? "Request header fields too large."
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
    uint64_t now = uv_now(&c->w->loop);
    if (!c->due) return; /* cleared since it was armed */
    if (now < c->due) { /* armed again, for later, since it was started */
        uv_timer_start(&c->timer, on_timeout, c->due - now, 0);
        return;
    }
    c->due = 0;
    if (c->state == CONN_LINGER) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_HEAD && (c->out_blocked || c->pending)) {
        /* A response is still going out (or a pipelined request waits for it): the write
         * timeout decides. */
        timer_arm(c, c->in.len ? c->w->s->cfg->read_timeout_ms : c->w->s->cfg->idle_timeout_ms);
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
    uv_close((uv_handle_t *)&c->wtimer, after_close);
}

/* ------------------------------------------------------------------ accepting */

static void free_owner(uv_handle_t *h) { free(h->data); }

/* A connection on an accepted, non-blocking socket; fd is closed on failure. */
static void conn_open(hl_worker *w, int fd) {
    hl_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(&w->loop, &c->tcp) != 0) {
        free(c);
        close(fd);
        return;
    }
    c->tcp.data = c;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&c->tcp, free_owner);
        return;
    }
    uv_timer_init(&w->loop, &c->timer);
    uv_timer_init(&w->loop, &c->wtimer);
    c->w = w;
    c->timer.data = c;
    c->wtimer.data = c;
    c->open_handles = 3;
    c->state = CONN_HEAD;
    c->idle_since = uv_now(&w->loop);
    hl_buf_init(&c->in, w->s->cfg->max_header_bytes + w->s->cfg->max_body_bytes + READ_CHUNK);
    hl_buf_init(&c->head, w->s->cfg->max_header_bytes);
    hl_buf_init(&c->body, w->s->cfg->max_body_bytes);
    hl_buf_init(&c->held, 0);
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    atomic_fetch_add(&w->s->n_open, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    timer_arm(c, w->s->cfg->idle_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* Past max_connections: the canned 503, without reading the request or allocating. What the
 * client already sent is read and dropped first, so that closing does not reset the
 * connection under the answer. */
static void refuse(hl_server *s, int fd) {
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {}
    ssize_t n = send(fd, s->refusal, s->refusal_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    close(fd);
    atomic_fetch_add(&s->refused, 1);
}

/* This worker's connection idle the longest (no request in progress, nothing read, nothing
 * waiting to be written) is closed to free a descriptor: a keep-alive connection between
 * requests, or one that never sent any. It must have been idle a moment (SHED_FRESH_AFTER_MS),
 * so that a connection just accepted, whose request may be on its way, keeps its chance. */
#define SHED_FRESH_AFTER_MS 100
static bool shed_idle(hl_worker *w) {
    uint64_t now = uv_now(&w->loop);
    hl_conn *oldest = NULL;
    for (hl_conn *c = w->conns; c; c = c->next) {
        if (c->state != CONN_HEAD || c->in.len || c->pending || c->out_blocked) continue;
        if (now - c->idle_since < SHED_FRESH_AFTER_MS) continue;
        if (!oldest || c->idle_since <= oldest->idle_since) oldest = c;
    }
    if (!oldest) return false;
    conn_close(oldest); /* closes the descriptor now; the struct goes in the close callback */
    return true;
}

static void on_listen(uv_poll_t *p, int status, int events);

static void on_accept_timer(uv_timer_t *t) {
    hl_worker *w = t->data;
    if (!w->accept_paused || w->draining) return;
    w->accept_paused = false;
    uv_poll_start(&w->listener, UV_READABLE, on_listen);
}

static void pause_accepting(hl_worker *w, int err) {
    if (w->accept_paused) return;
    w->accept_paused = true;
    uv_poll_stop(&w->listener);
    uv_timer_start(&w->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
    uint64_t now = uv_now(&w->loop);
    if (!w->emfile_logged || now - w->emfile_logged >= 10000) {
        w->emfile_logged = now;
        hl_log(HL_LOG_WARN, "event loop %d: cannot accept connections: %s (%d open); pausing "
               "accepts and closing idle connections; raise the file-descriptor limit (ulimit "
               "-n) or lower server.max_connections", w->index, strerror(err),
               atomic_load(&w->s->n_open));
    }
}

static void on_listen(uv_poll_t *p, int status, int events) {
    (void)events;
    hl_worker *w = p->data;
    hl_server *s = w->s;
    if (w->draining) return;
    if (status < 0) {
        pause_accepting(w, -status);
        return;
    }
    bool just_shed = false;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) return;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
            /* Out of descriptors (or memory): make room by shedding an idle connection and
             * retry; if that did not help, stop polling a moment rather than spin. */
            if ((err == EMFILE || err == ENFILE) && !just_shed && shed_idle(w)) {
                just_shed = true;
                continue;
            }
            pause_accepting(w, err);
            return;
        }
        just_shed = false;
        if (atomic_load(&s->n_open) >= s->max_conns) {
            refuse(s, fd);
            continue;
        }
        conn_open(w, fd);
    }
}

/* ------------------------------------------------------------------ response API */

hl_err hl_conn_respond(hl_conn *c, int status, const char *headers, const char *content_type,
                       const char *body, size_t len) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    hl_err e;
    if (c->keep_alive && !c->w->draining && !c->eof && c->held.len + len < HOLD_MAX) {
        /* The connection stays open: the response waits for the end of this loop turn with
         * the others (one write of the ledger's lines before them all, hl_worker_before_send). */
        size_t mark = c->held.len;
        e = write_head(c, &c->held, status, headers, content_type, (long long)len);
        if (!e) e = hl_buf_append(&c->held, body, len);
        if (!e) hold_until_flush(c);
        else c->held.len = mark;
    } else {
        /* It closes after this (a shutdown must follow the bytes): head and body in one
         * write now; the body is copied only if the kernel does not take it. */
        hl_buf b;
        hl_buf_init(&b, 0);
        e = write_head(c, &b, status, headers, content_type, (long long)len);
        if (!e) {
            uv_buf_t v[2] = {uv_buf_init(b.data, (unsigned)b.len), uv_buf_init((char *)body, (unsigned)len)};
            e = conn_writev(c, v, 2);
        }
        hl_buf_release(&b);
    }
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
    /* The head waits for the first chunk (one write, one segment for the client to wake
     * up to), at most until the end of this loop turn. */
    size_t mark = c->held.len; /* after a pipelined response still held, if any */
    hl_err e = write_head(c, &c->held, status, headers, content_type, -1);
    if (e) {
        c->held.len = mark;
        return e;
    }
    c->chunk_sent = false;
    hold_until_flush(c);
    return HL_OK;
}

hl_err hl_conn_stream_write(hl_conn *c, const char *data, size_t len) {
    if (c->state == CONN_CLOSING) return HL_ERR_IO;
    if (!len) return HL_OK;
    /* Frame and payload in one write so that one segment carries the chunk. */
    char frame[24];
    int n = c->chunked_out ? snprintf(frame, sizeof frame, "%zx\r\n", len) : 0;
    uv_buf_t v[3];
    unsigned nv = 0;
    if (n) v[nv++] = uv_buf_init(frame, (unsigned)n);
    v[nv++] = uv_buf_init((char *)data, (unsigned)len);
    if (c->chunked_out) v[nv++] = uv_buf_init((char *)"\r\n", 2);
    if (!c->chunk_sent) { /* the first at once, with the head */
        c->chunk_sent = true;
        return conn_writev(c, v, nv);
    }
    /* Later ones wait for the end of this loop turn, or of the stream, and go out together. */
    for (unsigned i = 0; i < nv; i++) HL_TRY(hl_buf_append(&c->held, v[i].base, v[i].len));
    if (c->held.len >= HOLD_MAX) return conn_writev(c, NULL, 0);
    hold_until_flush(c);
    return HL_OK;
}

void hl_conn_stream_end(hl_conn *c) {
    if (c->state == CONN_CLOSING) return;
    if (c->held.len && !c->chunked_out && conn_writev(c, NULL, 0) != HL_OK) {
        conn_close(c);
        return;
    }
    if (c->chunked_out && conn_write(c, "0\r\n\r\n", 5) != HL_OK) {
        conn_close(c);
        return;
    }
    request_done(c);
}

bool hl_conn_congested(const hl_conn *c) { return c->pending + c->held.len > HIGH_WATERMARK; }

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

hl_err hl_conn_peer(hl_conn *c, struct sockaddr_storage *out) {
    int len = (int)sizeof *out;
    memset(out, 0, sizeof *out);
    return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)out, &len) == 0 ? HL_OK : HL_ERR_IO;
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

static void listener_closed(uv_handle_t *h) {
    hl_worker *w = h->data;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
}

static void on_wake(uv_async_t *a) {
    hl_worker *w = a->data;
    if (!w->draining) {
        w->draining = true;
        uv_timer_stop(&w->accept_timer);
        if (!uv_is_closing((uv_handle_t *)&w->listener))
            uv_close((uv_handle_t *)&w->listener, listener_closed);
        for (hl_conn *c = w->conns, *next; c; c = next) {
            next = c->next;
            if (c->state == CONN_HEAD && c->in.len == 0 && c->pending == 0) conn_close(c);
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

/* The connection cap: the configured one, or what the descriptor limit leaves once the
 * process's own descriptors are set aside, halved (each client connection with a request in
 * flight may hold an upstream socket too). The soft limit is raised to the hard one first. */
static int connection_cap(const hl_config *cfg, int n_workers) {
    struct rlimit rl;
    long long limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max && rl.rlim_max != RLIM_INFINITY) {
            struct rlimit raised = {rl.rlim_max, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = rl.rlim_max;
        }
        limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 24) ? (1 << 24)
                                                                        : (long long)rl.rlim_cur;
    }
    long long room = limit - FD_RESERVE - (long long)FD_RESERVE_PER_WORKER * n_workers;
    if (cfg->max_connections > 0) {
        if (cfg->max_connections > room)
            hl_log(HL_LOG_WARN, "server.max_connections %d is more than the file-descriptor limit "
                   "(%lld) leaves for clients; when descriptors run out, accepts pause and idle "
                   "connections are closed", cfg->max_connections, limit);
        return cfg->max_connections;
    }
    long long cap = room / 2;
    return cap < 8 ? 8 : (int)cap;
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
    s->max_conns = connection_cap(cfg, s->n_workers);
    static const char refusal_body[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"The gateway "
        "is at its connection limit (server.max_connections); retry shortly.\",\"param\":null,"
        "\"code\":\"too_many_connections\"}}";
    int rn = snprintf(s->refusal, sizeof s->refusal,
                      "HTTP/1.1 503 Service Unavailable\r\nServer: hybridllm\r\nContent-Type: "
                      "application/json\r\nContent-Length: %zu\r\nRetry-After: 1\r\nConnection: "
                      "close\r\n\r\n%s", sizeof refusal_body - 1, refusal_body);
    s->refusal_len = rn > 0 && (size_t)rn < sizeof s->refusal ? (size_t)rn : 0;
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
        uv_async_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_timer_init(&w->loop, &w->drain_timer);
        w->drain_timer.data = w;
        uv_check_init(&w->loop, &w->flush);
        uv_unref((uv_handle_t *)&w->flush);
        w->flush.data = w;
        uv_prepare_init(&w->loop, &w->flush_early);
        uv_unref((uv_handle_t *)&w->flush_early);
        w->flush_early.data = w;
        uv_timer_init(&w->loop, &w->accept_timer);
        w->accept_timer.data = w;
        int rc = uv_poll_init_socket(&w->loop, &w->listener, w->fd);
        w->listener.data = w;
        if (rc == 0) rc = uv_poll_start(&w->listener, UV_READABLE, on_listen);
        if (rc != 0) {
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
        if (w->fd >= 0) close(w->fd);
    }
    free(s->workers);
    free(s);
}

int hl_server_port(const hl_server *s) { return s->port; }
int hl_server_max_connections(const hl_server *s) { return s->max_conns; }
unsigned long hl_server_refused(const hl_server *s) { return atomic_load(&s->refused); }
int hl_server_workers(const hl_server *s) { return s->n_workers; }
