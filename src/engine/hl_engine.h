/* hl_engine: text generation with an in-process model: the API the `builtin` provider and
 * the `hybridllm run` command use.
 *
 * An engine is a loaded model (hl_model), its tokenizer (hl_tok) and the scratch memory for
 * sampling, all allocated by hl_engine_open(). hl_engine_generate() tokenizes a prompt, runs
 * it through the model in batches, then samples one token at a time until EOS (or another
 * end-of-generation token), max_tokens, the end of the context, or the callback asks to
 * stop. Each token is handed to the callback as it is produced (for streaming), with its
 * text and its log-probability.
 *
 * Sampling follows llama.cpp's default order: repetition penalty, top-k, top-p, min-p (the
 * last three on the distribution at temperature 1), then temperature and a draw from a
 * seeded generator. temperature <= 0 is greedy (argmax after the penalty). The same seed,
 * prompt and settings give the same tokens.
 *
 * Several generations at once: hl_engine_seq_start() admits a request into one of the
 * model's n_seq KV slots, and each hl_engine_step() runs one forward pass for every admitted
 * sequence together: the next token of each one that is generating, and as much of the
 * waiting prompts as the batch has room for (decoding first, so a long prompt never stalls
 * the others). Each weight row is read once per step for all of them, which is what makes
 * serving n requests together cost far less than n times one. hl_engine_generate() is the
 * one-request loop over the same steps.
 *
 * Threads: an engine and its sequences are used by one thread at a time; the matmuls use
 * n_threads threads. The gateway runs the steps on a worker thread and posts tokens back to
 * its event loop from the callback.
 *
 * Ownership: hl_engine_open() returns an engine the caller frees with hl_engine_free(). The
 * token passed to the callback (its text included) is borrowed for the call only. */
#ifndef HL_ENGINE_H
#define HL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_err.h"
#include "hl_model.h"
#include "hl_tok.h"

typedef struct hl_engine hl_engine;

typedef struct hl_engine_params {
    const char *model_path;
    int n_threads;      /* 0: 1 */
    uint32_t n_ctx;     /* 0: the model's trained context, capped at 4096 */
    uint32_t n_batch;   /* tokens per forward pass; 0: 64 */
    uint32_t n_seq;     /* sequences generated together (KV cache slots); 0: 1 */
    bool keep_layout;   /* hl_model_params.keep_layout: no repacked copy of the weights */
} hl_engine_params;

typedef struct hl_engine_sampling {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off; applied to the last repeat_last_n tokens */
    int repeat_last_n;    /* 0: 64 */
    uint64_t seed;
} hl_engine_sampling;

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty. */
hl_engine_sampling hl_engine_sampling_default(void);

/* One of the most likely tokens at a position (OpenAI's top_logprobs). */
typedef struct hl_engine_alt {
    int32_t id;
    float logprob;
} hl_engine_alt;

#define HL_ENGINE_MAX_TOP 20

typedef struct hl_engine_token {
    int32_t id;
    const char *text; /* the token's bytes (may be part of a UTF-8 character); borrowed */
    size_t len;
    float logprob;    /* log-probability under the model's distribution (before sampling
                         settings), the figure the router's confidence check reads */
    const hl_engine_alt *top; /* the request's top_logprobs most likely tokens, most likely
                                 first (borrowed, valid during the callback); NULL when none */
    int n_top;
} hl_engine_token;

/* Returns 0 to go on, anything else to stop (cancellation). */
typedef int (*hl_engine_token_cb)(void *ctx, const hl_engine_token *tok);

typedef enum hl_engine_stop {
    HL_ENGINE_STOP_EOG,       /* the model ended its turn */
    HL_ENGINE_STOP_LENGTH,    /* max_tokens reached */
    HL_ENGINE_STOP_CONTEXT,   /* the KV cache is full */
    HL_ENGINE_STOP_CANCELLED, /* the callback asked to stop */
} hl_engine_stop;

typedef struct hl_engine_request {
    const char *prompt;
    size_t prompt_len;
    bool add_bos;         /* prepend BOS if the model wants it (usually true) */
    bool parse_special;   /* recognise special tokens such as <|eot_id|> in the prompt */
    int max_tokens;       /* <= 0: until EOG or the context is full */
    hl_engine_sampling sampling;
    hl_engine_token_cb on_token; /* may be NULL */
    void *cb_ctx;
    int top_logprobs;     /* 0..HL_ENGINE_MAX_TOP: the most likely tokens each token gets */
} hl_engine_request;

typedef struct hl_engine_result {
    int n_prompt, n_gen;
    double prefill_s, decode_s; /* wall time of the prompt pass and of generation */
    hl_engine_stop stop;
} hl_engine_result;

