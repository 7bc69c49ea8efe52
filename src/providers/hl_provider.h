/* hl_provider: every backend kind behind one call interface.
 *
 * The gateway asks a provider to start a call for one attempt (hl_provider_spec), and gets
 * back the internal model only: decoded stream events (hl_stream_event) while a streamed
 * answer arrives, then one hl_provider_result that ends the call (a whole hl_chat_response,
 * or an error with the upstream's status, message and retry hints). It never sees the wire.
 * The same four operations drive every kind:
 *
 *   start   begins the call; the callbacks come later, from the event loop, never from
 *           inside start itself;
 *   cancel  ends it at once (the client went away): no callback follows;
 *   pause   asks for no more events until resume (a slow client: backpressure). An HTTP
 *           upstream stops reading its socket; the builtin engine stops generating that
 *           sequence. Events already decoded from the bytes in hand may still arrive;
 *   resume  lets them flow again.
 *
 * HTTP kinds (OpenAI-compatible, Anthropic) share one call driver over hl_upstream and differ
 * only in their wire table (request building, response parsing, stream decoding), which the
 * golden-file tests also use directly. The builtin kind (hl_builtin.h) runs the embedded
 * engine and hands over events and responses it builds itself.
 *
 * Threads: every function and callback of a call runs on the event loop that started it. */
#ifndef HL_PROVIDER_H
#define HL_PROVIDER_H

#include <uv.h>
#include "hl_anthropic.h"
#include "hl_backend.h"
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_responses.h"
#include "hl_sse.h"

struct hl_upstream;
struct hl_builtin_mailbox;

/* ---- the wire of an HTTP kind ---- */

/* Per-call stream decoding state, whatever the kind. */
typedef struct hl_provider_decoder {
    bool openai_started;
    hl_anthropic_decoder anthropic;
    hl_responses_decoder responses;
} hl_provider_decoder;

typedef struct hl_provider_wire {
    /* Fills url, body and headers: header lines "Name: value", each NUL-terminated, back to
     * back (hl_upstream_header_add). The backend's credentials go only there. base_url: the
     * replica's (hl_backend.h); NULL: the backend's. */
    hl_err (*build)(const hl_backend *b, const char *base_url, const hl_chat_request *req, const char *model,
                    hl_buf *url, hl_buf *body, hl_buf *headers);
    hl_err (*parse_response)(const char *body, size_t len, hl_chat_response *resp);
    void (*decoder_init)(hl_provider_decoder *d);
    int (*decode)(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud);
} hl_provider_wire;

/* ---- calls ---- */

typedef struct hl_provider_call hl_provider_call;

/* What one worker (event loop) lends its calls. Borrowed; outlives every call. */
typedef struct hl_provider_env {
    struct hl_upstream *up;             /* HTTP client of the loop */
    struct hl_builtin_mailbox *mailbox; /* where builtin engines post to the loop */
} hl_provider_env;

/* One attempt: everything borrowed for the duration of start() only. */
typedef struct hl_provider_spec {
    hl_backend *backend;
    const char *base_url;       /* the replica the attempt goes to (hl_backend_admit_at); NULL:
                                   the backend's base URL */
    const hl_chat_request *req; /* req->stream and req->logprobs are ignored: see below */
    const char *model;          /* upstream model */
    bool stream;                /* deliver events as they come, else one whole response */
    bool logprobs;              /* ask for per-token logprobs, and at least 2 alternatives a
                                   token (the gateway judges the answer: its first token's margin) */
    bool no_stop;               /* keep req->stop from the upstream: the gateway applies them */
    bool native_responses;      /* kind openai: POST {base_url}/responses in the Responses
                                   format instead of chat completions (a Responses client on
                                   an OpenAI cloud backend) */
    long timeout_ms, connect_timeout_ms;
} hl_provider_spec;

/* How a call ended: exactly one of transport failure (err != HL_OK), an upstream error
 * (status not 2xx), a whole response (non-streamed 2xx), or the end of a stream. */
