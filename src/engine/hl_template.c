/* hl_template: chat templates (see hl_template.h). */
#include "hl_template.h"

#include <string.h>


static const char *const names[] = {
    [HL_TEMPLATE_PLAIN] = "plain",     [HL_TEMPLATE_CHATML] = "chatml",
    [HL_TEMPLATE_LLAMA2] = "llama-2",  [HL_TEMPLATE_LLAMA3] = "llama-3",
    [HL_TEMPLATE_MISTRAL] = "mistral", [HL_TEMPLATE_PHI3] = "phi-3",
    [HL_TEMPLATE_QWEN3] = "qwen3",
};

const char *hl_template_name(hl_template t) { return names[t]; }

hl_err hl_template_by_name(const char *name, hl_template *out) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i], name)) {
            *out = (hl_template)i;
            return HL_OK;
        }
    return HL_ERR_NOTFOUND;
}

static bool has(hl_gguf_str s, const char *needle) {
    return s.p && memmem(s.p, (size_t)s.n, needle, strlen(needle)) != NULL;
}

hl_template hl_template_detect(const hl_gguf *g, bool *recognised) {
    hl_gguf_str s = {0};
    *recognised = true;
    if (hl_gguf_get_str(g, "tokenizer.chat_template", &s) != HL_OK || !s.n) {
        *recognised = false;
        return HL_TEMPLATE_PLAIN;
    }
    if (has(s, "<|im_start|>") && has(s, "<think>")) return HL_TEMPLATE_QWEN3;
    if (has(s, "<|im_start|>")) return HL_TEMPLATE_CHATML;
    if (has(s, "<|start_header_id|>")) return HL_TEMPLATE_LLAMA3;
    if (has(s, "<|user|>") && has(s, "<|end|>")) return HL_TEMPLATE_PHI3;
    if (has(s, "[INST]") && has(s, "<<SYS>>")) return HL_TEMPLATE_LLAMA2;
    if (has(s, "[INST]")) return HL_TEMPLATE_MISTRAL;
    *recognised = false;
    return HL_TEMPLATE_PLAIN;
}

bool hl_template_uses_special(hl_template t) { return t != HL_TEMPLATE_PLAIN; }

/* The text of a message as the model should read it: tool results say which call they
 * answer, tool calls are written out as JSON. */
static hl_err put_text(hl_buf *out, const hl_message *m) {
    if (m->role == HL_ROLE_TOOL) HL_TRY(hl_buf_printf(out, "[tool result %s] ", m->tool_call_id ? m->tool_call_id : ""));
    HL_TRY(hl_buf_puts(out, m->text));
    for (size_t i = 0; i < m->n_tool_calls; i++)
        HL_TRY(hl_buf_printf(out, "%s[tool call %s] %s(%s)", m->text[0] || i ? "\n" : "", m->tool_calls[i].id,
                          m->tool_calls[i].name, m->tool_calls[i].arguments ? m->tool_calls[i].arguments : "{}"));
    return HL_OK;
}

static hl_err chatml(const hl_chat_request *req, hl_buf *out) {
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        const char *role = m->role == HL_ROLE_SYSTEM ? "system" : m->role == HL_ROLE_ASSISTANT ? "assistant" : "user";
        HL_TRY(hl_buf_printf(out, "<|im_start|>%s\n", role));
        HL_TRY(put_text(out, m));
        HL_TRY(hl_buf_puts(out, "<|im_end|>\n"));
    }
    return hl_buf_puts(out, "<|im_start|>assistant\n");
}

static hl_err llama3(const hl_chat_request *req, hl_buf *out) {
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        const char *role = m->role == HL_ROLE_SYSTEM ? "system" : m->role == HL_ROLE_ASSISTANT ? "assistant" : "user";
        HL_TRY(hl_buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n", role));
        HL_TRY(put_text(out, m));
        HL_TRY(hl_buf_puts(out, "<|eot_id|>"));
    }
    return hl_buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static hl_err phi3(const hl_chat_request *req, hl_buf *out) {
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        const char *role = m->role == HL_ROLE_SYSTEM ? "system" : m->role == HL_ROLE_ASSISTANT ? "assistant" : "user";
        if (m->role == HL_ROLE_SYSTEM && !m->text[0]) continue; /* as Phi-3.5's template */
        HL_TRY(hl_buf_printf(out, "<|%s|>\n", role));
        HL_TRY(put_text(out, m));
        HL_TRY(hl_buf_puts(out, "<|end|>\n"));
    }
    return hl_buf_puts(out, "<|assistant|>\n");
}

/* Qwen3 (see hl_template.h). */
static bool is_tool_response(const char *t) {
    size_t n = strlen(t);
    return !strncmp(t, "<tool_response>", 15) && n >= 16 && !strcmp(t + n - 16, "</tool_response>");
}

/* An assistant text split as Qwen3's template splits it: the reasoning is what precedes the
 * first "</think>" (after the last "<think>" there), newlines trimmed; the content follows
 * the last "</think>", leading newlines dropped. Without "</think>": no reasoning, the whole
 * text. */
typedef struct think_split {
    const char *r0, *r1, *content;
} think_split;

static think_split split_think(const char *t) {
    think_split sp = {t, t, t};
    const char *end = strstr(t, "</think>");
    if (!end) return sp;
    for (const char *p = end; p; p = strstr(p + 1, "</think>")) sp.content = p + 8;
    while (*sp.content == '\n') sp.content++;
    sp.r1 = end;
    for (const char *p = t; (p = strstr(p, "<think>")) && p < end; p += 7) sp.r0 = p + 7;
    while (sp.r0 < sp.r1 && *sp.r0 == '\n') sp.r0++;
    while (sp.r1 > sp.r0 && sp.r1[-1] == '\n') sp.r1--;
    return sp;
}

