/* hl_openai_reply: the common upstream chat.completion reply read in one pass, without a tree.
 *
 * jansson spends about 4.4 us on the 330-byte reply of a small chat completion (its lexer reads
 * through a callback per character, and each object gets a hash table), on every non-streaming
 * request to an OpenAI-kind backend. This reader validates the whole body as JSON and picks the
 * fields hl_openai_parse_upstream_response keeps, with the same meaning. Anything it does not
 * handle the same way for certain (tool calls, logprobs objects, a text completion, a
 * repeated key it reads, long numbers, deep nesting, anything malformed) makes it give up
 * with HL_ERR_UNSUPPORTED, and the caller parses the body with jansson as before: the fast path
 * never decides an error. test/fuzz/fuzz_openai_reply.c checks that both readers agree. */
#include "hl_jscan.h"
#include "hl_openai.h"

#include <stdlib.h>
#include <string.h>

/* An integer member as get_long reads it: the integer, or 0 for any other value. */
static bool int_or_zero(hl_js *r, long *out) {
    bool is_int;
    long long v;
    double d;
    *out = 0;
    if (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))) {
        if (!hl_js_number(r, &is_int, &v, &d)) return false;
        if (is_int) *out = (long)v;
        return true;
    }
    return hl_js_skip(r, 1);
}

/* {"cached_tokens": N} or {"reasoning_tokens": N}: the one field, 0 without it. */
static bool details(hl_js *r, const char *field, long *out) {
    *out = 0;
    if (!hl_js_at(r, '{')) return hl_js_skip(r, 2);
    r->p++;
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = hl_js_member(r, &first, &k, &kn)) == 1) {
        if (hl_js_key_is(k, kn, field)) {
            if (!hl_js_once(&seen, 1) || !int_or_zero(r, out)) return false;
        } else if (!hl_js_skip(r, 3)) {
            return false;
        }
    }
    return m == 0;
}

static bool usage(hl_js *r, hl_usage *u) {
    memset(u, 0, sizeof *u);
    if (!hl_js_at(r, '{')) return hl_js_skip(r, 1); /* not an object: no usage */
    r->p++;
    u->known = true;
    bool first = true, ok = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while (ok && (m = hl_js_member(r, &first, &k, &kn)) == 1) {
        if (hl_js_key_is(k, kn, "prompt_tokens")) ok = hl_js_once(&seen, 1) && int_or_zero(r, &u->input_tokens);
        else if (hl_js_key_is(k, kn, "completion_tokens")) ok = hl_js_once(&seen, 2) && int_or_zero(r, &u->output_tokens);
        else if (hl_js_key_is(k, kn, "prompt_tokens_details"))
            ok = hl_js_once(&seen, 4) && details(r, "cached_tokens", &u->cached_input_tokens);
        else if (hl_js_key_is(k, kn, "completion_tokens_details"))
            ok = hl_js_once(&seen, 8) && details(r, "reasoning_tokens", &u->reasoning_tokens);
        else ok = hl_js_skip(r, 2);
    }
    return ok && m == 0;
}

/* choices[0].message: its content; gives up on tool calls. */
static hl_err message(hl_js *r, hl_chat_response *t) {
    r->p++; /* '{' */
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = hl_js_member(r, &first, &k, &kn)) == 1) {
        if (hl_js_key_is(k, kn, "content")) {
            if (!hl_js_once(&seen, 1)) return HL_ERR_UNSUPPORTED;
            if (hl_js_at(r, '"')) HL_TRY(hl_js_str_copy(r, &t->text));
            else if (!hl_js_lit(r, "null", 4)) return HL_ERR_UNSUPPORTED; /* parts: the full parser */
        } else if (hl_js_key_is(k, kn, "tool_calls")) {
            if (!hl_js_lit(r, "null", 4)) return HL_ERR_UNSUPPORTED;
        } else if (!hl_js_skip(r, 3)) {
            return HL_ERR_UNSUPPORTED;
        }
    }
    return m == 0 ? HL_OK : HL_ERR_UNSUPPORTED;
}

