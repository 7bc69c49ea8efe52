/* Tests for hl_provider's reading of upstream error answers: which ones say the prompt is
 * longer than the model's context (a failure of that backend for that request only). */
#include <string.h>
#include "hl_provider.h"
#include "hl_test.h"

static bool overflow(int status, const char *body) {
    return hl_provider_context_overflow(status, body, strlen(body));
}

HL_TEST(context_overflow_wordings) {
    /* llama.cpp server (b5xxx and later) */
    HL_CHECK(overflow(400, "{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context size, "
                           "try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":1242,\"n_ctx\":256}}"));
    /* vLLM */
    HL_CHECK(overflow(400, "{\"object\":\"error\",\"message\":\"This model's maximum context length is 2048 tokens. "
                           "However, you requested 3000 tokens\",\"type\":\"BadRequestError\",\"code\":400}"));
    /* OpenAI */
    HL_CHECK(overflow(400, "{\"error\":{\"message\":\"Too long.\",\"type\":\"invalid_request_error\",\"param\":\"messages\","
                           "\"code\":\"context_length_exceeded\"}}"));
    /* Ollama */
    HL_CHECK(overflow(400, "{\"error\":\"the input length exceeds the context length\"}"));
    /* Anthropic */
    HL_CHECK(overflow(400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too "
                           "long: 208310 tokens > 200000 maximum\"}}"));
}

HL_TEST(other_errors_are_not_overflow) {
    HL_CHECK(!overflow(400, "{\"error\":{\"message\":\"Invalid 'max_tokens'\",\"type\":\"invalid_request_error\"}}"));
    HL_CHECK(!overflow(401, "{\"error\":{\"message\":\"Incorrect API key provided.\"}}"));
    /* a 5xx or 429 mentioning it is a server failure or a rate limit, handled as such */
    HL_CHECK(!overflow(500, "maximum context length"));
    HL_CHECK(!overflow(429, "maximum context length"));
    HL_CHECK(!overflow(200, "maximum context length"));
    HL_CHECK(!hl_provider_context_overflow(400, NULL, 0));
}

HL_TEST_MAIN()
