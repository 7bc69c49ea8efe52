/* hl_http: an incremental HTTP/1.1 request parser (RFC 9112), with hard limits.
 *
 * The server keeps each connection's unread bytes in one buffer. hl_http_parse_head() looks
 * at the start of that buffer: it returns HL_ERR_AGAIN until a whole request head
 * (request line + headers + blank line) is there, then fills an hl_http_req whose strings are
 * slices of the buffer (borrowed: valid until the buffer changes) and sets *head_len to the
 * number of bytes the head used. Calling it again with more bytes is cheap enough: heads are
 * small and capped by limits->max_head_bytes.
 *
 * The body follows: Content-Length bytes, or a chunked body decoded with hl_http_chunked.
 *
 * Errors carry the HTTP status the server should answer with (*status): 400 malformed,
 * 413 Content-Length over max_body_bytes, 414 target too long, 431 head or header count over
 * their limit, 501 unknown Transfer-Encoding, 505 version other than HTTP/1.0 or 1.1.
 * Requests with both Content-Length and Transfer-Encoding, or with conflicting
 * Content-Length values, are rejected (request smuggling); so are Transfer-Encoding in an
 * HTTP/1.0 request, an HTTP/1.1 request without Host (RFC 9112 3.2; HTTP/1.0 may omit it),
 * two Host fields, obs-fold, bare CR, and NUL or control bytes (400). Only
 * origin-form targets and "*" are accepted. A bare LF is accepted as a line end in the head
 * but not in chunked framing, which must use CRLF. The result never depends on how the
 * bytes were split: a prefix of a request gives HL_ERR_AGAIN or the whole request's answer. */
#ifndef HL_HTTP_H
#define HL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "hl_err.h"

#define HL_HTTP_MAX_HEADERS 128 /* hard upper bound for limits->max_headers */

typedef struct hl_slice {
    const char *p;
    size_t n;
} hl_slice;

typedef struct hl_http_header {
    hl_slice name;  /* as sent; compare case-insensitively */
    hl_slice value; /* leading/trailing whitespace removed */
} hl_http_header;

/* Every limit is taken literally (0 allows nothing), except max_target_bytes. */
typedef struct hl_http_limits {
    size_t max_head_bytes; /* request line + headers + CRLFs */
    size_t max_body_bytes;
    int max_headers;       /* <= HL_HTTP_MAX_HEADERS */
    size_t max_target_bytes; /* default 8192 when 0 */
} hl_http_limits;

typedef struct hl_http_req {
    hl_slice method;       /* e.g. "POST" */
    hl_slice target;       /* request-target as sent, e.g. "/v1/chat/completions?x=1" */
    hl_slice path;         /* target without the query */
    int minor_version;     /* 0 or 1 */
    hl_http_header headers[HL_HTTP_MAX_HEADERS];
    int n_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive */
    bool expect_continue;   /* Expect: 100-continue */
    const char *error;      /* after an error: what was wrong, for the client (static), when
                               the status alone would not say it; else NULL */
} hl_http_req;

/* Parses the head at the start of buf[0..len). Returns HL_OK and sets *head_len, or
 * HL_ERR_AGAIN (need more bytes; but HL_ERR_LIMIT/431 once len passes max_head_bytes without a
 * complete head), or HL_ERR_PARSE / HL_ERR_LIMIT / HL_ERR_UNSUPPORTED with *status set
 * (*status is 0 with HL_OK and HL_ERR_AGAIN). Allocates nothing. */
hl_err hl_http_parse_head(const char *buf, size_t len, const hl_http_limits *limits,
                          hl_http_req *req, size_t *head_len, int *status);

/* Case-insensitive lookup of the header name[0..n); returns the first match or NULL
 * (borrowed). hl_http_header_get takes a C string: inline, so that a literal's length is
 * counted at compile time. */
const hl_slice *hl_http_header_get_n(const hl_http_req *req, const char *name, size_t n);
static inline const hl_slice *hl_http_header_get(const hl_http_req *req, const char *name) {
    return hl_http_header_get_n(req, name, strlen(name));
}

/* Incremental chunked-body decoder. Feed it the bytes after the head; it decodes in place:
 * decoded data is moved to the front of buf. */
typedef struct hl_http_chunked {
    int state;          /* private */
    uint64_t remaining; /* private: bytes left in the current chunk */
    size_t total;       /* decoded body bytes so far */
    size_t max_body;    /* ceiling for total */
    size_t line_len;    /* private: length of the size or trailer line being read */
} hl_http_chunked;

void hl_http_chunked_init(hl_http_chunked *c, size_t max_body);
/* Decodes buf[0..len) in place. On return *consumed input bytes were used (the rest belong to
 * the next request or have not arrived), *out_len decoded bytes sit at buf[0..*out_len).
 * Returns HL_OK when the final chunk and trailers are complete, HL_ERR_AGAIN when more input
 * is needed (then all of buf was consumed), HL_ERR_PARSE (400) or HL_ERR_LIMIT (413: body
 * over max_body, or a chunk-size line over 4 KiB or trailers over 16 KiB) with *status set.
 * Once done or failed, later calls consume nothing and return the same result. */
hl_err hl_http_chunked_decode(hl_http_chunked *c, char *buf, size_t len, size_t *consumed,
                              size_t *out_len, int *status);

/* Reason phrase for a status code ("OK", "Not Found", ...); "Unknown" when unknown. */
const char *hl_http_reason(int status);

#endif
