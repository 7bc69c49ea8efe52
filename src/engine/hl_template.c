/* hl_template: chat templates (see hl_template.h). */
#include "hl_template.h"

#include <string.h>


static const char *const names[] = {
    [HL_TEMPLATE_PLAIN] = "plain",     [HL_TEMPLATE_CHATML] = "chatml",
    [HL_TEMPLATE_LLAMA2] = "llama-2",  [HL_TEMPLATE_LLAMA3] = "llama-3",
    [HL_TEMPLATE_MISTRAL] = "mistral", [HL_TEMPLATE_PHI3] = "phi-3",
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
        HL_TRY(hl_buf_printf(out, "<|%s|>\n", role));
        HL_TRY(put_text(out, m));
        HL_TRY(hl_buf_puts(out, "<|end|>\n"));
    }
    return hl_buf_puts(out, "<|assistant|>\n");
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
    case HL_TEMPLATE_LLAMA2: return inst(req, out, true);
    case HL_TEMPLATE_MISTRAL: return inst(req, out, false);
    case HL_TEMPLATE_PLAIN: return plain(req, out);
    }
    return HL_ERR_INVAL;
}
