/* hl_provider: the HTTP kinds (OpenAI-compatible, Anthropic) and their one call driver (see
 * hl_provider.h).
 *
 * The driver owns everything about the wire of an attempt: it builds the request through the
 * kind's wire table, runs it on the loop's hl_upstream, reads the retry hints in the response
 * headers, buffers a whole body or feeds an event stream to the kind's decoder, and ends with
 * one hl_provider_result. The gateway only sees events and results. */
#include "hl_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hl_openai.h"
#include "hl_spare.h"
#include "hl_upstream.h"
#include <jansson.h>

#define MAX_UPSTREAM_BODY (64u << 20)
#define MAX_SSE_EVENT (16u << 20)

/* ------------------------------------------------------------------ wire tables */

hl_err hl_provider_header_add(hl_buf *headers, const char *name, const char *value) {
    if (strpbrk(value, "\r\n")) return HL_ERR_INVAL;
    size_t start = headers->len;
    hl_err e = hl_buf_puts(headers, name);
    if (!e) e = hl_buf_append(headers, ": ", 2);
    if (!e) e = hl_buf_puts(headers, value);
    if (!e) e = hl_buf_append(headers, "", 1); /* the line's NUL */
    if (e) {
        if (headers->data) explicit_bzero(headers->data + start, headers->len - start);
        headers->len = start;
    }
    return e;
}

static hl_err common_headers(hl_buf *h, const hl_chat_request *req) {
    hl_err e = hl_provider_header_add(h, "Content-Type", "application/json");
    if (!e) e = hl_provider_header_add(h, "Accept", req->stream ? "text/event-stream" : "application/json");
    /* curl would otherwise send "Expect: 100-continue" for large bodies and wait. */
    if (!e) e = hl_provider_header_add(h, "Expect", "");
    return e;
}

hl_err hl_provider_bearer_add(hl_buf *headers, const char *key) {
    char bearer[600];
    int n = snprintf(bearer, sizeof bearer, "Bearer %s", key);
    hl_err e = (n < 0 || (size_t)n >= sizeof bearer) ? HL_ERR_LIMIT : hl_provider_header_add(headers, "Authorization", bearer);
    explicit_bzero(bearer, sizeof bearer);
    return e;
}

static hl_err openai_build(const hl_backend *b, const char *base, const hl_chat_request *req, const char *model,
                           hl_buf *url, hl_buf *body, hl_buf *headers) {
    hl_err e = hl_buf_puts(url, base ? base : hl_backend_base_url(b));
    if (!e) e = hl_buf_puts(url, req->raw_prompt ? "/completions" : "/chat/completions");
    if (!e) e = hl_openai_write_upstream_request(body, req, model);
    if (!e) e = common_headers(headers, req);
    if (!e && b->api_key) e = hl_provider_bearer_add(headers, b->api_key);
    return e;
}

static void openai_decoder_init(hl_provider_decoder *d) { memset(d, 0, sizeof *d); }

static int openai_decode(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud) {
    return hl_openai_decode_stream_event(&d->openai_started, ev, sink, ud);
}

static hl_err anthropic_build(const hl_backend *b, const char *base, const hl_chat_request *req, const char *model,
                              hl_buf *url, hl_buf *body, hl_buf *headers) {
    hl_err e = hl_buf_printf(url, "%s/v1/messages", base ? base : hl_backend_base_url(b));
    if (!e) e = hl_anthropic_write_upstream_request(body, req, model);
    if (!e) e = common_headers(headers, req);
    if (!e) e = hl_provider_header_add(headers, "anthropic-version", HL_ANTHROPIC_VERSION);
    if (!e && req->anthropic_beta) e = hl_provider_header_add(headers, "anthropic-beta", req->anthropic_beta);
    if (!e && b->api_key) e = hl_provider_header_add(headers, "x-api-key", b->api_key);
    return e;
}

static void anthropic_decoder_init(hl_provider_decoder *d) {
    memset(d, 0, sizeof *d);
    hl_anthropic_decoder_init(&d->anthropic);
}

