/* Tests for hl_responses: Responses request validation and mapping onto the chat model,
 * errors in OpenAI's shape with the Responses parameter names, the response object, and the
 * stream encoder's event sequence (names, sequence numbers, item bookkeeping). */
#include "hl_anthropic.h"
#include "hl_provider.h"
#include "hl_responses.h"
#include "hl_test.h"

static hl_err parse(const char *body, hl_chat_request *req, hl_api_error *err) {
    hl_chat_request_init(req);
    memset(err, 0, sizeof *err);
    return hl_responses_parse_request(body, strlen(body), req, err);
}

HL_TEST(parse_items_into_chat_turns) {
    hl_chat_request r;
    hl_api_error e;
    const char *body =
        "{\"model\":\"auto\",\"instructions\":\"be brief\",\"store\":false,\"stream\":true,"
        "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"a\"},"
        "{\"type\":\"input_text\",\"text\":\"b\"}]},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"looking\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"g\",\"arguments\":\"\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"one\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":[{\"type\":\"input_text\",\"text\":\"two\"}]}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"},\"strict\":true}],"
        "\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"},\"max_output_tokens\":64,\"temperature\":0.2,"
        "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"out\",\"schema\":{\"type\":\"object\"},\"strict\":true}},"
        "\"reasoning\":{\"effort\":\"high\"},\"parallel_tool_calls\":false,\"include\":[\"reasoning.encrypted_content\"],"
        "\"metadata\":{\"task_type\":\"coding\"}}";
    HL_REQUIRE(parse(body, &r, &e) == HL_OK);
    HL_CHECK_STR_EQ(r.model, "auto");
    HL_REQUIRE(r.n_messages == 5);
    HL_CHECK_INT_EQ(r.messages[0].role, HL_ROLE_SYSTEM);
    HL_CHECK_STR_EQ(r.messages[0].text, "be brief");
    HL_CHECK_STR_EQ(r.messages[1].text, "a\nb");
    /* The assistant's text and both its calls are one turn. */
    HL_CHECK_INT_EQ(r.messages[2].role, HL_ROLE_ASSISTANT);
    HL_CHECK_STR_EQ(r.messages[2].text, "looking");
    HL_REQUIRE(r.messages[2].n_tool_calls == 2);
    HL_CHECK_STR_EQ(r.messages[2].tool_calls[0].id, "c1");
    HL_CHECK_STR_EQ(r.messages[2].tool_calls[0].arguments, "{\"x\":1}");
    HL_CHECK_STR_EQ(r.messages[2].tool_calls[1].name, "g");
    HL_CHECK_STR_EQ(r.messages[2].tool_calls[1].arguments, "{}");
    HL_CHECK_INT_EQ(r.messages[3].role, HL_ROLE_TOOL);
    HL_CHECK_STR_EQ(r.messages[3].tool_call_id, "c1");
    HL_CHECK_STR_EQ(r.messages[4].text, "two");
    HL_CHECK(r.stream && r.include_usage);
    HL_CHECK_INT_EQ(r.max_tokens, 64);
    HL_CHECK(r.has_temperature);
    HL_CHECK_STR_EQ(r.task_type, "coding");
    /* Flat tools become chat tools; the named tool_choice too. */
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(json_array_get(r.tools, 0), "function"), "name")), "f");
    HL_CHECK(json_is_true(json_object_get(json_object_get(json_array_get(r.tools, 0), "function"), "strict")));
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(r.tool_choice, "function"), "name")), "f");
    const json_t *rf = json_object_get(r.passthrough, "response_format");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(rf, "type")), "json_schema");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(rf, "json_schema"), "name")), "out");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(r.passthrough, "reasoning_effort")), "high");
    HL_CHECK(json_is_false(json_object_get(r.passthrough, "parallel_tool_calls")));
    HL_CHECK(json_object_get(r.passthrough, "include") == NULL);  /* never forwarded */
    HL_CHECK(json_object_get(r.passthrough, "metadata") == NULL);
    hl_chat_request_release(&r);
}

