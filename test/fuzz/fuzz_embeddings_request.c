/* Fuzz target: a client's /v1/embeddings body through validation, and the same bytes as an
 * upstream's embeddings answer rendered as floats and as base64. Must never crash, leak or
 * read out of bounds. */
#include <stdint.h>
#include "hl_aux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_embed_request er;
    hl_api_error err;
    hl_buf b;
    hl_buf_init(&b, 0);
    if (hl_embed_parse((const char *)data, size, &er, &err) != HL_OK) hl_openai_write_error(&b, &err);
    hl_embed_request_release(&er);
    long pt;
    hl_buf_reset(&b);
    hl_embed_render((const char *)data, size, false, "m", &b, &pt);
    hl_buf_reset(&b);
    hl_embed_render((const char *)data, size, true, "m", &b, &pt);
    hl_buf_release(&b);
    return 0;
}
