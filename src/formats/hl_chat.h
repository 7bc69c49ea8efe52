/* hl_chat: the internal request/response model every API format maps into and every
 * provider maps out of.
 *
 * With N ingress formats and M provider kinds this keeps translation at N + M pieces, not
 * N x M: the OpenAI ingress parses into hl_chat_request, the Anthropic provider writes a
 * Messages request from it, the Anthropic provider's replies decode into hl_chat_response
 * or a sequence of hl_stream_event, and the OpenAI ingress encodes those for the client.
 *
 * Ownership: an hl_chat_request or hl_chat_response owns every string and json_t inside it;
 * release with hl_chat_request_release() / hl_chat_response_release(). Stream events only
 * borrow their strings for the duration of one callback. */
#ifndef HL_CHAT_H
#define HL_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "hl_buf.h"
#include "hl_err.h"

typedef enum hl_role { HL_ROLE_SYSTEM, HL_ROLE_USER, HL_ROLE_ASSISTANT, HL_ROLE_TOOL } hl_role;

typedef struct hl_tool_call {
    char *id;
    char *name;
    char *arguments; /* JSON text, as OpenAI carries it */
} hl_tool_call;

typedef struct hl_message {
    hl_role role;
    char *text;               /* all text parts joined; "" when none */
    hl_tool_call *tool_calls; /* assistant turns that called tools */
    size_t n_tool_calls;
    char *tool_call_id;       /* role tool: the call this result answers */
    char *name;               /* optional participant name; NULL when absent */
} hl_message;

typedef struct hl_chat_request {
    char *model;               /* as the client sent it: "auto", a backend or a model name */
    hl_message *messages;
    size_t n_messages;
    long max_tokens;           /* -1 when unset */
    bool max_completion_tokens;/* the client named it max_completion_tokens (OpenAI's newer
                                  name, the only one o-series models accept): kept upstream */
    bool has_temperature, has_top_p;
    double temperature, top_p;
    char **stop;
    size_t n_stop;
    bool stream;
    bool include_usage;        /* stream_options.include_usage */
    bool logprobs;
    int top_logprobs;          /* -1 when unset */
    json_t *tools;             /* OpenAI `tools` array or NULL (owned reference) */
    json_t *tool_choice;       /* OpenAI `tool_choice` or NULL (owned reference) */
    json_t *passthrough;       /* other OpenAI fields forwarded as-is to OpenAI-kind backends
                                  (seed, response_format, penalties, ...); object, may be empty.
                                  Anthropic backends take `user` (as metadata.user_id), `top_k`
                                  and `parallel_tool_calls` (as disable_parallel_tool_use). */
    json_t *system_blocks;     /* an Anthropic client's system blocks as sent (cache_control
                                  kept), for Anthropic backends; NULL otherwise (owned) */
    /* Routing hints, never forwarded upstream. */
    char *task_type;           /* NULL when not declared */
    bool regulated;            /* declared regulated data */
    bool pii;                  /* declared PII-bearing */
    size_t text_bytes;         /* total bytes of message text, for token estimates */
    /* Legacy completions (/v1/completions): the one user message is a raw prompt. OpenAI-kind
     * backends get it as sent (POST /completions, `prompt`), the builtin engine without a chat
     * template, Anthropic backends as one user turn. */
    bool raw_prompt;
    char *anthropic_beta;      /* the client's anthropic-beta header, for Anthropic backends
                                  only; NULL when none (owned) */
} hl_chat_request;

typedef enum hl_finish {
    HL_FINISH_NONE = 0, /* not finished (stream cut short) */
    HL_FINISH_STOP,
    HL_FINISH_LENGTH,
    HL_FINISH_TOOL_CALLS,
    HL_FINISH_CONTENT_FILTER,
} hl_finish;

/* Token usage as the upstream reported it. input_tokens counts every prompt token, cached or
 * not; cached_input_tokens and cache_write_tokens are the parts of it billed differently. */
typedef struct hl_usage {
    long input_tokens;
    long output_tokens;
    long cached_input_tokens;
    long cache_write_tokens;
    long reasoning_tokens;
    bool known;     /* the upstream reported usage */
    bool estimated; /* figures are our estimate (upstream sent none) */
} hl_usage;

typedef struct hl_chat_response {
    char *id;
    char *model;
    long created;
    char *text;
    hl_tool_call *tool_calls;
    size_t n_tool_calls;
    hl_finish finish;
    char *stop_sequence; /* the stop sequence that ended generation, when the upstream said */
    hl_usage usage;
    json_t *logprobs; /* OpenAI choice logprobs object or NULL (owned) */
} hl_chat_response;

typedef enum hl_stream_event_type {
    HL_EV_START,     /* id, model known */
    HL_EV_TEXT,      /* text delta */
    HL_EV_TOOL_CALL, /* tool call delta: index, id/name on the first, argument fragments */
    HL_EV_FINISH,    /* finish reason */
    HL_EV_USAGE,     /* usage so far (cumulative: replaces, never adds) */
    HL_EV_LOGPROBS,  /* logprobs content entries for the preceding text */
    HL_EV_ERROR,     /* the upstream reported an error mid-stream */
    HL_EV_DONE,      /* the upstream ended the stream properly */
} hl_stream_event_type;

