/* hl_engine: generation loop and sampling; see hl_engine.h. */
#include "hl_engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hl_engine {
    hl_model *model; /* owned; owns the GGUF */
    hl_tok *tok;     /* owned; borrows the model's GGUF */
    uint32_t vocab;
    int32_t *ids;    /* [n_ctx] prompt + generated tokens */
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
    hl_model_params mp = {.n_ctx = p->n_ctx, .max_batch = p->n_batch, .n_threads = p->n_threads};
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
    e->ids = malloc(hl_model_n_ctx(e->model) * sizeof *e->ids);
    e->work = malloc(e->vocab * sizeof *e->work);
    e->cand = malloc(e->vocab * sizeof *e->cand);
    e->prob = malloc(e->vocab * sizeof *e->prob);
    e->piece_cap = hl_tok_max_piece(e->tok);
    e->piece = malloc(e->piece_cap);
    if (!e->ids || !e->work || !e->cand || !e->prob || !e->piece) {
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
    free(e->ids);
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

static float logprob_of(const float *logits, int n, int32_t id) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return (float)((double)logits[id] - mx - log(sum));
}

hl_err hl_engine_generate(hl_engine *e, const hl_engine_request *req, hl_engine_result *res) {
    memset(res, 0, sizeof *res);
    uint32_t n_ctx = hl_model_n_ctx(e->model), batch = hl_model_max_batch(e->model);
    size_t n_prompt;
    hl_err r = hl_tok_encode(e->tok, req->prompt, req->prompt_len,
                             req->add_bos && hl_tok_add_bos(e->tok), req->parse_special, e->ids,
                             n_ctx, &n_prompt);
    if (r) return r;
    if (n_prompt == 0) return HL_ERR_INVAL; /* nothing to continue from */
    if (n_prompt >= n_ctx) return HL_ERR_LIMIT;
    res->n_prompt = (int)n_prompt;
    double t0 = now_s();
    for (size_t i = 0; i < n_prompt; i += batch) {
        size_t k = n_prompt - i < batch ? n_prompt - i : batch;
        r = hl_model_forward(e->model, e->ids + i, (int)k, (uint32_t)i);
        if (r) return r;
    }
    double t1 = now_s();
    res->prefill_s = t1 - t0;
    uint64_t rng = req->sampling.seed;
    size_t pos = n_prompt;
    for (;;) {
        const float *logits = hl_model_logits(e->model);
        int32_t id = hl_engine_sample(e, logits, &req->sampling, e->ids, (int)pos, &rng);
        if (hl_tok_is_eog(e->tok, id)) {
            res->stop = HL_ENGINE_STOP_EOG;
            break;
        }
        if (pos >= n_ctx) {
            res->stop = HL_ENGINE_STOP_CONTEXT;
            break;
        }
        res->n_gen++;
        e->ids[pos] = id;
        if (req->on_token) {
            /* piece_cap fits every token's text, so nothing is ever cut here. */
            int len = hl_tok_piece(e->tok, id, false, e->piece, e->piece_cap);
            if (len < 0 || (size_t)len > e->piece_cap) return HL_ERR_INVAL;
            hl_engine_token tk = {id, e->piece, (size_t)len, logprob_of(logits, (int)e->vocab, id)};
            if (req->on_token(req->cb_ctx, &tk) != 0) {
                res->stop = HL_ENGINE_STOP_CANCELLED;
                break;
            }
        }
        if (req->max_tokens > 0 && res->n_gen >= req->max_tokens) {
            res->stop = HL_ENGINE_STOP_LENGTH;
            break;
        }
        r = hl_model_forward(e->model, &id, 1, (uint32_t)pos);
        if (r) return r;
        pos++;
    }
    res->decode_s = now_s() - t1;
    return HL_OK;
}
