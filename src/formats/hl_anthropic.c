/* hl_anthropic: Anthropic Messages, provider side (see hl_anthropic.h). */
#include "hl_anthropic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* OpenAI fields we cannot honour on a Messages backend and refuse. `user`, `top_k` and
 * `parallel_tool_calls` are translated; the rest of the passthrough set (seed, penalties,
 * logit_bias, service_tier, store) has no Messages equivalent and is dropped, as documented in
 * the README. `echo` and `suffix` come from legacy completions: a Messages backend can do
 * neither. */
static const char *const refused_fields[] = {"audio", "modalities", "prediction", "echo", "suffix", NULL};

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
    bool conversation = false;
    for (size_t i = 0; i < req->n_messages && !conversation; i++) conversation = req->messages[i].role != HL_ROLE_SYSTEM;
    if (!conversation) {
        hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "messages", "unsupported_parameter",
                         "The request has only system messages; this backend (Anthropic Messages) needs at "
                         "least one user message.");
        return HL_ERR_UNSUPPORTED;
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
    HL_TRY(hl_buf_puts(out, *first ? "{\"type\":\"text\",\"text\":" : ",{\"type\":\"text\",\"text\":"));
    *first = false;
    HL_TRY(hl_json_put_str(out, text));
    return hl_buf_puts(out, "}");
}

static hl_err put_message_blocks(hl_buf *out, bool *first, const hl_message *m) {
    if (m->role == HL_ROLE_TOOL) {
        HL_TRY(hl_buf_puts(out, *first ? "" : ","));
        *first = false;
        HL_TRY(hl_buf_puts(out, "{\"type\":\"tool_result\",\"tool_use_id\":"));
        HL_TRY(hl_json_put_str(out, m->tool_call_id ? m->tool_call_id : ""));
        HL_TRY(hl_buf_puts(out, ",\"content\":"));
        HL_TRY(hl_json_put_str(out, m->text));
        return hl_buf_puts(out, "}");
    }
    HL_TRY(put_block_text(out, first, m->text));
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        const hl_tool_call *tc = &m->tool_calls[i];
        HL_TRY(hl_buf_puts(out, *first ? "" : ","));
        *first = false;
        HL_TRY(hl_buf_puts(out, "{\"type\":\"tool_use\",\"id\":"));
        HL_TRY(hl_json_put_str(out, tc->id));
        HL_TRY(hl_buf_puts(out, ",\"name\":"));
        HL_TRY(hl_json_put_str(out, tc->name));
        HL_TRY(hl_buf_puts(out, ",\"input\":"));
        json_t *input = json_loads(tc->arguments ? tc->arguments : "{}", 0, NULL);
        hl_err e = json_is_object(input) ? hl_json_put(out, input) : hl_buf_puts(out, "{}");
        json_decref(input);
        HL_TRY(e);
        HL_TRY(hl_buf_puts(out, "}"));
    }
    return HL_OK;
}

static hl_err put_tools(hl_buf *out, const json_t *tools) {
    HL_TRY(hl_buf_puts(out, ",\"tools\":["));
    size_t i;
    const json_t *t;
    bool first = true;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (!name) continue;
        HL_TRY(hl_buf_puts(out, first ? "{\"name\":" : ",{\"name\":"));
        first = false;
        HL_TRY(hl_json_put_str(out, name));
        const char *desc = json_string_value(json_object_get(fn, "description"));
        if (desc) {
            HL_TRY(hl_buf_puts(out, ",\"description\":"));
            HL_TRY(hl_json_put_str(out, desc));
        }
        HL_TRY(hl_buf_puts(out, ",\"input_schema\":"));
        const json_t *params = json_object_get(fn, "parameters");
        if (json_is_object(params)) HL_TRY(hl_json_put(out, params));
        else HL_TRY(hl_buf_puts(out, "{\"type\":\"object\",\"properties\":{}}"));
        HL_TRY(hl_buf_puts(out, "}"));
    }
    return hl_buf_puts(out, "]");
}

