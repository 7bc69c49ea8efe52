/* hl_engine: generation (one or several sequences) and sampling; see hl_engine.h. */
#include "hl_engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum seq_state { SEQ_PREFILL, SEQ_DECODE, SEQ_DONE } seq_state;

struct hl_engine_seq {
    hl_engine *e;
    hl_engine_request req;  /* prompt cleared: only the settings and the callback are kept */
    uint32_t slot;          /* KV slot while unfinished */
    seq_state state;
    int32_t *ids;           /* [n_ctx] prompt + generated tokens, owned */
    uint32_t n_prompt, fed; /* prompt tokens, and how many are in the cache */
    uint32_t pos;           /* while decoding: where `pending` goes (= tokens in ids) */
    int32_t pending;        /* the last token sampled, fed at the next step */
    uint64_t rng;
    double t_start, t_first;
    hl_engine_result res;
    hl_err err;
    bool held;              /* skipped by the steps until released (its reader is slow) */
};

struct hl_engine {
    hl_model *model; /* owned; owns the GGUF */
    hl_tok *tok;     /* owned; borrows the model's GGUF */
    uint32_t vocab;
    uint32_t n_seq;
    hl_engine_seq **slots;     /* [n_seq] the unfinished sequence in each slot, or NULL */
    hl_model_item *items;      /* [max_batch] the pass being built */
    hl_engine_seq **owner;     /* [n_seq] whose logits the pass's k-th logits are */
    float *work;     /* [vocab] logits after penalties */
    int32_t *cand;   /* [vocab] candidate ids */
    float *prob;     /* [vocab] candidate probabilities */
    char *piece;     /* [piece_cap] text of the token being streamed */
    size_t piece_cap;
};

hl_engine_sampling hl_engine_sampling_default(void) {
    return (hl_engine_sampling){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f,
                                .min_p = 0.05f, .repeat_penalty = 1.0f, .repeat_last_n = 64};
}

hl_err hl_engine_open(hl_engine **out, const hl_engine_params *p, char *err, size_t err_size) {
    *out = NULL;
    hl_engine *e = calloc(1, sizeof *e);
    if (!e) return HL_ERR_NOMEM;
    hl_model_params mp = {.n_ctx = p->n_ctx, .max_batch = p->n_batch, .n_threads = p->n_threads,
                          .n_seq = p->n_seq, .keep_layout = p->keep_layout};
    hl_err r = hl_model_load(&e->model, p->model_path, &mp, err, err_size);
    if (r) goto fail;
    char msg[HL_GGUF_ERR_MAX];
    r = hl_tok_load(&e->tok, hl_model_gguf(e->model), msg, sizeof msg);
    if (r) {
        if (err && err_size) snprintf(err, err_size, "%s: %s", p->model_path, msg);
        goto fail;
    }
    e->vocab = hl_model_hp(e->model)->vocab;
    /* The model emits ids below its output size: a longer vocabulary is fine, a shorter one
     * would let it produce ids we cannot print. */
    if (hl_tok_n_vocab(e->tok) < e->vocab) {
        if (err && err_size)
            snprintf(err, err_size, "%s: tokenizer has %u tokens, model outputs %u",
                     p->model_path, hl_tok_n_vocab(e->tok), e->vocab);
        r = HL_ERR_PARSE;
        goto fail;
    }
    e->n_seq = hl_model_n_seq(e->model);
    e->slots = calloc(e->n_seq, sizeof *e->slots);
    e->owner = calloc(e->n_seq, sizeof *e->owner);
    e->items = calloc(hl_model_max_batch(e->model), sizeof *e->items);
    e->work = malloc(e->vocab * sizeof *e->work);
    e->cand = malloc(e->vocab * sizeof *e->cand);
    e->prob = malloc(e->vocab * sizeof *e->prob);
    e->piece_cap = hl_tok_max_piece(e->tok);
    e->piece = malloc(e->piece_cap);
    if (!e->slots || !e->owner || !e->items || !e->work || !e->cand || !e->prob || !e->piece) {
        r = HL_ERR_NOMEM;
        goto fail;
    }
    *out = e;
    return HL_OK;
fail:
    hl_engine_free(e);
    return r;
}

