/* hl_responses: the OpenAI Responses API in and out (see hl_responses.h).
 *
 * Parsing uses jansson; rendering writes JSON by hand into an hl_buf, as hl_openai does, for
 * exact control over the bytes SDKs see. Event names and fields follow the openai SDK's
 * type definitions (resources/responses/responses.d.ts) and api-contracts.md. */
#include "hl_responses.h"

#include "hl_openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ ingress parsing */

static hl_err bad(hl_api_error *err, const char *param, const char *fmt, const char *detail) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL, fmt, detail);
}

static hl_err unsupported(hl_api_error *err, const char *param, const char *fmt, const char *detail) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, "unsupported_parameter", fmt, detail);
}

/* Joins the text of a content value (a string, or an array of input_text / output_text /
 * refusal parts) into *out, parts separated by a line break as the chat parser does. */
static hl_err parse_content(const json_t *content, const char *param, char **out, hl_api_error *err) {
    *out = NULL;
    if (!content || json_is_null(content)) return hl_strdup(out, "");
    if (json_is_string(content)) return hl_strdup(out, json_string_value(content));
    if (!json_is_array(content))
        return bad(err, param, "Invalid type for '%s': expected a string or an array of content parts.", param);
    hl_buf b;
    hl_buf_init(&b, 0);
    size_t i;
    json_t *part;
    char p[160];
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        snprintf(p, sizeof p, "%s[%zu].type", param, i);
        if (!json_is_object(part) || !type) {
            hl_buf_release(&b);
            return bad(err, p, "Missing required parameter: '%s'.", p);
        }
        const char *field = !strcmp(type, "refusal") ? "refusal" : "text";
        if (strcmp(type, "input_text") && strcmp(type, "output_text") && strcmp(type, "text") &&
            strcmp(type, "refusal")) {
            hl_buf_release(&b);
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, p, "unsupported_content",
                                    "Content parts of type '%.40s' are not supported by this gateway "
                                    "yet; only 'input_text' and 'output_text' parts are.", type);
        }
        const json_t *text = json_object_get(part, field);
        if (!json_is_string(text)) {
            hl_buf_release(&b);
            snprintf(p, sizeof p, "%s[%zu].%s", param, i, field);
            return bad(err, p, "Invalid type for '%s': expected a string.", p);
        }
        if ((b.len && hl_buf_puts(&b, "\n")) || hl_buf_append(&b, json_string_value(text), json_string_length(text))) {
            hl_buf_release(&b);
            return HL_ERR_NOMEM;
        }
    }
    if (!b.data) return hl_strdup(out, "");
    *out = hl_buf_steal(&b);
    return HL_OK;
}

/* A required non-empty string field of an input item. */
static const char *item_str(const json_t *item, size_t i, const char *key, hl_api_error *err, hl_err *rc) {
    const json_t *v = json_object_get(item, key);
    if (json_is_string(v) && json_string_length(v)) return json_string_value(v);
    char p[64];
    snprintf(p, sizeof p, "input[%zu].%s", i, key);
    *rc = v ? bad(err, p, "Invalid type for '%s': expected a non-empty string.", p)
            : bad(err, p, "Missing required parameter: '%s'.", p);
    return NULL;
}

static hl_message *next_message(hl_chat_request *req, hl_role role) {
    hl_message *m = &req->messages[req->n_messages++];
    m->role = role;
    return m;
}

static hl_err parse_message_item(const json_t *item, size_t i, hl_chat_request *req, hl_api_error *err) {
    char p[64];
    snprintf(p, sizeof p, "input[%zu].role", i);
    const char *role = json_string_value(json_object_get(item, "role"));
    if (!role) return bad(err, p, "Missing required parameter: '%s'.", p);
    hl_role r;
    if (!strcmp(role, "system") || !strcmp(role, "developer")) r = HL_ROLE_SYSTEM;
    else if (!strcmp(role, "user")) r = HL_ROLE_USER;
    else if (!strcmp(role, "assistant")) r = HL_ROLE_ASSISTANT;
    else
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, p, NULL,
                                "Invalid value for '%s': '%.40s'. Supported values are: 'user', "
                                "'assistant', 'system' and 'developer'.", p, role);
    snprintf(p, sizeof p, "input[%zu].content", i);
    const json_t *content = json_object_get(item, "content");
    if (!content) return bad(err, p, "Missing required parameter: '%s'.", p);
    hl_message *m = next_message(req, r);
    HL_TRY(parse_content(content, p, &m->text, err));
    req->text_bytes += strlen(m->text);
    return HL_OK;
}

/* A function_call item: a tool call of the assistant turn just before it when there is one
 * (a message and its parallel calls are one chat turn), else of a new assistant turn. */
static hl_err parse_function_call(const json_t *item, size_t i, hl_chat_request *req, hl_api_error *err) {
    hl_err rc = HL_OK;
    const char *call_id = item_str(item, i, "call_id", err, &rc);
    if (!call_id) return rc;
    const char *name = item_str(item, i, "name", err, &rc);
    if (!name) return rc;
    const json_t *args = json_object_get(item, "arguments");
    if (args && !json_is_string(args)) {
        char p[64];
        snprintf(p, sizeof p, "input[%zu].arguments", i);
        return bad(err, p, "Invalid type for '%s': expected a string of JSON.", p);
    }
    hl_message *m = req->n_messages ? &req->messages[req->n_messages - 1] : NULL;
    if (!m || m->role != HL_ROLE_ASSISTANT) {
        m = next_message(req, HL_ROLE_ASSISTANT);
        HL_TRY(hl_strdup(&m->text, ""));
    }
    hl_tool_call *tc = realloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *tc);
    if (!tc) return HL_ERR_NOMEM;
    m->tool_calls = tc;
    tc = &m->tool_calls[m->n_tool_calls++];
    memset(tc, 0, sizeof *tc);
    HL_TRY(hl_strdup(&tc->id, call_id));
    HL_TRY(hl_strdup(&tc->name, name));
    return hl_strdup(&tc->arguments, args && json_string_length(args) ? json_string_value(args) : "{}");
}

static hl_err parse_function_call_output(const json_t *item, size_t i, hl_chat_request *req,
                                         hl_api_error *err) {
    hl_err rc = HL_OK;
    const char *call_id = item_str(item, i, "call_id", err, &rc);
    if (!call_id) return rc;
    char p[64];
    snprintf(p, sizeof p, "input[%zu].output", i);
    const json_t *output = json_object_get(item, "output");
    if (!output) return bad(err, p, "Missing required parameter: '%s'.", p);
    hl_message *m = next_message(req, HL_ROLE_TOOL);
    HL_TRY(hl_strdup(&m->tool_call_id, call_id));
    HL_TRY(parse_content(output, p, &m->text, err));
    req->text_bytes += strlen(m->text);
    return HL_OK;
}

