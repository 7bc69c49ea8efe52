/* hl_model: loading and running the llama architecture; see hl_model.h.
 *
 * forward() works on a batch of tokens so that a prompt is read through the weights once
 * per batch rather than once per token: each weight row is dotted with every token's
 * activation while it is in L1. Decoding is the same code with a batch of one. */
#include "hl_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hl_engine_pool.h"
#include "hl_swiglu.h"


struct hl_model {
    hl_gguf *g;                /* owned */
    hl_model_hparams hp;
    hl_model_mat tok_embd;     /* [vocab rows, dim cols] */
    const float *out_norm;     /* [dim] */
    hl_model_mat output;       /* [vocab, dim]; token_embd when the file ties them */
    hl_model_layer *layers;    /* [n_layers]; owned */
    uint32_t n_ctx, max_batch, n_seq;
    hl_engine_pool *pool;      /* owned */
    uint8_t *packed_arena;     /* every matrix's repacked copy, owned (NULL: none) */
    uint32_t q_dim, kv_dim;    /* n_heads * head_dim, n_kv_heads * head_dim */
    /* KV cache in half precision, owned: [n_seq][n_layers][n_ctx][kv_dim] each. */
    uint16_t *k_cache, *v_cache;
    /* Activations, owned, allocated once; B = max_batch. */
    float *x;                  /* [B][dim] residual stream */
    float *xb;                 /* [B][max(dim, q_dim)] normed input, then attention output */
    float *xb2;                /* [B][dim] output of wo and w_down */
    float *q;                  /* [B][q_dim] */
    float *k, *v;              /* [B][kv_dim] new keys and values before rounding to half */
    uint16_t *q16;             /* [B][q_dim] queries in half precision */
    uint16_t *acc16;           /* [n_threads][n_heads / n_kv_heads][head_dim] attention accumulators */
    float *att_sum;            /* [n_threads][n_heads / n_kv_heads] their softmax sums */
    const hl_quant_vec_ops *vec;
    int swiglu_width;          /* hl_swiglu_width() */
    float *hb, *hb2;           /* [B][ffn] gate and up */
    float *rope_cs;            /* [B][rope_dim] cos/sin pairs per position */
    const float *rope_freqs;   /* [rope_dim / 2] frequency factors (borrows the mmap), or NULL */
    const float *rope_long, *rope_short; /* phi3's LongRoPE factor sets, or NULL */
    float att_scale;           /* applied to q.k: 1/sqrt(head_dim), or 1 with q_prescale */
    float *logits;             /* [n_seq][vocab] */
    const hl_model_item *items; /* the batch being run (borrowed during forward_batch) */
    hl_model_item *run;        /* [max_batch] forward()'s batch, owned */
    void *act[HL_ACT_COUNT];   /* [B][act_cap] activations in each non-F32 format */
    size_t act_cap;            /* bytes per token in each act buffer */
    void *actx;                /* B tokens' activations for the GEMM kernels */
    void *actxk;               /* the same quantized per 256 values, for the K-quants' */
};

/* ---- loading ---------------------------------------------------------------------------- */

static hl_err errf(char *err, size_t n, hl_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static hl_err errf(char *err, size_t n, hl_err code, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return code;
}

typedef struct loader {
    hl_model *m;
    char arch[48];
    char *err;
    size_t err_size;
} loader;

/* Reads "<arch>.<name>" as u32; HL_ERR_NOTFOUND leaves *v alone. */
static hl_err arch_u32(loader *ld, const char *name, uint32_t *v, bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, name);
    hl_err e = hl_gguf_get_u32(ld->m->g, key, v);
    if (e == HL_ERR_NOTFOUND && !required) return HL_OK;
    if (e == HL_ERR_NOTFOUND) return errf(ld->err, ld->err_size, HL_ERR_PARSE, "missing %s", key);
    if (e) return errf(ld->err, ld->err_size, HL_ERR_PARSE, "%s: not a u32", key);
    return HL_OK;
}

static hl_err arch_f32(loader *ld, const char *name, float *v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, name);
    hl_err e = hl_gguf_get_f32(ld->m->g, key, v);
    if (e == HL_ERR_NOTFOUND) return HL_OK;
    if (e || !isfinite(*v)) return errf(ld->err, ld->err_size, HL_ERR_PARSE, "%s: not a number", key);
    return HL_OK;
}

static hl_err get_mat(loader *ld, hl_model_mat *mat, const char *name, uint32_t cols,
                      uint32_t rows) {
    const hl_gguf_tensor *t = hl_gguf_find_tensor(ld->m->g, name);
    if (!t) return errf(ld->err, ld->err_size, HL_ERR_PARSE, "missing tensor %s", name);
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE,
                    "tensor %s: shape [%llu, %llu, %llu, %llu], expected [%u, %u]", name,
                    (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                    (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], cols, rows);
    if (!hl_quant_supported(t->type))
        return errf(ld->err, ld->err_size, HL_ERR_UNSUPPORTED, "tensor %s: type %s is not supported",
                    name, hl_gguf_type_name(t->type));
    /* Kernels load F32 as floats and every other type as 16-bit fields. */
    uintptr_t need = t->type == HL_GGUF_F32 ? 4 : 2;
    if ((uintptr_t)t->data % need)
        return errf(ld->err, ld->err_size, HL_ERR_UNSUPPORTED, "tensor %s: misaligned data", name);
    mat->data = t->data;
    mat->type = t->type;
    mat->rows = rows;
    mat->cols = cols;
    mat->row_bytes = hl_gguf_row_size(t->type, cols);
    mat->dot = hl_quant_dot_fn_for(t->type);
    mat->gemm = hl_quant_gemm_fn_for(t->type);
    mat->act = hl_quant_act_for_isa(t->type, hl_quant_kernel_isa(t->type));
    if (!mat->dot)
        return errf(ld->err, ld->err_size, HL_ERR_UNSUPPORTED, "tensor %s: no kernel", name);
    return HL_OK;
}

/* Rows [row0, row0 + rows) of a tensor of total_rows rows: one part of a fused matrix. */
static hl_err get_mat_part(loader *ld, hl_model_mat *mat, const char *name, uint32_t cols,
                           uint32_t total_rows, uint32_t row0, uint32_t rows) {
    hl_err e = get_mat(ld, mat, name, cols, total_rows);
    if (e) return e;
    mat->data = (const uint8_t *)mat->data + (size_t)row0 * mat->row_bytes;
    mat->rows = rows;
    return HL_OK;
}

