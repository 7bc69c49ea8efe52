/* Tests for hl_openai: request validation, exact bytes to upstream and to the client,
 * stream chunk encoding and upstream chunk decoding. */
#include "hl_openai.h"
#include "hl_test.h"

static hl_err parse(const char *body, hl_chat_request *req, hl_api_error *err) {
    hl_chat_request_init(req);
    memset(err, 0, sizeof *err);
    return hl_openai_parse_request(body, strlen(body), req, err);
}

HL_TEST(parse_full_request) {
    hl_chat_request r;
    hl_api_error e;
    const char *body =
        "{\"model\":\"auto\",\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
        "\"max_completion_tokens\":50,\"temperature\":0.5,\"stop\":\"END\",\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"seed\":7,"
        "\"metadata\":{\"task_type\":\"classification\",\"pii_present\":\"true\"}}";
    HL_REQUIRE(parse(body, &r, &e) == HL_OK);
    HL_CHECK_STR_EQ(r.model, "auto");
    HL_CHECK_INT_EQ(r.n_messages, 2);
    HL_CHECK_INT_EQ(r.messages[0].role, HL_ROLE_SYSTEM);
    HL_CHECK_STR_EQ(r.messages[1].text, "a\nb");
    HL_CHECK_INT_EQ(r.max_tokens, 50);
    HL_CHECK(r.has_temperature);
    HL_CHECK_INT_EQ(r.n_stop, 1);
    HL_CHECK(r.stream && r.include_usage);
    HL_CHECK_STR_EQ(r.task_type, "classification");
    HL_CHECK(r.pii && !r.regulated);
    HL_CHECK(json_object_get(r.passthrough, "seed") != NULL);
    HL_CHECK(json_object_get(r.passthrough, "metadata") == NULL); /* never forwarded */
    hl_chat_request_release(&r);
}

typedef struct { const char *body; const char *param; const char *needle; } bad_case;

HL_TEST(rejects_bad_requests_with_param) {
    static const bad_case cases[] = {
        {"{", NULL, "could not parse the JSON"},
        {"[]", NULL, "must be a JSON object"},
        {"{\"messages\":[]}", "model", "Missing required parameter"},
        {"{\"model\":3,\"messages\":[]}", "model", "expected a non-empty string"},
        {"{\"model\":\"m\"}", "messages", "Missing required parameter"},
        {"{\"model\":\"m\",\"messages\":{}}", "messages", "expected an array"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages", "empty array"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", "messages[0].role", "'bot'"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content", "Missing"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "messages[0].content[0].type", "not supported"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].tool_call_id", "Missing"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", "temperature", "out of range"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", "max_tokens", "integer >= 1"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "n", "n must be 1"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", "stream", "boolean"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":{}}", "stream_options", "only allowed"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", "stop", "at most 4"},
        {"{\"model\":\"m\",\"model\":\"n\",\"messages\":[]}", NULL, "could not parse"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[3]}", "tools[0]",
         "expected an object"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
         "\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]}",
         "tools[1].function.name", "Missing required parameter"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"function\":{\"name\":\"\"}}]}",
         "tools[0].function.name", "Missing required parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_chat_request r;
        hl_api_error e;
        hl_err rc = parse(cases[i].body, &r, &e);
        if (rc == HL_OK) {
            HL_FAIL_("case %zu accepted: %s", i, cases[i].body);
        } else {
            HL_CHECK_INT_EQ(e.status, 400);
            HL_CHECK_STR_EQ(e.param, cases[i].param ? cases[i].param : "");
            if (!strstr(e.message, cases[i].needle)) HL_FAIL_("case %zu: message '%s' lacks '%s'", i, e.message, cases[i].needle);
        }
        hl_chat_request_release(&r);
    }
}

HL_TEST(upstream_request_bytes) {
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse("{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \\\"x\\\"\"}],"
                     "\"max_tokens\":5,\"stream\":true,\"user\":\"u1\",\"metadata\":{\"task_type\":\"x\"}}",
                     &r, &e) == HL_OK);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_openai_write_upstream_request(&b, &r, "mistral-7b") == HL_OK);
    HL_CHECK_STR_EQ(b.data, "{\"model\":\"mistral-7b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \\\"x\\\"\"}],"
                            "\"max_tokens\":5,\"stream\":true,\"stream_options\":{\"include_usage\":true},\"user\":\"u1\"}");
    hl_buf_release(&b);
    hl_chat_request_release(&r);
}

