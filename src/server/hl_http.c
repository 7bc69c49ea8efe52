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

/* The head parser's steps share a cursor and answer with one int: STEP_OK (go on), STEP_AGAIN
 * (a byte that decides is not there yet), STEP_END (the empty line ending the head was read),
 * or the HTTP status to fail with. */
enum { STEP_OK = 0, STEP_AGAIN = -1, STEP_END = -2, STEP_NOT_EOL = -3 };

typedef struct head_cursor {
    const char *buf;
    const unsigned char *s; /* buf, as bytes */
    size_t n;               /* bytes that may hold the head */
    size_t i;               /* next byte */
} head_cursor;

/* A line end at the cursor: CRLF or a bare LF, consumed (STEP_OK); a CR without its LF is
 * 400; anything else is STEP_NOT_EOL, with nothing consumed. */
static int eat_eol(head_cursor *h) {
    if (h->i == h->n) return STEP_AGAIN;
    if (h->s[h->i] == '\r') {
        if (h->i + 1 == h->n) return STEP_AGAIN;
        if (h->s[h->i + 1] != '\n') return 400;
        h->i += 2;
        return STEP_OK;
    }
    if (h->s[h->i] == '\n') {
        h->i++;
        return STEP_OK;
    }
    return STEP_NOT_EOL;
}

/* RFC 9112 2.2: empty lines before the request-line are ignored (clients may send a stray
 * CRLF after a body). They still count toward the head's size. */
static int skip_empty_lines(head_cursor *h) {
    for (;;) {
        if (h->i == h->n) return STEP_OK; /* the method's scan asks for more */
        int v = eat_eol(h);
        if (v != STEP_OK) return v == STEP_NOT_EOL ? STEP_OK : v;
    }
}

/* method SP request-target SP: origin-form or "*" (absolute- and authority-form are
 * refused); a target longer than max_target is 414. */
static int parse_method_target(head_cursor *h, size_t max_target, hl_http_req *req) {
    const unsigned char *s = h->s;
    size_t i = h->i, j, n = h->n;
    for (j = i; j < n && (cclass[s[j]] & C_TCHAR); j++) {}
    if (j == n) return STEP_AGAIN;
    if (j == i || s[j] != ' ') return 400;
    req->method = (hl_slice){h->buf + i, j - i};
    i = j + 1;
    if (i == n) return STEP_AGAIN;
    if (s[i] != '/' && s[i] != '*') return 400;
    for (j = i; j < n && (cclass[s[j]] & C_TARGET); j++)
        if (j - i == max_target) return 414;
    if (j == n) return STEP_AGAIN;
    if (s[j] != ' ' || (s[i] == '*' && j - i != 1)) return 400;
    req->target = (hl_slice){h->buf + i, j - i};
    const char *q = memchr(h->buf + i, '?', j - i);
    req->path = (hl_slice){h->buf + i, q ? (size_t)(q - (h->buf + i)) : j - i};
    h->i = j + 1;
    return STEP_OK;
}

/* HTTP-version and the line end, with "HTTP/" matched byte by byte so a prefix can be told
 * apart from a mismatch. A version other than 1.0 or 1.1 is 505, once the line is whole. */
static int parse_version(head_cursor *h, hl_http_req *req) {
    static const char ver[] = "HTTP/d.d";
    const unsigned char *s = h->s;
    for (size_t j = 0; j < sizeof ver - 1; j++, h->i++) {
        if (h->i == h->n) return STEP_AGAIN;
        if (ver[j] == 'd' ? (s[h->i] < '0' || s[h->i] > '9') : s[h->i] != (unsigned char)ver[j])
            return 400;
    }
    int major = s[h->i - 3] - '0', minor = s[h->i - 1] - '0';
    int v = eat_eol(h);
    if (v != STEP_OK) return v == STEP_NOT_EOL ? 400 : v;
    if (major != 1 || minor > 1) return 505;
    req->minor_version = minor;
    return STEP_OK;
}

/* One header field line, or the empty line that ends the head (STEP_END). No whitespace
 * before the colon (RFC 9112 5.1), and a line that starts with whitespace is obs-fold, which
 * is refused (5.2). The value is stored without surrounding whitespace. */
static int parse_header_line(head_cursor *h, int max_headers, hl_http_req *req,
                             head_state *st) {
    int v = eat_eol(h);
    if (v != STEP_NOT_EOL) return v == STEP_OK ? STEP_END : v;
    if (req->n_headers >= max_headers) return 431;
    const unsigned char *s = h->s;
    size_t i = h->i, j, n = h->n;
    for (j = i; j < n && (cclass[s[j]] & C_TCHAR); j++) {}
    if (j == n) return STEP_AGAIN;
    if (j == i || s[j] != ':') return 400;
    size_t name_start = i, name_len = j - i;
    for (i = j + 1; i < n && is_ows(s[i]); i++) {}
    size_t vstart = i;
    for (; i < n && (cclass[s[i]] & C_FIELD); i++) {}
    size_t vend = i;
    h->i = i;
    v = eat_eol(h);
    if (v != STEP_OK) return v == STEP_NOT_EOL ? 400 : v; /* NUL, a control character, DEL */
    while (vend > vstart && is_ows(s[vend - 1])) vend--;
    hl_http_header *hd = &req->headers[req->n_headers++];
    hd->name = (hl_slice){h->buf + name_start, name_len};
    hd->value = (hl_slice){h->buf + vstart, vend - vstart};
    v = note_header(st, hd->name.p, name_len, hd->value.p, hd->value.n);
    return v ? v : STEP_OK;
}