static hl_err get_vec(loader *ld, const float **v, const char *name, uint32_t n) {
    const hl_gguf_tensor *t = hl_gguf_find_tensor(ld->m->g, name);
    if (!t) return errf(ld->err, ld->err_size, HL_ERR_PARSE, "missing tensor %s", name);
    if (t->type != HL_GGUF_F32 || t->ne[0] != n || t->ne[1] * t->ne[2] * t->ne[3] != 1)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "tensor %s: expected F32 [%u]", name, n);
    if ((uintptr_t)t->data % 4)
        return errf(ld->err, ld->err_size, HL_ERR_UNSUPPORTED, "tensor %s: misaligned data", name);
    *v = t->data;
    return HL_OK;
}

static hl_err read_hparams(loader *ld) {
    hl_model *m = ld->m;
    hl_model_hparams *hp = &m->hp;
    hl_gguf_str arch;
    if (hl_gguf_get_str(m->g, "general.architecture", &arch) != HL_OK)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "missing general.architecture");
    if (hl_gguf_str_eq(arch, "llama")) {
        hp->rope_neox = false;
    } else if (hl_gguf_str_eq(arch, "qwen2")) {
        hp->rope_neox = true;
    } else if (hl_gguf_str_eq(arch, "qwen3")) {
        hp->rope_neox = hp->qk_norm = true;
    } else if (hl_gguf_str_eq(arch, "phi3")) {
        hp->rope_neox = hp->q_prescale = true;
    } else {
        return errf(ld->err, ld->err_size, HL_ERR_UNSUPPORTED, "architecture '%.*s' is not "
                    "supported (llama, qwen2, qwen3, phi3)", (int)(arch.n < 32 ? arch.n : 32), arch.p);
    }
    snprintf(ld->arch, sizeof ld->arch, "%.*s", (int)arch.n, arch.p);
    hl_err e;
    if ((e = arch_u32(ld, "context_length", &hp->n_ctx_train, true)) ||
        (e = arch_u32(ld, "embedding_length", &hp->dim, true)) ||
        (e = arch_u32(ld, "block_count", &hp->n_layers, true)) ||
        (e = arch_u32(ld, "feed_forward_length", &hp->ffn, true)) ||
        (e = arch_u32(ld, "attention.head_count", &hp->n_heads, true)))
        return e;
    hp->n_kv_heads = hp->n_heads;
    if ((e = arch_u32(ld, "attention.head_count_kv", &hp->n_kv_heads, false))) return e;
    /* Sane ceilings first: every product below then fits comfortably in 64 bits. */
    if (hp->dim == 0 || hp->dim > 65536 || hp->n_layers == 0 || hp->n_layers > 1024 ||
        hp->ffn == 0 || hp->ffn > (1u << 20) || hp->n_heads == 0 || hp->n_heads > 1024 ||
        hp->n_kv_heads == 0 || hp->n_heads % hp->n_kv_heads || hp->n_ctx_train == 0)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE,
                    "implausible hyper-parameters: dim %u, layers %u, ffn %u, heads %u/%u, ctx %u",
                    hp->dim, hp->n_layers, hp->ffn, hp->n_heads, hp->n_kv_heads, hp->n_ctx_train);
    hp->head_dim = hp->dim / hp->n_heads;
    if ((e = arch_u32(ld, "attention.key_length", &hp->head_dim, false))) return e;
    uint32_t vlen = hp->head_dim;
    if ((e = arch_u32(ld, "attention.value_length", &vlen, false))) return e;
    if (hp->head_dim == 0 || hp->head_dim > 1024 || hp->head_dim % 2 || vlen != hp->head_dim)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "unsupported head size %u/%u",
                    hp->head_dim, vlen);
    hp->rope_dim = hp->head_dim;
    if ((e = arch_u32(ld, "rope.dimension_count", &hp->rope_dim, false))) return e;
    if (hp->rope_dim == 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "bad rope.dimension_count %u", hp->rope_dim);
    hp->rope_base = 10000.0f;
    hp->norm_eps = 1e-5f;
    hp->rope_scale = 1.0f;
    float lin = 0;
    if ((e = arch_f32(ld, "rope.freq_base", &hp->rope_base)) ||
        (e = arch_f32(ld, "attention.layer_norm_rms_epsilon", &hp->norm_eps)) ||
        (e = arch_f32(ld, "rope.scale_linear", &lin)))
        return e;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", ld->arch);
    hl_gguf_str st;
    if (hl_gguf_get_str(m->g, key, &st) == HL_OK && !hl_gguf_str_eq(st, "none")) {
        if (!hl_gguf_str_eq(st, "linear"))
            return errf(ld->err, ld->err_size, HL_ERR_UNSUPPORTED, "rope scaling '%.*s' is not "
                        "supported", (int)(st.n < 32 ? st.n : 32), st.p);
        if ((e = arch_f32(ld, "rope.scaling.factor", &lin))) return e;
    }
    if (lin > 0) hp->rope_scale = 1.0f / lin;
    hp->n_ctx_orig = hp->n_ctx_train;
    hp->rope_attn_factor = 1.0f;
    if ((e = arch_u32(ld, "rope.scaling.original_context_length", &hp->n_ctx_orig, false)) ||
        (e = arch_f32(ld, "rope.scaling.attn_factor", &hp->rope_attn_factor)))
        return e;
    if (!(hp->rope_attn_factor > 0) || hp->n_ctx_orig == 0)
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "bad rope.scaling.attn_factor or "
                    "original_context_length");
    /* Phi-3's LongRoPE factor sets (alloc_state picks one for the context size). */
    if (hl_gguf_find_tensor(m->g, "rope_factors_long.weight") &&
        ((e = get_vec(ld, &m->rope_long, "rope_factors_long.weight", hp->rope_dim / 2)) ||
         (e = get_vec(ld, &m->rope_short, "rope_factors_short.weight", hp->rope_dim / 2))))
        return e;
    /* Llama 3.1/3.2 files carry their RoPE scaling as per-dimension frequency factors: pair i
     * turns at base^(-2i/rope_dim) / factor[i] (llama.cpp's freq_factors). */
    if (hl_gguf_find_tensor(m->g, "rope_freqs.weight") &&
        (e = get_vec(ld, &m->rope_freqs, "rope_freqs.weight", hp->rope_dim / 2)))
        return e;
    if (!(hp->rope_base > 0) || !(hp->norm_eps > 0) || !(hp->rope_scale > 0))
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "bad rope base, scale or norm epsilon");
    const hl_gguf_tensor *te = hl_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te || te->ne[1] == 0 || te->ne[1] > (1u << 24))
        return errf(ld->err, ld->err_size, HL_ERR_PARSE, "missing or bad token_embd.weight");
    hp->vocab = (uint32_t)te->ne[1];
    return HL_OK;
}

