/* Fuzz target: a client's legacy completions body (/v1/completions) through validation, the
 * legacy upstream body, the Anthropic translation, and a text_completion answer. Must never
 * crash, leak or read out of bounds. */
#include <stdint.h>
#include <string.h>
#include "hl_anthropic.h"
#include "hl_completions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_chat_request req;
    hl_api_error err;
    hl_chat_request_init(&req);
    hl_buf b;
    hl_buf_init(&b, 0);
    if (hl_completions_parse_request((const char *)data, size, &req, &err) == HL_OK) {
        hl_openai_write_upstream_request(&b, &req, "m");
        hl_buf_reset(&b);
        if (hl_anthropic_check_request(&req, &err) == HL_OK) hl_anthropic_write_upstream_request(&b, &req, "m");
        hl_buf_reset(&b);
        hl_chat_response resp;
        hl_chat_response_init(&resp);
        resp.text = strdup(req.messages[0].text);
        hl_completions_write_response(&b, &resp, "cmpl-1", 1);
        hl_chat_response_release(&resp);
    } else {
        hl_openai_write_error(&b, &err);
    }
    hl_buf_release(&b);
    hl_chat_request_release(&req);
    return 0;
}
