/* hl_simulate: the policy simulator behind `hybridllm simulate`.
 *
 * A workload (requests with a task type, a sensitivity flag, input and output tokens and the
 * confidence a local model's answer would have) is replayed through the gateway's real router
 * (hl_router_route over hl_backends_init(cfg, probe=false), every backend ready) with
 * simulated backends, so no key, model or network is needed:
 *   latency  drawn uniformly within the backend's range: the product brief's figures by model
 *            (Claude 3.5 Sonnet 600-900 ms, GPT-4o 800-1200, Mistral 7B 1500-2500, ...), or
 *            an override by backend or model name;
 *   cost     cloud: the tokens at the model's price (the policy config's `prices`, else
 *            --config's, else the advisor's built-in table); local: the backend's
 *            hourly_cost_usd x the simulated latency (the brief's busy-time model);
 *   escalation  when the matched rule escalates and the first candidate is a local backend
 *            the gateway would judge, an answer whose confidence is below the threshold is
 *            re-asked of the first escalation target: both latencies and both costs count.
 * Every draw is a hash of (seed, request index, what is drawn), so a seed gives the same
 * workload and the same latencies to every policy: the columns differ only by policy.
 *
 * Policies: all-cloud and all-local send everything to the first cloud / local backend of
 * their config without the router (what an application without the gateway does: all-cloud
 * shows the privacy violations); router policies take the config's `routes`. A router policy
 * never has a privacy violation: the router gives a sensitive request no cloud candidate, it
 * refuses it instead (counted as refused). */
#ifndef HL_SIMULATE_H
#define HL_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_err.h"

#define HL_SIM_MAX_TASKS 64           /* distinct task types in a workload */
#define HL_SIM_MAX_REQUESTS 5000000u  /* requests replayed (a ledger past it is an error) */
#define HL_SIM_SAMPLE_TOKENS 50e6     /* the generator replays at most this much and scales */

typedef struct hl_sim_request {
    int task;                 /* index into hl_sim_workload.tasks; -1: no task type declared */
    bool sensitive;           /* regulated or PII-bearing */
    long input_tokens, output_tokens;
    double confidence;        /* a local answer's confidence (geometric mean), in [0, 1] */
    bool signals;             /* margin and min are known (a ledger line that has them); when
                                 not, a rule escalating on either reads `confidence` instead */
    double margin, min;       /* its first-token margin and least token probability (hl_ledger.h
                                 "Quality") */
} hl_sim_request;

typedef struct hl_sim_workload {
    hl_sim_request *v;        /* owned */
    size_t n, cap;
    char *tasks[HL_SIM_MAX_TASKS]; /* owned names */
    size_t n_tasks;
    double month_factor;      /* multiplies the workload's money into a 30-day month */
    /* Measured agreement of a local answer per task type (index HL_SIM_MAX_TASKS: untyped), from
     * a ledger's scored lines (see hl_sim_load_ledger); all 0 for a generated workload. */
    size_t agree_n[HL_SIM_MAX_TASKS + 1], agree_k[HL_SIM_MAX_TASKS + 1];
    size_t scored;            /* their sum */
    long long input_tokens, output_tokens;
    size_t sensitive;
    char source[320];         /* what the workload is, for the report */
} hl_sim_workload;

/* One task type of the generator's mix. */
typedef struct hl_sim_task_profile {
    const char *task;         /* NULL: none declared (the router's catch-all rule) */
    double share;             /* of requests; shares are normalized */
    long input_tokens, output_tokens; /* means: each request draws within +-50% */
    double conf_mean, conf_sd;/* a local 7B model's confidence: normal, clamped to [0, 1] */
} hl_sim_task_profile;

/* The built-in mix (see hl_simulate.c for why these numbers). */
extern const hl_sim_task_profile hl_sim_default_mix[];
extern const size_t hl_sim_default_mix_n;

typedef struct hl_sim_gen {
    double tokens_per_month;  /* default: the brief's 10M */
    double sensitive_share;   /* default 0.10 */
    uint64_t seed;            /* default 1 */
    const hl_sim_task_profile *mix; /* borrowed; default hl_sim_default_mix */
    size_t n_mix;
} hl_sim_gen;

void hl_sim_gen_defaults(hl_sim_gen *g);
/* Fills w with requests until their tokens reach the month's (at most HL_SIM_SAMPLE_TOKENS,
 * scaled up by month_factor). w is overwritten, not released: pass an empty one. The caller
 * releases it with hl_sim_workload_release(). HL_ERR_INVAL for a mix or volume out of range. */
