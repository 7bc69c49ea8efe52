/* Fuzz target: the one-pass reader of client chat requests (hl_openai_request.c) against the
 * jansson parser. Where the fast reader takes a body the full parser must take it too and
 * fill the request the same way; anything else the fast reader must leave to the full parser
 * (HL_ERR_UNSUPPORTED) with the request untouched. A difference aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl_openai.h"

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void same_request(const hl_chat_request *a, const hl_chat_request *b) {
    if (!same_str(a->model, b->model) || a->n_messages != b->n_messages || a->n_stop != b->n_stop) abort();
    for (size_t i = 0; i < a->n_messages; i++) {
        const hl_message *x = &a->messages[i], *y = &b->messages[i];
        if (x->role != y->role || !same_str(x->text, y->text) || !same_str(x->name, y->name) ||
            !same_str(x->tool_call_id, y->tool_call_id) || x->n_tool_calls || y->n_tool_calls)
            abort();
    }
    for (size_t i = 0; i < a->n_stop; i++)
        if (!same_str(a->stop[i], b->stop[i])) abort();
    if (a->max_tokens != b->max_tokens || a->max_completion_tokens != b->max_completion_tokens ||
        a->has_temperature != b->has_temperature || a->has_top_p != b->has_top_p ||
        memcmp(&a->temperature, &b->temperature, sizeof a->temperature) ||
        memcmp(&a->top_p, &b->top_p, sizeof a->top_p) || a->stream != b->stream ||
        a->include_usage != b->include_usage || a->logprobs != b->logprobs ||
        a->top_logprobs != b->top_logprobs || a->text_bytes != b->text_bytes)
        abort();
    /* The full parser's extras stay empty on a body the fast one takes. */
    if (a->tools || a->tool_choice || a->passthrough || b->tools || b->tool_choice ||
        json_object_size(b->passthrough) || b->task_type || b->regulated || b->pii)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_chat_request a, b, fresh;
    hl_api_error err;
    hl_chat_request_init(&a);
    hl_chat_request_init(&b);
    hl_chat_request_init(&fresh);
    hl_err ea = hl_openai_request_fast((const char *)data, size, &a);
    if (ea == HL_OK) {
        if (hl_openai_parse_request_full((const char *)data, size, &b, &err) != HL_OK) abort();
        same_request(&a, &b);
    } else if (ea != HL_ERR_UNSUPPORTED && ea != HL_ERR_NOMEM) {
        abort();
    } else if (memcmp(&a, &fresh, sizeof a)) {
        abort(); /* gave up, but left something behind */
    }
    hl_chat_request_release(&a);
    hl_chat_request_release(&b);
    return 0;
}