HL_TEST(string_input_is_one_user_turn) {
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse("{\"model\":\"m\",\"input\":\"hi\"}", &r, &e) == HL_OK);
    HL_REQUIRE(r.n_messages == 1);
    HL_CHECK_INT_EQ(r.messages[0].role, HL_ROLE_USER);
    HL_CHECK_STR_EQ(r.messages[0].text, "hi");
    HL_CHECK(!r.stream && r.max_tokens == -1 && !r.tools);
    HL_CHECK(json_object_size(r.passthrough) == 0);
    hl_chat_request_release(&r);
}

typedef struct { const char *body; const char *param; const char *needle; } bad_case;

HL_TEST(rejects_bad_requests_in_openai_shape_with_param) {
    static const bad_case cases[] = {
        {"{", NULL, "could not parse the JSON"},
        {"[]", NULL, "must be a JSON object"},
        {"{\"input\":\"x\"}", "model", "Missing required parameter"},
        {"{\"model\":\"\",\"input\":\"x\"}", "model", "non-empty string"},
        {"{\"model\":\"m\"}", "input", "Missing required parameter"},
        {"{\"model\":\"m\",\"input\":3}", "input", "expected a string or an array"},
        {"{\"model\":\"m\",\"input\":[]}", "input", "no user, assistant or tool item"},
        {"{\"model\":\"m\",\"instructions\":\"s\",\"input\":[]}", "input", "no user, assistant or tool item"},
        {"{\"model\":\"m\",\"instructions\":7,\"input\":\"x\"}", "instructions", "expected a string"},
        {"{\"model\":\"m\",\"input\":[3]}", "input[0]", "expected an object"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"bot\",\"content\":\"x\"}]}", "input[0].role", "'bot'"},
        {"{\"model\":\"m\",\"input\":[{\"content\":\"x\"}]}", "input[0].role", "Missing"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\"}]}", "input[0].content", "Missing"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"u\"}]}]}",
         "input[0].content[0].type", "not supported"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]}",
         "input[0].content[0].text", "expected a string"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}",
         "input[0].call_id", "Missing"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":{}}]}",
         "input[0].arguments", "string of JSON"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\"}]}", "input[0].output", "Missing"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}", "input[0].type", "stateless"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"web_search_call\",\"id\":\"ws\"}]}", "input[0].type", "not supported"},
        {"{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"resp_1\"}", "previous_response_id", "stateless"},
        {"{\"model\":\"m\",\"input\":\"x\",\"background\":true}", "background", "not supported"},
        {"{\"model\":\"m\",\"input\":\"x\",\"store\":\"no\"}", "store", "boolean"},
        {"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens", "integer >= 1"},
        {"{\"model\":\"m\",\"input\":\"x\",\"temperature\":3}", "temperature", "out of range"},
        {"{\"model\":\"m\",\"input\":\"x\",\"stream\":1}", "stream", "boolean"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":{}}", "tools", "expected an array"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}", "tools[0].type", "only 'function'"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"parameters\":{}}]}", "tools[0].name", "Missing"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"always\"}", "tool_choice", "'always'"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"function\"}}", "tool_choice.name", "Missing"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"file_search\"}}", "tool_choice", "expected"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"xml\"}}}", "text.format.type", "'xml'"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"schema\":{}}}}",
         "text.format.name", "Missing"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\"}}}",
         "text.format.schema", "Missing"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":\"high\"}", "reasoning", "expected an object"},
        {"{\"model\":\"m\",\"input\":\"x\",\"metadata\":[]}", "metadata", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_chat_request r;
        hl_api_error e;
        hl_err rc = parse(cases[i].body, &r, &e);
        if (rc != HL_ERR_INVAL) {
            HL_FAIL_("case %zu (%s): expected HL_ERR_INVAL, got %d", i, cases[i].body, rc);
            hl_chat_request_release(&r);
            continue;
        }
        HL_CHECK_INT_EQ(e.status, 400);
        HL_CHECK_STR_EQ(e.param, cases[i].param ? cases[i].param : "");
        if (cases[i].needle && !strstr(e.message, cases[i].needle))
            HL_FAIL_("case %zu: message '%s' lacks '%s'", i, e.message, cases[i].needle);
        /* OpenAI's error shape, param named. */
        hl_buf b;
        hl_buf_init(&b, 0);
        HL_CHECK(hl_responses_write_error(&b, &e) == HL_OK);
        json_t *j = json_loads(b.data, 0, NULL);
        const json_t *eo = json_object_get(j, "error");
        HL_CHECK_STR_EQ(json_string_value(json_object_get(eo, "type")), "invalid_request_error");
        HL_CHECK(json_is_string(json_object_get(eo, "message")));
        if (cases[i].param) HL_CHECK_STR_EQ(json_string_value(json_object_get(eo, "param")), cases[i].param);
        else HL_CHECK(json_is_null(json_object_get(eo, "param")));
        json_decref(j);
        hl_buf_release(&b);
        hl_chat_request_release(&r);
    }
}

