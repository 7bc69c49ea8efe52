/* hl_sse: an incremental Server-Sent Events parser (the WHATWG event-stream format), used
 * to read upstream streams from OpenAI-compatible and Anthropic backends.
 *
 * Feed it bytes as they arrive in any split. Lines end in CRLF, LF or CR (a CRLF split
 * across two feeds counts once). "data:" lines of one event are joined with "\n"; one space
 * after the colon is dropped; lines starting with ':' are comments; a blank line dispatches
 * the event, unless it has no data and no event name. A UTF-8 BOM at the very start is
 * skipped. Fields other than event/data/id/retry are ignored.
 *
 * Every event must fit max_event_bytes: a larger one is HL_ERR_LIMIT, never a silent cut.
 * (Its data, name and id must each fit; a line may be at most max_event_bytes + 16 bytes;
 * 0 means no practical limit, as with hl_buf.) The events and the result never depend on how
 * the stream was split. An error is sticky until hl_sse_finish(). */
#ifndef HL_SSE_H
#define HL_SSE_H

#include <stddef.h>
#include "hl_buf.h"
#include "hl_err.h"

typedef struct hl_sse_event {
    const char *event; /* "" when the event had no "event:" field; borrowed */
    const char *data;  /* joined data lines, NUL-terminated; borrowed */
    size_t data_len;
    const char *id;    /* last id seen, "" when none; borrowed */
} hl_sse_event;

/* Called once per dispatched event. Strings are valid only during the call. A non-zero
 * return stops hl_sse_feed(), which returns that value (the rest of buf is not parsed). */
typedef int (*hl_sse_cb)(void *ud, const hl_sse_event *ev);

typedef struct hl_sse {
    hl_buf line;   /* private: the partial line being read */
    hl_buf data;   /* private: data of the event being built */
    hl_buf event;  /* private: event name */
    hl_buf id;     /* private */
    int flags;     /* private */
    size_t max_event_bytes;
} hl_sse;

void hl_sse_init(hl_sse *p, size_t max_event_bytes);
void hl_sse_release(hl_sse *p);
/* Parses buf[0..len), calling cb for each complete event. Returns HL_OK, HL_ERR_LIMIT,
 * HL_ERR_NOMEM, or the callback's non-zero result. */
int hl_sse_feed(hl_sse *p, const char *buf, size_t len, hl_sse_cb cb, void *ud);
/* End of stream: an event without its final blank line is discarded, as the spec says. The
 * parser is then as if just initialized (allocations kept), ready for another stream. */
void hl_sse_finish(hl_sse *p);

#endif
