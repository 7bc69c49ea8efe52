/* hl_eval_data: the dataset of `hybridllm eval`, one JSON object a line (JSONL).
 *
 * The eval module (src/eval/) runs a dataset through named backends outside the gateway:
 * this file reads the dataset, hl_eval_stats.h aggregates what came back, hl_eval_run.h
 * drives the calls (the gateway's provider layer on a libuv loop of its own) and
 * hl_eval_report.h prints the figures. The CLI command is src/cli/hl_cli_eval.c.
 *
 * ---- The line ----
 *
 * UTF-8 JSON object, at most HL_EVAL_MAX_LINE bytes. Blank lines (spaces, tabs, '\r') are
 * skipped. Keys (anything else is an error, so that a misspelt "expectd" is not silently an
 * item without an answer):
 *
 *   messages    array of OpenAI chat messages (as POST /v1/chat/completions takes them;
 *               the gateway's own OpenAI parser validates them). Exactly one of messages
 *               and prompt.
 *   prompt      string, not empty: one user message.
 *   expected    string (the answer, compared as text), or an object or array (an extraction:
 *               compared as JSON); absent or null: no expected answer (scored against the
 *               reference backend, if any).
 *   task_type   string, not empty: classification, extraction, ... (the router's names);
 *               picks the comparison method under --compare auto.
 *   id          string or integer: the item's name in messages and per-item errors; default
 *               its line number.
 *   max_tokens  integer 1..1000000: the completion's ceiling for this item.
 *
 * Parsing never calls anything: a bad line is reported before any backend is asked. */
#ifndef HL_EVAL_DATA_H
#define HL_EVAL_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_chat.h"

#define HL_EVAL_MAX_LINE (4u << 20)  /* one item */
#define HL_EVAL_MAX_ITEMS 1000000    /* items in one dataset */

typedef struct hl_eval_item {
    char *id;                  /* owned: the "id", or the line number as text */
    size_t line;               /* 1-based line in the dataset */
    char *task_type;           /* owned; NULL when none */
    hl_chat_request req;       /* the request, as the gateway would parse it (owned) */
    bool has_expected;
    bool expected_json;        /* expected was an object or array: its compact JSON is in text */
    hl_chat_response expected; /* text: the expected answer (owned) */
    long prompt_tokens;        /* estimate of the prompt's tokens (hl_chat_input_estimate) */
} hl_eval_item;

/* Parses one line (line[0..len), no '\n'; need not be NUL-terminated) into *it; line_no is
 * stored in it. HL_OK; HL_ERR_PARSE with why (one short phrase: "expected must be a string,
 * an object or an array") in why[0..why_len), *it then holding nothing to release;
 * HL_ERR_NOMEM. Release a parsed item with hl_eval_item_release (safe on a zeroed one). */
hl_err hl_eval_item_parse(const char *line, size_t len, size_t line_no, hl_eval_item *it, char *why,
                          size_t why_len);
void hl_eval_item_release(hl_eval_item *it);

/* True when line[0..len) is only spaces, tabs and '\r'. */
bool hl_eval_blank(const char *line, size_t len);

typedef struct hl_eval_dataset {
    hl_eval_item *v;  /* owned */
    size_t n;
    size_t skipped;   /* bad lines skipped (skip_bad) */
} hl_eval_dataset;

/* Reads the dataset at path. A bad line is an error: HL_ERR_PARSE with "PATH:LINE: why" in
 * err, unless skip_bad, in which case each one is reported through warn (may be NULL) with
 * the same text and counted in ds->skipped. limit > 0: stop after that many items. HL_ERR_IO
 * (errno set; err names the file); HL_ERR_LIMIT (more than HL_EVAL_MAX_ITEMS items, or a line
 * over HL_EVAL_MAX_LINE: named in err); HL_ERR_NOMEM. On error ds holds nothing to release.
 * Caller frees with hl_eval_dataset_release. */
hl_err hl_eval_dataset_load(const char *path, bool skip_bad, size_t limit, hl_eval_dataset *ds,
                            void (*warn)(void *ud, const char *msg), void *ud, char *err, size_t err_len);
void hl_eval_dataset_release(hl_eval_dataset *ds);

#endif
