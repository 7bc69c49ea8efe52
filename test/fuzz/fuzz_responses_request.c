/* Fuzz target: a client's Responses body through validation and translation to both provider
 * kinds, and its text and tool calls back out through the Responses stream encoder and the
 * response writer. Must never crash, leak or read out of bounds; the stream must stay
 * well-formed (every event a JSON object with the next sequence_number). */
#include <stdint.h>
#include <string.h>
#include "hl_anthropic.h"
#include "hl_openai.h"
#include "hl_responses.h"
#include "fuzz_roundtrip.h"

/* Every frame is "event: T\ndata: {...}\n\n" with data.type T and sequence numbers 0, 1, ... */
static void check_stream(const hl_buf *out) {
    const char *s = out->data ? out->data : "";
    long want = 0;
    while (*s) {
        CHECK(!strncmp(s, "event: ", 7));
        const char *nl = strchr(s, '\n');
        CHECK(nl && !strncmp(nl + 1, "data: ", 6));
        const char *end = strstr(nl + 1, "\n\n");
        CHECK(end);
        json_t *j = json_loadb(nl + 7, (size_t)(end - nl - 7), 0, NULL);
        CHECK(json_is_object(j));
        const char *type = json_string_value(json_object_get(j, "type"));
        CHECK(type && strlen(type) == (size_t)(nl - s - 7) && !strncmp(type, s + 7, strlen(type)));
        CHECK(json_integer_value(json_object_get(j, "sequence_number")) == want++);
        json_decref(j);
        s = end + 2;
    }
}

static void encode(const hl_chat_request *req) {
    hl_responses_encoder enc;
    hl_buf out;
    hl_buf_init(&out, 0);
    hl_responses_encoder_init(&enc, "resp_fuzz", req->model, 1);
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        hl_stream_event ev = {.type = HL_EV_TEXT, .text = m->text, .text_len = strlen(m->text)};
        CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const hl_tool_call *tc = &m->tool_calls[k];
            ev = (hl_stream_event){.type = HL_EV_TOOL_CALL, .index = (int)k, .tool_id = tc->id, .tool_name = tc->name,
                                   .text = tc->arguments, .text_len = strlen(tc->arguments)};
            CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
        }
    }
    hl_usage u = {.input_tokens = 1, .output_tokens = 2};
    if (req->n_messages & 1) {
        hl_api_error e;
        hl_api_error_set(&e, 502, HL_AE_API, NULL, NULL, "%s", req->messages[0].text);
        CHECK(hl_responses_encode_error(&enc, &e, &out) == HL_OK);
    } else {
        CHECK(hl_responses_encode_end(&enc, &u, &out) == HL_OK);
    }
    check_stream(&out);
    hl_responses_encoder_release(&enc);
    /* The whole answer: the last message's text and tool calls (borrowed, not freed here). */
    const hl_message *m = &req->messages[req->n_messages - 1];
    resp.text = m->text;
    resp.tool_calls = m->tool_calls;
    resp.n_tool_calls = m->n_tool_calls;
    resp.model = req->model;
    resp.finish = m->n_tool_calls ? HL_FINISH_TOOL_CALLS : HL_FINISH_LENGTH;
    hl_buf_reset(&out);
    CHECK(hl_responses_write_response(&out, &resp, "resp_fuzz", 1) == HL_OK);
    json_t *j = json_loadb(out.data, out.len, 0, NULL);
    CHECK(json_is_object(j));
    json_decref(j);
    hl_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_chat_request req;
    hl_api_error err;
    hl_chat_request_init(&req);
    if (hl_responses_parse_request((const char *)data, size, &req, &err) == HL_OK) {
        CHECK(req.n_messages > 0);
        roundtrip_request(&req);
        hl_buf b;
        hl_buf_init(&b, 0);
        CHECK(hl_openai_write_upstream_request(&b, &req, "m") == HL_OK);
        hl_buf_reset(&b);
        if (hl_anthropic_check_request(&req, &err) == HL_OK) hl_anthropic_write_upstream_request(&b, &req, "m");
        else hl_responses_write_error(&b, &err);
        hl_buf_release(&b);
        encode(&req);
    } else {
        CHECK(err.status == 400);
        hl_buf b;
        hl_buf_init(&b, 0);
        hl_responses_write_error(&b, &err);
        hl_buf_release(&b);
    }
    hl_chat_request_release(&req);
    return 0;
}
