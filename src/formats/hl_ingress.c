/* hl_ingress: the OpenAI, Anthropic and Responses ingress tables (see hl_ingress.h). */
#include "hl_ingress.h"

static int openai_write_error(hl_buf *out, const hl_api_error *err, const char *request_id) {
    (void)request_id; /* OpenAI clients read it from the x-request-id header */
    hl_openai_write_error(out, err);
    return err->status;
}

static void openai_encoder_init(hl_stream_encoder *enc, const char *id, const char *model,
                                long created, bool include_usage, const char *request_id) {
    hl_openai_encoder_init(&enc->u.openai, id, model, created, include_usage);
    enc->request_id = request_id;
}

static hl_err openai_encode_event(hl_stream_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    return hl_openai_encode_event(&enc->u.openai, ev, out);
}

static hl_err openai_encode_end(hl_stream_encoder *enc, const hl_usage *usage, hl_buf *out) {
    return hl_openai_encode_end(&enc->u.openai, usage, out);
}

static hl_err openai_encode_error(hl_stream_encoder *enc, const hl_api_error *err, hl_buf *out) {
    (void)enc;
    return hl_openai_encode_error(err, out);
}

const hl_ingress hl_ingress_openai = {
    "openai", "chatcmpl-", hl_openai_parse_request, hl_openai_write_response, openai_write_error,
    openai_encoder_init, openai_encode_event, openai_encode_end, openai_encode_error, NULL,
};

static int anthropic_write_error(hl_buf *out, const hl_api_error *err, const char *request_id) {
    hl_anthropic_write_error(out, err, request_id);
    return hl_anthropic_error_status(err);
}

static void anthropic_encoder_init(hl_stream_encoder *enc, const char *id, const char *model,
                                   long created, bool include_usage, const char *request_id) {
    (void)created;
    (void)include_usage; /* Messages streams always carry usage */
    hl_anthropic_encoder_init(&enc->u.anthropic, id, model);
    enc->request_id = request_id;
}

static hl_err anthropic_encode_event(hl_stream_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    return hl_anthropic_encode_event(&enc->u.anthropic, ev, out);
}

static hl_err anthropic_encode_end(hl_stream_encoder *enc, const hl_usage *usage, hl_buf *out) {
    return hl_anthropic_encode_end(&enc->u.anthropic, usage, out);
}

static hl_err anthropic_encode_error(hl_stream_encoder *enc, const hl_api_error *err, hl_buf *out) {
    return hl_anthropic_encode_error(err, enc->request_id, out);
}

const hl_ingress hl_ingress_anthropic = {
    "anthropic", "msg_", hl_anthropic_parse_request, hl_anthropic_write_response,
    anthropic_write_error, anthropic_encoder_init, anthropic_encode_event, anthropic_encode_end,
    anthropic_encode_error, NULL,
};

static int responses_write_error(hl_buf *out, const hl_api_error *err, const char *request_id) {
    (void)request_id; /* OpenAI clients read it from the x-request-id header */
    hl_responses_write_error(out, err);
    return err->status;
}

static void responses_encoder_init(hl_stream_encoder *enc, const char *id, const char *model,
                                   long created, bool include_usage, const char *request_id) {
    (void)include_usage; /* response.completed always carries usage */
    hl_responses_encoder_init(&enc->u.responses, id, model, created);
    enc->request_id = request_id;
}

static hl_err responses_encode_event(hl_stream_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    return hl_responses_encode_event(&enc->u.responses, ev, out);
}

static hl_err responses_encode_end(hl_stream_encoder *enc, const hl_usage *usage, hl_buf *out) {
    return hl_responses_encode_end(&enc->u.responses, usage, out);
}

static hl_err responses_encode_error(hl_stream_encoder *enc, const hl_api_error *err, hl_buf *out) {
    return hl_responses_encode_error(&enc->u.responses, err, out);
}

static void responses_encoder_release(hl_stream_encoder *enc) {
    hl_responses_encoder_release(&enc->u.responses);
}

const hl_ingress hl_ingress_responses = {
    "responses", "resp_", hl_responses_parse_request, hl_responses_write_response, responses_write_error,
    responses_encoder_init, responses_encode_event, responses_encode_end, responses_encode_error,
    responses_encoder_release,
};

/* Legacy completions: OpenAI's error shape; the stream state is an OpenAI encoder's. */
static void completions_encoder_init(hl_stream_encoder *enc, const char *id, const char *model, long created,
                                     bool include_usage, const char *request_id) {
    hl_openai_encoder_init(&enc->u.openai, id, model, created, include_usage);
    enc->request_id = request_id;
}

static hl_err completions_encode_event(hl_stream_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    return hl_completions_encode_event(&enc->u.openai, ev, out);
}

static hl_err completions_encode_end(hl_stream_encoder *enc, const hl_usage *usage, hl_buf *out) {
    return hl_completions_encode_end(&enc->u.openai, usage, out);
}

const hl_ingress hl_ingress_completions = {
    "completions", "cmpl-", hl_completions_parse_request, hl_completions_write_response, openai_write_error,
    completions_encoder_init, completions_encode_event, completions_encode_end, openai_encode_error, NULL,
};