typedef struct hl_stream_event {
    hl_stream_event_type type;
    const char *id, *model;        /* START */
    const char *text;              /* TEXT: delta; TOOL_CALL: arguments fragment; ERROR: message */
    size_t text_len;
    int index;                     /* TOOL_CALL */
    const char *tool_id, *tool_name; /* TOOL_CALL, first fragment only */
    hl_finish finish;              /* FINISH */
    const char *stop_sequence;     /* FINISH: the matched stop sequence, or NULL */
    hl_usage usage;                /* USAGE */
    const json_t *logprobs;        /* LOGPROBS: borrowed array */
    const char *error_type;        /* ERROR */
} hl_stream_event;

/* An error for the client, independent of its API format: each ingress format renders it
 * in its own shape (OpenAI {"error":{...}}, Anthropic {"type":"error",...}). */
typedef enum hl_api_error_kind {
    HL_AE_INVALID_REQUEST, /* 400 */
    HL_AE_AUTHENTICATION,  /* 401 */
    HL_AE_PERMISSION,      /* 403, privacy refusals included */
    HL_AE_NOT_FOUND,       /* 404 */
    HL_AE_TOO_LARGE,       /* 413 */
    HL_AE_RATE_LIMIT,      /* 429 */
    HL_AE_API,             /* 500, 502 */
    HL_AE_UNAVAILABLE,     /* 503 */
    HL_AE_TIMEOUT,         /* 504 */
    HL_AE_OVERLOADED,      /* 529 from an upstream */
} hl_api_error_kind;

typedef struct hl_api_error {
    int status;             /* HTTP status for the client */
    hl_api_error_kind kind;
    char message[1024];
    char param[96];         /* offending request field, "" when none */
    char code[48];          /* machine-readable code, "" when none (e.g. model_not_found) */
} hl_api_error;

/* No error, as `= {0}` would give, without clearing the 1 KiB message: a request's path makes
 * several. */
static inline void hl_api_error_clear(hl_api_error *e) {
    e->status = 0;
    e->kind = (hl_api_error_kind)0;
    e->message[0] = e->param[0] = e->code[0] = '\0';
}

/* Fills e; message is printf-style. Returns HL_ERR_INVAL so callers can `return hl_api_error_set(...)`. */
hl_err hl_api_error_set(hl_api_error *e, int status, hl_api_error_kind kind, const char *param,
                        const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Reads the gateway's routing hints from a request's `metadata` object (either API format):
 * task_type, is_regulated / regulated, pii_present / pii (booleans or "true"/"1"/"yes").
 * Other keys are ignored. 400 in err when metadata is not an object. */
hl_err hl_chat_parse_metadata(const json_t *md, hl_chat_request *req, hl_api_error *err);

/* Extracts error.message / error.type from an upstream error body (OpenAI and Anthropic
 * both nest them under "error") into msg/type; best effort: falls back to the raw body,
 * cut at 200 bytes with "..." marking the cut. */
void hl_upstream_error_parse(const char *body, size_t len, char *msg, size_t msg_len, char *type,
                             size_t type_len);

/* Receives decoded stream events; a non-zero return stops decoding and is passed back. */
typedef int (*hl_stream_sink)(void *ud, const hl_stream_event *ev);

void hl_chat_request_init(hl_chat_request *r);
void hl_chat_request_release(hl_chat_request *r);
void hl_chat_response_init(hl_chat_response *r);
void hl_chat_response_release(hl_chat_response *r);

const char *hl_role_name(hl_role role);
/* OpenAI finish_reason string, or NULL for HL_FINISH_NONE. */
const char *hl_finish_openai(hl_finish f);

/* A rough token count for text when an upstream gives none: 1 token per 4 bytes, rounded
 * up, as OpenAI's own rule of thumb. Always marked `estimated` in the ledger. */
long hl_tokens_estimate(size_t bytes);
/* Estimated prompt tokens of a request as a chat model sees it: the text (4 bytes a token)
 * plus what a chat template adds around each message and before the answer. */
long hl_chat_input_estimate(const hl_chat_request *req);

/* The confidence of an answer from its OpenAI-style logprobs object ({"content":[{"logprob"}]}):
 * the geometric mean of the token probabilities, exp(mean logprob), in [0, 1]. It rewards
 * answers whose every token the model was sure of and is length-neutral. -1 when the object
 * has no token logprobs. */
double hl_confidence(const json_t *logprobs);

/* The confidence signals of an answer, from the same OpenAI-style logprobs object. Each is a
 * probability in [0, 1], -1 when not known. */
typedef struct hl_conf_signals {
    double geomean; /* hl_confidence: exp(mean logprob); -1 when there are no token logprobs */
    double margin;  /* the first token's top-1 minus top-2 probability, from its top_logprobs
                       (the two most likely, in whatever order they come); -1 when the first
                       token has fewer than 2 alternatives */
    double min;     /* the least likely token's probability; -1 when no token logprobs */
} hl_conf_signals;

/* Computes all three signals (borrows logprobs; NULL or any other shape gives all -1). A
 * logprob above 0 counts as 0 (a probability cannot exceed 1). */
void hl_confidence_signals(const json_t *logprobs, hl_conf_signals *out);

/* Appends a NUL-terminated string as a JSON string literal ("" for NULL). */
hl_err hl_json_put_str(hl_buf *b, const char *s);
/* Appends v serialized compactly. */
hl_err hl_json_put(hl_buf *b, const json_t *v);

/* strdup that reports failure through the error code (dst set to NULL on error). */
hl_err hl_strdup(char **dst, const char *s);

#endif