static int anthropic_decode(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud) {
    return hl_anthropic_decode_stream_event(&d->anthropic, ev, sink, ud);
}

static const hl_provider_wire openai_wire = {openai_build, hl_openai_parse_upstream_response,
                                             openai_decoder_init, openai_decode};
static const hl_provider_wire anthropic_wire = {anthropic_build, hl_anthropic_parse_upstream_response,
                                                anthropic_decoder_init, anthropic_decode};

/* A Responses client on an OpenAI cloud backend: the Responses API as such, same credentials. */
static hl_err responses_build(const hl_backend *b, const char *base, const hl_chat_request *req, const char *model,
                              hl_buf *url, hl_buf *body, hl_buf *headers) {
    hl_err e = hl_buf_printf(url, "%s/responses", base ? base : hl_backend_base_url(b));
    if (!e) e = hl_responses_write_upstream_request(body, req, model);
    if (!e) e = common_headers(headers, req);
    if (!e && b->api_key) e = hl_provider_bearer_add(headers, b->api_key);
    return e;
}

static void responses_decoder_init(hl_provider_decoder *d) {
    memset(d, 0, sizeof *d);
    hl_responses_decoder_init(&d->responses);
}

static int responses_decode(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud) {
    return hl_responses_decode_stream_event(&d->responses, ev, sink, ud);
}

static const hl_provider_wire responses_wire = {responses_build, hl_responses_parse_upstream_response,
                                                responses_decoder_init, responses_decode};

const hl_provider_wire *hl_provider_responses_wire(void) { return &responses_wire; }

/* ------------------------------------------------------------------ context overflow */

bool hl_provider_context_overflow(int status, const char *body, size_t len) {
    static const char *const says[] = {
        "exceeds the available context size", /* llama.cpp server */
        "exceed_context_size",                /* llama.cpp's error type */
        "maximum context length",             /* vLLM, OpenAI */
        "context_length_exceeded",            /* OpenAI's code */
        "exceeds the context length",         /* Ollama */
        "context window",                     /* "... exceeds the context window" */
        "prompt is too long",                 /* Anthropic */
        "too many tokens in the prompt",
    };
    if (status < 400 || status >= 500 || status == 429 || !body || !len) return false;
    if (len > 8192) len = 8192; /* the message is near the start */
    for (size_t i = 0; i < sizeof says / sizeof says[0]; i++) {
        size_t n = strlen(says[i]);
        for (size_t k = 0; k + n <= len; k++)
            if (!strncasecmp(body + k, says[i], n)) return true;
    }
    return false;
}

/* ------------------------------------------------------------------ the HTTP call driver */

struct hl_provider_call {
    const hl_provider_wire *wire;
    hl_upstream_call *up;      /* NULL once ended */
    hl_provider_events ev;
    void *ud;
    bool stream;
    int status;                /* 0 until known */
    bool is_sse;               /* the reply is an event stream */
    bool ended;                /* the decoder saw the stream's end (done or error event) */
    bool want_pause, paused;   /* pause asked; the upstream is paused */
    bool aborted;              /* a handler asked to stop */
    const char *stream_failure;
    double retry_after_ms;
    int should_retry;
    hl_buf body;               /* whole bodies and error bodies */
    hl_sse sse;
    hl_provider_decoder dec;
    /* Counting first: a prompt near a local server's context window is counted with the
     * server's own tokenizer (POST /tokenize) before the completion is sent. */
    bool counting;             /* the tokenize call is the one in `up` */
    int count_status;
    long window, overhead;     /* tokens: the server's context; what the chat template adds */
    hl_upstream *upc;          /* where the completion starts afterwards */
    hl_upstream_opts pending;  /* the completion, built (owns body and headers) */
    hl_buf pending_url;
};

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool name_is(const char *p, size_t n, const char *lit) {
    return n == strlen(lit) && !strncasecmp(p, lit, n);
}

