/* hl_openai_request: the common client chat request read in one pass, without a tree.
 *
 * Every request through the OpenAI ingress was parsed with jansson: about 16k instructions for
 * a 90-byte body (a hash table per object, a malloc per value, a callback per character), a
 * fifth of the gateway's own work on a small request. This reader takes the body most clients
 * send (model, messages whose content is text, the sampling and stream fields) and fills the
 * request exactly as hl_openai_parse_request_full would. It never skips a value it does not
 * read, so it sees every key (jansson refuses repeated keys here: so does this reader, by
 * giving up), and it gives up with HL_ERR_UNSUPPORTED on anything else: another field (tools,
 * metadata, user, seed, ...: the passthrough), content parts, tool calls, a value the full
 * parser would refuse or read differently. The full parser then reads the body and gives the
 * errors; this one never decides one. test/fuzz/fuzz_openai_request_fast.c checks that both
 * readers agree. */
#include "hl_jscan.h"
#include "hl_openai.h"

#include <stdlib.h>
#include <string.h>

/* What the reader collects; moved into the request only when the whole body was read. */
typedef struct rq {
    char *model;
    hl_message *msgs;
    size_t n_msgs, cap;
    char *stop[4];
    size_t n_stop;
    long max_tokens;          /* -1: not given (or null) */
    bool mct;                 /* it came as max_completion_tokens */
    bool has_temperature, has_top_p;
    double temperature, top_p;
    bool stream, stream_options, include_usage, logprobs;
    int top_logprobs;         /* -1: not given */
    size_t text_bytes;
} rq;

static void rq_free(rq *q) {
    free(q->model);
    for (size_t i = 0; i < q->n_msgs; i++) {
        free(q->msgs[i].text);
        free(q->msgs[i].name);
        free(q->msgs[i].tool_call_id);
    }
    free(q->msgs);
    for (size_t i = 0; i < q->n_stop; i++) free(q->stop[i]);
}

#define GIVE_UP HL_ERR_UNSUPPORTED

/* A number, or null (*given false). */
static bool number_or_null(hl_js *r, bool *given, bool *is_int, long long *iv, double *dv) {
    *given = !hl_js_lit(r, "null", 4);
    return !*given || hl_js_number(r, is_int, iv, dv);
}

/* true, false or null (false). */
static bool bool_or_null(hl_js *r, bool *out) {
    if (hl_js_lit(r, "true", 4)) return *out = true;
    *out = false;
    return hl_js_lit(r, "false", 5) || hl_js_lit(r, "null", 4);
}

static bool role_of(const char *s, size_t n, hl_role *out) {
    if (hl_js_key_is(s, n, "user")) *out = HL_ROLE_USER;
    else if (hl_js_key_is(s, n, "assistant")) *out = HL_ROLE_ASSISTANT;
    else if (hl_js_key_is(s, n, "system") || hl_js_key_is(s, n, "developer")) *out = HL_ROLE_SYSTEM;
    else if (hl_js_key_is(s, n, "tool")) *out = HL_ROLE_TOOL;
    else return false;
    return true;
}

/* One message object into m (zeroed; what it holds is freed with the rq). */
static hl_err message(hl_js *r, hl_message *m, size_t *text_bytes) {
    if (!hl_js_at(r, '{')) return GIVE_UP;
    r->p++;
    bool first = true, esc;
    unsigned seen = 0;
    const char *k, *role = NULL;
    size_t kn, role_n = 0;
    int more;
    while ((more = hl_js_member(r, &first, &k, &kn)) == 1) {
        if (hl_js_key_is(k, kn, "role")) {
            if (!hl_js_once(&seen, 1) || !hl_js_str_span(r, &role, &role_n, &esc) || esc) return GIVE_UP;
        } else if (hl_js_key_is(k, kn, "content")) {
            if (!hl_js_once(&seen, 2)) return GIVE_UP;
            if (hl_js_at(r, '"')) HL_TRY(hl_js_str_copy(r, &m->text));
            else if (!hl_js_lit(r, "null", 4)) return GIVE_UP; /* parts: the full parser */
        } else if (hl_js_key_is(k, kn, "name")) {
            if (!hl_js_once(&seen, 4) || !hl_js_at(r, '"')) return GIVE_UP;
            HL_TRY(hl_js_str_copy(r, &m->name));
        } else if (hl_js_key_is(k, kn, "tool_call_id")) {
            if (!hl_js_once(&seen, 8) || !hl_js_at(r, '"')) return GIVE_UP;
            HL_TRY(hl_js_str_copy(r, &m->tool_call_id));
        } else if (hl_js_key_is(k, kn, "tool_calls")) {
            if (!hl_js_once(&seen, 16) || !hl_js_lit(r, "null", 4)) return GIVE_UP;
        } else {
            return GIVE_UP;
        }
    }
    if (more != 0 || !role || !role_of(role, role_n, &m->role)) return GIVE_UP;
    if (!(seen & 2) && m->role != HL_ROLE_ASSISTANT) return GIVE_UP; /* content is required */
    if (m->role == HL_ROLE_TOOL && !m->tool_call_id) return GIVE_UP;
    if (m->role != HL_ROLE_TOOL && m->tool_call_id) { /* the full parser keeps it for tools only */
        free(m->tool_call_id);
        m->tool_call_id = NULL;
    }
    if (!m->text && !(m->text = strdup(""))) return HL_ERR_NOMEM;
    *text_bytes += strlen(m->text);
    return HL_OK;
}