/* The head is complete: judge the framing (RFC 9112 6.1-6.3) and the connection. */
static int judge_framing(const head_state *st, const hl_http_limits *limits, hl_http_req *req) {
    int minor = req->minor_version;
    if (st->have_te && (st->have_cl || minor == 0)) return 400; /* smuggling; TE in 1.0 */
    if (st->te_bad) return 501;
    if (st->have_cl) {
        if (st->content_length > limits->max_body_bytes || st->content_length > INT64_MAX)
            return 413;
        req->content_length = (int64_t)st->content_length;
    }
    /* RFC 9112 3.2: an HTTP/1.1 request must have Host (it may be empty); 1.0 may omit it.
     * Judged after the framing, whose errors say more. */
    if (minor == 1 && !st->have_host) {
        req->error = "An HTTP/1.1 request must have a Host header.";
        return 400;
    }
    req->chunked = st->have_te;
    req->keep_alive = !st->conn_close && (minor == 1 || st->conn_keep_alive);
    req->expect_continue = st->expect && minor == 1; /* RFC 9110 10.1.1: ignore in 1.0 */
    return STEP_OK;
}

hl_err hl_http_parse_head(const char *buf, size_t len, const hl_http_limits *limits,
                          hl_http_req *req, size_t *head_len, int *status) {
    /* Only the first max_head_bytes may hold the head: running out of bytes there means
     * "too large" when more were sent, "need more" otherwise. */
    head_cursor h = {buf, (const unsigned char *)buf,
                     len < limits->max_head_bytes ? len : limits->max_head_bytes, 0};
    size_t max_target = limits->max_target_bytes ? limits->max_target_bytes
                                                 : HL_HTTP_DEFAULT_TARGET;
    int max_headers = limits->max_headers;
    if (max_headers > HL_HTTP_MAX_HEADERS) max_headers = HL_HTTP_MAX_HEADERS;
    head_state st = {0};

    req->n_headers = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = false;
    req->error = NULL;
    *status = 0;

    int v = skip_empty_lines(&h);
    if (v == STEP_OK) v = parse_method_target(&h, max_target, req);
    if (v == STEP_OK) v = parse_version(&h, req);
    while (v == STEP_OK) v = parse_header_line(&h, max_headers, req, &st);
    if (v == STEP_END) v = judge_framing(&st, limits, req);
    if (v == STEP_OK) {
        *head_len = h.i;
        return HL_OK;
    }
    if (v == STEP_AGAIN) {
        if (len <= limits->max_head_bytes) return HL_ERR_AGAIN;
        v = 431;
    }
    *status = v;
    switch (v) {
    case 413: case 414: case 431: return HL_ERR_LIMIT;
    case 501: case 505: return HL_ERR_UNSUPPORTED;
    default: return HL_ERR_PARSE;
    }
}

