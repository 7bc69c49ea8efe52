/* hl_upstream_wire: the bytes of the built-in HTTP/1.1 client (see hl_upstream_int.h).
 *
 * Pure functions, no sockets, no allocation: splitting an http:// URL, writing the request
 * head, parsing the response head and framing the body. hl_upstream_http.c drives them from
 * its connections; the unit tests and the fuzz target (test/fuzz/fuzz_upstream_http.c) call
 * them directly.
 *
 * The request: "POST|GET target HTTP/1.1", the caller's header lines, Host, Content-Length
 * (when there is a body; never chunked), a blank line. No Accept-Encoding: bodies stay
 * identity.
 *
 * The response, as parsed here (RFC 9112), byte by byte:
 *   status line  "HTTP/1." DIGIT SP 3DIGIT [SP reason] CRLF   (reason: no control bytes)
 *   header lines token ":" OWS value OWS CRLF                 (value: no control bytes but HTAB)
 *   blank line   CRLF
 *   body         none for 1xx/204/304; else chunked when Transfer-Encoding ends in "chunked";
 *                else Content-Length bytes; else everything until the server closes.
 * A bare LF may end a line of the head (CRLF everywhere in chunked framing: hl_http's
 * decoder). Rejected: a head over HL__UPSTREAM_HEAD_MAX, obs-fold, bare CR, control bytes,
 * conflicting Content-Length values, transfer codings other than chunked (we never offer any).
 * 1xx responses (100 Continue, 103 Early Hints) are skipped; 101 is an error (we never ask to
 * switch protocols). A server that sends both Transfer-Encoding and Content-Length gets the
 * former honoured and its connection closed after the response. */
#include "hl_upstream_int.h"

#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ the response parser */

/* RFC 9110 tchar: the bytes of a field name. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool is_tchar(unsigned char ch) { return tchar[ch]; }

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Visible bytes, SP, HTAB and obs-text: what a field value or reason phrase may hold. */
static bool is_field_byte(unsigned char ch) { return ch == '\t' || (ch >= 0x20 && ch != 0x7f); }

/* Every byte of p[0..n) is a field byte. Eight at a time while none is a control byte or DEL
 * (the flags are exact for the lowest such byte, which is where the byte loop takes over). */
static bool field_bytes(const char *p, size_t n) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v, del;
        memcpy(&v, p + i, 8);
        del = v ^ (ones * 0x7f);
        if ((((v - ones * 0x20) & ~v) | ((del - ones) & ~del)) & highs) break;
    }
    for (; i < n; i++)
        if (!is_field_byte((unsigned char)p[i])) return false;
    return true;
}

/* p[0..n) is lit, ignoring case: a macro so that the literal's length is a constant. */
#define slice_is(p, n, lit) ((n) == sizeof(lit) - 1 && !strncasecmp((p), (lit), sizeof(lit) - 1))

/* Calls fn for each element of a comma-separated list value; stops when fn returns false. */
static bool for_each_token(const char *p, size_t n, bool (*fn)(void *, const char *, size_t), void *ud) {
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && p[i] != ',') i++;
        size_t e = i++;
        while (s < e && is_ows(p[s])) s++;
        while (e > s && is_ows(p[e - 1])) e--;
        if (e > s && !fn(ud, p + s, e - s)) return false;
    }
    return true;
}

typedef struct head_state {
    bool te;          /* a Transfer-Encoding field was present */
    bool te_chunked;  /* its last coding is chunked */
    bool te_bad;      /* a coding we cannot decode, or chunked not last */
    bool cl;          /* a Content-Length field was present */
    bool cl_bad;
    uint64_t cl_value;
    bool conn_close, conn_keep_alive;
} head_state;

static bool te_token(void *ud, const char *p, size_t n) {
    head_state *st = ud;
    if (slice_is(p, n, "identity")) return true; /* obsolete, means nothing */
    if (st->te_chunked || !slice_is(p, n, "chunked")) st->te_bad = true;
    else st->te_chunked = true;
    return true;
}

static bool conn_token(void *ud, const char *p, size_t n) {
    head_state *st = ud;
    if (slice_is(p, n, "close")) st->conn_close = true;
    else if (slice_is(p, n, "keep-alive")) st->conn_keep_alive = true;
    return true;
}

