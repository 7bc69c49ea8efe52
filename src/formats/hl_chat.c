/* hl_chat: lifetime helpers for the internal request/response model (see hl_chat.h). */
#include "hl_chat.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tool_calls_free(hl_tool_call *tc, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(tc[i].id);
        free(tc[i].name);
        free(tc[i].arguments);
    }
    free(tc);
}

void hl_chat_request_init(hl_chat_request *r) {
    memset(r, 0, sizeof *r);
    r->max_tokens = -1;
    r->top_logprobs = -1;
}

void hl_chat_request_release(hl_chat_request *r) {
    free(r->model);
    for (size_t i = 0; i < r->n_messages; i++) {
        hl_message *m = &r->messages[i];
        free(m->text);
        tool_calls_free(m->tool_calls, m->n_tool_calls);
        free(m->tool_call_id);
        free(m->name);
    }
    free(r->messages);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    json_decref(r->tools);
    json_decref(r->tool_choice);
    json_decref(r->passthrough);
    json_decref(r->system_blocks);
    free(r->task_type);
    free(r->anthropic_beta);
    hl_chat_request_init(r);
}

void hl_chat_response_init(hl_chat_response *r) { memset(r, 0, sizeof *r); }

void hl_chat_response_release(hl_chat_response *r) {
    free(r->id);
    free(r->model);
    free(r->text);
    free(r->stop_sequence);
    tool_calls_free(r->tool_calls, r->n_tool_calls);
    json_decref(r->logprobs);
    hl_chat_response_init(r);
}

const char *hl_role_name(hl_role role) {
    switch (role) {
    case HL_ROLE_SYSTEM: return "system";
    case HL_ROLE_USER: return "user";
    case HL_ROLE_ASSISTANT: return "assistant";
    case HL_ROLE_TOOL: return "tool";
    }
    return "user";
}

const char *hl_finish_openai(hl_finish f) {
    switch (f) {
    case HL_FINISH_NONE: return NULL;
    case HL_FINISH_STOP: return "stop";
    case HL_FINISH_LENGTH: return "length";
    case HL_FINISH_TOOL_CALLS: return "tool_calls";
    case HL_FINISH_CONTENT_FILTER: return "content_filter";
    }
    return NULL;
}

long hl_tokens_estimate(size_t bytes) { return (long)((bytes + 3) / 4); }

long hl_chat_input_estimate(const hl_chat_request *req) {
    /* Templates wrap each message in role markers (ChatML: <|im_start|>role\n ... <|im_end|>\n,
     * about 5 tokens; Llama 3: 4 to 5) and open the answer (3 or so), plus a BOS. A raw
     * prompt (legacy completions) has no template: its text and a BOS. */
    if (req->raw_prompt) return hl_tokens_estimate(req->text_bytes) + 1;
    long n = hl_tokens_estimate(req->text_bytes) + 5 * (long)req->n_messages + 4;
    for (size_t i = 0; i < req->n_messages; i++)
        for (size_t k = 0; k < req->messages[i].n_tool_calls; k++) {
            const hl_tool_call *tc = &req->messages[i].tool_calls[k];
            n += hl_tokens_estimate((tc->name ? strlen(tc->name) : 0) + (tc->arguments ? strlen(tc->arguments) : 0)) + 4;
        }
    return n;
}

hl_err hl_strdup(char **dst, const char *s) {
    *dst = s ? strdup(s) : NULL;
    return (s && !*dst) ? HL_ERR_NOMEM : HL_OK;
}

hl_err hl_api_error_set(hl_api_error *e, int status, hl_api_error_kind kind, const char *param,
                        const char *code, const char *fmt, ...) {
    e->status = status;
    e->kind = kind;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return HL_ERR_INVAL;
}

void hl_upstream_error_parse(const char *body, size_t len, char *msg, size_t msg_len, char *type,
                           size_t type_len) {
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *err = json_object_get(root, "error");
    const char *m = json_string_value(json_object_get(err, "message"));
    const char *t = json_string_value(json_object_get(err, "type"));
    if (!m && json_is_string(err)) m = json_string_value(err); /* some local servers send a string */
    if (m) {
        snprintf(msg, msg_len, "%s", m);
    } else {
        int n = len > 200 ? 200 : (int)len;
        snprintf(msg, msg_len, "%.*s%s", n, body ? body : "", len > 200 ? "..." : "");
    }
    snprintf(type, type_len, "%s", t ? t : "");
    json_decref(root);
}

static bool json_truthy(const json_t *v) {
    if (json_is_true(v)) return true;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        return !strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes");
    }
    return false;
}

hl_err hl_chat_parse_metadata(const json_t *md, hl_chat_request *req, hl_api_error *err) {
    if (json_is_null(md)) return HL_OK;
    if (!json_is_object(md))
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "metadata", NULL,
                                "Invalid type for 'metadata': expected an object.");
    const json_t *tt = json_object_get(md, "task_type");
    if (tt) {
        if (!json_is_string(tt))
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "metadata.task_type", NULL,
                                    "Invalid type for 'metadata.task_type': expected a string.");
        free(req->task_type);
        if (hl_strdup(&req->task_type, json_string_value(tt))) return HL_ERR_NOMEM;
    }
    if (json_truthy(json_object_get(md, "is_regulated")) || json_truthy(json_object_get(md, "regulated")))
        req->regulated = true;
    if (json_truthy(json_object_get(md, "pii_present")) || json_truthy(json_object_get(md, "pii")))
        req->pii = true;
    return HL_OK;
}

/* The probability of a logprob value; -1 when it is not a number. */
static double prob_of(const json_t *lp) {
    if (!json_is_number(lp)) return -1;
    double x = json_number_value(lp);
    return x > 0 ? 1 : exp(x);
}

/* top-1 minus top-2 probability among a token's alternatives; -1 with fewer than 2. */
static double first_margin(const json_t *tok) {
    double p1 = -1, p2 = -1;
    size_t i;
    const json_t *alt;
    json_array_foreach(json_object_get(tok, "top_logprobs"), i, alt) {
        double p = prob_of(json_object_get(alt, "logprob"));
        if (p < 0) continue;
        if (p > p1) p2 = p1, p1 = p;
        else if (p > p2) p2 = p;
    }
    return p2 < 0 ? -1 : p1 - p2;
}

void hl_confidence_signals(const json_t *logprobs, hl_conf_signals *out) {
    *out = (hl_conf_signals){-1, -1, -1};
    const json_t *content = json_object_get(logprobs, "content");
    double sum = 0, min = 2;
    size_t n = 0, i;
    const json_t *tok;
    json_array_foreach(content, i, tok) {
        const json_t *lp = json_object_get(tok, "logprob");
        if (!json_is_number(lp)) continue;
        double x = json_number_value(lp);
        if (x > 0) x = 0;
        if (n == 0) out->margin = first_margin(tok);
        sum += x;
        n++;
        double p = exp(x);
        if (p < min) min = p;
    }
    if (!n) return;
    out->geomean = exp(sum / (double)n);
    out->min = min;
}

double hl_confidence(const json_t *logprobs) {
    hl_conf_signals s;
    hl_confidence_signals(logprobs, &s);
    return s.geomean;
}

hl_err hl_json_put_str(hl_buf *b, const char *s) { return hl_buf_json_str(b, s ? s : "", s ? strlen(s) : 0); }

hl_err hl_json_put(hl_buf *b, const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return HL_ERR_NOMEM;
    hl_err e = hl_buf_puts(b, s);
    free(s);
    return e;
}