static hl_err load_weights(loader *ld) {
    hl_model *m = ld->m;
    const hl_model_hparams *hp = &m->hp;
    hl_err e;
    if ((e = get_mat(ld, &m->tok_embd, "token_embd.weight", hp->dim, hp->vocab)) ||
        (e = get_vec(ld, &m->out_norm, "output_norm.weight", hp->dim)))
        return e;
    if (hl_gguf_find_tensor(m->g, "output.weight")) {
        if ((e = get_mat(ld, &m->output, "output.weight", hp->dim, hp->vocab))) return e;
    } else {
        m->output = m->tok_embd;
    }
    m->layers = calloc(hp->n_layers, sizeof *m->layers);
    if (!m->layers) return errf(ld->err, ld->err_size, HL_ERR_NOMEM, "out of memory");
    for (uint32_t l = 0; l < hp->n_layers; l++) {
        hl_model_layer *L = &m->layers[l];
        char n[9][64];
        static const char *const names[9] = {"attn_norm", "attn_q", "attn_k", "attn_v",
                                             "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                                             "ffn_down"};
        for (int i = 0; i < 9; i++) snprintf(n[i], sizeof n[i], "blk.%u.%s.weight", l, names[i]);
        /* Q/K/V biases: Qwen2 has them; a llama file may too. */
        static const char *const bias_names[3] = {"attn_q", "attn_k", "attn_v"};
        const float **biases[3] = {&L->bq, &L->bk, &L->bv};
        uint32_t bias_len[3] = {m->q_dim, m->kv_dim, m->kv_dim};
        for (int i = 0; i < 3; i++) {
            char bn[64];
            snprintf(bn, sizeof bn, "blk.%u.%s.bias", l, bias_names[i]);
            if (hl_gguf_find_tensor(m->g, bn) && (e = get_vec(ld, biases[i], bn, bias_len[i])))
                return e;
        }
        if ((e = get_vec(ld, &L->attn_norm, n[0], hp->dim)) ||
            (e = get_mat(ld, &L->wo, n[4], m->q_dim, hp->dim)) ||
            (e = get_vec(ld, &L->ffn_norm, n[5], hp->dim)) ||
            (e = get_mat(ld, &L->w_down, n[8], hp->ffn, hp->dim)))
            return e;
        /* Q, K and V: one fused tensor (phi3's attn_qkv, rows Q then K then V) or three. */
        char qkv[64];
        snprintf(qkv, sizeof qkv, "blk.%u.attn_qkv.weight", l);
        uint32_t qkv_rows = m->q_dim + 2 * m->kv_dim;
        if (hl_gguf_find_tensor(m->g, qkv)) {
            if ((e = get_mat_part(ld, &L->wq, qkv, hp->dim, qkv_rows, 0, m->q_dim)) ||
                (e = get_mat_part(ld, &L->wk, qkv, hp->dim, qkv_rows, m->q_dim, m->kv_dim)) ||
                (e = get_mat_part(ld, &L->wv, qkv, hp->dim, qkv_rows, m->q_dim + m->kv_dim, m->kv_dim)))
                return e;
        } else if ((e = get_mat(ld, &L->wq, n[1], hp->dim, m->q_dim)) ||
                   (e = get_mat(ld, &L->wk, n[2], hp->dim, m->kv_dim)) ||
                   (e = get_mat(ld, &L->wv, n[3], hp->dim, m->kv_dim))) {
            return e;
        }
        /* Gate and up: phi3 fuses them in ffn_up (gate rows first), without ffn_gate. */
        if (!hl_gguf_find_tensor(m->g, n[6]) && hl_gguf_find_tensor(m->g, n[7])) {
            if ((e = get_mat_part(ld, &L->w_gate, n[7], hp->dim, 2 * hp->ffn, 0, hp->ffn)) ||
                (e = get_mat_part(ld, &L->w_up, n[7], hp->dim, 2 * hp->ffn, hp->ffn, hp->ffn)))
                return e;
        } else if ((e = get_mat(ld, &L->w_gate, n[6], hp->dim, hp->ffn)) ||
                   (e = get_mat(ld, &L->w_up, n[7], hp->dim, hp->ffn))) {
            return e;
        }
        if (hp->qk_norm) {
            char qn[64], kn[64];
            snprintf(qn, sizeof qn, "blk.%u.attn_q_norm.weight", l);
            snprintf(kn, sizeof kn, "blk.%u.attn_k_norm.weight", l);
            if ((e = get_vec(ld, &L->q_norm, qn, hp->head_dim)) ||
                (e = get_vec(ld, &L->k_norm, kn, hp->head_dim)))
                return e;
        }
    }
    return HL_OK;
}

/* calloc of a*b*c floats with overflow checks. */
static float *alloc_f(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t n;
    if (__builtin_mul_overflow(a, b, &n) || __builtin_mul_overflow(n, c, &n) ||
        n > (SIZE_MAX / sizeof(float)) / 2)
        return NULL;
    return calloc((size_t)(n ? n : 1), sizeof(float));
}

static hl_err alloc_state(loader *ld, const hl_model_params *p) {
    hl_model *m = ld->m;
    const hl_model_hparams *hp = &m->hp;
    m->n_ctx = p && p->n_ctx ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    m->max_batch = p && p->max_batch ? p->max_batch : 64;
    m->n_seq = p && p->n_seq ? p->n_seq : 1;
    if (m->n_ctx > (1u << 20) || m->max_batch > 4096 || m->n_seq > 256)
        return errf(ld->err, ld->err_size, HL_ERR_LIMIT, "n_ctx %u, max_batch %u or n_seq %u too large",
                    m->n_ctx, m->max_batch, m->n_seq);
    int nt = p && p->n_threads > 0 ? p->n_threads : 1;
    if (hl_engine_pool_new(&m->pool, nt) != HL_OK)
        return errf(ld->err, ld->err_size, HL_ERR_NOMEM, "cannot start %d threads", nt);
    uint32_t B = m->max_batch, xdim = hp->dim > m->q_dim ? hp->dim : m->q_dim;
    /* alloc_f counts floats: halves need half as many. */
    m->k_cache = (uint16_t *)alloc_f((uint64_t)m->n_seq * hp->n_layers, m->n_ctx, (m->kv_dim + 1) / 2);
    m->v_cache = (uint16_t *)alloc_f((uint64_t)m->n_seq * hp->n_layers, m->n_ctx, (m->kv_dim + 1) / 2);
    m->k = alloc_f(B, m->kv_dim, 1);
    m->v = alloc_f(B, m->kv_dim, 1);
    m->q16 = (uint16_t *)alloc_f(B, (m->q_dim + 1) / 2, 1);
    uint32_t group = hp->n_heads / hp->n_kv_heads;
    m->acc16 = (uint16_t *)alloc_f((uint64_t)nt, group, (hp->head_dim + 1) / 2);
    m->att_sum = alloc_f((uint64_t)nt, group, 1);
    m->vec = hl_quant_vec_best();
    m->swiglu_width = hl_swiglu_width();
    m->x = alloc_f(B, hp->dim, 1);
    m->xb = alloc_f(B, xdim, 1);
    m->xb2 = alloc_f(B, hp->dim, 1);
    m->q = alloc_f(B, m->q_dim, 1);
    m->hb = alloc_f(B, hp->ffn, 1);
    m->hb2 = alloc_f(B, hp->ffn, 1);
    m->rope_cs = alloc_f(B, hp->rope_dim, 1);
    m->logits = alloc_f(m->n_seq, hp->vocab, 1);
    m->run = calloc(B, sizeof *m->run);
    /* Quantized activations for the widest input (dim, q_dim or ffn), rounded up to whole
     * super-blocks; Q8K blocks are the larger per element. */
    uint32_t wmax = xdim > hp->ffn ? xdim : hp->ffn;
    wmax = (wmax + 255) / 256 * 256;
    bool act_ok = true;
    for (int a = HL_ACT_Q8; a < HL_ACT_COUNT; a++) {
        size_t sz = hl_quant_act_size((hl_quant_act)a, (int)wmax);
        if (sz > m->act_cap) m->act_cap = sz;
    }
    for (int a = HL_ACT_Q8; a < HL_ACT_COUNT; a++)
        act_ok &= (m->act[a] = malloc(m->act_cap * B)) != NULL;
    act_ok &= (m->actx = malloc(hl_quant_actx_size((int)wmax, (int)B))) != NULL;
    act_ok &= (m->actxk = malloc(hl_quant_actx_size_for(HL_GGUF_Q4_K, (int)wmax, (int)B))) != NULL;
    if (!m->k_cache || !m->v_cache || !m->x || !m->xb || !m->xb2 || !m->q || !m->hb ||
        !m->hb2 || !m->k || !m->v || !m->q16 || !m->acc16 || !m->att_sum || !m->rope_cs ||
        !m->logits || !m->run || !act_ok)
        return errf(ld->err, ld->err_size, HL_ERR_NOMEM, "out of memory for the KV cache "
                    "(%u positions x %u sequences) and activations", m->n_ctx, m->n_seq);
    /* LongRoPE: the long factors when this context exceeds the original one (as llama.cpp
     * chooses, by the context per sequence). */
    if (m->rope_long) m->rope_freqs = m->n_ctx > hp->n_ctx_orig ? m->rope_long : m->rope_short;
    m->att_scale = hp->q_prescale ? 1.0f : 1.0f / sqrtf((float)hp->head_dim);
    return HL_OK;
}

/* Repacks a Q4_0/Q8_0/K-quant matrix a group of rows (4, K-quants 16) at a time where the
 * CPU has kernels for it and the rows are whole groups.
 * Sizing pass (arena NULL): adds the copy's bytes to *total; then places it at arena +
 * *total. One allocation for all: each in its own would round up to a huge page. */
static void repack_mat(hl_model_mat *w, uint8_t *arena, size_t *total) {
    size_t bb = hl_quant_x4_block_bytes(w->type);
    uint32_t blk = hl_gguf_type_block(w->type);
    hl_quant_x4_fn dot4 = hl_quant_x4_fn_for(w->type);
    hl_quant_gemm_fn gemm = hl_quant_gemm_x4_fn_for(w->type);
    /* Q4_0 matrices whose rows are not a multiple of 8 llama.cpp does not repack: it runs
     * them in another summation order, which the AVX2 kernel follows (see hl_quant_x86.c). */
    if (w->type == HL_GGUF_Q4_0 && w->rows % 8 && hl_quant_kernel(w->type, HL_ISA_AVX2) &&
        hl_quant_best_isa() >= HL_ISA_AVX2) {
        w->dot = hl_quant_kernel(w->type, HL_ISA_AVX2);
        w->act = hl_quant_act_for_isa(w->type, HL_ISA_AVX2);
        w->gemm = NULL;
        return;
    }
    uint32_t gr = hl_quant_x4_rows(w->type);
    if (!bb || !dot4 || !gemm || w->rows % gr || w->cols % blk || w->packed) return;
    size_t stride = (size_t)(w->cols / blk) * bb, size = (size_t)(w->rows / gr) * stride;
    size_t at = *total;
    *total += (size + 4095) / 4096 * 4096;
    if (!arena) return;
    w->packed = arena + at; /* filled by pack_worker */
    w->packed_stride = stride;
    w->packed_rows = gr;
    w->dot4 = dot4;
    w->gemm = gemm;
    w->act = hl_quant_x4_act(w->type);
}

/* Fills one matrix's repacked copy, each thread a share of its groups (the first touch of
 * fresh memory, the kernel zeroing it, is most of the cost). */
static void pack_worker(void *ctx, int ith, int nth) {
    const hl_model_mat *w = ctx;
    uint32_t gr = w->packed_rows, groups = w->rows / gr;
    uint32_t g0 = (uint32_t)((uint64_t)groups * ith / nth), g1 = (uint32_t)((uint64_t)groups * (ith + 1) / nth);
    if (g1 > g0)
        hl_quant_x4_pack(w->type, (const uint8_t *)w->data + (size_t)g0 * gr * w->row_bytes, w->row_bytes,
                         gr * (g1 - g0), w->cols, w->packed + (size_t)g0 * w->packed_stride);
}

/* Packs w and gives back the file's pages of it (never read again: every kernel reads the
 * copy), so that the weights are in memory once, not twice, from the start: matrix by
 * matrix, the peak is the copies plus one matrix. Not when the output matrix is the token
 * embeddings (tied), whose rows are still looked up. */
static void pack_release(hl_model *m, hl_model_mat *w) {
    if (!w->packed) return;
    hl_engine_pool_run(m->pool, pack_worker, w);
    if (w->data != m->tok_embd.data) hl_gguf_release(m->g, w->data, (size_t)w->rows * w->row_bytes);
}

static hl_err repack(loader *ld) {
    hl_model *m = ld->m;
    uint8_t *arena = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t total = 0;
        repack_mat(&m->output, arena, &total);
        for (uint32_t l = 0; l < m->hp.n_layers; l++) {
            hl_model_layer *L = &m->layers[l];
            hl_model_mat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (int i = 0; i < 7; i++) repack_mat(mats[i], arena, &total);
        }
        if (pass || !total) break;
        /* 2 MiB aligned so that the kernel can give it huge pages (fewer TLB misses) */
        size_t align = (size_t)2 << 20, cap = (total + align - 1) / align * align;
        void *p = NULL;
        if (posix_memalign(&p, align, cap)) return HL_OK; /* no room: the file's layout */
#ifdef MADV_HUGEPAGE
        madvise(p, cap, MADV_HUGEPAGE);
#endif
        m->packed_arena = arena = p;
    }
    pack_release(m, &m->output);
    for (uint32_t l = 0; l < m->hp.n_layers; l++) {
        hl_model_layer *L = &m->layers[l];
        hl_model_mat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) pack_release(m, mats[i]);
    }
    return HL_OK;
}