static bool parse_content_length(const char *p, size_t n, uint64_t *out) {
    if (n == 0 || n > 18) return false; /* 18 digits: far beyond any body, no overflow */
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* One header line [s, e) (line end excluded, trailing CR removed): validates it and splits it. */
static bool split_header(const char *buf, size_t s, size_t e, hl_slice *name, hl_slice *value) {
    size_t i = s;
    while (i < e && is_tchar((unsigned char)buf[i])) i++;
    if (i == s || i == e || buf[i] != ':') return false;
    name->p = buf + s;
    name->n = i - s;
    size_t v = i + 1;
    if (!field_bytes(buf + v, e - v)) return false;
    while (v < e && is_ows(buf[v])) v++;
    while (e > v && is_ows(buf[e - 1])) e--;
    value->p = buf + v;
    value->n = e - v;
    return true;
}

/* The line starting at s: sets *e to its end (CR of CRLF, or LF) and returns the index after
 * its LF. The caller knows an LF follows. */
static size_t line_end(const char *buf, size_t s, size_t len, size_t *e) {
    const char *nl = memchr(buf + s, '\n', len - s);
    size_t end = (size_t)(nl - buf);
    *e = end > s && buf[end - 1] == '\r' ? end - 1 : end;
    return end + 1;
}

/* The status code of the status line buf[0..e) ("HTTP/1.x NNN reason"), or -1. */
static int status_line(const char *buf, size_t e) {
    if (e < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ' ||
        (e > 12 && buf[12] != ' '))
        return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return -1;
        status = status * 10 + (buf[i] - '0');
    }
    if (e > 12 && !field_bytes(buf + 12, e - 12)) return -1;
    return status < 100 ? -1 : status;
}

/* How the body is delimited, and whether the connection stays open after it (RFC 9112 6.3). */
static hl_err body_framing(const head_state *st, int status, bool http10, hl__upstream_head *out,
                           const char **why) {
    out->keep_alive = http10 ? st->conn_keep_alive && !st->conn_close : !st->conn_close;
    if (status < 200 || status == 204 || status == 304) {
        out->body = HL__UPSTREAM_BODY_NONE;
    } else if (st->te) {
        if (st->te_bad) {
            *why = "unsupported Transfer-Encoding in the response";
            return HL_ERR_UNSUPPORTED;
        }
        if (st->te_chunked) {
            out->body = HL__UPSTREAM_BODY_CHUNKED;
        } else {
            out->body = HL__UPSTREAM_BODY_CLOSE;
            out->keep_alive = false;
        }
        if (st->cl) out->keep_alive = false; /* a smuggling attempt or a broken server */
    } else if (st->cl) {
        if (st->cl_bad) {
            *why = "malformed Content-Length in the response";
            return HL_ERR_PARSE;
        }
        out->body = st->cl_value ? HL__UPSTREAM_BODY_LENGTH : HL__UPSTREAM_BODY_NONE;
        out->content_length = st->cl_value;
    } else {
        out->body = HL__UPSTREAM_BODY_CLOSE;
        out->keep_alive = false;
    }
    return HL_OK;
}

