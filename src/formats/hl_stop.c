/* hl_stop: the gateway's own stop sequences (see hl_stop.h). */
#include "hl_stop.h"

#include <string.h>

/* The earliest stop in [p, p+len): its index, *at its offset; -1 when none. At one offset the
 * longer stop wins (it is the one that was completed). */
static int earliest(char *const *stops, size_t n, const char *p, size_t len, size_t *at) {
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        size_t sl = strlen(stops[i]);
        if (!sl || sl > len) continue;
        const char *hit = memmem(p, len, stops[i], sl);
        if (!hit) continue;
        size_t off = (size_t)(hit - p);
        if (best < 0 || off < *at || (off == *at && sl > strlen(stops[best]))) {
            best = (int)i;
            *at = off;
        }
    }
    return best;
}

/* The longest tail of [p, p+len) that is a proper prefix of some stop. */
static size_t held_tail(char *const *stops, size_t n, const char *p, size_t len) {
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sl = strlen(stops[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > keep; k--)
            if (k <= len && !memcmp(p + len - k, stops[i], k)) {
                keep = k;
                break;
            }
    }
    return keep;
}

void hl_stop_init(hl_stop_filter *f, char *const *stops, size_t n) {
    f->stops = stops;
    f->n = n;
    f->matched = -1;
    hl_buf_init(&f->held, 0);
}

void hl_stop_release(hl_stop_filter *f) { hl_buf_release(&f->held); }

int hl_stop_feed(hl_stop_filter *f, const char *text, size_t len, hl_buf *out) {
    if (f->matched >= 0) return f->matched;
    if (len && hl_buf_append(&f->held, text, len)) return -2;
    size_t at = 0;
    int m = earliest(f->stops, f->n, f->held.data ? f->held.data : "", f->held.len, &at);
    if (m >= 0) {
        if (at && hl_buf_append(out, f->held.data, at)) return -2;
        f->matched = m;
        hl_buf_reset(&f->held);
        return m;
    }
    size_t keep = held_tail(f->stops, f->n, f->held.data ? f->held.data : "", f->held.len);
    size_t pass = f->held.len - keep;
    if (pass) {
        if (hl_buf_append(out, f->held.data, pass)) return -2;
        memmove(f->held.data, f->held.data + pass, keep);
        f->held.len = keep;
        f->held.data[keep] = '\0';
    }
    return -1;
}

hl_err hl_stop_flush(hl_stop_filter *f, hl_buf *out) {
    if (f->matched >= 0 || !f->held.len) return HL_OK;
    hl_err e = hl_buf_append(out, f->held.data, f->held.len);
    hl_buf_reset(&f->held);
    return e;
}

int hl_stop_cut(char *const *stops, size_t n, char *text) {
    if (!text) return -1;
    size_t at = 0;
    int m = earliest(stops, n, text, strlen(text), &at);
    if (m >= 0) text[at] = '\0';
    return m;
}
