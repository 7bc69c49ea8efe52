/* Fuzz target: the one-pass reader of upstream chat.completion replies (hl_openai_reply.c)
 * against the jansson parser. Where the fast reader takes a body the full parser must take it
 * too and read the same fields; anything else the fast reader must leave to the full parser
 * (HL_ERR_UNSUPPORTED). A difference aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl_openai.h"

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_chat_response a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    hl_err ea = hl_openai_reply_fast((const char *)data, size, &a);
    if (ea == HL_OK) {
        if (hl_openai_parse_upstream_full((const char *)data, size, &b) != HL_OK) abort();
        if (!same_str(a.id, b.id) || !same_str(a.model, b.model) || !same_str(a.text, b.text)) abort();
        if (a.created != b.created || a.finish != b.finish || b.n_tool_calls || b.logprobs) abort();
        if (memcmp(&a.usage, &b.usage, sizeof a.usage) != 0) abort();
    } else if (ea != HL_ERR_UNSUPPORTED && ea != HL_ERR_NOMEM) {
        abort();
    }
    hl_chat_response_release(&a);
    hl_chat_response_release(&b);
    return 0;
}