hl_err hl_model_load_gguf(hl_model **out, hl_gguf *g, const hl_model_params *params,
                          char *err, size_t err_size) {
    *out = NULL;
    hl_model *m = calloc(1, sizeof *m);
    if (!m) {
        hl_gguf_free(g);
        return errf(err, err_size, HL_ERR_NOMEM, "out of memory");
    }
    m->g = g;
    loader ld = {.m = m, .err = err, .err_size = err_size};
    hl_err e = read_hparams(&ld);
    if (!e) {
        m->q_dim = m->hp.n_heads * m->hp.head_dim;
        m->kv_dim = m->hp.n_kv_heads * m->hp.head_dim;
        e = load_weights(&ld);
    }
    if (!e) e = alloc_state(&ld, params);
    if (!e && !(params && params->keep_layout)) e = repack(&ld);
    if (e) {
        hl_model_free(m);
        return e;
    }
    *out = m;
    return HL_OK;
}

hl_err hl_model_load(hl_model **out, const char *path, const hl_model_params *params,
                     char *err, size_t err_size) {
    *out = NULL;
    hl_gguf *g;
    hl_err e = hl_gguf_open(&g, path, err, err_size);
    if (e) return e;
    char msg[HL_GGUF_ERR_MAX] = "";
    e = hl_model_load_gguf(out, g, params, msg, sizeof msg);
    if (e) errf(err, err_size, e, "%s: %s", path, msg);
    return e;
}

