/* hl_responses: the OpenAI Responses API (POST /v1/responses) as a client-facing format.
 *
 * Codex CLI speaks nothing else, and the openai SDK's client.responses, the Vercel AI SDK's
 * default OpenAI provider and LangChain's useResponsesApi use it. A Responses request maps
 * onto the internal chat model (hl_chat.h), so it gets the same privacy, routing, retries,
 * fallbacks, budgets and ledger as chat, through every backend kind; the answer is rendered
 * back as a `response` object or as the Responses event stream (api-contracts.md).
 *
 * Stateless only: `previous_response_id` (and `conversation`, `item_reference` items,
 * `background`) need responses stored server-side and are refused with a 400; `store` is
 * accepted and nothing is kept.
 *
 * All writers append to an hl_buf and fail only with the buffer's errors. */
#ifndef HL_RESPONSES_H
#define HL_RESPONSES_H

#include <stdbool.h>
#include "hl_buf.h"
#include "hl_chat.h"

/* Parses and validates a client's Responses body into req (initialized by the caller):
 * `instructions` becomes the first system message, `input` items become messages (a
 * function_call joins the assistant turn before it, a function_call_output becomes a tool
 * message), flat function tools become OpenAI chat tools, `max_output_tokens` max_tokens,
 * `text.format` response_format and `reasoning.effort` reasoning_effort (in passthrough, for
 * OpenAI-kind backends; Anthropic ones refuse a structured format). On a bad request returns
 * HL_ERR_INVAL with err filled (status 400, param named as the Responses API names it);
 * HL_ERR_NOMEM otherwise. req must be released by the caller in every case. */
hl_err hl_responses_parse_request(const char *body, size_t len, hl_chat_request *req,
                                  hl_api_error *err);

/* Renders a complete `response` object; id is the response id ("resp_..."). */
hl_err hl_responses_write_response(hl_buf *out, const hl_chat_response *resp, const char *id,
                                   long created);

/* Renders {"error":{"message","type","param","code"}}, with the chat names of parameters that
 * a backend check reported (max_tokens, response_format, messages) put in Responses terms. */
hl_err hl_responses_write_error(hl_buf *out, const hl_api_error *err);

/* Stream encoder: hl_stream_event in, Responses events out (event: <type> / data: {...},
 * sequence_number 0, 1, ... on every event). It keeps the text and arguments of the output
 * items, since the .done events and response.completed repeat them whole. Owns its buffers:
 * release with hl_responses_encoder_release (init may be called again after a release). */
typedef struct hl_responses_encoder {
    const char *id;       /* borrowed: the response id */
    char model[128];
    long created;
    long seq;             /* next sequence_number */
    bool started;         /* response.created and response.in_progress sent */
    int n_items;          /* output items opened so far (the next output_index) */
    int open;             /* 0 none, 1 a message, 2 a function call is the open item */
    int fc_index;         /* the upstream's index of the open function call */
    char *fc_call_id, *fc_name; /* the open function call's (owned) */
    hl_buf text;          /* the open item's text or arguments */
    hl_buf done_items;    /* the closed items' JSON, comma-separated, in output order */
    hl_finish finish;
    bool ended;           /* a terminal event went out */
} hl_responses_encoder;

void hl_responses_encoder_init(hl_responses_encoder *enc, const char *id, const char *model,
                               long created);
void hl_responses_encoder_release(hl_responses_encoder *enc);
/* Appends the events for ev (possibly none) to out. */
hl_err hl_responses_encode_event(hl_responses_encoder *enc, const hl_stream_event *ev, hl_buf *out);
/* Closes the open item and appends response.completed (response.incomplete when the answer
 * was cut by max_output_tokens or a content filter) with the full output and usage. */
hl_err hl_responses_encode_end(hl_responses_encoder *enc, const hl_usage *usage, hl_buf *out);
/* Appends an `error` event (spec fields flat, and nested under "error" as the openai SDK
 * needs to raise it) and then response.failed, for a stream that cannot go on. */
hl_err hl_responses_encode_error(hl_responses_encoder *enc, const hl_api_error *err, hl_buf *out);

#endif
