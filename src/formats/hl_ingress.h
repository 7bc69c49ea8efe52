/* hl_ingress: the client-facing API formats behind one table.
 *
 * The gateway serves each request in the format its client spoke: OpenAI Chat Completions at
 * /v1/chat/completions, Anthropic Messages at /v1/messages, OpenAI Responses at /v1/responses. Everything between parsing the
 * request and rendering the answer (routing, providers, ledger) works on the internal model
 * and does not know which format the client used. */
#ifndef HL_INGRESS_H
#define HL_INGRESS_H

#include "hl_anthropic.h"
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_completions.h"
#include "hl_openai.h"
#include "hl_responses.h"

typedef struct hl_stream_encoder {
    union {
        hl_openai_encoder openai;
        hl_anthropic_encoder anthropic;
        hl_responses_encoder responses;
    } u;
    const char *request_id; /* borrowed, for error frames */
} hl_stream_encoder;

typedef struct hl_ingress {
    const char *name;
    const char *id_prefix; /* of response ids: "chatcmpl-", "msg_" */
    hl_err (*parse_request)(const char *body, size_t len, hl_chat_request *req, hl_api_error *err);
    hl_err (*write_response)(hl_buf *out, const hl_chat_response *resp, const char *id, long created);
    /* The HTTP status and body for an error. */
    int (*write_error)(hl_buf *out, const hl_api_error *err, const char *request_id);
    void (*encoder_init)(hl_stream_encoder *enc, const char *id, const char *model, long created,
                         bool include_usage, const char *request_id);
    hl_err (*encode_event)(hl_stream_encoder *enc, const hl_stream_event *ev, hl_buf *out);
    hl_err (*encode_end)(hl_stream_encoder *enc, const hl_usage *usage, hl_buf *out);
    hl_err (*encode_error)(hl_stream_encoder *enc, const hl_api_error *err, hl_buf *out);
    /* Frees what the encoder holds; NULL when it holds nothing. Safe on a zeroed encoder and
     * on one already released; encoder_init may follow it. */
    void (*encoder_release)(hl_stream_encoder *enc);
} hl_ingress;

extern const hl_ingress hl_ingress_openai;
extern const hl_ingress hl_ingress_anthropic;
extern const hl_ingress hl_ingress_completions; /* /v1/completions (hl_completions.h) */
extern const hl_ingress hl_ingress_responses;

#endif