/* Anthropic backends and the builtin engine cannot honour a JSON schema: their checks refuse
 * the request, and the Responses client is told in its own terms (text.format), not chat's
 * (response_format). */
HL_TEST(json_schema_refused_by_anthropic_in_responses_terms) {
    hl_chat_request r;
    hl_api_error e;
    HL_REQUIRE(parse("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\","
                     "\"schema\":{\"type\":\"object\"}}}}", &r, &e) == HL_OK);
    HL_CHECK(hl_anthropic_check_request(&r, &e) != HL_OK);
    HL_CHECK_INT_EQ(e.status, 400);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_responses_write_error(&b, &e) == HL_OK);
    HL_CHECK(strstr(b.data, "\"param\":\"text.format\"") != NULL);
    HL_CHECK(strstr(b.data, "'text.format'") != NULL);
    HL_CHECK(strstr(b.data, "Anthropic") != NULL);
    HL_CHECK(strstr(b.data, "\"code\":\"unsupported_parameter\"") != NULL);
    /* Nor can the builtin engine (it samples freely). */
    const hl_provider *builtin = hl_provider_for(HL_PROVIDER_BUILTIN);
    HL_REQUIRE(builtin->check != NULL);
    memset(&e, 0, sizeof e);
    HL_CHECK(builtin->check(&r, &e) != HL_OK);
    hl_buf_reset(&b);
    HL_REQUIRE(hl_responses_write_error(&b, &e) == HL_OK);
    HL_CHECK(strstr(b.data, "\"param\":\"text.format\"") != NULL);
    HL_CHECK(strstr(b.data, "builtin engine") != NULL);
    /* OpenAI-kind backends take it (the format goes upstream as response_format). */
    HL_CHECK(hl_provider_for(HL_PROVIDER_OPENAI)->check == NULL);
    hl_buf_release(&b);
    hl_chat_request_release(&r);
    /* Plain text passes. */
    HL_REQUIRE(parse("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"text\"}}}", &r, &e) == HL_OK);
    HL_CHECK(hl_anthropic_check_request(&r, &e) == HL_OK);
    HL_CHECK(builtin->check(&r, &e) == HL_OK);
    hl_chat_request_release(&r);
}