/* Retry hints: retry-after-ms (milliseconds), retry-after (seconds or an HTTP date),
 * x-should-retry (true/false, overrides the status). */
static void up_header(void *ud, const char *name, size_t nlen, const char *value, size_t vlen) {
    hl_provider_call *c = ud;
    char v[64];
    if (vlen >= sizeof v) return;
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    if (name_is(name, nlen, "retry-after-ms")) {
        char *end;
        double ms = strtod(v, &end);
        if (end != v && ms >= 0) c->retry_after_ms = ms;
    } else if (name_is(name, nlen, "retry-after") && c->retry_after_ms < 0) {
        char *end;
        double secs = strtod(v, &end);
        struct tm tm = {0};
        if (end != v && *end == '\0' && secs >= 0) {
            c->retry_after_ms = secs * 1000.0;
        } else if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
            double d = ((double)timegm(&tm) - wall_now()) * 1000.0;
            c->retry_after_ms = d > 0 ? d : 0;
        }
    } else if (name_is(name, nlen, "x-should-retry")) {
        c->should_retry = !strcasecmp(v, "true") ? 1 : !strcasecmp(v, "false") ? 0 : -1;
    }
}

static void up_status(void *ud, int status, const char *content_type) {
    hl_provider_call *c = ud;
    c->status = status;
    c->is_sse = !strncasecmp(content_type, "text/event-stream", 17);
    c->ev.on_status(c->ud, status);
}

static int on_decoded(void *ud, const hl_stream_event *ev) {
    hl_provider_call *c = ud;
    if (ev->type == HL_EV_DONE || ev->type == HL_EV_ERROR) c->ended = true;
    if (c->ev.on_event(c->ud, ev) == HL_PROVIDER_ABORT) c->aborted = true;
    return 0;
}

static int on_sse(void *ud, const hl_sse_event *sse) {
    hl_provider_call *c = ud;
    if (c->ended || c->aborted) return 0; /* nothing after the end counts */
    if (c->wire->decode(&c->dec, sse, on_decoded, c) == HL_ERR_PARSE) {
        c->ended = true;
        c->stream_failure = "malformed stream event";
    }
    return 0;
}

static bool streaming_now(const hl_provider_call *c) { return c->stream && c->status / 100 == 2 && c->is_sse; }

static int up_data(void *ud, const char *data, size_t len) {
    hl_provider_call *c = ud;
    if (!streaming_now(c))
        return hl_buf_append(&c->body, data, len) ? HL_UPSTREAM_ABORT : HL_UPSTREAM_CONTINUE;
    if (hl_sse_feed(&c->sse, data, len, on_sse, c) != 0) {
        c->stream_failure = "stream event over the size limit";
        return HL_UPSTREAM_ABORT;
    }
    if (c->ev.on_flush) c->ev.on_flush(c->ud);
    if (c->aborted) return HL_UPSTREAM_ABORT;
    if (c->want_pause) {
        c->want_pause = false;
        c->paused = true;
        return HL_UPSTREAM_PAUSE;
    }
    return HL_UPSTREAM_CONTINUE;
}

/* A call is past glibc's per-thread cache: each thread keeps its last one (hl_spare.h). */
static hl_spare call_spare = HL_SPARE_INIT(sizeof(hl_provider_call));

static void call_free(hl_provider_call *c) {
    if (c->pending.headers) explicit_bzero(c->pending.headers, c->pending.headers_len);
    free(c->pending.headers);
    free(c->pending.body);
    hl_buf_release(&c->pending_url);
    hl_buf_release(&c->body);
    hl_sse_release(&c->sse);
    hl_spare_free(&call_spare, c);
}