void hl_model_free(hl_model *m) {
    if (!m) return;
    hl_engine_pool_free(m->pool);
    free(m->packed_arena);
    free(m->layers);
    free(m->k_cache);
    free(m->v_cache);
    free(m->x);
    free(m->xb);
    free(m->xb2);
    free(m->q);
    free(m->hb);
    free(m->hb2);
    free(m->k);
    free(m->v);
    free(m->q16);
    free(m->acc16);
    free(m->att_sum);
    free(m->rope_cs);
    free(m->logits);
    free(m->run);
    for (int i = 0; i < HL_ACT_COUNT; i++) free(m->act[i]);
    free(m->actx);
    free(m->actxk);
    hl_gguf_free(m->g);
    free(m);
}

const hl_model_hparams *hl_model_hp(const hl_model *m) { return &m->hp; }
const hl_gguf *hl_model_gguf(const hl_model *m) { return m->g; }
uint32_t hl_model_n_ctx(const hl_model *m) { return m->n_ctx; }
uint32_t hl_model_max_batch(const hl_model *m) { return m->max_batch; }
uint32_t hl_model_n_seq(const hl_model *m) { return m->n_seq; }
const float *hl_model_logits(const hl_model *m) { return m->logits; }
const float *hl_model_logits_at(const hl_model *m, int k) { return m->logits + (size_t)k * m->hp.vocab; }

uint64_t hl_model_weight_bytes(const hl_model *m) {
    uint64_t b = (uint64_t)m->output.row_bytes * m->output.rows;
    for (uint32_t l = 0; l < m->hp.n_layers; l++) {
        const hl_model_layer *L = &m->layers[l];
        const hl_model_mat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                                      &L->w_down};
        for (int i = 0; i < 7; i++) b += (uint64_t)mats[i]->row_bytes * mats[i]->rows;
    }
    return b;
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Fewest tokens for which a matmul goes through the GEMM kernels rather than one dot product
 * per row and token. Measured on the TinyLlama-shaped files, one thread, prompt chunks of n
 * tokens (tok/s, GEMM vs per-row kernels): Q4_0 n=8 41.5 vs 55.6, n=12 60.6 vs 58.0, n=16 77.8
 * vs 59.3; Q8_0 n=8 36.0 vs 42.4, n=12 51.9 vs 46.5. Decode steps of several sequences are the
 * same trade. */
#define HL_MODEL_GEMM_MIN 12

/* Up to three matrices that share one input (q/k/v, gate/up), run as one pool dispatch. */
typedef struct mm_job {
    int n_mats, n_tok;
    const hl_model_mat *mat[3];
    float *out[3];
    size_t out_stride[3];  /* floats between tokens' outputs */
    const uint8_t *act[3]; /* each matrix's activations, in its format */
    bool gemm[3];          /* through mat->gemm, act being the token-interleaved layout */
    size_t act_stride[3];  /* bytes between tokens' activations */
    uint32_t total_rows;
    uint32_t nth;          /* threads sharing the rows */
    atomic_uint next;      /* the first row not yet handed out */
} mm_job;