/* choices[0]: the message, the finish reason; gives up on a logprobs object. */
static hl_err choice(hl_js *r, hl_chat_response *t, bool *have_msg) {
    r->p++; /* '{' */
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = hl_js_member(r, &first, &k, &kn)) == 1) {
        if (hl_js_key_is(k, kn, "message")) {
            if (!hl_js_once(&seen, 1) || !hl_js_at(r, '{')) return HL_ERR_UNSUPPORTED;
            HL_TRY(message(r, t));
            *have_msg = true;
        } else if (hl_js_key_is(k, kn, "finish_reason")) {
            if (!hl_js_once(&seen, 2)) return HL_ERR_UNSUPPORTED;
            if (hl_js_at(r, '"')) {
                char *f = NULL;
                HL_TRY(hl_js_str_copy(r, &f));
                t->finish = hl_openai_parse_finish(f);
                free(f);
            } else if (!hl_js_skip(r, 2)) {
                return HL_ERR_UNSUPPORTED;
            }
        } else if (hl_js_key_is(k, kn, "logprobs") || hl_js_key_is(k, kn, "text")) {
            if (!hl_js_lit(r, "null", 4)) return HL_ERR_UNSUPPORTED;
        } else if (!hl_js_skip(r, 2)) {
            return HL_ERR_UNSUPPORTED;
        }
    }
    return m == 0 ? HL_OK : HL_ERR_UNSUPPORTED;
}

static hl_err choices(hl_js *r, hl_chat_response *t, bool *have_msg) {
    r->p++; /* '[' */
    bool first = true;
    int m, n = 0;
    for (; (m = hl_js_element(r, &first)) == 1; n++) {
        if (n > 0) { /* only choices[0] is read */
            if (!hl_js_skip(r, 1)) return HL_ERR_UNSUPPORTED;
        } else if (hl_js_at(r, '{')) {
            HL_TRY(choice(r, t, have_msg));
        } else {
            return HL_ERR_UNSUPPORTED; /* not an object: the full parser */
        }
    }
    return m == 0 && n > 0 ? HL_OK : HL_ERR_UNSUPPORTED; /* empty: the full parser */
}

static hl_err root(hl_js *r, hl_chat_response *t) {
    hl_js_ws(r);
    if (!hl_js_at(r, '{')) return HL_ERR_UNSUPPORTED;
    r->p++;
    bool first = true, have_msg = false;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int m;
    while ((m = hl_js_member(r, &first, &k, &kn)) == 1) {
        bool ok = true;
        if (hl_js_key_is(k, kn, "id") || hl_js_key_is(k, kn, "model")) {
            bool id = k[0] == 'i';
            if (!hl_js_once(&seen, id ? 1 : 2)) return HL_ERR_UNSUPPORTED;
            if (hl_js_at(r, '"')) HL_TRY(hl_js_str_copy(r, id ? &t->id : &t->model));
            else ok = hl_js_skip(r, 1);
        } else if (hl_js_key_is(k, kn, "created")) {
            ok = hl_js_once(&seen, 4) && int_or_zero(r, &t->created);
        } else if (hl_js_key_is(k, kn, "choices")) {
            if (!hl_js_once(&seen, 8) || !hl_js_at(r, '[')) return HL_ERR_UNSUPPORTED;
            HL_TRY(choices(r, t, &have_msg));
        } else if (hl_js_key_is(k, kn, "usage")) {
            ok = hl_js_once(&seen, 16) && usage(r, &t->usage);
        } else {
            ok = hl_js_skip(r, 1);
        }
        if (!ok) return HL_ERR_UNSUPPORTED;
    }
    if (m != 0 || !have_msg) return HL_ERR_UNSUPPORTED;
    hl_js_ws(r);
    return r->p == r->end ? HL_OK : HL_ERR_UNSUPPORTED;
}

hl_err hl_openai_reply_fast(const char *body, size_t len, hl_chat_response *resp) {
    hl_js r = {body, body + len};
    hl_chat_response t = {0};
    hl_err e = body ? root(&r, &t) : HL_ERR_UNSUPPORTED;
    if (e) {
        free(t.id);
        free(t.model);
        free(t.text);
        return e;
    }
    resp->id = t.id;
    resp->model = t.model;
    resp->created = t.created;
    resp->text = t.text;
    resp->finish = t.finish;
    resp->usage = t.usage;
    return HL_OK;
}
