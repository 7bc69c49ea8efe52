/* hl_advise: the cloud-or-local break-even advisor behind `hybridllm advise`.
 *
 * It answers the product brief's three questions (tokens per month, privacy, accuracy) with
 * the brief's decision matrix, and checks the matrix against arithmetic done from per-token
 * prices, every step shown:
 *
 *   cloud $/month  = input tokens / 1M x input price + output tokens / 1M x output price
 *   local $/month  = hardware price / amortization months + power per month
 *   months to recover the hardware = hardware price / (cloud $/month - power per month)
 *
 * Capacity: one machine serves at most 720 busy hours a month. The output tokens a month
 * divided by the local throughput (output tokens per second of local latency: --throughput,
 * else measured from the ledger's local lines, else the brief's CostTracker example, 200
 * tokens in 1,800 ms) give the busy hours, hence the machines needed, each charged its
 * hardware and power. A payback longer than the amortization (the hardware's life) never
 * pays back. With fixed hardware a hybrid saves (local share x cloud $/month) - local $/month:
 * the break-even share is the local share at which that reaches 0.
 *
 * Measured agreement (`advise --ledger` when the ledger has scored lines, from shadow
 * comparisons or eval runs): per task type, the share of scored lines that measure a local
 * answer (a local line's score, or a cloud shadow's score against the local answer it
 * shadowed) whose answer agreed, with its 95% Wilson interval. A task type whose interval's
 * lower bound reaches the target (default 0.95) on at least min_samples lines is routed
 * local; fewer lines: the measurement is still running, keep it in the cloud. This replaces
 * --accuracy.
 *
 * The workload comes from flags or from the gateway's JSONL ledger, extrapolated to a 30-day
 * month. Prices come from a gateway config's `prices` when it has the model, else from a
 * built-in table of the brief's models. The brief's own headline totals (~$1,800/month for
 * 10M GPT-4o tokens) do not follow from its per-token prices ($5/$15 per 1M gives $50-$150);
 * they are never used in the arithmetic, only reported as a discrepancy.
 *
 * The ledger is read with hl_ledger_read, as the store's indexer reads it. Nothing here
 * allocates beyond that reader and the JSON renderer's tree; results live in caller-owned
 * structs. */
#ifndef HL_ADVISE_H
#define HL_ADVISE_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_err.h"

/* The brief's figures, written down once. */
#define HL_ADVISE_BRIEF_TOKENS 10e6        /* "A production system processing 10M tokens per month" */
#define HL_ADVISE_INPUT_SHARE 0.7          /* ours: the brief's logged example is 450 in / 200 out */
#define HL_ADVISE_CLOUD_MODEL "claude-3-5-sonnet-20241022" /* the matrix's "Use Claude 3.5 Sonnet" */
#define HL_ADVISE_HARDWARE_USD 550.0       /* "RTX 4070 ~$550" */
#define HL_ADVISE_AMORTIZE_MONTHS 36.0     /* "3-year amortization" */
#define HL_ADVISE_POWER_USD_MONTH 10.0     /* ours: the brief gives no electricity figure */
#define HL_ADVISE_BUSY_USD_HOUR 0.05       /* CostTracker's local_cost_per_hour */
#define HL_ADVISE_REQ_TOKENS 650.0         /* CostTracker's example request: 450 in + 200 out */
#define HL_ADVISE_REQ_LOCAL_MS 1800.0      /* ... served locally in 1,800 ms */
#define HL_ADVISE_REQ_OUTPUT_TOKENS 200.0  /* ... of which 200 output tokens */
#define HL_ADVISE_MACHINE_HOURS 720.0      /* busy hours one machine gives in a 30-day month */
#define HL_ADVISE_TARGET 0.95              /* default agreement target */
#define HL_ADVISE_MIN_SAMPLES 100          /* default scored lines a task type needs */
#define HL_ADVISE_MAX_TASKS 64             /* task types tracked from a ledger (the rest: one "other") */

/* ---- prices ---- */

/* The price of an upstream model: cfg's `prices` first (exact name, else the longest entry
 * that is a prefix followed by '-', as hl_config_price), else the built-in table (the brief's
 * GPT-4o $5/$15 and Claude 3.5 Sonnet $3/$15, and gpt-4o-mini so that "gpt-4o" does not price
 * it). *source (may be NULL) gets where it came from: cfg->path or a sentence naming the
 * table's source; both borrowed. NULL when neither knows the model. cfg may be NULL. */
const hl_price *hl_advise_price(const hl_config *cfg, const char *model, const char **source);

/* x with thousands separators and `decimals` decimals ("10,000,000"), and as dollars
 * ("$1,800.00"; under $1, 4 decimals, under a cent 6). Write into buf (32 bytes suffice). */