/* OpenAI tool_choice (NULL: auto) and parallel_tool_calls: false -> Messages tool_choice. */
static hl_err put_tool_choice(hl_buf *out, const json_t *tc, bool no_parallel) {
    const char *s = json_string_value(tc);
    const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    const char *type = s && !strcmp(s, "required") ? "any" : s && !strcmp(s, "none") ? "none"
                       : name ? "tool" : "auto";
    HL_TRY(hl_buf_printf(out, ",\"tool_choice\":{\"type\":\"%s\"", type));
    if (name && !s) {
        HL_TRY(hl_buf_puts(out, ",\"name\":"));
        HL_TRY(hl_json_put_str(out, name));
    }
    if (no_parallel && strcmp(type, "none") != 0) HL_TRY(hl_buf_puts(out, ",\"disable_parallel_tool_use\":true"));
    return hl_buf_puts(out, "}");
}

hl_err hl_anthropic_write_upstream_request(hl_buf *out, const hl_chat_request *req,
                                           const char *model) {
    HL_TRY(hl_buf_puts(out, "{\"model\":"));
    HL_TRY(hl_json_put_str(out, model));
    HL_TRY(hl_buf_printf(out, ",\"max_tokens\":%ld",
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
    if (req->system_blocks) { /* an Anthropic client's own blocks: cache_control survives */
        e = hl_buf_puts(out, ",\"system\":");
        if (!e) e = hl_json_put(out, req->system_blocks);
    } else if (sys.len) {
        e = hl_buf_puts(out, ",\"system\":");
        if (!e) e = hl_buf_json_str(out, sys.data, sys.len);
    }
    hl_buf_release(&sys);
    HL_TRY(e);
    HL_TRY(hl_buf_puts(out, ",\"messages\":["));
    /* Consecutive turns of the same Anthropic role merge into one message; a turn with no
     * block (empty text, no tool call) is left out, as the API refuses empty content: so the
     * turns around it merge now, not on the next trip through a Messages parser. */
    const char *open_role = NULL;
    bool first_block = true;
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        if (m->role == HL_ROLE_SYSTEM) continue;
        if (m->role != HL_ROLE_TOOL && !(m->text && m->text[0]) && !m->n_tool_calls) continue;
        const char *role = anthropic_role(m->role);
        if (!open_role || strcmp(open_role, role) != 0) {
            if (open_role) HL_TRY(hl_buf_puts(out, "]},"));
            HL_TRY(hl_buf_printf(out, "{\"role\":\"%s\",\"content\":[", role));
            open_role = role;
            first_block = true;
        }
        HL_TRY(put_message_blocks(out, &first_block, m));
    }
    if (open_role) HL_TRY(hl_buf_puts(out, "]}"));
    HL_TRY(hl_buf_puts(out, "]"));
    if (req->has_temperature) {
        HL_TRY(hl_buf_puts(out, ",\"temperature\":"));
        HL_TRY(hl_buf_double(out, req->temperature));
    }
    if (req->has_top_p) {
        HL_TRY(hl_buf_puts(out, ",\"top_p\":"));
        HL_TRY(hl_buf_double(out, req->top_p));
    }
    const json_t *top_k = json_object_get(req->passthrough, "top_k");
    if (json_is_integer(top_k)) HL_TRY(hl_buf_printf(out, ",\"top_k\":%lld", (long long)json_integer_value(top_k)));
    const char *user = json_string_value(json_object_get(req->passthrough, "user"));
    if (user) {
        HL_TRY(hl_buf_puts(out, ",\"metadata\":{\"user_id\":"));
        HL_TRY(hl_json_put_str(out, user));
        HL_TRY(hl_buf_puts(out, "}"));
    }
    if (req->n_stop) {
        HL_TRY(hl_buf_puts(out, ",\"stop_sequences\":["));
        for (size_t i = 0; i < req->n_stop; i++) {
            if (i) HL_TRY(hl_buf_puts(out, ","));
            HL_TRY(hl_json_put_str(out, req->stop[i]));
        }
        HL_TRY(hl_buf_puts(out, "]"));
    }
    if (req->tools && json_array_size(req->tools)) HL_TRY(put_tools(out, req->tools));
    bool no_parallel = json_is_false(json_object_get(req->passthrough, "parallel_tool_calls"));
    if (req->tool_choice || (no_parallel && req->tools)) HL_TRY(put_tool_choice(out, req->tool_choice, no_parallel));
    if (req->stream) HL_TRY(hl_buf_puts(out, ",\"stream\":true"));
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
    const char *seq = json_string_value(json_object_get(root, "stop_sequence"));
    if (seq && hl_strdup(&resp->stop_sequence, seq)) {
        rc = HL_ERR_NOMEM;
        goto out;
    }
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
        const json_t *delta = json_object_get(root, "delta");
        const char *sr = json_string_value(json_object_get(delta, "stop_reason"));
        if (sr) {
            ev.type = HL_EV_FINISH;
            ev.finish = parse_stop_reason(sr);
            ev.stop_sequence = json_string_value(json_object_get(delta, "stop_sequence"));
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

/* ------------------------------------------------------------------ ingress parsing */

static hl_err bad(hl_api_error *err, const char *param, const char *msg) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL, "%s: %s", param, msg);
}

/* A growable list of internal messages: one Messages turn may become several (tool results
 * become tool messages). */
static hl_message *push_message(hl_chat_request *req, size_t *cap) {
    if (req->n_messages == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        hl_message *m = realloc(req->messages, ncap * sizeof *m);
        if (!m) return NULL;
        req->messages = m;
        *cap = ncap;
    }
    hl_message *m = &req->messages[req->n_messages++];
    memset(m, 0, sizeof *m);
    return m;
}

/* Text of a string or an array of text blocks (system prompts, tool_result content). */
static hl_err text_of(const json_t *v, const char *param, const char *sep, hl_buf *out, hl_api_error *err) {
    if (json_is_string(v)) return hl_buf_append(out, json_string_value(v), json_string_length(v));
    if (!json_is_array(v)) return bad(err, param, "expected a string or an array of text blocks");
    size_t i;
    const json_t *b;
    json_array_foreach(v, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        const json_t *text = json_object_get(b, "text");
        if (!type || strcmp(type, "text") != 0 || !json_is_string(text))
            return bad(err, param, "only text blocks are supported here");
        if (i > 0) HL_TRY(hl_buf_puts(out, sep));
        HL_TRY(hl_buf_append(out, json_string_value(text), json_string_length(text)));
    }
    return HL_OK;
}

static hl_err add_text_message(hl_chat_request *req, size_t *cap, hl_role role, hl_buf *text) {
    hl_message *m = push_message(req, cap);
    if (!m) return HL_ERR_NOMEM;
    m->role = role;
    m->text = text->data ? hl_buf_steal(text) : strdup("");
    if (!m->text) return HL_ERR_NOMEM;
    req->text_bytes += strlen(m->text);
    return HL_OK;
}

static hl_err parse_turn(const json_t *msg, size_t mi, bool last, hl_chat_request *req, size_t *cap,
                         hl_api_error *err) {
    char param[96];
    snprintf(param, sizeof param, "messages.%zu.role", mi);
    const char *role = json_string_value(json_object_get(msg, "role"));
    if (!json_is_object(msg) || !role) return bad(err, param, "Field required");
    bool user = !strcmp(role, "user");
    if (!user && strcmp(role, "assistant") != 0)
        return bad(err, param, "Input should be 'user' or 'assistant'");
    const json_t *content = json_object_get(msg, "content");
    snprintf(param, sizeof param, "messages.%zu.content", mi);
    hl_buf text;
    hl_buf_init(&text, 0);
    hl_err rc = HL_OK;
    if (json_is_string(content)) {
        rc = hl_buf_append(&text, json_string_value(content), json_string_length(content));
        if (!rc) rc = add_text_message(req, cap, user ? HL_ROLE_USER : HL_ROLE_ASSISTANT, &text);
        hl_buf_release(&text);
        return rc;
    }
    if (!json_is_array(content)) {
        hl_buf_release(&text);
        return bad(err, param, "expected a string or an array of content blocks");
    }
    if (!json_array_size(content) && !(last && !user)) {
        /* As the API: a turn with nothing in it would vanish in translation (no backend gets
         * an empty message list). */
        hl_buf_release(&text);
        snprintf(param, sizeof param, "messages.%zu", mi);
        return bad(err, param, "all messages must have non-empty content except for the optional final assistant message");
    }
    hl_message *assistant = NULL; /* the assistant turn, created at the end */
    size_t n_tools = 0, i;
    const json_t *b;
    json_array_foreach(content, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (type && !strcmp(type, "tool_use")) n_tools++;
    }
    hl_tool_call *calls = n_tools ? calloc(n_tools, sizeof *calls) : NULL;
    size_t n_calls = 0;
    if (n_tools && !calls) rc = HL_ERR_NOMEM;
    json_array_foreach(content, i, b) {
        if (rc) break;
        snprintf(param, sizeof param, "messages.%zu.content.%zu", mi, i);
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type) {
            rc = bad(err, param, "each content block needs a 'type'");
        } else if (!strcmp(type, "text")) {
            const json_t *t = json_object_get(b, "text");
            if (!json_is_string(t)) rc = bad(err, param, "text blocks need a string 'text'");
            else {
                rc = text.len ? hl_buf_puts(&text, "\n") : HL_OK; /* blocks stay apart, as parts do */
                if (!rc) rc = hl_buf_append(&text, json_string_value(t), json_string_length(t));
            }
        } else if (!strcmp(type, "tool_use") && !user) {
            const char *id = json_string_value(json_object_get(b, "id"));
            const char *name = json_string_value(json_object_get(b, "name"));
            const json_t *input = json_object_get(b, "input");
            if (!id || !name || !json_is_object(input)) {
                rc = bad(err, param, "tool_use blocks need 'id', 'name' and an object 'input'");
            } else {
                hl_tool_call *tc = &calls[n_calls++];
                tc->arguments = json_dumps(input, JSON_COMPACT);
                if (hl_strdup(&tc->id, id) || hl_strdup(&tc->name, name) || !tc->arguments) rc = HL_ERR_NOMEM;
            }
        } else if (!strcmp(type, "tool_result") && user) {
            const char *id = json_string_value(json_object_get(b, "tool_use_id"));
            if (!id) {
                rc = bad(err, param, "tool_result blocks need 'tool_use_id'");
                break;
            }
            hl_buf result;
            hl_buf_init(&result, 0);
            const json_t *c = json_object_get(b, "content");
            rc = c ? text_of(c, param, "", &result, err) : HL_OK;
            hl_message *m = rc ? NULL : push_message(req, cap);
            if (!rc && !m) rc = HL_ERR_NOMEM;
            if (m) {
                m->role = HL_ROLE_TOOL;
                m->text = result.data ? hl_buf_steal(&result) : strdup("");
                if (!m->text || hl_strdup(&m->tool_call_id, id)) rc = HL_ERR_NOMEM;
                else req->text_bytes += strlen(m->text);
            }
            hl_buf_release(&result);
        } else if (!strcmp(type, "thinking") || !strcmp(type, "redacted_thinking")) {
            /* Earlier turns' reasoning: not carried (no backend of ours can take it back). */
        } else {
            rc = hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, "unsupported_content",
                                  "%s: content blocks of type '%.40s' are not supported by this "
                                  "gateway yet (text, tool_use and tool_result are).", param, type);
        }
    }
    if (!rc && user && text.len) rc = add_text_message(req, cap, HL_ROLE_USER, &text);
    if (!rc && !user) {
        assistant = push_message(req, cap);
        if (!assistant) {
            rc = HL_ERR_NOMEM;
        } else {
            assistant->role = HL_ROLE_ASSISTANT;
            assistant->text = text.data ? hl_buf_steal(&text) : strdup("");
            assistant->tool_calls = calls;
            assistant->n_tool_calls = n_calls;
            calls = NULL;
            if (!assistant->text) rc = HL_ERR_NOMEM;
            else req->text_bytes += strlen(assistant->text);
        }
    }
    if (calls) {
        for (size_t k = 0; k < n_tools; k++) {
            free(calls[k].id);
            free(calls[k].name);
            free(calls[k].arguments);
        }
        free(calls);
    }
    hl_buf_release(&text);
    return rc;
}

