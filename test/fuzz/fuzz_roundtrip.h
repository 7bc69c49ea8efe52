/* fuzz_roundtrip: the property the request and response fuzz targets share. A writer's
 * output, read back by the parser of the same format and written again, gives the same
 * bytes: once in our own canonical form, a message survives the trip through the internal
 * model unchanged (nothing dropped, nothing invented, nothing reordered). Any broken
 * invariant aborts. */
#ifndef HL_FUZZ_ROUNDTRIP_H
#define HL_FUZZ_ROUNDTRIP_H

#include <stdlib.h>
#include <string.h>

#include "hl_anthropic.h"
#include "hl_openai.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* Upstream request bodies: OpenAI and, when the request suits a Messages backend,
 * Anthropic. The OpenAI writer asks for streamed usage, so the parser must take back what
 * it wrote. */
static inline void roundtrip_request(const hl_chat_request *req) {
    for (int kind = 0; kind < 2; kind++) {
        hl_api_error err;
        if (kind == 1 && hl_anthropic_check_request(req, &err) != HL_OK) continue;
        hl_buf first, second;
        hl_buf_init(&first, 0);
        hl_buf_init(&second, 0);
        hl_chat_request again;
        hl_chat_request_init(&again);
        if (kind == 0) {
            CHECK(hl_openai_write_upstream_request(&first, req, "m") == HL_OK);
            CHECK(hl_openai_parse_request(first.data, first.len, &again, &err) == HL_OK);
            CHECK(hl_openai_write_upstream_request(&second, &again, "m") == HL_OK);
        } else {
            CHECK(hl_anthropic_write_upstream_request(&first, req, "m") == HL_OK);
            CHECK(hl_anthropic_parse_request(first.data, first.len, &again, &err) == HL_OK);
            CHECK(hl_anthropic_write_upstream_request(&second, &again, "m") == HL_OK);
        }
        CHECK(first.len == second.len && memcmp(first.data, second.data, first.len) == 0);
        hl_chat_request_release(&again);
        hl_buf_release(&first);
        hl_buf_release(&second);
    }
}

/* Response bodies, in both formats: a response as rendered for a client is also what an
 * upstream of that format sends. */
static inline void roundtrip_response(const hl_chat_response *resp) {
    for (int kind = 0; kind < 2; kind++) {
        hl_buf first, second;
        hl_buf_init(&first, 0);
        hl_buf_init(&second, 0);
        hl_chat_response again;
        hl_chat_response_init(&again);
        if (kind == 0) {
            CHECK(hl_openai_write_response(&first, resp, "id", 1) == HL_OK);
            CHECK(hl_openai_parse_upstream_response(first.data, first.len, &again) == HL_OK);
            CHECK(hl_openai_write_response(&second, &again, "id", 1) == HL_OK);
        } else {
            CHECK(hl_anthropic_write_response(&first, resp, "id", 1) == HL_OK);
            CHECK(hl_anthropic_parse_upstream_response(first.data, first.len, &again) == HL_OK);
            CHECK(hl_anthropic_write_response(&second, &again, "id", 1) == HL_OK);
        }
        CHECK(first.len == second.len && memcmp(first.data, second.data, first.len) == 0);
        hl_chat_response_release(&again);
        hl_buf_release(&first);
        hl_buf_release(&second);
    }
}

#endif