static hl_err parse_input(const json_t *input, hl_chat_request *req, hl_api_error *err) {
    if (!input || json_is_null(input)) return bad(err, "input", "Missing required parameter: '%s'.", "input");
    if (json_is_string(input)) {
        hl_message *m = next_message(req, HL_ROLE_USER);
        HL_TRY(hl_strdup(&m->text, json_string_value(input)));
        req->text_bytes += strlen(m->text);
        return HL_OK;
    }
    if (!json_is_array(input))
        return bad(err, "input", "Invalid type for '%s': expected a string or an array of input items.", "input");
    size_t i;
    const json_t *item;
    char p[64];
    json_array_foreach(input, i, item) {
        snprintf(p, sizeof p, "input[%zu]", i);
        if (!json_is_object(item)) return bad(err, p, "Invalid type for '%s': expected an object.", p);
        const json_t *tv = json_object_get(item, "type");
        const char *type = json_string_value(tv);
        if (tv && !type) {
            snprintf(p, sizeof p, "input[%zu].type", i);
            return bad(err, p, "Invalid type for '%s': expected a string.", p);
        }
        if (!type || !strcmp(type, "message")) HL_TRY(parse_message_item(item, i, req, err));
        else if (!strcmp(type, "function_call")) HL_TRY(parse_function_call(item, i, req, err));
        else if (!strcmp(type, "function_call_output")) HL_TRY(parse_function_call_output(item, i, req, err));
        else if (!strcmp(type, "reasoning")) continue; /* a model's own notes: no backend here reads them back */
        else {
            snprintf(p, sizeof p, "input[%zu].type", i);
            if (!strcmp(type, "item_reference"))
                return unsupported(err, p, "Input items of type '%s' need responses stored by the "
                                   "server; this gateway is stateless: send the items themselves.",
                                   "item_reference");
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, p, "unsupported_parameter",
                                    "Input items of type '%.40s' are not supported by this gateway; "
                                    "it takes 'message', 'function_call' and 'function_call_output'.", type);
        }
    }
    return HL_OK;
}

/* Flat Responses function tools ({type, name, description, parameters, strict}) become chat
 * tools ({type, function: {name, description, parameters, strict}}). */
static hl_err parse_tools(const json_t *tools, hl_chat_request *req, hl_api_error *err) {
    if (!json_is_array(tools)) return bad(err, "tools", "Invalid type for '%s': expected an array.", "tools");
    if (!json_array_size(tools)) return HL_OK;
    json_t *out = json_array();
    if (!out) return HL_ERR_NOMEM;
    req->tools = out;
    size_t i;
    const json_t *t;
    char p[64];
    static const char *const fn_keys[] = {"name", "description", "parameters", "strict", NULL};
    json_array_foreach(tools, i, t) {
        snprintf(p, sizeof p, "tools[%zu]", i);
        if (!json_is_object(t)) return bad(err, p, "Invalid type for '%s': expected an object.", p);
        const char *type = json_string_value(json_object_get(t, "type"));
        snprintf(p, sizeof p, "tools[%zu].type", i);
        if (!type) return bad(err, p, "Missing required parameter: '%s'.", p);
        if (strcmp(type, "function"))
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, p, "unsupported_parameter",
                                    "Tools of type '%.40s' are not supported by this gateway; only "
                                    "'function' tools are.", type);
        const json_t *name = json_object_get(t, "name");
        snprintf(p, sizeof p, "tools[%zu].name", i);
        if (!json_is_string(name) || !json_string_length(name))
            return bad(err, p, "Missing required parameter: '%s'.", p);
        json_t *fn = json_object(), *wrap = json_object();
        if (!fn || !wrap || json_array_append_new(out, wrap)) {
            json_decref(fn);
            json_decref(wrap);
            return HL_ERR_NOMEM;
        }
        if (json_object_set_new(wrap, "type", json_string("function")) || json_object_set_new(wrap, "function", fn))
            return HL_ERR_NOMEM;
        for (int k = 0; fn_keys[k]; k++) {
            json_t *v = json_object_get(t, fn_keys[k]);
            if (v && !json_is_null(v) && json_object_set(fn, fn_keys[k], v)) return HL_ERR_NOMEM;
        }
    }
    return HL_OK;
}

static hl_err parse_tool_choice(const json_t *v, hl_chat_request *req, hl_api_error *err) {
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "none") && strcmp(s, "auto") && strcmp(s, "required"))
            return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "tool_choice", NULL,
                                    "Invalid value for 'tool_choice': '%.40s'. Supported values are: "
                                    "'none', 'auto' and 'required'.", s);
        req->tool_choice = json_incref((json_t *)v);
        return HL_OK;
    }
    const char *type = json_string_value(json_object_get(v, "type"));
    const char *name = json_string_value(json_object_get(v, "name"));
    if (!json_is_object(v) || !type || strcmp(type, "function"))
        return unsupported(err, "tool_choice", "Invalid '%s': expected 'none', 'auto', 'required' or "
                           "{\"type\": \"function\", \"name\": ...}.", "tool_choice");
    if (!name || !name[0]) return bad(err, "tool_choice.name", "Missing required parameter: '%s'.", "tool_choice.name");
    req->tool_choice = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
    return req->tool_choice ? HL_OK : HL_ERR_NOMEM;
}

/* text.format becomes the chat response_format: json_schema keeps name, schema, strict and
 * description under "json_schema"; "text" is the default and sends nothing. */
static hl_err parse_text(const json_t *text, hl_chat_request *req, hl_api_error *err) {
    if (!json_is_object(text)) return bad(err, "text", "Invalid type for '%s': expected an object.", "text");
    const json_t *fmt = json_object_get(text, "format");
    if (!fmt || json_is_null(fmt)) return HL_OK;
    const char *type = json_string_value(json_object_get(fmt, "type"));
    if (!json_is_object(fmt) || !type)
        return bad(err, "text.format.type", "Missing required parameter: '%s'.", "text.format.type");
    if (!strcmp(type, "text")) return HL_OK;
    json_t *rf;
    if (!strcmp(type, "json_object")) {
        rf = json_pack("{s:s}", "type", "json_object");
    } else if (!strcmp(type, "json_schema")) {
        const json_t *name = json_object_get(fmt, "name"), *schema = json_object_get(fmt, "schema");
        if (!json_is_string(name) || !json_string_length(name))
            return bad(err, "text.format.name", "Missing required parameter: '%s'.", "text.format.name");
        if (!json_is_object(schema))
            return bad(err, "text.format.schema", "Missing required parameter: '%s'.", "text.format.schema");
        json_t *js = json_pack("{s:O, s:O}", "name", name, "schema", schema);
        const json_t *strict = json_object_get(fmt, "strict"), *desc = json_object_get(fmt, "description");
        if (js && json_is_boolean(strict)) json_object_set(js, "strict", (json_t *)strict);
        if (js && json_is_string(desc)) json_object_set(js, "description", (json_t *)desc);
        rf = js ? json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js) : NULL;
    } else {
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "text.format.type", NULL,
                                "Invalid value for 'text.format.type': '%.40s'. Supported values are: "
                                "'text', 'json_object' and 'json_schema'.", type);
    }
    if (!rf || json_object_set_new(req->passthrough, "response_format", rf)) return HL_ERR_NOMEM;
    return HL_OK;
}

