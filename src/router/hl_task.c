/* hl_task: task-type inference (see hl_task.h for the rules). */
#include "hl_task.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* Is word (lower case) at a word start somewhere in s[0..n)? Prefix match: "summar" finds
 * "summarize" and "summary". */
static bool has_word(const char *s, size_t n, const char *word) {
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++) {
        if (i > 0 && isalnum((unsigned char)s[i - 1])) continue;
        size_t j = 0;
        while (j < w && tolower((unsigned char)s[i + j]) == word[j]) j++;
        if (j == w) return true;
    }
    return false;
}

static bool any_word(const char *s, size_t n, const char *const *words) {
    for (; *words; words++)
        if (has_word(s, n, *words)) return true;
    return false;
}

static const char *const code_verbs[] = {"write", "implement", "fix", "refactor", "debug", "optimize", "port ", NULL};
static const char *const code_nouns[] = {"function", "class", "script", "code", "bug", "sql", "regex", "program",
                                         "method", "unit test", "python", "javascript", "typescript", "rust",
                                         "golang", "java", "c++", "bash", "query", NULL};
static const char *const classify_words[] = {"classify", "categoriz", "categoris", "label ", "sentiment",
                                             "which category", "is this spam", NULL};
static const char *const extract_words[] = {"extract", "pull out", "list all the", "parse", NULL};
static const char *const summary_words[] = {"summar", "tl;dr", "tldr", NULL};
static const char *const reason_words[] = {"prove", "step by step", "solve", "calculate", "how many", NULL};
static const char *const analysis_words[] = {"analyz", "analys", "compare", "evaluate", "explain why",
                                             "pros and cons", NULL};

static const char *infer_text(const char *s, size_t n) {
    if (memmem(s, n, "```", 3) || (any_word(s, n, code_verbs) && any_word(s, n, code_nouns)))
        return "code_generation";
    if (any_word(s, n, classify_words)) return "classification";
    if (any_word(s, n, extract_words)) return "extraction";
    if (any_word(s, n, summary_words)) return "summarization";
    if (any_word(s, n, reason_words)) return "reasoning";
    if (any_word(s, n, analysis_words)) return "analysis";
    return NULL;
}

const char *hl_task_infer(const hl_chat_request *req) {
    /* The last user turn says what is asked now; the system prompt often says the job. */
    for (size_t i = req->n_messages; i-- > 0;) {
        const hl_message *m = &req->messages[i];
        if (m->role != HL_ROLE_USER) continue;
        const char *t = infer_text(m->text, strlen(m->text));
        if (t) return t;
        break;
    }
    for (size_t i = 0; i < req->n_messages; i++) {
        const hl_message *m = &req->messages[i];
        if (m->role != HL_ROLE_SYSTEM) continue;
        const char *t = infer_text(m->text, strlen(m->text));
        if (t) return t;
    }
    return NULL;
}
