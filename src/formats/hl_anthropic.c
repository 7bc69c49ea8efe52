/* hl_anthropic: Anthropic Messages, provider side (see hl_anthropic.h). */
#include "hl_anthropic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x) do { hl_err e_ = (x); if (e_) return e_; } while (0)

static hl_err put_str(hl_buf *b, const char *s) { return hl_buf_json_str(b, s, strlen(s)); }

static hl_err put_json(hl_buf *b, const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return HL_ERR_NOMEM;
    hl_err e = hl_buf_puts(b, s);
    free(s);
    return e;
}

/* OpenAI fields we cannot honour on a Messages backend and refuse; the rest of the
 * passthrough set (user, seed, penalties, logit_bias, parallel_tool_calls, service_tier,
 * store) has no Messages equivalent and is dropped, as documented in the README. */
static const char *const refused_fields[] = {"audio", "modalities", "prediction", NULL};

hl_err hl_anthropic_check_request(const hl_chat_request *req, hl_api_error *err) {
    if (req->logprobs || req->top_logprobs > 0) {
        hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "logprobs", "unsupported_parameter",
                         "'logprobs' is not supported by this backend (Anthropic Messages).");
        return HL_ERR_UNSUPPORTED;
    }
    if (req->has_temperature && req->temperature > 1.0) {
        hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "temperature", "unsupported_parameter",
                         "'temperature' %g is outside this backend's range [0, 1] (Anthropic "
                         "Messages); refusing rather than changing it.", req->temperature);
        return HL_ERR_UNSUPPORTED;
    }
    for (int i = 0; refused_fields[i]; i++) {
        if (json_object_get(req->passthrough, refused_fields[i])) {
            hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, refused_fields[i], "unsupported_parameter",
                             "'%s' is not supported by this backend (Anthropic Messages).", refused_fields[i]);
            return HL_ERR_UNSUPPORTED;
        }
    }
    const json_t *rf = json_object_get(req->passthrough, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    if (rf && !(rft && !strcmp(rft, "text"))) {
        hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "response_format", "unsupported_parameter",
                         "'response_format' other than text is not supported by this backend "
                         "(Anthropic Messages).");
        return HL_ERR_UNSUPPORTED;
    }
    return HL_OK;
}

/* Anthropic roles: tool results travel in user turns. */
static const char *anthropic_role(hl_role r) { return r == HL_ROLE_ASSISTANT ? "assistant" : "user"; }

static hl_err put_block_text(hl_buf *out, bool *first, const char *text) {
    if (!text[0]) return HL_OK; /* the API rejects empty text blocks */
    TRY(hl_buf_puts(out, *first ? "{\"type\":\"text\",\"text\":" : ",{\"type\":\"text\",\"text\":"));
    *first = false;
    TRY(put_str(out, text));
    return hl_buf_puts(out, "}");
}

static hl_err put_message_blocks(hl_buf *out, bool *first, const hl_message *m) {
    if (m->role == HL_ROLE_TOOL) {
        TRY(hl_buf_puts(out, *first ? "" : ","));
        *first = false;
        TRY(hl_buf_puts(out, "{\"type\":\"tool_result\",\"tool_use_id\":"));
        TRY(put_str(out, m->tool_call_id ? m->tool_call_id : ""));
        TRY(hl_buf_puts(out, ",\"content\":"));
        TRY(put_str(out, m->text));
        return hl_buf_puts(out, "}");
    }
    TRY(put_block_text(out, first, m->text));
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        const hl_tool_call *tc = &m->tool_calls[i];
        TRY(hl_buf_puts(out, *first ? "" : ","));
        *first = false;
        TRY(hl_buf_puts(out, "{\"type\":\"tool_use\",\"id\":"));
        TRY(put_str(out, tc->id));
        TRY(hl_buf_puts(out, ",\"name\":"));
        TRY(put_str(out, tc->name));
        TRY(hl_buf_puts(out, ",\"input\":"));
        json_t *input = json_loads(tc->arguments ? tc->arguments : "{}", 0, NULL);
        hl_err e = json_is_object(input) ? put_json(out, input) : hl_buf_puts(out, "{}");
        json_decref(input);
        TRY(e);
        TRY(hl_buf_puts(out, "}"));
    }
    return HL_OK;
}

