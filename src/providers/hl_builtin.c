/* hl_builtin: the embedded engine as a provider (see hl_builtin.h).
 *
 * A call is shared by two threads: the backend's generation thread (which fills `text` and
 * `toks` under the call's lock) and the event loop that started it (which hands them to the
 * caller as events or a response). It is reference-counted: one reference for the engine
 * side (queue and generation), one for the loop side (until on_done or cancel), one while the
 * call sits in the mailbox's to-do list. The mailbox is reference-counted the same way, so the
 * engine can post to a mailbox whose loop has already closed it.
 *
 * An embeddings job is a call too (emb_n > 0: same references, flags and mailbox), queued on
 * its own list (ehead) and run by the thread one input at a time between steps; it is posted
 * once, when every input is done. */
#include "hl_builtin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hl_buf.h"
#include "hl_models.h"
#include "hl_chat.h"
#include "hl_engine.h"
#include "hl_log.h"
#include "hl_template.h"

typedef struct hl_builtin_call hl_builtin_call;

struct hl_builtin {
    const hl_backend_cfg *cfg;
    hl_engine *engine;
    hl_template tpl;
    char desc[256];
    char path[4096];              /* the model file (a "pulled:" model_path resolved) */
    char name[128];               /* the file's name without .gguf, for `model: auto` */
    pthread_t thread;
    atomic_ulong tokens;          /* generated for calls since open, all sequences */
    atomic_int gens;              /* generation calls queued or running (hl_builtin_idle) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hl_builtin_call *head, *tail; /* queue, under mu */
    int queued;
    hl_builtin_call *ehead, *etail; /* embeddings jobs waiting, under mu */
    int equeued;
    bool stop;
    /* The generation thread's own: the call and engine sequence in each of max_sequences
     * slots (NULL: free). */
    hl_builtin_call **active;
    hl_engine_seq **seqs;
};

struct hl_builtin_mailbox {
    uv_async_t async;
    pthread_mutex_t mu;
    hl_builtin_call *todo;  /* calls with news, under mu */
    bool closed;            /* under mu: no more uv_async_send */
    atomic_int refs;        /* the loop's own, one per call */
};

typedef struct tok_rec {
    size_t off, len; /* bytes of the token in text */
    float logprob;
    int n_top;       /* its alternatives in the call's alts (row i: alts[i * top_n ...]) */
} tok_rec;

struct hl_builtin_call {
    hl_builtin *b;
    hl_builtin_mailbox *mb;
    atomic_int refs;
    atomic_bool cancelled;
    atomic_bool paused;       /* the client is slow: the engine holds this sequence */
    hl_builtin_call *q_next;  /* queue link, under b->mu */
    hl_builtin_call *mb_next; /* mailbox link, under mb->mu */
    hl_builtin_call *run_next; /* the loop's copy of mb_next while it works through a to-do list:
                                  once the lock is released the engine may post the call again,
                                  which rewrites mb_next */
    bool in_mb;               /* under mb->mu */
    /* set before queueing, then read-only: */
    char *prompt;
    size_t prompt_len;
    int max_tokens;
    hl_engine_sampling sampling;
    char **stop;
    size_t n_stop, max_stop_len;
    bool stream, logprobs;
    int top_n;                /* top_logprobs asked for: the most likely tokens at each step */
    /* engine -> loop, under mu: */
    pthread_mutex_t mu;
    hl_buf text;
    tok_rec *toks;
    hl_engine_alt *alts;      /* cap_toks x top_n */
    size_t n_toks, cap_toks;
    bool done, stopped_by_seq;
    size_t stop_idx;          /* stopped_by_seq: which one */
    hl_err gen_err;
    hl_engine_result res;
    /* loop side only: */
    hl_provider_events ev;
    void *ud;
    bool detached;            /* cancelled by the caller: no callbacks */
    bool status_sent, started;
    size_t delivered;         /* bytes of text handed over as events */
    /* an embeddings job (emb_n > 0) instead of a generation: */
    hl_builtin_input *emb_in; /* [emb_n] copies (text and ids owned), read-only once queued */
    size_t emb_n;
    size_t emb_next;          /* the thread's: inputs embedded so far */
    float *emb_vecs;          /* [emb_n x emb_dim], written by the thread before done */
    int *emb_tokens;          /* [emb_n] */
    uint32_t emb_dim;
    size_t emb_failed;        /* the input the error (gen_err) is about */
    hl_builtin_embed_cb emb_cb;
    size_t toks_delivered;
    char model[128], id[48];
    long created;
};

/* ------------------------------------------------------------------ lifetimes */

static void mailbox_release(hl_builtin_mailbox *mb) {
    if (atomic_fetch_sub(&mb->refs, 1) != 1) return;
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}

static void call_release(hl_builtin_call *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    free(c->prompt);
    for (size_t i = 0; i < c->n_stop; i++) free(c->stop[i]);
    free(c->stop);
    hl_buf_release(&c->text);
    free(c->toks);
    free(c->alts);
    for (size_t i = 0; i < c->emb_n; i++) {
        free((char *)c->emb_in[i].text);
        free((int32_t *)c->emb_in[i].ids);
    }
    free(c->emb_in);
    free(c->emb_vecs);
    free(c->emb_tokens);
    pthread_mutex_destroy(&c->mu);
    hl_builtin_mailbox *mb = c->mb;
    free(c);
    mailbox_release(mb);
}

