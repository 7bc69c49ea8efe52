/* hl_http: the HTTP/1.1 request-head parser and chunked-body decoder (see hl_http.h).
 *
 * The gateway is the first thing that reads a client's bytes, so this file is where request
 * smuggling and resource exhaustion are stopped: every byte is checked against the grammar
 * of RFC 9112, every length has a ceiling, and any framing a proxy in front of us could read
 * differently (Content-Length with Transfer-Encoding, two different Content-Lengths, line
 * folding, a bare CR) is rejected rather than guessed at.
 *
 * The head parser keeps no state between calls: the server calls it again on the whole
 * connection buffer whenever bytes arrive. It reads left to right and stops at the first
 * byte that decides the answer, asking for more (HL_ERR_AGAIN) only when it needs a byte it
 * does not have. So any prefix of a request gives either HL_ERR_AGAIN or exactly the answer
 * the whole request gives: the result never depends on how TCP split the bytes. Nothing is
 * allocated; the request's strings are slices of the caller's buffer.
 *
 * Line endings: the head accepts a bare LF for CRLF (hand-typed requests), but a CR must be
 * followed by LF. The chunked framing is stricter and wants CRLF everywhere: no client sends
 * anything else there, and lenient chunk parsing is a well-known smuggling vector. */
#include "hl_http.h"

#include <string.h>

#define HL_HTTP_DEFAULT_TARGET 8192
/* A chunk-size line (with its extensions) and the whole trailer section are read only to be
 * skipped, so they get small fixed ceilings instead of configurable ones. */
#define HL_CHUNK_LINE_MAX 4096
#define HL_CHUNK_TRAILERS_MAX 16384

/* Character classes, one bit each: C_TCHAR for tokens (method, header names), C_FIELD for
 * header values (HTAB, SP, VCHAR, obs-text), C_TARGET for the request-target (VCHAR; the
 * target's own grammar is left to the router). */
enum { C_TCHAR = 1, C_FIELD = 2, C_TARGET = 4 };
static const unsigned char cclass[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* True when s[0..n) equals the lowercase ASCII string lit, ignoring case. */
static bool eq_nocase(const char *s, size_t n, const char *lit, size_t lit_n) {
    if (n != lit_n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lit[i]) return false;
    return true;
}
#define EQ_LIT(s, n, lit) eq_nocase((s), (n), lit, sizeof lit - 1)

static bool is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* Parses a Content-Length value: 1*DIGIT, or a list of identical ones ("42, 42"), which
 * RFC 9112 section 6.3 lets a recipient accept. Values too large for 64 bits saturate to
 * UINT64_MAX; the caller rejects them as over the body limit. */
static bool parse_content_length(const char *s, size_t n, uint64_t *out) {
    bool have = false;
    size_t i = 0;
    for (;;) {
        while (i < n && is_ows((unsigned char)s[i])) i++;
        if (i == n || s[i] < '0' || s[i] > '9') return false;
        uint64_t v = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        }
        if (have && v != *out) return false;
        *out = v;
        have = true;
        while (i < n && is_ows((unsigned char)s[i])) i++;
        if (i == n) return true;
        if (s[i++] != ',') return false;
    }
}

/* Scans a Connection value's comma-separated tokens for "close" and "keep-alive". */
static void parse_connection(const char *s, size_t n, bool *close, bool *keep_alive) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows((unsigned char)s[i]) || s[i] == ',')) i++;
        size_t start = i;
        while (i < n && s[i] != ',' && !is_ows((unsigned char)s[i])) i++;
        if (EQ_LIT(s + start, i - start, "close")) *close = true;
        else if (EQ_LIT(s + start, i - start, "keep-alive")) *keep_alive = true;
    }
}

/* What the header fields said about framing and the connection, gathered while parsing and
 * judged once the head is complete. */
typedef struct head_state {
    uint64_t content_length;
    bool have_cl, have_te, te_bad, have_host, conn_close, conn_keep_alive, expect;
} head_state;

/* Looks at one header field for what the parser itself must know. Returns 0 or the status
 * to fail with. */