static hl_err messages(hl_js *r, rq *q) {
    if (!hl_js_at(r, '[')) return GIVE_UP;
    r->p++;
    bool first = true;
    int more;
    while ((more = hl_js_element(r, &first)) == 1) {
        if (q->n_msgs == q->cap) {
            size_t cap = q->cap ? 2 * q->cap : 4;
            hl_message *grown = realloc(q->msgs, cap * sizeof *grown);
            if (!grown) return HL_ERR_NOMEM;
            q->msgs = grown;
            q->cap = cap;
        }
        hl_message *m = &q->msgs[q->n_msgs++];
        memset(m, 0, sizeof *m);
        HL_TRY(message(r, m, &q->text_bytes));
    }
    return more == 0 && q->n_msgs ? HL_OK : GIVE_UP; /* empty: the full parser says so */
}

/* null, a string, or an array of at most 4 strings. */
static hl_err stop(hl_js *r, rq *q) {
    if (hl_js_lit(r, "null", 4)) return HL_OK;
    if (hl_js_at(r, '"')) {
        q->n_stop = 1;
        return hl_js_str_copy(r, &q->stop[0]);
    }
    if (!hl_js_at(r, '[')) return GIVE_UP;
    r->p++;
    bool first = true;
    int more;
    while ((more = hl_js_element(r, &first)) == 1) {
        if (q->n_stop == 4 || !hl_js_at(r, '"')) return GIVE_UP;
        HL_TRY(hl_js_str_copy(r, &q->stop[q->n_stop++]));
    }
    return more == 0 ? HL_OK : GIVE_UP;
}

/* {"include_usage": true|false|null} or {}. */
static bool stream_options(hl_js *r, rq *q) {
    if (!hl_js_at(r, '{')) return false;
    r->p++;
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int more;
    while ((more = hl_js_member(r, &first, &k, &kn)) == 1)
        if (!hl_js_key_is(k, kn, "include_usage") || !hl_js_once(&seen, 1) || !bool_or_null(r, &q->include_usage))
            return false;
    return more == 0;
}

enum {
    F_MODEL = 1, F_MESSAGES = 2, F_MAX_TOKENS = 4, F_MCT = 8, F_TEMPERATURE = 16, F_TOP_P = 32,
    F_STOP = 64, F_STREAM = 128, F_STREAM_OPTIONS = 256, F_N = 512, F_LOGPROBS = 1024,
    F_TOP_LOGPROBS = 2048,
};

