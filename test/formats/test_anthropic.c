/* Tests for hl_anthropic: OpenAI-shaped internal requests to Messages bytes, Messages
 * replies and streams back to the internal model (usage cumulative, cache fields summed). */
#include "hl_anthropic.h"
#include "hl_openai.h"
#include "hl_test.h"

static void parse(const char *body, hl_chat_request *req) {
    hl_api_error e;
    hl_chat_request_init(req);
    if (hl_openai_parse_request(body, strlen(body), req, &e) != HL_OK) HL_FAIL_("parse: %s", e.message);
}

HL_TEST(request_translation_bytes) {
    hl_chat_request r;
    parse("{\"model\":\"auto\",\"messages\":["
          "{\"role\":\"system\",\"content\":\"s1\"},{\"role\":\"system\",\"content\":\"s2\"},"
          "{\"role\":\"user\",\"content\":\"q\"},"
          "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
          "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"42\"},"
          "{\"role\":\"user\",\"content\":\"and?\"}],"
          "\"stop\":[\"X\"],\"temperature\":0.2,\"stream\":true,"
          "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"parameters\":{\"type\":\"object\"}}}],"
          "\"tool_choice\":\"required\"}", &r);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_anthropic_write_upstream_request(&b, &r, "claude-x") == HL_OK);
    HL_CHECK_STR_EQ(b.data,
        "{\"model\":\"claude-x\",\"max_tokens\":4096,\"system\":\"s1\\n\\ns2\",\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"42\"},"
        "{\"type\":\"text\",\"text\":\"and?\"}]}],"
        "\"temperature\":0.2,\"stop_sequences\":[\"X\"],"
        "\"tools\":[{\"name\":\"f\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"any\"},\"stream\":true}");
    hl_buf_release(&b);
    hl_chat_request_release(&r);
}

HL_TEST(refuses_what_it_cannot_honour) {
    hl_chat_request r;
    hl_api_error e;
    parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", &r);
    HL_CHECK_INT_EQ(hl_anthropic_check_request(&r, &e), HL_ERR_UNSUPPORTED);
    HL_CHECK_STR_EQ(e.param, "logprobs");
    hl_chat_request_release(&r);
    parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":1.5}", &r);
    HL_CHECK_INT_EQ(hl_anthropic_check_request(&r, &e), HL_ERR_UNSUPPORTED);
    hl_chat_request_release(&r);
    parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_object\"}}", &r);
    HL_CHECK_INT_EQ(hl_anthropic_check_request(&r, &e), HL_ERR_UNSUPPORTED);
    hl_chat_request_release(&r);
    parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1,\"temperature\":1}", &r);
    HL_CHECK_INT_EQ(hl_anthropic_check_request(&r, &e), HL_OK);
    hl_chat_request_release(&r);
    /* Only system messages: Messages would get "messages": [], which it refuses. */
    parse("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"}]}", &r);
    HL_CHECK_INT_EQ(hl_anthropic_check_request(&r, &e), HL_ERR_UNSUPPORTED);
    HL_CHECK_STR_EQ(e.param, "messages");
    hl_chat_request_release(&r);
}

/* A Messages request with a turn of no content: refused as the API does, never translated into
 * an empty message list (a fuzz input found "messages": [] sent to an OpenAI-kind backend). */
HL_TEST(messages_parser_refuses_empty_turns) {
    static const char *const refused[] = {
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[]},"
        "{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[]}]}",
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        hl_chat_request r;
        hl_api_error e;
        hl_chat_request_init(&r);
        HL_CHECK_INT_EQ(hl_anthropic_parse_request(refused[k], strlen(refused[k]), &r, &e), HL_ERR_INVAL);
        HL_CHECK_INT_EQ(e.status, 400);
        HL_CHECK(strstr(e.message, "non-empty content") != NULL);
        hl_chat_request_release(&r);
    }
    /* The final assistant turn may be empty (a prefill the model continues). */
    const char *ok = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                     "{\"role\":\"assistant\",\"content\":[]}]}";
    hl_chat_request r;
    hl_api_error e;
    hl_chat_request_init(&r);
    HL_CHECK_INT_EQ(hl_anthropic_parse_request(ok, strlen(ok), &r, &e), HL_OK);
    hl_chat_request_release(&r);
}

