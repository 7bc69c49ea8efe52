/* hl_task: infers a request's task type when the client declared none.
 *
 * The router's rules match task types (the brief's code_generation, analysis, reasoning to
 * cloud; classification, extraction to local). Clients that do not declare one still deserve
 * a sensible route, so the last user message (and the system prompt) is read for cues, in
 * this order, first match wins:
 *   code_generation  a fenced code block, or "write/implement/fix/refactor/debug" together with
 *                    a code word (function, class, script, code, bug, SQL, regex, ...)
 *   classification   classify, categorize, label, "sentiment", "which category", "is this spam"
 *   extraction       extract, "pull out", "list all the", parse ... into JSON
 *   summarization    summarize, summary, tl;dr
 *   reasoning        prove, "step by step", solve, calculate, "how many"
 *   analysis         analyze/analyse, compare, evaluate, "explain why", "pros and cons"
 * Matching is case-insensitive on word starts. It is a heuristic: declared types always win,
 * and the ledger records which one was used. */
#ifndef HL_TASK_H
#define HL_TASK_H

#include "hl_chat.h"

/* A static task type name, or NULL when nothing matched. */
const char *hl_task_infer(const hl_chat_request *req);

#endif