static hl_err parse_tools(const json_t *tools, hl_chat_request *req, hl_api_error *err) {
    if (!json_is_array(tools)) return bad(err, "tools", "expected an array");
    json_t *out = json_array();
    if (!out) return HL_ERR_NOMEM;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *type = json_string_value(json_object_get(t, "type"));
        const json_t *schema = json_object_get(t, "input_schema");
        char param[48];
        snprintf(param, sizeof param, "tools.%zu", i);
        if (type && strcmp(type, "custom") != 0) {
            json_decref(out);
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, "unsupported_tool",
                                    "%s: server tools ('%.40s') are not supported by this gateway.", param, type);
        }
        if (!name || !name[0] || !json_is_object(schema)) {
            json_decref(out);
            return bad(err, param, "tools need a non-empty 'name' and an object 'input_schema'");
        }
        json_t *fn = json_pack("{s:s, s:O}", "name", name, "parameters", schema);
        const json_t *desc = json_object_get(t, "description");
        if (fn && json_is_string(desc)) json_object_set(fn, "description", (json_t *)desc);
        json_t *tool = fn ? json_pack("{s:s, s:o}", "type", "function", "function", fn) : NULL;
        if (!tool || json_array_append_new(out, tool)) {
            json_decref(out);
            return HL_ERR_NOMEM;
        }
    }
    req->tools = out;
    return HL_OK;
}

