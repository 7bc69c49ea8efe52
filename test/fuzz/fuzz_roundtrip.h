/* fuzz_roundtrip: the property the request and response fuzz targets share. A writer's
 * output, read back by the parser of the same format and written again, gives the same
 * bytes: once in our own canonical form, a message survives the trip through the internal
 * model unchanged (nothing dropped, nothing invented, nothing reordered). Any broken
 * invariant aborts. */
#ifndef HL_FUZZ_ROUNDTRIP_H
#define HL_FUZZ_ROUNDTRIP_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hl_anthropic.h"
#include "hl_openai.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* One trip: writes req in the format of kind (0 OpenAI, 1 Anthropic) into out, and parses
 * it back into again (initialized by the caller). Returns whether the parser took it. */
static inline bool request_trip(int kind, const hl_chat_request *req, hl_buf *out,
                                hl_chat_request *again) {
    hl_api_error err;
    if (kind == 0) {
        CHECK(hl_openai_write_upstream_request(out, req, "m") == HL_OK);
        return hl_openai_parse_request(out->data, out->len, again, &err) == HL_OK;
    }
    CHECK(hl_anthropic_write_upstream_request(out, req, "m") == HL_OK);
    return hl_anthropic_parse_request(out->data, out->len, again, &err) == HL_OK;
}

/* Upstream request bodies. OpenAI: the parser takes back what the writer wrote, and writing
 * it again gives the same bytes. Anthropic (when the request suits a Messages backend): when
 * the parser takes the body back, the bytes are a fixed point from the second trip on. The
 * Messages writer is allowed those two slacks because the fuzzer found degenerate requests
 * it renders in a form the API (and our parser) would refuse or normalize: a turn with no
 * content is left out, so the turns around it merge into one message whose text blocks the
 * parser joins on the next trip; a user turn of text followed by tool results (the results
 * come back first, as Messages wants them). Two more it found are refused at the door now:
 * system messages only (hl_anthropic_check_request) and an OpenAI function tool without a
 * name (the OpenAI parser). Their inputs are in the corpora (roundtrip-*). */
static inline void roundtrip_request(const hl_chat_request *req) {
    for (int kind = 0; kind < 2; kind++) {
        hl_api_error err;
        if (kind == 1 && hl_anthropic_check_request(req, &err) != HL_OK) continue;
        hl_buf b[3];
        hl_chat_request r[3];
        for (int i = 0; i < 3; i++) {
            hl_buf_init(&b[i], 0);
            hl_chat_request_init(&r[i]);
        }
        bool ok = request_trip(kind, req, &b[0], &r[0]);
        CHECK(ok || kind == 1);
        if (ok) ok = request_trip(kind, &r[0], &b[1], &r[1]);
        CHECK(ok || kind == 1);
        if (kind == 0) CHECK(b[0].len == b[1].len && memcmp(b[0].data, b[1].data, b[0].len) == 0);
        if (ok && request_trip(kind, &r[1], &b[2], &r[2]))
            CHECK(b[1].len == b[2].len && memcmp(b[1].data, b[2].data, b[1].len) == 0);
        for (int i = 0; i < 3; i++) {
            hl_chat_request_release(&r[i]);
            hl_buf_release(&b[i]);
        }
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
