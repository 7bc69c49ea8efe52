/* hl_provider: the OpenAI-compatible and Anthropic provider tables (see hl_provider.h). */
#include "hl_provider.h"

#include <stdio.h>
#include <string.h>
#include "hl_openai.h"

/* Appends "Name: value" to *list, building the line on the stack and wiping it after, so a
 * key does not linger in freed memory longer than curl's own copy. */
static hl_err add_header(struct curl_slist **list, const char *name, const char *value) {
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof line) return HL_ERR_LIMIT;
    struct curl_slist *l = curl_slist_append(*list, line);
    explicit_bzero(line, sizeof line);
    if (!l) return HL_ERR_NOMEM;
    *list = l;
    return HL_OK;
}

static hl_err common_headers(struct curl_slist **h, const hl_chat_request *req) {
    hl_err e = add_header(h, "Content-Type", "application/json");
    if (!e) e = add_header(h, "Accept", req->stream ? "text/event-stream" : "application/json");
    /* curl would otherwise send "Expect: 100-continue" for large bodies and wait. */
    if (!e) e = add_header(h, "Expect", "");
    return e;
}

static hl_err openai_build(const hl_backend *b, const hl_chat_request *req, const char *model,
                           hl_buf *url, hl_buf *body, struct curl_slist **headers) {
    hl_err e = hl_buf_printf(url, "%s/chat/completions", b->base_url);
    if (!e) e = hl_openai_write_upstream_request(body, req, model);
    if (!e) e = common_headers(headers, req);
    if (!e && b->api_key) {
        char bearer[600];
        int n = snprintf(bearer, sizeof bearer, "Bearer %s", b->api_key);
        e = (n < 0 || (size_t)n >= sizeof bearer) ? HL_ERR_LIMIT : add_header(headers, "Authorization", bearer);
        explicit_bzero(bearer, sizeof bearer);
    }
    return e;
}

static void openai_decoder_init(hl_provider_decoder *d) { memset(d, 0, sizeof *d); }

static int openai_decode(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud) {
    return hl_openai_decode_stream_event(&d->openai_started, ev, sink, ud);
}

static hl_err anthropic_build(const hl_backend *b, const hl_chat_request *req, const char *model,
                              hl_buf *url, hl_buf *body, struct curl_slist **headers) {
    hl_err e = hl_buf_printf(url, "%s/v1/messages", b->base_url);
    if (!e) e = hl_anthropic_write_upstream_request(body, req, model);
    if (!e) e = common_headers(headers, req);
    if (!e) e = add_header(headers, "anthropic-version", HL_ANTHROPIC_VERSION);
    if (!e && b->api_key) e = add_header(headers, "x-api-key", b->api_key);
    return e;
}

static void anthropic_decoder_init(hl_provider_decoder *d) {
    memset(d, 0, sizeof *d);
    hl_anthropic_decoder_init(&d->anthropic);
}

static int anthropic_decode(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud) {
    return hl_anthropic_decode_stream_event(&d->anthropic, ev, sink, ud);
}

static const hl_provider providers[] = {
    [HL_PROVIDER_OPENAI] = {"openai", NULL, openai_build, hl_openai_parse_upstream_response,
                            openai_decoder_init, openai_decode},
    [HL_PROVIDER_ANTHROPIC] = {"anthropic", hl_anthropic_check_request, anthropic_build,
                               hl_anthropic_parse_upstream_response, anthropic_decoder_init,
                               anthropic_decode},
    /* The builtin engine emits what an OpenAI-compatible server would (hl_builtin.h). */
    [HL_PROVIDER_BUILTIN] = {"builtin", NULL, NULL, hl_openai_parse_upstream_response,
                             openai_decoder_init, openai_decode},
};

const hl_provider *hl_provider_for(hl_provider_kind kind) { return &providers[kind]; }