/* Rows [r0, r1) of the job's matrices taken end to end. */
static void mm_rows(const mm_job *j, uint32_t r0, uint32_t r1) {
    uint32_t base = 0;
    for (int k = 0; k < j->n_mats; k++) {
        const hl_model_mat *w = j->mat[k];
        if (r1 <= base) break;
        uint32_t lo = r0 > base ? r0 - base : 0, hi = r1 - base < w->rows ? r1 - base : w->rows;
        if (w->packed) {
            /* Whole groups: the threads' bounds rounded down alike (rows a multiple of gr). */
            uint32_t gr = w->packed_rows;
            lo -= lo % gr;
            hi -= hi % gr;
            if (j->gemm[k] && hi > lo)
                w->gemm((int)w->cols, w->packed + (size_t)(lo / gr) * w->packed_stride, w->packed_stride,
                        (int)(hi - lo), j->act[k], j->n_tok, j->out[k] + lo, j->out_stride[k]);
            else
                for (uint32_t r = lo; r < hi; r += gr)
                    for (int b = 0; b < j->n_tok; b++)
                        w->dot4((int)w->cols, w->packed + (size_t)(r / gr) * w->packed_stride,
                                j->act[k] + b * j->act_stride[k], j->out[k] + b * j->out_stride[k] + r);
            base += w->rows;
            continue;
        }
        if (j->gemm[k] && hi > lo) {
            w->gemm((int)w->cols, (const uint8_t *)w->data + (size_t)lo * w->row_bytes, w->row_bytes,
                    (int)(hi - lo), j->act[k], j->n_tok, j->out[k] + lo, j->out_stride[k]);
            base += w->rows;
            continue;
        }
        for (uint32_t r = lo; r < hi; r++) {
            const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
            for (int b = 0; b < j->n_tok; b++)
                j->out[k][b * j->out_stride[k] + r] =
                    w->dot((int)w->cols, row, j->act[k] + b * j->act_stride[k]);
        }
        base += w->rows;
    }
}

/* The threads take pieces of the rows as they come free rather than a fixed share each, so
 * that a thread the OS has descheduled (a busy machine) does not hold up the matmul. Each
 * piece is an eighth of the rows left per thread (guided scheduling), in whole multiples of
 * 16 rows (the GEMM's output block), so the pieces shrink to 16 rows at the end: the threads
 * finish within a few microseconds of each other. With equal pieces of 1/16 of the rows,
 * thread 0 waited for the other about half a piece per matmul at decode, 0.4 ms per token
 * (Q4_K_M) to 0.9 ms (Q6_K) at 2 threads. Each row's arithmetic is the same whoever
 * computes it. */
static void mm_worker(void *ctx, int ith, int nth) {
    mm_job *j = ctx;
    (void)ith;
    if (nth == 1) {
        mm_rows(j, 0, j->total_rows);
        return;
    }
    uint32_t r0 = atomic_load_explicit(&j->next, memory_order_relaxed), r1;
    for (;;) {
        if (r0 >= j->total_rows) break;
        uint32_t piece = (j->total_rows - r0) / (8 * j->nth);
        piece = piece < 16 ? 16 : (piece + 15) / 16 * 16;
        r1 = j->total_rows - r0 < piece ? j->total_rows : r0 + piece;
        /* on failure r0 is the row another thread moved next to: try again from there */
        if (!atomic_compare_exchange_weak_explicit(&j->next, &r0, r1, memory_order_relaxed,
                                                   memory_order_relaxed))
            continue;
        mm_rows(j, r0, r1);
        r0 = atomic_load_explicit(&j->next, memory_order_relaxed);
    }
}

/* out_k[b] = mat_k . in[b] for each matrix k and token b. in has n_tok rows of in_stride
 * floats; the matrices share cols. */
static void matmul(hl_model *m, int n_tok, const float *in, size_t in_stride, int n_mats,
                   const hl_model_mat *const *mats, float *const *outs, const size_t *out_strides) {
    mm_job j = {.n_mats = n_mats, .n_tok = n_tok};
    bool done[HL_ACT_COUNT] = {false}, packed[2] = {false, false};
    for (int k = 0; k < n_mats; k++) {
        const hl_model_mat *w = mats[k];
        j.mat[k] = w;
        j.out[k] = outs[k];
        j.out_stride[k] = out_strides[k];
        j.total_rows += w->rows;
        /* Several tokens: the GEMM kernels, where the type has one (they read each weight
         * block once for up to 32 tokens). */
        if (w->gemm && n_tok >= HL_MODEL_GEMM_MIN) {
            /* K-quants: quantized per 256 values, as their decode kernels see them */
            bool kq = hl_quant_actx_k(w->type);
            void *ax = kq ? m->actxk : m->actx;
            if (!packed[kq]) hl_quant_actx_pack_for(w->type, in, in_stride, n_tok, (int)w->cols, ax);
            packed[kq] = true;
            j.act[k] = ax;
            j.gemm[k] = true;
            continue;
        }
        if (w->act == HL_ACT_F32) {
            j.act[k] = (const uint8_t *)in;
            j.act_stride[k] = in_stride * sizeof(float);
            continue;
        }
        j.act[k] = m->act[w->act];
        j.act_stride[k] = m->act_cap;
        if (!done[w->act]) {
            for (int b = 0; b < n_tok; b++)
                hl_quant_act_quantize(w->act, in + b * in_stride,
                                      (uint8_t *)m->act[w->act] + b * m->act_cap, (int)w->cols);
            done[w->act] = true;
        }
    }
    j.nth = (uint32_t)hl_engine_pool_size(m->pool);
    atomic_init(&j.next, 0);
    hl_engine_pool_run(m->pool, mm_worker, &j);
}

/* llama.cpp's roundings: squares in float summed in double, the mean and the scale in float
 * (squares or scale in double moved stories260K's norms by an ulp, enough to flip a Q8_0
 * rounding of the next matmul's input now and then). */
