/* hl_upstream_http: the built-in HTTP/1.1 client for plain http:// upstreams.
 *
 * Local model servers (vLLM, llama.cpp server, Ollama) sit on loopback or the LAN, where the
 * cost of the hop is CPU, not the network. libcurl spends that CPU on generality: poll()
 * liveness checks on every reused connection, per-transfer setup and teardown, a handle per
 * call. This client does only what such an upstream needs: HTTP/1.1 over TCP, keep-alive,
 * Content-Length requests, identity bodies.
 *
 * The pieces (one set per hl_upstream, so per event loop; nothing is shared across threads):
 *  - up_host: one per host:port. Its addresses (an IP literal is parsed once; a name is
 *    resolved with uv_getaddrinfo and kept ADDR_TTL_MS) and its pool of idle keep-alive
 *    connections, most recently used first: reuse is LIFO, so a light load keeps few
 *    connections warm and the rest age out (IDLE_TIMEOUT_MS, one sweep timer) or are closed
 *    by the server. At most IDLE_MAX connections per host wait in the pool.
 *  - up_conn: a uv_tcp_t and its read buffer. Owned by the pool while idle, by one call while
 *    in use; memory released in the handle's close callback.
 *  - http_call: one allocation, holding the request head; it owns the caller's header list
 *    and body. Memory released in the close callback of its timer.
 *
 * A call: [resolve] -> take a pooled connection, or connect (addresses in turn) -> one write
 * (head and body through writev, no copy) -> read the head -> read the body -> on_done. The
 * connection goes back to the pool only when the response was complete and exactly framed,
 * the request was fully written and the server did not ask to close it.
 *
 * Idle connections keep reading: EOF (the server closed it) or any byte (a server must not
 * send one) closes them, so a connection taken from the pool needs no liveness check. The
 * race that remains, the server closing just as we send, shows as EOF or a reset before any
 * response byte on a reused connection: the request was never processed, so it is sent once
 * more, on a fresh connection. A fresh connection gets no such retry.
 *
 * Callbacks. on_done never runs inside hl_upstream_start() or hl_upstream_resume(), nor
 * while the waiters of a name resolution are dispatched: there the end is deferred to the
 * call's timer (0 ms; defer_done). A handler may cancel its own call from on_status,
 * on_header or on_data: the teardown is immediate, but the memory of the call and of its
 * connection lasts until their handles' close callbacks, later in the loop iteration, so the
 * code that ran the handler can still read c->cancelled and back out without touching more.
 *
 * Backpressure. on_data returning HL_UPSTREAM_PAUSE stops reading (uv_read_stop). on_data
 * is handed all the body a read brought, so nothing is left unread in the connection's buffer
 * at a pause: the rest waits in the socket, and TCP flow control slows the server down.
 * hl_upstream_resume() delivers whatever the buffer holds (nothing, today; the code does not
 * rely on it), then reads again. The buffer never overflows: it is refilled only while
 * reading, and emptied by every pass over it unless the head is incomplete.
 *
 * The bytes on the wire (request head, response parser) are hl_upstream_wire.c's. */
#include "hl_upstream_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define CONNECT_TIMEOUT_DEFAULT_MS 300000 /* curl's, when the caller gives none */
#define IDLE_TIMEOUT_MS 30000
#define IDLE_MAX 256                      /* idle connections per host (per event loop) */
#define ADDR_TTL_MS 60000                 /* curl's DNS cache lifetime */
#define MAX_ADDRS 8
#define RBUF_SIZE (16 * 1024)             /* grows to HL__UPSTREAM_HEAD_MAX for a huge head */
#define REQ_HEAD_MAX (64 * 1024)

/* ------------------------------------------------------------------ state */

typedef struct up_host up_host;
typedef struct up_conn up_conn;
typedef struct http_call http_call;

typedef union up_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} up_addr;

struct hl__upstream_http {
    up_host *hosts; /* owned, singly linked; freed with the hl_upstream */
    uv_timer_t sweep; /* closes pooled connections idle for IDLE_TIMEOUT_MS */
};

