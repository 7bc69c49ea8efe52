/* hl_completions: legacy text completions in and out (see hl_completions.h). */
#include "hl_completions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ parsing */

static hl_err bad(hl_api_error *err, const char *param, const char *fmt, const char *detail) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL, fmt, detail);
}

static hl_err unsupported(hl_api_error *err, const char *param, const char *msg) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, "unsupported_parameter", "%s", msg);
}

/* The prompt: a string, or an array holding exactly one string. */
static hl_err parse_prompt(const json_t *v, const char **out, size_t *len, hl_api_error *err) {
    if (!v || json_is_null(v)) return bad(err, "prompt", "Missing required parameter: '%s'.", "prompt");
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n == 0) return bad(err, "prompt", "Invalid '%s': expected a non-empty string or array of strings.", "prompt");
        const json_t *first = json_array_get(v, 0);
        if (json_is_integer(first) || json_is_array(first))
            return unsupported(err, "prompt", "Invalid 'prompt': token-array prompts are not supported by this "
                                              "gateway (token ids belong to one model's tokenizer, and the router "
                                              "may pick another model). Send the prompt as text.");
        if (n > 1)
            return unsupported(err, "prompt", "Invalid 'prompt': this gateway serves one prompt per request; "
                                              "send one request per prompt.");
        v = first;
    }
    if (!json_is_string(v))
        return bad(err, "prompt", "Invalid type for '%s': expected a string or an array of strings.", "prompt");
    *out = json_string_value(v);
    *len = json_string_length(v);
    return HL_OK;
}

static hl_err parse_stop(const json_t *v, hl_chat_request *req, hl_api_error *err) {
    if (json_is_null(v)) return HL_OK;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 5;
    if (n > 4) return bad(err, "stop", "Invalid '%s': expected a string or an array of at most 4 strings.", "stop");
    if (!n) return HL_OK;
    req->stop = calloc(n, sizeof *req->stop);
    if (!req->stop) return HL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_is_string(v) ? json_string_value(v) : json_string_value(json_array_get(v, i));
        if (!s) return bad(err, "stop", "Invalid '%s': expected a string or an array of at most 4 strings.", "stop");
        req->n_stop = i + 1;
        HL_TRY(hl_strdup(&req->stop[i], s));
    }
    return HL_OK;
}

static hl_err parse_number(const json_t *v, const char *param, double lo, double hi, double *out, hl_api_error *err) {
    if (!json_is_number(v)) return bad(err, param, "Invalid type for '%s': expected a number.", param);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL, "Invalid '%s': %g is out of range [%g, %g].",
                                param, d, lo, hi);
    *out = d;
    return HL_OK;
}

/* Fields read here; echo and suffix are read and also forwarded (OpenAI-kind backends honour
 * them; the others refuse them in their check). Everything else is forwarded as is. */
static const char *const known_fields[] = {"model", "prompt", "max_tokens", "temperature", "top_p", "stop",
                                           "stream", "stream_options", "n", "best_of", "logprobs", "metadata",
                                           "echo", "suffix", NULL};

static bool is_known(const char *k) {
    for (int i = 0; known_fields[i]; i++)
        if (!strcmp(k, known_fields[i])) return true;
    return false;
}