static hl_err parse_number(const json_t *v, const char *param, double lo, double hi, double *out,
                           hl_api_error *err) {
    if (!json_is_number(v)) return bad(err, param, "Invalid type for '%s': expected a number.", param);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL,
                                "Invalid '%s': %g is out of range [%g, %g].", param, d, lo, hi);
    *out = d;
    return HL_OK;
}

/* Fields that need state kept by the server, or work this gateway does not do: refused when
 * set (null and false pass). */
static const char *const refused_fields[] = {"previous_response_id", "conversation", "background", "prompt", NULL};

static hl_err parse_body(const json_t *root, hl_chat_request *req, hl_api_error *err) {
    const json_t *v = json_object_get(root, "model");
    if (!v) return bad(err, "model", "Missing required parameter: '%s'.", "model");
    if (!json_is_string(v) || !json_string_length(v))
        return bad(err, "model", "Invalid type for '%s': expected a non-empty string.", "model");
    HL_TRY(hl_strdup(&req->model, json_string_value(v)));
    for (int i = 0; refused_fields[i]; i++) {
        v = json_object_get(root, refused_fields[i]);
        if (!v || json_is_null(v) || json_is_false(v)) continue;
        if (!strcmp(refused_fields[i], "previous_response_id"))
            return unsupported(err, "previous_response_id", "'%s' is not supported: this gateway keeps no "
                               "responses (it is stateless, as with store: false). Send the whole "
                               "conversation in 'input' instead.", "previous_response_id");
        return unsupported(err, refused_fields[i], "'%s' is not supported by this gateway (it keeps no "
                           "server-side state).", refused_fields[i]);
    }
    if ((v = json_object_get(root, "store")) && !json_is_null(v) && !json_is_boolean(v))
        return bad(err, "store", "Invalid type for '%s': expected a boolean.", "store");

    req->passthrough = json_object();
    if (!req->passthrough) return HL_ERR_NOMEM;
    const json_t *input = json_object_get(root, "input");
    const json_t *instr = json_object_get(root, "instructions");
    if (instr && !json_is_null(instr) && !json_is_string(instr))
        return bad(err, "instructions", "Invalid type for '%s': expected a string.", "instructions");
    size_t cap = (json_is_array(input) ? json_array_size(input) : 1) + 1;
    req->messages = calloc(cap, sizeof *req->messages);
    if (!req->messages) return HL_ERR_NOMEM;
    if (json_is_string(instr) && json_string_length(instr)) {
        hl_message *m = next_message(req, HL_ROLE_SYSTEM);
        HL_TRY(hl_strdup(&m->text, json_string_value(instr)));
        req->text_bytes += strlen(m->text);
    }
    HL_TRY(parse_input(input, req, err));
    bool conversation = false;
    for (size_t i = 0; i < req->n_messages; i++) conversation |= req->messages[i].role != HL_ROLE_SYSTEM;
    if (!conversation)
        return bad(err, "input", "Invalid '%s': it holds no user, assistant or tool item to answer.", "input");

    if ((v = json_object_get(root, "max_output_tokens")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return bad(err, "max_output_tokens", "Invalid '%s': expected an integer >= 1.", "max_output_tokens");
        req->max_tokens = json_integer_value(v) > 1000000000 ? 1000000000 : (long)json_integer_value(v);
    }
    if ((v = json_object_get(root, "temperature")) && !json_is_null(v)) {
        HL_TRY(parse_number(v, "temperature", 0, 2, &req->temperature, err));
        req->has_temperature = true;
    }
    if ((v = json_object_get(root, "top_p")) && !json_is_null(v)) {
        HL_TRY(parse_number(v, "top_p", 0, 1, &req->top_p, err));
        req->has_top_p = true;
    }
    if ((v = json_object_get(root, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) return bad(err, "stream", "Invalid type for '%s': expected a boolean.", "stream");
        req->stream = json_is_true(v);
        req->include_usage = req->stream; /* response.completed always carries usage */
    }
    if ((v = json_object_get(root, "tools")) && !json_is_null(v)) HL_TRY(parse_tools(v, req, err));
    if ((v = json_object_get(root, "tool_choice")) && !json_is_null(v)) HL_TRY(parse_tool_choice(v, req, err));
    if ((v = json_object_get(root, "text")) && !json_is_null(v)) HL_TRY(parse_text(v, req, err));
    if ((v = json_object_get(root, "reasoning")) && !json_is_null(v)) {
        if (!json_is_object(v)) return bad(err, "reasoning", "Invalid type for '%s': expected an object.", "reasoning");
        const json_t *effort = json_object_get(v, "effort");
        if (json_is_string(effort) && json_object_set(req->passthrough, "reasoning_effort", (json_t *)effort))
            return HL_ERR_NOMEM;
    }
    if ((v = json_object_get(root, "parallel_tool_calls")) && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return bad(err, "parallel_tool_calls", "Invalid type for '%s': expected a boolean.", "parallel_tool_calls");
        if (json_object_set(req->passthrough, "parallel_tool_calls", (json_t *)v)) return HL_ERR_NOMEM;
    }
    if ((v = json_object_get(root, "user")) && json_is_string(v) && json_object_set(req->passthrough, "user", (json_t *)v))
        return HL_ERR_NOMEM;
    if ((v = json_object_get(root, "metadata"))) HL_TRY(hl_chat_parse_metadata(v, req, err));
    /* include, truncation, service_tier, prompt_cache_key, safety_identifier, store, ...:
     * accepted; they change nothing a stateless translation through chat could honour. */
    return HL_OK;
}

hl_err hl_responses_parse_request(const char *body, size_t len, hl_chat_request *req, hl_api_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, NULL, NULL,
                                "We could not parse the JSON body of your request: %s (at byte %d).",
                                jerr.text, jerr.position);
    hl_err rc = json_is_object(root) ? parse_body(root, req, err)
                                     : bad(err, NULL, "%s", "The request body must be a JSON object.");
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ rendering */

/* "resp_X" -> "X": the part item ids share with their response. */
static const char *id_base(const char *id) {
    if (!id) return "";
    return strncmp(id, "resp_", 5) ? id : id + 5;
}

/* An output item's id: prefix + the response id's base + "_" + its output index. */
static hl_err put_item_id(hl_buf *b, const char *prefix, const char *resp_id, int index) {
    char id[160];
    int n = snprintf(id, sizeof id, "%s%s_%d", prefix, id_base(resp_id), index);
    return hl_buf_json_str(b, id, n < 0 ? 0 : (size_t)n < sizeof id ? (size_t)n : sizeof id - 1);
}

static hl_err put_usage(hl_buf *b, const hl_usage *u) {
    HL_TRY(hl_buf_puts(b, "{\"input_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->input_tokens));
    HL_TRY(hl_buf_puts(b, ",\"input_tokens_details\":{\"cached_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->cached_input_tokens));
    HL_TRY(hl_buf_puts(b, "},\"output_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->output_tokens));
    HL_TRY(hl_buf_puts(b, ",\"output_tokens_details\":{\"reasoning_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->reasoning_tokens));
    HL_TRY(hl_buf_puts(b, "},\"total_tokens\":"));
    HL_TRY(hl_buf_i64(b, u->input_tokens + u->output_tokens));
    return hl_buf_puts(b, "}");
}

/* A message output item with one output_text part. */
static hl_err put_message_item(hl_buf *b, const char *resp_id, int index, const char *status,
                               const char *text, size_t len, bool with_part) {
    HL_TRY(hl_buf_puts(b, "{\"id\":"));
    HL_TRY(put_item_id(b, "msg_", resp_id, index));
    HL_TRY(hl_buf_printf(b, ",\"type\":\"message\",\"status\":\"%s\",\"content\":[", status));
    if (with_part) {
        HL_TRY(hl_buf_puts(b, "{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":"));
        HL_TRY(hl_buf_json_str(b, text ? text : "", text ? len : 0));
        HL_TRY(hl_buf_puts(b, "}"));
    }
    return hl_buf_puts(b, "],\"role\":\"assistant\"}");
}

static hl_err put_function_call_item(hl_buf *b, const char *resp_id, int index, const char *status,
                                     const char *call_id, const char *name, const char *args, size_t len) {
    HL_TRY(hl_buf_puts(b, "{\"id\":"));
    HL_TRY(put_item_id(b, "fc_", resp_id, index));
    HL_TRY(hl_buf_puts(b, ",\"type\":\"function_call\",\"status\":"));
    HL_TRY(hl_json_put_str(b, status));
    HL_TRY(hl_buf_puts(b, ",\"arguments\":"));
    HL_TRY(hl_buf_json_str(b, args ? args : "", args ? len : 0));
    HL_TRY(hl_buf_puts(b, ",\"call_id\":"));
    HL_TRY(hl_json_put_str(b, call_id));
    HL_TRY(hl_buf_puts(b, ",\"name\":"));
    HL_TRY(hl_json_put_str(b, name));
    return hl_buf_puts(b, "}");
}

/* The response object. output_json is the items' JSON without brackets; usage NULL renders
 * null; err non-NULL renders the failure. The request's parameters are not echoed: the fields
 * the SDK types require (instructions, tools, tool_choice, temperature, top_p, metadata) carry
 * neutral values, and optional ones (text, reasoning, store) are left out rather than guessed. */
static hl_err put_response(hl_buf *b, const char *id, long created, const char *model, hl_finish finish,
                           bool in_progress, const char *output_json, size_t output_len, const hl_usage *usage,
                           const hl_api_error *err) {
    const char *incomplete = finish == HL_FINISH_LENGTH           ? "max_output_tokens"
                             : finish == HL_FINISH_CONTENT_FILTER ? "content_filter"
                                                                  : NULL;
    const char *status = err ? "failed" : in_progress ? "in_progress" : incomplete ? "incomplete" : "completed";
    HL_TRY(hl_buf_puts(b, "{\"id\":"));
    HL_TRY(hl_json_put_str(b, id));
    HL_TRY(hl_buf_puts(b, ",\"object\":\"response\",\"created_at\":"));
    HL_TRY(hl_buf_i64(b, created));
    HL_TRY(hl_buf_printf(b, ",\"status\":\"%s\",\"background\":false,\"error\":", status));
    if (err) {
        HL_TRY(hl_buf_puts(b, "{\"code\":"));
        HL_TRY(hl_json_put_str(b, err->code[0] ? err->code : "server_error"));
        HL_TRY(hl_buf_puts(b, ",\"message\":"));
        HL_TRY(hl_json_put_str(b, err->message));
        HL_TRY(hl_buf_puts(b, "}"));
    } else {
        HL_TRY(hl_buf_puts(b, "null"));
    }
    HL_TRY(hl_buf_puts(b, ",\"incomplete_details\":"));
    if (incomplete && !in_progress && !err) HL_TRY(hl_buf_printf(b, "{\"reason\":\"%s\"}", incomplete));
    else HL_TRY(hl_buf_puts(b, "null"));
    HL_TRY(hl_buf_puts(b, ",\"instructions\":null,\"max_output_tokens\":null,\"model\":"));
    HL_TRY(hl_json_put_str(b, model ? model : ""));
    HL_TRY(hl_buf_puts(b, ",\"output\":["));
    if (output_len) HL_TRY(hl_buf_append(b, output_json, output_len));
    HL_TRY(hl_buf_puts(b, "],\"parallel_tool_calls\":true,\"previous_response_id\":null,\"temperature\":null,"
                          "\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":null,\"truncation\":\"disabled\","
                          "\"usage\":"));
    if (usage) HL_TRY(put_usage(b, usage));
    else HL_TRY(hl_buf_puts(b, "null"));
    return hl_buf_puts(b, ",\"metadata\":{}}");
}

hl_err hl_responses_write_response(hl_buf *out, const hl_chat_response *resp, const char *id, long created) {
    hl_buf items;
    hl_buf_init(&items, 0);
    hl_err rc = HL_OK;
    int n = 0;
    /* A message item unless the answer is tool calls alone. */
    /* The last item is the one a max_output_tokens cut left incomplete. */
    const char *last = resp->finish == HL_FINISH_LENGTH ? "incomplete" : "completed";
    if ((resp->text && resp->text[0]) || !resp->n_tool_calls)
        rc = put_message_item(&items, id, n++, resp->n_tool_calls ? "completed" : last, resp->text,
                              resp->text ? strlen(resp->text) : 0, true);
    for (size_t i = 0; !rc && i < resp->n_tool_calls; i++) {
        const hl_tool_call *tc = &resp->tool_calls[i];
        if (n) rc = hl_buf_puts(&items, ",");
        if (!rc)
            rc = put_function_call_item(&items, id, n++, i + 1 == resp->n_tool_calls ? last : "completed", tc->id,
                                        tc->name, tc->arguments, tc->arguments ? strlen(tc->arguments) : 0);
    }
    if (!rc)
        rc = put_response(out, id, created, resp->model, resp->finish, false, items.data, items.len, &resp->usage, NULL);
    hl_buf_release(&items);
    return rc;
}

/* Chat parameter names a backend's check may report, in Responses terms; a message, when
 * set, goes before the backend's own. */
static const struct {
    const char *chat, *responses, *message;
} param_names[] = {
    {"max_tokens", "max_output_tokens", NULL},
    {"max_completion_tokens", "max_output_tokens", NULL},
    {"messages", "input", NULL},
    {"response_format", "text.format",
     "'text.format' other than 'text' (json_schema, json_object) cannot be honoured by the backend this "
     "request was routed to; send it to an OpenAI-compatible backend, or ask for plain text. The "
     "backend said: "},
    {"reasoning_effort", "reasoning.effort", NULL},
};

hl_err hl_responses_write_error(hl_buf *out, const hl_api_error *err) {
    hl_api_error e = *err;
    for (size_t i = 0; i < sizeof param_names / sizeof param_names[0]; i++) {
        if (strcmp(e.param, param_names[i].chat)) continue;
        snprintf(e.param, sizeof e.param, "%s", param_names[i].responses);
        if (param_names[i].message)
            snprintf(e.message, sizeof e.message, "%s%.*s", param_names[i].message, 700, err->message);
        break;
    }
    return hl_openai_write_error(out, &e);
}

/* ------------------------------------------------------------------ stream encoder */

void hl_responses_encoder_init(hl_responses_encoder *enc, const char *id, const char *model, long created) {
    memset(enc, 0, sizeof *enc);
    enc->id = id;
    snprintf(enc->model, sizeof enc->model, "%s", model ? model : "");
    enc->created = created;
    hl_buf_init(&enc->text, 0);
    hl_buf_init(&enc->done_items, 0);
}

void hl_responses_encoder_release(hl_responses_encoder *enc) {
    free(enc->fc_call_id);
    free(enc->fc_name);
    hl_buf_release(&enc->text);
    hl_buf_release(&enc->done_items);
    enc->fc_call_id = enc->fc_name = NULL;
}

/* Opens an event: "event: <type>\ndata: {"type":"<type>","sequence_number":N". */
static hl_err ev_open(hl_responses_encoder *enc, hl_buf *out, const char *type) {
    HL_TRY(hl_buf_printf(out, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":", type, type));
    return hl_buf_i64(out, enc->seq++);
}

static hl_err ev_close(hl_buf *out) { return hl_buf_puts(out, "}\n\n"); }

static hl_err ev_response(hl_responses_encoder *enc, hl_buf *out, const char *type, bool in_progress,
                          const hl_usage *usage, const hl_api_error *err) {
    HL_TRY(ev_open(enc, out, type));
    HL_TRY(hl_buf_puts(out, ",\"response\":"));
    HL_TRY(put_response(out, enc->id, enc->created, enc->model, enc->finish, in_progress,
                        in_progress ? NULL : enc->done_items.data, in_progress ? 0 : enc->done_items.len, usage,
                        err));
    return ev_close(out);
}

static hl_err ensure_started(hl_responses_encoder *enc, hl_buf *out) {
    if (enc->started) return HL_OK;
    enc->started = true;
    HL_TRY(ev_response(enc, out, "response.created", true, NULL, NULL));
    return ev_response(enc, out, "response.in_progress", true, NULL, NULL);
}

/* `,"item_id":"...","output_index":N` of the open item. */
static hl_err put_item_ref(hl_responses_encoder *enc, hl_buf *out, const char *prefix) {
    HL_TRY(hl_buf_puts(out, ",\"item_id\":"));
    HL_TRY(put_item_id(out, prefix, enc->id, enc->n_items - 1));
    return hl_buf_printf(out, ",\"output_index\":%d", enc->n_items - 1);
}

/* Ends the open item: its .done events, and its final JSON kept for response.completed. */
static hl_err close_item(hl_responses_encoder *enc, hl_buf *out) {
    int idx = enc->n_items - 1;
    hl_buf *done = &enc->done_items;
    if (enc->open == 0) return HL_OK;
    if (done->len) HL_TRY(hl_buf_puts(done, ","));
    size_t start = done->len; /* where this item's JSON begins in done_items */
    const char *text = enc->text.data ? enc->text.data : "";
    /* Only the stream's end knows the finish: an item cut by max_output_tokens is incomplete. */
    const char *status = enc->finish == HL_FINISH_LENGTH ? "incomplete" : "completed";
    if (enc->open == 1) {
        HL_TRY(ev_open(enc, out, "response.output_text.done"));
        HL_TRY(put_item_ref(enc, out, "msg_"));
        HL_TRY(hl_buf_puts(out, ",\"content_index\":0,\"logprobs\":[],\"text\":"));
        HL_TRY(hl_buf_json_str(out, text, enc->text.len));
        HL_TRY(ev_close(out));
        HL_TRY(ev_open(enc, out, "response.content_part.done"));
        HL_TRY(put_item_ref(enc, out, "msg_"));
        HL_TRY(hl_buf_puts(out, ",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"annotations\":[],"
                                "\"logprobs\":[],\"text\":"));
        HL_TRY(hl_buf_json_str(out, text, enc->text.len));
        HL_TRY(hl_buf_puts(out, "}"));
        HL_TRY(ev_close(out));
        HL_TRY(put_message_item(done, enc->id, idx, status, text, enc->text.len, true));
    } else {
        HL_TRY(ev_open(enc, out, "response.function_call_arguments.done"));
        HL_TRY(put_item_ref(enc, out, "fc_"));
        HL_TRY(hl_buf_puts(out, ",\"name\":"));
        HL_TRY(hl_json_put_str(out, enc->fc_name));
        HL_TRY(hl_buf_puts(out, ",\"arguments\":"));
        HL_TRY(hl_buf_json_str(out, text, enc->text.len));
        HL_TRY(ev_close(out));
        HL_TRY(put_function_call_item(done, enc->id, idx, status, enc->fc_call_id, enc->fc_name, text,
                                      enc->text.len));
    }
    HL_TRY(ev_open(enc, out, "response.output_item.done"));
    HL_TRY(hl_buf_printf(out, ",\"output_index\":%d,\"item\":", idx));
    HL_TRY(hl_buf_append(out, done->data + start, done->len - start));
    HL_TRY(ev_close(out));
    enc->open = 0;
    hl_buf_reset(&enc->text);
    return HL_OK;
}

static hl_err open_message(hl_responses_encoder *enc, hl_buf *out) {
    HL_TRY(close_item(enc, out));
    int idx = enc->n_items++;
    enc->open = 1;
    HL_TRY(ev_open(enc, out, "response.output_item.added"));
    HL_TRY(hl_buf_printf(out, ",\"output_index\":%d,\"item\":", idx));
    HL_TRY(put_message_item(out, enc->id, idx, "in_progress", NULL, 0, false));
    HL_TRY(ev_close(out));
    HL_TRY(ev_open(enc, out, "response.content_part.added"));
    HL_TRY(put_item_ref(enc, out, "msg_"));
    HL_TRY(hl_buf_puts(out, ",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"annotations\":[],"
                            "\"logprobs\":[],\"text\":\"\"}"));
    return ev_close(out);
}

static hl_err open_function_call(hl_responses_encoder *enc, hl_buf *out, const hl_stream_event *ev) {
    HL_TRY(close_item(enc, out));
    free(enc->fc_call_id);
    free(enc->fc_name);
    enc->fc_call_id = enc->fc_name = NULL;
    HL_TRY(hl_strdup(&enc->fc_call_id, ev->tool_id ? ev->tool_id : ""));
    HL_TRY(hl_strdup(&enc->fc_name, ev->tool_name ? ev->tool_name : ""));
    int idx = enc->n_items++;
    enc->open = 2;
    enc->fc_index = ev->index;
    HL_TRY(ev_open(enc, out, "response.output_item.added"));
    HL_TRY(hl_buf_printf(out, ",\"output_index\":%d,\"item\":", idx));
    HL_TRY(put_function_call_item(out, enc->id, idx, "in_progress", enc->fc_call_id, enc->fc_name, "", 0));
    return ev_close(out);
}

hl_err hl_responses_encode_event(hl_responses_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    if (enc->ended) return HL_OK;
    switch (ev->type) {
    case HL_EV_START:
        if (ev->model && ev->model[0]) snprintf(enc->model, sizeof enc->model, "%s", ev->model);
        return ensure_started(enc, out);
    case HL_EV_TEXT:
        if (!ev->text_len) return HL_OK;
        HL_TRY(ensure_started(enc, out));
        if (enc->open != 1) HL_TRY(open_message(enc, out));
        HL_TRY(hl_buf_append(&enc->text, ev->text, ev->text_len));
        HL_TRY(ev_open(enc, out, "response.output_text.delta"));
        HL_TRY(put_item_ref(enc, out, "msg_"));
        HL_TRY(hl_buf_puts(out, ",\"content_index\":0,\"delta\":"));
        HL_TRY(hl_buf_json_str(out, ev->text, ev->text_len));
        HL_TRY(hl_buf_puts(out, ",\"logprobs\":[]"));
        return ev_close(out);
    case HL_EV_TOOL_CALL:
        HL_TRY(ensure_started(enc, out));
        /* A call's first fragment (it carries the id) opens its item; some servers repeat the
         * id on every fragment, so only a different id or index is a new call. */
        if (enc->open != 2 ||
            (ev->tool_id && (ev->index != enc->fc_index || strcmp(ev->tool_id, enc->fc_call_id))))
            HL_TRY(open_function_call(enc, out, ev));
        if (!ev->text || !ev->text_len) return HL_OK;
        HL_TRY(hl_buf_append(&enc->text, ev->text, ev->text_len));
        HL_TRY(ev_open(enc, out, "response.function_call_arguments.delta"));
        HL_TRY(put_item_ref(enc, out, "fc_"));
        HL_TRY(hl_buf_puts(out, ",\"delta\":"));
        HL_TRY(hl_buf_json_str(out, ev->text, ev->text_len));
        return ev_close(out);
    case HL_EV_FINISH:
        if (ev->finish != HL_FINISH_NONE) enc->finish = ev->finish;
        return HL_OK;
    case HL_EV_USAGE:
    case HL_EV_LOGPROBS:
    case HL_EV_ERROR:
    case HL_EV_DONE:
        return HL_OK;
    }
    return HL_OK;
}

hl_err hl_responses_encode_end(hl_responses_encoder *enc, const hl_usage *usage, hl_buf *out) {
    if (enc->ended) return HL_OK;
    HL_TRY(ensure_started(enc, out));
    /* An answer with no output at all still gets its (empty) message, as non-streaming. */
    if (!enc->n_items) HL_TRY(open_message(enc, out));
    HL_TRY(close_item(enc, out));
    enc->ended = true;
    bool incomplete = enc->finish == HL_FINISH_LENGTH || enc->finish == HL_FINISH_CONTENT_FILTER;
    return ev_response(enc, out, incomplete ? "response.incomplete" : "response.completed", false, usage, NULL);
}

static const char *error_type(hl_api_error_kind k) {
    switch (k) {
    case HL_AE_INVALID_REQUEST:
    case HL_AE_PERMISSION:
    case HL_AE_NOT_FOUND:
    case HL_AE_TOO_LARGE: return "invalid_request_error";
    case HL_AE_AUTHENTICATION: return "authentication_error";
    case HL_AE_RATE_LIMIT: return "rate_limit_error";
    case HL_AE_API: return "api_error";
    case HL_AE_UNAVAILABLE: return "service_unavailable";
    case HL_AE_TIMEOUT: return "timeout";
    case HL_AE_OVERLOADED: return "overloaded_error";
    }
    return "api_error";
}

hl_err hl_responses_encode_error(hl_responses_encoder *enc, const hl_api_error *err, hl_buf *out) {
    if (enc->ended) return HL_OK;
    HL_TRY(ensure_started(enc, out));
    enc->ended = true;
    const char *code = err->code[0] ? err->code : "server_error";
    HL_TRY(ev_open(enc, out, "error"));
    HL_TRY(hl_buf_puts(out, ",\"code\":"));
    HL_TRY(hl_json_put_str(out, code));
    HL_TRY(hl_buf_puts(out, ",\"message\":"));
    HL_TRY(hl_json_put_str(out, err->message));
    HL_TRY(hl_buf_puts(out, ",\"param\":"));
    HL_TRY(err->param[0] ? hl_json_put_str(out, err->param) : hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, ",\"error\":{\"type\":"));
    HL_TRY(hl_json_put_str(out, error_type(err->kind)));
    HL_TRY(hl_buf_puts(out, ",\"code\":"));
    HL_TRY(hl_json_put_str(out, code));
    HL_TRY(hl_buf_puts(out, ",\"message\":"));
    HL_TRY(hl_json_put_str(out, err->message));
    HL_TRY(hl_buf_puts(out, ",\"param\":"));
    HL_TRY(err->param[0] ? hl_json_put_str(out, err->param) : hl_buf_puts(out, "null"));
    HL_TRY(hl_buf_puts(out, "}"));
    HL_TRY(ev_close(out));
    hl_api_error e = *err;
    snprintf(e.code, sizeof e.code, "%s", code);
    return ev_response(enc, out, "response.failed", false, NULL, &e);
}

/* ------------------------------------------------------------------ upstream (native Responses) */

static hl_err put_key(hl_buf *b, const char *key) {
    HL_TRY(hl_buf_puts(b, ","));
    HL_TRY(hl_json_put_str(b, key));
    return hl_buf_puts(b, ":");
}

/* A chat tool {"type":"function","function":{...}} flattened to {"type":"function",...}. */
static hl_err put_flat_tool(hl_buf *b, const json_t *t) {
    const json_t *fn = json_object_get(t, "function");
    if (!json_is_object(fn)) return hl_json_put(b, t);
    HL_TRY(hl_buf_puts(b, "{\"type\":\"function\""));
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)fn, key, v) {
        HL_TRY(put_key(b, key));
        HL_TRY(hl_json_put(b, v));
    }
    return hl_buf_puts(b, "}");
}

static hl_err put_input_message(hl_buf *b, bool *first, const char *role, const char *text) {
    HL_TRY(hl_buf_printf(b, "%s{\"type\":\"message\",\"role\":\"%s\",\"content\":", *first ? "" : ",", role));
    *first = false;
    HL_TRY(hl_json_put_str(b, text));
    return hl_buf_puts(b, "}");
}

/* response_format (chat shape) as text.format (Responses shape: json_schema's fields flat). */
static hl_err put_text_format(hl_buf *b, const json_t *rf) {
    const char *type = json_string_value(json_object_get(rf, "type"));
    const json_t *js = json_object_get(rf, "json_schema");
    if (!type || strcmp(type, "json_schema") || !json_is_object(js)) return hl_json_put(b, rf);
    HL_TRY(hl_buf_puts(b, "{\"type\":\"json_schema\""));
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)js, key, v) {
        HL_TRY(put_key(b, key));
        HL_TRY(hl_json_put(b, v));
    }
    return hl_buf_puts(b, "}");
}

hl_err hl_responses_write_upstream_request(hl_buf *out, const hl_chat_request *req, const char *model) {
    HL_TRY(hl_buf_puts(out, "{\"model\":"));
    HL_TRY(hl_json_put_str(out, model));
    size_t i0 = 0;
    if (req->n_messages && req->messages[0].role == HL_ROLE_SYSTEM) {
        HL_TRY(hl_buf_puts(out, ",\"instructions\":"));
        HL_TRY(hl_json_put_str(out, req->messages[0].text));
        i0 = 1;
    }
    HL_TRY(hl_buf_puts(out, ",\"input\":["));
    bool first = true;
    for (size_t i = i0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        switch (m->role) {
        case HL_ROLE_SYSTEM:
        case HL_ROLE_USER:
            HL_TRY(put_input_message(out, &first, hl_role_name(m->role), m->text));
            break;
        case HL_ROLE_ASSISTANT:
            if (m->text[0] || !m->n_tool_calls) HL_TRY(put_input_message(out, &first, "assistant", m->text));
            for (size_t k = 0; k < m->n_tool_calls; k++) {
                const hl_tool_call *tc = &m->tool_calls[k];
                HL_TRY(hl_buf_puts(out, first ? "{\"type\":\"function_call\",\"call_id\":"
                                              : ",{\"type\":\"function_call\",\"call_id\":"));
                first = false;
                HL_TRY(hl_json_put_str(out, tc->id));
                HL_TRY(hl_buf_puts(out, ",\"name\":"));
                HL_TRY(hl_json_put_str(out, tc->name));
                HL_TRY(hl_buf_puts(out, ",\"arguments\":"));
                HL_TRY(hl_json_put_str(out, tc->arguments && tc->arguments[0] ? tc->arguments : "{}"));
                HL_TRY(hl_buf_puts(out, "}"));
            }
            break;
        case HL_ROLE_TOOL:
            HL_TRY(hl_buf_puts(out, first ? "{\"type\":\"function_call_output\",\"call_id\":"
                                          : ",{\"type\":\"function_call_output\",\"call_id\":"));
            first = false;
            HL_TRY(hl_json_put_str(out, m->tool_call_id));
            HL_TRY(hl_buf_puts(out, ",\"output\":"));
            HL_TRY(hl_json_put_str(out, m->text));
            HL_TRY(hl_buf_puts(out, "}"));
            break;
        }
    }
    HL_TRY(hl_buf_puts(out, "]"));
    if (req->max_tokens > 0) HL_TRY(hl_buf_printf(out, ",\"max_output_tokens\":%ld", req->max_tokens));
    if (req->has_temperature) HL_TRY(hl_buf_printf(out, ",\"temperature\":%.17g", req->temperature));
    if (req->has_top_p) HL_TRY(hl_buf_printf(out, ",\"top_p\":%.17g", req->top_p));
    if (json_is_array(req->tools) && json_array_size(req->tools)) {
        HL_TRY(hl_buf_puts(out, ",\"tools\":["));
        size_t i;
        const json_t *t;
        json_array_foreach(req->tools, i, t) {
            if (i) HL_TRY(hl_buf_puts(out, ","));
            HL_TRY(put_flat_tool(out, t));
        }
        HL_TRY(hl_buf_puts(out, "]"));
    }
    if (req->tool_choice) {
        HL_TRY(hl_buf_puts(out, ",\"tool_choice\":"));
        const char *name = json_string_value(json_object_get(json_object_get(req->tool_choice, "function"), "name"));
        if (name) {
            HL_TRY(hl_buf_puts(out, "{\"type\":\"function\",\"name\":"));
            HL_TRY(hl_json_put_str(out, name));
            HL_TRY(hl_buf_puts(out, "}"));
        } else {
            HL_TRY(hl_json_put(out, req->tool_choice));
        }
    }
    const json_t *rf = json_object_get(req->passthrough, "response_format");
    if (json_is_object(rf)) {
        HL_TRY(hl_buf_puts(out, ",\"text\":{\"format\":"));
        HL_TRY(put_text_format(out, rf));
        HL_TRY(hl_buf_puts(out, "}"));
    }
    const json_t *effort = json_object_get(req->passthrough, "reasoning_effort");
    if (json_is_string(effort)) {
        HL_TRY(hl_buf_puts(out, ",\"reasoning\":{\"effort\":"));
        HL_TRY(hl_json_put(out, effort));
        HL_TRY(hl_buf_puts(out, "}"));
    }
    static const char *const kept[] = {"parallel_tool_calls", "user", NULL};
    for (int k = 0; kept[k]; k++) {
        const json_t *v = json_object_get(req->passthrough, kept[k]);
        if (!v) continue;
        HL_TRY(put_key(out, kept[k]));
        HL_TRY(hl_json_put(out, v));
    }
    if (req->stream) HL_TRY(hl_buf_puts(out, ",\"stream\":true"));
    return hl_buf_puts(out, ",\"store\":false}");
}

static long up_long(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

static void up_usage(const json_t *u, hl_usage *out) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(u)) return;
    out->known = true;
    out->input_tokens = up_long(u, "input_tokens");
    out->output_tokens = up_long(u, "output_tokens");
    out->cached_input_tokens = up_long(json_object_get(u, "input_tokens_details"), "cached_tokens");
    out->reasoning_tokens = up_long(json_object_get(u, "output_tokens_details"), "reasoning_tokens");
}

/* The finish of a response object: incomplete is a cut (content_filter when it says so),
 * else tool calls when it made any, else stop. */
static hl_finish up_finish(const json_t *r, bool calls) {
    const char *status = json_string_value(json_object_get(r, "status"));
    if (status && !strcmp(status, "incomplete")) {
        const char *why = json_string_value(json_object_get(json_object_get(r, "incomplete_details"), "reason"));
        return why && !strcmp(why, "content_filter") ? HL_FINISH_CONTENT_FILTER : HL_FINISH_LENGTH;
    }
    return calls ? HL_FINISH_TOOL_CALLS : HL_FINISH_STOP;
}

hl_err hl_responses_parse_upstream_response(const char *body, size_t len, hl_chat_response *resp) {
    json_t *root = json_loadb(body, len, 0, NULL);
    hl_err rc = HL_ERR_PARSE;
    hl_buf text;
    hl_buf_init(&text, 0);
    const json_t *output = json_object_get(root, "output");
    if (!json_is_object(root) || !json_is_array(output)) goto out;
    if ((rc = hl_strdup(&resp->id, json_string_value(json_object_get(root, "id"))))) goto out;
    if ((rc = hl_strdup(&resp->model, json_string_value(json_object_get(root, "model"))))) goto out;
    resp->created = up_long(root, "created_at");
    size_t n_calls = 0, i;
    const json_t *item;
    json_array_foreach(output, i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        n_calls += type && !strcmp(type, "function_call");
    }
    if (n_calls && !(resp->tool_calls = calloc(n_calls, sizeof *resp->tool_calls))) {
        rc = HL_ERR_NOMEM;
        goto out;
    }
    json_array_foreach(output, i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (!type) continue;
        if (!strcmp(type, "message")) {
            size_t k;
            const json_t *part;
            json_array_foreach(json_object_get(item, "content"), k, part) {
                const char *pt = json_string_value(json_object_get(part, "type"));
                const json_t *t = json_object_get(part, pt && !strcmp(pt, "refusal") ? "refusal" : "text");
                if (!pt || (strcmp(pt, "output_text") && strcmp(pt, "refusal")) || !json_is_string(t)) continue;
                if ((rc = hl_buf_append(&text, json_string_value(t), json_string_length(t)))) goto out;
            }
        } else if (!strcmp(type, "function_call")) {
            hl_tool_call *tc = &resp->tool_calls[resp->n_tool_calls++];
            const char *args = json_string_value(json_object_get(item, "arguments"));
            if ((rc = hl_strdup(&tc->id, json_string_value(json_object_get(item, "call_id")))) ||
                (rc = hl_strdup(&tc->name, json_string_value(json_object_get(item, "name")))) ||
                (rc = hl_strdup(&tc->arguments, args ? args : "")))
                goto out;
        }
    }
    if (text.len || !n_calls) {
        if ((rc = hl_buf_append(&text, "", 1))) goto out;
        if ((rc = hl_strdup(&resp->text, text.data))) goto out;
    }
    resp->finish = up_finish(root, n_calls > 0);
    up_usage(json_object_get(root, "usage"), &resp->usage);
    rc = HL_OK;
out:
    hl_buf_release(&text);
    json_decref(root);
    return rc;
}

void hl_responses_decoder_init(hl_responses_decoder *d) { memset(d, 0, sizeof *d); }

/* e: an error object ({type, code, message}); flat: it is the `error` event itself, whose
 * "type" is the event's name, so its code names the error. */
static int emit_error(const json_t *e, bool flat, hl_stream_sink sink, void *ud) {
    hl_stream_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HL_EV_ERROR;
    ev.text = json_string_value(json_object_get(e, "message"));
    if (!ev.text) ev.text = "upstream stream error";
    ev.text_len = strlen(ev.text);
    ev.error_type = flat ? NULL : json_string_value(json_object_get(e, "type"));
    if (!ev.error_type) ev.error_type = json_string_value(json_object_get(e, "code"));
    return sink(ud, &ev);
}

static int emit_start(hl_responses_decoder *d, const json_t *r, hl_stream_sink sink, void *ud) {
    if (d->started) return 0;
    d->started = true;
    hl_stream_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HL_EV_START;
    ev.id = json_string_value(json_object_get(r, "id"));
    ev.model = json_string_value(json_object_get(r, "model"));
    return sink(ud, &ev);
}

/* The tool index of the function call at output_index, or -1. */
static int call_index(const hl_responses_decoder *d, long output_index) {
    for (int i = 0; i < d->n_calls; i++)
        if (d->call_output_index[i] == output_index) return i;
    return -1;
}

int hl_responses_decode_stream_event(hl_responses_decoder *d, const hl_sse_event *sse, hl_stream_sink sink,
                                     void *ud) {
    json_t *root = json_loadb(sse->data, sse->data_len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return HL_ERR_PARSE;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type) type = sse->event;
    const json_t *r = json_object_get(root, "response");
    hl_stream_event ev;
    memset(&ev, 0, sizeof ev);
    int rc = 0;
    if (!strcmp(type, "error")) {
        const json_t *e = json_object_get(root, "error");
        rc = emit_error(json_is_object(e) ? e : root, !json_is_object(e), sink, ud);
    } else if (!strcmp(type, "response.failed")) {
        const json_t *e = json_object_get(r, "error");
        rc = emit_error(json_is_object(e) ? e : root, !json_is_object(e), sink, ud);
    } else if (!strcmp(type, "response.created") || !strcmp(type, "response.in_progress")) {
        rc = emit_start(d, r, sink, ud);
    } else if (!strcmp(type, "response.output_text.delta")) {
        const json_t *delta = json_object_get(root, "delta");
        if (json_is_string(delta) && json_string_length(delta)) {
            ev.type = HL_EV_TEXT;
            ev.text = json_string_value(delta);
            ev.text_len = json_string_length(delta);
            rc = sink(ud, &ev);
        }
    } else if (!strcmp(type, "response.output_item.added")) {
        const json_t *item = json_object_get(root, "item");
        const char *it = json_string_value(json_object_get(item, "type"));
        if (it && !strcmp(it, "function_call")) {
            if (d->n_calls >= HL_RESPONSES_MAX_CALLS) {
                json_decref(root);
                return HL_ERR_PARSE;
            }
            d->call_output_index[d->n_calls] = (int)up_long(root, "output_index");
            ev.type = HL_EV_TOOL_CALL;
            ev.index = d->n_calls++;
            ev.tool_id = json_string_value(json_object_get(item, "call_id"));
            ev.tool_name = json_string_value(json_object_get(item, "name"));
            const char *args = json_string_value(json_object_get(item, "arguments"));
            ev.text = args ? args : "";
            ev.text_len = strlen(ev.text);
            rc = sink(ud, &ev);
        }
    } else if (!strcmp(type, "response.function_call_arguments.delta")) {
        const json_t *delta = json_object_get(root, "delta");
        int idx = call_index(d, up_long(root, "output_index"));
        if (idx >= 0 && json_is_string(delta) && json_string_length(delta)) {
            ev.type = HL_EV_TOOL_CALL;
            ev.index = idx;
            ev.text = json_string_value(delta);
            ev.text_len = json_string_length(delta);
            rc = sink(ud, &ev);
        }
    } else if (!strcmp(type, "response.completed") || !strcmp(type, "response.incomplete")) {
        if (!(rc = emit_start(d, r, sink, ud))) {
            ev.type = HL_EV_FINISH;
            ev.finish = up_finish(r, d->n_calls > 0);
            rc = sink(ud, &ev);
        }
        if (!rc && json_is_object(json_object_get(r, "usage"))) {
            memset(&ev, 0, sizeof ev);
            ev.type = HL_EV_USAGE;
            up_usage(json_object_get(r, "usage"), &ev.usage);
            rc = sink(ud, &ev);
        }
        if (!rc) {
            memset(&ev, 0, sizeof ev);
            ev.type = HL_EV_DONE;
            rc = sink(ud, &ev);
        }
    }
    json_decref(root);
    return rc;
}