void hl_engine_free(hl_engine *e) {
    if (!e) return;
    hl_tok_free(e->tok);
    hl_model_free(e->model);
    for (uint32_t i = 0; e->slots && i < e->n_seq; i++)
        if (e->slots[i]) e->slots[i]->e = NULL; /* outliving sequences no longer reach it */
    free(e->slots);
    free(e->owner);
    free(e->items);
    free(e->work);
    free(e->cand);
    free(e->prob);
    free(e->piece);
    free(e);
}

hl_model *hl_engine_model(hl_engine *e) { return e->model; }
const hl_tok *hl_engine_tok(const hl_engine *e) { return e->tok; }

/* ---- sampling -------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    /* splitmix64: good enough statistically, and any seed (0 included) works */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_uniform(uint64_t *s) { return (float)(rng_next(s) >> 40) / 16777216.0f; }

/* Moves the k largest (by w) of cand[0..n) to the front, in descending order. */
static void top_k_sort(int32_t *cand, int n, int k, const float *w) {
    /* quickselect for the k-th largest, then insertion-sort the k front entries (k is small
     * in practice; when it is not, the sort below is still O(k log k) via qsort). */
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = w[cand[(lo + hi) / 2]];
        int i = lo, j = hi;
        while (i <= j) {
            while (w[cand[i]] > pivot) i++;
            while (w[cand[j]] < pivot) j--;
            if (i <= j) {
                int32_t t = cand[i];
                cand[i] = cand[j];
                cand[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
    for (int i = 1; i < k; i++) {
        int32_t c = cand[i];
        int j = i - 1;
        while (j >= 0 && (w[cand[j]] < w[c] || (w[cand[j]] == w[c] && cand[j] > c))) {
            cand[j + 1] = cand[j];
            j--;
        }
        cand[j + 1] = c;
    }
}

int32_t hl_engine_sample(hl_engine *e, const float *logits, const hl_engine_sampling *s,
                         const int32_t *recent, int n_recent, uint64_t *rng) {
    int n = (int)e->vocab;
    float *w = e->work;
    memcpy(w, logits, (size_t)n * sizeof *w);
    if (s->repeat_penalty > 0 && s->repeat_penalty != 1.0f) {
        int last = s->repeat_last_n > 0 ? s->repeat_last_n : 64;
        int from = n_recent > last ? n_recent - last : 0;
        /* Each distinct token is penalised once, however often it appeared (cand[] serves as
         * the "already penalised" flags). */
        memset(e->cand, 0, (size_t)n * sizeof *e->cand);
        for (int i = from; i < n_recent; i++) {
            int32_t id = recent[i];
            if (id < 0 || id >= n || e->cand[id]) continue;
            e->cand[id] = 1;
            w[id] = w[id] > 0 ? w[id] / s->repeat_penalty : w[id] * s->repeat_penalty;
        }
    }
    if (s->temperature <= 0) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (w[i] > w[best]) best = i;
        return best;
    }
    for (int i = 0; i < n; i++) e->cand[i] = i;
    int k = s->top_k > 0 && s->top_k < n ? s->top_k : n;
    top_k_sort(e->cand, n, k, w);
    /* Probabilities at temperature 1 for top-p and min-p. */
    float mx = w[e->cand[0]], sum = 0;
    for (int i = 0; i < k; i++) sum += e->prob[i] = expf(w[e->cand[i]] - mx);
    int keep = k;
    if (s->top_p < 1.0f) {
        float cum = 0;
        for (int i = 0; i < k; i++) {
            cum += e->prob[i] / sum;
            if (cum >= s->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (s->min_p > 0) {
        float floor_p = s->min_p * e->prob[0]; /* prob[0] is the largest (unnormalised) */
        int m = 1;
        while (m < keep && e->prob[m] >= floor_p) m++;
        keep = m;
    }
    /* Temperature, then draw. */
    float total = 0;
    for (int i = 0; i < keep; i++) total += e->prob[i] = expf((w[e->cand[i]] - mx) / s->temperature);
    float r = rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += e->prob[i];
        if (r < acc) return e->cand[i];
    }
    return e->cand[keep - 1];
}

/* ---- generation ------------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* log(sum(exp(logits))): a token's logprob is its logit minus this. */
static double log_sum_exp(const float *logits, int n) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return mx + log(sum);
}

/* The k most likely of n logits, most likely first (a short sorted list: k <= 20). */
static int top_k(const float *logits, int n, int k, double lse, hl_engine_alt *out) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        float l = logits[i];
        if (m == k && l <= logits[out[m - 1].id]) continue;
        int j = m < k ? m++ : m - 1;
        while (j > 0 && logits[out[j - 1].id] < l) {
            out[j] = out[j - 1];
            j--;
        }
        out[j].id = i;
    }
    for (int j = 0; j < m; j++) out[j].logprob = (float)((double)logits[out[j].id] - lse);
    return m;
}

/* ---- sequences ------------------------------------------------------------------------ */

static void seq_finish(hl_engine_seq *s, hl_engine_stop stop, hl_err err) {
    if (s->state == SEQ_DONE) return;
    s->state = SEQ_DONE;
    s->res.stop = stop;
    s->err = err;
    double now = now_s();
    if (s->t_first > 0) s->res.decode_s = now - s->t_first;
    else s->res.prefill_s = now - s->t_start;
    if (s->e) s->e->slots[s->slot] = NULL;
}

hl_err hl_engine_seq_start(hl_engine *e, const hl_engine_request *req, hl_engine_seq **out) {
    *out = NULL;
    uint32_t slot = 0;
    while (slot < e->n_seq && e->slots[slot]) slot++;
    if (slot == e->n_seq) return HL_ERR_LIMIT;
    uint32_t n_ctx = hl_model_n_ctx(e->model);
    hl_engine_seq *s = calloc(1, sizeof *s);
    if (!s || !(s->ids = malloc(n_ctx * sizeof *s->ids))) {
        free(s);
        return HL_ERR_NOMEM;
    }
    size_t n_prompt = 0;
    hl_err r = hl_tok_encode(e->tok, req->prompt, req->prompt_len, req->add_bos && hl_tok_add_bos(e->tok),
                             req->parse_special, s->ids, n_ctx, &n_prompt);
    if (!r && n_prompt == 0) r = HL_ERR_INVAL; /* nothing to continue from */
    if (!r && n_prompt >= n_ctx) r = HL_ERR_LIMIT;
    if (r) {
        free(s->ids);
        free(s);
        return r;
    }
    s->e = e;
    s->req = *req;
    s->req.prompt = NULL;
    s->req.prompt_len = 0;
    s->slot = slot;
    s->state = SEQ_PREFILL;
    s->n_prompt = (uint32_t)n_prompt;
    s->res.n_prompt = (int)n_prompt;
    s->rng = req->sampling.seed;
    s->t_start = now_s();
    e->slots[slot] = s;
    *out = s;
    return HL_OK;
}

int hl_engine_free_slots(const hl_engine *e) {
    int n = 0;
    for (uint32_t i = 0; i < e->n_seq; i++) n += !e->slots[i];
    return n;
}

/* s's logits are out: sample, hand the token over, decide whether s goes on. */
static void seq_next(hl_engine *e, hl_engine_seq *s, const float *logits) {
    uint32_t n_ctx = hl_model_n_ctx(e->model);
    int32_t id = hl_engine_sample(e, logits, &s->req.sampling, s->ids, (int)s->pos, &s->rng);
    if (hl_tok_is_eog(e->tok, id)) {
        seq_finish(s, HL_ENGINE_STOP_EOG, HL_OK);
        return;
    }
    if (s->pos >= n_ctx) {
        seq_finish(s, HL_ENGINE_STOP_CONTEXT, HL_OK);
        return;
    }
    s->res.n_gen++;
    s->ids[s->pos] = id;
    if (s->req.on_token) {
        /* piece_cap fits every token's text, so nothing is ever cut here. */
        int len = hl_tok_piece(e->tok, id, false, e->piece, e->piece_cap);
        if (len < 0 || (size_t)len > e->piece_cap) {
            seq_finish(s, HL_ENGINE_STOP_CANCELLED, HL_ERR_INVAL);
            return;
        }
        double lse = log_sum_exp(logits, (int)e->vocab);
        hl_engine_alt top[HL_ENGINE_MAX_TOP];
        int k = s->req.top_logprobs;
        k = k < 0 ? 0 : k > HL_ENGINE_MAX_TOP ? HL_ENGINE_MAX_TOP : k;
        int n_top = k ? top_k(logits, (int)e->vocab, k, lse, top) : 0;
        hl_engine_token tk = {id, e->piece, (size_t)len, (float)((double)logits[id] - lse), n_top ? top : NULL, n_top};
        if (s->req.on_token(s->req.cb_ctx, &tk) != 0) {
            seq_finish(s, HL_ENGINE_STOP_CANCELLED, HL_OK);
            return;
        }
    }
    if (s->req.max_tokens > 0 && s->res.n_gen >= s->req.max_tokens) {
        seq_finish(s, HL_ENGINE_STOP_LENGTH, HL_OK);
        return;
    }
    s->pending = id;
    s->state = SEQ_DECODE;
}

hl_err hl_engine_step(hl_engine *e, int *active) {
    uint32_t batch = hl_model_max_batch(e->model);
    int n = 0, n_out = 0;
    /* The next token of every sequence that is generating, then prompt chunks. */
    for (uint32_t i = 0; i < e->n_seq; i++) {
        hl_engine_seq *s = e->slots[i];
        if (!s || s->held || s->state != SEQ_DECODE || (uint32_t)n == batch) continue;
        e->items[n++] = (hl_model_item){s->pending, s->slot, s->pos, true};
        e->owner[n_out++] = s;
    }
    for (uint32_t i = 0; i < e->n_seq && (uint32_t)n < batch; i++) {
        hl_engine_seq *s = e->slots[i];
        if (!s || s->held || s->state != SEQ_PREFILL) continue;
        uint32_t k = s->n_prompt - s->fed;
        if (k > batch - (uint32_t)n) k = batch - (uint32_t)n;
        for (uint32_t j = 0; j < k; j++, s->fed++) {
            bool last = s->fed == s->n_prompt - 1;
            e->items[n++] = (hl_model_item){s->ids[s->fed], s->slot, s->fed, last};
            if (last) e->owner[n_out++] = s;
        }
    }
    hl_err r = HL_OK;
    if (n > 0) r = hl_model_forward_batch(e->model, e->items, n);
    if (r) {
        /* Every sequence in the pass is finished with the error. */
        for (int b = 0; b < n; b++)
            if (e->slots[e->items[b].seq]) seq_finish(e->slots[e->items[b].seq], HL_ENGINE_STOP_CANCELLED, r);
    } else {
        double now = now_s();
        for (int k = 0; k < n_out; k++) {
            hl_engine_seq *s = e->owner[k];
            if (s->state == SEQ_PREFILL) {
                s->t_first = now;
                s->res.prefill_s = now - s->t_start;
                s->pos = s->n_prompt;
            } else {
                s->pos++;
            }
            seq_next(e, s, hl_model_logits_at(e->model, k));
        }
    }
    if (active) *active = (int)e->n_seq - hl_engine_free_slots(e);
    return r;
}

bool hl_engine_seq_finished(const hl_engine_seq *s, hl_engine_result *res, hl_err *err) {
    if (s->state != SEQ_DONE) return false;
    if (res) *res = s->res;
    if (err) *err = s->err;
    return true;
}

void hl_engine_seq_hold(hl_engine_seq *s, bool hold) { s->held = hold; }

void hl_engine_seq_cancel(hl_engine_seq *s) { seq_finish(s, HL_ENGINE_STOP_CANCELLED, HL_OK); }

void hl_engine_seq_free(hl_engine_seq *s) {
    if (!s) return;
    seq_finish(s, HL_ENGINE_STOP_CANCELLED, HL_OK);
    free(s->ids);
    free(s);
}

hl_err hl_engine_generate(hl_engine *e, const hl_engine_request *req, hl_engine_result *res) {
    memset(res, 0, sizeof *res);
    hl_engine_seq *s;
    hl_err r = hl_engine_seq_start(e, req, &s);
    if (r) return r;
    while (!hl_engine_seq_finished(s, NULL, NULL))
        if ((r = hl_engine_step(e, NULL))) break;
    hl_engine_seq_finished(s, res, &r);
    hl_engine_seq_free(s);
    return r;
}


/* ---- embeddings ------------------------------------------------------------------------ */

hl_engine_pooling hl_engine_pooling_of(const hl_engine *e) {
    const hl_gguf *g = hl_model_gguf(e->model);
    hl_gguf_str arch;
    char key[96];
    uint32_t t = 0;
    if (hl_gguf_get_str(g, "general.architecture", &arch) != HL_OK) return HL_ENGINE_POOL_MEAN;
    snprintf(key, sizeof key, "%.*s.pooling_type", (int)(arch.n < 64 ? arch.n : 64), arch.p);
    if (hl_gguf_get_u32(g, key, &t) != HL_OK) {
        int64_t v; /* some converters write it signed */
        if (hl_gguf_get_i64(g, key, &v) == HL_OK && v >= 0 && v < 16) t = (uint32_t)v;
    }
    return t == 2 ? HL_ENGINE_POOL_CLS : t == 3 ? HL_ENGINE_POOL_LAST : HL_ENGINE_POOL_MEAN;
}

hl_err hl_engine_embed_tokens(hl_engine *e, const int32_t *ids, size_t n, hl_engine_pooling pooling, float *out,
                              uint32_t dim) {
    hl_model *m = e->model;
    uint32_t d = hl_model_hp(m)->dim, batch = hl_model_max_batch(m);
    if (dim != d || n == 0) return HL_ERR_INVAL;
    if (n > hl_model_n_ctx(m)) return HL_ERR_LIMIT;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= e->vocab) return HL_ERR_INVAL;
    uint32_t slot = 0;
    while (slot < e->n_seq && e->slots[slot]) slot++;
    if (slot == e->n_seq) return HL_ERR_AGAIN;
    if (pooling == HL_ENGINE_POOL_MODEL) pooling = hl_engine_pooling_of(e);
    float *hidden = malloc((size_t)batch * d * sizeof *hidden);
    double *acc = calloc(d, sizeof *acc);
    hl_err r = hidden && acc ? HL_OK : HL_ERR_NOMEM;
    /* e->items is free between steps: the chunks are built there. */
    for (size_t at = 0; !r && at < n; at += batch) {
        int k = (int)(n - at < batch ? n - at : batch);
        for (int j = 0; j < k; j++)
            e->items[j] = (hl_model_item){ids[at + (size_t)j], slot, (uint32_t)(at + (size_t)j), false};
        if ((r = hl_model_forward_hidden(m, e->items, k, hidden))) break;
        for (int j = 0; j < k; j++) {
            size_t pos = at + (size_t)j;
            bool take = pooling == HL_ENGINE_POOL_MEAN || (pooling == HL_ENGINE_POOL_CLS && pos == 0) ||
                        (pooling == HL_ENGINE_POOL_LAST && pos == n - 1);
            if (take)
                for (uint32_t i = 0; i < d; i++) acc[i] += hidden[(size_t)j * d + i];
        }
    }
    if (!r) {
        double ss = 0, scale = pooling == HL_ENGINE_POOL_MEAN ? 1.0 / (double)n : 1.0;
        for (uint32_t i = 0; i < d; i++) {
            acc[i] *= scale;
            ss += acc[i] * acc[i];
        }
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0; /* a zero vector stays zero (llama.cpp's rule) */
        for (uint32_t i = 0; i < d; i++) out[i] = (float)(acc[i] * inv);
    }
    free(hidden);
    free(acc);
    return r;
}

hl_err hl_engine_embed(hl_engine *e, const char *text, size_t len, hl_engine_pooling pooling, float *out,
                       uint32_t dim, int *n_tokens) {
    if (hl_engine_free_slots(e) == 0) return HL_ERR_AGAIN; /* before the tokenizer's work */
    uint32_t n_ctx = hl_model_n_ctx(e->model);
    int32_t *ids = malloc(((size_t)n_ctx + 1) * sizeof *ids);
    if (!ids) return HL_ERR_NOMEM;
    size_t n = 0;
    hl_err r = hl_tok_encode(e->tok, text, len, hl_tok_add_bos(e->tok), true, ids, (size_t)n_ctx + 1, &n);
    if (!r && n > n_ctx) r = HL_ERR_LIMIT;
    if (!r && n == 0) r = HL_ERR_INVAL;
    if (!r) r = hl_engine_embed_tokens(e, ids, n, pooling, out, dim);
    if (n_tokens) *n_tokens = (int)n;
    free(ids);
    return r;
}