static int note_header(head_state *st, const char *name, size_t nn, const char *v, size_t vn) {
    switch (nn) {
    case 4:
        if (EQ_LIT(name, nn, "host")) {
            if (st->have_host) return 400; /* RFC 9112 3.2: more than one Host */
            st->have_host = true;
        }
        break;
    case 6:
        if (EQ_LIT(name, nn, "expect") && EQ_LIT(v, vn, "100-continue")) st->expect = true;
        break;
    case 10:
        if (EQ_LIT(name, nn, "connection"))
            parse_connection(v, vn, &st->conn_close, &st->conn_keep_alive);
        break;
    case 14:
        if (EQ_LIT(name, nn, "content-length")) {
            uint64_t cl = 0;
            if (!parse_content_length(v, vn, &cl)) return 400;
            if (st->have_cl && cl != st->content_length) return 400;
            st->content_length = cl;
            st->have_cl = true;
        }
        break;
    case 17:
        if (EQ_LIT(name, nn, "transfer-encoding")) {
            /* Only a single "chunked" is understood; a second field would make the coding
             * list "chunked, chunked" or worse. */
            if (st->have_te || !EQ_LIT(v, vn, "chunked")) st->te_bad = true;
            st->have_te = true;
        }
        break;
    }
    return 0;
}

hl_err hl_http_parse_head(const char *buf, size_t len, const hl_http_limits *limits,
                          hl_http_req *req, size_t *head_len, int *status) {
    const unsigned char *s = (const unsigned char *)buf;
    /* Only the first max_head_bytes may hold the head: running out of bytes there means
     * "too large" when more were sent, "need more" otherwise. */
    size_t n = len < limits->max_head_bytes ? len : limits->max_head_bytes;
    size_t max_target = limits->max_target_bytes ? limits->max_target_bytes
                                                 : HL_HTTP_DEFAULT_TARGET;
    int max_headers = limits->max_headers;
    if (max_headers > HL_HTTP_MAX_HEADERS) max_headers = HL_HTTP_MAX_HEADERS;
    head_state st = {0};
    size_t i = 0, j;
    int code = 400;

    req->n_headers = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = false;
    *status = 0;

    /* RFC 9112 2.2: empty lines before the request-line are ignored (clients may send a
     * stray CRLF after a body). They still count toward the head's size. */
    for (;;) {
        if (i < n && s[i] == '\n') {
            i++;
        } else if (i < n && s[i] == '\r') {
            if (i + 1 >= n) goto again;
            if (s[i + 1] != '\n') goto fail;
            i += 2;
        } else {
            break;
        }
    }

    /* method SP */
    for (j = i; j < n && (cclass[s[j]] & C_TCHAR); j++) {}
    if (j == n) goto again;
    if (j == i || s[j] != ' ') goto fail;
    req->method = (hl_slice){buf + i, j - i};
    i = j + 1;

    /* request-target SP: origin-form or "*"; absolute- and authority-form are refused. */
    if (i == n) goto again;
    if (s[i] != '/' && s[i] != '*') goto fail;
    for (j = i; j < n && (cclass[s[j]] & C_TARGET); j++) {
        if (j - i == max_target) {
            code = 414;
            goto fail;
        }
    }
    if (j == n) goto again;
    if (s[j] != ' ' || (s[i] == '*' && j - i != 1)) goto fail;
    req->target = (hl_slice){buf + i, j - i};
    const char *q = memchr(buf + i, '?', j - i);
    req->path = (hl_slice){buf + i, q ? (size_t)(q - (buf + i)) : j - i};
    i = j + 1;

    /* HTTP-version CRLF, with "HTTP/" matched byte by byte so a prefix can be told apart
     * from a mismatch. */
    static const char ver[] = "HTTP/d.d";
    for (j = 0; j < sizeof ver - 1; j++, i++) {
        if (i == n) goto again;
        if (ver[j] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != (unsigned char)ver[j])
            goto fail;
    }
    int major = s[i - 3] - '0', minor = s[i - 1] - '0';
    if (i == n) goto again;
    if (s[i] == '\r') {
        if (i + 1 == n) goto again;
        if (s[i + 1] != '\n') goto fail;
        i++;
    } else if (s[i] != '\n') {
        goto fail;
    }
    i++;
    if (major != 1 || minor > 1) {
        code = 505;
        goto fail;
    }
    req->minor_version = minor;

    /* header fields, then the empty line */
    for (;;) {
        if (i == n) goto again;
        if (s[i] == '\r') {
            if (i + 1 == n) goto again;
            if (s[i + 1] != '\n') goto fail;
            i += 2;
            break;
        }
        if (s[i] == '\n') {
            i++;
            break;
        }
        if (req->n_headers >= max_headers) {
            code = 431;
            goto fail;
        }
        /* field-name ":" -- no whitespace before the colon (RFC 9112 5.1), and a line that
         * starts with whitespace is obs-fold, which we refuse (5.2). */
        for (j = i; j < n && (cclass[s[j]] & C_TCHAR); j++) {}
        if (j == n) goto again;
        if (j == i || s[j] != ':') goto fail;
        size_t name_start = i, name_len = j - i;
        for (i = j + 1; i < n && is_ows(s[i]); i++) {}
        size_t vstart = i;
        for (; i < n && (cclass[s[i]] & C_FIELD); i++) {}
        if (i == n) goto again;
        size_t vend = i;
        if (s[i] == '\r') {
            if (i + 1 == n) goto again;
            if (s[i + 1] != '\n') goto fail;
            i += 2;
        } else if (s[i] == '\n') {
            i++;
        } else {
            goto fail; /* NUL, a control character or DEL */
        }
        while (vend > vstart && is_ows(s[vend - 1])) vend--;
        hl_http_header *h = &req->headers[req->n_headers++];
        h->name = (hl_slice){buf + name_start, name_len};
        h->value = (hl_slice){buf + vstart, vend - vstart};
        int bad = note_header(&st, h->name.p, name_len, h->value.p, h->value.n);
        if (bad) {
            code = bad;
            goto fail;
        }
    }

    /* The head is complete: judge the framing (RFC 9112 6.1-6.3). */
    if (st.have_te && (st.have_cl || minor == 0)) goto fail; /* smuggling; TE in 1.0 */
    if (st.te_bad) {
        code = 501;
        goto fail;
    }
    if (st.have_cl) {
        if (st.content_length > limits->max_body_bytes || st.content_length > INT64_MAX) {
            code = 413;
            goto fail;
        }
        req->content_length = (int64_t)st.content_length;
    }
    req->chunked = st.have_te;
    req->keep_alive = !st.conn_close && (minor == 1 || st.conn_keep_alive);
    req->expect_continue = st.expect && minor == 1; /* RFC 9110 10.1.1: ignore in 1.0 */
    *head_len = i;
    return HL_OK;

again:
    if (len > limits->max_head_bytes) {
        *status = 431;
        return HL_ERR_LIMIT;
    }
    return HL_ERR_AGAIN;

fail:
    *status = code;
    switch (code) {
    case 413: case 414: case 431: return HL_ERR_LIMIT;
    case 501: case 505: return HL_ERR_UNSUPPORTED;
    default: return HL_ERR_PARSE;
    }
}