hl_err hl_engine_open(hl_engine **out, const hl_engine_params *p, char *err, size_t err_size);
void hl_engine_free(hl_engine *e);

hl_model *hl_engine_model(hl_engine *e);
const hl_tok *hl_engine_tok(const hl_engine *e);

/* Generates a continuation of req->prompt. HL_ERR_LIMIT when the prompt does not fit in the
 * context; errors of the model otherwise. The KV cache is reused from position 0. */
hl_err hl_engine_generate(hl_engine *e, const hl_engine_request *req, hl_engine_result *res);

/* ---- several generations at once ---- */

typedef struct hl_engine_seq hl_engine_seq;

/* Tokenizes req->prompt and admits it into a free slot; req is copied, its prompt is not kept
 * (the callback context must outlive the sequence). HL_ERR_LIMIT when no slot is free
 * (hl_engine_free_slots) or the prompt does not fit the context, HL_ERR_INVAL for an empty
 * one. The caller frees *out with hl_engine_seq_free(). */
hl_err hl_engine_seq_start(hl_engine *e, const hl_engine_request *req, hl_engine_seq **out);
/* Slots not held by an unfinished sequence. */
int hl_engine_free_slots(const hl_engine *e);
/* One forward pass for all admitted sequences (see the top of the file); callbacks run from
 * here. *active (may be NULL) is the number still unfinished afterwards. An error of the
 * model finishes every sequence of the pass with it. */
hl_err hl_engine_step(hl_engine *e, int *active);
/* True once s has finished; then *res and *err (each may be NULL) say how. */
bool hl_engine_seq_finished(const hl_engine_seq *s, hl_engine_result *res, hl_err *err);
/* A held sequence keeps its slot and its cache but takes no part in the steps (no tokens, no
 * callbacks) until released with hold false: backpressure from a slow reader. */
void hl_engine_seq_hold(hl_engine_seq *s, bool hold);
/* Finishes s now as cancelled (no callback) and frees its slot. */
void hl_engine_seq_cancel(hl_engine_seq *s);
/* Cancels s if it is unfinished, then frees it. NULL ok. */
void hl_engine_seq_free(hl_engine_seq *s);

/* ---- embeddings ---- */

/* How the hidden states of a prompt's tokens become one vector. */
typedef enum hl_engine_pooling {
    HL_ENGINE_POOL_MODEL = 0, /* as the model says (hl_engine_pooling_of) */
    HL_ENGINE_POOL_MEAN,      /* the mean over every token, BOS included (llama.cpp's "mean") */
    HL_ENGINE_POOL_CLS,       /* the first token's */
    HL_ENGINE_POOL_LAST,      /* the last token's */
} hl_engine_pooling;

/* The model's pooling: GGUF "<arch>.pooling_type" 1 mean, 2 cls, 3 last; absent, 0 (none)
 * or anything else: mean. */
hl_engine_pooling hl_engine_pooling_of(const hl_engine *e);

/* The embedding of text (len bytes): tokenized as llama-server does for embeddings (BOS if
 * the model asks for one, special tokens such as <s> recognised in the text), run through the model in chunks of the batch size in a KV slot
 * that no sequence holds (used for the call only: sequences in the other slots are
 * untouched and go on at the next step), the final hidden states (after the output norm)
 * pooled and L2-normalised into out[0..dim) (dim must be the model's). *n_tokens (may be
 * NULL) receives the prompt's tokens. Runs on the thread that owns the engine, between
 * steps. Errors: HL_ERR_LIMIT when the prompt is longer than the context, HL_ERR_AGAIN
 * when every slot is held, HL_ERR_INVAL for an empty prompt or a wrong dim, HL_ERR_NOMEM. */
hl_err hl_engine_embed(hl_engine *e, const char *text, size_t len, hl_engine_pooling pooling, float *out,
                       uint32_t dim, int *n_tokens);
/* The same for token ids given as they are (no BOS added); HL_ERR_INVAL for an id outside
 * the vocabulary. */
hl_err hl_engine_embed_tokens(hl_engine *e, const int32_t *ids, size_t n, hl_engine_pooling pooling, float *out,
                              uint32_t dim);

/* Picks the next token from logits (vocab entries) under s, given the recent tokens for the
 * repetition penalty; rng is the generator state (seeded from s->seed by the caller).
 * Exposed for tests; uses the engine's scratch, so it does not allocate. */
int32_t hl_engine_sample(hl_engine *e, const float *logits, const hl_engine_sampling *s,
                         const int32_t *recent, int n_recent, uint64_t *rng);

#endif
