/* hl_anthropic: the Anthropic Messages wire format, provider side.
 *
 * Translates hl_chat_request into a Messages request (system prompt lifted out of the
 * message list, consecutive same-role turns merged, tool calls and results as tool_use /
 * tool_result blocks, max_tokens always set because the API requires it) and decodes
 * Messages replies and SSE streams back into hl_chat_response / hl_stream_event.
 * The Anthropic ingress endpoint (/v1/messages) builds on this module later.
 *
 * Fields the Messages API cannot honour are refused by hl_anthropic_check_request() rather
 * than silently dropped: n > 1 is refused at ingress already; logprobs are refused here. */
#ifndef HL_ANTHROPIC_H
#define HL_ANTHROPIC_H

#include <stdbool.h>
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_sse.h"

#define HL_ANTHROPIC_VERSION "2023-06-01"
#define HL_ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* Returns HL_OK when req can be served by a Messages backend, else HL_ERR_UNSUPPORTED with err
 * filled (400, param named). */
hl_err hl_anthropic_check_request(const hl_chat_request *req, hl_api_error *err);

/* Writes the body for POST {base_url}/v1/messages. */
hl_err hl_anthropic_write_upstream_request(hl_buf *out, const hl_chat_request *req,
                                           const char *model);

hl_err hl_anthropic_parse_upstream_response(const char *body, size_t len, hl_chat_response *resp);

/* Stream decoding state: maps content-block indexes to tool-call indexes. */
typedef struct hl_anthropic_decoder {
    int tool_index_of_block[64]; /* -1: text block */
    int n_tools;
    hl_usage usage;              /* cumulative, as message_start/message_delta report it */
} hl_anthropic_decoder;

void hl_anthropic_decoder_init(hl_anthropic_decoder *d);
/* Decodes one SSE event (event name + data). Returns 0, the sink's non-zero result, or
 * HL_ERR_PARSE. */
int hl_anthropic_decode_stream_event(hl_anthropic_decoder *d, const hl_sse_event *sse,
                                     hl_stream_sink sink, void *ud);

#endif
