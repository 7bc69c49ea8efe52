/* Tests for hl_template: each family's exact prompt bytes for a multi-turn chat. */
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

HL_TEST(names) {
    hl_template t;
    HL_CHECK_INT_EQ(hl_template_by_name("llama-3", &t), HL_OK);
    HL_CHECK_INT_EQ(t, HL_TEMPLATE_LLAMA3);
    HL_CHECK_INT_EQ(hl_template_by_name("jinja", &t), HL_ERR_NOTFOUND);
    HL_CHECK_STR_EQ(hl_template_name(HL_TEMPLATE_PHI3), "phi-3");
}

HL_TEST_MAIN()
