/* hl_anthropic: the Anthropic Messages wire format, both ways.
 *
 * Ingress (clients that speak Messages to us, POST /v1/messages): parse a request into
 * hl_chat_request (system blocks, text / tool_use / tool_result content, tools, tool_choice,
 * stop sequences), render hl_chat_response as a Message, stream events exactly as the API does
 * (message_start, ping, content_block_start/delta/stop, message_delta with cumulative usage,
 * message_stop) and errors as {"type":"error","error":{...},"request_id"}.
 *
 * Provider side:
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

/* ---- ingress ---- */

/* Parses and validates a client's Messages request. Image, document and thinking content
 * are refused with a 400 naming the field (the internal model carries text and tools). */
hl_err hl_anthropic_parse_request(const char *body, size_t len, hl_chat_request *req,
                                  hl_api_error *err);
hl_err hl_anthropic_write_response(hl_buf *out, const hl_chat_response *resp, const char *id,
                                   long created);
/* {"type":"error","error":{"type","message"},"request_id"}. */
hl_err hl_anthropic_write_error(hl_buf *out, const hl_api_error *err, const char *request_id);
/* HTTP status an Anthropic client gets for err (overloaded backends: 529). */
int hl_anthropic_error_status(const hl_api_error *err);

typedef struct hl_anthropic_encoder {
    const char *id;       /* borrowed */
    char model[128];
    bool started;         /* message_start sent */
    int next_block;       /* index of the next content block */
    int open_block;       /* index of the open block, -1 when none */
    bool open_is_tool;
    int open_tool;        /* tool index of the open tool_use block */
    int block_of_tool[64];/* tool index -> block index, -1 unknown */
    hl_finish finish;
    bool has_stop_sequence;
    char stop_sequence[256]; /* the matched stop sequence (the API caps them well below this) */
    hl_usage usage;
} hl_anthropic_encoder;

void hl_anthropic_encoder_init(hl_anthropic_encoder *enc, const char *id, const char *model);
hl_err hl_anthropic_encode_event(hl_anthropic_encoder *enc, const hl_stream_event *ev, hl_buf *out);
/* Closes the open block and sends message_delta (stop reason, cumulative usage) and
 * message_stop. */
hl_err hl_anthropic_encode_end(hl_anthropic_encoder *enc, const hl_usage *usage, hl_buf *out);
/* event: error, for a stream that cannot go on. */
hl_err hl_anthropic_encode_error(const hl_api_error *err, const char *request_id, hl_buf *out);

#endif
