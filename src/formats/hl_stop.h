/* hl_stop: stop sequences applied by the gateway itself.
 *
 * OpenAI-compatible servers (llama.cpp, vLLM, OpenAI) stop at a stop sequence but do not say
 * which one matched, and an Anthropic client is owed stop_reason "stop_sequence" with the
 * sequence. For those the gateway keeps the stops from the upstream and cuts the text itself:
 * a whole answer with hl_stop_cut, a stream through an hl_stop_filter, which holds back the
 * text that could be the start of a stop sequence until the next piece decides. */
#ifndef HL_STOP_H
#define HL_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_buf.h"

typedef struct hl_stop_filter {
    char *const *stops; /* borrowed: outlives the filter; empty strings never match */
    size_t n;
    hl_buf held;        /* text that may begin a stop sequence, not passed on yet */
    int matched;        /* index of the stop that matched, -1 while none */
} hl_stop_filter;

void hl_stop_init(hl_stop_filter *f, char *const *stops, size_t n);
void hl_stop_release(hl_stop_filter *f);
/* Feeds the next piece of text; appends to out the text that is now known to come before any
 * stop sequence. Returns the index of the stop that matched (the text before it is in out;
 * later feeds append nothing), -1 while none did, -2 when out of memory. */
int hl_stop_feed(hl_stop_filter *f, const char *text, size_t len, hl_buf *out);
/* The text ended without a match: what was held back is text after all. HL_OK or
 * HL_ERR_NOMEM. */
hl_err hl_stop_flush(hl_stop_filter *f, hl_buf *out);
/* A whole text: cuts it (in place) at the earliest stop sequence; returns that stop's index,
 * or -1 when none occurs. */
int hl_stop_cut(char *const *stops, size_t n, char *text);

#endif
