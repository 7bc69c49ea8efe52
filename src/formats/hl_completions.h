/* hl_completions: OpenAI legacy text completions (POST /v1/completions), the client side.
 *
 * Continue's autocomplete, vLLM's and llama.cpp's own examples and the product brief's first
 * test speak this API. A request becomes an ordinary hl_chat_request with one user message
 * holding the prompt and raw_prompt set, so it goes through the same privacy decision,
 * router, retries and ledger as chat; the providers then send the prompt as sent
 * (OpenAI-kind: POST /completions), without a chat template (builtin) or as one user turn
 * (Anthropic). Answers are rendered as `text_completion` objects and chunks.
 *
 * Supported: prompt as a string or an array holding one string; max_tokens (default 16, as
 * the API reference says); temperature, top_p, stop (up to 4), stream, stream_options,
 * logprobs (an integer 0..5), echo and suffix (forwarded to OpenAI-kind backends, refused by
 * the others), n and best_of equal to 1, metadata (the gateway's routing hints). Refused with
 * a 400 naming the parameter: several prompts or n > 1 (one completion per request: send one
 * request per prompt), token-array prompts (token ids are model-specific and the router may
 * pick any backend). Other fields are forwarded to OpenAI-kind backends as they are. */
#ifndef HL_COMPLETIONS_H
#define HL_COMPLETIONS_H

#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_openai.h"

/* Parses a /v1/completions body into req (initialized by the caller, released by the caller
 * in every case). HL_ERR_INVAL with err filled (400, param named) for a bad request;
 * HL_ERR_NOMEM otherwise. */
hl_err hl_completions_parse_request(const char *body, size_t len, hl_chat_request *req, hl_api_error *err);

/* Renders a text_completion object. resp->logprobs (internal chat form) becomes the legacy
 * {tokens, token_logprobs, top_logprobs, text_offset}. */
hl_err hl_completions_write_response(hl_buf *out, const hl_chat_response *resp, const char *id, long created);

/* Stream encoding into text_completion chunks; the state is an hl_openai_encoder. */
hl_err hl_completions_encode_event(hl_openai_encoder *enc, const hl_stream_event *ev, hl_buf *out);
/* The usage chunk (choices [], when the client asked stream_options.include_usage), then
 * data: [DONE]. */
hl_err hl_completions_encode_end(hl_openai_encoder *enc, const hl_usage *usage, hl_buf *out);

/* The legacy logprobs object for internal chat entries ([{token, logprob, top_logprobs}]).
 * New reference; NULL when entries is not an array (or out of memory). */
json_t *hl_completions_logprobs(const json_t *entries);

#endif
