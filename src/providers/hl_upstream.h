/* hl_upstream: HTTP calls to upstream LLM APIs, on the event loop.
 *
 * One hl_upstream per event loop holds two clients behind this one API, so thousands of
 * upstream calls share the loop with no thread per request:
 *  - plain http:// URLs (local model servers: vLLM, llama.cpp server, Ollama) go to a small
 *    built-in HTTP/1.1 client on libuv with a keep-alive connection pool per host, where the
 *    per-request cost of the hop matters most (hl_upstream_http.c);
 *  - https:// (cloud APIs: TLS, HTTP/2, proxies) goes to a libcurl multi handle driven through
 *    the multi-socket interface, whose connection cache reuses TLS connections.
 * HL_UPSTREAM_CURL=1 in the environment sends every URL to libcurl.
 * Proxies are libcurl's: https_proxy / HTTPS_PROXY, http_proxy, ALL_PROXY and NO_PROXY are read
 * from the environment per call. When an http_proxy or ALL_PROXY is set, plain http:// URLs go to
 * libcurl too (the built-in client speaks no proxy), so NO_PROXY decides exactly as for curl.
 *
 * A call streams: on_data receives the body as it arrives (after on_status), and may return
 * HL_UPSTREAM_PAUSE to stop the flow until hl_upstream_resume() (backpressure from a slow
 * client). on_done ends every call that was not cancelled; the call is freed after it returns.
 * hl_upstream_cancel() aborts a call (client went away): no callback follows. */
#ifndef HL_UPSTREAM_H
#define HL_UPSTREAM_H

#include <stddef.h>
#include <uv.h>
#include "hl_buf.h"
#include "hl_err.h"

typedef struct hl_upstream hl_upstream;
typedef struct hl_upstream_call hl_upstream_call;

enum { HL_UPSTREAM_CONTINUE = 0, HL_UPSTREAM_PAUSE = 1, HL_UPSTREAM_ABORT = 2 };

typedef struct hl_upstream_handlers {
    /* Response status and Content-Type ("" when none) known; called once, before on_data. */
    void (*on_status)(void *ud, int status, const char *content_type);
    /* A piece of the body. Returns HL_UPSTREAM_CONTINUE, _PAUSE or _ABORT. */
    int (*on_data)(void *ud, const char *data, size_t len);
    /* A response header line (optional; NULL: not wanted). Strings are not NUL-terminated
     * and valid only during the call. */
    void (*on_header)(void *ud, const char *name, size_t name_len, const char *value, size_t value_len);
    /* The call ended: err HL_OK (complete body), HL_ERR_TIMEOUT or HL_ERR_UPSTREAM (message in
     * errmsg: connection refused, reset, TLS, ...), HL_ERR_CANCELLED after _ABORT. */
    void (*on_done)(void *ud, hl_err err, const char *errmsg);
} hl_upstream_handlers;

typedef struct hl_upstream_opts {
    const char *url;
    /* Request header lines back to back, each NUL-terminated (hl_upstream_header_line):
     * "Name: value" is sent as is, "Name:" suppresses a header the client would add, "Name;"
     * sends it empty. Takes ownership (freed with free()); NULL: none. */
    char *headers;
    size_t headers_len;
    char *body;                 /* takes ownership (freed with free()); POST when non-NULL */
    size_t body_len;
    long timeout_ms;
    long connect_timeout_ms;
    /* PEM file of the CAs to trust for https:// instead of the system's (CURLOPT_CAINFO);
     * NULL: the system's. Borrowed, read during hl_upstream_start() only. */
    const char *ca_file;
} hl_upstream_opts;

/* Appends one header line to a block for hl_upstream_opts.headers (line copied, NUL added). */
hl_err hl_upstream_header_line(hl_buf *h, const char *line);

/* Creates the client for loop. Caller frees with hl_upstream_close() on the same loop. */
hl_err hl_upstream_init(hl_upstream **out, uv_loop_t *loop);
/* Cancels every call in flight (no callbacks) and closes the handles; the memory is released
 * once the loop has run their close callbacks. */
void hl_upstream_close(hl_upstream *u);

/* Starts a call. On error the ownership-taking fields of opts are released. */
hl_err hl_upstream_start(hl_upstream *u, hl_upstream_opts *opts, const hl_upstream_handlers *h,
                         void *ud, hl_upstream_call **out);
/* Ends a pause: may deliver buffered data (on_data) before it returns; on_done comes later,
 * from the loop. */
void hl_upstream_resume(hl_upstream_call *c);
/* Frees the call; no callback follows. */
void hl_upstream_cancel(hl_upstream_call *c);
/* Calls in flight on this client. */
size_t hl_upstream_active(const hl_upstream *u);

#endif