HL_TEST(response_object_items_and_status) {
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    resp.model = strdup("m1");
    resp.n_tool_calls = 1;
    resp.tool_calls = calloc(1, sizeof *resp.tool_calls);
    resp.tool_calls[0].id = strdup("call_1");
    resp.tool_calls[0].name = strdup("f");
    resp.tool_calls[0].arguments = strdup("{\"a\":1}");
    resp.finish = HL_FINISH_TOOL_CALLS;
    resp.usage = (hl_usage){.input_tokens = 10, .output_tokens = 5, .cached_input_tokens = 4, .reasoning_tokens = 2};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_responses_write_response(&b, &resp, "resp_x", 1700000000) == HL_OK);
    json_t *j = json_loads(b.data, 0, NULL);
    HL_REQUIRE(j != NULL);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "object")), "response");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "status")), "completed");
    const json_t *out = json_object_get(j, "output");
    HL_REQUIRE(json_array_size(out) == 1); /* tool calls alone: no empty message item */
    const json_t *fc = json_array_get(out, 0);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(fc, "type")), "function_call");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(fc, "id")), "fc_x_0");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(fc, "call_id")), "call_1");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(fc, "arguments")), "{\"a\":1}");
    const json_t *u = json_object_get(j, "usage");
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(u, "total_tokens")), 15);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(u, "input_tokens_details"), "cached_tokens")), 4);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(u, "output_tokens_details"), "reasoning_tokens")), 2);
    json_decref(j);
    /* Cut by max_output_tokens: incomplete, with the reason, the item incomplete too. */
    hl_chat_response_release(&resp);
    hl_chat_response_init(&resp);
    resp.text = strdup("Once");
    resp.finish = HL_FINISH_LENGTH;
    hl_buf_reset(&b);
    HL_REQUIRE(hl_responses_write_response(&b, &resp, "resp_y", 1) == HL_OK);
    j = json_loads(b.data, 0, NULL);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "status")), "incomplete");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "incomplete_details"), "reason")), "max_output_tokens");
    const json_t *msg = json_array_get(json_object_get(j, "output"), 0);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(msg, "status")), "incomplete");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(msg, "content"), 0), "text")), "Once");
    json_decref(j);
    hl_buf_release(&b);
    hl_chat_response_release(&resp);
}

/* Splits an encoded stream into its events; checks each frame's shape (event line equal to
 * data.type, sequence numbers 0, 1, 2, ... with no gap) and returns the types joined by ' '. */
static void stream_types(const char *s, char *types, size_t n) {
    types[0] = 0;
    long want = 0;
    while (*s) {
        HL_CHECK(!strncmp(s, "event: ", 7));
        const char *nl = strchr(s, '\n');
        HL_REQUIRE(nl != NULL);
        char type[96];
        snprintf(type, sizeof type, "%.*s", (int)(nl - s - 7), s + 7);
        s = nl + 1;
        HL_CHECK(!strncmp(s, "data: ", 6));
        const char *end = strstr(s, "\n\n");
        HL_REQUIRE(end != NULL);
        json_t *j = json_loadb(s + 6, (size_t)(end - s - 6), 0, NULL);
        HL_REQUIRE(j != NULL);
        HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "type")), type);
        HL_CHECK_INT_EQ(json_integer_value(json_object_get(j, "sequence_number")), want);
        want++;
        json_decref(j);
        size_t l = strlen(types);
        snprintf(types + l, n - l, "%s%s", l ? " " : "", type);
        s = end + 2;
    }
}

