/* hl_server: the HTTP/1.1 front end: event loops, listeners, connections.
 *
 * One worker thread per core runs its own libuv loop with its own listening socket on the
 * same address (SO_REUSEPORT: the kernel spreads connections), so the binary scales with
 * the machine without locks on the request path. Each connection is a small state machine:
 * reading a head, reading a body, busy (a request is being handled), closing. Requests are
 * parsed incrementally (hl_http) under the configured size limits and timeouts; keep-alive
 * and pipelining are supported; "Expect: 100-continue" is answered.
 *
 * What a request means is not this module's business: it hands each complete request to the
 * hooks (the gateway) and offers two ways to answer: a whole response, or a stream written
 * piece by piece with chunked transfer encoding (close-delimited for HTTP/1.0 clients).
 *
 * Shutdown (SIGTERM/SIGINT, or hl_server_stop()): listeners close at once, idle connections
 * are closed, requests in flight finish and their connections close after the response; after
 * shutdown_timeout_ms whatever is left is aborted (the hooks' on_abort records it).
 *
 * Hostile or careless clients: at most server.max_connections connections are open (default:
 * half of what the file-descriptor limit leaves after a reserve for the process's own files;
 * the soft limit is raised to the hard one at start); past it a new connection gets a canned
 * 503 with Retry-After and is closed, unparsed. When descriptors run out anyway (EMFILE,
 * ENFILE), a loop closes its oldest idle connection to make room, or stops accepting for a
 * moment; it never spins. A client that takes no response bytes for server.write_timeout_ms
 * is disconnected in any state, and the response bytes a connection holds are bounded (a
 * stream's producer pauses, see hl_conn_congested; pipelined requests wait). */
#ifndef HL_SERVER_H
#define HL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "hl_config.h"
#include "hl_err.h"
#include "hl_http.h"

typedef struct hl_server hl_server;
typedef struct hl_worker hl_worker;
typedef struct hl_conn hl_conn;

typedef struct hl_server_hooks {
    /* Per worker state: called on the worker's thread before it serves, and after it stops. */
    void *(*worker_start)(hl_worker *w, void *ud);
    void (*worker_stop)(void *worker_data);
    /* A complete request. req and body are borrowed for the duration of the call only. The
     * handler answers now or later with hl_conn_respond() or a stream, exactly once. */
    void (*on_request)(hl_conn *c, const hl_http_req *req, const char *body, size_t body_len);
    /* The request in progress on c can no longer be answered (client gone, shutdown timeout):
     * release its state now; c must not be used after this returns. */
    void (*on_abort)(hl_conn *c);
    /* Queued response bytes on c fell below the low watermark (see hl_conn_congested). */
    void (*on_drain)(hl_conn *c);
    /* A request the parser refused (status 400, 408, 413, 414, 431, 501, 505). path is the
     * request path when the head was readable, else NULL. Write extra header lines (each
     * ending in "\r\n", e.g. x-request-id) into headers and the JSON error body into body. */
    void (*render_error)(hl_worker *w, int status, const char *path, const char *message,
                         char *headers, size_t headers_len, char *body, size_t body_len);
    /* Called on the worker's thread, after hl_worker_before_send, before the next byte goes
     * to any of its clients, and at the end of the loop turn at the latest (the gateway
     * writes its ledger lines there). NULL: none. */
    void (*before_send)(void *worker_data);
    void *ud;
} hl_server_hooks;

/* Binds cfg's listen address (one socket per worker) and prepares the workers. The config
 * and hooks must outlive the server. HL_ERR_IO with a message in errbuf if binding fails. */
hl_err hl_server_init(hl_server **out, const hl_config *cfg, const hl_server_hooks *hooks,
                      char *errbuf, size_t errbuf_len);
/* Runs the workers and blocks until they all stopped after a signal or hl_server_stop().
 * Returns 0 after a clean shutdown. */
int hl_server_run(hl_server *s);
/* Asks every worker to stop (thread-safe). */
void hl_server_stop(hl_server *s);
void hl_server_free(hl_server *s);
/* The port actually bound (useful with port 0). */
int hl_server_port(const hl_server *s);
int hl_server_workers(const hl_server *s);
/* The connection cap in force, and how many connections it refused so far. */
int hl_server_max_connections(const hl_server *s);
unsigned long hl_server_refused(const hl_server *s);

uv_loop_t *hl_worker_loop(hl_worker *w);
void *hl_worker_data(hl_worker *w);
int hl_worker_index(const hl_worker *w);
/* Asks for hooks.before_send before w sends its next byte to a client, and by the end of
 * this loop turn at the latest. On w's thread. */
void hl_worker_before_send(hl_worker *w);

hl_worker *hl_conn_worker(hl_conn *c);
void hl_conn_set_data(hl_conn *c, void *data);
void *hl_conn_data(hl_conn *c);
/* The peer's address into *out. HL_ERR_IO when the socket has none (it closed). */
hl_err hl_conn_peer(hl_conn *c, struct sockaddr_storage *out);

/* Sends a whole response and ends the request. headers: extra header lines, each ending in
 * "\r\n", or NULL. The body is copied. On a connection that stays open the bytes go out at
 * the end of this loop turn, with the other responses of the turn. */
hl_err hl_conn_respond(hl_conn *c, int status, const char *headers, const char *content_type,
                       const char *body, size_t len);
/* Starts a streamed response (head sent now). */
hl_err hl_conn_stream_begin(hl_conn *c, int status, const char *headers, const char *content_type);
/* Sends a piece of a streamed response (copied when it cannot be written at once). */
hl_err hl_conn_stream_write(hl_conn *c, const char *data, size_t len);
/* Ends a streamed response and the request. */
void hl_conn_stream_end(hl_conn *c);
/* True when more than the high watermark of response bytes waits for the client: the
 * producer should pause until on_drain. */
bool hl_conn_congested(const hl_conn *c);

#endif
