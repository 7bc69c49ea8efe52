/* Fuzz target: a client's /v1/messages/count_tokens body through validation and the token
 * estimate. Must never crash, leak or read out of bounds. */
#include <stdint.h>
#include "hl_aux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_chat_request req;
    hl_api_error err;
    hl_chat_request_init(&req);
    if (hl_count_parse((const char *)data, size, &req, &err) == HL_OK) {
        (void)hl_chat_input_estimate(&req);
    } else {
        hl_buf b;
        hl_buf_init(&b, 0);
        hl_anthropic_write_error(&b, &err, "rid");
        hl_buf_release(&b);
    }
    hl_chat_request_release(&req);
    return 0;
}