const hl_slice *hl_http_header_get(const hl_http_req *req, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < req->n_headers; i++) {
        const hl_slice *h = &req->headers[i].name;
        if (h->n != n) continue;
        size_t k = 0;
        while (k < n && lower((unsigned char)h->p[k]) == lower((unsigned char)name[k])) k++;
        if (k == n) return &req->headers[i].value;
    }
    return NULL;
}

/* Chunked decoder states. The names say what the next byte should be. */
enum {
    CH_SIZE_FIRST, /* first hex digit of a chunk size */
    CH_SIZE,       /* more hex digits, or what ends them */
    CH_SIZE_BWS,   /* whitespace after the size; only ';' may follow it */
    CH_EXT,        /* chunk extensions, skipped */
    CH_SIZE_LF,    /* LF ending the size line */
    CH_DATA,       /* chunk data; remaining bytes left */
    CH_DATA_CR,    /* CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER_FIRST, /* start of a trailer line, or CR of the final empty line */
    CH_TRAILER,       /* inside a trailer line, skipped */
    CH_TRAILER_LF,
    CH_END_LF,     /* LF of the final empty line */
    CH_DONE,
    CH_FAIL_400,   /* errors are sticky */
    CH_FAIL_413,
};

void hl_http_chunked_init(hl_http_chunked *c, size_t max_body) {
    c->state = CH_SIZE_FIRST;
    c->remaining = 0;
    c->total = 0;
    c->max_body = max_body;
    c->line_len = 0;
}