void hl_advise_fmt_count(double x, int decimals, char *buf, size_t len);
void hl_advise_fmt_usd(double x, char *buf, size_t len);

/* ---- the ledger ---- */

/* The ledger is read with hl_ledger_read (hl_ledger.h): the records `report` would count,
 * valid and deduplicated by (request_id, attempt), the brief's CostTracker lines included. */

/* What a ledger says about the workload. Requests are the served answers: lines with status
 * "ok" (or none); their tokens are the workload. Costs add up every attempt, since escalated
 * and failed attempts were paid for too. */
/* One task type of a ledger ("" for lines without one). */
typedef struct hl_advise_task {
    char name[64];
    size_t requests;         /* served */
    long long tokens;        /* served input + output */
    size_t scored, agreed;   /* scored lines measuring a local answer */
} hl_advise_task;

typedef struct hl_advise_measured {
    const char *path;        /* borrowed */
    size_t lines;            /* records read: valid, first with their key */
    size_t bad_lines;        /* malformed lines skipped */
    size_t duplicate_lines;  /* lines whose key was already read (duplicates and conflicts) */
    size_t requests, local_requests, cloud_requests;
    size_t escalated;        /* local answers held for a cloud retry (status "escalated") */
    size_t failed;           /* attempts with another status (error, cancelled) */
    size_t sensitive;        /* served requests marked sensitive */
    size_t simple_tasks;     /* served classification, extraction */
    size_t complex_tasks;    /* served code_generation, analysis, reasoning */
    long long input_tokens, output_tokens;       /* served */
    long long local_tokens;  /* of every local attempt, escalated ones included */
    double cloud_cost_usd, local_cost_usd;       /* all attempts */
    size_t unknown_cost;     /* lines whose cost_usd is null */
    double local_busy_ms;    /* latency of every local attempt */
    double first_ts, last_ts;
    double period_days;      /* last - first, or the override */
    double month_factor;     /* 30 / period_days */
    long long local_output_tokens; /* of local attempts with output, shadows included ... */
    double local_gen_ms;     /* ... and their latency: the measured throughput */
    size_t shadow_lines;     /* shadow attempts: spend, never served requests */
    double shadow_cost_usd;  /* their cost (also in cloud_cost_usd / local_cost_usd) */
    size_t eval_lines;       /* `hybridllm eval` lines: only their scores are used */
    size_t scored;           /* scored lines measuring a local answer, all task types */
    hl_advise_task tasks[HL_ADVISE_MAX_TASKS];
    size_t n_tasks;
} hl_advise_measured;

/* Summarizes the ledger at path into *m. period_days > 0 overrides the covered period
 * (first to last timestamp). HL_ERR_INVAL when the ledger has no served request or covers no
 * time and there is no override; HL_ERR_IO (errno set) when it cannot be read; errbuf says
 * why. On success errbuf is "" or, when lines were skipped, names the first one
 * ("path:8: not a ledger record: latency_ms missing"), for a warning. */
hl_err hl_advise_measure(const char *path, double period_days, hl_advise_measured *m,
                         char *errbuf, size_t errbuf_len);

/* ---- the advice ---- */

typedef enum hl_advise_privacy { HL_PRIVACY_UNSET = 0, HL_PRIVACY_REQUIRED, HL_PRIVACY_NO } hl_advise_privacy;
typedef enum hl_advise_accuracy {
    HL_ACCURACY_UNSET = 0,
    HL_ACCURACY_CLASSIFICATION, /* classification/extraction */
    HL_ACCURACY_REASONING,      /* reasoning/code generation */
    HL_ACCURACY_UNSURE,
} hl_advise_accuracy;
/* HL_ADVICE_MEASURE: start with the cloud and measure the local model on a shadow share of
 * the traffic (the brief's "Start with cloud, measure quality, swap to local if it meets
 * thresholds"). */
typedef enum hl_advice { HL_ADVICE_CLOUD, HL_ADVICE_LOCAL, HL_ADVICE_HYBRID, HL_ADVICE_MEASURE } hl_advice;

typedef struct hl_advise_input {
    double tokens_per_month;  /* ignored with measured: the ledger's, extrapolated */
    double input_share;       /* of tokens; ignored with measured */
    const char *cloud_model;  /* borrowed */
    double hardware_usd, amortize_months, power_usd_month;
    double busy_usd_hour;     /* the brief's busy-time rate, shown for comparison */
    hl_advise_privacy privacy;
    hl_advise_accuracy accuracy;
    const hl_config *prices;  /* borrowed; NULL: the built-in table only */
    const hl_advise_measured *measured; /* borrowed; NULL: the workload comes from the flags */
    bool brief_scenario;      /* no workload flags were given: the brief's scenario */
    double target;            /* agreement a task type needs to go local (0..1] */
    size_t min_samples;       /* scored lines it needs before it is judged (>= 1) */
    double throughput_tps;    /* local output tokens per second; 0: measured, else the brief's */
} hl_advise_input;