static void up_done(void *ud, hl_err err, const char *errmsg) {
    hl_provider_call *c = ud;
    c->up = NULL;
    hl_provider_result r = {.err = err, .errmsg = errmsg, .status = c->status,
                            .retry_after_ms = c->retry_after_ms, .should_retry = c->should_retry};
    char msg[300], type[64];
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    if (err == HL_OK && c->status / 100 != 2) {
        hl_upstream_error_parse(c->body.data, c->body.len, msg, sizeof msg, type, sizeof type);
        r.error_message = msg;
        r.error_type = type;
        /* OpenAI's insufficient_quota is a 429 for a spend limit: no retry can fix it. */
        r.spend_limit = c->status == 429 && c->body.data && strstr(c->body.data, "insufficient_quota");
        r.context_overflow = hl_provider_context_overflow(c->status, c->body.data, c->body.len);
    } else if (err == HL_OK && c->stream) {
        r.not_streaming = !c->is_sse;
        if (c->is_sse) {
            hl_sse_finish(&c->sse);
            if (c->ev.on_flush) c->ev.on_flush(c->ud);
        }
    } else if (err == HL_OK) {
        if (c->wire->parse_response(c->body.data ? c->body.data : "", c->body.len, &resp) == HL_OK) r.response = &resp;
    }
    if (c->stream_failure) r.stream_failure = c->stream_failure;
    c->ev.on_done(c->ud, &r);
    hl_chat_response_release(&resp);
    call_free(c);
}

static const hl_upstream_handlers up_handlers = {up_status, up_data, up_header, up_done};

/* ---- counting first ---- */

static void count_status(void *ud, int status, const char *content_type) {
    (void)content_type;
    ((hl_provider_call *)ud)->count_status = status;
}

static int count_data(void *ud, const char *data, size_t len) {
    hl_provider_call *c = ud;
    return hl_buf_append(&c->body, data, len) ? HL_UPSTREAM_ABORT : HL_UPSTREAM_CONTINUE;
}

/* The count is in: over the window, the call ends as the server itself would answer (a 400
 * saying the context is exceeded); else (or when the server could not count) the completion
 * goes out. */
static void count_done(void *ud, hl_err err, const char *errmsg) {
    (void)errmsg;
    hl_provider_call *c = ud;
    c->up = NULL;
    c->counting = false;
    long n = -1;
    if (err == HL_OK && c->count_status / 100 == 2) {
        json_t *j = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
        json_t *tokens = json_object_get(j, "tokens");
        if (json_is_integer(json_object_get(j, "count"))) n = (long)json_integer_value(json_object_get(j, "count"));
        else if (json_is_array(tokens)) n = (long)json_array_size(tokens);
        json_decref(j);
    }
    hl_buf_reset(&c->body);
    if (n >= 0 && n + c->overhead > c->window) {
        char msg[256];
        snprintf(msg, sizeof msg, "the prompt has about %ld tokens by the server's own tokenizer (%ld of text, "
                 "about %ld of chat template); its context window is %ld", n + c->overhead, n, c->overhead, c->window);
        c->status = 400;
        c->ev.on_status(c->ud, 400);
        hl_provider_result r = {.status = 400, .error_message = msg, .error_type = "invalid_request_error",
                                .context_overflow = true, .retry_after_ms = -1, .should_retry = -1};
        c->ev.on_done(c->ud, &r);
        call_free(c);
        return;
    }
    c->pending.url = c->pending_url.data;
    hl_err e = hl_upstream_start(c->upc, &c->pending, &up_handlers, c, &c->up);
    c->pending.headers = c->pending.body = NULL; /* taken (or released) by hl_upstream_start */
    if (e) {
        hl_provider_result r = {.err = HL_ERR_UPSTREAM, .errmsg = "could not start the upstream call",
                                .retry_after_ms = -1, .should_retry = -1};
        c->ev.on_done(c->ud, &r);
        call_free(c);
    }
}

static const hl_upstream_handlers count_handlers = {count_status, count_data, NULL, count_done};

/* Should this completion be counted first? A local OpenAI-compatible server with a tokenizer
 * endpoint and a known window, and a prompt whose 4-bytes-a-token estimate is within a factor
 * of two of it (the estimate undercounts small vocabularies and non-English text that much). */
