/* hl_sse: the Server-Sent Events parser (see hl_sse.h).
 *
 * Upstream streams are where the gateway spends its time, so the common path copies each
 * byte once: a line that arrives whole in one feed is parsed where it lies, and only its
 * value is copied into the event being built. Only a line cut by the end of a feed is
 * buffered until its end arrives. Line ends are found with memchr, and the position of the
 * next LF is remembered across lines so that a CR-only stream stays linear.
 *
 * Limits are checked the same way whether a line came whole or in pieces, so the events
 * and the error a stream produces never depend on how it was split: the data of an event,
 * its name and its id must each fit max_event_bytes, and a line may be at most
 * max_event_bytes plus LINE_SLACK bytes (room for "event: " and the like). A limit error is
 * sticky until hl_sse_finish(). */
#include "hl_sse.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define LINE_SLACK 16

enum {
    F_HAS_DATA = 1 << 0,  /* the event being built has had a data field */
    F_AFTER_CR = 1 << 1,  /* the last line ended in CR: an LF right after it belongs to it */
    F_STARTED = 1 << 2,   /* past the place where a BOM may be */
    F_BOM_SHIFT = 3,      /* bits 3-4: bytes of a BOM matched so far, across feeds */
    F_BOM_MASK = 3 << F_BOM_SHIFT,
    F_FAIL_LIMIT = 1 << 5,
    F_FAIL_NOMEM = 1 << 6,
};

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

void hl_sse_init(hl_sse *p, size_t max_event_bytes) {
    size_t line_max = 0;
    if (max_event_bytes)
        line_max = max_event_bytes < SIZE_MAX / 2 - LINE_SLACK ? max_event_bytes + LINE_SLACK
                                                               : SIZE_MAX / 2;
    hl_buf_init(&p->line, line_max);
    hl_buf_init(&p->data, max_event_bytes);
    hl_buf_init(&p->event, max_event_bytes);
    hl_buf_init(&p->id, max_event_bytes);
    p->flags = 0;
    p->max_event_bytes = max_event_bytes;
}

void hl_sse_release(hl_sse *p) {
    hl_buf_release(&p->line);
    hl_buf_release(&p->data);
    hl_buf_release(&p->event);
    hl_buf_release(&p->id);
    p->flags = 0;
}

void hl_sse_finish(hl_sse *p) {
    hl_buf_reset(&p->line);
    hl_buf_reset(&p->data);
    hl_buf_reset(&p->event);
    hl_buf_reset(&p->id);
    p->flags = 0;
}

/* Records a buffer error so that later feeds return it too. */
static int fail(hl_sse *p, hl_err err) {
    p->flags |= err == HL_ERR_LIMIT ? F_FAIL_LIMIT : F_FAIL_NOMEM;
    return err;
}

static const char *str_or_empty(const hl_buf *b) { return b->data ? b->data : ""; }

static int dispatch(hl_sse *p, hl_sse_cb cb, void *ud) {
    int rc = 0;
    if ((p->flags & F_HAS_DATA) || p->event.len) {
        hl_sse_event ev = {
            .event = str_or_empty(&p->event),
            .data = str_or_empty(&p->data),
            .data_len = p->data.len,
            .id = str_or_empty(&p->id),
        };
        if (cb) rc = cb(ud, &ev);
    }
    hl_buf_reset(&p->data);
    hl_buf_reset(&p->event);
    p->flags &= ~F_HAS_DATA;
    return rc;
}

/* Interprets one line (its terminator removed). */
static int process_line(hl_sse *p, const char *line, size_t n, hl_sse_cb cb, void *ud) {
    if (n == 0) return dispatch(p, cb, ud);
    if (line[0] == ':') return HL_OK; /* comment */
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    size_t vn = n - (size_t)(v - line);
    if (vn && *v == ' ') {
        v++;
        vn--;
    }
    hl_err err = HL_OK;
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if ((p->flags & F_HAS_DATA) && (err = hl_buf_append(&p->data, "\n", 1))) goto out;
        err = hl_buf_append(&p->data, v, vn);
        p->flags |= F_HAS_DATA;
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        hl_buf_reset(&p->event);
        err = hl_buf_append(&p->event, v, vn);
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        if (!memchr(v, '\0', vn)) { /* the spec ignores ids holding NUL */
            hl_buf_reset(&p->id);
            err = hl_buf_append(&p->id, v, vn);
        }
    }
    /* "retry" only matters to a reconnecting client; other fields are ignored by the spec. */
out:
    return err ? fail(p, err) : HL_OK;
}

static int feed_bytes(hl_sse *p, const char *buf, size_t len, hl_sse_cb cb, void *ud) {
    size_t i = 0;
    if ((p->flags & F_AFTER_CR) && len) {
        if (buf[0] == '\n') i = 1;
        p->flags &= ~F_AFTER_CR;
    }
    /* The next LF at or after i, or NULL when there is none left in buf; searched again only
     * once i has moved past it. */
    const char *lf = NULL;
    bool lf_known = false;
    while (i < len) {
        const char *s = buf + i;
        size_t rest = len - i;
        if (!lf_known || (lf && lf < s)) {
            lf = memchr(s, '\n', rest);
            lf_known = true;
        }
        size_t upto = lf ? (size_t)(lf - s) : rest;
        const char *cr = memchr(s, '\r', upto);
        size_t eol = cr ? (size_t)(cr - s) : upto;
        if (!cr && !lf) { /* the line goes on in the next feed */
            hl_err err = hl_buf_append(&p->line, s, rest);
            return err ? fail(p, err) : HL_OK;
        }
        size_t next = eol + 1;
        if (cr) {
            if (next < rest) {
                if (s[next] == '\n') next++;
            } else {
                p->flags |= F_AFTER_CR;
            }
        }
        const char *line = s;
        size_t n = eol;
        if (p->line.len) {
            hl_err err = hl_buf_append(&p->line, s, eol);
            if (err) return fail(p, err);
            line = p->line.data;
            n = p->line.len;
        } else if (p->line.max < n) {
            return fail(p, HL_ERR_LIMIT);
        }
        int rc = process_line(p, line, n, cb, ud);
        hl_buf_reset(&p->line);
        if (rc) return rc;
        i += next;
    }
    return HL_OK;
}

int hl_sse_feed(hl_sse *p, const char *buf, size_t len, hl_sse_cb cb, void *ud) {
    if (p->flags & F_FAIL_LIMIT) return HL_ERR_LIMIT;
    if (p->flags & F_FAIL_NOMEM) return HL_ERR_NOMEM;
    if (!(p->flags & F_STARTED)) {
        /* Match the BOM byte by byte: it may be split across feeds too. */
        size_t m = (size_t)(p->flags & F_BOM_MASK) >> F_BOM_SHIFT, i = 0;
        while (m < 3 && i < len && (unsigned char)buf[i] == bom[m]) {
            m++;
            i++;
        }
        if (m < 3 && i == len) {
            p->flags = (p->flags & ~F_BOM_MASK) | (int)(m << F_BOM_SHIFT);
            return HL_OK;
        }
        p->flags = (p->flags & ~F_BOM_MASK) | F_STARTED;
        if (m == 3) {
            buf += i;
            len -= i;
        } else if (m > i) {
            /* A false start: the bytes matched in earlier feeds were text after all. The
             * ones matched in this feed are still in buf. */
            int rc = feed_bytes(p, (const char *)bom, m - i, cb, ud);
            if (rc) return rc;
        }
    }
    return feed_bytes(p, buf, len, cb, ud);
}
