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

/* Loads cfg->model_path, starts the generation thread and runs a 1-token warm-up. On error
 * returns non-zero with a message in err. Caller frees with hl_builtin_free(). */
hl_err hl_builtin_open(hl_builtin **out, const hl_backend_cfg *cfg, char *err, size_t err_len);
/* Stops the thread (waiting for the generation in progress to see its cancel flag) and frees
 * the engine. Every mailbox must be closed first. */
void hl_builtin_free(hl_builtin *b);
/* A description for logs and /readyz: "stories260K.gguf (llama, 0.26M params, template plain)". */
const char *hl_builtin_describe(const hl_builtin *b);

/* Tokens generated for calls since open (any thread may ask). */
unsigned long hl_builtin_tokens(const hl_builtin *b);

/* Counts req's prompt tokens with the model's own tokenizer, as a completion would see it
 * (chat template applied, or the raw prompt, BOS included) into *n. The tokenizer is
 * read-only once loaded: any thread may call this. HL_ERR_NOMEM on allocation failure. */
hl_err hl_builtin_count_tokens(const hl_builtin *b, const hl_chat_request *req, long *n);

/* One per event loop; closed (asynchronously) with hl_builtin_mailbox_close(). */
hl_err hl_builtin_mailbox_new(hl_builtin_mailbox **out, uv_loop_t *loop);
void hl_builtin_mailbox_close(hl_builtin_mailbox *mb);

#endif
