/* hl_openai: the OpenAI Chat Completions wire format, both ways.
 *
 * Ingress (clients that speak OpenAI to us): parse a request body into hl_chat_request,
 * render hl_chat_response, stream chunks and errors exactly as the OpenAI contract says
 * (../shared/reference/api-contracts.md).
 * Provider side (OpenAI and OpenAI-compatible upstreams: vLLM, llama.cpp server, Ollama):
 * write the upstream request body, parse its reply, decode its SSE chunks into
 * hl_stream_event.
 *
 * All writers append to an hl_buf and fail only with the buffer's errors. */
#ifndef HL_OPENAI_H
#define HL_OPENAI_H

#include <stdbool.h>
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_sse.h"

/* ---- ingress ---- */

/* Parses and validates a client's request body into req (initialized by the caller).
 * On a bad request returns HL_ERR_INVAL with err filled (status 400, param named);
 * HL_ERR_NOMEM otherwise. req must be released by the caller in every case. */
hl_err hl_openai_parse_request(const char *body, size_t len, hl_chat_request *req,
                               hl_api_error *err);
/* The same with jansson only; and the one-pass reader of the common request alone
 * (hl_openai_request.c: model, messages of text, the sampling fields; no tools, metadata or
 * other fields), which fills req only when it returns HL_OK and otherwise gives up with
 * HL_ERR_UNSUPPORTED (also on malformed input: the full parser gives the error) or fails with
 * HL_ERR_NOMEM, leaving req as it was. Both exposed for tests and the fuzz target. */
hl_err hl_openai_parse_request_full(const char *body, size_t len, hl_chat_request *req,
                                    hl_api_error *err);
hl_err hl_openai_request_fast(const char *body, size_t len, hl_chat_request *req);

/* Renders a complete chat.completion object. id and model are what the client sees. */
hl_err hl_openai_write_response(hl_buf *out, const hl_chat_response *resp, const char *id,
                                long created);

/* Renders {"error":{"message","type","param","code"}}. */
hl_err hl_openai_write_error(hl_buf *out, const hl_api_error *err);

/* Stream encoder: turns hl_stream_event into chat.completion.chunk frames. */
typedef struct hl_openai_encoder {
    const char *id;      /* borrowed; same on every chunk */
    char model[128];     /* upstream model, from HL_EV_START */
    long created;
    bool include_usage;  /* client asked stream_options.include_usage */
    bool started;        /* the role chunk has been sent */
    bool finished;       /* a finish_reason chunk has been sent */
    hl_usage usage;      /* last usage seen (cumulative) */
} hl_openai_encoder;

void hl_openai_encoder_init(hl_openai_encoder *enc, const char *id, const char *model,
                            long created, bool include_usage);
/* Appends the frames for ev (possibly none) to out. */
hl_err hl_openai_encode_event(hl_openai_encoder *enc, const hl_stream_event *ev, hl_buf *out);
/* Appends the usage chunk (when the client asked for it) and data: [DONE]. usage is the
 * final figure the ledger recorded. */
hl_err hl_openai_encode_end(hl_openai_encoder *enc, const hl_usage *usage, hl_buf *out);
/* Appends an error frame (data: {"error":{...}}) for a stream that cannot go on. */
hl_err hl_openai_encode_error(const hl_api_error *err, hl_buf *out);

/* ---- provider side ---- */

/* Writes the body for POST {base_url}/chat/completions (a raw_prompt request: the legacy
 * body for POST {base_url}/completions). model is the upstream model.
 * Streams always ask for usage (stream_options.include_usage) so the ledger gets real
 * figures. */
hl_err hl_openai_write_upstream_request(hl_buf *out, const hl_chat_request *req,
                                        const char *model);

/* A legacy completions logprobs object ({tokens, token_logprobs, top_logprobs: [{token: lp}],
 * text_offset}) as chat entries ([{token, logprob, bytes, top_logprobs: [{token, logprob,
 * bytes}]}]): the internal form (hl_chat_response.logprobs.content). New reference, NULL
 * when lp has no token list (or out of memory). */
json_t *hl_openai_logprobs_from_completion(const json_t *lp);

/* Parses an upstream chat.completion body (or a legacy text_completion one: choices[0].text). HL_ERR_PARSE when it is not one. */
hl_err hl_openai_parse_upstream_response(const char *body, size_t len, hl_chat_response *resp);
/* The same with jansson only; and the one-pass reader of the common case alone (no tool calls,
 * no logprobs object; hl_openai_reply.c), which fills resp only when it returns
 * HL_OK and gives up with HL_ERR_UNSUPPORTED on anything else (also malformed input), leaving
 * the verdict to the full parser. Both exposed for tests and the fuzz target. */
hl_err hl_openai_parse_upstream_full(const char *body, size_t len, hl_chat_response *resp);
hl_err hl_openai_reply_fast(const char *body, size_t len, hl_chat_response *resp);
/* An OpenAI finish_reason (NULL: none) as hl_finish. */
hl_finish hl_openai_parse_finish(const char *s);

/* Decodes one SSE event of an upstream stream into zero or more hl_stream_event.
 * *started tracks whether HL_EV_START was emitted (init false). Returns 0, the sink's
 * non-zero result, or HL_ERR_PARSE for a frame that is not JSON. */
int hl_openai_decode_stream_event(bool *started, const hl_sse_event *sse, hl_stream_sink sink,
                                  void *ud);

#endif