const hl_slice *hl_http_header_get_n(const hl_http_req *req, const char *name, size_t n) {
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

/* What one framing byte did, for the decoder's loop. */
enum {
    B_LINE,     /* a byte of a size or trailer line: counts toward the line's ceiling */
    B_NOT_LINE, /* a CR or LF of such a line: counts only toward the trailers' ceiling */
    B_SKIP,     /* a framing byte that counts toward neither */
    B_DONE,     /* the LF ending the body */
    B_BAD,      /* 400 */
    B_TOO_LARGE,/* 413 */
};

/* The chunk-size line: hex digits, optional whitespace, extensions (skipped), CRLF. The size
 * is checked against the body's ceiling digit by digit, before it can overflow. */
static int chunk_size_byte(hl_http_chunked *c, unsigned char ch) {
    int d;
    switch (c->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        if ((d = hex_value(ch)) >= 0) {
            if (c->remaining > (UINT64_MAX >> 4)) return B_BAD;
            c->remaining = c->remaining << 4 | (uint64_t)d;
            if (c->remaining > c->max_body - c->total) return B_TOO_LARGE;
            c->state = CH_SIZE;
            return B_LINE;
        }
        if (c->state == CH_SIZE_FIRST) return B_BAD;
        if (ch == '\r') c->state = CH_SIZE_LF;
        else if (ch == ';') c->state = CH_EXT;
        else if (is_ows(ch)) c->state = CH_SIZE_BWS;
        else return B_BAD;
        return ch == '\r' ? B_NOT_LINE : B_LINE;
    case CH_SIZE_BWS:
        if (ch == ';') c->state = CH_EXT;
        else if (!is_ows(ch)) return B_BAD;
        return B_LINE;
    case CH_EXT:
        if (ch == '\r') {
            c->state = CH_SIZE_LF;
            return B_NOT_LINE;
        }
        return cclass[ch] & C_FIELD ? B_LINE : B_BAD;
    default: /* CH_SIZE_LF */
        if (ch != '\n') return B_BAD;
        c->line_len = 0;
        /* After the last chunk, remaining counts the trailer section's bytes. */
        c->state = c->remaining ? CH_DATA : CH_TRAILER_FIRST;
        return B_SKIP;
    }
}

/* The trailer section: field lines, skipped (no obs-fold), then the final CRLF. */
static int chunk_trailer_byte(hl_http_chunked *c, unsigned char ch) {
    switch (c->state) {
    case CH_TRAILER_FIRST:
        if (ch == '\r') {
            c->state = CH_END_LF;
            return B_NOT_LINE;
        }
        if (!(cclass[ch] & C_TCHAR)) return B_BAD; /* a field name */
        c->state = CH_TRAILER;
        return B_LINE;
    case CH_TRAILER:
        if (ch == '\r') {
            c->state = CH_TRAILER_LF;
            return B_NOT_LINE;
        }
        return cclass[ch] & C_FIELD ? B_LINE : B_BAD;
    case CH_TRAILER_LF:
        if (ch != '\n') return B_BAD;
        c->line_len = 0;
        c->state = CH_TRAILER_FIRST;
        return B_NOT_LINE;
    default: /* CH_END_LF */
        if (ch != '\n') return B_BAD;
        c->state = CH_DONE;
        return B_DONE;
    }
}

/* One framing byte (any state but CH_DATA and the final ones), with the ceilings on the
 * lines that are only skipped: per line, and for the trailer section as a whole. */
static int chunk_framing_byte(hl_http_chunked *c, unsigned char ch) {
    int b;
    if (c->state <= CH_SIZE_LF) {
        b = chunk_size_byte(c, ch);
    } else if (c->state == CH_DATA_CR || c->state == CH_DATA_LF) {
        /* the CRLF after a chunk's data */
        if (ch != (c->state == CH_DATA_CR ? '\r' : '\n')) return B_BAD;
        c->state = c->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE_FIRST;
        return B_SKIP;
    } else {
        b = chunk_trailer_byte(c, ch);
    }
    if (b != B_LINE && b != B_NOT_LINE) return b;
    if (b == B_LINE && ++c->line_len > HL_CHUNK_LINE_MAX) return B_TOO_LARGE;
    if (c->state >= CH_TRAILER_FIRST && ++c->remaining > HL_CHUNK_TRAILERS_MAX)
        return B_TOO_LARGE;
    return B_SKIP;
}

/* Moves the current chunk's data that is in buf[r..len) down to buf[w..). */
static void chunk_data(hl_http_chunked *c, char *buf, size_t len, size_t *r, size_t *w) {
    size_t n = len - *r;
    if (n > c->remaining) n = (size_t)c->remaining;
    if (*w != *r) memmove(buf + *w, buf + *r, n);
    *w += n;
    *r += n;
    c->remaining -= n;
    c->total += n;
    if (c->remaining == 0) c->state = CH_DATA_CR;
}

hl_err hl_http_chunked_decode(hl_http_chunked *c, char *buf, size_t len, size_t *consumed,
                              size_t *out_len, int *status) {
    size_t r = 0, w = 0; /* read and write positions; w <= r, so decoding in place is safe */
    int b = B_SKIP;
    *status = 0;
    /* Done or failed: consume nothing and give the same answer (errors are sticky). */
    bool over = c->state == CH_DONE || c->state == CH_FAIL_400 || c->state == CH_FAIL_413;
    while (!over && r < len && b == B_SKIP) {
        if (c->state == CH_DATA)
            chunk_data(c, buf, len, &r, &w);
        else
            b = chunk_framing_byte(c, (unsigned char)buf[r++]);
    }
    if (over) b = c->state == CH_DONE ? B_DONE : c->state == CH_FAIL_400 ? B_BAD : B_TOO_LARGE;
    *consumed = r;
    *out_len = w;
    switch (b) {
    case B_DONE:
        return HL_OK;
    case B_BAD:
        c->state = CH_FAIL_400;
        *status = 400;
        return HL_ERR_PARSE;
    case B_TOO_LARGE:
        c->state = CH_FAIL_413;
        *status = 413;
        return HL_ERR_LIMIT;
    default:
        return HL_ERR_AGAIN;
    }
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
    case 529: return "Overloaded"; /* Anthropic's, passed on to Anthropic clients */
    }
    return "Unknown";
}