/* The brief's scenario and defaults. */
void hl_advise_input_defaults(hl_advise_input *in);

typedef struct hl_advise_step {
    int section;              /* 0 workload, 1 cloud, 2 local, 3 break-even */
    char label[40];
    char value[72];
    char formula[240];        /* how value was computed, or where it came from */
} hl_advise_step;

typedef enum hl_advise_verdict_kind {
    HL_VERDICT_LOCAL,         /* the interval's lower bound reaches the target */
    HL_VERDICT_CLOUD,         /* it does not */
    HL_VERDICT_MEASURING,     /* fewer than min_samples scored lines: keep the cloud */
} hl_advise_verdict_kind;

/* Measured agreement of one task type, and what it decides. */
typedef struct hl_advise_verdict {
    char task[64];
    hl_advise_verdict_kind kind;
    size_t n, agreed;
    double rate, lo, hi;      /* NAN when n == 0 */
    double cloud_usd_month;   /* its cloud spend a month: what going local saves in the cloud */
    double token_share;       /* of served tokens */
} hl_advise_verdict;

typedef struct hl_advise_result {
    hl_price price;           /* price.model borrowed from the table or the config */
    char price_source[200];
    double tokens_per_month, input_share, input_tokens, output_tokens;
    double cloud_input_usd, cloud_output_usd, cloud_usd; /* per month */
    double blended_per_mtok;  /* USD per 1M tokens at this input share */
    double hardware_month_usd, local_usd;                /* per month, amortized */
    double saving_usd;        /* cloud - local per month; negative: the cloud is cheaper */
    double months_to_recover; /* hardware / (cloud - power); < 0: never */
    double break_even_tokens; /* tokens/month where cloud == local */
    double six_month_tokens;  /* tokens/month for the hardware to pay back within 6 months */
    double busy_requests, busy_hours, busy_usd; /* the busy-time model at the brief's rate */
    double busy_ms_per_token; /* measured, or the brief's example (1,800 ms / 650 tokens) */
    bool busy_measured;
    double cover_hours;       /* busy hours a month at which busy_usd_hour pays local_usd */
    double throughput_tps;    /* local output tokens per second of latency */
    const char *throughput_source; /* "--throughput", "measured ..." or the brief's; static */
    double gpu_hours;         /* output tokens a month / throughput */
    int machines;             /* ceil(gpu_hours / 720), at least 1: charged in local_usd */
    double machine_usd;       /* one machine's hardware / amortization + power, per month */
    bool pays_back;           /* months_to_recover within the amortization (the hardware's life) */
    double break_even_share;  /* local share of the tokens a hybrid needs to save; < 0: none */
    bool measured_agreement;  /* the ledger has scored lines: verdicts replace --accuracy */
    hl_advise_verdict verdicts[HL_ADVISE_MAX_TASKS];
    int n_verdicts;
    double local_share;       /* of served tokens, in task types judged local */
    double hybrid_usd;        /* with those local: the rest's cloud + their machines, per month */
    int hybrid_machines;
    char snippet[400];        /* a route config to measure with (advice MEASURE), else "" */
    hl_advice advice;
    char tier[24];            /* "under 500K", "500K-5M", "5M+" */
    char matrix[3][2][480];   /* per question: the brief's answer, our check of it */
    char reasons[10][400];
    int n_reasons;
    hl_advise_step steps[40];
    int n_steps;
    bool brief_note;          /* the brief's scenario: show its headline discrepancy */
} hl_advise_result;

/* Computes the arithmetic and the recommendation. HL_ERR_INVAL (errbuf says why) for an
 * unpriced model or out-of-range inputs; HL_ERR_NOTFOUND for an unpriced model. */
hl_err hl_advise_compute(const hl_advise_input *in, hl_advise_result *r, char *errbuf, size_t errbuf_len);

/* The brief's headline monthly total for 10M tokens on model's family (GPT-4o $1,800,
 * Claude 3.5 Sonnet $1,080) with the brief's per-token prices; false for other models. */
bool hl_advise_brief_headline(const char *model, double *headline_usd, double *in_per_mtok,
                              double *out_per_mtok);

/* Appends the report to out: text (every number with how it was computed) or JSON. */
hl_err hl_advise_render_text(const hl_advise_input *in, const hl_advise_result *r, hl_buf *out);
hl_err hl_advise_render_json(const hl_advise_input *in, const hl_advise_result *r, hl_buf *out);

const char *hl_advice_name(hl_advice a);

#endif
