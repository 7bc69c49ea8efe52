/* hl_template: turns a chat (hl_chat_request's messages) into the prompt text a model was
 * trained on.
 *
 * GGUF files carry their template as Jinja source (tokenizer.chat_template). Rather than run
 * Jinja, the family is recognised from marker strings in it, and each family is rendered by
 * hand: chatml (Qwen and many others: <|im_start|>), llama-3 (<|start_header_id|>), llama-2
 * ([INST] with <<SYS>>), mistral ([INST] without a system block), phi-3 (<|user|> ... <|end|>;
 * Phi-3 and Phi-3.5), qwen3 (chatml plus Qwen3's thinking: its template carries <think>).
 *
 * qwen3 renders as Qwen3's own template does: an assistant turn's reasoning (the text up to
 * "</think>") is dropped from turns before the last real user message and kept, as
 * "<think>\n...\n</think>\n\n", after it (a tool-calling loop sees its own reasoning); tool
 * calls are <tool_call> JSON lines, tool results <tool_response> blocks, consecutive ones in
 * one user turn. The generation prompt leaves thinking on (the model opens <think> itself).
 * A model without a template (base models such as the TinyStories ones) gets "plain": the
 * message texts joined by blank lines, so a single user message is exactly the prompt. The
 * config can name the family instead (backends[].chat_template).
 *
 * Every template ends with the assistant's turn opened, ready for generation. Tool messages
 * are rendered as user turns that say whose result they are. */
#ifndef HL_TEMPLATE_H
#define HL_TEMPLATE_H

#include <stdbool.h>
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_gguf.h"

typedef enum hl_template {
    HL_TEMPLATE_PLAIN,
    HL_TEMPLATE_CHATML,
    HL_TEMPLATE_LLAMA2,
    HL_TEMPLATE_LLAMA3,
    HL_TEMPLATE_MISTRAL,
    HL_TEMPLATE_PHI3,
    HL_TEMPLATE_QWEN3,
} hl_template;

/* The family of g's tokenizer.chat_template; PLAIN when it has none or it is unrecognised
 * (*recognised says which). */
hl_template hl_template_detect(const hl_gguf *g, bool *recognised);
/* By name ("chatml", "llama-2", "llama-3", "mistral", "phi-3", "qwen3", "plain");
 * HL_ERR_NOTFOUND. */
hl_err hl_template_by_name(const char *name, hl_template *out);
const char *hl_template_name(hl_template t);
/* Appends the prompt for req's messages to out. */
hl_err hl_template_apply(hl_template t, const hl_chat_request *req, hl_buf *out);
/* Whether the prompt contains special tokens the tokenizer must recognise as such. */
bool hl_template_uses_special(hl_template t);

#endif