struct up_host {
    up_host *next;
    hl_upstream *u;
    uint16_t port;
    char name[HL__UPSTREAM_HOST_MAX + 1];   /* as in the URL, IPv6 brackets removed */
    char label[HL__UPSTREAM_HOST_MAX + 10]; /* "name:port", for messages */
    char service[8];                        /* the port, for getaddrinfo */
    up_addr addrs[MAX_ADDRS];
    int n_addrs;
    int preferred;                          /* the address that connected last */
    bool literal;                           /* name is an IP address: addrs never expire */
    uint64_t addrs_until;                   /* uv_now() past which a name is resolved again */
    bool resolving;
    uv_getaddrinfo_t gai;                   /* while resolving; holds a reference to the hl_upstream */
    http_call *waiting;                     /* calls waiting for the resolution, linked by wait_next */
    up_conn *idle, *idle_tail;              /* the pool: most recently used first */
    unsigned n_idle;
};

struct up_conn {
    uv_tcp_t tcp; /* tcp.data = this */
    uv_connect_t connect_req;
    uv_write_t write_req;
    hl_upstream *u;
    up_host *host;
    http_call *call;       /* using it; NULL while idle or closing */
    up_conn *prev, *next;  /* in the host's pool while idle */
    char *rbuf;            /* owned; unread bytes at rbuf[rpos..rlen) */
    size_t rcap, rpos, rlen;
    uint64_t idle_since;
    int addr;              /* index into host->addrs */
    bool idle, writing, reading, closing;
};

enum { ST_RESOLVE, ST_CONNECT, ST_HEAD, ST_BODY, ST_DONE };

struct http_call {
    hl_upstream_call base; /* first: the dispatcher's view */
    up_host *host;
    up_conn *conn;
    http_call *wait_next;
    uv_timer_t timer;      /* deadlines, then the deferred on_done; memory freed when it closes */
    char *body;            /* owned */
    size_t body_len;
    long timeout_ms, connect_timeout_ms;
    uint64_t t0;           /* uv_now() at the start */
    uint64_t phase_t0;     /* uv_now() when the current connection attempt began */
    int state;             /* ST_* */
    int addr_tries;        /* addresses tried in this connection attempt */
    size_t scan;           /* hl__upstream_parse_head() */
    hl__upstream_body dec;
    uint64_t body_bytes;   /* delivered to on_data */
    bool keep_alive;       /* the response allows reuse */
    bool got_bytes;        /* a response byte arrived on the current connection */
    bool reused;           /* the current connection came from the pool */
    bool retried;          /* the stale-connection retry was used */
    bool paused;           /* on_data asked for a pause; not reading */
    bool in_cb;            /* inside on_status/on_header/on_data: resume must not recurse */
    bool cancelled;        /* hl_upstream_cancel() ran, maybe from inside a handler */
    bool defer_done;       /* on_done must not run now: call_end() defers it to the timer */
    hl_err done_err;       /* for the deferred on_done */
    char errmsg[200];
    size_t head_len;
    char head[];           /* the request head */
};

static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------------ connections */

static void conn_closed(uv_handle_t *h) {
    up_conn *k = h->data;
    hl_upstream *u = k->u;
    free(k->rbuf);
    free(k);
    hl__upstream_unref(u);
}

static void pool_remove(up_conn *k) {
    up_host *h = k->host;
    if (k->prev) k->prev->next = k->next;
    else h->idle = k->next;
    if (k->next) k->next->prev = k->prev;
    else h->idle_tail = k->prev;
    k->prev = k->next = NULL;
    k->idle = false;
    h->n_idle--;
}

