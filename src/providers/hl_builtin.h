/* hl_builtin: the `builtin` provider, a GGUF model run in this process by the embedded CPU
 * engine (src/engine), behind the same call interface as an upstream HTTP server.
 *
 * Each builtin backend owns one engine and one generation thread, which generates up to
 * max_sequences requests together (one engine step = one forward pass for all of them; see
 * hl_engine.h). More requests queue FIFO (at most max_queue waiting; past that a call fails at
 * once, so the router can try another backend);
 * the thread renders nothing and allocates little: the prompt is rendered on the event loop
 * when the call starts, tokens are appended to the call's buffer under its lock, and the
 * worker's mailbox (a uv_async) wakes the loop, which hands them to the gateway in the
 * internal model (hl_provider.h): stream events (text, per-token logprobs, finish, usage), or
 * one hl_chat_response with usage and per-token logprobs. Nothing is rendered as a wire
 * format and parsed again.
 *
 * The calls are hl_provider_builtin's (hl_provider.h): start, cancel, pause, resume.
 * Cancellation (client gone) sets a flag that the thread checks before every step and the
 * engine's token callback reads: the sequence stops at once and its slot goes to the next
 * queued request. Pause (a slow client) holds the sequence: the engine skips it in its steps,
 * keeping its KV slot, until resume; the thread sleeps when every sequence it has is held.
 *
 * Threads: the calls and the mailbox run on the event-loop thread that owns the mailbox; the
 * engine runs on the backend's thread. */
#ifndef HL_BUILTIN_H
#define HL_BUILTIN_H

#include <stdbool.h>
#include <uv.h>
#include "hl_chat.h"
#include "hl_config.h"
#include "hl_provider.h"

typedef struct hl_builtin hl_builtin;
typedef struct hl_builtin_mailbox hl_builtin_mailbox;

/* Loads cfg->model_path (a "pulled:..." one resolved in the models directory, hl_models.h), starts the generation thread and runs a 1-token warm-up. On error
 * returns non-zero with a message in err. Caller frees with hl_builtin_free(). */
hl_err hl_builtin_open(hl_builtin **out, const hl_backend_cfg *cfg, char *err, size_t err_len);
/* Stops the thread (waiting for the generation in progress to see its cancel flag) and frees
 * the engine. Every mailbox must be closed first. */
void hl_builtin_free(hl_builtin *b);
/* A description for logs and /readyz: "stories260K.gguf (llama, 0.26M params, template plain)". */
const char *hl_builtin_describe(const hl_builtin *b);
/* The model file's name without ".gguf": what a backend with `model: auto` serves as. */
const char *hl_builtin_model_name(const hl_builtin *b);

/* Whether a generation started now would get a sequence at once: fewer calls are queued or
 * running than max_sequences (any thread may ask; a hint, it may change right after). Work
 * of the lowest priority (shadow comparisons) runs only then. */
bool hl_builtin_idle(const hl_builtin *b);

/* Tokens generated for calls since open (any thread may ask). */
unsigned long hl_builtin_tokens(const hl_builtin *b);

/* Counts req's prompt tokens with the model's own tokenizer, as a completion would see it
 * (chat template applied, or the raw prompt, BOS included) into *n. The tokenizer is
 * read-only once loaded: any thread may call this. HL_ERR_NOMEM on allocation failure. */
hl_err hl_builtin_count_tokens(const hl_builtin *b, const hl_chat_request *req, long *n);

/* ---- embeddings (POST /v1/embeddings) ----
 *
 * An embeddings job queues on the backend's thread beside the generations (at most max_queue
 * waiting). The thread runs it one input at a time between engine steps, each in a KV slot no
 * sequence holds (hl_engine_embed): generations in progress keep their slots and go on between
 * the inputs, unchanged. While a job waits, one slot is kept from new generations, so that a
 * job never waits behind the whole queue. The vectors come back through the mailbox: the
 * callback runs once on the loop thread, unless the job was cancelled first. */

typedef struct hl_builtin_embed hl_builtin_embed;

/* One input: a text (tokenized with BOS as the model wants), or, when text is NULL, token ids
 * used as they are. */
typedef struct hl_builtin_input {
    const char *text;
    size_t len;
    const int32_t *ids;
    size_t n_ids;
} hl_builtin_input;

typedef struct hl_builtin_embed_result {
    hl_err err;          /* HL_OK; HL_ERR_LIMIT: input `failed` is longer than the context;
                            HL_ERR_INVAL: input `failed` is empty or has an id outside the
                            vocabulary; HL_ERR_CANCELLED: the backend is closing; other: the
                            engine failed */
    size_t failed;       /* the input that failed (err != HL_OK) */
    const float *vecs;   /* n x dim, each L2-normalised; borrowed for the callback */
    uint32_t dim;
    const int *n_tokens; /* [n] tokens of each input */
    size_t n;
} hl_builtin_embed_result;

typedef void (*hl_builtin_embed_cb)(void *ud, const hl_builtin_embed_result *r);

/* Queues the embeddings of in[0..n) (copied) with the backend's pooling (cfg->pooling, else
 * the model's). HL_ERR_LIMIT when the queue is full, HL_ERR_NOMEM. On success *out is the job,
 * valid until the callback has run or hl_builtin_embed_cancel(). Loop thread only. */
hl_err hl_builtin_embed_start(hl_builtin *b, hl_builtin_mailbox *mb, const hl_builtin_input *in, size_t n,
                              hl_builtin_embed_cb cb, void *ud, hl_builtin_embed **out);
/* The caller no longer wants the result (client gone): no callback; the engine skips the
 * inputs not yet embedded. */
void hl_builtin_embed_cancel(hl_builtin_embed *job);
/* The model's embedding length. */
uint32_t hl_builtin_dim(const hl_builtin *b);

/* One per event loop; closed (asynchronously) with hl_builtin_mailbox_close(). */
hl_err hl_builtin_mailbox_new(hl_builtin_mailbox **out, uv_loop_t *loop);
void hl_builtin_mailbox_close(hl_builtin_mailbox *mb);

#endif