static hl_err put_tools(hl_buf *out, const json_t *tools) {
    TRY(hl_buf_puts(out, ",\"tools\":["));
    size_t i;
    const json_t *t;
    bool first = true;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (!name) continue;
        TRY(hl_buf_puts(out, first ? "{\"name\":" : ",{\"name\":"));
        first = false;
        TRY(put_str(out, name));
        const char *desc = json_string_value(json_object_get(fn, "description"));
        if (desc) {
            TRY(hl_buf_puts(out, ",\"description\":"));
            TRY(put_str(out, desc));
        }
        TRY(hl_buf_puts(out, ",\"input_schema\":"));
        const json_t *params = json_object_get(fn, "parameters");
        if (json_is_object(params)) TRY(put_json(out, params));
        else TRY(hl_buf_puts(out, "{\"type\":\"object\",\"properties\":{}}"));
        TRY(hl_buf_puts(out, "}"));
    }
    return hl_buf_puts(out, "]");
}

static hl_err put_tool_choice(hl_buf *out, const json_t *tc) {
    const char *s = json_string_value(tc);
    if (s) {
        if (!strcmp(s, "required")) return hl_buf_puts(out, ",\"tool_choice\":{\"type\":\"any\"}");
        if (!strcmp(s, "none")) return hl_buf_puts(out, ",\"tool_choice\":{\"type\":\"none\"}");
        return hl_buf_puts(out, ",\"tool_choice\":{\"type\":\"auto\"}");
    }
    const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    if (!name) return HL_OK;
    TRY(hl_buf_puts(out, ",\"tool_choice\":{\"type\":\"tool\",\"name\":"));
    TRY(put_str(out, name));
    return hl_buf_puts(out, "}");
}

hl_err hl_anthropic_write_upstream_request(hl_buf *out, const hl_chat_request *req,
                                           const char *model) {
    TRY(hl_buf_puts(out, "{\"model\":"));
    TRY(put_str(out, model));
    TRY(hl_buf_printf(out, ",\"max_tokens\":%ld",
                      req->max_tokens > 0 ? req->max_tokens : (long)HL_ANTHROPIC_DEFAULT_MAX_TOKENS));
    /* The system prompt: every system/developer message, joined by blank lines. */
    hl_buf sys;
    hl_buf_init(&sys, 0);
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        if (m->role != HL_ROLE_SYSTEM) continue;
        if ((sys.len && hl_buf_puts(&sys, "\n\n")) || hl_buf_puts(&sys, m->text)) {
            hl_buf_release(&sys);
            return HL_ERR_NOMEM;
        }
    }
    hl_err e = HL_OK;
    if (sys.len) {
        e = hl_buf_puts(out, ",\"system\":");
        if (!e) e = hl_buf_json_str(out, sys.data, sys.len);
    }
    hl_buf_release(&sys);
    TRY(e);
    TRY(hl_buf_puts(out, ",\"messages\":["));
    /* Consecutive turns of the same Anthropic role merge into one message. */
    const char *open_role = NULL;
    bool first_block = true;
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        if (m->role == HL_ROLE_SYSTEM) continue;
        const char *role = anthropic_role(m->role);
        if (!open_role || strcmp(open_role, role) != 0) {
            if (open_role) TRY(hl_buf_puts(out, "]},"));
            TRY(hl_buf_printf(out, "{\"role\":\"%s\",\"content\":[", role));
            open_role = role;
            first_block = true;
        }
        TRY(put_message_blocks(out, &first_block, m));
    }
    if (open_role) TRY(hl_buf_puts(out, "]}"));
    TRY(hl_buf_puts(out, "]"));
    if (req->has_temperature) TRY(hl_buf_printf(out, ",\"temperature\":%.17g", req->temperature));
    if (req->has_top_p) TRY(hl_buf_printf(out, ",\"top_p\":%.17g", req->top_p));
    if (req->n_stop) {
        TRY(hl_buf_puts(out, ",\"stop_sequences\":["));
        for (size_t i = 0; i < req->n_stop; i++) {
            if (i) TRY(hl_buf_puts(out, ","));
            TRY(put_str(out, req->stop[i]));
        }
        TRY(hl_buf_puts(out, "]"));
    }
    if (req->tools && json_array_size(req->tools)) TRY(put_tools(out, req->tools));
    if (req->tool_choice) TRY(put_tool_choice(out, req->tool_choice));
    if (req->stream) TRY(hl_buf_puts(out, ",\"stream\":true"));
    return hl_buf_puts(out, "}");
}