/* Engine side: there is news for the loop. */
static void post(hl_builtin_call *c) {
    hl_builtin_mailbox *mb = c->mb;
    pthread_mutex_lock(&mb->mu);
    if (!mb->closed && !c->in_mb) {
        c->in_mb = true;
        atomic_fetch_add(&c->refs, 1);
        c->mb_next = mb->todo;
        mb->todo = c;
        uv_async_send(&mb->async);
    }
    pthread_mutex_unlock(&mb->mu);
}

/* ------------------------------------------------------------------ engine side */

static int on_token(void *ctx, const hl_engine_token *tok) {
    hl_builtin_call *c = ctx;
    atomic_fetch_add(&c->b->tokens, 1);
    if (atomic_load(&c->cancelled)) return 1;
    int stop = 0;
    pthread_mutex_lock(&c->mu);
    size_t before = c->text.len;
    if (hl_buf_append(&c->text, tok->text, tok->len) != HL_OK) {
        stop = 1;
    } else {
        if (c->n_toks == c->cap_toks) {
            size_t cap = c->cap_toks ? c->cap_toks * 2 : 64;
            hl_engine_alt *a = c->top_n ? realloc(c->alts, cap * (size_t)c->top_n * sizeof *a) : NULL;
            if (a) c->alts = a;
            tok_rec *t = !c->top_n || a ? realloc(c->toks, cap * sizeof *t) : NULL;
            if (t) {
                c->toks = t;
                c->cap_toks = cap;
            }
        }
        if (c->n_toks < c->cap_toks) {
            int k = tok->n_top < c->top_n ? tok->n_top : c->top_n;
            if (k > 0) memcpy(c->alts + c->n_toks * (size_t)c->top_n, tok->top, (size_t)k * sizeof *tok->top);
            c->toks[c->n_toks++] = (tok_rec){before, tok->len, tok->logprob, k > 0 ? k : 0};
        }
        /* Stop sequences: look where the new token could have completed one. */
        for (size_t i = 0; i < c->n_stop && !stop; i++) {
            size_t sl = strlen(c->stop[i]);
            size_t from = before >= sl ? before - sl + 1 : 0;
            char *hit = memmem(c->text.data + from, c->text.len - from, c->stop[i], sl);
            if (hit) {
                c->text.len = (size_t)(hit - c->text.data);
                c->text.data[c->text.len] = '\0';
                c->stopped_by_seq = true;
                c->stop_idx = i;
                stop = 1;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    post(c);
    return stop;
}

/* The generation is over (or never started): hand the result to the loop. */
static void call_finish(hl_builtin_call *c, const hl_engine_result *res, hl_err e) {
    if (!c->emb_n) atomic_fetch_sub(&c->b->gens, 1);
    pthread_mutex_lock(&c->mu);
    if (res) c->res = *res;
    c->gen_err = e;
    c->done = true;
    pthread_mutex_unlock(&c->mu);
    post(c);
    call_release(c); /* the engine side's reference */
}

/* Does an admitted call need the engine (neither paused nor gone)? Cancelled ones count: the
 * thread must see them to free their slots. Under b->mu, so that resume and cancel, which
 * signal b->cv under it, are never missed. */
static bool runnable(const hl_builtin *b) {
    for (int i = 0; i < b->cfg->max_sequences; i++) {
        const hl_builtin_call *c = b->active[i];
        if (c && (!atomic_load(&c->paused) || atomic_load(&c->cancelled))) return true;
    }
    return false;
}

/* The next input of the embeddings job c, in a slot no sequence holds; true once the job is
 * over (every input done, an error, or cancelled), its result handed to the loop. */
static bool embed_next(hl_builtin *b, hl_builtin_call *c) {
    hl_err e = HL_OK;
    if (atomic_load(&c->cancelled)) {
        e = HL_ERR_CANCELLED;
    } else {
        const hl_builtin_input *in = &c->emb_in[c->emb_next];
        float *v = c->emb_vecs + c->emb_next * c->emb_dim;
        hl_engine_pooling pool = (hl_engine_pooling)b->cfg->pooling;
        int n = (int)in->n_ids;
        e = in->text ? hl_engine_embed(b->engine, in->text, in->len, pool, v, c->emb_dim, &n)
                     : hl_engine_embed_tokens(b->engine, in->ids, in->n_ids, pool, v, c->emb_dim);
        if (e == HL_ERR_AGAIN) return false; /* every slot held: after the next step */
        c->emb_tokens[c->emb_next] = n;
        if (!e && ++c->emb_next < c->emb_n) return false;
    }
    pthread_mutex_lock(&c->mu);
    c->emb_failed = c->emb_next;
    pthread_mutex_unlock(&c->mu);
    call_finish(c, NULL, e);
    return true;
}

/* The backend's thread: admits queued calls while the engine has free slots, runs the next
 * input of the embeddings job in hand, then runs one engine step for all admitted calls
 * (their next tokens, and prompt chunks of new ones), and finishes the calls whose generation
 * ended. */
static void *generation_main(void *arg) {
    hl_builtin *b = arg;
    hl_builtin_call **active = b->active;
    hl_engine_seq **seqs = b->seqs;
    hl_builtin_call *emb = NULL; /* the embeddings job in hand */
    int n_active = 0, max = b->cfg->max_sequences;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->stop && !b->head && !runnable(b) && !((emb || b->ehead) && n_active < max))
            pthread_cond_wait(&b->cv, &b->mu);
        bool stopping = b->stop;
        if (!emb && b->ehead) {
            emb = b->ehead;
            b->ehead = emb->q_next;
            if (!b->ehead) b->etail = NULL;
            b->equeued--;
            emb->q_next = NULL;
        }
        /* As many as there are free slots (cancelled ones take none: they end at once), less
         * one kept for the embeddings job in hand. */
        hl_builtin_call *admit = NULL, **tail = &admit;
        for (int room = max - n_active - (emb != NULL); b->head && (stopping || room > 0);) {
            hl_builtin_call *c = b->head;
            b->head = c->q_next;
            if (!b->head) b->tail = NULL;
            b->queued--;
            c->q_next = NULL;
            *tail = c;
            tail = &c->q_next;
            room -= !atomic_load(&c->cancelled);
        }
        pthread_mutex_unlock(&b->mu);
        /* New calls into free slots (tokenizing their prompts here, off the loop). */
        while (admit) {
            hl_builtin_call *c = admit;
            admit = c->q_next;
            if (stopping || atomic_load(&c->cancelled)) {
                call_finish(c, NULL, HL_OK);
                continue;
            }
            hl_engine_request r = {
                .prompt = c->prompt,
                .prompt_len = c->prompt_len,
                .add_bos = true,
                .parse_special = hl_template_uses_special(b->tpl),
                .max_tokens = c->max_tokens,
                .sampling = c->sampling,
                .on_token = on_token,
                .cb_ctx = c,
                .top_logprobs = c->top_n,
            };
            int i = 0;
            while (i < b->cfg->max_sequences && active[i]) i++;
            hl_err e = i < b->cfg->max_sequences ? hl_engine_seq_start(b->engine, &r, &seqs[i]) : HL_ERR_LIMIT;
            if (e) {
                call_finish(c, NULL, e);
                continue;
            }
            active[i] = c;
            n_active++;
        }
        if (stopping) {
            pthread_mutex_lock(&b->mu);
            hl_builtin_call *rest = b->ehead;
            b->ehead = b->etail = NULL;
            pthread_mutex_unlock(&b->mu);
            if (emb) {
                emb->q_next = rest;
                rest = emb;
            }
            while (rest) { /* each ends at once, cancelled */
                hl_builtin_call *j = rest;
                rest = j->q_next;
                atomic_store(&j->cancelled, true);
                embed_next(b, j);
            }
            for (int i = 0; i < b->cfg->max_sequences; i++) {
                if (!active[i]) continue;
                hl_engine_result res;
                hl_engine_seq_cancel(seqs[i]);
                hl_engine_seq_finished(seqs[i], &res, NULL);
                hl_engine_seq_free(seqs[i]);
                call_finish(active[i], &res, HL_OK);
                active[i] = NULL;
            }
            break;
        }
        /* Clients gone: their sequences stop before this step. Slow clients: theirs wait. */
        for (int i = 0; i < b->cfg->max_sequences; i++) {
            if (!active[i]) continue;
            if (atomic_load(&active[i]->cancelled)) hl_engine_seq_cancel(seqs[i]);
            else hl_engine_seq_hold(seqs[i], atomic_load(&active[i]->paused));
        }
        /* (With every slot taken it waits; a cancelled one ends at once.) */
        if (emb && (n_active < max || atomic_load(&emb->cancelled)) && embed_next(b, emb)) emb = NULL;
        if (n_active) hl_engine_step(b->engine, NULL);
        for (int i = 0; i < b->cfg->max_sequences; i++) {
            hl_engine_result res;
            hl_err e;
            if (!active[i] || !hl_engine_seq_finished(seqs[i], &res, &e)) continue;
            hl_engine_seq_free(seqs[i]);
            seqs[i] = NULL;
            call_finish(active[i], &res, e);
            active[i] = NULL;
            n_active--;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ loop side: events */

/* The longest prefix of s[0..n) that does not end inside a UTF-8 sequence. */
static size_t utf8_complete(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need == back + 1 || need == 1 ? n : i - 1;
}

/* s[0..n) into out (reset first, NUL-terminated) with every byte that is not valid UTF-8
 * replaced by U+FFFD: a model can emit a stray byte, and what reaches a client must be text. */
static hl_err utf8_clean(const char *s, size_t n, hl_buf *out) {
    hl_buf_reset(out);
    hl_err e = hl_buf_reserve(out, n + 1);
    for (size_t i = 0; i < n && !e;) {
        unsigned char ch = (unsigned char)s[i];
        size_t len = ch < 0x80 ? 1 : ch >= 0xF0 && ch < 0xF5 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC2 && ch < 0xE0 ? 2 : 0;
        bool ok = len && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok) {
            e = hl_buf_append(out, s + i, len);
            i += len;
        } else {
            e = hl_buf_append(out, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    if (!e) e = hl_buf_reserve(out, 1);
    if (!e) out->data[out->len] = '\0';
    return e;
}

/* One logprobs entry: token (its text made valid UTF-8), logprob, bytes; top_logprobs when
 * `top` is set. NULL when out of memory. */
static json_t *logprob_entry(const char *p, size_t len, float logprob, json_t *top, hl_buf *tok) {
    json_t *bytes = json_array();
    for (size_t k = 0; bytes && k < len; k++)
        if (json_array_append_new(bytes, json_integer((unsigned char)p[k]))) bytes = NULL;
    hl_buf_reset(tok);
    json_t *text = bytes && !utf8_clean(p, len, tok) ? json_stringn(tok->data ? tok->data : "", tok->len) : NULL;
    json_t *o = text ? json_pack("{s:o,s:f,s:o}", "token", text, "logprob", (double)logprob, "bytes", bytes) : NULL;
    if (!text) json_decref(bytes);
    if (o && top && json_object_set_new(o, "top_logprobs", top)) {
        json_decref(o);
        return NULL;
    }
    if (!o) json_decref(top);
    return o;
}

/* The top_logprobs of token i: its most likely alternatives, each with its text. */
static json_t *top_array(hl_builtin_call *c, size_t i, char *piece, size_t cap, hl_buf *tok) {
    json_t *arr = json_array();
    const hl_tok *t = hl_engine_tok(c->b->engine);
    const hl_engine_alt *row = c->alts ? c->alts + i * (size_t)c->top_n : NULL;
    for (int k = 0; arr && row && k < c->toks[i].n_top; k++) {
        int n = hl_tok_piece(t, row[k].id, false, piece, cap);
        if (n < 0 || (size_t)n > cap) n = 0;
        json_t *o = logprob_entry(piece, (size_t)n, row[k].logprob, NULL, tok);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* OpenAI's logprobs content entries for tokens [from, to): token, logprob, bytes, and the
 * top_logprobs asked for (an empty list when none were). NULL when out of memory. */
static json_t *logprobs_array(hl_builtin_call *c, size_t from, size_t to) {
    json_t *arr = json_array();
    hl_buf tok;
    hl_buf_init(&tok, 0);
    size_t cap = c->top_n ? hl_tok_max_piece(hl_engine_tok(c->b->engine)) + 1 : 0;
    char *piece = cap ? malloc(cap) : NULL;
    if (cap && !piece) {
        json_decref(arr);
        arr = NULL;
    }
    for (size_t i = from; arr && i < to; i++) {
        const tok_rec *t = &c->toks[i];
        size_t len = t->off + t->len <= c->text.len ? t->len : (t->off < c->text.len ? c->text.len - t->off : 0);
        json_t *top = c->top_n ? top_array(c, i, piece, cap, &tok) : json_array();
        json_t *o = top ? logprob_entry(c->text.data + t->off, len, t->logprob, top, &tok) : NULL;
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(piece);
    hl_buf_release(&tok);
    return arr;
}

static hl_finish finish_of(const hl_builtin_call *c) {
    if (c->stopped_by_seq) return HL_FINISH_STOP;
    return c->res.stop == HL_ENGINE_STOP_LENGTH || c->res.stop == HL_ENGINE_STOP_CONTEXT ? HL_FINISH_LENGTH
                                                                                          : HL_FINISH_STOP;
}

static hl_usage usage_of(const hl_builtin_call *c) {
    return (hl_usage){.input_tokens = c->res.n_prompt, .output_tokens = c->res.n_gen, .known = true};
}

/* Hands one event to the caller. Returns false when the caller aborted. */
static bool emit(hl_builtin_call *c, const hl_stream_event *ev) {
    return c->ev.on_event(c->ud, ev) != HL_PROVIDER_ABORT;
}

/* Stream: the text that is safe to send (complete UTF-8, not possibly the start of a stop
 * sequence), with its tokens' logprobs when asked. Returns false when the caller aborted or
 * memory ran out (*oom). */
static bool stream_delta(hl_builtin_call *c, size_t upto, size_t toks_upto, bool *oom) {
    if (upto <= c->delivered) return true;
    hl_buf clean;
    hl_buf_init(&clean, 0);
    *oom = utf8_clean(c->text.data + c->delivered, upto - c->delivered, &clean) != HL_OK;
    bool go = !*oom && emit(c, &(hl_stream_event){.type = HL_EV_TEXT, .text = clean.data, .text_len = clean.len});
    hl_buf_release(&clean);
    if (go && c->logprobs && toks_upto > c->toks_delivered) {
        json_t *lp = logprobs_array(c, c->toks_delivered, toks_upto);
        *oom = !lp;
        go = lp && emit(c, &(hl_stream_event){.type = HL_EV_LOGPROBS, .logprobs = lp});
        json_decref(lp);
    }
    c->delivered = upto;
    c->toks_delivered = toks_upto;
    return go;
}

static bool stream_end(hl_builtin_call *c) {
    return emit(c, &(hl_stream_event){.type = HL_EV_FINISH, .finish = finish_of(c),
                                      .stop_sequence = c->stopped_by_seq ? c->stop[c->stop_idx] : NULL}) &&
           emit(c, &(hl_stream_event){.type = HL_EV_USAGE, .usage = usage_of(c)}) &&
           emit(c, &(hl_stream_event){.type = HL_EV_DONE});
}

/* The whole answer, for a call that does not stream. */
static hl_err whole_response(hl_builtin_call *c, hl_chat_response *r) {
    hl_buf clean;
    hl_buf_init(&clean, 0);
    hl_err e = utf8_clean(c->text.data ? c->text.data : "", c->text.len, &clean);
    r->text = e ? NULL : hl_buf_steal(&clean);
    hl_buf_release(&clean);
    r->id = strdup(c->id);
    r->model = strdup(c->model);
    r->created = c->created;
    r->finish = finish_of(c);
    if (c->stopped_by_seq && !(r->stop_sequence = strdup(c->stop[c->stop_idx]))) e = HL_ERR_NOMEM;
    r->usage = usage_of(c);
    json_t *content = logprobs_array(c, 0, c->n_toks);
    r->logprobs = content ? json_pack("{s:o,s:n}", "content", content, "refusal") : NULL;
    return !e && r->text && r->id && r->model && r->logprobs ? HL_OK : HL_ERR_NOMEM;
}

/* Ends the call on the loop side: on_done, then the loop's reference goes. */
static void finish(hl_builtin_call *c, hl_provider_result *r) {
    c->detached = true;
    atomic_store(&c->cancelled, true); /* in case the engine is still at it (abort) */
    c->ev.on_done(c->ud, r);
    call_release(c); /* the loop side's reference */
}

static void finish_err(hl_builtin_call *c, hl_err err, const char *msg) {
    finish(c, &(hl_provider_result){.err = err, .errmsg = msg, .status = c->status_sent ? 200 : 0,
                                    .retry_after_ms = -1, .should_retry = -1});
}

/* The engine could not generate: the error an OpenAI-compatible server would answer. */
static void finish_gen_error(hl_builtin_call *c, hl_err gen_err) {
    bool too_long = gen_err == HL_ERR_LIMIT;
    int status = too_long ? 400 : 500;
    if (!c->status_sent) c->ev.on_status(c->ud, status);
    c->status_sent = true;
    finish(c, &(hl_provider_result){
                  .status = status, .retry_after_ms = -1, .should_retry = -1, .context_overflow = too_long,
                  .error_message = too_long ? "The prompt does not fit in the builtin model's context window."
                                            : "The builtin engine failed to generate.",
                  .error_type = too_long ? "invalid_request_error" : "server_error"});
}

/* The stream's news since the last visit: start, the safe text, and the end when done. */
static void process_stream(hl_builtin_call *c, bool done, size_t len, size_t n_toks) {
    bool oom = false;
    if (!c->started) {
        c->started = true;
        if (!emit(c, &(hl_stream_event){.type = HL_EV_START, .id = c->id, .model = c->model})) goto aborted;
    }
    size_t safe = len;
    if (!done) {
        safe = utf8_complete(c->text.data, len);
        safe = safe > c->max_stop_len ? safe - c->max_stop_len : 0; /* could begin a stop sequence */
        safe = utf8_complete(c->text.data, safe);
    }
    size_t toks = n_toks;
    while (!done && toks > 0 && c->toks[toks - 1].off + c->toks[toks - 1].len > safe) toks--;
    if (!stream_delta(c, safe, toks, &oom)) goto aborted;
    if (c->ev.on_flush) c->ev.on_flush(c->ud);
    if (atomic_load(&c->paused)) return; /* the rest after resume */
    if (done && !stream_end(c)) goto aborted;
    if (done && c->ev.on_flush) c->ev.on_flush(c->ud);
    if (done) finish(c, &(hl_provider_result){.status = 200, .retry_after_ms = -1, .should_retry = -1});
    return;
aborted:
    if (oom) finish_err(c, HL_ERR_UPSTREAM, "out of memory");
    else finish_err(c, HL_ERR_CANCELLED, "aborted by the gateway");
}

/* An embeddings job is posted once, at its end: the callback, then the loop's reference goes. */
static void process_embed(hl_builtin_call *c) {
    pthread_mutex_lock(&c->mu);
    bool done = c->done;
    hl_err err = c->gen_err;
    size_t failed = c->emb_failed;
    pthread_mutex_unlock(&c->mu);
    if (c->detached || !done) return;
    c->detached = true;
    hl_builtin_embed_result r = {.err = err, .failed = failed, .vecs = c->emb_vecs, .dim = c->emb_dim,
                                 .n_tokens = c->emb_tokens, .n = c->emb_n};
    c->emb_cb(c->ud, &r);
    call_release(c); /* the loop side's reference */
}

static void process(hl_builtin_call *c) {
    if (c->emb_n) {
        process_embed(c);
        return;
    }
    if (c->detached || atomic_load(&c->paused)) return; /* resume posts the call again */
    pthread_mutex_lock(&c->mu);
    bool done = c->done;
    hl_err gen_err = c->gen_err;
    size_t len = c->text.len, n_toks = c->n_toks;
    pthread_mutex_unlock(&c->mu);
    /* Past this point the engine only appends: bytes below len are stable. */
    if (done && gen_err) {
        finish_gen_error(c, gen_err);
        return;
    }
    if (!c->status_sent) {
        c->status_sent = true;
        c->ev.on_status(c->ud, 200);
    }
    if (c->stream) {
        process_stream(c, done, len, n_toks);
    } else if (done) {
        hl_chat_response resp;
        hl_chat_response_init(&resp);
        if (whole_response(c, &resp) != HL_OK) finish_err(c, HL_ERR_UPSTREAM, "out of memory");
        else finish(c, &(hl_provider_result){.status = 200, .response = &resp, .retry_after_ms = -1, .should_retry = -1});
        hl_chat_response_release(&resp);
    }
}

static void on_async(uv_async_t *a) {
    hl_builtin_mailbox *mb = a->data;
    pthread_mutex_lock(&mb->mu);
    hl_builtin_call *list = mb->todo;
    mb->todo = NULL;
    for (hl_builtin_call *c = list; c; c = c->mb_next) {
        c->run_next = c->mb_next;
        c->in_mb = false;
    }
    pthread_mutex_unlock(&mb->mu);
    while (list) {
        hl_builtin_call *c = list;
        list = c->run_next;
        process(c);
        call_release(c); /* the to-do list's reference */
    }
}

hl_err hl_builtin_mailbox_new(hl_builtin_mailbox **out, uv_loop_t *loop) {
    hl_builtin_mailbox *mb = calloc(1, sizeof *mb);
    if (!mb) return HL_ERR_NOMEM;
    pthread_mutex_init(&mb->mu, NULL);
    atomic_store(&mb->refs, 1);
    if (uv_async_init(loop, &mb->async, on_async) != 0) {
        pthread_mutex_destroy(&mb->mu);
        free(mb);
        return HL_ERR_IO;
    }
    mb->async.data = mb;
    *out = mb;
    return HL_OK;
}

static void mailbox_closed(uv_handle_t *h) { mailbox_release(h->data); }

void hl_builtin_mailbox_close(hl_builtin_mailbox *mb) {
    if (!mb) return;
    pthread_mutex_lock(&mb->mu);
    mb->closed = true;
    hl_builtin_call *list = mb->todo;
    mb->todo = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (list) {
        hl_builtin_call *c = list;
        list = c->mb_next;
        call_release(c);
    }
    uv_close((uv_handle_t *)&mb->async, mailbox_closed);
}

/* ------------------------------------------------------------------ start / cancel */

/* Appends c to one of b's queues (the generations' or the embeddings'), at most max_queue
 * long, and wakes the thread. HL_ERR_LIMIT when that queue is full: c is released. */
static hl_err enqueue(hl_builtin *b, hl_builtin_call **head, hl_builtin_call **tail, int *queued,
                      hl_builtin_call *c) {
    pthread_mutex_lock(&b->mu);
    bool full = *queued >= b->cfg->max_queue;
    if (!full) {
        if (*tail) (*tail)->q_next = c;
        else *head = c;
        *tail = c;
        (*queued)++;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (full) {
        atomic_store(&c->refs, 1);
        call_release(c);
        return HL_ERR_LIMIT;
    }
    return HL_OK;
}

static hl_err builtin_start(const hl_provider_env *env, const hl_provider_spec *spec, const hl_provider_events *ev,
                            void *ud, hl_provider_call **out) {
    hl_builtin *b = spec->backend->builtin;
    hl_builtin_mailbox *mb = env->mailbox;
    if (!b) return HL_ERR_INVAL; /* not loaded: the backend is not ready */
    const hl_chat_request *req = spec->req;
    hl_builtin_call *c = calloc(1, sizeof *c);
    if (!c) return HL_ERR_NOMEM;
    hl_buf prompt;
    hl_buf_init(&prompt, 0);
    /* A legacy completion's prompt is the model's input as it is: no chat template. */
    hl_err e = req->raw_prompt ? hl_buf_append(&prompt, req->messages[0].text, strlen(req->messages[0].text))
                               : hl_template_apply(b->tpl, req, &prompt);
    if (!e && req->n_stop && !(c->stop = calloc(req->n_stop, sizeof *c->stop))) e = HL_ERR_NOMEM;
    for (size_t i = 0; !e && i < req->n_stop; i++) {
        if (!(c->stop[i] = strdup(req->stop[i]))) e = HL_ERR_NOMEM;
        c->n_stop = i + 1;
        size_t l = strlen(req->stop[i]);
        if (l > c->max_stop_len) c->max_stop_len = l;
    }
    if (e) {
        hl_buf_release(&prompt);
        for (size_t i = 0; i < c->n_stop; i++) free(c->stop[i]);
        free(c->stop);
        free(c);
        return e;
    }
    c->b = b;
    c->mb = mb;
    atomic_fetch_add(&mb->refs, 1);
    atomic_store(&c->refs, 2); /* engine side + loop side */
    pthread_mutex_init(&c->mu, NULL);
    hl_buf_init(&c->text, 16u << 20);
    c->prompt_len = prompt.len;
    c->prompt = prompt.data ? hl_buf_steal(&prompt) : strdup("");
    c->max_tokens = req->max_tokens > 0 ? (int)req->max_tokens : 0;
    c->sampling = hl_engine_sampling_default();
    if (req->has_temperature) c->sampling.temperature = (float)req->temperature;
    if (req->has_top_p) c->sampling.top_p = (float)req->top_p;
    const json_t *seed = json_object_get(req->passthrough, "seed");
    c->sampling.seed = json_is_integer(seed) ? (uint64_t)json_integer_value(seed) : (uint64_t)uv_hrtime();
    const json_t *top_k = json_object_get(req->passthrough, "top_k");
    if (json_is_integer(top_k)) c->sampling.top_k = (int)json_integer_value(top_k);
    c->stream = spec->stream;
    c->logprobs = req->logprobs || spec->logprobs;
    /* The gateway's own judgement wants 2 alternatives a token (the first token's margin); the
     * exchange trims them to what a client that asked for logprobs itself wanted. */
    int top = req->logprobs && req->top_logprobs > 0 ? req->top_logprobs : 0;
    if (spec->logprobs && top < 2) top = 2;
    c->top_n = c->logprobs ? (top < HL_ENGINE_MAX_TOP ? top : HL_ENGINE_MAX_TOP) : 0;
    c->ev = *ev;
    c->ud = ud;
    c->created = (long)time(NULL);
    snprintf(c->model, sizeof c->model, "%s", spec->model);
    snprintf(c->id, sizeof c->id, "chatcmpl-builtin-%llx", (unsigned long long)uv_hrtime());

    atomic_fetch_add(&b->gens, 1); /* before the thread can finish it */
    e = enqueue(b, &b->head, &b->tail, &b->queued, c);
    if (!e) *out = (hl_provider_call *)c;
    else atomic_fetch_sub(&b->gens, 1);
    return e;
}

bool hl_builtin_idle(const hl_builtin *b) {
    return atomic_load(&((hl_builtin *)b)->gens) < b->cfg->max_sequences;
}

/* Wakes the generation thread: a paused or cancelled sequence changed. */
static void wake(hl_builtin *b) {
    pthread_mutex_lock(&b->mu);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void builtin_cancel(hl_provider_call *pc) {
    hl_builtin_call *c = (hl_builtin_call *)pc;
    if (c->detached) return;
    c->detached = true;
    atomic_store(&c->cancelled, true);
    wake(c->b); /* a paused sequence must still be freed */
    call_release(c); /* the loop side's reference */
}

static void builtin_pause(hl_provider_call *pc) {
    hl_builtin_call *c = (hl_builtin_call *)pc;
    atomic_store(&c->paused, true);
}

static void builtin_resume(hl_provider_call *pc) {
    hl_builtin_call *c = (hl_builtin_call *)pc;
    if (!atomic_exchange(&c->paused, false)) return;
    wake(c->b);
    post(c); /* what was held back is delivered from the loop, not from inside resume */
}

hl_err hl_builtin_embed_start(hl_builtin *b, hl_builtin_mailbox *mb, const hl_builtin_input *in, size_t n,
                              hl_builtin_embed_cb cb, void *ud, hl_builtin_embed **out) {
    *out = NULL;
    if (!n) return HL_ERR_INVAL;
    hl_builtin_call *c = calloc(1, sizeof *c);
    if (!c) return HL_ERR_NOMEM;
    uint32_t dim = hl_builtin_dim(b);
    c->emb_in = calloc(n, sizeof *c->emb_in);
    c->emb_vecs = calloc(n * dim, sizeof *c->emb_vecs);
    c->emb_tokens = calloc(n, sizeof *c->emb_tokens);
    bool ok = c->emb_in && c->emb_vecs && c->emb_tokens;
    for (size_t i = 0; ok && i < n; i++) {
        c->emb_n = i + 1;
        hl_builtin_input *x = &c->emb_in[i];
        if (in[i].text) {
            char *t = malloc(in[i].len + 1);
            if ((ok = t != NULL)) {
                memcpy(t, in[i].text, in[i].len);
                t[in[i].len] = '\0';
                *x = (hl_builtin_input){.text = t, .len = in[i].len};
            }
        } else {
            int32_t *ids = malloc((in[i].n_ids ? in[i].n_ids : 1) * sizeof *ids);
            if ((ok = ids != NULL)) {
                if (in[i].n_ids) memcpy(ids, in[i].ids, in[i].n_ids * sizeof *ids);
                *x = (hl_builtin_input){.ids = ids, .n_ids = in[i].n_ids};
            }
        }
    }
    c->b = b;
    c->mb = mb;
    atomic_fetch_add(&mb->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    hl_buf_init(&c->text, 0);
    if (!ok) {
        atomic_store(&c->refs, 1);
        call_release(c);
        return HL_ERR_NOMEM;
    }
    atomic_store(&c->refs, 2); /* engine side + loop side */
    c->emb_dim = dim;
    c->emb_cb = cb;
    c->ud = ud;
    hl_err e = enqueue(b, &b->ehead, &b->etail, &b->equeued, c);
    if (!e) *out = (hl_builtin_embed *)c;
    return e;
}

void hl_builtin_embed_cancel(hl_builtin_embed *job) { builtin_cancel((hl_provider_call *)job); }

uint32_t hl_builtin_dim(const hl_builtin *b) { return hl_model_hp(hl_engine_model(b->engine))->dim; }

hl_err hl_builtin_count_tokens(const hl_builtin *b, const hl_chat_request *req, long *n) {
    hl_buf prompt;
    hl_buf_init(&prompt, 0);
    hl_err e = req->raw_prompt && req->n_messages
                   ? hl_buf_append(&prompt, req->messages[0].text, strlen(req->messages[0].text))
                   : hl_template_apply(b->tpl, req, &prompt);
    const hl_tok *t = hl_engine_tok(b->engine);
    size_t cap = prompt.len + 2, got = 0;
    int32_t *ids = e ? NULL : malloc(cap * sizeof *ids); /* a token is at least one byte */
    if (!e && !ids) e = HL_ERR_NOMEM;
    if (!e) e = hl_tok_encode(t, prompt.data ? prompt.data : "", prompt.len, hl_tok_add_bos(t),
                              hl_template_uses_special(b->tpl), ids, cap, &got);
    if (!e) *n = (long)got;
    free(ids);
    hl_buf_release(&prompt);
    return e;
}

/* What the engine cannot do: the legacy completions' echo and suffix, and an answer held to
 * JSON or a JSON schema (it samples freely: refused rather than answered with whatever text
 * comes). */
static hl_err builtin_check(const hl_chat_request *req, hl_api_error *err) {
    static const char *const refused[] = {"echo", "suffix"};
    for (int i = 0; i < 2; i++)
        if (json_object_get(req->passthrough, refused[i])) {
            hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, refused[i], "unsupported_parameter",
                             "'%s' is not supported by this backend (the builtin engine).", refused[i]);
            return HL_ERR_UNSUPPORTED;
        }
    const json_t *rf = json_object_get(req->passthrough, "response_format");
    const char *t = json_string_value(json_object_get(rf, "type"));
    if (rf && !(t && !strcmp(t, "text"))) {
        hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "response_format", "unsupported_parameter",
                         "'response_format' other than text is not supported by this backend (the builtin "
                         "engine cannot constrain its output to JSON).");
        return HL_ERR_UNSUPPORTED;
    }
    return HL_OK;
}

const hl_provider hl_provider_builtin = {"builtin", builtin_check, builtin_start, builtin_cancel, builtin_pause,
                                         builtin_resume, NULL};

/* ------------------------------------------------------------------ open / free */

hl_err hl_builtin_open(hl_builtin **out, const hl_backend_cfg *cfg, char *err, size_t err_len) {
    hl_builtin *b = calloc(1, sizeof *b);
    if (!b) return HL_ERR_NOMEM;
    b->cfg = cfg;
    hl_err e = hl_models_resolve(cfg->model_path, b->path, sizeof b->path, err, err_len);
    if (e) {
        free(b);
        return e;
    }
    const char *base = strrchr(b->path, '/');
    base = base ? base + 1 : b->path;
    size_t bl = strlen(base);
    if (bl > 5 && !strcasecmp(base + bl - 5, ".gguf")) bl -= 5;
    snprintf(b->name, sizeof b->name, "%.*s", (int)(bl < sizeof b->name ? bl : sizeof b->name - 1), base);
    hl_engine_params p = {
        .model_path = b->path,
        .n_threads = cfg->threads > 0 ? cfg->threads : (int)uv_available_parallelism(),
        .n_ctx = (uint32_t)cfg->context_size,
        .n_seq = (uint32_t)cfg->max_sequences,
        .keep_layout = cfg->repack_weights == HL_NO,
    };
    e = hl_engine_open(&b->engine, &p, err, err_len);
    if (e) {
        free(b);
        return e;
    }
    /* Warm-up: one token through the whole model, so the first request does not pay for
     * page-faulting the weights in (the brief's cold-start failure mode). */
    hl_engine_request warm = {.prompt = "Hello", .prompt_len = 5, .add_bos = true, .max_tokens = 1,
                              .sampling = hl_engine_sampling_default()};
    hl_engine_result wres;
    if ((e = hl_engine_generate(b->engine, &warm, &wres)) != HL_OK) {
        snprintf(err, err_len, "warm-up generation failed: %s", hl_err_str(e));
        hl_engine_free(b->engine);
        free(b);
        return e;
    }
    bool recognised = true;
    if (!cfg->chat_template || hl_template_by_name(cfg->chat_template, &b->tpl) != HL_OK)
        b->tpl = hl_template_detect(hl_model_gguf(hl_engine_model(b->engine)), &recognised);
    const hl_model_hparams *hp = hl_model_hp(hl_engine_model(b->engine));
    int dn = snprintf(b->desc, sizeof b->desc, "%s (%u layers, dim %u, context %u, template %s%s, %d threads, "
                      "%d sequences at once)", base, hp->n_layers, hp->dim,
                      hl_model_n_ctx(hl_engine_model(b->engine)), hl_template_name(b->tpl),
                      recognised ? "" : ", none in the model", p.n_threads, cfg->max_sequences);
    (void)dn; /* a long model path may cut the description: it is only shown */
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->active = calloc((size_t)cfg->max_sequences, sizeof *b->active);
    b->seqs = calloc((size_t)cfg->max_sequences, sizeof *b->seqs);
    e = !b->active || !b->seqs ? HL_ERR_NOMEM
        : pthread_create(&b->thread, NULL, generation_main, b) != 0 ? HL_ERR_IO : HL_OK;
    if (e) {
        snprintf(err, err_len, "cannot start the generation thread: %s", hl_err_str(e));
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        hl_engine_free(b->engine);
        free(b->active);
        free(b->seqs);
        free(b);
        return e;
    }
    *out = b;
    return HL_OK;
}

void hl_builtin_free(hl_builtin *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    for (hl_builtin_call *c = b->head; c; c = c->q_next) atomic_store(&c->cancelled, true);
    for (hl_builtin_call *c = b->ehead; c; c = c->q_next) atomic_store(&c->cancelled, true);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    hl_engine_free(b->engine);
    free(b->active);
    free(b->seqs);
    free(b);
}

const char *hl_builtin_describe(const hl_builtin *b) { return b->desc; }

const char *hl_builtin_model_name(const hl_builtin *b) { return b->name; }

unsigned long hl_builtin_tokens(const hl_builtin *b) { return atomic_load(&((hl_builtin *)b)->tokens); }
