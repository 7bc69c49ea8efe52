/* hl_eval_report: what `hybridllm eval` makes of its calls: scores, ledger lines, figures.
 *
 * Scoring (hl_compare, src/quality/hl_compare.h): an item with "expected" is scored against
 * it on every backend that answered (reference "expected"); an item without one, against the
 * reference backend's answer when a reference backend is named and answered it (reference:
 * that backend's name; the reference backend itself is not scored on it). An expected
 * object or array is compared as JSON whatever the method picked. Calls without an answer
 * are counted as errors and left out of n: accuracy is that of the answers.
 *
 * Figures (hl_eval_stats.h): per backend, overall, by task type ("none" for items without
 * one) and by prompt-length bucket (the item's prompt estimate, so that an item falls in the
 * same bucket for every backend), as a table, JSON or CSV (formats in hl_eval_report.c). */
#ifndef HL_EVAL_REPORT_H
#define HL_EVAL_REPORT_H

#include <stdio.h>
#include "hl_compare.h"
#include "hl_eval_run.h"
#include "hl_eval_stats.h"
#include "hl_ledger.h"

typedef struct hl_eval_score {
    bool scored;
    bool agree;
    double score;
    hl_cmp_method method;
    const char *reference;        /* borrowed: "expected" or the reference backend's name */
    long long ref_output_tokens;
} hl_eval_score;

typedef struct hl_eval_setup {
    const char *run_id;           /* "ev_..." */
    const char *dataset;          /* its path */
    size_t skipped;               /* bad lines skipped */
    hl_backend **backends;        /* borrowed, as in hl_eval_opts */
    size_t n_backends;
    int reference;                /* index of the reference backend; -1: none */
    hl_cmp_method method;
    double threshold;
} hl_eval_setup;

/* Scores every answer into scores[item * n_backends + backend] (caller-allocated, that many).
 * HL_ERR_NOMEM; HL_ERR_INVAL for a bad method or threshold. */
hl_err hl_eval_score_all(const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res,
                         hl_eval_score *scores);

/* One ledger record of call c (item it, backend b) with its score; strings borrowed from the
 * arguments; request_id is written into id_buf (the run id, '-', the item's 1-based index). */
void hl_eval_ledger_record(const hl_eval_setup *su, size_t item_index, const hl_eval_item *it, size_t backend,
                           const hl_privacy_verdict *pv, const hl_eval_call *c, const hl_eval_score *sc,
                           char *id_buf, size_t id_len, hl_ledger_record *out);

typedef enum hl_eval_format { HL_EVAL_TABLE, HL_EVAL_JSON, HL_EVAL_CSV } hl_eval_format;

/* Aggregates and prints the figures in format fmt on out. HL_ERR_NOMEM; HL_ERR_IO when out
 * fails. */
hl_err hl_eval_print(const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res,
                     const hl_eval_score *scores, hl_eval_format fmt, FILE *out);

#endif
