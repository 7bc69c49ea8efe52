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
typedef enum hl_advice { HL_ADVICE_CLOUD, HL_ADVICE_LOCAL, HL_ADVICE_HYBRID, HL_ADVICE_BREAK_EVEN } hl_advice;

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
} hl_advise_input;

/* The brief's scenario and defaults. */
void hl_advise_input_defaults(hl_advise_input *in);

typedef struct hl_advise_step {
    int section;              /* 0 workload, 1 cloud, 2 local, 3 break-even */
    char label[40];
    char value[72];
    char formula[240];        /* how value was computed, or where it came from */
} hl_advise_step;

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
    hl_advice advice;
    char tier[24];            /* "under 500K", "500K-5M", "5M+" */
    char matrix[3][2][320];   /* per question: the brief's answer, our check of it */
    char reasons[6][400];
    int n_reasons;
    hl_advise_step steps[32];
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