static hl_err parse_root(const json_t *root, hl_chat_request *req, hl_api_error *err) {
    if (!json_is_object(root)) return bad(err, NULL, "%s", "The request body must be a JSON object.");
    const json_t *v = json_object_get(root, "model");
    if (!v) return bad(err, "model", "Missing required parameter: '%s'.", "model");
    if (!json_is_string(v) || !json_string_length(v))
        return bad(err, "model", "Invalid type for '%s': expected a non-empty string.", "model");
    HL_TRY(hl_strdup(&req->model, json_string_value(v)));
    const char *prompt = NULL;
    size_t plen = 0;
    HL_TRY(parse_prompt(json_object_get(root, "prompt"), &prompt, &plen, err));
    req->messages = calloc(1, sizeof *req->messages);
    if (!req->messages) return HL_ERR_NOMEM;
    req->n_messages = 1;
    req->messages[0].role = HL_ROLE_USER;
    if (!(req->messages[0].text = malloc(plen + 1))) return HL_ERR_NOMEM;
    memcpy(req->messages[0].text, prompt, plen);
    req->messages[0].text[plen] = '\0';
    req->text_bytes = plen;
    req->raw_prompt = true;

    req->max_tokens = 16; /* the API's default */
    if ((v = json_object_get(root, "max_tokens")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return bad(err, "max_tokens", "Invalid '%s': expected an integer >= 1.", "max_tokens");
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
    if ((v = json_object_get(root, "stop"))) HL_TRY(parse_stop(v, req, err));
    if ((v = json_object_get(root, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) return bad(err, "stream", "Invalid type for '%s': expected a boolean.", "stream");
        req->stream = json_is_true(v);
    }
    if ((v = json_object_get(root, "stream_options")) && !json_is_null(v)) {
        if (!json_is_object(v)) return bad(err, "stream_options", "Invalid type for '%s': expected an object.", "stream_options");
        if (!req->stream) return bad(err, "stream_options", "Invalid '%s': only allowed when 'stream' is true.", "stream_options");
        req->include_usage = json_is_true(json_object_get(v, "include_usage"));
    }
    static const char *const one_only[] = {"n", "best_of"};
    for (int i = 0; i < 2; i++) {
        if ((v = json_object_get(root, one_only[i])) && !json_is_null(v) &&
            (!json_is_integer(v) || json_integer_value(v) != 1)) {
            char msg[160];
            snprintf(msg, sizeof msg, "Invalid '%s': this gateway serves one completion per request (%s must be 1).",
                     one_only[i], one_only[i]);
            return unsupported(err, one_only[i], msg);
        }
    }
    if ((v = json_object_get(root, "logprobs")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5)
            return bad(err, "logprobs", "Invalid '%s': expected an integer between 0 and 5.", "logprobs");
        req->logprobs = true;
        req->top_logprobs = (int)json_integer_value(v);
    }
    if ((v = json_object_get(root, "echo")) && !json_is_null(v) && !json_is_boolean(v))
        return bad(err, "echo", "Invalid type for '%s': expected a boolean.", "echo");
    if ((v = json_object_get(root, "suffix")) && !json_is_null(v) && !json_is_string(v))
        return bad(err, "suffix", "Invalid type for '%s': expected a string.", "suffix");
    if ((v = json_object_get(root, "metadata"))) HL_TRY(hl_chat_parse_metadata(v, req, err));

    if (!(req->passthrough = json_object())) return HL_ERR_NOMEM;
    if (json_is_true(json_object_get(root, "echo")) && json_object_set_new(req->passthrough, "echo", json_true()))
        return HL_ERR_NOMEM;
    v = json_object_get(root, "suffix");
    if (json_is_string(v) && json_string_length(v) && json_object_set(req->passthrough, "suffix", (json_t *)v))
        return HL_ERR_NOMEM;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)root, key, val)
        if (!is_known(key) && json_object_set(req->passthrough, key, val)) return HL_ERR_NOMEM;
    return HL_OK;
}

hl_err hl_completions_parse_request(const char *body, size_t len, hl_chat_request *req, hl_api_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, NULL, NULL,
                                "We could not parse the JSON body of your request: %s (at byte %d).", jerr.text,
                                jerr.position);
    hl_err rc = parse_root(root, req, err);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ rendering */

json_t *hl_completions_logprobs(const json_t *entries) {
    if (!json_is_array(entries)) return NULL;
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                          "text_offset", offs);
    if (!o) return NULL;
    size_t i, off = 0;
    const json_t *e;
    json_array_foreach(entries, i, e) {
        const char *tok = json_string_value(json_object_get(e, "token"));
        if (!tok) tok = "";
        json_t *top = json_object();
        size_t k;
        const json_t *t;
        json_array_foreach(json_object_get(e, "top_logprobs"), k, t) {
            const char *tt = json_string_value(json_object_get(t, "token"));
            if (tt && top) json_object_set_new(top, tt, json_real(json_number_value(json_object_get(t, "logprob"))));
        }
        if (json_array_append_new(tokens, json_string(tok)) ||
            json_array_append_new(lps, json_real(json_number_value(json_object_get(e, "logprob")))) ||
            json_array_append_new(tops, top) || json_array_append_new(offs, json_integer((json_int_t)off))) {
            json_decref(o);
            return NULL;
        }
        off += strlen(tok);
    }
    return o;
}

static const char *finish_name(hl_finish f) {
    switch (f) {
    case HL_FINISH_NONE: return NULL;
    case HL_FINISH_LENGTH: return "length";
    case HL_FINISH_CONTENT_FILTER: return "content_filter";
    default: return "stop";
    }
}

static hl_err put_usage(hl_buf *b, const hl_usage *u) {
    return hl_buf_printf(b, "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}", u->input_tokens,
                         u->output_tokens, u->input_tokens + u->output_tokens);
}

