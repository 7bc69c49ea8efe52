/* Tests for hl_completions: request validation (400 with the parameter named), the legacy
 * body sent to OpenAI-kind backends, text_completion objects and chunks, and logprobs in the
 * legacy shape both ways. */
#include "hl_completions.h"
#include "hl_ingress.h"
#include "hl_provider.h"
#include "hl_test.h"

static hl_err parse(const char *body, hl_chat_request *req, hl_api_error *err) {
    hl_chat_request_init(req);
    memset(err, 0, sizeof *err);
    return hl_completions_parse_request(body, strlen(body), req, err);
}

HL_TEST(parse_request_into_a_raw_prompt) {
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse("{\"model\":\"m\",\"prompt\":[\"What is 2+2?\"],\"max_tokens\":100,\"stop\":\"\\n\","
                     "\"logprobs\":2,\"echo\":true,\"seed\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                     &r, &e) == HL_OK);
    HL_CHECK(r.raw_prompt);
    HL_CHECK_INT_EQ(r.n_messages, 1);
    HL_CHECK_INT_EQ(r.messages[0].role, HL_ROLE_USER);
    HL_CHECK_STR_EQ(r.messages[0].text, "What is 2+2?");
    HL_CHECK_INT_EQ(r.max_tokens, 100);
    HL_CHECK(r.logprobs);
    HL_CHECK_INT_EQ(r.top_logprobs, 2);
    HL_CHECK(r.stream && r.include_usage);
    HL_CHECK(json_is_true(json_object_get(r.passthrough, "echo")));
    HL_CHECK(json_object_get(r.passthrough, "seed") != NULL);
    HL_CHECK(json_object_get(r.passthrough, "prompt") == NULL);
    HL_CHECK_INT_EQ(hl_chat_input_estimate(&r), 4); /* 12 bytes / 4, + BOS: no template overhead */
    hl_chat_request_release(&r);
    HL_REQUIRE(parse("{\"model\":\"m\",\"prompt\":\"x\"}", &r, &e) == HL_OK);
    HL_CHECK_INT_EQ(r.max_tokens, 16); /* the API's default */
    hl_chat_request_release(&r);
}

typedef struct { const char *body; const char *param; const char *needle; } bad_case;

HL_TEST(rejects_bad_requests_with_param) {
    static const bad_case cases[] = {
        {"{", NULL, "could not parse"},
        {"[1]", NULL, "JSON object"},
        {"{\"prompt\":\"x\"}", "model", "Missing required parameter"},
        {"{\"model\":\"\",\"prompt\":\"x\"}", "model", "non-empty"},
        {"{\"model\":\"m\"}", "prompt", "Missing required parameter"},
        {"{\"model\":\"m\",\"prompt\":[]}", "prompt", "non-empty"},
        {"{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", "prompt", "one prompt per request"},
        {"{\"model\":\"m\",\"prompt\":[1,2]}", "prompt", "token-array"},
        {"{\"model\":\"m\",\"prompt\":[[1],[2]]}", "prompt", "token-array"},
        {"{\"model\":\"m\",\"prompt\":3}", "prompt", "expected a string"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens", ">= 1"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"n\":2}", "n", "n must be 1"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"best_of\":3}", "best_of", "best_of must be 1"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":6}", "logprobs", "between 0 and 5"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":true}", "logprobs", "between 0 and 5"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"echo\":1}", "echo", "boolean"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":1}", "suffix", "string"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", "at most 4"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"temperature\":9}", "temperature", "out of range"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"stream_options\":{}}", "stream_options", "only allowed"},
        {"{\"model\":\"m\",\"prompt\":\"x\",\"metadata\":3}", "metadata", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_chat_request r;
        hl_api_error e;
        if (parse(cases[i].body, &r, &e) == HL_OK) {
            HL_FAIL_("case %zu accepted: %s", i, cases[i].body);
        } else {
            HL_CHECK_INT_EQ(e.status, 400);
            HL_CHECK_STR_EQ(e.param, cases[i].param ? cases[i].param : "");
            if (!strstr(e.message, cases[i].needle)) HL_FAIL_("case %zu: message '%s' lacks '%s'", i, e.message, cases[i].needle);
            /* and the client sees it in OpenAI's shape */
            hl_buf b;
            hl_buf_init(&b, 0);
            HL_CHECK_INT_EQ(hl_ingress_completions.write_error(&b, &e, "rid"), 400);
            HL_CHECK(b.data && !strncmp(b.data, "{\"error\":{\"message\":", 20));
            hl_buf_release(&b);
        }
        hl_chat_request_release(&r);
    }
}

HL_TEST(upstream_body_is_the_legacy_one) {
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse("{\"model\":\"auto\",\"prompt\":\"2+2=\",\"max_tokens\":5,\"stop\":[\"\\n\"],\"logprobs\":0,"
                     "\"suffix\":\"!\",\"stream\":true}", &r, &e) == HL_OK);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_openai_write_upstream_request(&b, &r, "qwen") == HL_OK);
    HL_CHECK_STR_EQ(b.data, "{\"model\":\"qwen\",\"prompt\":\"2+2=\",\"max_tokens\":5,\"stop\":[\"\\n\"],\"stream\":true,"
                            "\"stream_options\":{\"include_usage\":true},\"logprobs\":0,\"suffix\":\"!\"}");
    hl_buf_release(&b);
    hl_chat_request_release(&r);
}