static long get_long(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

static hl_finish parse_stop_reason(const char *s) {
    if (!s) return HL_FINISH_NONE;
    if (!strcmp(s, "max_tokens") || !strcmp(s, "model_context_window_exceeded")) return HL_FINISH_LENGTH;
    if (!strcmp(s, "tool_use")) return HL_FINISH_TOOL_CALLS;
    if (!strcmp(s, "refusal")) return HL_FINISH_CONTENT_FILTER;
    return HL_FINISH_STOP; /* end_turn, stop_sequence, pause_turn */
}

/* Anthropic reports uncached input, cache reads and cache writes separately; the internal
 * model's input_tokens is their sum. Fields absent (or null) keep their previous value,
 * which is how message_delta's cumulative usage must be applied. */
static void apply_usage(const json_t *u, hl_usage *out) {
    if (!json_is_object(u)) return;
    out->known = true;
    const json_t *v;
    long plain = out->input_tokens - out->cached_input_tokens - out->cache_write_tokens;
    if (json_is_integer(v = json_object_get(u, "input_tokens"))) plain = (long)json_integer_value(v);
    if (json_is_integer(v = json_object_get(u, "cache_read_input_tokens")))
        out->cached_input_tokens = (long)json_integer_value(v);
    if (json_is_integer(v = json_object_get(u, "cache_creation_input_tokens")))
        out->cache_write_tokens = (long)json_integer_value(v);
    out->input_tokens = plain + out->cached_input_tokens + out->cache_write_tokens;
    if (json_is_integer(v = json_object_get(u, "output_tokens")))
        out->output_tokens = (long)json_integer_value(v);
}

hl_err hl_anthropic_parse_upstream_response(const char *body, size_t len, hl_chat_response *resp) {
    json_t *root = json_loadb(body, len, 0, NULL);
    hl_err rc = HL_ERR_PARSE;
    const json_t *content = json_object_get(root, "content");
    if (!json_is_array(content)) goto out;
    if ((rc = hl_strdup(&resp->id, json_string_value(json_object_get(root, "id"))))) goto out;
    if ((rc = hl_strdup(&resp->model, json_string_value(json_object_get(root, "model"))))) goto out;
    hl_buf text;
    hl_buf_init(&text, 0);
    size_t n_tools = 0, i;
    const json_t *block;
    json_array_foreach(content, i, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        if (type && !strcmp(type, "tool_use")) n_tools++;
    }
    if (n_tools && !(resp->tool_calls = calloc(n_tools, sizeof *resp->tool_calls))) {
        rc = HL_ERR_NOMEM;
        goto out;
    }
    json_array_foreach(content, i, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        if (!type) continue;
        if (!strcmp(type, "text")) {
            const char *t = json_string_value(json_object_get(block, "text"));
            if (t && hl_buf_puts(&text, t)) rc = HL_ERR_NOMEM;
        } else if (!strcmp(type, "tool_use")) {
            const char *id = json_string_value(json_object_get(block, "id"));
            const char *name = json_string_value(json_object_get(block, "name"));
            if (!id || !name) {
                rc = HL_ERR_PARSE; /* a tool call we could not hand on */
                break;
            }
            hl_tool_call *tc = &resp->tool_calls[resp->n_tool_calls++];
            char *args = json_dumps(json_object_get(block, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
            tc->arguments = args ? args : strdup("{}");
            if (hl_strdup(&tc->id, id) || hl_strdup(&tc->name, name) || !tc->arguments)
                rc = HL_ERR_NOMEM;
        }
    }
    if (rc != HL_OK) {
        hl_buf_release(&text);
        goto out;
    }
    resp->text = text.data ? hl_buf_steal(&text) : (n_tools ? NULL : strdup(""));
    resp->finish = parse_stop_reason(json_string_value(json_object_get(root, "stop_reason")));
    apply_usage(json_object_get(root, "usage"), &resp->usage);
    rc = HL_OK;
out:
    json_decref(root);
    return rc;
}

void hl_anthropic_decoder_init(hl_anthropic_decoder *d) {
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < sizeof d->tool_index_of_block / sizeof d->tool_index_of_block[0]; i++)
        d->tool_index_of_block[i] = -1;
}

static int emit_usage(hl_anthropic_decoder *d, hl_stream_sink sink, void *ud) {
    hl_stream_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HL_EV_USAGE;
    ev.usage = d->usage;
    return sink(ud, &ev);
}

int hl_anthropic_decode_stream_event(hl_anthropic_decoder *d, const hl_sse_event *sse,
                                     hl_stream_sink sink, void *ud) {
    json_t *root = json_loadb(sse->data, sse->data_len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return HL_ERR_PARSE;
    }
    const char *type = sse->event[0] ? sse->event : json_string_value(json_object_get(root, "type"));
    hl_stream_event ev;
    memset(&ev, 0, sizeof ev);
    int rc = 0;
    if (!type) {
        rc = HL_ERR_PARSE;
    } else if (!strcmp(type, "message_start")) {
        const json_t *msg = json_object_get(root, "message");
        ev.type = HL_EV_START;
        ev.id = json_string_value(json_object_get(msg, "id"));
        ev.model = json_string_value(json_object_get(msg, "model"));
        rc = sink(ud, &ev);
        apply_usage(json_object_get(msg, "usage"), &d->usage);
        if (!rc) rc = emit_usage(d, sink, ud);
    } else if (!strcmp(type, "content_block_start")) {
        long idx = get_long(root, "index");
        const json_t *cb = json_object_get(root, "content_block");
        const char *cbt = json_string_value(json_object_get(cb, "type"));
        if (cbt && !strcmp(cbt, "tool_use") && idx >= 0 && idx < 64) {
            d->tool_index_of_block[idx] = d->n_tools++;
            ev.type = HL_EV_TOOL_CALL;
            ev.index = d->tool_index_of_block[idx];
            ev.tool_id = json_string_value(json_object_get(cb, "id"));
            ev.tool_name = json_string_value(json_object_get(cb, "name"));
            ev.text = "";
            rc = sink(ud, &ev);
        } else if (cbt && !strcmp(cbt, "text")) {
            const json_t *t = json_object_get(cb, "text");
            if (json_string_length(t)) {
                ev.type = HL_EV_TEXT;
                ev.text = json_string_value(t);
                ev.text_len = json_string_length(t);
                rc = sink(ud, &ev);
            }
        }
    } else if (!strcmp(type, "content_block_delta")) {
        long idx = get_long(root, "index");
        const json_t *delta = json_object_get(root, "delta");
        const char *dt = json_string_value(json_object_get(delta, "type"));
        if (dt && !strcmp(dt, "text_delta")) {
            const json_t *t = json_object_get(delta, "text");
            ev.type = HL_EV_TEXT;
            ev.text = json_is_string(t) ? json_string_value(t) : "";
            ev.text_len = json_string_length(t);
            rc = sink(ud, &ev);
        } else if (dt && !strcmp(dt, "input_json_delta") && idx >= 0 && idx < 64 &&
                   d->tool_index_of_block[idx] >= 0) {
            const json_t *pj = json_object_get(delta, "partial_json");
            ev.type = HL_EV_TOOL_CALL;
            ev.index = d->tool_index_of_block[idx];
            ev.text = json_is_string(pj) ? json_string_value(pj) : "";
            ev.text_len = json_string_length(pj);
            rc = sink(ud, &ev);
        }
        /* thinking, signature and citations deltas have no OpenAI chat equivalent. */
    } else if (!strcmp(type, "message_delta")) {
        apply_usage(json_object_get(root, "usage"), &d->usage);
        const char *sr = json_string_value(json_object_get(json_object_get(root, "delta"), "stop_reason"));
        if (sr) {
            ev.type = HL_EV_FINISH;
            ev.finish = parse_stop_reason(sr);
            rc = sink(ud, &ev);
        }
        if (!rc) rc = emit_usage(d, sink, ud);
    } else if (!strcmp(type, "message_stop")) {
        ev.type = HL_EV_DONE;
        rc = sink(ud, &ev);
    } else if (!strcmp(type, "error")) {
        const json_t *e = json_object_get(root, "error");
        ev.type = HL_EV_ERROR;
        ev.text = json_string_value(json_object_get(e, "message"));
        if (!ev.text) ev.text = "upstream stream error";
        ev.text_len = strlen(ev.text);
        ev.error_type = json_string_value(json_object_get(e, "type"));
        rc = sink(ud, &ev);
    }
    /* ping, content_block_stop and unknown future events carry nothing we translate. */
    json_decref(root);
    return rc;
}