/* Closes k, whatever it was doing: nothing reaches its call any more. */
static void conn_close(up_conn *k) {
    if (k->closing) return;
    if (k->idle) pool_remove(k);
    k->closing = true;
    k->call = NULL;
    uv_close((uv_handle_t *)&k->tcp, conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    up_conn *k = h->data;
    buf->base = k->rbuf + k->rlen;
    buf->len = k->rcap - k->rlen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(up_conn *k) {
    if (k->reading) return;
    k->reading = true;
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
}

static void conn_read_stop(up_conn *k) {
    if (!k->reading) return;
    k->reading = false;
    uv_read_stop((uv_stream_t *)&k->tcp);
}

static void on_sweep(uv_timer_t *t);

static void pool_put(up_conn *k) {
    up_host *h = k->host;
    hl_upstream *u = k->u;
    if (h->n_idle >= IDLE_MAX) {
        conn_close(k);
        return;
    }
    k->call = NULL;
    k->rpos = k->rlen = 0;
    if (k->rcap > RBUF_SIZE) { /* grown for a huge head: give it back */
        char *small = realloc(k->rbuf, RBUF_SIZE);
        if (small) {
            k->rbuf = small;
            k->rcap = RBUF_SIZE;
        }
    }
    k->idle = true;
    k->idle_since = uv_now(u->loop);
    k->prev = NULL;
    k->next = h->idle;
    if (h->idle) h->idle->prev = k;
    else h->idle_tail = k;
    h->idle = k;
    h->n_idle++;
    uv_unref((uv_handle_t *)&k->tcp); /* an idle pool does not keep the loop running */
    conn_read_start(k);
    if (!uv_is_active((uv_handle_t *)&u->http->sweep))
        uv_timer_start(&u->http->sweep, on_sweep, IDLE_TIMEOUT_MS, 0);
}

static up_conn *pool_take(up_host *h) {
    uint64_t now = uv_now(h->u->loop);
    while (h->idle) {
        up_conn *k = h->idle;
        pool_remove(k);
        if (now - k->idle_since >= IDLE_TIMEOUT_MS) {
            conn_close(k); /* the newest is stale: so are the others, the sweep will see */
            continue;
        }
        uv_ref((uv_handle_t *)&k->tcp);
        return k;
    }
    return NULL;
}

static void on_sweep(uv_timer_t *t) {
    hl_upstream *u = t->data;
    uint64_t now = uv_now(u->loop), next = UINT64_MAX;
    for (up_host *h = u->http->hosts; h; h = h->next) {
        while (h->idle_tail && now - h->idle_tail->idle_since >= IDLE_TIMEOUT_MS) conn_close(h->idle_tail);
        if (h->idle_tail && h->idle_tail->idle_since + IDLE_TIMEOUT_MS < next)
            next = h->idle_tail->idle_since + IDLE_TIMEOUT_MS;
    }
    if (next != UINT64_MAX) uv_timer_start(t, on_sweep, next - now, 0);
}

static up_conn *conn_new(hl_upstream *u, up_host *h) {
    up_conn *k = calloc(1, sizeof *k);
    char *rbuf = k ? malloc(RBUF_SIZE) : NULL;
    if (!rbuf) {
        free(k);
        return NULL;
    }
    k->u = u;
    k->host = h;
    k->rbuf = rbuf;
    k->rcap = RBUF_SIZE;
    uv_tcp_init(u->loop, &k->tcp);
    k->tcp.data = k;
    k->connect_req.data = k;
    k->write_req.data = k;
    hl__upstream_ref(u); /* until conn_closed() */
    return k;
}

/* ------------------------------------------------------------------ ending a call */

static void call_closed(uv_handle_t *h) { free(h->data); }

/* Releases what the call owns and unlinks it; the memory goes when its timer has closed. */
static void call_free(http_call *c) {
    hl__upstream_unlink(&c->base);
    free(c->body);
    explicit_bzero(c->head, c->head_len); /* it may hold an API key */
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

static void host_unwait(http_call *c) {
    if (c->state != ST_RESOLVE) return;
    for (http_call **pp = &c->host->waiting; *pp; pp = &(*pp)->wait_next) {
        if (*pp == c) {
            *pp = c->wait_next;
            break;
        }
    }
    c->wait_next = NULL;
}

/* Detaches the call's connection: back to the pool, or closed (its state is unknown). */
static void call_drop_conn(http_call *c, bool reuse) {
    up_conn *k = c->conn;
    if (!k) return;
    c->conn = NULL;
    k->call = NULL;
    if (reuse && !c->base.u->closing) pool_put(k);
    else conn_close(k);
}

static void finish(http_call *c, hl_err err, const char *msg) {
    char copy[sizeof c->errmsg];
    copy_str(copy, sizeof copy, msg);
    hl_upstream_handlers h = c->base.h;
    void *ud = c->base.ud;
    call_free(c);
    h.on_done(ud, err, copy);
}

static void on_deferred_done(uv_timer_t *t) {
    http_call *c = t->data;
    finish(c, c->done_err, c->errmsg);
}

/* Ends the call: the connection goes back to the pool (reuse) or is closed, then on_done runs,
 * now or from the timer (defer_done). Returns false, for callers that report "call over". */
static bool call_end(http_call *c, hl_err err, const char *msg, bool reuse) {
    call_drop_conn(c, reuse);
    host_unwait(c);
    c->state = ST_DONE;
    if (c->defer_done) {
        c->done_err = err;
        if (msg != c->errmsg) copy_str(c->errmsg, sizeof c->errmsg, msg);
        uv_timer_start(&c->timer, on_deferred_done, 0, 0);
        return false;
    }
    finish(c, err, msg);
    return false;
}

static bool call_fail(http_call *c, hl_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool call_fail(http_call *c, hl_err err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return call_end(c, err, c->errmsg, false);
}

/* ------------------------------------------------------------------ timers */

static void on_timeout(uv_timer_t *t);

/* Arms the call's timer: the whole-call deadline, and while connecting the connect deadline. */
static void call_arm(http_call *c) {
    uint64_t now = uv_now(c->base.u->loop), due = UINT64_MAX;
    if (c->timeout_ms > 0) due = c->t0 + (uint64_t)c->timeout_ms;
    if (c->state <= ST_CONNECT && c->phase_t0 + (uint64_t)c->connect_timeout_ms < due)
        due = c->phase_t0 + (uint64_t)c->connect_timeout_ms;
    if (due == UINT64_MAX) uv_timer_stop(&c->timer);
    else uv_timer_start(&c->timer, on_timeout, due > now ? due - now : 0, 0);
}

static void on_timeout(uv_timer_t *t) {
    http_call *c = t->data;
    uint64_t now = uv_now(c->base.u->loop);
    bool connect_expired = c->state <= ST_CONNECT && now - c->phase_t0 >= (uint64_t)c->connect_timeout_ms;
    bool call_expired = c->timeout_ms > 0 && now - c->t0 >= (uint64_t)c->timeout_ms;
    if (!connect_expired && !call_expired) {
        call_arm(c);
        return;
    }
    if (c->state <= ST_CONNECT)
        call_fail(c, HL_ERR_TIMEOUT, "%s %s timed out after %ld ms", c->state == ST_RESOLVE ? "resolving" : "connecting to",
                  c->host->label, connect_expired ? c->connect_timeout_ms : c->timeout_ms);
    else if (c->state == ST_BODY)
        call_fail(c, HL_ERR_TIMEOUT, "timed out after %ld ms receiving the response body from %s (%llu bytes received)",
                  c->timeout_ms, c->host->label, (unsigned long long)c->body_bytes);
    else
        call_fail(c, HL_ERR_TIMEOUT, "timed out after %ld ms waiting for the response from %s", c->timeout_ms,
                  c->host->label);
}

/* ------------------------------------------------------------------ the request */

static void on_written(uv_write_t *req, int status);
static bool call_open(http_call *c, bool fresh);

/* The connection died before any response byte (EOF, reset, failed write). On a pooled
 * connection that is the stale keep-alive race: the server never saw the request, send it
 * once more on a fresh connection. */
static bool call_conn_lost(http_call *c, int err) {
    if (c->reused && !c->retried) {
        c->retried = true;
        call_drop_conn(c, false);
        return call_open(c, true);
    }
    if (err == UV_EOF)
        return call_fail(c, HL_ERR_UPSTREAM, "upstream %s closed the connection before responding", c->host->label);
    return call_fail(c, HL_ERR_UPSTREAM, "connection to %s lost before the response: %s", c->host->label,
                     uv_strerror(err));
}

/* Sends the request: head and body in one sendmsg(), straight to the socket, which takes the
 * whole of a request this size unless the server is not reading. Only a remainder goes
 * through uv_write(): a completed uv_write() costs an epoll_ctl() on the next loop turn and
 * a callback, per request. MSG_NOSIGNAL: a server that reset the connection must not raise
 * SIGPIPE in a process that did not ignore it. */
static bool call_send(http_call *c) {
    up_conn *k = c->conn;
    c->state = ST_HEAD;
    c->scan = 0;
    c->got_bytes = false;
    k->rpos = k->rlen = 0;
    struct iovec iov[2] = {{c->head, c->head_len}, {c->body, c->body_len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = c->body_len ? 2 : 1};
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&k->tcp, &fd) != 0) return call_conn_lost(c, UV_EBADF);
    ssize_t n;
    do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return call_conn_lost(c, uv_translate_sys_error(errno));
    size_t sent = n < 0 ? 0 : (size_t)n;
    if (sent == c->head_len + c->body_len) return true;
    uv_buf_t bufs[2];
    unsigned nbufs = 0;
    if (sent < c->head_len) {
        bufs[nbufs++] = uv_buf_init(c->head + sent, (unsigned)(c->head_len - sent));
        sent = 0;
    } else {
        sent -= c->head_len;
    }
    if (sent < c->body_len) bufs[nbufs++] = uv_buf_init(c->body + sent, (unsigned)(c->body_len - sent));
    k->writing = true;
    int r = uv_write(&k->write_req, (uv_stream_t *)&k->tcp, bufs, nbufs, on_written);
    if (r < 0) {
        k->writing = false;
        return call_conn_lost(c, r);
    }
    return true;
}

static void on_written(uv_write_t *req, int status) {
    up_conn *k = req->data;
    k->writing = false;
    http_call *c = k->call;
    if (status == 0 || !c || k->closing) return;
    if (c->state == ST_HEAD && !c->got_bytes) {
        call_conn_lost(c, status);
        return;
    }
    /* The server answered before taking the whole request (an early error): read the answer,
     * then close. */
    c->keep_alive = false;
}

/* ------------------------------------------------------------------ connecting */

static void on_connect(uv_connect_t *req, int status);

static bool connect_failed(http_call *c, int err) {
    up_host *h = c->host;
    if (!h->literal) h->addrs_until = 0; /* resolve again next time: the service may have moved */
    if (err == UV_ECONNREFUSED)
        return call_fail(c, HL_ERR_UPSTREAM, "connection refused to %s", h->label);
    return call_fail(c, HL_ERR_UPSTREAM, "could not connect to %s: %s", h->label, uv_strerror(err));
}

/* Connects to the host's addresses in turn, from the preferred one. */
static bool call_dial(http_call *c) {
    up_host *h = c->host;
    int err = UV_EAI_NONAME;
    while (c->addr_tries < h->n_addrs) {
        int idx = (h->preferred + c->addr_tries) % h->n_addrs;
        c->addr_tries++;
        up_conn *k = conn_new(c->base.u, h);
        if (!k) return call_fail(c, HL_ERR_UPSTREAM, "out of memory connecting to %s", h->label);
        k->addr = idx;
        err = uv_tcp_connect(&k->connect_req, &k->tcp, &h->addrs[idx].sa, on_connect);
        if (err == 0) {
            k->call = c;
            c->conn = k;
            c->state = ST_CONNECT;
            return true;
        }
        conn_close(k);
    }
    return connect_failed(c, err);
}

static void on_connect(uv_connect_t *req, int status) {
    up_conn *k = req->data;
    http_call *c = k->call;
    if (!c || k->closing) return; /* cancelled */
    if (status < 0) {
        call_drop_conn(c, false);
        if (c->addr_tries < c->host->n_addrs) call_dial(c);
        else connect_failed(c, status);
        return;
    }
    c->host->preferred = k->addr;
    uv_tcp_nodelay(&k->tcp, 1);
    conn_read_start(k);
    c->state = ST_HEAD;
    call_arm(c); /* the connect deadline no longer applies */
    call_send(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    up_host *h = req->data;
    hl_upstream *u = h->u;
    h->resolving = false;
    if (u->closing) {
        uv_freeaddrinfo(res);
        hl__upstream_unref(u); /* may free h */
        return;
    }
    h->n_addrs = 0;
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai && h->n_addrs < MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in))
            memcpy(&h->addrs[h->n_addrs++].in, ai->ai_addr, sizeof(struct sockaddr_in));
        else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6))
            memcpy(&h->addrs[h->n_addrs++].in6, ai->ai_addr, sizeof(struct sockaddr_in6));
    }
    uv_freeaddrinfo(res);
    h->preferred = 0;
    h->addrs_until = h->n_addrs ? uv_now(u->loop) + ADDR_TTL_MS : 0;
    /* No callback runs while the waiters are dispatched (defer_done): a handler could
     * otherwise cancel a waiter or start a call that joins the list. */
    while (h->waiting) {
        http_call *c = h->waiting;
        h->waiting = c->wait_next;
        c->wait_next = NULL;
        c->defer_done = true;
        c->state = ST_CONNECT; /* off the list */
        bool alive;
        if (!h->n_addrs)
            alive = call_fail(c, HL_ERR_UPSTREAM, "could not resolve host %s: %s", h->name,
                              uv_strerror(status ? status : UV_EAI_NONAME));
        else
            alive = call_dial(c);
        if (alive) c->defer_done = false;
    }
    hl__upstream_unref(u);
}

