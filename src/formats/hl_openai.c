/* hl_openai: OpenAI Chat Completions in and out (see hl_openai.h).
 *
 * Parsing uses jansson, after the one-pass readers of the common request and reply
 * (hl_openai_request.c, hl_openai_reply.c); rendering writes JSON by hand into an hl_buf,
 * which is both faster and gives exact control over the bytes SDKs see (field order, null vs
 * absent). */
#include "hl_openai.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ ingress parsing */

static hl_err bad(hl_api_error *err, const char *param, const char *fmt, const char *detail) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL, fmt, detail);
}

/* A function tool must name its function: without a name no backend can call it (OpenAI
 * refuses it, and an Anthropic backend would be sent tool_choice naming a tool it never got). */
static hl_err check_tools(const json_t *tools, hl_api_error *err) {
    size_t i;
    const json_t *t;
    char param[64];
    json_array_foreach(tools, i, t) {
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t)) return bad(err, param, "Invalid type for '%s': expected an object.", param);
        const char *type = json_string_value(json_object_get(t, "type"));
        if (type && strcmp(type, "function") != 0) continue; /* other kinds pass through */
        const json_t *name = json_object_get(json_object_get(t, "function"), "name");
        snprintf(param, sizeof param, "tools[%zu].function.name", i);
        if (!json_is_string(name) || json_string_length(name) == 0)
            return bad(err, param, "Missing required parameter: '%s'.", param);
    }
    return HL_OK;
}

/* Joins the text of a content value (string, null, or an array of parts) into *out. */
static hl_err parse_content(const json_t *content, const char *param, char **out,
                            hl_api_error *err) {
    *out = NULL;
    if (!content || json_is_null(content)) return hl_strdup(out, "");
    if (json_is_string(content)) return hl_strdup(out, json_string_value(content));
    if (!json_is_array(content))
        return bad(err, param, "Invalid type for '%s': expected a string or an array of content parts.", param);
    hl_buf b;
    hl_buf_init(&b, 0);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !type) {
            hl_buf_release(&b);
            return bad(err, param, "Invalid content part in '%s': each part needs a 'type'.", param);
        }
        if (strcmp(type, "text") != 0) {
            hl_buf_release(&b);
            char p[128];
            snprintf(p, sizeof p, "%s[%zu].type", param, i);
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, p, "unsupported_content",
                                    "Content parts of type '%.40s' are not supported by this "
                                    "gateway yet; only 'text' parts are.", type);
        }
        if (!json_is_string(text)) {
            hl_buf_release(&b);
            return bad(err, param, "Invalid text part in '%s': 'text' must be a string.", param);
        }
        /* Parts are separate pieces of text: a line break keeps their words (and values such
         * as "note." + "(415) 555-...") apart, as the model would see them. */
        if ((b.len && hl_buf_puts(&b, "\n")) || hl_buf_append(&b, json_string_value(text), json_string_length(text))) {
            hl_buf_release(&b);
            return HL_ERR_NOMEM;
        }
    }
    if (!b.data) return hl_strdup(out, "");
    *out = hl_buf_steal(&b);
    return HL_OK;
}

static hl_err parse_tool_calls(const json_t *arr, size_t mi, hl_message *m, hl_api_error *err) {
    char param[96];
    snprintf(param, sizeof param, "messages[%zu].tool_calls", mi);
    if (!json_is_array(arr)) return bad(err, param, "Invalid type for '%s': expected an array.", param);
    size_t n = json_array_size(arr);
    if (!n) return HL_OK;
    m->tool_calls = calloc(n, sizeof *m->tool_calls);
    if (!m->tool_calls) return HL_ERR_NOMEM;
    m->n_tool_calls = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *tc = json_array_get(arr, i);
        const json_t *fn = json_object_get(tc, "function");
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        if (!id || !name)
            return bad(err, param, "Invalid '%s': each tool call needs an id and function.name.", param);
        HL_TRY(hl_strdup(&m->tool_calls[i].id, id));
        HL_TRY(hl_strdup(&m->tool_calls[i].name, name));
        HL_TRY(hl_strdup(&m->tool_calls[i].arguments, args ? args : "{}"));
    }
    return HL_OK;
}

/* "messages[i]" and suffix into buf (len >= 32): the name errors give, made for every
 * message without printf's cost. */
static void msg_param(char *buf, size_t len, size_t i, const char *suffix) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + i % 10); while ((i /= 10) && n < (int)sizeof digits);
    size_t o = hl_strlcpy(buf, "messages[", len);
    while (n && o + 2 < len) buf[o++] = digits[--n];
    buf[o++] = ']';
    buf[o] = '\0';
    hl_strlcpy(buf + o, suffix, len - o);
}

