/* hl_model: the llama-architecture transformer (Llama 2/3, Mistral, TinyLlama, the stories
 * models, and Qwen2, which differs by Q/K/V biases and NeoX-style RoPE) over a GGUF file, in
 * the spirit of llama2.c's run.c. Also its close relatives: Qwen3 (no biases; each head's
 * query and key RMS-normed before RoPE) and Phi-3 (fused QKV and gate+up matrices, NeoX RoPE,
 * LongRoPE: per-dimension frequency factors, the long set when the context exceeds the
 * trained original length and the short set otherwise, and RoPE'd queries and keys scaled by
 * rope.scaling.attn_factor). Other architectures are refused, naming them.
 *
 * Hyper-parameters come from the file's "<arch>.*" metadata with llama.cpp's defaults (RoPE
 * base 10000, KV heads = heads, RoPE dimensions = head size, rms epsilon 1e-5). Weights are
 * used in place in the mmap, whatever their type (hl_quant), except that Q4_0, Q8_0 and
 * K-quant matrices, where the CPU has the AVX-512 kernels, are copied once at load repacked
 * four rows (K-quants 16) at a time (hl_quant_x4_pack; the copy is the faster one to read)
 * unless params.keep_layout, or when memory for the copy is short.
 * Every activation buffer and the KV cache are allocated once in hl_model_load(), sized for
 * n_ctx positions and batches of up to max_batch tokens, so hl_model_forward() never
 * allocates.
 *
 * RoPE is llama.cpp's "normal" style for this architecture: within each head, dimensions
 * (2i, 2i+1) are rotated by pos * base^(-2i/rope_dim). (GGUF converters permute Q and K of
 * Hugging Face checkpoints so that this style is right for them.)
 *
 * The KV cache holds half floats (half the memory of floats), and attention follows
 * llama.cpp's CPU flash-attention arithmetic (see att_worker in hl_model.c), which is what
 * makes our logits agree with its reference outputs to about 1e-5. Matmuls against quantized
 * weights quantize the activations first (hl_quant_act_*), as llama.cpp does.
 *
 * Sequences: the KV cache has n_seq slots. hl_model_forward_batch() runs tokens of several
 * sequences through the weights together (each weight row read once for all of them: what
 * makes serving several requests at once cheaper than serving them in turn); each token
 * attends only to its own slot. hl_model_forward() is the one-sequence case (slot 0).
 *
 * Threads: forward() splits each matmul's rows over the model's thread pool. Calls must not
 * overlap.
 *
 * Ownership: hl_model_load() opens and owns the GGUF; hl_model_free() releases everything.
 * hl_model_gguf() borrows it (for the tokenizer, which reads its own metadata). */
#ifndef HL_MODEL_H
#define HL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_err.h"
#include "hl_gguf.h"
#include "hl_quant.h"

typedef struct hl_model_params {
    uint32_t n_ctx;     /* positions in the KV cache; 0: the trained length, capped at 4096 */
    uint32_t max_batch; /* tokens per forward() call; 0: 64 */
    int n_threads;      /* matmul threads including the caller; 0: 1 */
    uint32_t n_seq;     /* KV cache slots (sequences served together); 0: 1 */
    /* Read Q4_0/Q8_0/K-quant matrices in the file's layout instead of a repacked copy (the
     * copy costs the weights' size in memory and a moment at load; decoding reads it faster,
     * about 1.4x for Q4_0). */
    bool keep_layout;
} hl_model_params;

typedef struct hl_model_hparams {
    uint32_t n_ctx_train; /* <arch>.context_length */
    uint32_t dim;         /* embedding_length */
    uint32_t n_layers;    /* block_count */
    uint32_t n_heads;     /* attention.head_count */
    uint32_t n_kv_heads;  /* attention.head_count_kv (GQA); default n_heads */
    uint32_t head_dim;    /* attention.key_length; default dim / n_heads */
    uint32_t ffn;         /* feed_forward_length */
    uint32_t vocab;       /* rows of token_embd */
    uint32_t rope_dim;    /* rope.dimension_count; default head_dim */
    float rope_base;      /* rope.freq_base; default 10000 */
    float rope_scale;     /* position multiplier: 1 / rope.scaling.factor for "linear" */
    float norm_eps;       /* attention.layer_norm_rms_epsilon; default 1e-5 */
    bool rope_neox;       /* rotate dimension pairs (i, i + rope_dim/2): qwen2, qwen3, phi3 */
    bool qk_norm;         /* qwen3: per-head RMS norms of queries and keys */
    bool q_prescale;      /* phi3: queries scaled by 1/sqrt(head_dim) before attention (as
                             llama.cpp does; the same maths, its rounding) */
    uint32_t n_ctx_orig;  /* rope.scaling.original_context_length; default n_ctx_train */
    float rope_attn_factor; /* rope.scaling.attn_factor (LongRoPE); default 1 */
} hl_model_hparams;

/* A weight matrix in place in the file: rows x cols, row-major, each row row_bytes long (for
 * fused tensors, phi3's attn_qkv and ffn_up, a run of the tensor's rows). */
