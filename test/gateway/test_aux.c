/* Tests for hl_aux's pure pieces: the /v1/embeddings parser (400s naming the parameter), the
 * rendering of an upstream embeddings list as floats and as base64 float32, and the
 * count_tokens parser. The endpoints themselves run in test/integration/endpoints.test.mjs. */
#include "hl_aux.h"
#include "hl_test.h"

typedef struct { const char *body; const char *param; } bad_case;

HL_TEST(embed_parse_accepts_every_input_form) {
    static const char *const ok[] = {
        "{\"model\":\"e\",\"input\":\"hello\"}",
        "{\"model\":\"e\",\"input\":[\"a\",\"b\"],\"encoding_format\":\"base64\",\"dimensions\":64,\"user\":\"u\"}",
        "{\"model\":\"e\",\"input\":[1,2,3]}",
        "{\"model\":\"e\",\"input\":[[1,2],[3]],\"encoding_format\":null}",
    };
    static const size_t n[] = {1, 2, 1, 2};
    for (size_t i = 0; i < 4; i++) {
        hl_embed_request er;
        hl_api_error e = {0};
        HL_CHECK_INT_EQ(hl_embed_parse(ok[i], strlen(ok[i]), &er, &e), HL_OK);
        HL_CHECK_INT_EQ(er.n_inputs, n[i]);
        HL_CHECK(er.tokens == (i >= 2));
        if (i == 1) HL_CHECK(er.base64 && er.dimensions == 64 && !strcmp(er.inputs[1], "b"));
        hl_embed_request_release(&er);
    }
}

HL_TEST(embed_parse_rejects_with_param) {
    static const bad_case cases[] = {
        {"{", ""},
        {"[]", ""},
        {"{\"input\":\"x\"}", "model"},
        {"{\"model\":\"e\"}", "input"},
        {"{\"model\":\"e\",\"input\":[]}", "input"},
        {"{\"model\":\"e\",\"input\":\"\"}", "input"},
        {"{\"model\":\"e\",\"input\":[\"a\",3]}", "input"},
        {"{\"model\":\"e\",\"input\":[\"a\",[1]]}", "input"},
        {"{\"model\":\"e\",\"input\":[-1]}", "input"},
        {"{\"model\":\"e\",\"input\":{}}", "input"},
        {"{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"int8\"}", "encoding_format"},
        {"{\"model\":\"e\",\"input\":\"x\",\"dimensions\":0}", "dimensions"},
        {"{\"model\":\"e\",\"input\":\"x\",\"dimensions\":\"8\"}", "dimensions"},
        {"{\"model\":\"e\",\"input\":\"x\",\"user\":5}", "user"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_embed_request er;
        hl_api_error e = {0};
        if (hl_embed_parse(cases[i].body, strlen(cases[i].body), &er, &e) == HL_OK) {
            HL_FAIL_("case %zu accepted: %s", i, cases[i].body);
        } else {
            HL_CHECK_INT_EQ(e.status, 400);
            HL_CHECK_STR_EQ(e.param, cases[i].param);
        }
        hl_embed_request_release(&er);
    }
}

HL_TEST(embed_render_float_and_base64) {
    const char *up = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[1,-0.5,0.25]}],"
                     "\"model\":\"up\",\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3}}";
    hl_buf b;
    hl_buf_init(&b, 0);
    long pt;
    HL_REQUIRE(hl_embed_render(up, strlen(up), false, "e-model", &b, &pt) == HL_OK);
    HL_CHECK_INT_EQ(pt, 3);
    HL_CHECK_STR_EQ(b.data, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[1,-0.5,0.25]}],"
                            "\"model\":\"e-model\",\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3}}");
    hl_buf_reset(&b);
    HL_REQUIRE(hl_embed_render(up, strlen(up), true, "e-model", &b, &pt) == HL_OK);
    /* float32 LE of 1, -0.5, 0.25: 0000803f 000000bf 0000803e */
    HL_CHECK(strstr(b.data, "\"embedding\":\"AACAPwAAAL8AAIA+\"") != NULL);
    hl_buf_reset(&b);
    static const char *const bad[] = {"{}", "{\"data\":[]}", "{\"data\":[{\"embedding\":[\"x\"]}]}",
                                      "{\"data\":[{\"embedding\":\"AAAA\"}]}", "not json"};
    for (int i = 0; i < 5; i++) {
        HL_CHECK_INT_EQ(hl_embed_render(bad[i], strlen(bad[i]), false, "m", &b, &pt), HL_ERR_PARSE);
        hl_buf_reset(&b);
    }
    const char *no_usage = "{\"data\":[{\"embedding\":[0.5]}]}";
    HL_REQUIRE(hl_embed_render(no_usage, strlen(no_usage), false, "m", &b, &pt) == HL_OK);
    HL_CHECK_INT_EQ(pt, -1);
    hl_buf_release(&b);
}

HL_TEST(embed_render_vectors_float_and_base64) {
    /* 0.1f has no short exact decimal: its shortest round-trip form is printed. */
    const float v[6] = {1, -0.5f, 0.25f, 0.1f, 0, 3};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_embed_render_vectors(v, 2, 3, false, "stories", 7, &b) == HL_OK);
    HL_CHECK_STR_EQ(b.data, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":"
                            "[1,-0.5,0.25]},{\"object\":\"embedding\",\"index\":1,\"embedding\":[0.1,0,3]}],"
                            "\"model\":\"stories\",\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}");
    hl_buf_reset(&b);
    HL_REQUIRE(hl_embed_render_vectors(v, 1, 3, true, "stories", 7, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "\"embedding\":\"AACAPwAAAL8AAIA+\"") != NULL); /* as hl_embed_render's */
    hl_buf_release(&b);
}

HL_TEST(count_parse) {
    hl_chat_request r;
    hl_api_error e = {0};
    const char *ok = "{\"model\":\"claude\",\"system\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
                     "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}";
    hl_chat_request_init(&r);
    HL_REQUIRE(hl_count_parse(ok, strlen(ok), &r, &e) == HL_OK);
    HL_CHECK_STR_EQ(r.model, "claude");
    HL_CHECK_INT_EQ(r.n_messages, 2);
    hl_chat_request_release(&r);
    static const bad_case cases[] = {
        {"nope", ""},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"{\"model\":\"c\"}", "messages"},
        {"{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens"},
        {"{\"model\":\"c\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "stream"},
        {"{\"model\":\"c\",\"thinking\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "thinking"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_chat_request_init(&r);
        memset(&e, 0, sizeof e);
        if (hl_count_parse(cases[i].body, strlen(cases[i].body), &r, &e) == HL_OK) {
            HL_FAIL_("case %zu accepted: %s", i, cases[i].body);
        } else {
            HL_CHECK_INT_EQ(e.status, 400);
            HL_CHECK_STR_EQ(e.param, cases[i].param);
            hl_buf b;
            hl_buf_init(&b, 0);
            HL_CHECK_INT_EQ(hl_ingress_anthropic.write_error(&b, &e, "rid"), 400);
            HL_CHECK(b.data && strstr(b.data, "\"type\":\"invalid_request_error\"") != NULL);
            hl_buf_release(&b);
        }
        hl_chat_request_release(&r);
    }
}

HL_TEST(aux_is_told_apart_from_an_exchange) {
    uint32_t exchange_phase = 2, aux_magic = 0x41555821u;
    HL_CHECK(!hl_aux_owns(&exchange_phase));
    HL_CHECK(hl_aux_owns(&aux_magic));
    HL_CHECK(!hl_aux_owns(NULL));
}

HL_TEST_MAIN()