static hl_err parse_messages(const json_t *msgs, hl_chat_request *req, hl_api_error *err) {
    if (!msgs) return bad(err, "messages", "Missing required parameter: '%s'.", "messages");
    if (!json_is_array(msgs))
        return bad(err, "messages", "Invalid type for '%s': expected an array of message objects.", "messages");
    size_t n = json_array_size(msgs);
    if (n == 0)
        return bad(err, "messages", "Invalid '%s': empty array. Expected an array with minimum length 1.", "messages");
    req->messages = calloc(n, sizeof *req->messages);
    if (!req->messages) return HL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        hl_message *out = &req->messages[i];
        req->n_messages = i + 1;
        char param[96];
        msg_param(param, sizeof param, i, "");
        if (!json_is_object(m))
            return bad(err, param, "Invalid type for '%s': expected an object.", param);
        const char *role = json_string_value(json_object_get(m, "role"));
        msg_param(param, sizeof param, i, ".role");
        if (!role) return bad(err, param, "Missing required parameter: '%s'.", param);
        if (!strcmp(role, "system") || !strcmp(role, "developer")) out->role = HL_ROLE_SYSTEM;
        else if (!strcmp(role, "user")) out->role = HL_ROLE_USER;
        else if (!strcmp(role, "assistant")) out->role = HL_ROLE_ASSISTANT;
        else if (!strcmp(role, "tool")) out->role = HL_ROLE_TOOL;
        else
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL,
                                    "Invalid value for '%s': '%.40s'. Supported values are: "
                                    "'system', 'developer', 'user', 'assistant' and 'tool'.",
                                    param, role);
        msg_param(param, sizeof param, i, ".content");
        const json_t *content = json_object_get(m, "content");
        if (!content && out->role != HL_ROLE_ASSISTANT)
            return bad(err, param, "Missing required parameter: '%s'.", param);
        HL_TRY(parse_content(content, param, &out->text, err));
        req->text_bytes += strlen(out->text);
        const json_t *name = json_object_get(m, "name");
        if (json_is_string(name)) HL_TRY(hl_strdup(&out->name, json_string_value(name)));
        const json_t *tcs = json_object_get(m, "tool_calls");
        if (tcs && out->role == HL_ROLE_ASSISTANT && !json_is_null(tcs))
            HL_TRY(parse_tool_calls(tcs, i, out, err));
        if (out->role == HL_ROLE_TOOL) {
            const char *tcid = json_string_value(json_object_get(m, "tool_call_id"));
            msg_param(param, sizeof param, i, ".tool_call_id");
            if (!tcid) return bad(err, param, "Missing required parameter: '%s'.", param);
            HL_TRY(hl_strdup(&out->tool_call_id, tcid));
        }
    }
    return HL_OK;
}

static hl_err parse_stop(const json_t *v, hl_chat_request *req, hl_api_error *err) {
    if (json_is_null(v)) return HL_OK;
    if (json_is_string(v)) {
        req->stop = calloc(1, sizeof *req->stop);
        if (!req->stop) return HL_ERR_NOMEM;
        req->n_stop = 1;
        return hl_strdup(&req->stop[0], json_string_value(v));
    }
    if (!json_is_array(v) || json_array_size(v) > 4)
        return bad(err, "stop", "Invalid '%s': expected a string or an array of at most 4 strings.", "stop");
    size_t n = json_array_size(v);
    if (!n) return HL_OK;
    req->stop = calloc(n, sizeof *req->stop);
    if (!req->stop) return HL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s) return bad(err, "stop", "Invalid '%s': expected a string or an array of at most 4 strings.", "stop");
        req->n_stop = i + 1;
        HL_TRY(hl_strdup(&req->stop[i], s));
    }
    return HL_OK;
}

static hl_err parse_number(const json_t *v, const char *param, double lo, double hi, double *out,
                           hl_api_error *err) {
    if (!json_is_number(v))
        return bad(err, param, "Invalid type for '%s': expected a number.", param);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL,
                                "Invalid '%s': %g is out of range [%g, %g].", param, d, lo, hi);
    *out = d;
    return HL_OK;
}

/* Fields we understand; everything else is forwarded verbatim to OpenAI-kind upstreams. */
static const char *const known_fields[] = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
    "stream", "stream_options", "n", "logprobs", "top_logprobs", "tools", "tool_choice",
    "metadata", NULL,
};

static bool is_known_field(const char *k) {
    for (int i = 0; known_fields[i]; i++)
        if (!strcmp(k, known_fields[i])) return true;
    return false;
}

hl_err hl_openai_parse_request(const char *body, size_t len, hl_chat_request *req,
                               hl_api_error *err) {
    hl_err e = hl_openai_request_fast(body, len, req);
    return e == HL_ERR_UNSUPPORTED ? hl_openai_parse_request_full(body, len, req, err) : e;
}

