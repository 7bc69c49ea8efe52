/* hl_eval_data: see hl_eval_data.h. An item's messages go through the gateway's own OpenAI
 * request parser (a body {"model", "messages", "max_tokens"} is built around them), so an
 * eval asks the backends exactly what a client of the gateway would. */
#include "hl_eval_data.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_openai.h"

bool hl_eval_blank(const char *line, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') return false;
    return true;
}

void hl_eval_item_release(hl_eval_item *it) {
    if (!it) return;
    free(it->id);
    free(it->task_type);
    hl_chat_request_release(&it->req);
    hl_chat_response_release(&it->expected);
    memset(it, 0, sizeof *it);
}

static hl_err fail(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static hl_err fail(char *why, size_t why_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (why_len) vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return HL_ERR_PARSE;
}

static const char *const known_keys[] = {"messages", "prompt", "expected", "task_type", "id", "max_tokens"};

/* The request body for the OpenAI parser: messages (or the prompt as one user message) and
 * max_tokens. */
static hl_err build_request(json_t *doc, hl_eval_item *it, char *why, size_t why_len) {
    json_t *msgs = json_object_get(doc, "messages"), *prompt = json_object_get(doc, "prompt");
    json_t *mt = json_object_get(doc, "max_tokens");
    if (!!msgs == !!prompt) return fail(why, why_len, "exactly one of \"messages\" and \"prompt\" is required");
    if (prompt && (!json_is_string(prompt) || !json_string_length(prompt)))
        return fail(why, why_len, "\"prompt\" must be a string, not empty");
    if (msgs && (!json_is_array(msgs) || !json_array_size(msgs)))
        return fail(why, why_len, "\"messages\" must be an array of chat messages, not empty");
    if (mt && !json_is_null(mt) &&
        (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > 1000000))
        return fail(why, why_len, "\"max_tokens\" must be an integer from 1 to 1000000");
    json_t *body = json_object();
    if (!body) return HL_ERR_NOMEM;
    json_object_set_new(body, "model", json_string("eval"));
    if (msgs) {
        json_object_set(body, "messages", msgs);
    } else {
        json_t *m = json_pack("[{s:s,s:O}]", "role", "user", "content", prompt);
        if (!m) {
            json_decref(body);
            return HL_ERR_NOMEM;
        }
        json_object_set_new(body, "messages", m);
    }
    if (mt && !json_is_null(mt)) json_object_set(body, "max_tokens", mt);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return HL_ERR_NOMEM;
    hl_api_error aerr = {0};
    hl_err e = hl_openai_parse_request(text, strlen(text), &it->req, &aerr);
    free(text);
    if (e == HL_ERR_INVAL) return fail(why, why_len, "bad request: %s", aerr.message);
    return e;
}

static hl_err parse_fields(json_t *doc, size_t line_no, hl_eval_item *it, char *why, size_t why_len) {
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++) known |= !strcmp(key, known_keys[i]);
        if (!known) return fail(why, why_len, "unknown key \"%.60s\"", key);
    }
    json_t *id = json_object_get(doc, "id"), *tt = json_object_get(doc, "task_type");
    json_t *exp = json_object_get(doc, "expected");
    char buf[32];
    if (id && json_is_string(id) && json_string_length(id) && json_string_length(id) <= 200 &&
        !memchr(json_string_value(id), '\0', json_string_length(id))) {
        if (hl_strdup(&it->id, json_string_value(id))) return HL_ERR_NOMEM;
    } else if (id && json_is_integer(id)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(id));
        if (hl_strdup(&it->id, buf)) return HL_ERR_NOMEM;
    } else if (id && !json_is_null(id)) {
        return fail(why, why_len, "\"id\" must be a string (1 to 200 bytes) or an integer");
    } else {
        snprintf(buf, sizeof buf, "%zu", line_no);
        if (hl_strdup(&it->id, buf)) return HL_ERR_NOMEM;
    }
    if (tt && !json_is_null(tt)) {
        if (!json_is_string(tt) || !json_string_length(tt) || json_string_length(tt) > 64 ||
            strlen(json_string_value(tt)) != json_string_length(tt))
            return fail(why, why_len, "\"task_type\" must be a string of 1 to 64 bytes");
        if (hl_strdup(&it->task_type, json_string_value(tt))) return HL_ERR_NOMEM;
    }
    if (exp && !json_is_null(exp)) {
        if (json_is_string(exp)) {
            if (strlen(json_string_value(exp)) != json_string_length(exp))
                return fail(why, why_len, "\"expected\" must not contain NUL");
            if (hl_strdup(&it->expected.text, json_string_value(exp))) return HL_ERR_NOMEM;
        } else if (json_is_object(exp) || json_is_array(exp)) {
            it->expected.text = json_dumps(exp, JSON_COMPACT | JSON_SORT_KEYS);
            if (!it->expected.text) return HL_ERR_NOMEM;
            it->expected_json = true;
        } else {
            return fail(why, why_len, "\"expected\" must be a string, an object or an array");
        }
        it->has_expected = true;
        it->expected.finish = HL_FINISH_STOP;
        it->expected.usage.output_tokens = hl_tokens_estimate(strlen(it->expected.text));
        it->expected.usage.estimated = true;
    }
    return build_request(doc, it, why, why_len);
}