static void rmsnorm(float *o, const float *x, const float *w, uint32_t n, float eps) {
    double ss = 0;
    for (uint32_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    float mean = (float)(ss / n), s = 1.0f / sqrtf(mean + eps);
    for (uint32_t i = 0; i < n; i++) o[i] = x[i] * s * w[i];
}

/* Rotates each head of v (n_heads heads of head_dim) by the position's cos/sin table. Pair i
 * is dimensions (2i, 2i+1) in the normal style (llama), (i, i + rope_dim/2) in the NeoX style
 * (qwen2). */
static void rope(float *v, uint32_t n_heads, uint32_t head_dim, uint32_t rope_dim,
                 const float *cs, bool neox) {
    uint32_t half = rope_dim / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *p = v + h * head_dim;
        for (uint32_t i = 0; i < half; i++) {
            uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1], x0 = p[a], x1 = p[b];
            p[a] = x0 * c - x1 * s;
            p[b] = x0 * s + x1 * c;
        }
    }
}

static void add_bias(float *x, const float *bias, uint32_t n, int n_tok, size_t stride) {
    if (!bias) return;
    for (int b = 0; b < n_tok; b++)
        for (uint32_t i = 0; i < n; i++) x[(size_t)b * stride + i] += bias[i];
}

typedef struct att_job {
    hl_model *m;
    uint32_t layer;
    int n_tok;
} att_job;

/* Attention for each (token, query head) pair, split over the threads.
 *
 * The arithmetic follows llama.cpp's CPU flash-attention path, which made the reference
 * outputs: keys, values and queries in half precision, one pass with an online softmax, and
 * the weighted sum of values accumulated in half precision (rescaled whenever a new maximum
 * score appears). Doing it in float instead moves stories260K's logits by up to 8e-3, more
 * than the 1e-3 the reference test allows; with it they agree to about 1e-5. */
/* The steps one call at a time, where the vector level has no fused attn_f16. */
static float attn_steps(const hl_quant_vec_ops *vec, int hd, int n_pos, const uint16_t *q,
                        const uint16_t *k, const uint16_t *v, size_t stride, float scale,
                        uint16_t *acc) {
    memset(acc, 0, (size_t)hd * sizeof *acc);
    float mx = -INFINITY, sum = 0;
    for (int s = 0; s < n_pos; s++) {
        float sc = vec->dot_f16(hd, q, k + (size_t)s * stride) * scale;
        float ms = 1, vs = 1;
        if (sc > mx) {
            ms = expf(mx - sc);
            mx = sc;
            vec->scale_f16(hd, acc, ms);
        } else {
            vs = expf(sc - mx);
        }
        vec->mad_f16(hd, acc, v + (size_t)s * stride, vs);
        sum = sum * ms + vs;
    }
    return sum;
}

/* The tasks are (token, a run of the query heads that share a KV head): the whole group, so
 * that its keys and values are read and converted once for all of them (attn_f16), unless
 * that leaves fewer than two tasks per thread, then halves of it. */
static void att_worker(void *ctx, int ith, int nth) {
    const att_job *j = ctx;
    hl_model *m = j->m;
    const hl_model_hparams *hp = &m->hp;
    const hl_quant_vec_ops *vec = m->vec;
    uint32_t hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads, run = group;
    while (run % 2 == 0 && (uint64_t)j->n_tok * (hp->n_heads / run) < 2 * (uint64_t)nth) run /= 2;
    uint16_t *acc = m->acc16 + (size_t)ith * group * hd;
    float *sums = m->att_sum + (size_t)ith * group, scale = m->att_scale;
    int runs = (int)(hp->n_heads / run), tasks = j->n_tok * runs;
    for (int t = ith; t < tasks; t += nth) {
        int b = t / runs;
        uint32_t h0 = (uint32_t)(t % runs) * run, kvh = h0 / group, p = m->items[b].pos;
        size_t slot = ((size_t)m->items[b].seq * hp->n_layers + j->layer) * m->n_ctx * m->kv_dim;
        const uint16_t *q = m->q16 + (size_t)b * m->q_dim + h0 * hd;
        const uint16_t *k = m->k_cache + slot + kvh * hd, *v = m->v_cache + slot + kvh * hd;
        if (vec->attn_f16)
            vec->attn_f16((int)hd, (int)run, (int)p + 1, q, k, v, m->kv_dim, scale, acc, sums);
        else
            for (uint32_t i = 0; i < run; i++)
                sums[i] = attn_steps(vec, (int)hd, (int)p + 1, q + i * hd, k, v, m->kv_dim, scale, acc + i * hd);
        for (uint32_t i = 0; i < run; i++) {
            float *o = m->xb + (size_t)b * m->q_dim + (h0 + i) * hd, inv = sums[i] != 0 ? 1.0f / sums[i] : 0;
            vec->from_f16((int)hd, acc + i * hd, o);
            for (uint32_t e = 0; e < hd; e++) o[e] *= inv;
        }
    }
}

hl_err hl_model_forward(hl_model *m, const int32_t *tokens, int n, uint32_t pos) {
    if (n < 1 || (uint32_t)n > m->max_batch) return HL_ERR_INVAL;
    if (pos > m->n_ctx || (uint32_t)n > m->n_ctx - pos) return HL_ERR_LIMIT;
    for (int b = 0; b < n; b++) m->run[b] = (hl_model_item){tokens[b], 0, pos + (uint32_t)b, b == n - 1};
    return hl_model_forward_batch(m, m->run, n);
}

/* Checks the batch (at most max_out items asking for logits), then runs every layer: each
 * item's residual stream ends in m->x (row b), its keys and values in the cache. */