static bool count_first(const hl_provider_spec *s, long *window) {
    hl_backend *b = s->backend;
    if (b->cfg->kind != HL_PROVIDER_OPENAI || atomic_load(&b->tokenizer) == HL_TOKENIZE_NONE) return false;
    *window = hl_backend_context_window(b);
    return *window > 0 && 2 * hl_chat_input_estimate(s->req) >= *window;
}

/* Starts the POST /tokenize of the prompt's text (the messages' text, one a line). */
static hl_err start_count(hl_provider_call *c, const hl_provider_env *env, const hl_provider_spec *s) {
    const hl_chat_request *req = s->req;
    hl_backend *b = s->backend;
    hl_buf text, body, headers;
    hl_buf_init(&text, 0);
    hl_buf_init(&body, 0);
    hl_buf_init(&headers, 0);
    hl_err e = HL_OK;
    for (size_t i = 0; i < req->n_messages && !e; i++) {
        const hl_message *m = &req->messages[i];
        e = hl_buf_printf(&text, "%s%s", i ? "\n" : "", m->text ? m->text : "");
        for (size_t k = 0; k < m->n_tool_calls && !e; k++)
            e = hl_buf_printf(&text, "\n%s %s", m->tool_calls[k].name ? m->tool_calls[k].name : "",
                              m->tool_calls[k].arguments ? m->tool_calls[k].arguments : "");
    }
    const char *t = text.data ? text.data : "";
    if (!e && atomic_load(&b->tokenizer) == HL_TOKENIZE_VLLM) {
        e = hl_buf_puts(&body, "{\"model\":");
        if (!e) e = hl_buf_json_str(&body, s->model, strlen(s->model));
        if (!e) e = hl_buf_puts(&body, ",\"prompt\":");
    } else if (!e) {
        e = hl_buf_puts(&body, "{\"content\":");
    }
    if (!e) e = hl_buf_json_str(&body, t, text.len);
    if (!e) e = hl_buf_puts(&body, "}");
    if (!e) e = hl_provider_header_add(&headers, "Content-Type", "application/json");
    if (!e && b->api_key) e = hl_provider_bearer_add(&headers, b->api_key);
    char root[1024], url[1100];
    hl_backend_server_root(s->base_url ? s->base_url : hl_backend_base_url(b), root, sizeof root);
    snprintf(url, sizeof url, "%s/tokenize", root);
    hl_buf_release(&text);
    if (!e) {
        hl_upstream_opts o = {.url = url, .headers_len = headers.len, .body_len = body.len,
                              .timeout_ms = s->timeout_ms < 5000 ? s->timeout_ms : 5000,
                              .connect_timeout_ms = s->connect_timeout_ms, .ca_file = s->backend->cfg->ca_file};
        o.headers = hl_buf_steal(&headers);
        o.body = hl_buf_steal(&body);
        e = hl_upstream_start(env->up, &o, &count_handlers, c, &c->up);
    }
    if (headers.data) explicit_bzero(headers.data, headers.len);
    hl_buf_release(&headers);
    hl_buf_release(&body);
    if (!e) c->counting = true;
    return e;
}

