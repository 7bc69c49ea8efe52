/* hl_aux: the endpoints that are not chats, POST /v1/embeddings and POST
 * /v1/messages/count_tokens, through the same privacy decision and router as chat.
 *
 * Neither generates text, so neither fits the exchange's attempt (events, streams,
 * escalation). Each request here is parsed into an hl_chat_request only for what the shared
 * pieces need (privacy reads its text, the router its model, hints and size), then runs
 * through the route's candidates, one upstream call at a time:
 *
 *  - embeddings go to OpenAI-kind backends (POST {base_url}/embeddings, always asked for
 *    floats; base64 is encoded here, so a server that ignores encoding_format cannot hand the
 *    client wrong vectors). Anthropic backends serve none and are skipped. The builtin engine
 *    embeds on its own thread (hl_builtin_embed_start: the final hidden states pooled as the
 *    GGUF's pooling_type or the backend's `pooling` says, L2-normalised, as llama.cpp does);
 *    `dimensions` other than the model's is refused there. A sensitive input
 *    (PII found, or declared) never goes to a cloud backend; token-array inputs cannot be
 *    inspected and count as sensitive. Failures retry on the same backend (backoff as the
 *    exchange's) and then fall to the next candidate; one ledger line per attempt (task type
 *    "embedding", input tokens, cost from `prices`).
 *  - token counts go to Anthropic backends as sent (POST /v1/messages/count_tokens, model
 *    rewritten to the route's); otherwise they are counted with the backend's tokenizer (the
 *    builtin engine's, or a local server's POST /tokenize plus the chat template's share), or
 *    estimated. The answer is {"input_tokens": N}; the header x-hybridllm-token-count says
 *    which: "upstream", "tokenizer" or "estimate". Counting is free: no ledger line.
 *
 * The request is owned by its connection (hl_conn_set_data) while an upstream call is in
 * flight; hl_aux_owns() tells it apart from an exchange for the server's abort callback. */
#ifndef HL_AUX_H
#define HL_AUX_H

#include "hl_exchange.h"

typedef enum hl_aux_kind { HL_AUX_EMBEDDINGS, HL_AUX_COUNT_TOKENS } hl_aux_kind;

typedef struct hl_aux hl_aux;

/* Serves one request of `kind` on c; every outcome is answered on c. Arguments as for
 * hl_exchange_start. */
void hl_aux_start(hl_exchange_env *env, hl_conn *c, const hl_http_req *hreq, const char *body, size_t len,
                  const char *request_id, const char *client_id, const hl_key_info *key, hl_aux_kind kind);
/* Is this connection data an hl_aux (not an hl_exchange)? */
bool hl_aux_owns(const void *conn_data);
/* The client went away: the call in flight is cancelled (and recorded), the request freed. */
void hl_aux_abort(hl_aux *a);

/* ---- pure pieces, for the tests and fuzz targets ---- */

/* A parsed /v1/embeddings body. inputs: the texts (NULL entries for token arrays, whose
 * presence sets `tokens`). Release with hl_embed_request_release(). */
typedef struct hl_embed_request {
    char *model;
    char **inputs;
    size_t n_inputs;
    bool tokens;           /* some input is token ids */
    bool base64;           /* encoding_format "base64" */
    long dimensions;       /* 0: unset */
    json_t *body;          /* the client's body (owned), for the upstream call */
} hl_embed_request;

/* Parses a /v1/embeddings body. HL_ERR_INVAL with err filled (400, OpenAI's shape, param
 * named) for a bad request; HL_ERR_NOMEM otherwise. er is released by the caller. */
hl_err hl_embed_parse(const char *body, size_t len, hl_embed_request *er, hl_api_error *err);
void hl_embed_request_release(hl_embed_request *er);

/* Renders the client's answer from an upstream embeddings answer (OpenAI's list): data in
 * float or base64 (float32 little-endian), model as given, usage. *prompt_tokens receives
 * the upstream's usage.prompt_tokens (-1 when absent). HL_ERR_PARSE when up is not a list of
 * embeddings. */
hl_err hl_embed_render(const char *up, size_t up_len, bool base64, const char *model, hl_buf *out,
                       long *prompt_tokens);

/* Renders the client's answer from vectors computed here (the builtin engine): n x dim floats,
 * data in float (each in its shortest round-trip form) or base64 (float32 little-endian),
 * model as given, usage with prompt_tokens. HL_ERR_NOMEM. */
hl_err hl_embed_render_vectors(const float *vecs, size_t n, uint32_t dim, bool base64, const char *model,
                               long prompt_tokens, hl_buf *out);

/* Parses a count_tokens body (Anthropic Messages fields but max_tokens; `thinking` allowed)
 * into req. HL_ERR_INVAL with err filled for a bad request. */
hl_err hl_count_parse(const char *body, size_t len, hl_chat_request *req, hl_api_error *err);

#endif