static hl_err parse_tool_choice(const json_t *tc, hl_chat_request *req, hl_api_error *err) {
    const char *type = json_string_value(json_object_get(tc, "type"));
    if (!type) return bad(err, "tool_choice", "expected an object with a 'type'");
    if (!strcmp(type, "auto")) req->tool_choice = json_string("auto");
    else if (!strcmp(type, "any")) req->tool_choice = json_string("required");
    else if (!strcmp(type, "none")) req->tool_choice = json_string("none");
    else if (!strcmp(type, "tool")) {
        const char *name = json_string_value(json_object_get(tc, "name"));
        if (!name) return bad(err, "tool_choice.name", "Field required");
        req->tool_choice = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
    } else {
        return bad(err, "tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'");
    }
    if (!req->tool_choice) return HL_ERR_NOMEM;
    if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")) &&
        json_object_set_new(req->passthrough, "parallel_tool_calls", json_false()))
        return HL_ERR_NOMEM;
    return HL_OK;
}

static const char *const anthropic_fields[] = {
    "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p",
    "top_k", "stream", "tools", "tool_choice", "metadata", NULL,
};

hl_err hl_anthropic_parse_request(const char *body, size_t len, hl_chat_request *req,
                                  hl_api_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    hl_err rc = HL_OK;
    size_t cap = 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, NULL, NULL,
                                root ? "The request body must be a JSON object."
                                     : "The request body is not valid JSON: %s (at byte %d).",
                                jerr.text, jerr.position);
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        bool known = false;
        for (int i = 0; anthropic_fields[i] && !known; i++) known = !strcmp(key, anthropic_fields[i]);
        if (!known) {
            rc = hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, key, "unsupported_parameter",
                                  "%.60s: not supported by this gateway (or not a Messages API field).", key);
            goto out;
        }
    }
    const json_t *v = json_object_get(root, "model");
    if (!json_is_string(v) || !json_string_length(v)) { rc = bad(err, "model", "Field required (a non-empty string)"); goto out; }
    if ((rc = hl_strdup(&req->model, json_string_value(v)))) goto out;
    v = json_object_get(root, "max_tokens");
    if (!json_is_integer(v) || json_integer_value(v) < 1) { rc = bad(err, "max_tokens", "Field required (an integer >= 1)"); goto out; }
    req->max_tokens = json_integer_value(v) > 1000000000 ? 1000000000 : (long)json_integer_value(v);
    req->passthrough = json_object();
    if (!req->passthrough) { rc = HL_ERR_NOMEM; goto out; }

    if ((v = json_object_get(root, "system"))) {
        hl_buf sys;
        hl_buf_init(&sys, 0);
        rc = text_of(v, "system", "\n\n", &sys, err);
        if (!rc && json_is_array(v)) req->system_blocks = json_incref((json_t *)v);
        if (!rc && sys.len) rc = add_text_message(req, &cap, HL_ROLE_SYSTEM, &sys);
        hl_buf_release(&sys);
        if (rc) goto out;
    }
    const json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs) || !json_array_size(msgs)) { rc = bad(err, "messages", "Field required (a non-empty array)"); goto out; }
    size_t i;
    const json_t *m;
    size_t before = req->n_messages; /* the system turn, if any */
    json_array_foreach(msgs, i, m) {
        if ((rc = parse_turn(m, i, i + 1 == json_array_size(msgs), req, &cap, err))) goto out;
    }
    bool any = false; /* a turn with something in it, besides the system's */
    for (size_t k = before; k < req->n_messages && !any; k++) {
        const hl_message *t = &req->messages[k];
        any = (t->text && t->text[0]) || t->n_tool_calls || t->tool_call_id;
    }
    if (!any) { /* only an empty final assistant turn */
        rc = bad(err, "messages", "all messages must have non-empty content except for the optional final assistant message");
        goto out;
    }
    if ((v = json_object_get(root, "stop_sequences"))) {
        if (!json_is_array(v)) { rc = bad(err, "stop_sequences", "expected an array of strings"); goto out; }
        size_t n = json_array_size(v);
        if (n && !(req->stop = calloc(n, sizeof *req->stop))) { rc = HL_ERR_NOMEM; goto out; }
        for (size_t k = 0; k < n; k++) {
            const char *s = json_string_value(json_array_get(v, k));
            if (!s) { rc = bad(err, "stop_sequences", "expected an array of strings"); goto out; }
            req->n_stop = k + 1;
            if ((rc = hl_strdup(&req->stop[k], s))) goto out;
        }
    }
    if ((v = json_object_get(root, "temperature"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) { rc = bad(err, "temperature", "expected a number between 0 and 1"); goto out; }
        req->has_temperature = true;
        req->temperature = json_number_value(v);
    }
    if ((v = json_object_get(root, "top_p"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) { rc = bad(err, "top_p", "expected a number between 0 and 1"); goto out; }
        req->has_top_p = true;
        req->top_p = json_number_value(v);
    }
    if ((v = json_object_get(root, "top_k"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) { rc = bad(err, "top_k", "expected an integer >= 0"); goto out; }
        if (json_object_set(req->passthrough, "top_k", (json_t *)v)) { rc = HL_ERR_NOMEM; goto out; }
    }
    if ((v = json_object_get(root, "stream"))) {
        if (!json_is_boolean(v)) { rc = bad(err, "stream", "expected a boolean"); goto out; }
        req->stream = req->include_usage = json_is_true(v);
    }
    if ((v = json_object_get(root, "tools")) && (rc = parse_tools(v, req, err))) goto out;
    if ((v = json_object_get(root, "tool_choice")) && (rc = parse_tool_choice(v, req, err))) goto out;
    if ((v = json_object_get(root, "metadata"))) {
        if ((rc = hl_chat_parse_metadata(v, req, err))) goto out;
        const json_t *uid = json_object_get(v, "user_id");
        if (json_is_string(uid) && json_object_set(req->passthrough, "user", (json_t *)uid)) { rc = HL_ERR_NOMEM; goto out; }
    }
out:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ ingress rendering */

static const char *stop_reason_of(hl_finish f, const char *stop_sequence) {
    if (stop_sequence && f == HL_FINISH_STOP) return "stop_sequence";
    switch (f) {
    case HL_FINISH_LENGTH: return "max_tokens";
    case HL_FINISH_TOOL_CALLS: return "tool_use";
    case HL_FINISH_CONTENT_FILTER: return "refusal";
    case HL_FINISH_STOP:
    case HL_FINISH_NONE: return "end_turn";
    }
    return "end_turn";
}

static hl_err put_usage_anthropic(hl_buf *out, const hl_usage *u) {
    long plain = u->input_tokens - u->cached_input_tokens - u->cache_write_tokens;
    return hl_buf_printf(out, "{\"input_tokens\":%ld,\"cache_creation_input_tokens\":%ld,"
                              "\"cache_read_input_tokens\":%ld,\"output_tokens\":%ld}",
                         plain < 0 ? 0 : plain, u->cache_write_tokens, u->cached_input_tokens,
                         u->output_tokens);
}

/* tool arguments (JSON text from an OpenAI-style upstream) as an input object */
static hl_err put_input(hl_buf *out, const char *args) {
    json_t *input = json_loads(args && *args ? args : "{}", 0, NULL);
    hl_err e = json_is_object(input) ? hl_json_put(out, input) : hl_buf_puts(out, "{}");
    json_decref(input);
    return e;
}

hl_err hl_anthropic_write_response(hl_buf *out, const hl_chat_response *resp, const char *id,
                                   long created) {
    (void)created;
    HL_TRY(hl_buf_puts(out, "{\"id\":"));
    HL_TRY(hl_json_put_str(out, id));
    HL_TRY(hl_buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":"));
    HL_TRY(hl_json_put_str(out, resp->model ? resp->model : ""));
    HL_TRY(hl_buf_puts(out, ",\"content\":["));
    bool first = true;
    if (resp->text && resp->text[0]) {
        HL_TRY(hl_buf_puts(out, "{\"type\":\"text\",\"text\":"));
        HL_TRY(hl_json_put_str(out, resp->text));
        HL_TRY(hl_buf_puts(out, "}"));
        first = false;
    }
    for (size_t i = 0; i < resp->n_tool_calls; i++) {
        const hl_tool_call *tc = &resp->tool_calls[i];
        HL_TRY(hl_buf_puts(out, first ? "{\"type\":\"tool_use\",\"id\":" : ",{\"type\":\"tool_use\",\"id\":"));
        first = false;
        HL_TRY(hl_json_put_str(out, tc->id ? tc->id : ""));
        HL_TRY(hl_buf_puts(out, ",\"name\":"));
        HL_TRY(hl_json_put_str(out, tc->name ? tc->name : ""));
        HL_TRY(hl_buf_puts(out, ",\"input\":"));
        HL_TRY(put_input(out, tc->arguments));
        HL_TRY(hl_buf_puts(out, "}"));
    }
    HL_TRY(hl_buf_printf(out, "],\"stop_reason\":\"%s\",\"stop_sequence\":",
                      stop_reason_of(resp->finish, resp->stop_sequence)));
    HL_TRY(resp->stop_sequence ? hl_json_put_str(out, resp->stop_sequence) : hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, ",\"usage\":"));
    HL_TRY(put_usage_anthropic(out, &resp->usage));
    return hl_buf_puts(out, "}");
}

static const char *anthropic_error_type(const hl_api_error *e) {
    switch (e->kind) {
    case HL_AE_INVALID_REQUEST: return e->status == 413 ? "request_too_large" : "invalid_request_error";
    case HL_AE_AUTHENTICATION: return "authentication_error";
    case HL_AE_PERMISSION: return "permission_error";
    case HL_AE_NOT_FOUND: return "not_found_error";
    case HL_AE_TOO_LARGE: return "request_too_large";
    case HL_AE_RATE_LIMIT: return "rate_limit_error";
    case HL_AE_API: return "api_error";
    case HL_AE_UNAVAILABLE: return "api_error";
    case HL_AE_TIMEOUT: return "timeout_error";
    case HL_AE_OVERLOADED: return "overloaded_error";
    }
    return "api_error";
}

int hl_anthropic_error_status(const hl_api_error *err) {
    return err->kind == HL_AE_OVERLOADED ? 529 : err->status;
}

static hl_err put_error(hl_buf *out, const hl_api_error *err) {
    HL_TRY(hl_buf_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", anthropic_error_type(err)));
    HL_TRY(hl_json_put_str(out, err->message));
    return hl_buf_puts(out, "}");
}

hl_err hl_anthropic_write_error(hl_buf *out, const hl_api_error *err, const char *request_id) {
    HL_TRY(put_error(out, err));
    HL_TRY(hl_buf_puts(out, ",\"request_id\":"));
    HL_TRY(request_id ? hl_json_put_str(out, request_id) : hl_buf_puts(out, "null"));
    return hl_buf_puts(out, "}");
}

void hl_anthropic_encoder_init(hl_anthropic_encoder *enc, const char *id, const char *model) {
    memset(enc, 0, sizeof *enc);
    enc->id = id;
    snprintf(enc->model, sizeof enc->model, "%s", model ? model : "");
    enc->open_block = -1;
    for (size_t i = 0; i < sizeof enc->block_of_tool / sizeof enc->block_of_tool[0]; i++)
        enc->block_of_tool[i] = -1;
}

static hl_err event_head(hl_buf *out, const char *type) {
    return hl_buf_printf(out, "event: %s\ndata: {\"type\":\"%s\"", type, type);
}

static hl_err ensure_message_start(hl_anthropic_encoder *enc, hl_buf *out) {
    if (enc->started) return HL_OK;
    enc->started = true;
    HL_TRY(event_head(out, "message_start"));
    HL_TRY(hl_buf_puts(out, ",\"message\":{\"id\":"));
    HL_TRY(hl_json_put_str(out, enc->id));
    HL_TRY(hl_buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":"));
    HL_TRY(hl_json_put_str(out, enc->model));
    HL_TRY(hl_buf_puts(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"));
    HL_TRY(put_usage_anthropic(out, &enc->usage));
    HL_TRY(hl_buf_puts(out, "}}\n\n"));
    return hl_buf_puts(out, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

static hl_err close_block(hl_anthropic_encoder *enc, hl_buf *out) {
    if (enc->open_block < 0) return HL_OK;
    HL_TRY(event_head(out, "content_block_stop"));
    HL_TRY(hl_buf_printf(out, ",\"index\":%d}\n\n", enc->open_block));
    enc->open_block = -1;
    return HL_OK;
}

hl_err hl_anthropic_encode_event(hl_anthropic_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    switch (ev->type) {
    case HL_EV_START:
        /* message_start waits for the first content: by then an Anthropic upstream has
         * reported the input tokens, which clients read from message_start. */
        if (ev->model && ev->model[0]) snprintf(enc->model, sizeof enc->model, "%s", ev->model);
        return HL_OK;
    case HL_EV_TEXT:
        if (!ev->text_len) return HL_OK;
        HL_TRY(ensure_message_start(enc, out));
        if (enc->open_block < 0 || enc->open_is_tool) {
            HL_TRY(close_block(enc, out));
            enc->open_block = enc->next_block++;
            enc->open_is_tool = false;
            HL_TRY(event_head(out, "content_block_start"));
            HL_TRY(hl_buf_printf(out, ",\"index\":%d,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", enc->open_block));
        }
        HL_TRY(event_head(out, "content_block_delta"));
        HL_TRY(hl_buf_printf(out, ",\"index\":%d,\"delta\":{\"type\":\"text_delta\",\"text\":", enc->open_block));
        HL_TRY(hl_buf_json_str(out, ev->text, ev->text_len));
        return hl_buf_puts(out, "}}\n\n");
    case HL_EV_TOOL_CALL: {
        HL_TRY(ensure_message_start(enc, out));
        int ti = ev->index;
        if (ti < 0 || ti >= 64) return HL_OK;
        if (enc->block_of_tool[ti] < 0) {
            HL_TRY(close_block(enc, out));
            enc->block_of_tool[ti] = enc->open_block = enc->next_block++;
            enc->open_is_tool = true;
            enc->open_tool = ti;
            HL_TRY(event_head(out, "content_block_start"));
            HL_TRY(hl_buf_printf(out, ",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":", enc->open_block));
            HL_TRY(hl_json_put_str(out, ev->tool_id ? ev->tool_id : ""));
            HL_TRY(hl_buf_puts(out, ",\"name\":"));
            HL_TRY(hl_json_put_str(out, ev->tool_name ? ev->tool_name : ""));
            HL_TRY(hl_buf_puts(out, ",\"input\":{}}}\n\n"));
        }
        if (!ev->text_len) return HL_OK;
        HL_TRY(event_head(out, "content_block_delta"));
        HL_TRY(hl_buf_printf(out, ",\"index\":%d,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":",
                          enc->block_of_tool[ti]));
        HL_TRY(hl_buf_json_str(out, ev->text, ev->text_len));
        return hl_buf_puts(out, "}}\n\n");
    }
    case HL_EV_FINISH:
        enc->finish = ev->finish;
        enc->stop_sequence[0] = '\0';
        enc->has_stop_sequence = ev->stop_sequence != NULL;
        if (ev->stop_sequence) snprintf(enc->stop_sequence, sizeof enc->stop_sequence, "%s", ev->stop_sequence);
        return HL_OK;
    case HL_EV_USAGE:
        enc->usage = ev->usage;
        return HL_OK;
    case HL_EV_LOGPROBS: /* the Messages API has none */
    case HL_EV_ERROR:
    case HL_EV_DONE:
        return HL_OK;
    }
    return HL_OK;
}

hl_err hl_anthropic_encode_end(hl_anthropic_encoder *enc, const hl_usage *usage, hl_buf *out) {
    HL_TRY(ensure_message_start(enc, out));
    HL_TRY(close_block(enc, out));
    HL_TRY(event_head(out, "message_delta"));
    HL_TRY(hl_buf_printf(out, ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":",
                      stop_reason_of(enc->finish, enc->has_stop_sequence ? enc->stop_sequence : NULL)));
    HL_TRY(enc->has_stop_sequence ? hl_json_put_str(out, enc->stop_sequence) : hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, "},\"usage\":"));
    HL_TRY(put_usage_anthropic(out, usage));
    HL_TRY(hl_buf_puts(out, "}\n\n"));
    HL_TRY(event_head(out, "message_stop"));
    return hl_buf_puts(out, "}\n\n");
}

hl_err hl_anthropic_encode_error(const hl_api_error *err, const char *request_id, hl_buf *out) {
    HL_TRY(hl_buf_puts(out, "event: error\ndata: "));
    HL_TRY(hl_anthropic_write_error(out, err, request_id));
    return hl_buf_puts(out, "\n\n");
}