hl_err hl__upstream_parse_head(const char *buf, size_t len, size_t *scan, hl__upstream_head *out,
                               size_t *head_len, const char **why) {
    /* Find the blank line. *scan always sits at the start of a line not yet seen whole. */
    size_t p = *scan, end = 0;
    for (;;) {
        const char *nl = memchr(buf + p, '\n', len - p);
        if (!nl) break;
        size_t e = (size_t)(nl - buf);
        if (e == p || (e == p + 1 && buf[p] == '\r')) {
            if (p == 0) {
                *why = "malformed response status line";
                return HL_ERR_PARSE;
            }
            end = e + 1;
            break;
        }
        p = e + 1;
        if (p > HL__UPSTREAM_HEAD_MAX) break;
    }
    if (!end || end > HL__UPSTREAM_HEAD_MAX) {
        *scan = p;
        if (end > HL__UPSTREAM_HEAD_MAX || p > HL__UPSTREAM_HEAD_MAX || len >= HL__UPSTREAM_HEAD_MAX) {
            *why = "response headers over 64 KiB";
            return HL_ERR_LIMIT;
        }
        return HL_ERR_AGAIN;
    }

    /* The status line. */
    size_t s = 0, e;
    p = line_end(buf, s, end, &e);
    int status = status_line(buf, e);
    if (status < 0) {
        *why = "malformed response status line";
        return HL_ERR_PARSE;
    }
    bool http10 = buf[7] == '0';

    /* The header lines. */
    head_state st;
    memset(&st, 0, sizeof st);
    hl_slice ct = {"", 0};
    while (p < end) {
        s = p;
        p = line_end(buf, s, end, &e);
        if (e == s) break; /* the blank line */
        hl_slice name, value;
        if (is_ows(buf[s])) {
            *why = "obsolete line folding in a response header";
            return HL_ERR_PARSE;
        }
        if (!split_header(buf, s, e, &name, &value)) {
            *why = "malformed response header";
            return HL_ERR_PARSE;
        }
        if (slice_is(name.p, name.n, "content-length")) {
            uint64_t v = 0;
            if (!parse_content_length(value.p, value.n, &v) || (st.cl && v != st.cl_value)) st.cl_bad = true;
            st.cl = true;
            st.cl_value = v;
        } else if (slice_is(name.p, name.n, "transfer-encoding")) {
            st.te = true;
            for_each_token(value.p, value.n, te_token, &st);
        } else if (slice_is(name.p, name.n, "connection")) {
            for_each_token(value.p, value.n, conn_token, &st);
        } else if (slice_is(name.p, name.n, "content-type")) {
            ct = value;
        }
    }

    memset(out, 0, sizeof *out);
    out->status = status;
    out->content_type = ct;
    hl_err err = body_framing(&st, status, http10, out, why);
    if (err) return err;
    *head_len = end;
    *scan = 0;
    return HL_OK;
}

bool hl__upstream_next_header(const char *head, size_t head_len, size_t *pos, hl_slice *name,
                              hl_slice *value) {
    size_t p = *pos, e;
    if (p == 0) p = line_end(head, 0, head_len, &e); /* the status line */
    if (p >= head_len) return false;
    size_t next = line_end(head, p, head_len, &e);
    if (e == p) return false;
    *pos = next;
    /* hl__upstream_parse_head checked every line (a name of tchars, a colon, field bytes):
     * only the split is left to do. */
    const char *colon = memchr(head + p, ':', e - p);
    size_t v = (size_t)(colon - head) + 1;
    while (v < e && is_ows(head[v])) v++;
    while (e > v && is_ows(head[e - 1])) e--;
    *name = (hl_slice){head + p, (size_t)(colon - head) - p};
    *value = (hl_slice){head + v, e - v};
    return true;
}

void hl__upstream_body_init(hl__upstream_body *b, const hl__upstream_head *head) {
    memset(b, 0, sizeof *b);
    b->mode = head->body;
    b->remaining = head->content_length;
    hl_http_chunked_init(&b->chunked, SIZE_MAX);
}

hl_err hl__upstream_body_feed(hl__upstream_body *b, char *buf, size_t len, size_t *consumed,
                              size_t *out_len, const char **why) {
    *consumed = *out_len = 0;
    switch (b->mode) {
    case HL__UPSTREAM_BODY_LENGTH: {
        size_t n = len < b->remaining ? len : (size_t)b->remaining;
        b->remaining -= n;
        *consumed = *out_len = n;
        return b->remaining ? HL_ERR_AGAIN : HL_OK;
    }
    case HL__UPSTREAM_BODY_CHUNKED: {
        if (!len) return HL_ERR_AGAIN;
        int status;
        hl_err e = hl_http_chunked_decode(&b->chunked, buf, len, consumed, out_len, &status);
        if (e == HL_OK || e == HL_ERR_AGAIN) return e;
        *why = e == HL_ERR_LIMIT ? "chunk-size line or trailers of the response over their limit"
                                 : "malformed chunked framing in the response body";
        return HL_ERR_PARSE;
    }
    case HL__UPSTREAM_BODY_CLOSE:
        *consumed = *out_len = len;
        return HL_ERR_AGAIN;
    default:
        return HL_OK;
    }
}

/* ------------------------------------------------------------------ URLs */

static bool host_byte(unsigned char ch, bool literal6) {
    if (literal6) return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') ||
                         ch == ':' || ch == '.';
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '-' || ch == '_';
}