/* One member of the root object (r->p at its value). */
static hl_err field(hl_js *r, const char *k, size_t kn, unsigned *seen, rq *q) {
    bool given, is_int;
    long long iv;
    double dv;
    if (hl_js_key_is(k, kn, "model")) {
        if (!hl_js_once(seen, F_MODEL) || !hl_js_at(r, '"')) return GIVE_UP;
        HL_TRY(hl_js_str_copy(r, &q->model));
        return q->model[0] ? HL_OK : GIVE_UP;
    }
    if (hl_js_key_is(k, kn, "messages"))
        return hl_js_once(seen, F_MESSAGES) ? messages(r, q) : GIVE_UP;
    if (hl_js_key_is(k, kn, "max_tokens") || hl_js_key_is(k, kn, "max_completion_tokens")) {
        bool mct = kn == 21;
        if (!hl_js_once(seen, mct ? F_MCT : F_MAX_TOKENS) || !number_or_null(r, &given, &is_int, &iv, &dv))
            return GIVE_UP;
        if (!given) return HL_OK;
        if (!is_int || iv < 1) return GIVE_UP;
        q->max_tokens = iv > 1000000000 ? 1000000000 : (long)iv;
        q->mct = mct;
        return HL_OK;
    }
    if (hl_js_key_is(k, kn, "temperature") || hl_js_key_is(k, kn, "top_p")) {
        bool temp = k[0] == 't' && k[1] == 'e';
        if (!hl_js_once(seen, temp ? F_TEMPERATURE : F_TOP_P) || !number_or_null(r, &given, &is_int, &iv, &dv))
            return GIVE_UP;
        if (!given) return HL_OK;
        if (!(dv >= 0 && dv <= (temp ? 2 : 1))) return GIVE_UP;
        if (temp) q->has_temperature = true, q->temperature = dv;
        else q->has_top_p = true, q->top_p = dv;
        return HL_OK;
    }
    if (hl_js_key_is(k, kn, "stop")) return hl_js_once(seen, F_STOP) ? stop(r, q) : GIVE_UP;
    if (hl_js_key_is(k, kn, "stream"))
        return hl_js_once(seen, F_STREAM) && bool_or_null(r, &q->stream) ? HL_OK : GIVE_UP;
    if (hl_js_key_is(k, kn, "stream_options")) {
        if (!hl_js_once(seen, F_STREAM_OPTIONS)) return GIVE_UP;
        if (hl_js_lit(r, "null", 4)) return HL_OK;
        q->stream_options = true;
        return stream_options(r, q) ? HL_OK : GIVE_UP;
    }
    if (hl_js_key_is(k, kn, "n")) {
        if (!hl_js_once(seen, F_N) || !number_or_null(r, &given, &is_int, &iv, &dv)) return GIVE_UP;
        return !given || (is_int && iv == 1) ? HL_OK : GIVE_UP;
    }
    if (hl_js_key_is(k, kn, "logprobs"))
        return hl_js_once(seen, F_LOGPROBS) && bool_or_null(r, &q->logprobs) ? HL_OK : GIVE_UP;
    if (hl_js_key_is(k, kn, "top_logprobs")) {
        if (!hl_js_once(seen, F_TOP_LOGPROBS) || !number_or_null(r, &given, &is_int, &iv, &dv)) return GIVE_UP;
        if (!given) return HL_OK;
        if (!is_int || iv < 0 || iv > 20) return GIVE_UP;
        q->top_logprobs = (int)iv;
        return HL_OK;
    }
    return GIVE_UP; /* tools, metadata, anything for the passthrough: the full parser */
}

static hl_err body(hl_js *r, rq *q) {
    hl_js_ws(r);
    if (!hl_js_at(r, '{')) return GIVE_UP;
    r->p++;
    bool first = true;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int more;
    while ((more = hl_js_member(r, &first, &k, &kn)) == 1) HL_TRY(field(r, k, kn, &seen, q));
    if (more != 0 || !(seen & F_MODEL) || !(seen & F_MESSAGES)) return GIVE_UP;
    /* Both token limits: the full parser reads max_completion_tokens alone, whatever the
     * other holds. Stream options without a stream: its error. */
    if ((seen & F_MAX_TOKENS) && (seen & F_MCT)) return GIVE_UP;
    if (q->stream_options && !q->stream) return GIVE_UP;
    hl_js_ws(r);
    return r->p == r->end ? HL_OK : GIVE_UP;
}

hl_err hl_openai_request_fast(const char *text, size_t len, hl_chat_request *req) {
    rq q = {.max_tokens = -1, .top_logprobs = -1};
    hl_js r = {text, text + len};
    hl_err e = text ? body(&r, &q) : GIVE_UP;
    char **stops = NULL;
    if (!e && q.n_stop && !(stops = malloc(q.n_stop * sizeof *stops))) e = HL_ERR_NOMEM;
    if (e) {
        rq_free(&q);
        return e;
    }
    req->model = q.model;
    req->messages = q.msgs;
    req->n_messages = q.n_msgs;
    if (q.max_tokens > 0) {
        req->max_tokens = q.max_tokens;
        req->max_completion_tokens = q.mct;
    }
    req->has_temperature = q.has_temperature;
    req->temperature = q.temperature;
    req->has_top_p = q.has_top_p;
    req->top_p = q.top_p;
    if (stops) memcpy(stops, q.stop, q.n_stop * sizeof *stops);
    req->stop = stops;
    req->n_stop = q.n_stop;
    req->stream = q.stream;
    req->include_usage = q.include_usage;
    req->logprobs = q.logprobs;
    if (q.top_logprobs >= 0) req->top_logprobs = q.top_logprobs;
    req->text_bytes += q.text_bytes;
    return HL_OK;
}
