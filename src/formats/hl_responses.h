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
#include "hl_sse.h"

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

/* ---- upstream: OpenAI cloud backends that speak Responses natively ---- */

/* Renders a Responses request (POST {base_url}/responses) from the internal request, for a
 * Responses client on an OpenAI cloud backend: a leading system message becomes
 * `instructions`, later ones system input items; user and assistant turns become message
 * items, assistant tool calls `function_call` items and tool results `function_call_output`
 * items; chat tools are flattened, tool_choice likewise; max_tokens is max_output_tokens,
 * response_format text.format, reasoning_effort reasoning.effort; store is false (nothing is
 * kept upstream either). Other passthrough fields have no Responses name and are dropped.
 * Fails only with the buffer's errors. */
hl_err hl_responses_write_upstream_request(hl_buf *out, const hl_chat_request *req, const char *model);

/* Parses a Responses `response` object into resp (initialized by the caller, released by the
 * caller in every case): output_text parts joined as the text, function_call items as tool
 * calls (call_id their id), usage, status incomplete as LENGTH (CONTENT_FILTER when
 * incomplete_details says so). HL_ERR_PARSE when the body is no response object. */
hl_err hl_responses_parse_upstream_response(const char *body, size_t len, hl_chat_response *resp);

/* Per-stream state of the Responses event decoder. */
#define HL_RESPONSES_MAX_CALLS 128
typedef struct hl_responses_decoder {
    bool started;
    int n_calls;                            /* function_call items seen: the next tool index */
    int call_output_index[HL_RESPONSES_MAX_CALLS]; /* output_index of each tool index */
} hl_responses_decoder;

void hl_responses_decoder_init(hl_responses_decoder *d);
/* Decodes one Responses SSE event into hl_stream_event(s) for sink: response.created START,
 * response.output_text.delta TEXT, response.output_item.added of a function_call and
 * response.function_call_arguments.delta TOOL_CALL, response.completed / .incomplete FINISH,
 * USAGE and DONE, `error` / response.failed ERROR; others are skipped. Returns the sink's
 * non-zero return, HL_ERR_PARSE for data that is not a JSON object, else 0. */
int hl_responses_decode_stream_event(hl_responses_decoder *d, const hl_sse_event *ev, hl_stream_sink sink,
                                     void *ud);

#endif
