/* Fuzz target: two answers scored against each other with every method (hl_compare). The
 * input is split at its first NUL byte (or in the middle when it has none) into a reference
 * and a candidate; in each, lines "name|arguments" also become tool calls. Must never crash,
 * leak or read out of bounds, and the scores must keep their promises: within [0, 1],
 * symmetric, agree as documented, and an answer compared with itself scores 1 (json: when it
 * parses). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl_compare.h"

#define MAX_CALLS 8

static void build(const uint8_t *p, size_t n, hl_chat_response *r, hl_tool_call *calls, char **bufs) {
    hl_chat_response_init(r);
    r->text = malloc(n + 1);
    if (!r->text) abort();
    memcpy(r->text, p, n);
    r->text[n] = '\0';
    /* Lines with a '|' (up to MAX_CALLS) are tool calls; the copy is cut into name and args. */
    char *s = bufs[0] = strdup(r->text);
    if (!s) abort();
    for (char *line = s; line && *line && r->n_tool_calls < MAX_CALLS;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *bar = strchr(line, '|');
        if (bar) {
            *bar = '\0';
            calls[r->n_tool_calls++] = (hl_tool_call){NULL, line, bar + 1};
        }
        line = nl ? nl + 1 : NULL;
    }
    r->tool_calls = r->n_tool_calls ? calls : NULL;
}

static void drop(hl_chat_response *r, char **bufs) {
    free(r->text);
    free(bufs[0]);
}

static void check(const hl_chat_response *a, const hl_chat_response *b, hl_cmp_method m) {
    hl_cmp_result x, y;
    if (hl_compare(a, b, "chat", m, 0.5, &x) != HL_OK || hl_compare(b, a, "chat", m, 0.5, &y) != HL_OK) abort();
    if (!(x.score >= 0 && x.score <= 1) || x.method == HL_CMP_AUTO) abort();
    if (fabs(x.score - y.score) > 1e-12 || x.method != y.method) abort();
    bool graded = x.method == HL_CMP_TOKEN_F1 || x.method == HL_CMP_ROUGE_L;
    if (x.agree != (graded ? x.score >= 0.5 : x.score == 1.0)) abort();
}

static void self(const hl_chat_response *a, hl_cmp_method m) {
    hl_cmp_result x;
    if (hl_compare(a, a, NULL, m, 1, &x) != HL_OK) abort();
    if (m == HL_CMP_JSON) return; /* 0 when it is not JSON, else 1: checked by the unit tests */
    if (x.score != 1.0 || !x.agree) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t cut = nul ? (size_t)(nul - data) : size / 2;
    size_t rest = nul ? cut + 1 : cut;
    hl_chat_response a, b;
    hl_tool_call ca[MAX_CALLS], cb[MAX_CALLS];
    char *ba[1], *bb[1];
    build(data, cut, &a, ca, ba);
    build(data + rest, size - rest, &b, cb, bb);
    for (int m = HL_CMP_AUTO; m <= HL_CMP_ROUGE_L; m++) {
        check(&a, &b, (hl_cmp_method)m);
        if (m != HL_CMP_AUTO) self(&a, (hl_cmp_method)m);
    }
    hl_cmp_pick("classification", &a, &b);
    drop(&a, ba);
    drop(&b, bb);
    return 0;
}
