/* hl_task: task-type inference (see hl_task.h for the rules). */
#include "hl_task.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* The cue words, each tagged with its group. A word matches at a word start, as a prefix
 * ("summar" finds "summarize" and "summary"), case-insensitively. */
enum { G_CODE_VERB = 1, G_CODE_NOUN = 2, G_CLASSIFY = 4, G_EXTRACT = 8, G_SUMMARY = 16, G_REASON = 32,
       G_ANALYSIS = 64 };

static const struct { const char *word; unsigned group; } cues[] = {
    {"write", G_CODE_VERB}, {"implement", G_CODE_VERB}, {"fix", G_CODE_VERB}, {"refactor", G_CODE_VERB},
    {"debug", G_CODE_VERB}, {"optimize", G_CODE_VERB}, {"port ", G_CODE_VERB},
    {"function", G_CODE_NOUN}, {"class", G_CODE_NOUN}, {"script", G_CODE_NOUN}, {"code", G_CODE_NOUN},
    {"bug", G_CODE_NOUN}, {"sql", G_CODE_NOUN}, {"regex", G_CODE_NOUN}, {"program", G_CODE_NOUN},
    {"method", G_CODE_NOUN}, {"unit test", G_CODE_NOUN}, {"python", G_CODE_NOUN}, {"javascript", G_CODE_NOUN},
    {"typescript", G_CODE_NOUN}, {"rust", G_CODE_NOUN}, {"golang", G_CODE_NOUN}, {"java", G_CODE_NOUN},
    {"c++", G_CODE_NOUN}, {"bash", G_CODE_NOUN}, {"query", G_CODE_NOUN},
    {"classify", G_CLASSIFY}, {"categoriz", G_CLASSIFY}, {"categoris", G_CLASSIFY}, {"label ", G_CLASSIFY},
    {"sentiment", G_CLASSIFY}, {"which category", G_CLASSIFY}, {"is this spam", G_CLASSIFY},
    {"extract", G_EXTRACT}, {"pull out", G_EXTRACT}, {"list all the", G_EXTRACT}, {"parse", G_EXTRACT},
    {"summar", G_SUMMARY}, {"tl;dr", G_SUMMARY}, {"tldr", G_SUMMARY},
    {"prove", G_REASON}, {"step by step", G_REASON}, {"solve", G_REASON}, {"calculate", G_REASON},
    {"how many", G_REASON},
    {"analyz", G_ANALYSIS}, {"analys", G_ANALYSIS}, {"compare", G_ANALYSIS}, {"evaluate", G_ANALYSIS},
    {"explain why", G_ANALYSIS}, {"pros and cons", G_ANALYSIS},
};

static unsigned char lower(unsigned char ch) { return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch; }

#define N_CUES (sizeof cues / sizeof cues[0])

/* Cue indexes by first letter, built once: a word start then looks at a handful of cues. */
static unsigned char by_letter[26][16], n_by_letter[26];
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void build_index(void) {
    for (size_t k = 0; k < N_CUES; k++) {
        int l = cues[k].word[0] - 'a';
        if (n_by_letter[l] < sizeof by_letter[0]) by_letter[l][n_by_letter[l]++] = (unsigned char)k;
    }
}

/* One pass over s: at each word start, the cues that begin with its letter. */
static unsigned cue_groups(const char *s, size_t n) {
    pthread_once(&index_once, build_index);
    unsigned found = 0;
    bool prev_alnum = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool word_start = !prev_alnum;
        prev_alnum = isalnum(ch) != 0;
        if (!word_start) continue;
        unsigned char c0 = lower(ch);
        if (c0 < 'a' || c0 > 'z') continue;
        for (unsigned b = 0; b < n_by_letter[c0 - 'a']; b++) {
            size_t k = by_letter[c0 - 'a'][b];
            if (found & cues[k].group) continue;
            const char *w = cues[k].word;
            size_t j = 1;
            while (w[j] && i + j < n && lower((unsigned char)s[i + j]) == (unsigned char)w[j]) j++;
            if (!w[j]) found |= cues[k].group;
        }
    }
    return found;
}

static const char *infer_text(const char *s, size_t n) {
    if (memmem(s, n, "```", 3)) return "code_generation";
    unsigned g = cue_groups(s, n);
    if ((g & G_CODE_VERB) && (g & G_CODE_NOUN)) return "code_generation";
    if (g & G_CLASSIFY) return "classification";
    if (g & G_EXTRACT) return "extraction";
    if (g & G_SUMMARY) return "summarization";
    if (g & G_REASON) return "reasoning";
    if (g & G_ANALYSIS) return "analysis";
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