HL_TEST(stream_events_in_order_with_sequence_numbers) {
    hl_responses_encoder enc;
    hl_buf out;
    hl_buf_init(&out, 0);
    hl_responses_encoder_init(&enc, "resp_s", "m", 1);
    hl_stream_event ev = {.type = HL_EV_START, .model = "up-model"};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    ev = (hl_stream_event){.type = HL_EV_TEXT, .text = "Hel", .text_len = 3};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    ev.text = "lo";
    ev.text_len = 2;
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    /* A call whose every fragment repeats its id (as some servers send) stays one item. */
    ev = (hl_stream_event){.type = HL_EV_TOOL_CALL, .index = 0, .tool_id = "c1", .tool_name = "f", .text = "{\"a\"", .text_len = 4};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    ev = (hl_stream_event){.type = HL_EV_TOOL_CALL, .index = 0, .tool_id = "c1", .text = ":1}", .text_len = 3};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    ev = (hl_stream_event){.type = HL_EV_TOOL_CALL, .index = 1, .tool_id = "c2", .tool_name = "g", .text = "", .text_len = 0};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    ev = (hl_stream_event){.type = HL_EV_FINISH, .finish = HL_FINISH_TOOL_CALLS};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    hl_usage u = {.input_tokens = 3, .output_tokens = 4};
    HL_CHECK(hl_responses_encode_end(&enc, &u, &out) == HL_OK);
    char types[2048];
    stream_types(out.data, types, sizeof types);
    HL_CHECK_STR_EQ(types,
                    "response.created response.in_progress response.output_item.added response.content_part.added "
                    "response.output_text.delta response.output_text.delta response.output_text.done "
                    "response.content_part.done response.output_item.done response.output_item.added "
                    "response.function_call_arguments.delta response.function_call_arguments.delta "
                    "response.function_call_arguments.done response.output_item.done response.output_item.added "
                    "response.function_call_arguments.done response.output_item.done response.completed");
    /* response.completed carries the whole output and the usage. */
    const char *last = strstr(out.data, "event: response.completed\ndata: ") + 32;
    json_t *j = json_loads(last, JSON_DISABLE_EOF_CHECK, NULL);
    const json_t *r = json_object_get(j, "response");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(r, "model")), "up-model");
    const json_t *o = json_object_get(r, "output");
    HL_REQUIRE(json_array_size(o) == 3);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(o, 0), "content"), 0), "text")), "Hello");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(o, 1), "arguments")), "{\"a\":1}");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(o, 2), "id")), "fc_s_2");
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(r, "usage"), "total_tokens")), 7);
    json_decref(j);
    /* Nothing after the end. */
    size_t len = out.len;
    ev = (hl_stream_event){.type = HL_EV_TEXT, .text = "x", .text_len = 1};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    HL_CHECK_INT_EQ(out.len, len);
    hl_responses_encoder_release(&enc);
    hl_buf_release(&out);
}

HL_TEST(stream_error_then_failed) {
    hl_responses_encoder enc;
    hl_buf out;
    hl_buf_init(&out, 0);
    hl_responses_encoder_init(&enc, "resp_e", "m", 1);
    hl_stream_event ev = {.type = HL_EV_TEXT, .text = "Hi", .text_len = 2};
    HL_CHECK(hl_responses_encode_event(&enc, &ev, &out) == HL_OK);
    hl_api_error e;
    hl_api_error_set(&e, 529, HL_AE_OVERLOADED, NULL, "upstream_stream_error", "Backend 'b': Overloaded");
    HL_CHECK(hl_responses_encode_error(&enc, &e, &out) == HL_OK);
    char types[1024];
    stream_types(out.data, types, sizeof types);
    HL_CHECK_STR_EQ(types, "response.created response.in_progress response.output_item.added "
                           "response.content_part.added response.output_text.delta error response.failed");
    /* The openai SDK raises an error event only when it has data.error; Vercel's reads either. */
    HL_CHECK(strstr(out.data, "\"error\":{\"type\":\"overloaded_error\",\"code\":\"upstream_stream_error\"") != NULL);
    HL_CHECK(strstr(out.data, "\"status\":\"failed\"") != NULL);
    hl_responses_encoder_release(&enc);
    /* An answer with nothing in it still ends with an (empty) message item. */
    hl_buf_reset(&out);
    hl_responses_encoder_init(&enc, "resp_f", "m", 1);
    hl_usage u = {0};
    HL_CHECK(hl_responses_encode_end(&enc, &u, &out) == HL_OK);
    stream_types(out.data, types, sizeof types);
    HL_CHECK_STR_EQ(types, "response.created response.in_progress response.output_item.added "
                           "response.content_part.added response.output_text.done response.content_part.done "
                           "response.output_item.done response.completed");
    hl_responses_encoder_release(&enc);
    hl_responses_encoder_release(&enc); /* twice is harmless */
    hl_buf_release(&out);
}

/* ---- upstream: OpenAI cloud backends get the Responses API natively ---- */

