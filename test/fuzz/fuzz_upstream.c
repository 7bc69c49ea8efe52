/* Fuzz target: whatever an upstream may send back. The input is split into an SSE stream
 * (decoded by both providers' stream decoders and re-encoded for both client formats) and also
 * taken whole as a non-streaming body for both providers' response parsers and renderers.
 * A rendered response is one the same format's upstream parser takes back, and renders again
 * to the same bytes (a round trip through the internal model loses nothing); a broken
 * property aborts. The Responses API (what OpenAI cloud backends answer a Responses client)
 * goes through its event decoder and response parser likewise, re-encoded as Responses. */
#include <stdint.h>
#include <string.h>
#include "hl_anthropic.h"
#include "hl_openai.h"
#include "hl_responses.h"
#include "hl_sse.h"
#include "fuzz_roundtrip.h"

typedef struct {
    int kind;
    bool started;
    hl_anthropic_decoder dec;
    hl_openai_encoder enc;
    hl_anthropic_encoder aenc;
    hl_responses_decoder rdec;
    hl_responses_encoder renc;
    hl_buf out;
} ctx;

static int sink(void *ud, const hl_stream_event *ev) {
    ctx *c = ud;
    hl_openai_encode_event(&c->enc, ev, &c->out);
    hl_anthropic_encode_event(&c->aenc, ev, &c->out);
    if (c->kind == 2) hl_responses_encode_event(&c->renc, ev, &c->out);
    if (c->out.len > (1 << 16)) hl_buf_reset(&c->out);
    return 0;
}

static int on_event(void *ud, const hl_sse_event *ev) {
    ctx *c = ud;
    if (c->kind == 0) hl_openai_decode_stream_event(&c->started, ev, sink, c);
    else if (c->kind == 1) hl_anthropic_decode_stream_event(&c->dec, ev, sink, c);
    else hl_responses_decode_stream_event(&c->rdec, ev, sink, c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int kind = 0; kind < 3; kind++) {
        ctx c;
        memset(&c, 0, sizeof c);
        c.kind = kind;
        hl_anthropic_decoder_init(&c.dec);
        hl_openai_encoder_init(&c.enc, "id", "m", 1, true);
        hl_anthropic_encoder_init(&c.aenc, "id", "m");
        hl_responses_decoder_init(&c.rdec);
        hl_responses_encoder_init(&c.renc, "resp_id", "m", 1);
        hl_buf_init(&c.out, 0);
        hl_sse sse;
        hl_sse_init(&sse, 1 << 20);
        hl_sse_feed(&sse, (const char *)data, size, on_event, &c);
        hl_sse_finish(&sse);
        hl_usage u = c.enc.usage;
        hl_openai_encode_end(&c.enc, &u, &c.out);
        hl_anthropic_encode_end(&c.aenc, &u, &c.out);
        hl_responses_encode_end(&c.renc, &u, &c.out);
        hl_responses_encoder_release(&c.renc);
        hl_sse_release(&sse);
        hl_buf_release(&c.out);

        hl_chat_response resp;
        hl_chat_response_init(&resp);
        if (kind == 2) {
            /* A parsed response renders as a Responses object, which parses back the same. */
            if (hl_responses_parse_upstream_response((const char *)data, size, &resp) == HL_OK) {
                hl_buf b;
                hl_buf_init(&b, 0);
                if (hl_responses_write_response(&b, &resp, "resp_x", 1) == HL_OK) {
                    hl_chat_response back;
                    hl_chat_response_init(&back);
                    if (hl_responses_parse_upstream_response(b.data, b.len, &back) != HL_OK) abort();
                    if (back.n_tool_calls != resp.n_tool_calls) abort();
                    hl_chat_response_release(&back);
                }
                hl_buf_release(&b);
            }
            hl_chat_response_release(&resp);
            continue;
        }
        hl_err e = kind == 0 ? hl_openai_parse_upstream_response((const char *)data, size, &resp)
                             : hl_anthropic_parse_upstream_response((const char *)data, size, &resp);
        if (e == HL_OK) roundtrip_response(&resp);
        hl_chat_response_release(&resp);
    }
    char msg[128], type[32];
    hl_upstream_error_parse((const char *)data, size, msg, sizeof msg, type, sizeof type);
    return 0;
}