static hl_err qwen3_assistant(hl_buf *out, const hl_message *m, think_split sp, bool keep_think) {
    const char *content = sp.content;
    HL_TRY(hl_buf_puts(out, "<|im_start|>assistant\n"));
    if (keep_think) {
        while (*content == '\n') content++;
        HL_TRY(hl_buf_printf(out, "<think>\n%.*s\n</think>\n\n", (int)(sp.r1 - sp.r0), sp.r0));
    }
    HL_TRY(hl_buf_puts(out, content));
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        if (i || content[0]) HL_TRY(hl_buf_puts(out, "\n"));
        HL_TRY(hl_buf_printf(out, "<tool_call>\n{\"name\": \"%s\", \"arguments\": %s}\n</tool_call>",
                             m->tool_calls[i].name,
                             m->tool_calls[i].arguments ? m->tool_calls[i].arguments : "{}"));
    }
    return hl_buf_puts(out, "<|im_end|>\n");
}

static hl_err qwen3(const hl_chat_request *req, hl_buf *out) {
    size_t n = req->n_messages, last_query = n ? n - 1 : 0;
    for (size_t i = n; i-- > 0;)
        if (req->messages[i].role == HL_ROLE_USER && !is_tool_response(req->messages[i].text)) {
            last_query = i;
            break;
        }
    for (size_t i = 0; i < n; i++) {
        const hl_message *m = &req->messages[i];
        if (m->role == HL_ROLE_ASSISTANT) {
            /* Reasoning survives after the last query: always in the last turn, in earlier
             * ones when there is some. */
            think_split sp = split_think(m->text);
            HL_TRY(qwen3_assistant(out, m, sp, i > last_query && (i == n - 1 || sp.r1 > sp.r0)));
        } else if (m->role == HL_ROLE_TOOL) {
            if (i == 0 || req->messages[i - 1].role != HL_ROLE_TOOL) HL_TRY(hl_buf_puts(out, "<|im_start|>user"));
            HL_TRY(hl_buf_printf(out, "\n<tool_response>\n%s\n</tool_response>", m->text));
            if (i == n - 1 || req->messages[i + 1].role != HL_ROLE_TOOL) HL_TRY(hl_buf_puts(out, "<|im_end|>\n"));
        } else {
            HL_TRY(hl_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n",
                                 m->role == HL_ROLE_SYSTEM ? "system" : "user", m->text));
        }
    }
    return hl_buf_puts(out, "<|im_start|>assistant\n");
}

/* [INST] families. The tokenizer adds the first BOS; later turns open with "<s>" after the
 * previous answer's "</s>". llama-2 puts the system prompt in a <<SYS>> block inside the
 * first instruction; mistral prepends it to the first user text. */
static hl_err inst(const hl_chat_request *req, hl_buf *out, bool sys_block) {
    hl_buf sys;
    hl_buf_init(&sys, 0);
    hl_err e = HL_OK;
    for (size_t i = 0; i < req->n_messages && !e; i++)
        if (req->messages[i].role == HL_ROLE_SYSTEM)
            e = sys.len ? hl_buf_printf(&sys, "\n\n%s", req->messages[i].text) : hl_buf_puts(&sys, req->messages[i].text);
    bool first = true, open = false;
    for (size_t i = 0; i < req->n_messages && !e; i++) {
        const hl_message *m = &req->messages[i];
        if (m->role == HL_ROLE_SYSTEM) continue;
        if (m->role == HL_ROLE_ASSISTANT) {
            e = open ? hl_buf_puts(out, " [/INST]") : hl_buf_puts(out, first ? "[INST]  [/INST]" : "<s>[INST]  [/INST]");
            if (!e) e = hl_buf_puts(out, " ");
            if (!e) e = put_text(out, m);
            if (!e) e = hl_buf_puts(out, " </s>");
            open = false;
            first = false;
            continue;
        }
        if (!open) {
            e = hl_buf_puts(out, first ? "[INST] " : "<s>[INST] ");
            if (!e && first && sys.len)
                e = sys_block ? hl_buf_printf(out, "<<SYS>>\n%s\n<</SYS>>\n\n", sys.data) : hl_buf_printf(out, "%s\n\n", sys.data);
            open = true;
        } else {
            e = hl_buf_puts(out, "\n");
        }
        if (!e) e = put_text(out, m);
        first = false;
    }
    if (!e && open) e = hl_buf_puts(out, " [/INST]");
    hl_buf_release(&sys);
    return e;
}

static hl_err plain(const hl_chat_request *req, hl_buf *out) {
    for (size_t i = 0; i < req->n_messages; i++) {
        if (i) HL_TRY(hl_buf_puts(out, "\n\n"));
        HL_TRY(put_text(out, &req->messages[i]));
    }
    return HL_OK;
}

hl_err hl_template_apply(hl_template t, const hl_chat_request *req, hl_buf *out) {
    switch (t) {
    case HL_TEMPLATE_CHATML: return chatml(req, out);
    case HL_TEMPLATE_LLAMA3: return llama3(req, out);
    case HL_TEMPLATE_PHI3: return phi3(req, out);
    case HL_TEMPLATE_QWEN3: return qwen3(req, out);
    case HL_TEMPLATE_LLAMA2: return inst(req, out, true);
    case HL_TEMPLATE_MISTRAL: return inst(req, out, false);
    case HL_TEMPLATE_PLAIN: return plain(req, out);
    }
    return HL_ERR_INVAL;
}