typedef struct hl_model_mat {
    const void *data;    /* borrows the mmap */
    hl_gguf_type type;
    uint32_t rows, cols;
    size_t row_bytes;
    hl_quant_dot_fn dot; /* kernel for this type on this CPU */
    hl_quant_gemm_fn gemm; /* several rows x tokens at once, when the type has one; else NULL */
    /* Q4_0/Q8_0/K-quants on AVX-512: a copy repacked a group of rows at a time (4 rows,
     * K-quants 16: hl_quant_x4_pack), in one allocation owned by the model, which every
     * matmul reads instead of data (whose mapped pages are then dropped: data must not be
     * read); NULL otherwise. */
    uint8_t *packed;
    size_t packed_stride;  /* bytes per group of packed_rows rows */
    uint32_t packed_rows;  /* rows per group */
    hl_quant_x4_fn dot4;   /* a group of rows x one token on packed */
    hl_quant_act act;    /* activation format dot wants */
} hl_model_mat;

typedef struct hl_model_layer {
    const float *attn_norm; /* [dim] */
    hl_model_mat wq;        /* [n_heads * head_dim rows, dim cols] */
    hl_model_mat wk;        /* [n_kv_heads * head_dim, dim] */
    hl_model_mat wv;        /* [n_kv_heads * head_dim, dim] */
    const float *bq, *bk, *bv; /* [q_dim], [kv_dim], [kv_dim] biases, or NULL (qwen2 has them) */
    const float *q_norm, *k_norm; /* [head_dim] per-head norm weights (qwen3), or NULL */
    hl_model_mat wo;        /* [dim, n_heads * head_dim] */
    const float *ffn_norm;  /* [dim] */
    hl_model_mat w_gate;    /* [ffn, dim] */
    hl_model_mat w_up;      /* [ffn, dim] */
    hl_model_mat w_down;    /* [dim, ffn] */
} hl_model_layer;

typedef struct hl_model hl_model;

/* Opens path and builds the model. On failure *out is NULL and err (HL_GGUF_ERR_MAX bytes is
 * enough; may be NULL) says why: a parse error in the file, a missing or misshapen tensor, an
 * unsupported architecture or type. */
hl_err hl_model_load(hl_model **out, const char *path, const hl_model_params *params,
                     char *err, size_t err_size);
/* The same over an already opened file; takes ownership of g (also on failure). */
hl_err hl_model_load_gguf(hl_model **out, hl_gguf *g, const hl_model_params *params,
                          char *err, size_t err_size);
void hl_model_free(hl_model *m);

const hl_model_hparams *hl_model_hp(const hl_model *m);
const hl_gguf *hl_model_gguf(const hl_model *m);
uint32_t hl_model_n_ctx(const hl_model *m);
uint32_t hl_model_max_batch(const hl_model *m);
/* Bytes of weights read per token (every matrix once), for bandwidth estimates. */
uint64_t hl_model_weight_bytes(const hl_model *m);

/* Runs n tokens (1..max_batch) at positions pos .. pos+n-1, writing their keys and values
 * into the cache, and leaves the logits of the last one in hl_model_logits(). Positions past
 * pos+n-1 in the cache are ignored, so rewinding (pos smaller than before) just overwrites.
 * HL_ERR_LIMIT when pos + n > n_ctx; HL_ERR_INVAL for a token id outside the vocabulary. */
hl_err hl_model_forward(hl_model *m, const int32_t *tokens, int n, uint32_t pos);
/* The last forward()'s logits: vocab floats, borrowed until the next forward(). After
 * forward_batch(), those of the first token that asked for logits. */
const float *hl_model_logits(const hl_model *m);

/* One token of a batch: its id, its sequence's KV slot and its position there, and whether
 * its logits are wanted. */
typedef struct hl_model_item {
    int32_t token;
    uint32_t seq;   /* < n_seq */
    uint32_t pos;   /* < n_ctx */
    bool logits;
} hl_model_item;

uint32_t hl_model_n_seq(const hl_model *m);
/* Runs n items (1..max_batch), writing each one's key and value at (seq, pos) before any
 * attention runs, so a token sees the earlier positions of its own sequence, from this batch
 * or from before. At most n_seq items may ask for logits; hl_model_logits_at(m, k) returns
 * those of the k-th that asked (in item order). HL_ERR_LIMIT for a position or slot out of
 * range, HL_ERR_INVAL for a bad token or too many logits. */
hl_err hl_model_forward_batch(hl_model *m, const hl_model_item *items, int n);
const float *hl_model_logits_at(const hl_model *m, int k);
/* The same pass without the output matrix: writes each item's final hidden state after the
 * output norm (what llama.cpp pools for embeddings) into out, row b for item b (n x dim
 * floats, caller-owned). The items' `logits` flags are ignored; logits are left as they were.
 * Errors as forward_batch(). */
hl_err hl_model_forward_hidden(hl_model *m, const hl_model_item *items, int n, float *out);

#endif