HL_TEST(upstream_request_rendered_from_internal_model) {
    hl_chat_request r;
    hl_api_error e;
    const char *body =
        "{\"model\":\"auto\",\"instructions\":\"be brief\",\"stream\":true,"
        "\"input\":[{\"role\":\"user\",\"content\":\"hi \\\"there\\\"\"},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"looking\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"one\"},"
        "{\"role\":\"developer\",\"content\":\"later rule\"}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"},\"strict\":true}],"
        "\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"},\"max_output_tokens\":64,\"temperature\":0.5,"
        "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"out\",\"schema\":{\"type\":\"object\"},\"strict\":true}},"
        "\"reasoning\":{\"effort\":\"high\"},\"parallel_tool_calls\":false,\"metadata\":{\"task_type\":\"coding\"}}";
    HL_REQUIRE(parse(body, &r, &e) == HL_OK);
    hl_buf out;
    hl_buf_init(&out, 0);
    HL_REQUIRE(hl_responses_write_upstream_request(&out, &r, "gpt-4o") == HL_OK);
    json_t *j = json_loadb(out.data, out.len, 0, NULL);
    HL_REQUIRE(json_is_object(j));
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "model")), "gpt-4o");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "instructions")), "be brief");
    HL_CHECK(!json_object_get(j, "messages"));
    const json_t *in = json_object_get(j, "input");
    HL_REQUIRE(json_array_size(in) == 5);
    json_t *want = json_loads(
        "[{\"type\":\"message\",\"role\":\"user\",\"content\":\"hi \\\"there\\\"\"},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"looking\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"one\"},"
        "{\"type\":\"message\",\"role\":\"system\",\"content\":\"later rule\"}]", 0, NULL);
    HL_CHECK(json_equal(in, want));
    json_decref(want);
    want = json_loads("[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"},\"strict\":true}]", 0, NULL);
    HL_CHECK(json_equal(json_object_get(j, "tools"), want));
    json_decref(want);
    want = json_loads("{\"type\":\"function\",\"name\":\"f\"}", 0, NULL);
    HL_CHECK(json_equal(json_object_get(j, "tool_choice"), want));
    json_decref(want);
    want = json_loads("{\"format\":{\"type\":\"json_schema\",\"name\":\"out\",\"schema\":{\"type\":\"object\"},\"strict\":true}}", 0, NULL);
    HL_CHECK(json_equal(json_object_get(j, "text"), want));
    json_decref(want);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(j, "max_output_tokens")), 64);
    HL_CHECK(json_real_value(json_object_get(j, "temperature")) == 0.5);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "reasoning"), "effort")), "high");
    HL_CHECK(json_is_false(json_object_get(j, "parallel_tool_calls")));
    HL_CHECK(json_is_true(json_object_get(j, "stream")));
    HL_CHECK(json_is_false(json_object_get(j, "store")));
    /* Routing hints and chat-only names never go upstream. */
    HL_CHECK(!json_object_get(j, "metadata") && !json_object_get(j, "response_format") &&
             !json_object_get(j, "reasoning_effort") && !json_object_get(j, "max_tokens"));
    json_decref(j);
    hl_buf_release(&out);
    hl_chat_request_release(&r);

    /* A plain string tool_choice passes as is; no stream field when not streaming. */
    HL_REQUIRE(parse("{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"required\","
                     "\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}", &r, &e) == HL_OK);
    hl_buf_init(&out, 0);
    HL_REQUIRE(hl_responses_write_upstream_request(&out, &r, "m") == HL_OK);
    j = json_loadb(out.data, out.len, 0, NULL);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "tool_choice")), "required");
    HL_CHECK(!json_object_get(j, "stream") && !json_object_get(j, "instructions"));
    json_decref(j);
    hl_buf_release(&out);
    hl_chat_request_release(&r);
}