static int hex_value(unsigned char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = (unsigned char)lower(ch);
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

hl_err hl_http_chunked_decode(hl_http_chunked *c, char *buf, size_t len, size_t *consumed,
                              size_t *out_len, int *status) {
    size_t r = 0, w = 0; /* read and write positions; w <= r, so decoding in place is safe */
    hl_err err = HL_ERR_AGAIN;
    *status = 0;

    while (r < len && err == HL_ERR_AGAIN) {
        if (c->state == CH_DATA) {
            size_t n = len - r;
            if (n > c->remaining) n = (size_t)c->remaining;
            if (w != r) memmove(buf + w, buf + r, n);
            w += n;
            r += n;
            c->remaining -= n;
            c->total += n;
            if (c->remaining == 0) c->state = CH_DATA_CR;
            continue;
        }
        unsigned char ch = (unsigned char)buf[r++];
        bool line_byte = true; /* part of a size or trailer line, CRLF excluded */
        int d;
        switch (c->state) {
        case CH_SIZE_FIRST:
        case CH_SIZE:
            if ((d = hex_value(ch)) >= 0) {
                if (c->remaining > (UINT64_MAX >> 4)) goto bad;
                c->remaining = c->remaining << 4 | (uint64_t)d;
                if (c->remaining > c->max_body - c->total) goto too_large;
                c->state = CH_SIZE;
            } else if (c->state == CH_SIZE_FIRST) {
                goto bad;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
                line_byte = false;
            } else if (ch == ';') {
                c->state = CH_EXT;
            } else if (is_ows(ch)) {
                c->state = CH_SIZE_BWS;
            } else {
                goto bad;
            }
            break;
        case CH_SIZE_BWS:
            if (ch == ';') c->state = CH_EXT;
            else if (!is_ows(ch)) goto bad;
            break;
        case CH_EXT:
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
                line_byte = false;
            } else if (!(cclass[ch] & C_FIELD)) {
                goto bad;
            }
            break;
        case CH_SIZE_LF:
            if (ch != '\n') goto bad;
            c->line_len = 0;
            /* After the last chunk, remaining counts the trailer section's bytes. */
            c->state = c->remaining ? CH_DATA : CH_TRAILER_FIRST;
            continue;
        case CH_DATA_CR:
            if (ch != '\r') goto bad;
            c->state = CH_DATA_LF;
            continue;
        case CH_DATA_LF:
            if (ch != '\n') goto bad;
            c->state = CH_SIZE_FIRST;
            continue;
        case CH_TRAILER_FIRST:
            if (ch == '\r') {
                c->state = CH_END_LF;
                line_byte = false;
            } else if (cclass[ch] & C_TCHAR) { /* a field name; no obs-fold */
                c->state = CH_TRAILER;
            } else {
                goto bad;
            }
            break;
        case CH_TRAILER:
            if (ch == '\r') {
                c->state = CH_TRAILER_LF;
                line_byte = false;
            } else if (!(cclass[ch] & C_FIELD)) {
                goto bad;
            }
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') goto bad;
            c->line_len = 0;
            c->state = CH_TRAILER_FIRST;
            line_byte = false;
            break;
        case CH_END_LF:
            if (ch != '\n') goto bad;
            c->state = CH_DONE;
            err = HL_OK;
            continue;
        default:
            r--; /* done or failed: the byte is not ours */
            goto sticky;
        }
        /* Size lines and trailer lines are only skipped, so they get fixed ceilings: per
         * line, and for the trailer section as a whole. */
        if (line_byte && ++c->line_len > HL_CHUNK_LINE_MAX) goto too_large;
        if (c->state >= CH_TRAILER_FIRST && ++c->remaining > HL_CHUNK_TRAILERS_MAX)
            goto too_large;
    }
    if (err == HL_ERR_AGAIN && len == 0) goto sticky;
    goto out;

sticky:
    if (c->state == CH_DONE) err = HL_OK;
    else if (c->state == CH_FAIL_400) goto bad;
    else if (c->state == CH_FAIL_413) goto too_large;
    goto out;
bad:
    c->state = CH_FAIL_400;
    *status = 400;
    err = HL_ERR_PARSE;
    goto out;
too_large:
    c->state = CH_FAIL_413;
    *status = 413;
    err = HL_ERR_LIMIT;
out:
    *consumed = r;
    *out_len = w;
    return err;
}

const char *hl_http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    }
    return "Unknown";
}