/* {"id":..,"object":"text_completion","created":..,"model":.., (the head of every object) */
static hl_err put_head(hl_buf *out, const char *id, long created, const char *model) {
    HL_TRY(hl_buf_puts(out, "{\"id\":"));
    HL_TRY(hl_json_put_str(out, id));
    HL_TRY(hl_buf_printf(out, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", created));
    HL_TRY(hl_json_put_str(out, model ? model : ""));
    return HL_OK;
}

/* One choice: text, index, logprobs (internal entries or NULL), finish_reason. */
static hl_err put_choice(hl_buf *out, const char *text, size_t len, const json_t *entries, hl_finish finish) {
    HL_TRY(hl_buf_puts(out, "{\"text\":"));
    HL_TRY(hl_buf_json_str(out, text ? text : "", text ? len : 0));
    HL_TRY(hl_buf_puts(out, ",\"index\":0,\"logprobs\":"));
    json_t *lp = entries ? hl_completions_logprobs(entries) : NULL;
    hl_err e = lp ? hl_json_put(out, lp) : hl_buf_puts(out, "null");
    json_decref(lp);
    HL_TRY(e);
    const char *fr = finish_name(finish);
    HL_TRY(hl_buf_puts(out, ",\"finish_reason\":"));
    HL_TRY(fr ? hl_json_put_str(out, fr) : hl_buf_puts(out, "null"));
    return hl_buf_puts(out, "}");
}

hl_err hl_completions_write_response(hl_buf *out, const hl_chat_response *resp, const char *id, long created) {
    HL_TRY(put_head(out, id, created, resp->model));
    HL_TRY(hl_buf_puts(out, ",\"choices\":["));
    const json_t *entries = resp->logprobs ? json_object_get(resp->logprobs, "content") : NULL;
    HL_TRY(put_choice(out, resp->text, resp->text ? strlen(resp->text) : 0, entries,
                      resp->finish == HL_FINISH_NONE ? HL_FINISH_STOP : resp->finish));
    HL_TRY(hl_buf_puts(out, "],\"usage\":"));
    HL_TRY(put_usage(out, &resp->usage));
    return hl_buf_puts(out, "}");
}

static hl_err chunk(hl_openai_encoder *enc, hl_buf *out, const char *text, size_t len, const json_t *entries,
                    hl_finish finish) {
    HL_TRY(hl_buf_puts(out, "data: "));
    HL_TRY(put_head(out, enc->id, enc->created, enc->model));
    HL_TRY(hl_buf_puts(out, ",\"choices\":["));
    HL_TRY(put_choice(out, text, len, entries, finish));
    HL_TRY(hl_buf_puts(out, "]"));
    if (enc->include_usage) HL_TRY(hl_buf_puts(out, ",\"usage\":null"));
    return hl_buf_puts(out, "}\n\n");
}

hl_err hl_completions_encode_event(hl_openai_encoder *enc, const hl_stream_event *ev, hl_buf *out) {
    switch (ev->type) {
    case HL_EV_START:
        if (ev->model && ev->model[0]) snprintf(enc->model, sizeof enc->model, "%s", ev->model);
        enc->started = true;
        return HL_OK;
    case HL_EV_TEXT:
        if (!ev->text_len) return HL_OK;
        return chunk(enc, out, ev->text, ev->text_len, NULL, HL_FINISH_NONE);
    case HL_EV_LOGPROBS:
        return chunk(enc, out, "", 0, ev->logprobs, HL_FINISH_NONE);
    case HL_EV_FINISH:
        if (enc->finished || ev->finish == HL_FINISH_NONE) return HL_OK;
        enc->finished = true;
        return chunk(enc, out, "", 0, NULL, ev->finish);
    case HL_EV_USAGE:
        enc->usage = ev->usage;
        return HL_OK;
    default: /* tool calls cannot come from a raw prompt; errors and the end are the exchange's */
        return HL_OK;
    }
}

hl_err hl_completions_encode_end(hl_openai_encoder *enc, const hl_usage *usage, hl_buf *out) {
    if (enc->include_usage) {
        HL_TRY(hl_buf_puts(out, "data: "));
        HL_TRY(put_head(out, enc->id, enc->created, enc->model));
        HL_TRY(hl_buf_puts(out, ",\"choices\":[],\"usage\":"));
        HL_TRY(put_usage(out, usage));
        HL_TRY(hl_buf_puts(out, "}\n\n"));
    }
    return hl_buf_puts(out, "data: [DONE]\n\n");
}