HL_TEST(upstream_response_object_parsed) {
    const char *body =
        "{\"id\":\"resp_1\",\"object\":\"response\",\"created_at\":1700,\"status\":\"completed\",\"model\":\"gpt-4o\","
        "\"output\":[{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
        "{\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":["
        "{\"type\":\"output_text\",\"text\":\"hel\",\"annotations\":[]},{\"type\":\"output_text\",\"text\":\"lo\",\"annotations\":[]}]},"
        "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_9\",\"name\":\"f\",\"arguments\":\"{}\"}],"
        "\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":7,"
        "\"output_tokens_details\":{\"reasoning_tokens\":3},\"total_tokens\":17}}";
    hl_chat_response r;
    hl_chat_response_init(&r);
    HL_REQUIRE(hl_responses_parse_upstream_response(body, strlen(body), &r) == HL_OK);
    HL_CHECK_STR_EQ(r.id, "resp_1");
    HL_CHECK_STR_EQ(r.model, "gpt-4o");
    HL_CHECK_INT_EQ(r.created, 1700);
    HL_CHECK_STR_EQ(r.text, "hello");
    HL_REQUIRE(r.n_tool_calls == 1);
    HL_CHECK_STR_EQ(r.tool_calls[0].id, "call_9");
    HL_CHECK_STR_EQ(r.tool_calls[0].name, "f");
    HL_CHECK_STR_EQ(r.tool_calls[0].arguments, "{}");
    HL_CHECK_INT_EQ(r.finish, HL_FINISH_TOOL_CALLS);
    HL_CHECK(r.usage.known);
    HL_CHECK_INT_EQ(r.usage.input_tokens, 10);
    HL_CHECK_INT_EQ(r.usage.cached_input_tokens, 4);
    HL_CHECK_INT_EQ(r.usage.output_tokens, 7);
    HL_CHECK_INT_EQ(r.usage.reasoning_tokens, 3);
    hl_chat_response_release(&r);

    const char *cut = "{\"id\":\"resp_2\",\"model\":\"m\",\"status\":\"incomplete\","
                      "\"incomplete_details\":{\"reason\":\"max_output_tokens\"},"
                      "\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"abc\"}]}]}";
    hl_chat_response_init(&r);
    HL_REQUIRE(hl_responses_parse_upstream_response(cut, strlen(cut), &r) == HL_OK);
    HL_CHECK_STR_EQ(r.text, "abc");
    HL_CHECK_INT_EQ(r.finish, HL_FINISH_LENGTH);
    HL_CHECK(!r.usage.known);
    hl_chat_response_release(&r);

    hl_chat_response_init(&r);
    HL_CHECK(hl_responses_parse_upstream_response("{\"choices\":[]}", 14, &r) == HL_ERR_PARSE);
    hl_chat_response_release(&r);
    hl_chat_response_init(&r);
    HL_CHECK(hl_responses_parse_upstream_response("nope", 4, &r) == HL_ERR_PARSE);
    hl_chat_response_release(&r);
}

/* Records decoded events as a compact trace: "S(id) T(text) C0(id,name,args) F2 U10/7/4/3 D E(msg)". */
static int trace_sink(void *ud, const hl_stream_event *ev) {
    hl_buf *b = ud;
    switch (ev->type) {
    case HL_EV_START: return hl_buf_printf(b, "S(%s) ", ev->id ? ev->id : "");
    case HL_EV_TEXT: return hl_buf_printf(b, "T(%.*s) ", (int)ev->text_len, ev->text);
    case HL_EV_TOOL_CALL:
        return hl_buf_printf(b, "C%d(%s,%s,%.*s) ", ev->index, ev->tool_id ? ev->tool_id : "",
                             ev->tool_name ? ev->tool_name : "", (int)ev->text_len, ev->text);
    case HL_EV_FINISH: return hl_buf_printf(b, "F%d ", (int)ev->finish);
    case HL_EV_USAGE:
        return hl_buf_printf(b, "U%ld/%ld/%ld/%ld ", ev->usage.input_tokens, ev->usage.output_tokens,
                             ev->usage.cached_input_tokens, ev->usage.reasoning_tokens);
    case HL_EV_DONE: return hl_buf_puts(b, "D ");
    case HL_EV_ERROR: return hl_buf_printf(b, "E(%.*s,%s) ", (int)ev->text_len, ev->text, ev->error_type ? ev->error_type : "");
    default: return hl_buf_puts(b, "? ");
    }
}

static int feed(hl_responses_decoder *d, const char *type, const char *data, hl_buf *trace) {
    hl_sse_event ev = {.event = type, .data = data, .data_len = strlen(data), .id = ""};
    return hl_responses_decode_stream_event(d, &ev, trace_sink, trace);
}

HL_TEST(upstream_stream_events_decoded) {
    hl_responses_decoder d;
    hl_responses_decoder_init(&d);
    hl_buf t;
    hl_buf_init(&t, 0);
    const char *resp = "\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-4o\",\"status\":\"in_progress\",\"output\":[]}";
    char buf[512];
    snprintf(buf, sizeof buf, "{\"type\":\"response.created\",\"sequence_number\":0,%s}", resp);
    HL_CHECK(feed(&d, "response.created", buf, &t) == 0);
    snprintf(buf, sizeof buf, "{\"type\":\"response.in_progress\",\"sequence_number\":1,%s}", resp);
    HL_CHECK(feed(&d, "response.in_progress", buf, &t) == 0);
    HL_CHECK(feed(&d, "response.output_item.added", "{\"type\":\"response.output_item.added\",\"output_index\":0,"
                  "\"item\":{\"type\":\"message\",\"id\":\"msg_1\",\"content\":[]}}", &t) == 0);
    HL_CHECK(feed(&d, "response.output_text.delta", "{\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":\"he\"}", &t) == 0);
    HL_CHECK(feed(&d, "response.output_text.delta", "{\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":\"y\"}", &t) == 0);
    HL_CHECK(feed(&d, "response.output_text.done", "{\"type\":\"response.output_text.done\",\"output_index\":0,\"text\":\"hey\"}", &t) == 0);
    HL_CHECK(feed(&d, "response.output_item.added", "{\"type\":\"response.output_item.added\",\"output_index\":1,"
                  "\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"f\",\"arguments\":\"\"}}", &t) == 0);
    HL_CHECK(feed(&d, "response.output_item.added", "{\"type\":\"response.output_item.added\",\"output_index\":2,"
                  "\"item\":{\"type\":\"function_call\",\"id\":\"fc_2\",\"call_id\":\"call_2\",\"name\":\"g\",\"arguments\":\"\"}}", &t) == 0);
    HL_CHECK(feed(&d, "response.function_call_arguments.delta", "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":2,\"delta\":\"{}\"}", &t) == 0);
    HL_CHECK(feed(&d, "response.function_call_arguments.delta", "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1,\"delta\":\"{\\\"a\\\":1}\"}", &t) == 0);
    HL_CHECK(feed(&d, "response.completed", "{\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\","
                  "\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":7,"
                  "\"output_tokens_details\":{\"reasoning_tokens\":3}}}}", &t) == 0);
    HL_CHECK(hl_buf_append(&t, "", 1) == HL_OK);
    HL_CHECK_STR_EQ(t.data, "S(resp_1) T(he) T(y) C0(call_1,f,) C1(call_2,g,) C1(,,{}) C0(,,{\"a\":1}) F3 U10/7/4/3 D ");
    hl_buf_release(&t);

    /* A cut answer finishes LENGTH; a failure is an ERROR; `error` events too; junk is a parse error. */
    hl_responses_decoder_init(&d);
    hl_buf_init(&t, 0);
    HL_CHECK(feed(&d, "response.incomplete", "{\"type\":\"response.incomplete\",\"response\":{\"id\":\"r2\",\"status\":\"incomplete\","
                  "\"incomplete_details\":{\"reason\":\"max_output_tokens\"}}}", &t) == 0);
    HL_CHECK(feed(&d, "response.failed", "{\"type\":\"response.failed\",\"response\":{\"id\":\"r2\",\"status\":\"failed\","
                  "\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}", &t) == 0);
    HL_CHECK(feed(&d, "error", "{\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\",\"param\":null}", &t) == 0);
    HL_CHECK(feed(&d, "", "not json", &t) == HL_ERR_PARSE);
    HL_CHECK(hl_buf_append(&t, "", 1) == HL_OK);
    HL_CHECK_STR_EQ(t.data, "S(r2) F2 D E(boom,server_error) E(slow down,rate_limit_exceeded) ");
    hl_buf_release(&t);
}

HL_TEST_MAIN()