/* Gets the call a connection: from the pool (unless fresh), or a new one, resolving the name
 * first when needed. Returns false when the call ended. */
static bool call_open(http_call *c, bool fresh) {
    up_host *h = c->host;
    hl_upstream *u = c->base.u;
    up_conn *k = fresh ? NULL : pool_take(h);
    if (k) {
        k->call = c;
        c->conn = k;
        c->reused = true;
        c->state = ST_HEAD;
        call_arm(c);
        return call_send(c);
    }
    c->reused = false;
    c->addr_tries = 0;
    c->phase_t0 = uv_now(u->loop);
    c->state = ST_CONNECT;
    if (h->literal || (h->n_addrs && uv_now(u->loop) < h->addrs_until)) {
        call_arm(c);
        return call_dial(c);
    }
    c->state = ST_RESOLVE;
    c->wait_next = h->waiting;
    h->waiting = c;
    call_arm(c);
    if (h->resolving) return true;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP; /* no AI_ADDRCONFIG: on a box with only loopback it hides localhost */
    h->gai.data = h;
    int r = uv_getaddrinfo(u->loop, &h->gai, on_resolved, h->name, h->service, &hints);
    if (r < 0) return call_fail(c, HL_ERR_UPSTREAM, "could not resolve host %s: %s", h->name, uv_strerror(r));
    h->resolving = true;
    hl__upstream_ref(u); /* until on_resolved() */
    return true;
}