HL_TEST(response_with_tools_and_cache_usage) {
    const char *body = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
                       "\"content\":[{\"type\":\"text\",\"text\":\"Let me \"},{\"type\":\"text\",\"text\":\"check.\"},"
                       "{\"type\":\"tool_use\",\"id\":\"tu1\",\"name\":\"get\",\"input\":{\"q\":\"x\"}}],"
                       "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
                       "\"usage\":{\"input_tokens\":10,\"output_tokens\":7,\"cache_read_input_tokens\":100,"
                       "\"cache_creation_input_tokens\":20}}";
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    HL_REQUIRE(hl_anthropic_parse_upstream_response(body, strlen(body), &resp) == HL_OK);
    HL_CHECK_STR_EQ(resp.text, "Let me check.");
    HL_CHECK_INT_EQ(resp.n_tool_calls, 1);
    HL_CHECK_STR_EQ(resp.tool_calls[0].arguments, "{\"q\":\"x\"}");
    HL_CHECK_INT_EQ(resp.finish, HL_FINISH_TOOL_CALLS);
    HL_CHECK_INT_EQ(resp.usage.input_tokens, 130);
    HL_CHECK_INT_EQ(resp.usage.cached_input_tokens, 100);
    HL_CHECK_INT_EQ(resp.usage.cache_write_tokens, 20);
    HL_CHECK_INT_EQ(resp.usage.output_tokens, 7);
    hl_chat_response_release(&resp);
    HL_CHECK_INT_EQ(hl_anthropic_parse_upstream_response("{}", 2, &resp), HL_ERR_PARSE);
    hl_chat_response_release(&resp);
}

typedef struct { char text[128]; char args[128]; hl_usage usage; hl_finish finish; int done, errors, starts; } sink_state;

static int sink(void *ud, const hl_stream_event *ev) {
    sink_state *s = ud;
    switch (ev->type) {
    case HL_EV_START: s->starts++; break;
    case HL_EV_TEXT: strncat(s->text, ev->text, ev->text_len); break;
    case HL_EV_TOOL_CALL: strncat(s->args, ev->text, ev->text_len); break;
    case HL_EV_USAGE: s->usage = ev->usage; break;
    case HL_EV_FINISH: s->finish = ev->finish; break;
    case HL_EV_DONE: s->done++; break;
    case HL_EV_ERROR: s->errors++; break;
    default: break;
    }
    return 0;
}

HL_TEST(stream_decoding_usage_is_cumulative) {
    static const char *const events[][2] = {
        {"message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3}}}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"},
        {"ping", "{\"type\":\"ping\"}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":15}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
    };
    hl_anthropic_decoder d;
    hl_anthropic_decoder_init(&d);
    sink_state s = {0};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        hl_sse_event ev = {events[i][0], events[i][1], strlen(events[i][1]), ""};
        HL_CHECK_INT_EQ(hl_anthropic_decode_stream_event(&d, &ev, sink, &s), 0);
    }
    HL_CHECK_INT_EQ(s.starts, 1);
    HL_CHECK_STR_EQ(s.text, "Hi");
    HL_CHECK_STR_EQ(s.args, "{\"a\":1}");
    HL_CHECK_INT_EQ(s.finish, HL_FINISH_TOOL_CALLS);
    HL_CHECK_INT_EQ(s.usage.output_tokens, 15); /* overwritten, never 1 + 9 + 15 */
    HL_CHECK_INT_EQ(s.usage.input_tokens, 15);  /* 12 + 3 cached, kept across deltas */
    HL_CHECK_INT_EQ(s.usage.cached_input_tokens, 3);
    HL_CHECK_INT_EQ(s.done, 1);
    hl_sse_event err = {"error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}", 0, ""};
    err.data_len = strlen(err.data);
    HL_CHECK_INT_EQ(hl_anthropic_decode_stream_event(&d, &err, sink, &s), 0);
    HL_CHECK_INT_EQ(s.errors, 1);
}

HL_TEST_MAIN()