hl_err hl_eval_item_parse(const char *line, size_t len, size_t line_no, hl_eval_item *it, char *why,
                          size_t why_len) {
    memset(it, 0, sizeof *it);
    hl_chat_request_init(&it->req);
    hl_chat_response_init(&it->expected);
    it->line = line_no;
    if (why_len) why[0] = '\0';
    if (len > HL_EVAL_MAX_LINE) {
        hl_eval_item_release(it);
        return fail(why, why_len, "line longer than %u bytes", HL_EVAL_MAX_LINE);
    }
    json_error_t jerr;
    json_t *doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    hl_err e;
    if (!doc)
        e = fail(why, why_len, "not JSON: %s (column %d)", jerr.text, jerr.column);
    else if (!json_is_object(doc))
        e = fail(why, why_len, "not a JSON object");
    else
        e = parse_fields(doc, line_no, it, why, why_len);
    json_decref(doc);
    if (e == HL_OK) {
        free(it->req.task_type);
        it->req.task_type = it->task_type ? strdup(it->task_type) : NULL;
        if (it->task_type && !it->req.task_type) e = HL_ERR_NOMEM;
        it->prompt_tokens = hl_chat_input_estimate(&it->req);
    }
    if (e != HL_OK) {
        if (e == HL_ERR_NOMEM && why_len) snprintf(why, why_len, "out of memory");
        hl_eval_item_release(it);
    }
    return e;
}

void hl_eval_dataset_release(hl_eval_dataset *ds) {
    for (size_t i = 0; i < ds->n; i++) hl_eval_item_release(&ds->v[i]);
    free(ds->v);
    memset(ds, 0, sizeof *ds);
}

/* Adds one line to ds (or reports it). Returns HL_OK, the parse error, or HL_ERR_NOMEM. */
static hl_err load_line(const char *path, const char *line, size_t n, size_t line_no, bool skip_bad,
                        hl_eval_dataset *ds, size_t *cap, void (*warn)(void *, const char *), void *ud,
                        char *err, size_t err_len) {
    if (hl_eval_blank(line, n)) return HL_OK;
    if (ds->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        hl_eval_item *nv = realloc(ds->v, nc * sizeof *nv);
        if (!nv) return HL_ERR_NOMEM;
        ds->v = nv;
        *cap = nc;
    }
    char why[256];
    hl_err e = hl_eval_item_parse(line, n, line_no, &ds->v[ds->n], why, sizeof why);
    if (e == HL_OK) {
        ds->n++;
        return HL_OK;
    }
    if (e != HL_ERR_PARSE) return e;
    snprintf(err, err_len, "%s:%zu: %s", path, line_no, why);
    if (!skip_bad) return e;
    ds->skipped++;
    if (warn) warn(ud, err);
    err[0] = '\0';
    return HL_OK;
}

hl_err hl_eval_dataset_load(const char *path, bool skip_bad, size_t limit, hl_eval_dataset *ds,
                            void (*warn)(void *ud, const char *msg), void *ud, char *err, size_t err_len) {
    memset(ds, 0, sizeof *ds);
    if (err_len) err[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return HL_ERR_IO;
    }
    char *line = NULL;
    size_t cap_line = 0, cap = 0, line_no = 0;
    ssize_t got;
    hl_err e = HL_OK;
    errno = 0;
    while ((limit == 0 || ds->n < limit) && (got = getline(&line, &cap_line, f)) >= 0) {
        line_no++;
        size_t n = (size_t)got;
        if (n && line[n - 1] == '\n') n--;
        if (n > HL_EVAL_MAX_LINE) {
            snprintf(err, err_len, "%s:%zu: line longer than %u bytes", path, line_no, HL_EVAL_MAX_LINE);
            e = HL_ERR_LIMIT;
            break;
        }
        if (ds->n >= HL_EVAL_MAX_ITEMS) {
            snprintf(err, err_len, "%s:%zu: more than %d items", path, line_no, HL_EVAL_MAX_ITEMS);
            e = HL_ERR_LIMIT;
            break;
        }
        if ((e = load_line(path, line, n, line_no, skip_bad, ds, &cap, warn, ud, err, err_len)) != HL_OK) break;
    }
    if (e == HL_OK && ferror(f)) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno ? errno : EIO));
        e = HL_ERR_IO;
    }
    if (e == HL_ERR_NOMEM) snprintf(err, err_len, "%s: out of memory", path);
    free(line);
    fclose(f);
    if (e != HL_OK) hl_eval_dataset_release(ds);
    return e;
}