bool hl__upstream_http_url(const char *url, hl__upstream_url *out) {
    if (strncasecmp(url, "http://", 7) != 0) return false;
    const char *a = url + 7, *p = a;
    while (*p && *p != '/' && *p != '?' && *p != '#') p++;
    const char *h = a, *he;
    bool literal6 = *a == '[';
    if (literal6) {
        h = a + 1;
        he = memchr(h, ']', (size_t)(p - h));
        if (!he) return false;
    } else {
        he = memchr(h, ':', (size_t)(p - h));
        if (!he) he = p;
    }
    if (he == h || he - h > HL__UPSTREAM_HOST_MAX) return false;
    for (const char *q = h; q < he; q++)
        if (!host_byte((unsigned char)*q, literal6)) return false;
    const char *after = literal6 ? he + 1 : he;
    uint32_t port = 80;
    if (after < p) {
        if (*after != ':' || after + 1 == p || p - after > 6) return false;
        port = 0;
        for (const char *q = after + 1; q < p; q++) {
            if (*q < '0' || *q > '9') return false;
            port = port * 10 + (uint32_t)(*q - '0');
        }
        if (port == 0 || port > 65535) return false;
    }
    if (*p == '?' || *p == '#') return false; /* curl knows what to make of these */
    size_t tn = strlen(p);
    for (size_t i = 0; i < tn; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#') return false;
    }
    out->host = (hl_slice){h, (size_t)(he - h)};
    out->authority = (hl_slice){a, (size_t)(p - a)};
    out->port = (uint16_t)port;
    out->target = tn ? (hl_slice){p, tn} : (hl_slice){"/", 1};
    return true;
}

/* ------------------------------------------------------------------ the request head */

static size_t put(char *out, size_t at, const char *s, size_t n) {
    if (out) memcpy(out + at, s, n);
    return at + n;
}

static size_t put_u64(char *out, size_t at, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
    while ((v /= 10) && n < sizeof tmp);
    return put(out, at, tmp + sizeof tmp - n, n);
}

/* Writes the request head into out (NULL: only measures); returns its length, or 0 when a
 * header line is unusable (CR or LF in it, no name). Header lines are curl's: "Name:
 * value" sent as is, "Name:" with an empty value suppresses the header (we add none of those
 * but Host), "Name;" sends it empty. The caller's Content-Length and Transfer-Encoding are
 * dropped: the body's length is ours to state. */
size_t hl__upstream_build_head(char *out, const hl__upstream_url *url, const char *headers, size_t headers_len,
                               const char *body, size_t body_len) {
    size_t at = 0;
    bool own_host = false;
    at = body ? put(out, at, "POST ", 5) : put(out, at, "GET ", 4);
    at = put(out, at, url->target.p, url->target.n);
    at = put(out, at, " HTTP/1.1\r\n", 11);
    for (const char *line = headers, *end = headers ? headers + headers_len : NULL; line && line < end;
         line += strlen(line) + 1) {
        size_t n = strlen(line), name_len = 0;
        while (name_len < n && is_tchar((unsigned char)line[name_len])) name_len++;
        if (name_len == 0 || name_len == n || (line[name_len] != ':' && line[name_len] != ';')) return 0;
        if (memchr(line, '\r', n) || memchr(line, '\n', n)) return 0; /* header injection */
        if (slice_is(line, name_len, "content-length") || slice_is(line, name_len, "transfer-encoding")) continue;
        if (line[name_len] == ';') {
            if (name_len + 1 != n) return 0;
            at = put(out, at, line, name_len);
            at = put(out, at, ":\r\n", 3);
            continue;
        }
        size_t v = name_len + 1;
        while (v < n && is_ows(line[v])) v++;
        if (v == n) continue; /* "Name:" */
        if (slice_is(line, name_len, "host")) own_host = true;
        at = put(out, at, line, n);
        at = put(out, at, "\r\n", 2);
    }
    if (!own_host) {
        at = put(out, at, "Host: ", 6);
        at = put(out, at, url->authority.p, url->authority.n);
        at = put(out, at, "\r\n", 2);
    }
    if (body) {
        at = put(out, at, "Content-Length: ", 16);
        at = put_u64(out, at, body_len);
        at = put(out, at, "\r\n", 2);
    }
    return put(out, at, "\r\n", 2);
}