HL_TEST(response_and_error_bytes) {
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    resp.model = strdup("gpt-4o");
    resp.text = strdup("hello");
    resp.finish = HL_FINISH_STOP;
    resp.usage = (hl_usage){.input_tokens = 10, .output_tokens = 2, .cached_input_tokens = 4, .known = true};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_openai_write_response(&b, &resp, "chatcmpl-1", 1700000000) == HL_OK);
    HL_CHECK_STR_EQ(b.data,
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"gpt-4o\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hello\",\"refusal\":null},"
        "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,"
        "\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":4},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    hl_buf_reset(&b);
    hl_api_error e;
    hl_api_error_set(&e, 404, HL_AE_NOT_FOUND, "model", "model_not_found", "no \"%s\"", "x");
    HL_REQUIRE(hl_openai_write_error(&b, &e) == HL_OK);
    HL_CHECK_STR_EQ(b.data, "{\"error\":{\"message\":\"no \\\"x\\\"\",\"type\":\"invalid_request_error\","
                            "\"param\":\"model\",\"code\":\"model_not_found\"}}");
    hl_buf_release(&b);
    hl_chat_response_release(&resp);
}

typedef struct { hl_stream_event_type types[32]; int n; hl_usage usage; char text[256]; } collected;

static int collect(void *ud, const hl_stream_event *ev) {
    collected *c = ud;
    if (c->n < 32) c->types[c->n++] = ev->type;
    if (ev->type == HL_EV_TEXT) strncat(c->text, ev->text, ev->text_len);
    if (ev->type == HL_EV_USAGE) c->usage = ev->usage;
    return 0;
}

static void decode(bool *started, const char *data, collected *c) {
    hl_sse_event ev = {"", data, strlen(data), ""};
    HL_CHECK_INT_EQ(hl_openai_decode_stream_event(started, &ev, collect, c), 0);
}

HL_TEST(decode_upstream_chunks_usage_is_final_not_summed) {
    collected c = {0};
    bool started = false;
    decode(&started, "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}", &c);
    decode(&started, "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}", &c);
    decode(&started, "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}", &c);
    decode(&started, "[DONE]", &c);
    HL_CHECK_STR_EQ(c.text, "Hello");
    HL_CHECK_INT_EQ(c.usage.input_tokens, 5);
    HL_CHECK_INT_EQ(c.usage.output_tokens, 2); /* the last cumulative figure, not 1 + 2 */
    HL_CHECK_INT_EQ(c.types[0], HL_EV_START);
    HL_CHECK_INT_EQ(c.types[c.n - 1], HL_EV_DONE);
    hl_sse_event bad = {"", "{not json", 9, ""};
    HL_CHECK_INT_EQ(hl_openai_decode_stream_event(&started, &bad, collect, &c), HL_ERR_PARSE);
}

HL_TEST(encode_stream_exact_contract) {
    hl_openai_encoder enc;
    hl_openai_encoder_init(&enc, "chatcmpl-1", "m0", 1, true);
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_stream_event ev = {0};
    ev.type = HL_EV_START;
    ev.model = "m1";
    HL_CHECK_INT_EQ(hl_openai_encode_event(&enc, &ev, &b), HL_OK);
    ev.type = HL_EV_TEXT;
    ev.text = "hi";
    ev.text_len = 2;
    HL_CHECK_INT_EQ(hl_openai_encode_event(&enc, &ev, &b), HL_OK);
    ev.type = HL_EV_FINISH;
    ev.finish = HL_FINISH_LENGTH;
    HL_CHECK_INT_EQ(hl_openai_encode_event(&enc, &ev, &b), HL_OK);
    hl_usage u = {.input_tokens = 3, .output_tokens = 1, .known = true};
    HL_CHECK_INT_EQ(hl_openai_encode_end(&enc, &u, &b), HL_OK);
    const char *pre = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\",\"system_fingerprint\":null,";
    hl_buf want;
    hl_buf_init(&want, 0);
    hl_buf_printf(&want, "%s\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n", pre);
    hl_buf_printf(&want, "%s\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n", pre);
    hl_buf_printf(&want, "%s\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":null}\n\n", pre);
    hl_buf_printf(&want, "%s\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\ndata: [DONE]\n\n", pre);
    HL_CHECK_STR_EQ(b.data, want.data);
    hl_buf_release(&want);
    hl_buf_release(&b);
}

HL_TEST(no_usage_chunk_without_include_usage) {
    hl_openai_encoder enc;
    hl_openai_encoder_init(&enc, "c", "m", 1, false);
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_usage u = {.input_tokens = 3, .output_tokens = 1, .known = true};
    HL_CHECK_INT_EQ(hl_openai_encode_end(&enc, &u, &b), HL_OK);
    HL_CHECK(strstr(b.data, "\"usage\"") == NULL);
    HL_CHECK(strstr(b.data, "data: [DONE]\n\n") != NULL);
    hl_buf_release(&b);
}

