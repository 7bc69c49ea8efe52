/* hl_tok: tokenizers read from GGUF metadata (tokenizer.ggml.*), producing the same ids as
 * llama.cpp.
 *
 * Two models:
 *  - "llama": SentencePiece-style (Llama 2, Mistral, TinyLlama, the stories models). The text
 *    gets a leading space (unless tokenizer.ggml.add_space_prefix is false), spaces become
 *    U+2581, and adjacent symbols are merged greedily, highest-scoring merged token first;
 *    characters that are not tokens fall back to their bytes (<0xXX> tokens).
 *  - "gpt2": byte-level BPE (Llama 3, Qwen2). The text is split by the pre-tokenizer pattern
 *    (tokenizer.ggml.pre "llama-bpe" or "qwen2", written out by hand in hl_tok.c; others are
 *    refused), each piece's bytes are mapped to printable characters, and the merges
 *    (tokenizer.ggml.merges) are applied lowest rank first.
 *
 * Special tokens (control tokens such as <s> or <|eot_id|>, and user-defined ones) are
 * recognised in the text only when asked (parse_special), except user-defined tokens, which
 * always are, as in llama.cpp.
 *
 * Ownership: hl_tok_load() borrows the hl_gguf (its strings are used in place), which must
 * outlive the tokenizer; the caller frees the tokenizer with hl_tok_free(). A tokenizer is
 * immutable and may be used from several threads. */
#ifndef HL_TOK_H
#define HL_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_err.h"
#include "hl_gguf.h"

typedef struct hl_tok hl_tok;

typedef enum hl_tok_kind {
    HL_TOK_SPM, /* tokenizer.ggml.model = "llama" */
    HL_TOK_BPE, /* tokenizer.ggml.model = "gpt2" */
} hl_tok_kind;

/* Reads the vocabulary of g. HL_ERR_UNSUPPORTED for other tokenizer models or pre-tokenizers;
 * HL_ERR_PARSE for malformed metadata; err says which. */
hl_err hl_tok_load(hl_tok **out, const hl_gguf *g, char *err, size_t err_size);
void hl_tok_free(hl_tok *t);

hl_tok_kind hl_tok_kind_of(const hl_tok *t);
uint32_t hl_tok_n_vocab(const hl_tok *t);
int32_t hl_tok_bos(const hl_tok *t); /* -1 when the model has none */
int32_t hl_tok_eos(const hl_tok *t);
/* Whether generation should stop at id (EOS, EOT and other end-of-generation tokens). */
bool hl_tok_is_eog(const hl_tok *t, int32_t id);
/* Whether the vocabulary asks for BOS at the start (tokenizer.ggml.add_bos_token). */
bool hl_tok_add_bos(const hl_tok *t);
/* The longest text hl_tok_piece() can produce, in bytes (size buffers with it). */
size_t hl_tok_max_piece(const hl_tok *t);

/* Tokenizes len bytes of text into ids[0..cap). add_bos prepends BOS when the model has one.
 * *n is the number of ids; HL_ERR_LIMIT when more than cap would be needed (ids then holds
 * the first cap). */
hl_err hl_tok_encode(const hl_tok *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t *ids, size_t cap, size_t *n);

/* Writes the text of token id (not NUL-terminated) into buf[0..cap) and returns its length,
 * or -1 for an invalid id; a result > cap means buf was too small. Control tokens give ""
 * unless special is set. */
int hl_tok_piece(const hl_tok *t, int32_t id, bool special, char *buf, size_t cap);

#endif
