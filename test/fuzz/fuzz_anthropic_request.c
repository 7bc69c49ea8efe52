/* Fuzz target: a client's Anthropic Messages body through validation and translation to both
 * provider kinds, and its errors in the Anthropic shape. Must never crash, leak or read out of
 * bounds. */
#include <stdint.h>
#include <string.h>
#include "hl_anthropic.h"
#include "hl_openai.h"
#include "fuzz_roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_chat_request req;
    hl_api_error err;
    hl_chat_request_init(&req);
    hl_buf b;
    hl_buf_init(&b, 0);
    if (hl_anthropic_parse_request((const char *)data, size, &req, &err) == HL_OK) {
        roundtrip_request(&req);
        hl_openai_write_upstream_request(&b, &req, "m");
        hl_buf_reset(&b);
        if (hl_anthropic_check_request(&req, &err) == HL_OK) hl_anthropic_write_upstream_request(&b, &req, "m");
    } else {
        hl_anthropic_write_error(&b, &err, "req_fuzz");
    }
    hl_buf_release(&b);
    hl_chat_request_release(&req);
    return 0;
}