static hl_err http_start(const hl_provider_env *env, const hl_provider_spec *s, const hl_provider_wire *wire,
                         const hl_provider_events *ev, void *ud, hl_provider_call **out) {
    hl_provider_call *c = hl_spare_calloc(&call_spare);
    if (!c) return HL_ERR_NOMEM;
    c->wire = wire;
    c->ev = *ev;
    c->ud = ud;
    c->stream = s->stream;
    c->retry_after_ms = -1;
    c->should_retry = -1;
    hl_buf_init(&c->body, MAX_UPSTREAM_BODY);
    hl_sse_init(&c->sse, MAX_SSE_EVENT);
    wire->decoder_init(&c->dec);

    /* The kind's writer reads stream and logprobs from the request: lend it the attempt's. */
    hl_chat_request *req = (hl_chat_request *)s->req;
    bool stream = req->stream, logprobs = req->logprobs;
    int top_logprobs = req->top_logprobs;
    size_t n_stop = req->n_stop;
    req->stream = s->stream;
    req->logprobs = logprobs || s->logprobs;
    /* Asked for the gateway's judgement: two alternatives a token give the first token's margin
     * (the exchange trims them to what a client that asked for logprobs itself wanted). */
    if (s->logprobs && req->top_logprobs < 2) req->top_logprobs = 2;
    if (s->no_stop) req->n_stop = 0;
    hl_buf url, body, headers;
    hl_buf_init(&url, 4096);
    hl_buf_init(&body, 0);
    hl_buf_init(&headers, 0);
    hl_err e = wire->build(s->backend, s->base_url, req, s->model, &url, &body, &headers);
    req->stream = stream;
    req->logprobs = logprobs;
    req->top_logprobs = top_logprobs;
    req->n_stop = n_stop;
    long window = 0;
    if (!e && count_first(s, &window)) {
        /* The completion waits, built, for the count (count_done starts it). */
        c->window = window;
        c->overhead = hl_chat_input_estimate(s->req) - hl_tokens_estimate(s->req->text_bytes);
        c->upc = env->up;
        c->pending = (hl_upstream_opts){.headers_len = headers.len, .body_len = body.len,
                                        .timeout_ms = s->timeout_ms, .connect_timeout_ms = s->connect_timeout_ms,
                                        .ca_file = s->backend->cfg->ca_file};
        c->pending.headers = hl_buf_steal(&headers);
        c->pending.body = hl_buf_steal(&body);
        c->pending_url = url;
        hl_buf_init(&url, 0);
        if ((!c->pending.headers && c->pending.headers_len) || !c->pending.body) e = HL_ERR_NOMEM;
        if (!e) e = start_count(c, env, s);
    } else if (!e) {
        hl_upstream_opts o = {
            .url = url.data,
            .headers_len = headers.len,
            .body_len = body.len,
            .timeout_ms = s->timeout_ms,
            .connect_timeout_ms = s->connect_timeout_ms,
            .ca_file = s->backend->cfg->ca_file,
        };
        o.headers = hl_buf_steal(&headers);
        o.body = hl_buf_steal(&body);
        e = hl_upstream_start(env->up, &o, &up_handlers, c, &c->up);
    }
    if (headers.data) explicit_bzero(headers.data, headers.len);
    hl_buf_release(&headers);
    hl_buf_release(&url);
    hl_buf_release(&body);
    if (e) {
        call_free(c);
        return e;
    }
    *out = c;
    return HL_OK;
}

static hl_err openai_start(const hl_provider_env *env, const hl_provider_spec *s, const hl_provider_events *ev,
                           void *ud, hl_provider_call **out) {
    return http_start(env, s, s->native_responses ? &responses_wire : &openai_wire, ev, ud, out);
}

static hl_err anthropic_start(const hl_provider_env *env, const hl_provider_spec *s, const hl_provider_events *ev,
                              void *ud, hl_provider_call **out) {
    return http_start(env, s, &anthropic_wire, ev, ud, out);
}

static void http_cancel(hl_provider_call *c) {
    if (c->up) hl_upstream_cancel(c->up);
    call_free(c);
}

static void http_pause(hl_provider_call *c) {
    if (!c->paused) c->want_pause = true;
}

static void http_resume(hl_provider_call *c) {
    c->want_pause = false;
    if (!c->paused || !c->up) return;
    c->paused = false;
    hl_upstream_resume(c->up);
}

static const hl_provider providers[] = {
    [HL_PROVIDER_OPENAI] = {"openai", NULL, openai_start, http_cancel, http_pause, http_resume, &openai_wire},
    [HL_PROVIDER_ANTHROPIC] = {"anthropic", hl_anthropic_check_request, anthropic_start, http_cancel, http_pause,
                               http_resume, &anthropic_wire},
};

const hl_provider *hl_provider_for(hl_provider_kind kind) {
    return kind == HL_PROVIDER_BUILTIN ? &hl_provider_builtin : &providers[kind];
}