typedef struct hl_provider_result {
    hl_err err;                 /* HL_OK, HL_ERR_TIMEOUT, HL_ERR_UPSTREAM (no answer) */
    const char *errmsg;         /* err != HL_OK: why ("connection refused", ...) */
    int status;                 /* HTTP status (builtin: what a server would say); 0: none */
    /* status not 2xx: the upstream's error.message and error.type (best effort) */
    const char *error_message, *error_type;
    bool spend_limit;           /* a 429 for a spend limit (insufficient_quota): no retry helps */
    bool context_overflow;      /* a 4xx saying the prompt does not fit the model's context:
                                   a failure of this backend for this request only */
    double retry_after_ms;      /* retry-after-ms / retry-after; < 0: none */
    int should_retry;           /* x-should-retry: -1 absent, 0 false, 1 true */
    /* 2xx, not streamed: the answer, NULL when the body was not a valid completion. The
     * receiver may take its contents (then it must leave *response released-safe, e.g. by
     * hl_chat_response_init); the call releases whatever is left. */
    hl_chat_response *response;
    /* 2xx, streamed: */
    bool not_streaming;         /* the upstream answered without an event stream */
    const char *stream_failure; /* the stream broke at our end (event over the size limit,
                                   malformed event); NULL otherwise */
} hl_provider_result;

enum { HL_PROVIDER_CONTINUE = 0, HL_PROVIDER_ABORT = 1 };

typedef struct hl_provider_events {
    /* The status is known (once, before any event). */
    void (*on_status)(void *ud, int status);
    /* A decoded stream event (stream calls only). HL_PROVIDER_ABORT ends the call: its
     * on_done follows with HL_ERR_CANCELLED. */
    int (*on_event)(void *ud, const hl_stream_event *ev);
    /* A run of events is over (a network read, an engine step): a good time to write what
     * they produced and to pause. May be NULL. */
    void (*on_flush)(void *ud);
    /* The call is over; the result is valid during the callback only. The call is freed
     * after it returns: cancel must not be called on it any more. */
    void (*on_done)(void *ud, hl_provider_result *res);
} hl_provider_events;

typedef struct hl_provider {
    const char *name;
    /* Refuses requests this kind cannot honour (err filled); NULL: accepts all. */
    hl_err (*check)(const hl_chat_request *req, hl_api_error *err);
    /* Starts the call. HL_ERR_LIMIT: the backend is full right now (try another);
     * other errors: it could not be started. No callback comes from inside start. */
    hl_err (*start)(const hl_provider_env *env, const hl_provider_spec *spec,
                    const hl_provider_events *ev, void *ud, hl_provider_call **out);
    void (*cancel)(hl_provider_call *c);
    void (*pause)(hl_provider_call *c);
    void (*resume)(hl_provider_call *c);
    const hl_provider_wire *wire; /* HTTP kinds; NULL for builtin */
} hl_provider;

const hl_provider *hl_provider_for(hl_provider_kind kind);

/* Appends one header line "name: value" to a header block (hl_provider_wire.build). A value
 * with CR or LF is refused (HL_ERR_INVAL): no header injection. */
hl_err hl_provider_header_add(hl_buf *headers, const char *name, const char *value);

/* Does an upstream's error answer (status, body) say the prompt is longer than the model's
 * context? llama.cpp ("exceeds the available context size"), vLLM and OpenAI ("maximum context
 * length", code context_length_exceeded), Ollama, Anthropic ("prompt is too long"). */
bool hl_provider_context_overflow(int status, const char *body, size_t len);

/* The wire of kind openai for spec.native_responses (POST {base_url}/responses); static. */
const hl_provider_wire *hl_provider_responses_wire(void);

/* Appends "Authorization: Bearer KEY" (the OpenAI kind's credentials); the line is wiped from
 * the stack after. */
hl_err hl_provider_bearer_add(hl_buf *headers, const char *key);

/* The builtin kind's table (hl_builtin.c). */
extern const hl_provider hl_provider_builtin;

#endif