/* ------------------------------------------------------------------ the response */

static bool call_complete(http_call *c) {
    up_conn *k = c->conn;
    bool reuse = c->keep_alive && !k->writing && k->rpos == k->rlen;
    return call_end(c, HL_OK, "", reuse);
}

/* Makes room for more of a head: moves it to the front of the buffer, grows the buffer. */
static bool conn_make_room(http_call *c) {
    up_conn *k = c->conn;
    if (k->rpos) {
        memmove(k->rbuf, k->rbuf + k->rpos, k->rlen - k->rpos);
        k->rlen -= k->rpos;
        k->rpos = 0;
    }
    if (k->rlen < k->rcap) return true;
    size_t cap = k->rcap * 2 > HL__UPSTREAM_HEAD_MAX ? HL__UPSTREAM_HEAD_MAX : k->rcap * 2;
    char *p = cap > k->rcap ? realloc(k->rbuf, cap) : NULL;
    if (!p) return call_fail(c, HL_ERR_UPSTREAM, "out of memory reading the response headers of %s", c->host->label);
    k->rbuf = p;
    k->rcap = cap;
    return true;
}

/* A head arrived at p[0..len). Returns false when the call ended. */
static bool call_head(http_call *c, char *p, size_t hlen, const hl__upstream_head *hd) {
    if (c->base.h.on_header) {
        size_t pos = 0;
        hl_slice name, value;
        while (hl__upstream_next_header(p, hlen, &pos, &name, &value)) {
            c->in_cb = true;
            c->base.h.on_header(c->base.ud, name.p, name.n, value.p, value.n);
            c->in_cb = false;
            if (c->cancelled) return false;
        }
    }
    /* The byte after the value is OWS, CR or LF, no longer needed: terminate it in place. */
    const char *ct = "";
    if (hd->content_type.n) {
        ((char *)hd->content_type.p)[hd->content_type.n] = '\0';
        ct = hd->content_type.p;
    }
    c->keep_alive = hd->keep_alive && c->keep_alive;
    hl__upstream_body_init(&c->dec, hd);
    c->state = ST_BODY;
    c->in_cb = true;
    c->base.h.on_status(c->base.ud, hd->status, ct);
    c->in_cb = false;
    if (c->cancelled) return false;
    if (c->dec.mode == HL__UPSTREAM_BODY_NONE) return call_complete(c);
    return true;
}

