/* hl_upstream_int: what the two halves of hl_upstream share, and nobody else uses.
 *
 * hl_upstream has two clients behind one API (hl_upstream.h):
 *  - hl_upstream.c: the dispatcher and the libcurl multi-socket client, for https:// (cloud
 *    APIs: TLS, HTTP/2, proxies) and any URL the built-in client does not take;
 *  - hl_upstream_http.c: a small HTTP/1.1 client on libuv for plain http:// upstreams (local
 *    model servers), where per-request cost matters more than features: pooled keep-alive
 *    connections, one writev per request, no poll() liveness checks, one allocation per call;
 *    hl_upstream_wire.c holds its bytes: URL, request head, response parser.
 *
 * Both kinds of call start with the same header (hl_upstream_call), so the dispatcher can
 * keep one list of calls in flight and route resume/cancel by kind.
 *
 * Lifetime of the hl_upstream itself: it holds a reference count of the things whose
 * callbacks may still run after hl_upstream_close() (timers, pooled connections, name
 * resolutions), plus one for being open; the memory goes when the count reaches zero.
 *
 * The wire format of the built-in client (hl_upstream_wire.c) is exposed here as pure
 * functions over bytes (no sockets), for the unit tests and the fuzz target. */
#ifndef HL_UPSTREAM_INT_H
#define HL_UPSTREAM_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include "hl_http.h"
#include "hl_upstream.h"

struct hl__upstream_http; /* the built-in client's state, private to hl_upstream_http.c */

struct hl_upstream {
    uv_loop_t *loop;
    size_t active;                  /* calls in flight, both kinds */
    struct hl_upstream_call *calls; /* in flight, doubly linked */
    unsigned refs;                  /* see the top of this file */
    bool closing;
    bool curl_only; /* HL_UPSTREAM_CURL=1, or an http proxy, in the environment: every URL goes
                       to libcurl */
    /* libcurl */
    CURLM *multi;
    uv_timer_t timer;
    /* built-in HTTP/1.1 client; owned */
    struct hl__upstream_http *http;
};

/* The common head of both kinds of call. */
struct hl_upstream_call {
    hl_upstream *u;
    struct hl_upstream_call *prev, *next;
    hl_upstream_handlers h;
    void *ud;
    bool builtin; /* hl_upstream_http.c's; else libcurl's */
};

/* Adds c to u's calls in flight / removes it (and counts it). */
void hl__upstream_link(hl_upstream *u, hl_upstream_call *c);
void hl__upstream_unlink(hl_upstream_call *c);
/* Reference counting of u (see above); the last unref frees u and the built-in client. */
void hl__upstream_ref(hl_upstream *u);
/* Whether the environment names a proxy for plain http:// (http_proxy, ALL_PROXY, all_proxy). */
bool hl__upstream_http_proxy_set(void);
void hl__upstream_unref(hl_upstream *u);

/* ---- the built-in client (hl_upstream_http.c) */

struct hl__upstream_url;

/* Creates u->http. */
hl_err hl__upstream_http_init(hl_upstream *u);
/* hl_upstream_start() for a URL hl__upstream_http_url() accepted. Same contract. */
hl_err hl__upstream_http_start(hl_upstream *u, const struct hl__upstream_url *url, hl_upstream_opts *opts,
                               const hl_upstream_handlers *h, void *ud, hl_upstream_call **out);
void hl__upstream_http_resume(hl_upstream_call *c);
void hl__upstream_http_cancel(hl_upstream_call *c);
/* Closes the pooled connections and stops resolutions; calls must be cancelled already. */
void hl__upstream_http_close(hl_upstream *u);
/* Frees what hl__upstream_http_init() made, once nothing refers to it (the last unref). */
void hl__upstream_http_free(struct hl__upstream_http *http);

/* ---- the bytes on the wire (hl_upstream_wire.c; pure functions, no allocation) */

#define HL__UPSTREAM_HOST_MAX 255         /* bytes of a host name */
#define HL__UPSTREAM_HEAD_MAX (64 * 1024) /* response: status line + header fields + blank line */

/* An http:// URL, split. The slices borrow the URL. */
typedef struct hl__upstream_url {
    hl_slice host;      /* name or IP literal, without the brackets of an IPv6 literal */
    hl_slice authority; /* host[:port] as written: the Host header */
    uint16_t port;
    hl_slice target;    /* origin-form: "/path?query" ("/" when the URL has no path) */
} hl__upstream_url;

/* Splits an http:// URL the built-in client takes. false: not for it (https://, userinfo,
 * a fragment, characters that would need escaping...): libcurl handles it. */
bool hl__upstream_http_url(const char *url, hl__upstream_url *out);

/* Writes the request head for url, headers and body (POST when body is non-NULL, else GET)
 * into out, or only measures it when out is NULL. Returns its length, or 0 when a header
 * line is unusable (CR or LF in it, no field name). */
size_t hl__upstream_build_head(char *out, const hl__upstream_url *url, const char *headers, size_t headers_len,
                               const char *body, size_t body_len);

enum {
    HL__UPSTREAM_BODY_NONE,    /* 204, 304, 1xx, Content-Length: 0 */
    HL__UPSTREAM_BODY_LENGTH,  /* Content-Length bytes */
    HL__UPSTREAM_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    HL__UPSTREAM_BODY_CLOSE,   /* everything until the server closes the connection */
};

typedef struct hl__upstream_head {
    int status;              /* 100..999 */
    bool keep_alive;         /* the connection may carry another request after this response */
    int body;                /* HL__UPSTREAM_BODY_* */
    uint64_t content_length; /* with HL__UPSTREAM_BODY_LENGTH */
    hl_slice content_type;   /* borrowed from the head; empty when absent */
} hl__upstream_head;

/* Parses the response head at the start of buf[0..len). *scan is where the previous call on
 * the same (grown) buffer stopped looking for the blank line; start it at 0. Returns HL_OK
 * with *out filled and *head_len set; HL_ERR_AGAIN when the head is not complete yet;
 * HL_ERR_LIMIT when len reached HL__UPSTREAM_HEAD_MAX without a complete head; HL_ERR_PARSE or
 * HL_ERR_UNSUPPORTED (*why: a static message) for a head that cannot be understood. */
hl_err hl__upstream_parse_head(const char *buf, size_t len, size_t *scan, hl__upstream_head *out,
                               size_t *head_len, const char **why);

/* Iterates the header fields of a head hl__upstream_parse_head() accepted: start *pos at 0.
 * Values have their surrounding whitespace removed; both slices borrow head. */
bool hl__upstream_next_header(const char *head, size_t head_len, size_t *pos, hl_slice *name,
                              hl_slice *value);

/* The body decoder for one response. */
typedef struct hl__upstream_body {
    int mode;           /* HL__UPSTREAM_BODY_* */
    uint64_t remaining; /* HL__UPSTREAM_BODY_LENGTH: bytes still expected */
    hl_http_chunked chunked;
} hl__upstream_body;

void hl__upstream_body_init(hl__upstream_body *b, const hl__upstream_head *head);
/* Decodes buf[0..len) in place: *out_len body bytes are left at buf[0..*out_len) and *consumed
 * input bytes were used (the rest is not part of this response). Returns HL_OK when the body
 * is complete, HL_ERR_AGAIN when more is expected (everything was consumed), HL_ERR_PARSE
 * (*why) for malformed chunked framing. */
hl_err hl__upstream_body_feed(hl__upstream_body *b, char *buf, size_t len, size_t *consumed,
                              size_t *out_len, const char **why);

#endif
