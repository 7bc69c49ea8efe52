/* hl_builtin: the embedded engine as a provider (see hl_builtin.h).
 *
 * A call is shared by two threads: the backend's generation thread (which fills `text` and
 * `toks` under the call's lock) and the event loop that started it (which turns them into
 * OpenAI-format bytes for the caller). It is reference-counted: one reference for the engine
 * side (queue and generation), one for the loop side (until on_done or cancel), one while the
 * call sits in the mailbox's to-do list. The mailbox is reference-counted the same way, so the
 * engine can post to a mailbox whose loop has already closed it. */
#include "hl_builtin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_buf.h"
#include "hl_engine.h"
#include "hl_log.h"
#include "hl_template.h"

struct hl_builtin {
    const hl_backend_cfg *cfg;
    hl_engine *engine;
    hl_template tpl;
    char desc[256];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hl_builtin_call *head, *tail; /* queue, under mu */
    int queued;
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
} tok_rec;

struct hl_builtin_call {
    hl_builtin *b;
    hl_builtin_mailbox *mb;
    atomic_int refs;
    atomic_bool cancelled;
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
    /* engine -> loop, under mu: */
    pthread_mutex_t mu;
    hl_buf text;
    tok_rec *toks;
    size_t n_toks, cap_toks;
    bool done, stopped_by_seq;
    hl_err gen_err;
    hl_engine_result res;
    /* loop side only: */
    hl_upstream_handlers h;
    void *ud;
    bool detached;            /* cancelled by the caller: no callbacks */
    bool status_sent;
    size_t delivered;         /* bytes of text turned into output */
    size_t toks_delivered;
    char model[128], id[48];
    long created;
    hl_buf out;
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
    hl_buf_release(&c->out);
    free(c->toks);
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
    if (atomic_load(&c->cancelled)) return 1;
    int stop = 0;
    pthread_mutex_lock(&c->mu);
    size_t before = c->text.len;
    if (hl_buf_append(&c->text, tok->text, tok->len) != HL_OK) {
        stop = 1;
    } else {
        if (c->n_toks == c->cap_toks) {
            size_t cap = c->cap_toks ? c->cap_toks * 2 : 64;
            tok_rec *t = realloc(c->toks, cap * sizeof *t);
            if (t) {
                c->toks = t;
                c->cap_toks = cap;
            }
        }
        if (c->n_toks < c->cap_toks) c->toks[c->n_toks++] = (tok_rec){before, tok->len, tok->logprob};
        /* Stop sequences: look where the new token could have completed one. */
        for (size_t i = 0; i < c->n_stop && !stop; i++) {
            size_t sl = strlen(c->stop[i]);
            size_t from = before >= sl ? before - sl + 1 : 0;
            char *hit = memmem(c->text.data + from, c->text.len - from, c->stop[i], sl);
            if (hit) {
                c->text.len = (size_t)(hit - c->text.data);
                c->text.data[c->text.len] = '\0';
                c->stopped_by_seq = true;
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
    pthread_mutex_lock(&c->mu);
    if (res) c->res = *res;
    c->gen_err = e;
    c->done = true;
    pthread_mutex_unlock(&c->mu);
    post(c);
    call_release(c); /* the engine side's reference */
}

/* The backend's thread: admits queued calls while the engine has free slots, then runs one
 * engine step for all admitted ones (their next tokens, and prompt chunks of new ones), and
 * finishes the calls whose generation ended. */
static void *generation_main(void *arg) {
    hl_builtin *b = arg;
    hl_builtin_call **active = b->active;
    hl_engine_seq **seqs = b->seqs;
    int n_active = 0;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->stop && !b->head && !n_active) pthread_cond_wait(&b->cv, &b->mu);
        bool stopping = b->stop;
        /* As many as there are free slots (cancelled ones take none: they end at once). */
        hl_builtin_call *admit = NULL, **tail = &admit;
        for (int room = b->cfg->max_sequences - n_active; b->head && (stopping || room > 0);) {
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
        /* Clients gone: their sequences stop before this step. */
        for (int i = 0; i < b->cfg->max_sequences; i++)
            if (active[i] && atomic_load(&active[i]->cancelled)) hl_engine_seq_cancel(seqs[i]);
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

/* ------------------------------------------------------------------ loop side: output */

/* The longest prefix of s[0..n) that does not end inside a UTF-8 sequence. */
static size_t utf8_complete(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need == back + 1 || need == 1 ? n : i - 1;
}

/* Appends s as a JSON string, replacing bytes that are not valid UTF-8 with U+FFFD (a model
 * can emit a stray byte; JSON must stay valid). */
static hl_err put_text(hl_buf *out, const char *s, size_t n) {
    hl_buf clean;
    hl_buf_init(&clean, 0);
    hl_err e = HL_OK;
    for (size_t i = 0; i < n && !e;) {
        unsigned char ch = (unsigned char)s[i];
        size_t len = ch < 0x80 ? 1 : ch >= 0xF0 && ch < 0xF5 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC2 && ch < 0xE0 ? 2 : 0;
        bool ok = len && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok) {
            e = hl_buf_append(&clean, s + i, len);
            i += len;
        } else {
            e = hl_buf_append(&clean, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    if (!e) e = hl_buf_json_str(out, clean.data ? clean.data : "", clean.len);
    hl_buf_release(&clean);
    return e;
}

static hl_err put_logprobs(hl_buf *out, hl_builtin_call *c, size_t from, size_t to) {
    hl_err e = hl_buf_puts(out, "{\"content\":[");
    for (size_t i = from; i < to && !e; i++) {
        const tok_rec *t = &c->toks[i];
        size_t len = t->off + t->len <= c->text.len ? t->len : (t->off < c->text.len ? c->text.len - t->off : 0);
        e = hl_buf_puts(out, i > from ? ",{\"token\":" : "{\"token\":");
        if (!e) e = put_text(out, c->text.data + t->off, len);
        if (!e) e = hl_buf_printf(out, ",\"logprob\":%.6f,\"bytes\":[", (double)t->logprob);
        for (size_t k = 0; k < len && !e; k++)
            e = hl_buf_printf(out, "%s%u", k ? "," : "", (unsigned char)c->text.data[t->off + k]);
        if (!e) e = hl_buf_puts(out, "],\"top_logprobs\":[]}");
    }
    if (!e) e = hl_buf_puts(out, "],\"refusal\":null}");
    return e;
}

static const char *finish_of(const hl_builtin_call *c) {
    if (c->stopped_by_seq) return "stop";
    return c->res.stop == HL_ENGINE_STOP_LENGTH || c->res.stop == HL_ENGINE_STOP_CONTEXT ? "length" : "stop";
}

static hl_err chunk_head(hl_buf *out, hl_builtin_call *c) {
    hl_err e = hl_buf_printf(out, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                             c->id, c->created);
    if (!e) e = hl_buf_json_str(out, c->model, strlen(c->model));
    return e ? e : hl_buf_puts(out, ",\"choices\":[");
}

static hl_err usage(hl_buf *out, const hl_engine_result *r) {
    return hl_buf_printf(out, "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}", r->n_prompt,
                         r->n_gen, r->n_prompt + r->n_gen);
}

/* Stream: one chunk with the text that is safe to send (complete UTF-8, not possibly the start
 * of a stop sequence). */
static hl_err stream_delta(hl_builtin_call *c, size_t upto, size_t toks_upto) {
    if (upto <= c->delivered) return HL_OK;
    hl_err e = chunk_head(&c->out, c);
    if (!e) e = hl_buf_puts(&c->out, "{\"index\":0,\"delta\":{\"content\":");
    if (!e) e = put_text(&c->out, c->text.data + c->delivered, upto - c->delivered);
    if (!e) e = hl_buf_puts(&c->out, "},\"logprobs\":");
    if (!e && c->logprobs && toks_upto > c->toks_delivered) e = put_logprobs(&c->out, c, c->toks_delivered, toks_upto);
    else if (!e) e = hl_buf_puts(&c->out, "null");
    if (!e) e = hl_buf_puts(&c->out, ",\"finish_reason\":null}],\"usage\":null}\n\n");
    c->delivered = upto;
    c->toks_delivered = toks_upto;
    return e;
}

static hl_err stream_end(hl_builtin_call *c) {
    hl_err e = chunk_head(&c->out, c);
    if (!e) e = hl_buf_printf(&c->out, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}],"
                                       "\"usage\":null}\n\n", finish_of(c));
    if (!e) e = chunk_head(&c->out, c);
    if (!e) e = hl_buf_puts(&c->out, "],\"usage\":");
    if (!e) e = usage(&c->out, &c->res);
    if (!e) e = hl_buf_puts(&c->out, "}\n\ndata: [DONE]\n\n");
    return e;
}

static hl_err whole_body(hl_builtin_call *c) {
    hl_err e = hl_buf_printf(&c->out, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%ld,\"model\":",
                             c->id, c->created);
    if (!e) e = hl_buf_json_str(&c->out, c->model, strlen(c->model));
    if (!e) e = hl_buf_puts(&c->out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (!e) e = put_text(&c->out, c->text.data ? c->text.data : "", c->text.len);
    if (!e) e = hl_buf_puts(&c->out, "},\"logprobs\":");
    if (!e) e = put_logprobs(&c->out, c, 0, c->n_toks);
    if (!e) e = hl_buf_printf(&c->out, ",\"finish_reason\":\"%s\"}],\"usage\":", finish_of(c));
    if (!e) e = usage(&c->out, &c->res);
    return e ? e : hl_buf_puts(&c->out, "}");
}

/* Hands c->out to the caller. Returns false when the caller aborted. */
static bool deliver_out(hl_builtin_call *c) {
    if (!c->out.len) return true;
    int r = c->h.on_data(c->ud, c->out.data, c->out.len);
    hl_buf_reset(&c->out);
    return r != HL_UPSTREAM_ABORT;
}

static void finish(hl_builtin_call *c, hl_err err, const char *msg) {
    c->detached = true;
    atomic_store(&c->cancelled, true); /* in case the engine is still at it (abort) */
    c->h.on_done(c->ud, err, msg);
    call_release(c); /* the loop side's reference */
}

static void process(hl_builtin_call *c) {
    if (c->detached) return;
    pthread_mutex_lock(&c->mu);
    bool done = c->done;
    hl_err gen_err = c->gen_err;
    size_t len = c->text.len, n_toks = c->n_toks;
    pthread_mutex_unlock(&c->mu);
    /* Past this point the engine only appends: bytes below len are stable. */
    if (done && gen_err) {
        if (!c->status_sent) {
            c->status_sent = true;
            bool too_long = gen_err == HL_ERR_LIMIT;
            c->h.on_status(c->ud, too_long ? 400 : 500, "application/json");
            hl_buf_printf(&c->out, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":%s}}",
                          too_long ? "The prompt does not fit in the builtin model's context window."
                                   : "The builtin engine failed to generate.",
                          too_long ? "invalid_request_error" : "server_error",
                          too_long ? "\"context_length_exceeded\"" : "null");
            deliver_out(c);
        }
        finish(c, HL_OK, "");
        return;
    }
    if (!c->status_sent) {
        c->status_sent = true;
        c->h.on_status(c->ud, 200, c->stream ? "text/event-stream" : "application/json");
    }
    if (c->stream) {
        size_t safe = len;
        if (!done) {
            safe = utf8_complete(c->text.data, len);
            safe = safe > c->max_stop_len ? safe - c->max_stop_len : 0; /* could begin a stop sequence */
            safe = utf8_complete(c->text.data, safe);
        }
        size_t toks = n_toks;
        while (toks > 0 && c->toks[toks - 1].off + c->toks[toks - 1].len > safe) toks--;
        if (stream_delta(c, safe, done ? n_toks : toks) || (done && stream_end(c))) {
            finish(c, HL_ERR_UPSTREAM, "out of memory");
            return;
        }
        if (!deliver_out(c)) {
            finish(c, HL_ERR_CANCELLED, "aborted by the gateway");
            return;
        }
    } else if (done) {
        if (whole_body(c) || !deliver_out(c)) {
            finish(c, HL_ERR_UPSTREAM, "out of memory");
            return;
        }
    }
    if (done) finish(c, HL_OK, "");
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

hl_err hl_builtin_start(hl_builtin *b, hl_builtin_mailbox *mb, const hl_chat_request *req,
                        const char *model, bool stream, const hl_upstream_handlers *h, void *ud,
                        hl_builtin_call **out) {
    hl_builtin_call *c = calloc(1, sizeof *c);
    if (!c) return HL_ERR_NOMEM;
    hl_buf prompt;
    hl_buf_init(&prompt, 0);
    hl_err e = hl_template_apply(b->tpl, req, &prompt);
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
    hl_buf_init(&c->out, 0);
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
    c->stream = stream;
    c->logprobs = req->logprobs;
    c->h = *h;
    c->ud = ud;
    c->created = (long)time(NULL);
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->id, sizeof c->id, "chatcmpl-builtin-%llx", (unsigned long long)uv_hrtime());

    pthread_mutex_lock(&b->mu);
    bool full = b->queued >= b->cfg->max_queue;
    if (!full) {
        if (b->tail) b->tail->q_next = c;
        else b->head = c;
        b->tail = c;
        b->queued++;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (full) {
        atomic_store(&c->refs, 1);
        call_release(c);
        return HL_ERR_LIMIT;
    }
    *out = c;
    return HL_OK;
}

void hl_builtin_cancel(hl_builtin_call *c) {
    if (c->detached) return;
    c->detached = true;
    atomic_store(&c->cancelled, true);
    call_release(c); /* the loop side's reference */
}

/* ------------------------------------------------------------------ open / free */

hl_err hl_builtin_open(hl_builtin **out, const hl_backend_cfg *cfg, char *err, size_t err_len) {
    hl_builtin *b = calloc(1, sizeof *b);
    if (!b) return HL_ERR_NOMEM;
    b->cfg = cfg;
    hl_engine_params p = {
        .model_path = cfg->model_path,
        .n_threads = cfg->threads > 0 ? cfg->threads : (int)uv_available_parallelism(),
        .n_ctx = (uint32_t)cfg->context_size,
        .n_seq = (uint32_t)cfg->max_sequences,
        .keep_layout = cfg->repack_weights == HL_NO,
    };
    hl_err e = hl_engine_open(&b->engine, &p, err, err_len);
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
    const char *base = strrchr(cfg->model_path, '/');
    snprintf(b->desc, sizeof b->desc, "%s (%u layers, dim %u, context %u, template %s%s, %d threads, "
             "%d sequences at once)", base ? base + 1 : cfg->model_path, hp->n_layers, hp->dim,
             hl_model_n_ctx(hl_engine_model(b->engine)), hl_template_name(b->tpl),
             recognised ? "" : ", none in the model", p.n_threads, cfg->max_sequences);
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