hl_err hl_sim_generate(const hl_sim_gen *g, hl_sim_workload *w);
/* One request per served ledger record (status ok, or none; not a shadow attempt, not an eval
 * line) among the records hl_ledger_read hands out (valid, deduplicated: what `report`
 * counts): its task type, sensitivity and
 * tokens; its confidence when the record has one, else that of an "escalated" line of the same
 * request id anywhere in the file (lines of concurrent requests interleave), else drawn from
 * the default mix's profile for its task type with seed. Money is scaled from the covered
 * period (or period_days) to 30 days. Scored lines that measure a local answer (as advise
 * counts them: a local line's score, or a cloud shadow's) fill agree_n/agree_k per task type.
 * w is overwritten as for hl_sim_generate(); on failure it
 * is left empty and errbuf says why; on success errbuf names the first malformed line, or is
 * "". */
hl_err hl_sim_load_ledger(const char *path, double period_days, uint64_t seed, hl_sim_workload *w,
                          char *errbuf, size_t errbuf_len);
void hl_sim_workload_release(hl_sim_workload *w);

/* A latency range for a backend name or upstream model (exact match), overriding the brief's. */
typedef struct hl_sim_latency {
    const char *name;         /* borrowed */
    double lo_ms, hi_ms;
} hl_sim_latency;

typedef struct hl_sim_options {
    uint64_t seed;            /* the workload's */
    const hl_config *prices;  /* --config; borrowed; may be NULL */
    const hl_sim_latency *latency; /* borrowed */
    size_t n_latency;
    double local_fixed_usd_month; /* amortized hardware + power that a policy using a local
                                     backend carries whatever its traffic (advise's figure) */
} hl_sim_options;

typedef enum hl_sim_policy_kind { HL_SIM_ALL_CLOUD, HL_SIM_ALL_LOCAL, HL_SIM_ROUTER } hl_sim_policy_kind;

typedef struct hl_sim_policy {
    char name[40];
    hl_sim_policy_kind kind;
    const hl_config *cfg;     /* borrowed: its backends, and for HL_SIM_ROUTER its routes */
} hl_sim_policy;

typedef struct hl_sim_result {
    char name[40];
    size_t requests;          /* in the workload */
    size_t served_local, served_cloud; /* by the backend whose answer was served */
    size_t escalated;         /* local answers below the threshold, re-asked of the cloud */
    size_t refused;           /* the router refused (e.g. sensitive with no local backend) */
    size_t violations;        /* sensitive requests that reached a cloud backend */
    size_t unpriced;          /* cloud calls to a model with no price (cost counted as 0) */
    long long tokens, cloud_tokens; /* served; sent to the cloud (escalations included) */
    double cloud_usd, local_usd;    /* the workload's, busy-time model for local */
    double usd_month;         /* (cloud + local) x month factor */
    double per_1k_requests;   /* (cloud + local) / served x 1000 */
    double fixed_usd_month;   /* local hardware when the policy uses a local backend */
    double p50_ms, p95_ms;    /* of served requests, escalation included */
    double expected_agreement; /* served requests agreeing with the cloud's answer, expected:
                                  1 for a cloud answer, the task type's measured rate for a local
                                  one; over the requests whose rate is known; NAN: none */
    size_t unmeasured_local;  /* local answers of a task type without a measured rate */
    char refusal[240];        /* the first refusal's reason, "" when none */
    char backends[600];       /* the simulated backends: name, model, latency, price */
} hl_sim_result;

/* Replays w under policy p. HL_ERR_INVAL (errbuf says why) when the policy's config has no
 * backend of the kind it needs. */
hl_err hl_sim_run(const hl_sim_workload *w, const hl_sim_policy *p, const hl_sim_options *o, hl_sim_result *r,
                  char *errbuf, size_t errbuf_len);

/* The brief's InferenceRouter as a gateway config (privacy first; code/analysis/reasoning to
 * the cloud; classification/extraction local; the rest local, escalated to the cloud below
 * confidence 0.7). cloud_model and local_model may be NULL for the defaults
 * (claude-3-5-sonnet-20241022, mistral-7b); names must be [A-Za-z0-9._:/-]. Caller frees with
 * hl_config_free(). */
hl_err hl_sim_brief_config(const char *cloud_model, const char *local_model, double local_usd_hour,
                           hl_config **out, char *errbuf, size_t errbuf_len);

/* The policy that follows measured agreement: sensitive requests local, the task types of w
 * whose agreement's 95% Wilson lower bound reaches target on at least min_samples scored lines
 * local, everything else cloud. Models and cost as hl_sim_brief_config. *n_local gets how
 * many task types go local; their names are written, comma-separated, into names. Caller
 * frees with hl_config_free(). */
hl_err hl_sim_measured_config(const char *cloud_model, const char *local_model, double local_usd_hour,
                              const hl_sim_workload *w, double target, size_t min_samples, hl_config **out,
                              size_t *n_local, char *names, size_t names_len, char *errbuf, size_t errbuf_len);

/* Side-by-side report of n results. */
hl_err hl_sim_render_text(const hl_sim_workload *w, const hl_sim_result *rs, size_t n, hl_buf *out);
hl_err hl_sim_render_json(const hl_sim_workload *w, const hl_sim_result *rs, size_t n, hl_buf *out);

#endif