/* The one-pass reader of the common reply (hl_openai_reply.c): same fields as jansson's parse. */
HL_TEST(reply_fast_path_reads_the_common_reply) {
    const char *body =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"m-1\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"a\\nb \\\"q\\\" \xc3\xa9\","
        "\"tool_calls\":null},\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":14,"
        "\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":4},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":2}},\"extra\":[1,-2.5e3,true,{\"a\":[]}]}";
    hl_chat_response fast = {0}, full = {0};
    HL_CHECK_INT_EQ(hl_openai_reply_fast(body, strlen(body), &fast), HL_OK);
    HL_CHECK_INT_EQ(hl_openai_parse_upstream_full(body, strlen(body), &full), HL_OK);
    HL_CHECK_STR_EQ(fast.id, "chatcmpl-1");
    HL_CHECK_STR_EQ(fast.model, "m-1");
    HL_CHECK_STR_EQ(fast.text, "a\nb \"q\" \xc3\xa9");
    HL_CHECK_STR_EQ(fast.text, full.text);
    HL_CHECK_INT_EQ(fast.created, 1700000000);
    HL_CHECK_INT_EQ(fast.finish, HL_FINISH_LENGTH);
    HL_CHECK(fast.usage.known);
    HL_CHECK_INT_EQ(fast.usage.input_tokens, 14);
    HL_CHECK_INT_EQ(fast.usage.output_tokens, 3);
    HL_CHECK_INT_EQ(fast.usage.cached_input_tokens, 4);
    HL_CHECK_INT_EQ(fast.usage.reasoning_tokens, 2);
    HL_CHECK(memcmp(&fast.usage, &full.usage, sizeof fast.usage) == 0);
    hl_chat_response_release(&fast);
    hl_chat_response_release(&full);
}

/* What the fast reader does not take it leaves to jansson, which decides as before. */
HL_TEST(reply_fast_path_gives_up_on_the_rest) {
    static const char *const bodies[] = {
        "{\"choices\":[{\"message\":{\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"}}]}",          /* would cut the string */
        "{\"id\":\"a\",\"id\":\"b\",\"choices\":[{\"message\":{\"content\":\"x\"}}]}", /* jansson keeps b */
        "{\"choices\":[{\"text\":\"legacy\",\"finish_reason\":\"stop\"}]}",          /* a text completion */
        "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":{\"content\":[]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]} trailing",              /* malformed */
        "{\"choices\":[]}",
        "[]",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        hl_chat_response r = {0};
        HL_CHECK_INT_EQ(hl_openai_reply_fast(bodies[i], strlen(bodies[i]), &r), HL_ERR_UNSUPPORTED);
        HL_CHECK(r.id == NULL && r.text == NULL);
    }
    hl_chat_response r = {0};
    HL_CHECK_INT_EQ(hl_openai_parse_upstream_response(bodies[0], strlen(bodies[0]), &r), HL_OK);
    HL_CHECK_INT_EQ(r.n_tool_calls, 1);
    HL_CHECK_STR_EQ(r.tool_calls[0].name, "f");
    hl_chat_response_release(&r);
    memset(&r, 0, sizeof r);
    HL_CHECK_INT_EQ(hl_openai_parse_upstream_response(bodies[2], strlen(bodies[2]), &r), HL_OK);
    HL_CHECK_STR_EQ(r.id, "b");
    hl_chat_response_release(&r);
    memset(&r, 0, sizeof r);
    HL_CHECK_INT_EQ(hl_openai_parse_upstream_response(bodies[5], strlen(bodies[5]), &r), HL_ERR_PARSE);
    hl_chat_response_release(&r);
}

