/* hl_calibrate: the escalation threshold behind `hybridllm calibrate`, from measured agreement.
 *
 * Data: ledger lines that are scored (score present) and carry a local answer's confidence:
 *   - shadow lines of a local backend compared with the served cloud answer (shadow, source
 *     local, reference "served");
 *   - shadow lines of a cloud backend compared with the served local answer (shadow, source
 *     cloud, reference "served"; they carry the local answer's confidence);
 *   - eval lines of a local backend whose reference is a backend the ledger knows as cloud.
 * Lines compared with an eval dataset's "expected" answer are left out: escalating would not
 * make those agree. Each such line is one sample: its signals (geomean, margin, min; a signal
 * the line lacks is unknown) and whether it agreed.
 *
 * Per task type and signal, a candidate threshold t is each observed value of the signal and
 * "escalate everything": answers with signal >= t stay local (the gateway's escalate.below t),
 * the rest go to the cloud, whose answer is the reference and so agrees:
 *   agreement(t)  = (agreeing answers kept + answers escalated) / n
 *   cloud share   = answers escalated / n
 *   cloud cost    = cloud share x the mean cost of a cloud request (the ledger's served,
 *                   priced cloud lines of that task type, else of all task types; or given)
 * The chosen threshold is the one whose agreement reaches the target with the smallest cloud
 * share (point estimate; its 95% Wilson interval is reported beside it). Each signal's ROC AUC
 * for predicting agreement (the chance that an agreeing answer has the higher signal, ties
 * counting half) says which separates best; auto picks the highest.
 *
 * A task type with fewer than HL_CAL_MIN_SAMPLES samples (of the signal used) gets no
 * threshold: the interval would be wider than any target is precise. */
#ifndef HL_CALIBRATE_H
#define HL_CALIBRATE_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_err.h"

#define HL_CAL_MIN_SAMPLES 50
#define HL_CAL_MAX_TASKS 64
#define HL_CAL_CURVE_ROWS 20 /* rows of the curve shown (of every candidate threshold) */
#define HL_CAL_SIGNALS 3     /* indexed by hl_conf_signal */

typedef struct hl_cal_sample {
    float s[HL_CAL_SIGNALS]; /* signal values in [0, 1]; < 0 unknown */
    bool agree;
} hl_cal_sample;

typedef struct hl_cal_task {
    char *name;              /* task type; NULL: none declared or inferred (owned) */
    hl_cal_sample *v;        /* owned */
    size_t n, cap;
    double cloud_cost_sum;   /* the task type's served, priced cloud lines */
    size_t cloud_cost_n;
} hl_cal_task;

/* What a ledger holds for calibration. */
typedef struct hl_cal_data {
    hl_cal_task tasks[HL_CAL_MAX_TASKS];
    size_t n_tasks;
    size_t records, samples;  /* records read; samples kept */
    size_t bad_lines;         /* malformed lines skipped */
    double cloud_cost_sum;    /* all served, priced cloud lines */
    size_t cloud_cost_n;
    char local_backend[64], cloud_backend[64]; /* the most used of each kind; "" none */
} hl_cal_data;

/* Reads the ledger at path (hl_ledger_read) into d (zeroed first; release it with
 * hl_cal_data_release, also after an error). task_type: only that task type; NULL all.
 * HL_ERR_IO / HL_ERR_NOMEM / HL_ERR_LIMIT (more task types than HL_CAL_MAX_TASKS) with msg. */
hl_err hl_cal_load(const char *path, const char *task_type, hl_cal_data *d, char *msg, size_t msg_len);
void hl_cal_data_release(hl_cal_data *d);

typedef struct hl_cal_point {
    double threshold;        /* answers with signal >= this stay local; INFINITY: none do */
    double agreement, cloud_share;
    size_t escalated;
    size_t agreeing;         /* answers that agree: kept and agreeing, plus escalated */
} hl_cal_point;

/* One task type's calibration. */
typedef struct hl_cal_result {
    const char *task;                /* borrowed from the data; NULL: none declared */
    size_t n[HL_CAL_SIGNALS];        /* samples with each signal known */
    size_t agreeing[HL_CAL_SIGNALS]; /* of them, agreeing */
    double auc[HL_CAL_SIGNALS];      /* < 0: not defined (too few samples, or all agree, or none) */
    hl_conf_signal signal;           /* the signal calibrated */
    bool enough;                     /* n[signal] >= HL_CAL_MIN_SAMPLES: the rest is set */
    hl_cal_point *curve;             /* every candidate, thresholds descending (owned) */
    size_t n_curve;
    size_t chosen;                   /* index into curve */
    double ci_lo, ci_hi;             /* 95% Wilson interval of the chosen agreement */
    double cloud_cost;               /* mean cost of a cloud request, USD; < 0 unknown */
} hl_cal_result;

/* Calibrates t for target in (0, 1]. signal < 0: auto (the highest AUC among the signals with
 * enough samples; geomean when none has an AUC). cloud_cost >= 0 overrides the ledger's mean
 * cost of a cloud request. Release r with hl_cal_result_release. HL_ERR_NOMEM. */
hl_err hl_cal_compute(const hl_cal_data *d, const hl_cal_task *t, double target, int signal, double cloud_cost,
                      hl_cal_result *r);
void hl_cal_result_release(hl_cal_result *r);

/* Renders results (n of them, for target) as a table or JSON into out. */
hl_err hl_cal_render_text(const hl_cal_data *d, const hl_cal_result *r, size_t n, double target, hl_buf *out);
hl_err hl_cal_render_json(const hl_cal_data *d, const hl_cal_result *r, size_t n, double target, hl_buf *out);
/* A YAML `routes:` snippet: per task type with a threshold, a rule sending it to local_backend
 * with escalate {below, signal, to: [cloud_backend]} (or straight to one of them when the
 * threshold keeps every answer local or none). Task types that cannot be written (none
 * declared, control characters) are named in comments. */
hl_err hl_cal_write_config(const hl_cal_result *r, size_t n, double target, const char *local_backend,
                           const char *cloud_backend, hl_buf *out);

#endif