/* Works through the unread bytes of the call's connection. Returns false when the call ended
 * (or was cancelled): the caller must not touch it then. */
static bool call_process(http_call *c) {
    up_conn *k = c->conn;
    while (!c->paused) {
        char *p = k->rbuf + k->rpos;
        size_t avail = k->rlen - k->rpos;
        if (!avail) break;
        if (c->state == ST_HEAD) {
            hl__upstream_head hd;
            size_t hlen;
            const char *why = "";
            hl_err e = hl__upstream_parse_head(p, avail, &c->scan, &hd, &hlen, &why);
            if (e == HL_ERR_AGAIN) return conn_make_room(c);
            if (e != HL_OK) return call_fail(c, HL_ERR_UPSTREAM, "%s (from %s)", why, c->host->label);
            if (hd.status == 101)
                return call_fail(c, HL_ERR_UPSTREAM, "unexpected 101 Switching Protocols from %s", c->host->label);
            k->rpos += hlen;
            if (hd.status < 200) continue; /* 100 Continue, 103 Early Hints: the real one follows */
            if (!call_head(c, p, hlen, &hd)) return false;
            continue;
        }
        size_t used, n;
        const char *why = "";
        hl_err e = hl__upstream_body_feed(&c->dec, p, avail, &used, &n, &why);
        k->rpos += used;
        if (e != HL_OK && e != HL_ERR_AGAIN) return call_fail(c, HL_ERR_UPSTREAM, "%s (from %s)", why, c->host->label);
        if (n) {
            c->body_bytes += n;
            c->in_cb = true;
            int r = c->base.h.on_data(c->base.ud, p, n);
            c->in_cb = false;
            if (c->cancelled) return false;
            if (r == HL_UPSTREAM_ABORT) return call_end(c, HL_ERR_CANCELLED, "aborted by the gateway", false);
            if (r == HL_UPSTREAM_PAUSE && e != HL_OK) {
                c->paused = true;
                conn_read_stop(k);
            }
        }
        if (e == HL_OK) return call_complete(c);
    }
    if (k->rpos == k->rlen) k->rpos = k->rlen = 0;
    return true;
}