static hl_err forward_layers(hl_model *m, const hl_model_item *items, int n, uint32_t max_out) {
    const hl_model_hparams *hp = &m->hp;
    if (n < 1 || (uint32_t)n > m->max_batch) return HL_ERR_INVAL;
    uint32_t n_out = 0;
    for (int b = 0; b < n; b++) {
        if (items[b].token < 0 || (uint32_t)items[b].token >= hp->vocab) return HL_ERR_INVAL;
        if (items[b].seq >= m->n_seq || items[b].pos >= m->n_ctx) return HL_ERR_LIMIT;
        n_out += items[b].logits;
    }
    if (n_out > max_out) return HL_ERR_INVAL;
    m->items = items;
    uint32_t dim = hp->dim, ffn = hp->ffn, hd = hp->head_dim;

    for (int b = 0; b < n; b++)
        hl_quant_dequant_row(m->tok_embd.type,
                             (const uint8_t *)m->tok_embd.data + (size_t)items[b].token * m->tok_embd.row_bytes,
                             m->x + (size_t)b * dim, dim);
    /* The angles in llama.cpp's float arithmetic: pos * theta_scale^i by repeated
     * multiplication, divided by the pair's frequency factor, times the linear scale; cos and
     * sin times LongRoPE's attention factor. */
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->rope_dim);
    for (int b = 0; b < n; b++) {
        float theta = (float)items[b].pos;
        float *cs = m->rope_cs + (size_t)b * hp->rope_dim;
        for (uint32_t i = 0; i < hp->rope_dim / 2; i++) {
            float th = hp->rope_scale * (theta / (m->rope_freqs ? m->rope_freqs[i] : 1.0f));
            cs[2 * i] = cosf(th) * hp->rope_attn_factor;
            cs[2 * i + 1] = sinf(th) * hp->rope_attn_factor;
            theta *= theta_scale;
        }
    }
    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const hl_model_layer *L = &m->layers[l];
        for (int b = 0; b < n; b++)
            rmsnorm(m->xb + (size_t)b * dim, m->x + (size_t)b * dim, L->attn_norm, dim, hp->norm_eps);
        {
            const hl_model_mat *mats[3] = {&L->wq, &L->wk, &L->wv};
            float *outs[3] = {m->q, m->k, m->v};
            size_t strides[3] = {m->q_dim, m->kv_dim, m->kv_dim};
            matmul(m, n, m->xb, dim, 3, mats, outs, strides);
        }
        add_bias(m->q, L->bq, m->q_dim, n, m->q_dim);
        add_bias(m->k, L->bk, m->kv_dim, n, m->kv_dim);
        add_bias(m->v, L->bv, m->kv_dim, n, m->kv_dim);
        if (L->q_norm) {
            for (uint32_t i = 0; i < (uint32_t)n * hp->n_heads; i++)
                rmsnorm(m->q + (size_t)i * hd, m->q + (size_t)i * hd, L->q_norm, hd, hp->norm_eps);
            for (uint32_t i = 0; i < (uint32_t)n * hp->n_kv_heads; i++)
                rmsnorm(m->k + (size_t)i * hd, m->k + (size_t)i * hd, L->k_norm, hd, hp->norm_eps);
        }
        for (int b = 0; b < n; b++) {
            const float *cs = m->rope_cs + (size_t)b * hp->rope_dim;
            rope(m->q + (size_t)b * m->q_dim, hp->n_heads, hd, hp->rope_dim, cs, hp->rope_neox);
            rope(m->k + (size_t)b * m->kv_dim, hp->n_kv_heads, hd, hp->rope_dim, cs, hp->rope_neox);
        }
        if (hp->q_prescale) {
            float qs = 1.0f / sqrtf((float)hd);
            for (size_t i = 0; i < (size_t)n * m->q_dim; i++) m->q[i] *= qs;
        }
        m->vec->to_f16((int)(n * m->q_dim), m->q, m->q16);
        /* Keys and values into each token's slot: a run of one sequence's consecutive
         * positions (a prompt) in one conversion. */
        for (int b = 0, e; b < n; b = e) {
            for (e = b + 1; e < n && items[e].seq == items[b].seq && items[e].pos == items[e - 1].pos + 1; e++) {}
            size_t at = (((size_t)items[b].seq * hp->n_layers + l) * m->n_ctx + items[b].pos) * m->kv_dim;
            m->vec->to_f16((int)((e - b) * m->kv_dim), m->k + (size_t)b * m->kv_dim, m->k_cache + at);
            m->vec->to_f16((int)((e - b) * m->kv_dim), m->v + (size_t)b * m->kv_dim, m->v_cache + at);
        }
        att_job aj = {.m = m, .layer = l, .n_tok = n};
        hl_engine_pool_run(m->pool, att_worker, &aj);
        {
            const hl_model_mat *mats[1] = {&L->wo};
            float *outs[1] = {m->xb2};
            size_t strides[1] = {dim};
            matmul(m, n, m->xb, m->q_dim, 1, mats, outs, strides);
        }
        for (size_t i = 0; i < (size_t)n * dim; i++) m->x[i] += m->xb2[i];
        for (int b = 0; b < n; b++)
            rmsnorm(m->xb + (size_t)b * dim, m->x + (size_t)b * dim, L->ffn_norm, dim, hp->norm_eps);
        {
            const hl_model_mat *mats[2] = {&L->w_gate, &L->w_up};
            float *outs[2] = {m->hb, m->hb2};
            size_t strides[2] = {ffn, ffn};
            matmul(m, n, m->xb, dim, 2, mats, outs, strides);
        }
        for (int b = 0; b < n; b++)
            hl_swiglu(m->hb + (size_t)b * ffn, m->hb2 + (size_t)b * ffn, ffn, m->swiglu_width);
        {
            const hl_model_mat *mats[1] = {&L->w_down};
            float *outs[1] = {m->xb2};
            size_t strides[1] = {dim};
            matmul(m, n, m->hb, ffn, 1, mats, outs, strides);
        }
        for (size_t i = 0; i < (size_t)n * dim; i++) m->x[i] += m->xb2[i];
    }
    m->items = NULL;
    return HL_OK;
}

hl_err hl_model_forward_batch(hl_model *m, const hl_model_item *items, int n) {
    const hl_model_hparams *hp = &m->hp;
    hl_err r = forward_layers(m, items, n, m->n_seq);
    if (r) return r;
    uint32_t dim = hp->dim;
    int k = 0;
    for (int b = 0; b < n; b++)
        if (items[b].logits) rmsnorm(m->xb + (size_t)k++ * dim, m->x + (size_t)b * dim, m->out_norm, dim, hp->norm_eps);
    const hl_model_mat *mats[1] = {&m->output};
    float *outs[1] = {m->logits};
    size_t strides[1] = {hp->vocab};
    if (k) matmul(m, k, m->xb, dim, 1, mats, outs, strides);
    return HL_OK;
}

hl_err hl_model_forward_hidden(hl_model *m, const hl_model_item *items, int n, float *out) {
    const hl_model_hparams *hp = &m->hp;
    hl_err r = forward_layers(m, items, n, UINT32_MAX);
    if (r) return r;
    for (int b = 0; b < n; b++)
        rmsnorm(out + (size_t)b * hp->dim, m->x + (size_t)b * hp->dim, m->out_norm, hp->dim, hp->norm_eps);
    return HL_OK;
}