/* \u escapes: one code point, a surrogate pair, as jansson decodes them. */
HL_TEST(reply_fast_path_decodes_unicode_escapes) {
    const char *body = "{\"choices\":[{\"message\":{\"content\":\"\\u00e9\\u20AC\\ud83d\\ude00\\/\"}}]}";
    hl_chat_response fast = {0}, full = {0};
    HL_CHECK_INT_EQ(hl_openai_reply_fast(body, strlen(body), &fast), HL_OK);
    HL_CHECK_INT_EQ(hl_openai_parse_upstream_full(body, strlen(body), &full), HL_OK);
    HL_CHECK_STR_EQ(fast.text, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/");
    HL_CHECK_STR_EQ(fast.text, full.text);
    hl_chat_response_release(&fast);
    hl_chat_response_release(&full);
}

/* The one-pass reader of the common request (hl_openai_request.c): every field it reads, as
 * jansson's parse fills it. */
HL_TEST(request_fast_path_reads_the_common_request) {
    const char *body =
        " {\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\\n\\u00e9\"},"
        "{\"role\":\"user\",\"name\":\"bob\",\"content\":\"hi \\\"there\\\" \xc3\xa9\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":null},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"},"
        "{\"content\":\"x\",\"tool_call_id\":\"ignored\",\"role\":\"user\"}],"
        "\"max_completion_tokens\":2000000000,\"temperature\":0.7,\"top_p\":1,\"stop\":[\"\\n\",\"END\"],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,\"logprobs\":false,"
        "\"top_logprobs\":3} \n";
    hl_chat_request fast, full;
    hl_api_error e;
    hl_chat_request_init(&fast);
    hl_chat_request_init(&full);
    HL_REQUIRE(hl_openai_request_fast(body, strlen(body), &fast) == HL_OK);
    HL_REQUIRE(hl_openai_parse_request_full(body, strlen(body), &full, &e) == HL_OK);
    HL_CHECK_STR_EQ(fast.model, "gpt-4o");
    HL_REQUIRE(fast.n_messages == 5 && full.n_messages == 5);
    for (size_t i = 0; i < 5; i++) {
        HL_CHECK_INT_EQ(fast.messages[i].role, full.messages[i].role);
        HL_CHECK_STR_EQ(fast.messages[i].text, full.messages[i].text);
        HL_CHECK((fast.messages[i].name == NULL) == (full.messages[i].name == NULL));
        HL_CHECK((fast.messages[i].tool_call_id == NULL) == (full.messages[i].tool_call_id == NULL));
    }
    HL_CHECK_STR_EQ(fast.messages[0].text, "Be brief.\n\xc3\xa9");
    HL_CHECK_STR_EQ(fast.messages[1].name, "bob");
    HL_CHECK_STR_EQ(fast.messages[2].text, "");
    HL_CHECK_STR_EQ(fast.messages[3].tool_call_id, "c1");
    HL_CHECK(fast.messages[4].tool_call_id == NULL);
    HL_CHECK_INT_EQ(fast.text_bytes, full.text_bytes);
    HL_CHECK_INT_EQ(fast.max_tokens, 1000000000);
    HL_CHECK(fast.max_completion_tokens && full.max_completion_tokens);
    HL_CHECK(fast.has_temperature && fast.temperature == full.temperature && fast.temperature == 0.7);
    HL_CHECK(fast.has_top_p && fast.top_p == 1);
    HL_REQUIRE(fast.n_stop == 2);
    HL_CHECK_STR_EQ(fast.stop[0], "\n");
    HL_CHECK_STR_EQ(fast.stop[1], "END");
    HL_CHECK(fast.stream && fast.include_usage && !fast.logprobs);
    HL_CHECK_INT_EQ(fast.top_logprobs, 3);
    HL_CHECK(fast.passthrough == NULL && json_object_size(full.passthrough) == 0);
    hl_chat_request_release(&fast);
    hl_chat_request_release(&full);
}

/* What the fast reader does not take it leaves to jansson, untouched: the full parser then
 * forwards the field or gives the error, as before. */
HL_TEST(request_fast_path_gives_up_on_the_rest) {
    static const char *const bodies[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":7}",     /* passthrough */
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":{}}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"role\":\"user\"}]}", /* repeated */
        "{\"model\":\"m\",\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"5\",\"max_completion_tokens\":9}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":{}}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":2.5}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":5.0}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} x",                 /* trailing */
        "{\"model\":\"m\",\"messages\":[]}",
        "{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":null}]}",
        "{\"mod\\u0065l\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":12345678901234567890}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        hl_chat_request r, fresh;
        hl_chat_request_init(&r);
        hl_chat_request_init(&fresh);
        HL_CHECK_INT_EQ(hl_openai_request_fast(bodies[i], strlen(bodies[i]), &r), HL_ERR_UNSUPPORTED);
        HL_CHECK(memcmp(&r, &fresh, sizeof r) == 0);
    }
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse(bodies[0], &r, &e) == HL_OK); /* through the full parser */
    HL_CHECK(json_integer_value(json_object_get(r.passthrough, "seed")) == 7);
    hl_chat_request_release(&r);
    HL_CHECK(parse(bodies[4], &r, &e) == HL_ERR_INVAL); /* jansson refuses repeated keys */
    hl_chat_request_release(&r);
    HL_CHECK(parse(bodies[9], &r, &e) == HL_ERR_INVAL);
    HL_CHECK_STR_EQ(e.param, "stream_options");
    hl_chat_request_release(&r);
}

HL_TEST_MAIN()