hl_err hl_openai_parse_request_full(const char *body, size_t len, hl_chat_request *req,
                                    hl_api_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    hl_err rc = HL_OK;
    if (!root)
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, NULL, NULL,
                                "We could not parse the JSON body of your request: %s (at byte %d).",
                                jerr.text, jerr.position);
    if (!json_is_object(root)) {
        rc = bad(err, NULL, "%s", "The request body must be a JSON object.");
        goto out;
    }
    const json_t *model = json_object_get(root, "model");
    if (!model) { rc = bad(err, "model", "Missing required parameter: '%s'.", "model"); goto out; }
    if (!json_is_string(model) || json_string_length(model) == 0) {
        rc = bad(err, "model", "Invalid type for '%s': expected a non-empty string.", "model");
        goto out;
    }
    if ((rc = hl_strdup(&req->model, json_string_value(model)))) goto out;
    if ((rc = parse_messages(json_object_get(root, "messages"), req, err))) goto out;

    const json_t *v;
    const char *mt_name = json_object_get(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((v = json_object_get(root, mt_name)) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            rc = bad(err, mt_name, "Invalid '%s': expected an integer >= 1.", mt_name);
            goto out;
        }
        req->max_tokens = json_integer_value(v) > 1000000000 ? 1000000000 : (long)json_integer_value(v);
        req->max_completion_tokens = mt_name[4] == 'c';
    }
    if ((v = json_object_get(root, "temperature")) && !json_is_null(v)) {
        if ((rc = parse_number(v, "temperature", 0, 2, &req->temperature, err))) goto out;
        req->has_temperature = true;
    }
    if ((v = json_object_get(root, "top_p")) && !json_is_null(v)) {
        if ((rc = parse_number(v, "top_p", 0, 1, &req->top_p, err))) goto out;
        req->has_top_p = true;
    }
    if ((v = json_object_get(root, "stop")) && (rc = parse_stop(v, req, err))) goto out;
    if ((v = json_object_get(root, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) { rc = bad(err, "stream", "Invalid type for '%s': expected a boolean.", "stream"); goto out; }
        req->stream = json_is_true(v);
    }
    if ((v = json_object_get(root, "stream_options")) && !json_is_null(v)) {
        if (!json_is_object(v)) { rc = bad(err, "stream_options", "Invalid type for '%s': expected an object.", "stream_options"); goto out; }
        if (!req->stream) { rc = bad(err, "stream_options", "Invalid '%s': only allowed when 'stream' is true.", "stream_options"); goto out; }
        req->include_usage = json_is_true(json_object_get(v, "include_usage"));
    }
    if ((v = json_object_get(root, "n")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) != 1) {
            rc = hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "n", "unsupported_parameter",
                                  "Invalid 'n': this gateway serves one choice per request (n must be 1).");
            goto out;
        }
    }
    if ((v = json_object_get(root, "logprobs")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) { rc = bad(err, "logprobs", "Invalid type for '%s': expected a boolean.", "logprobs"); goto out; }
        req->logprobs = json_is_true(v);
    }
    if ((v = json_object_get(root, "top_logprobs")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 20) {
            rc = bad(err, "top_logprobs", "Invalid '%s': expected an integer between 0 and 20.", "top_logprobs");
            goto out;
        }
        req->top_logprobs = (int)json_integer_value(v);
    }
    if ((v = json_object_get(root, "tools")) && !json_is_null(v)) {
        if (!json_is_array(v)) { rc = bad(err, "tools", "Invalid type for '%s': expected an array.", "tools"); goto out; }
        if ((rc = check_tools(v, err))) goto out;
        req->tools = json_incref((json_t *)v);
    }
    if ((v = json_object_get(root, "tool_choice")) && !json_is_null(v))
        req->tool_choice = json_incref((json_t *)v);
    if ((v = json_object_get(root, "metadata")) && (rc = hl_chat_parse_metadata(v, req, err))) goto out;

    req->passthrough = json_object();
    if (!req->passthrough) { rc = HL_ERR_NOMEM; goto out; }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!is_known_field(key) && json_object_set(req->passthrough, key, val)) {
            rc = HL_ERR_NOMEM;
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ rendering helpers */

static hl_err put_tool_calls(hl_buf *b, const hl_tool_call *tc, size_t n) {
    HL_TRY(hl_buf_puts(b, "["));
    for (size_t i = 0; i < n; i++) {
        HL_TRY(hl_buf_puts(b, i ? ",{\"id\":" : "{\"id\":"));
        HL_TRY(hl_json_put_str(b, tc[i].id));
        HL_TRY(hl_buf_puts(b, ",\"type\":\"function\",\"function\":{\"name\":"));
        HL_TRY(hl_json_put_str(b, tc[i].name));
        HL_TRY(hl_buf_puts(b, ",\"arguments\":"));
        HL_TRY(hl_json_put_str(b, tc[i].arguments ? tc[i].arguments : ""));
        HL_TRY(hl_buf_puts(b, "}}"));
    }
    return hl_buf_puts(b, "]");
}

static hl_err put_usage(hl_buf *b, const hl_usage *u) {
    HL_TRY(hl_buf_puts(b, "{\"prompt_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->input_tokens));
    HL_TRY(hl_buf_puts(b, ",\"completion_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->output_tokens));
    HL_TRY(hl_buf_puts(b, ",\"total_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->input_tokens + u->output_tokens));
    HL_TRY(hl_buf_puts(b, ",\"prompt_tokens_details\":{\"cached_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->cached_input_tokens));
    HL_TRY(hl_buf_puts(b, "},\"completion_tokens_details\":{\"reasoning_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->reasoning_tokens));
    return hl_buf_puts(b, "}}");
}

/* ------------------------------------------------------------------ ingress rendering */

hl_err hl_openai_write_response(hl_buf *out, const hl_chat_response *resp, const char *id,
                                long created) {
    HL_TRY(hl_buf_puts(out, "{\"id\":"));
    HL_TRY(hl_json_put_str(out, id));
    HL_TRY(hl_buf_puts(out, ",\"object\":\"chat.completion\",\"created\":"));
    HL_TRY(hl_buf_i64(out, created));
    HL_TRY(hl_buf_puts(out, ",\"model\":"));
    HL_TRY(hl_json_put_str(out, resp->model ? resp->model : ""));
    HL_TRY(hl_buf_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"));
    if (resp->text) HL_TRY(hl_json_put_str(out, resp->text));
    else HL_TRY(hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, ",\"refusal\":null"));
    if (resp->n_tool_calls) {
        HL_TRY(hl_buf_puts(out, ",\"tool_calls\":"));
        HL_TRY(put_tool_calls(out, resp->tool_calls, resp->n_tool_calls));
    }
    HL_TRY(hl_buf_puts(out, "},\"logprobs\":"));
    if (resp->logprobs) HL_TRY(hl_json_put(out, resp->logprobs));
    else HL_TRY(hl_buf_puts(out, "null"));
    const char *fr = hl_finish_openai(resp->finish);
    HL_TRY(hl_buf_puts(out, ",\"finish_reason\":"));
    HL_TRY(fr ? hl_json_put_str(out, fr) : hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, "}],\"usage\":"));
    HL_TRY(put_usage(out, &resp->usage));
    return hl_buf_puts(out, "}");
}

static const char *openai_error_type(hl_api_error_kind k) {
    switch (k) {
    case HL_AE_INVALID_REQUEST: return "invalid_request_error";
    case HL_AE_AUTHENTICATION: return "authentication_error";
    case HL_AE_PERMISSION: return "invalid_request_error";
    case HL_AE_NOT_FOUND: return "invalid_request_error";
    case HL_AE_TOO_LARGE: return "invalid_request_error";
    case HL_AE_RATE_LIMIT: return "rate_limit_error";
    case HL_AE_API: return "api_error";
    case HL_AE_UNAVAILABLE: return "service_unavailable";
    case HL_AE_TIMEOUT: return "timeout";
    case HL_AE_OVERLOADED: return "overloaded_error";
    }
    return "api_error";
}

static hl_err put_error_object(hl_buf *out, const hl_api_error *err) {
    HL_TRY(hl_buf_puts(out, "{\"error\":{\"message\":"));
    HL_TRY(hl_json_put_str(out, err->message));
    HL_TRY(hl_buf_puts(out, ",\"type\":"));
    HL_TRY(hl_json_put_str(out, openai_error_type(err->kind)));
    HL_TRY(hl_buf_puts(out, ",\"param\":"));
    if (err->param[0]) HL_TRY(hl_json_put_str(out, err->param));
    else HL_TRY(hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, ",\"code\":"));
    if (err->code[0]) HL_TRY(hl_json_put_str(out, err->code));
    else HL_TRY(hl_buf_puts(out, "null"));
    return hl_buf_puts(out, "}}");
}

hl_err hl_openai_write_error(hl_buf *out, const hl_api_error *err) {
    return put_error_object(out, err);
}

void hl_openai_encoder_init(hl_openai_encoder *enc, const char *id, const char *model,
                            long created, bool include_usage) {
    memset(enc, 0, sizeof *enc);
    enc->id = id;
    hl_strlcpy(enc->model, model, sizeof enc->model);
    enc->created = created;
    enc->include_usage = include_usage;
}

/* Opens a chunk up to and including `"delta":`. */
static hl_err chunk_open(hl_openai_encoder *enc, hl_buf *out) {
    HL_TRY(hl_buf_puts(out, "data: {\"id\":"));
    HL_TRY(hl_json_put_str(out, enc->id));
    HL_TRY(hl_buf_printf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                      enc->created));
    HL_TRY(hl_json_put_str(out, enc->model));
    return hl_buf_puts(out, ",\"system_fingerprint\":null,\"choices\":[{\"index\":0,\"delta\":");
}

/* Closes a chunk opened by chunk_open, after the delta object. */
static hl_err chunk_close(hl_openai_encoder *enc, hl_buf *out, const char *finish,
                          const json_t *logprobs) {
    HL_TRY(hl_buf_puts(out, ",\"logprobs\":"));
    if (logprobs) {
        HL_TRY(hl_buf_puts(out, "{\"content\":"));
        HL_TRY(hl_json_put(out, logprobs));
        HL_TRY(hl_buf_puts(out, ",\"refusal\":null}"));
    } else {
        HL_TRY(hl_buf_puts(out, "null"));
    }
    if (finish) HL_TRY(hl_buf_printf(out, ",\"finish_reason\":\"%s\"}]", finish));
    else HL_TRY(hl_buf_puts(out, ",\"finish_reason\":null}]"));
    if (enc->include_usage) HL_TRY(hl_buf_puts(out, ",\"usage\":null"));
    return hl_buf_puts(out, "}\n\n");
}

static hl_err ensure_started(hl_openai_encoder *enc, hl_buf *out) {
    if (enc->started) return HL_OK;
    enc->started = true;
    HL_TRY(chunk_open(enc, out));
    HL_TRY(hl_buf_puts(out, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"));
    return chunk_close(enc, out, NULL, NULL);
}

hl_err hl_openai_encode_event(hl_openai_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    switch (ev->type) {
    case HL_EV_START:
        if (ev->model && ev->model[0]) snprintf(enc->model, sizeof enc->model, "%s", ev->model);
        return ensure_started(enc, out);
    case HL_EV_TEXT:
        if (!ev->text_len) return HL_OK;
        HL_TRY(ensure_started(enc, out));
        HL_TRY(chunk_open(enc, out));
        HL_TRY(hl_buf_puts(out, "{\"content\":"));
        HL_TRY(hl_buf_json_str(out, ev->text, ev->text_len));
        HL_TRY(hl_buf_puts(out, "}"));
        return chunk_close(enc, out, NULL, NULL);
    case HL_EV_LOGPROBS:
        HL_TRY(ensure_started(enc, out));
        HL_TRY(chunk_open(enc, out));
        HL_TRY(hl_buf_puts(out, "{}"));
        return chunk_close(enc, out, NULL, ev->logprobs);
    case HL_EV_TOOL_CALL:
        HL_TRY(ensure_started(enc, out));
        HL_TRY(chunk_open(enc, out));
        HL_TRY(hl_buf_printf(out, "{\"tool_calls\":[{\"index\":%d", ev->index));
        if (ev->tool_id) {
            HL_TRY(hl_buf_puts(out, ",\"id\":"));
            HL_TRY(hl_json_put_str(out, ev->tool_id));
            HL_TRY(hl_buf_puts(out, ",\"type\":\"function\""));
        }
        HL_TRY(hl_buf_puts(out, ",\"function\":{"));
        if (ev->tool_name) {
            HL_TRY(hl_buf_puts(out, "\"name\":"));
            HL_TRY(hl_json_put_str(out, ev->tool_name));
            HL_TRY(hl_buf_puts(out, ","));
        }
        HL_TRY(hl_buf_puts(out, "\"arguments\":"));
        HL_TRY(hl_buf_json_str(out, ev->text ? ev->text : "", ev->text ? ev->text_len : 0));
        HL_TRY(hl_buf_puts(out, "}}]}"));
        return chunk_close(enc, out, NULL, NULL);
    case HL_EV_FINISH:
        if (enc->finished || ev->finish == HL_FINISH_NONE) return HL_OK;
        HL_TRY(ensure_started(enc, out));
        enc->finished = true;
        HL_TRY(chunk_open(enc, out));
        HL_TRY(hl_buf_puts(out, "{}"));
        return chunk_close(enc, out, hl_finish_openai(ev->finish), NULL);
    case HL_EV_USAGE:
        enc->usage = ev->usage;
        return HL_OK;
    case HL_EV_ERROR:
    case HL_EV_DONE:
        return HL_OK;
    }
    return HL_OK;
}

hl_err hl_openai_encode_end(hl_openai_encoder *enc, const hl_usage *usage, hl_buf *out) {
    HL_TRY(ensure_started(enc, out));
    if (enc->include_usage) {
        HL_TRY(hl_buf_puts(out, "data: {\"id\":"));
        HL_TRY(hl_json_put_str(out, enc->id));
        HL_TRY(hl_buf_printf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                          enc->created));
        HL_TRY(hl_json_put_str(out, enc->model));
        HL_TRY(hl_buf_puts(out, ",\"system_fingerprint\":null,\"choices\":[],\"usage\":"));
        HL_TRY(put_usage(out, usage));
        HL_TRY(hl_buf_puts(out, "}\n\n"));
    }
    return hl_buf_puts(out, "data: [DONE]\n\n");
}


/* The fields passed through as the client sent them, then the body's closing brace. */
static hl_err put_passthrough_and_close(hl_buf *out, const hl_chat_request *req) {
    if (req->passthrough) {
        const char *key;
        json_t *val;
        json_object_foreach(req->passthrough, key, val) {
            HL_TRY(hl_buf_puts(out, ","));
            HL_TRY(hl_json_put_str(out, key));
            HL_TRY(hl_buf_puts(out, ":"));
            HL_TRY(hl_json_put(out, val));
        }
    }
    return hl_buf_puts(out, "}");
}

/* The sampling settings and streaming switch both upstream bodies (chat and legacy
 * completions) carry the same way. */
static hl_err put_sampling(hl_buf *out, const hl_chat_request *req) {
    if (req->has_temperature) {
        HL_TRY(hl_buf_puts(out, ",\"temperature\":"));
        HL_TRY(hl_buf_double(out, req->temperature));
    }
    if (req->has_top_p) {
        HL_TRY(hl_buf_puts(out, ",\"top_p\":"));
        HL_TRY(hl_buf_double(out, req->top_p));
    }
    if (req->n_stop) {
        HL_TRY(hl_buf_puts(out, ",\"stop\":["));
        for (size_t i = 0; i < req->n_stop; i++) {
            if (i) HL_TRY(hl_buf_puts(out, ","));
            HL_TRY(hl_json_put_str(out, req->stop[i]));
        }
        HL_TRY(hl_buf_puts(out, "]"));
    }
    if (req->stream) HL_TRY(hl_buf_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
    return HL_OK;
}

hl_err hl_openai_encode_error(const hl_api_error *err, hl_buf *out) {
    HL_TRY(hl_buf_puts(out, "data: "));
    HL_TRY(put_error_object(out, err));
    return hl_buf_puts(out, "\n\n");
}

/* ------------------------------------------------------------------ provider side */

/* A legacy completions body ({base_url}/completions): the prompt as sent, logprobs as the
 * integer that API takes. */
json_t *hl_openai_logprobs_from_completion(const json_t *lp) {
    const json_t *tokens = json_object_get(lp, "tokens");
    const json_t *lps = json_object_get(lp, "token_logprobs");
    const json_t *tops = json_object_get(lp, "top_logprobs");
    if (!json_is_array(tokens)) return NULL;
    json_t *content = json_array();
    size_t i;
    const json_t *tok;
    json_array_foreach(tokens, i, tok) {
        const json_t *l = json_array_get(lps, i);
        if (!json_is_string(tok)) continue;
        json_t *top = json_array();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)json_array_get(tops, i), k, v)
            if (json_is_number(v) && top) json_array_append_new(top, json_pack("{s:s, s:f, s:n}", "token", k, "logprob",
                                                                       json_number_value(v), "bytes"));
        json_t *e = json_pack("{s:O, s:f, s:n, s:o}", "token", tok, "logprob", json_is_number(l) ? json_number_value(l) : 0.0,
                              "bytes", "top_logprobs", top ? top : json_array());
        if (!e || !content || json_array_append_new(content, e)) {
            json_decref(content);
            return NULL;
        }
    }
    return content;
}

static hl_err write_completion_request(hl_buf *out, const hl_chat_request *req, const char *model) {
    HL_TRY(hl_buf_puts(out, "{\"model\":"));
    HL_TRY(hl_json_put_str(out, model));
    HL_TRY(hl_buf_puts(out, ",\"prompt\":"));
    HL_TRY(hl_json_put_str(out, req->n_messages ? req->messages[req->n_messages - 1].text : ""));
    if (req->max_tokens > 0) HL_TRY(hl_buf_printf(out, ",\"max_tokens\":%ld", req->max_tokens));
    HL_TRY(put_sampling(out, req));
    if (req->logprobs) HL_TRY(hl_buf_printf(out, ",\"logprobs\":%d", req->top_logprobs > 0 ? req->top_logprobs : 0));
    return put_passthrough_and_close(out, req);
}

hl_err hl_openai_write_upstream_request(hl_buf *out, const hl_chat_request *req,
                                        const char *model) {
    if (req->raw_prompt) return write_completion_request(out, req, model);
    HL_TRY(hl_buf_puts(out, "{\"model\":"));
    HL_TRY(hl_json_put_str(out, model));
    HL_TRY(hl_buf_puts(out, ",\"messages\":["));
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        HL_TRY(hl_buf_puts(out, i ? ",{\"role\":\"" : "{\"role\":\""));
        HL_TRY(hl_buf_puts(out, hl_role_name(m->role)));
        HL_TRY(hl_buf_puts(out, "\",\"content\":"));
        if (m->role == HL_ROLE_ASSISTANT && m->n_tool_calls && !m->text[0]) HL_TRY(hl_buf_puts(out, "null"));
        else HL_TRY(hl_json_put_str(out, m->text));
        if (m->name) {
            HL_TRY(hl_buf_puts(out, ",\"name\":"));
            HL_TRY(hl_json_put_str(out, m->name));
        }
        if (m->n_tool_calls) {
            HL_TRY(hl_buf_puts(out, ",\"tool_calls\":"));
            HL_TRY(put_tool_calls(out, m->tool_calls, m->n_tool_calls));
        }
        if (m->tool_call_id) {
            HL_TRY(hl_buf_puts(out, ",\"tool_call_id\":"));
            HL_TRY(hl_json_put_str(out, m->tool_call_id));
        }
        HL_TRY(hl_buf_puts(out, "}"));
    }
    HL_TRY(hl_buf_puts(out, "]"));
    if (req->max_tokens > 0) {
        HL_TRY(hl_buf_puts(out, req->max_completion_tokens ? ",\"max_completion_tokens\":" : ",\"max_tokens\":"));
        HL_TRY(hl_buf_i64(out, req->max_tokens));
    }
    HL_TRY(put_sampling(out, req));
    if (req->logprobs) HL_TRY(hl_buf_puts(out, ",\"logprobs\":true"));
    if (req->top_logprobs >= 0) {
        HL_TRY(hl_buf_puts(out, ",\"top_logprobs\":"));
        HL_TRY(hl_buf_i64(out, req->top_logprobs));
    }
    if (req->tools) {
        HL_TRY(hl_buf_puts(out, ",\"tools\":"));
        HL_TRY(hl_json_put(out, req->tools));
    }
    if (req->tool_choice) {
        HL_TRY(hl_buf_puts(out, ",\"tool_choice\":"));
        HL_TRY(hl_json_put(out, req->tool_choice));
    }
    return put_passthrough_and_close(out, req);
}

static long get_long(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

static void parse_usage(const json_t *u, hl_usage *out) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(u)) return;
    out->known = true;
    out->input_tokens = get_long(u, "prompt_tokens");
    out->output_tokens = get_long(u, "completion_tokens");
    out->cached_input_tokens = get_long(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
    out->reasoning_tokens = get_long(json_object_get(u, "completion_tokens_details"), "reasoning_tokens");
}

hl_finish hl_openai_parse_finish(const char *s) {
    if (!s) return HL_FINISH_NONE;
    if (!strcmp(s, "stop")) return HL_FINISH_STOP;
    if (!strcmp(s, "length")) return HL_FINISH_LENGTH;
    if (!strcmp(s, "tool_calls") || !strcmp(s, "function_call")) return HL_FINISH_TOOL_CALLS;
    if (!strcmp(s, "content_filter")) return HL_FINISH_CONTENT_FILTER;
    return HL_FINISH_STOP;
}

hl_err hl_openai_parse_upstream_full(const char *body, size_t len, hl_chat_response *resp) {
    json_t *root = json_loadb(body, len, 0, NULL);
    hl_err rc = HL_ERR_PARSE;
    if (!json_is_object(root)) goto out;
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    const json_t *ctext = json_object_get(choice, "text"); /* a text_completion's choice */
    if (!json_is_object(msg) && !json_is_string(ctext)) goto out;
    if ((rc = hl_strdup(&resp->id, json_string_value(json_object_get(root, "id"))))) goto out;
    if ((rc = hl_strdup(&resp->model, json_string_value(json_object_get(root, "model"))))) goto out;
    resp->created = get_long(root, "created");
    const json_t *content = msg ? json_object_get(msg, "content") : ctext;
    if (json_is_string(content) && (rc = hl_strdup(&resp->text, json_string_value(content)))) goto out;
    const json_t *tcs = json_object_get(msg, "tool_calls");
    if (json_is_array(tcs) && json_array_size(tcs)) {
        hl_message tmp = {0};
        hl_api_error ignored;
        if ((rc = parse_tool_calls(tcs, 0, &tmp, &ignored))) {
            resp->tool_calls = tmp.tool_calls;
            resp->n_tool_calls = tmp.n_tool_calls;
            rc = HL_ERR_PARSE;
            goto out;
        }
        resp->tool_calls = tmp.tool_calls;
        resp->n_tool_calls = tmp.n_tool_calls;
    }
    resp->finish = hl_openai_parse_finish(json_string_value(json_object_get(choice, "finish_reason")));
    const json_t *lp = json_object_get(choice, "logprobs");
    if (json_is_object(lp) && !msg) {
        json_t *content_lp = hl_openai_logprobs_from_completion(lp);
        if (content_lp && !(resp->logprobs = json_pack("{s:o, s:n}", "content", content_lp, "refusal")))
            json_decref(content_lp);
    } else if (json_is_object(lp)) {
        resp->logprobs = json_incref((json_t *)lp);
    }
    parse_usage(json_object_get(root, "usage"), &resp->usage);
    rc = HL_OK;
out:
    json_decref(root);
    return rc;
}

/* The common reply in one pass (hl_openai_reply.c); anything else through jansson. */
hl_err hl_openai_parse_upstream_response(const char *body, size_t len, hl_chat_response *resp) {
    hl_err e = hl_openai_reply_fast(body, len, resp);
    return e == HL_ERR_UNSUPPORTED ? hl_openai_parse_upstream_full(body, len, resp) : e;
}

int hl_openai_decode_stream_event(bool *started, const hl_sse_event *sse, hl_stream_sink sink,
                                  void *ud) {
    hl_stream_event ev;
    int rc = 0;
    if (!strcmp(sse->data, "[DONE]")) {
        memset(&ev, 0, sizeof ev);
        ev.type = HL_EV_DONE;
        return sink(ud, &ev);
    }
    json_t *root = json_loadb(sse->data, sse->data_len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return HL_ERR_PARSE;
    }
    const json_t *error = json_object_get(root, "error");
    if (error) {
        memset(&ev, 0, sizeof ev);
        ev.type = HL_EV_ERROR;
        ev.text = json_string_value(json_object_get(error, "message"));
        if (!ev.text) ev.text = "upstream stream error";
        ev.text_len = strlen(ev.text);
        ev.error_type = json_string_value(json_object_get(error, "type"));
        rc = sink(ud, &ev);
        goto out;
    }
    if (!*started) {
        *started = true;
        memset(&ev, 0, sizeof ev);
        ev.type = HL_EV_START;
        ev.id = json_string_value(json_object_get(root, "id"));
        ev.model = json_string_value(json_object_get(root, "model"));
        if ((rc = sink(ud, &ev))) goto out;
    }
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    if (choice) {
        const json_t *delta = json_object_get(choice, "delta");
        const json_t *content = delta ? json_object_get(delta, "content") : json_object_get(choice, "text");
        if (json_is_string(content) && json_string_length(content)) {
            memset(&ev, 0, sizeof ev);
            ev.type = HL_EV_TEXT;
            ev.text = json_string_value(content);
            ev.text_len = json_string_length(content);
            if ((rc = sink(ud, &ev))) goto out;
        }
        const json_t *tcs = json_object_get(delta, "tool_calls");
        size_t i;
        const json_t *tc;
        json_array_foreach(tcs, i, tc) {
            const json_t *fn = json_object_get(tc, "function");
            const json_t *args = json_object_get(fn, "arguments");
            memset(&ev, 0, sizeof ev);
            ev.type = HL_EV_TOOL_CALL;
            ev.index = (int)get_long(tc, "index");
            ev.tool_id = json_string_value(json_object_get(tc, "id"));
            ev.tool_name = json_string_value(json_object_get(fn, "name"));
            ev.text = json_is_string(args) ? json_string_value(args) : "";
            ev.text_len = strlen(ev.text);
            if ((rc = sink(ud, &ev))) goto out;
        }
        const json_t *clp = json_object_get(choice, "logprobs");
        const json_t *lp = json_object_get(clp, "content");
        json_t *converted = NULL; /* a text_completion chunk's logprobs, as chat entries */
        if (json_is_array(json_object_get(clp, "tokens"))) lp = converted = hl_openai_logprobs_from_completion(clp);
        if (json_is_array(lp) && json_array_size(lp)) {
            memset(&ev, 0, sizeof ev);
            ev.type = HL_EV_LOGPROBS;
            ev.logprobs = lp;
            rc = sink(ud, &ev);
        }
        json_decref(converted);
        if (rc) goto out;
        const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
        if (fr) {
            memset(&ev, 0, sizeof ev);
            ev.type = HL_EV_FINISH;
            ev.finish = hl_openai_parse_finish(fr);
            if ((rc = sink(ud, &ev))) goto out;
        }
    }
    /* Usage may ride on a chunk whose choices are not empty (llama.cpp): take it anyway. */
    const json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        memset(&ev, 0, sizeof ev);
        ev.type = HL_EV_USAGE;
        parse_usage(usage, &ev.usage);
        rc = sink(ud, &ev);
    }
out:
    json_decref(root);
    return rc;
}
