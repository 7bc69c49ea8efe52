/* Tests for hl_template: each family's exact prompt bytes for a multi-turn chat. The qwen3
 * and phi-3 expectations were rendered from the models' own Jinja templates (Qwen3-0.6B's and
 * Phi-3.5-mini-instruct's, as llama.cpp v0.4.0 keeps them under models/templates/) with
 * Python's jinja2 3.1.6, add_generation_prompt true, on the same messages. */
#include "hl_gguf_write.h"
#include "hl_template.h"
#include "hl_test.h"

static hl_message msgs[] = {
    {.role = HL_ROLE_SYSTEM, .text = "Be brief."},
    {.role = HL_ROLE_USER, .text = "Hi"},
    {.role = HL_ROLE_ASSISTANT, .text = "Hello!"},
    {.role = HL_ROLE_USER, .text = "Sum 2+2"},
};

static void check(hl_template t, const char *want) {
    hl_chat_request r = {.messages = msgs, .n_messages = 4};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_CHECK_INT_EQ(hl_template_apply(t, &r, &b), HL_OK);
    HL_CHECK_STR_EQ(b.data, want);
    hl_buf_release(&b);
}

HL_TEST(families) {
    check(HL_TEMPLATE_CHATML, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                              "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nSum 2+2<|im_end|>\n"
                              "<|im_start|>assistant\n");
    check(HL_TEMPLATE_LLAMA3, "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nSum 2+2<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    check(HL_TEMPLATE_LLAMA2, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Sum 2+2 [/INST]");
    check(HL_TEMPLATE_MISTRAL, "[INST] Be brief.\n\nHi [/INST] Hello! </s><s>[INST] Sum 2+2 [/INST]");
    check(HL_TEMPLATE_PHI3, "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
                            "<|user|>\nSum 2+2<|end|>\n<|assistant|>\n");
    check(HL_TEMPLATE_PLAIN, "Be brief.\n\nHi\n\nHello!\n\nSum 2+2");
}

static void check_msgs(hl_template t, hl_message *m, size_t n, const char *want) {
    hl_chat_request r = {.messages = m, .n_messages = n};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_CHECK_INT_EQ(hl_template_apply(t, &r, &b), HL_OK);
    HL_CHECK_STR_EQ(b.data, want);
    hl_buf_release(&b);
}

HL_TEST(qwen3_thinking) {
    /* Without reasoning it is ChatML. */
    check(HL_TEMPLATE_QWEN3, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                             "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nSum 2+2<|im_end|>\n"
                             "<|im_start|>assistant\n");
    /* An earlier answer's reasoning is dropped. */
    hl_message hist[] = {
        {.role = HL_ROLE_USER, .text = "Hi"},
        {.role = HL_ROLE_ASSISTANT, .text = "<think>\nGreet back.\n</think>\n\nHello!"},
        {.role = HL_ROLE_USER, .text = "Sum 2+2"},
    };
    check_msgs(HL_TEMPLATE_QWEN3, hist, 3,
               "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
               "<|im_start|>user\nSum 2+2<|im_end|>\n<|im_start|>assistant\n");
    /* After the last user message the last turn always shows its (here empty) reasoning. */
    check_msgs(HL_TEMPLATE_QWEN3, hist, 2,
               "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet back.\n</think>\n\n"
               "Hello!<|im_end|>\n<|im_start|>assistant\n");
    hl_message last[] = {{.role = HL_ROLE_USER, .text = "Hi"}, {.role = HL_ROLE_ASSISTANT, .text = "Hello!"}};
    check_msgs(HL_TEMPLATE_QWEN3, last, 2,
               "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n"
               "<|im_start|>assistant\n");
}

HL_TEST(qwen3_tool_loop) {
    hl_tool_call calls[] = {{.id = "c1", .name = "weather", .arguments = "{\"city\": \"Paris\"}"},
                            {.id = "c2", .name = "weather", .arguments = "{\"city\": \"Rome\"}"}};
    hl_message m[] = {
        {.role = HL_ROLE_USER, .text = "Weather in Paris and Rome?"},
        {.role = HL_ROLE_ASSISTANT, .text = "<think>\nI should call the tool twice.\n</think>\n\n",
         .tool_calls = calls, .n_tool_calls = 2},
        {.role = HL_ROLE_TOOL, .text = "18C", .tool_call_id = "c1"},
        {.role = HL_ROLE_TOOL, .text = "21C", .tool_call_id = "c2"},
    };
    check_msgs(HL_TEMPLATE_QWEN3, m, 4,
               "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n<|im_start|>assistant\n<think>\n"
               "I should call the tool twice.\n</think>\n\n<tool_call>\n{\"name\": \"weather\", \"arguments\": "
               "{\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"weather\", \"arguments\": "
               "{\"city\": \"Rome\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n18C\n"
               "</tool_response>\n<tool_response>\n21C\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

HL_TEST(phi3_empty_system_skipped) {
    hl_message m[] = {
        {.role = HL_ROLE_SYSTEM, .text = ""},    {.role = HL_ROLE_USER, .text = "Hi"},
        {.role = HL_ROLE_ASSISTANT, .text = "Hello!"}, {.role = HL_ROLE_USER, .text = "Sum 2+2"},
    };
    check_msgs(HL_TEMPLATE_PHI3, m, 4,
               "<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nSum 2+2<|end|>\n<|assistant|>\n");
}

/* Detection from tokenizer.chat_template: Qwen3's carries <think>, plain ChatML does not. */
static hl_template detect(const char *tmpl, bool *recognised) {
    hl_gguf_writer w;
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_str(&w, "general.architecture", "qwen3");
    hl_gguf_writer_kv_str(&w, "tokenizer.chat_template", tmpl);
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_template t = HL_TEMPLATE_PLAIN;
    hl_gguf *g = NULL;
    if (hl_gguf_writer_header(&w, &b) == HL_OK && hl_gguf_open_buffer(&g, b.data, b.len, NULL, 0) == HL_OK) {
        t = hl_template_detect(g, recognised);
        hl_gguf_free(g);
    }
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
    return t;
}

HL_TEST(detect_qwen3_and_phi3) {
    bool rec = false;
    HL_CHECK_INT_EQ(detect("{{'<|im_start|>' + role}}{% if x %}<think>\n\n</think>{% endif %}", &rec), HL_TEMPLATE_QWEN3);
    HL_CHECK(rec);
    HL_CHECK_INT_EQ(detect("{{'<|im_start|>' + role}}", &rec), HL_TEMPLATE_CHATML);
    HL_CHECK_INT_EQ(detect("{{'<|user|>\n' + c + '<|end|>\n'}}", &rec), HL_TEMPLATE_PHI3);
    hl_template t;
    HL_CHECK_INT_EQ(hl_template_by_name("qwen3", &t), HL_OK);
    HL_CHECK_INT_EQ(t, HL_TEMPLATE_QWEN3);
}

HL_TEST(names) {
    hl_template t;
    HL_CHECK_INT_EQ(hl_template_by_name("llama-3", &t), HL_OK);
    HL_CHECK_INT_EQ(t, HL_TEMPLATE_LLAMA3);
    HL_CHECK_INT_EQ(hl_template_by_name("jinja", &t), HL_ERR_NOTFOUND);
    HL_CHECK_STR_EQ(hl_template_name(HL_TEMPLATE_PHI3), "phi-3");
}

HL_TEST_MAIN()