/* EOF or a read error on the call's connection. */
static void call_eof(http_call *c, int err) {
    if (c->state == ST_HEAD) {
        if (!c->got_bytes) {
            call_conn_lost(c, err);
        } else if (err == UV_EOF) {
            call_fail(c, HL_ERR_UPSTREAM, "upstream %s closed the connection in the middle of the response headers",
                      c->host->label);
        } else {
            call_fail(c, HL_ERR_UPSTREAM, "connection to %s failed while reading the response headers: %s",
                      c->host->label, uv_strerror(err));
        }
        return;
    }
    if (c->dec.mode == HL__UPSTREAM_BODY_CLOSE && err == UV_EOF) {
        call_end(c, HL_OK, "", false);
    } else if (err != UV_EOF) {
        call_fail(c, HL_ERR_UPSTREAM, "connection to %s failed while reading the response body: %s",
                  c->host->label, uv_strerror(err));
    } else if (c->dec.mode == HL__UPSTREAM_BODY_LENGTH) {
        call_fail(c, HL_ERR_UPSTREAM, "upstream %s closed the connection with %llu bytes of the body missing",
                  c->host->label, (unsigned long long)c->dec.remaining);
    } else {
        call_fail(c, HL_ERR_UPSTREAM, "upstream %s closed the connection in the middle of the chunked body",
                  c->host->label);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    up_conn *k = s->data;
    if (nread == 0 || k->closing) return;
    http_call *c = k->call;
    if (!c) { /* idle: the server closed it, or sent what nobody asked for */
        conn_close(k);
        return;
    }
    if (nread < 0) {
        call_eof(c, (int)nread);
        return;
    }
    k->rlen += (size_t)nread;
    c->got_bytes = true;
    call_process(c);
}

/* ------------------------------------------------------------------ hosts */

static up_host *host_get(hl_upstream *u, const hl__upstream_url *url) {
    struct hl__upstream_http *http = u->http;
    for (up_host *h = http->hosts; h; h = h->next)
        if (h->port == url->port && strlen(h->name) == url->host.n && !memcmp(h->name, url->host.p, url->host.n))
            return h;
    up_host *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->u = u;
    h->port = url->port;
    memcpy(h->name, url->host.p, url->host.n);
    bool v6 = memchr(h->name, ':', url->host.n) != NULL;
    snprintf(h->label, sizeof h->label, v6 ? "[%s]:%u" : "%s:%u", h->name, (unsigned)url->port);
    snprintf(h->service, sizeof h->service, "%u", (unsigned)url->port);
    if (uv_ip4_addr(h->name, url->port, &h->addrs[0].in) == 0 ||
        uv_ip6_addr(h->name, url->port, &h->addrs[0].in6) == 0) {
        h->literal = true;
        h->n_addrs = 1;
    }
    h->next = http->hosts;
    http->hosts = h;
    return h;
}

hl_err hl__upstream_http_init(hl_upstream *u) {
    struct hl__upstream_http *http = calloc(1, sizeof *http);
    if (!http) return HL_ERR_NOMEM;
    uv_timer_init(u->loop, &http->sweep);
    http->sweep.data = u;
    uv_unref((uv_handle_t *)&http->sweep);
    u->http = http;
    hl__upstream_ref(u); /* the sweep timer, until it closes */
    return HL_OK;
}

static void sweep_closed(uv_handle_t *h) { hl__upstream_unref(h->data); }

void hl__upstream_http_close(hl_upstream *u) {
    for (up_host *h = u->http->hosts; h; h = h->next) {
        while (h->idle) conn_close(h->idle);
        if (h->resolving) uv_cancel((uv_req_t *)&h->gai); /* on_resolved() still runs */
    }
    uv_close((uv_handle_t *)&u->http->sweep, sweep_closed);
}

void hl__upstream_http_free(struct hl__upstream_http *http) {
    if (!http) return;
    for (up_host *h = http->hosts, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    free(http);
}

/* ------------------------------------------------------------------ calls */

hl_err hl__upstream_http_start(hl_upstream *u, const hl__upstream_url *url, hl_upstream_opts *o,
                               const hl_upstream_handlers *h, void *ud, hl_upstream_call **out) {
    hl_err err = HL_OK;
    http_call *c = NULL;
    up_host *host = NULL;
    size_t head_len = hl__upstream_build_head(NULL, url, o->headers, o->headers_len, o->body, o->body_len);
    if (head_len == 0) {
        err = HL_ERR_INVAL;
        goto out;
    }
    if (head_len > REQ_HEAD_MAX || o->body_len > UINT32_MAX) { /* uv_buf_t lengths are unsigned int */
        err = HL_ERR_LIMIT;
        goto out;
    }
    host = host_get(u, url);
    c = host ? malloc(sizeof *c + head_len) : NULL;
    if (!c) {
        err = HL_ERR_NOMEM;
        goto out;
    }
    memset(c, 0, sizeof *c);
    c->head_len = hl__upstream_build_head(c->head, url, o->headers, o->headers_len, o->body, o->body_len);
    c->base.h = *h;
    c->base.ud = ud;
    c->base.builtin = true;
    c->host = host;
    explicit_bzero(o->headers, o->headers_len); /* credentials: the head has its copy */
    free(o->headers);
    c->body = o->body;
    c->body_len = o->body_len;
    o->headers = NULL;
    o->body = NULL;
    c->timeout_ms = o->timeout_ms;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : CONNECT_TIMEOUT_DEFAULT_MS;
    c->t0 = uv_now(u->loop);
    c->keep_alive = true;
    uv_timer_init(u->loop, &c->timer);
    c->timer.data = c;
    hl__upstream_link(u, &c->base);
    *out = &c->base;
    c->defer_done = true; /* no on_done from inside hl_upstream_start() */
    if (call_open(c, false)) c->defer_done = false;
    return HL_OK;
out:
    if (o->headers) explicit_bzero(o->headers, o->headers_len);
    free(o->headers);
    free(o->body);
    o->headers = NULL;
    o->body = NULL;
    return err;
}

void hl__upstream_http_resume(hl_upstream_call *base) {
    http_call *c = (http_call *)base;
    if (!c->paused) return;
    c->paused = false;
    if (c->in_cb || c->state != ST_BODY || !c->conn) return; /* the running loop goes on */
    c->defer_done = true; /* data may come now, on_done only from the loop */
    if (!call_process(c)) return;
    c->defer_done = false;
    if (!c->paused) conn_read_start(c->conn);
}

void hl__upstream_http_cancel(hl_upstream_call *base) {
    http_call *c = (http_call *)base;
    call_drop_conn(c, false);
    host_unwait(c);
    c->cancelled = true; /* for a handler cancelling its own call: see call_process() */
    call_free(c);
}
