/* hl_compare: scores one answer against a reference answer, for shadow comparisons and eval
 * runs. Two answers to the same request "agree" when a user would take one for the other:
 *
 *   exact     classification labels. Both texts are normalized, then compared byte for byte.
 *             Normalization: ASCII case folded; leading and trailing whitespace dropped;
 *             internal whitespace runs made one space; then, repeatedly until nothing
 *             changes, one pair of matching surrounding quotes ("", '', ``) and trailing
 *             punctuation (. , ; : ! ?) removed. A leading "Label:"-style prefix is NOT
 *             removed: "Sentiment: positive" and "positive" differ, because a prefix cannot
 *             be told from a label that contains a colon. Non-ASCII bytes are compared as
 *             they are (no Unicode case folding). Score 1 or 0.
 *   json      extraction. A ```json ... ``` (or bare ```) fence around either text is
 *             removed and both are parsed as JSON (any value). They are compared recursively:
 *             object key order ignored; arrays by position; strings with ASCII case and
 *             whitespace runs ignored (trimmed, runs made one space); numbers numerically
 *             (1 == 1.0; integers exactly); an empty object or array counts as one leaf.
 *             score = matching leaves / the union of both sides' leaves (a leaf present on
 *             one side only, or whose types differ, does not match). A side that is not
 *             JSON scores 0.
 *   tools     tool calls. Each side is a multiset of (name, arguments); a call matches an
 *             unused call of the other side with the same name (exact) and arguments equal
 *             under the json rules (parsed; unparsable arguments compare as trimmed text;
 *             empty arguments mean {}). score = matched calls / max(calls on either side);
 *             both without calls: 1. At most HL_CMP_MAX_CALLS calls a side are matched (the
 *             rest count as unmatched).
 *   token_f1  free text: F1 of the bags of word tokens.
 *   rouge_l   free text: ROUGE-L, the F-measure (beta 1) of the longest common subsequence of
 *             word tokens; O(min(n, m)) memory and O(n * m) time over at most
 *             HL_CMP_MAX_LCS_TOKENS tokens of each answer (the first ones), so a hostile
 *             answer costs at most ~16M steps (a few tens of milliseconds).
 * Word tokens: maximal runs of ASCII letters and digits (lower-cased) and bytes >= 0x80 (UTF-8
 * letters beyond ASCII stay word bytes, invalid UTF-8 included: nothing is decoded). token_f1
 * reads at most HL_CMP_MAX_F1_TOKENS tokens of each answer. For both text methods two answers
 * without tokens score 1 (they are the same), one without tokens scores 0. */
#ifndef HL_COMPARE_H
#define HL_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_chat.h"
#include "hl_err.h"

#define HL_CMP_MAX_LCS_TOKENS 4096
#define HL_CMP_MAX_F1_TOKENS 65536
#define HL_CMP_MAX_CALLS 256

typedef enum hl_cmp_method { HL_CMP_AUTO = 0, HL_CMP_EXACT, HL_CMP_JSON, HL_CMP_TOOLS, HL_CMP_TOKEN_F1, HL_CMP_ROUGE_L } hl_cmp_method;

/* The ledger's score_method: "exact", "json", "tools", "token_f1", "rouge_l" ("auto" for
 * HL_CMP_AUTO); NULL for a value outside the enum. Static strings. */
const char *hl_cmp_method_name(hl_cmp_method m);
/* "auto" and the names above (exact spelling); false otherwise (out untouched). */
bool hl_cmp_method_parse(const char *s, hl_cmp_method *out);

/* The method AUTO picks for a task type and these two answers: either has tool calls ->
 * TOOLS; task_type classification -> EXACT; extraction, or both texts parse as JSON
 * objects/arrays (fences removed) -> JSON; otherwise ROUGE_L. Borrows everything; NULL
 * answers and task type are allowed (empty). */
hl_cmp_method hl_cmp_pick(const char *task_type, const hl_chat_response *ref, const hl_chat_response *cand);

typedef struct hl_cmp_result {
    double score;         /* in [0, 1] */
    hl_cmp_method method; /* the method used (never AUTO) */
    bool agree;
} hl_cmp_result;

/* Scores cand against ref (their text and tool_calls are what is compared; borrowed).
 * method AUTO: hl_cmp_pick. agree: score >= threshold for token_f1/rouge_l (threshold in
 * (0,1], checked only for those methods), score == 1 for exact/json/tools. HL_ERR_INVAL for a
 * bad method or threshold (out untouched); HL_ERR_NOMEM. Every method is symmetric. */
hl_err hl_compare(const hl_chat_response *ref, const hl_chat_response *cand, const char *task_type,
                  hl_cmp_method method, double threshold, hl_cmp_result *out);

/* Cosine similarity of two vectors of n floats, clamped to [0,1] (for embedding scores); 0 when
 * either is all zero or a value is not finite. */
double hl_cmp_cosine(const float *a, const float *b, size_t n);

#endif