HL_TEST(text_completion_reply_parsed_with_legacy_logprobs) {
    const char *body = "{\"id\":\"cmpl-9\",\"object\":\"text_completion\",\"created\":5,\"model\":\"qwen\","
                       "\"choices\":[{\"text\":\" 4\",\"index\":0,\"logprobs\":{\"tokens\":[\" 4\"],"
                       "\"token_logprobs\":[-0.5],\"top_logprobs\":[{\" 4\":-0.5}],\"text_offset\":[4]},"
                       "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}";
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    HL_REQUIRE(hl_openai_parse_upstream_response(body, strlen(body), &resp) == HL_OK);
    HL_CHECK_STR_EQ(resp.text, " 4");
    HL_CHECK_INT_EQ(resp.finish, HL_FINISH_LENGTH);
    HL_CHECK_INT_EQ(resp.usage.input_tokens, 4);
    HL_REQUIRE(resp.logprobs != NULL);
    HL_CHECK(hl_confidence(resp.logprobs) > 0.6 && hl_confidence(resp.logprobs) < 0.61); /* e^-0.5 */
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_completions_write_response(&b, &resp, "cmpl-x", 1700000000) == HL_OK);
    HL_CHECK_STR_EQ(b.data, "{\"id\":\"cmpl-x\",\"object\":\"text_completion\",\"created\":1700000000,\"model\":\"qwen\","
                            "\"choices\":[{\"text\":\" 4\",\"index\":0,\"logprobs\":{\"tokens\":[\" 4\"],"
                            "\"token_logprobs\":[-0.5],\"top_logprobs\":[{\" 4\":-0.5}],\"text_offset\":[0]},"
                            "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,"
                            "\"total_tokens\":5}}");
    hl_buf_release(&b);
    hl_chat_response_release(&resp);
}

static int collect_text(void *ud, const hl_stream_event *ev) {
    if (ev->type == HL_EV_TEXT) strncat(ud, ev->text, ev->text_len);
    if (ev->type == HL_EV_FINISH) strcat(ud, "|fin");
    return 0;
}

HL_TEST(text_completion_chunks_decode_and_encode) {
    char got[128] = "";
    bool started = false;
    const char *d1 = "{\"id\":\"c\",\"object\":\"text_completion\",\"model\":\"m\",\"choices\":[{\"text\":\"He\",\"index\":0,\"finish_reason\":null}]}";
    const char *d2 = "{\"id\":\"c\",\"object\":\"text_completion\",\"model\":\"m\",\"choices\":[{\"text\":\"llo\",\"index\":0,\"finish_reason\":\"stop\"}]}";
    hl_sse_event e1 = {"", d1, strlen(d1), ""}, e2 = {"", d2, strlen(d2), ""};
    HL_CHECK_INT_EQ(hl_openai_decode_stream_event(&started, &e1, collect_text, got), 0);
    HL_CHECK_INT_EQ(hl_openai_decode_stream_event(&started, &e2, collect_text, got), 0);
    HL_CHECK_STR_EQ(got, "Hello|fin");

    hl_stream_encoder enc;
    hl_ingress_completions.encoder_init(&enc, "cmpl-1", "m0", 1, true, "rid");
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_stream_event ev = {.type = HL_EV_START, .model = "m1"};
    HL_CHECK_INT_EQ(hl_ingress_completions.encode_event(&enc, &ev, &b), HL_OK);
    ev = (hl_stream_event){.type = HL_EV_TEXT, .text = "hi", .text_len = 2};
    HL_CHECK_INT_EQ(hl_ingress_completions.encode_event(&enc, &ev, &b), HL_OK);
    ev = (hl_stream_event){.type = HL_EV_FINISH, .finish = HL_FINISH_STOP};
    HL_CHECK_INT_EQ(hl_ingress_completions.encode_event(&enc, &ev, &b), HL_OK);
    hl_usage u = {.input_tokens = 3, .output_tokens = 1, .known = true};
    HL_CHECK_INT_EQ(hl_ingress_completions.encode_end(&enc, &u, &b), HL_OK);
    const char *pre = "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m1\",";
    hl_buf want;
    hl_buf_init(&want, 0);
    hl_buf_printf(&want, "%s\"choices\":[{\"text\":\"hi\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n", pre);
    hl_buf_printf(&want, "%s\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n", pre);
    hl_buf_printf(&want, "%s\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n", pre);
    HL_CHECK_STR_EQ(b.data, want.data);
    hl_buf_release(&want);
    hl_buf_release(&b);
}

HL_TEST(anthropic_and_builtin_refuse_echo_and_suffix) {
    static const char *const bodies[] = {"{\"model\":\"m\",\"prompt\":\"x\",\"echo\":true}",
                                         "{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":\"y\"}"};
    for (int i = 0; i < 2; i++) {
        hl_chat_request r;
        hl_api_error e;
        HL_REQUIRE(parse(bodies[i], &r, &e) == HL_OK);
        memset(&e, 0, sizeof e);
        HL_CHECK(hl_anthropic_check_request(&r, &e) != HL_OK);
        HL_CHECK_STR_EQ(e.param, i ? "suffix" : "echo");
        memset(&e, 0, sizeof e);
        HL_CHECK(hl_provider_builtin.check(&r, &e) != HL_OK);
        HL_CHECK_STR_EQ(e.param, i ? "suffix" : "echo");
        hl_chat_request_release(&r);
    }
    /* echo: false is nothing to refuse */
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse("{\"model\":\"m\",\"prompt\":\"x\",\"echo\":false,\"suffix\":null}", &r, &e) == HL_OK);
    HL_CHECK(hl_anthropic_check_request(&r, &e) == HL_OK);
    hl_chat_request_release(&r);
}

HL_TEST_MAIN()
