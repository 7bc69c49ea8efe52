/* hl_cli_report: `hybridllm advise` and `hybridllm simulate` (see hl_cli_report.h). Flags are
 * parsed here into hl_advise / hl_simulate inputs; the arithmetic and the reports live there.
 * The commands write to the streams they are given so that tests can run them in-process.
 * Options are hl_opt tables (hl_opt.h): --help, unknown options and bad values are its. */
#include "hl_cli_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_advise.h"
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_opt.h"
#include "hl_simulate.h"

#define MAX_POLICIES 4
#define MAX_LATENCY 16

static const char advise_usage[] =
    "usage: hybridllm advise [options]\n"
    "  The product brief's decision matrix and break-even arithmetic: the cloud's cost per month\n"
    "  against amortized local hardware, and the months to recover it, every number shown with\n"
    "  how it was computed. With no workload flags: the brief's scenario, 10M tokens a month.\n"
    "\n"
    "workload (from flags, or measured from a ledger):\n"
    "  --tokens-per-month N   input + output tokens a month; K, M, G suffixes (default 10M)\n"
    "  --input-share F        the input tokens' share, 0..1 (default 0.7)\n"
    "  --ledger FILE.jsonl    the gateway's ledger: its served tokens, extrapolated to 30 days\n"
    "  --period-days D        the span the ledger covers (default: first to last timestamp)\n"
    "prices and hardware:\n"
    "  --cloud-model M        default claude-3-5-sonnet-20241022\n"
    "  --config FILE          a gateway config whose `prices` come first (built in: the brief's\n"
    "                         GPT-4o $5/$15 and Claude 3.5 Sonnet $3/$15 per 1M tokens)\n"
    "  --hardware-usd X       default 550 (the brief's RTX 4070)\n"
    "  --amortize-months N    default 36 (the brief's 3 years)\n"
    "  --power-usd-month X    default 10 (ours: the brief gives no figure)\n"
    "  --busy-usd-hour X      the brief's busy-time rate, shown for comparison (default 0.05)\n"
    "  --throughput TPS       local output tokens per second (default: measured from --ledger, else\n"
    "                         the brief's 200 tokens in 1,800 ms): sets how many machines the\n"
    "                         volume needs, at 720 busy hours each a month\n"
    "the brief's questions:\n"
    "  --privacy required|no\n"
    "  --accuracy classification|reasoning|unsure\n"
    "measured agreement (--ledger with scored lines from shadow comparisons or eval runs;\n"
    "it replaces --accuracy):\n"
    "  --target F             agreement a task type needs, on its 95% interval's lower bound,\n"
    "                         to be routed local (default 0.95)\n"
    "  --min-samples N        scored lines a task type needs before it is judged (default 100)\n"
    "output:\n"
    "  --json                 JSON instead of text\n";

static const char simulate_usage[] =
    "usage: hybridllm simulate [options]\n"
    "  Replays a workload through the gateway's router with simulated backends (no keys, no\n"
    "  model, no network) and compares policies side by side: all-cloud, all-local, the brief's\n"
    "  hybrid router and each --policy file: share local/cloud, cost per month, cost per 1K\n"
    "  requests, p50/p95 latency, privacy violations.\n"
    "\n"
    "workload (default: the brief's scenario, generated):\n"
    "  --tokens-per-month N   default 10M (K, M, G suffixes)\n"
    "  --sensitive-share F    share of requests marked sensitive (default 0.1)\n"
    "  --seed N               the generator's and the latencies' seed (default 1)\n"
    "  --ledger FILE.jsonl    replay a gateway ledger's served requests instead\n"
    "  --period-days D        the span the ledger covers (default: first to last timestamp)\n"
    "policies:\n"
    "  (a ledger with scored lines, from shadow comparisons or eval runs, adds \"measured\": the\n"
    "  task types whose agreement reaches --target local, the rest cloud; every policy then\n"
    "  shows its expected agreement with the cloud's answers)\n"
    "  --target F             agreement on the 95% interval's lower bound (default 0.95)\n"
    "  --min-samples N        scored lines a task type needs (default 100)\n"
    "  --policy FILE          a gateway config: its backends and routes (repeatable, 4 at most)\n"
    "  --cloud-model M        the built-in policies' cloud model (default claude-3-5-sonnet-20241022)\n"
    "  --local-model M        their local model (default mistral-7b)\n"
    "  --local-usd-hour X     their local busy cost per hour (default 0.05, the brief's)\n"
    "simulated backends:\n"
    "  --config FILE          a gateway config whose `prices` price the cloud models\n"
    "  --latency NAME=LO-HI   latency range in ms for a backend or model name (repeatable)\n"
    "  --hardware-usd X  --amortize-months N  --power-usd-month X\n"
    "                         local hardware, as for advise (default 550, 36, 10)\n"
    "output:\n"
    "  --json                 JSON instead of text\n";

static int write_out(FILE *out, FILE *err, hl_err e, hl_buf *b) {
    if (e) {
        fprintf(err, "hybridllm: could not format the report: %s\n", hl_err_str(e));
        return 1;
    }
    fputs(b->data ? b->data : "", out);
    return fflush(out) == 0 ? 0 : 1;
}

/* ---- advise ---- */

typedef struct advise_args {
    hl_advise_input in;
    const char *config_path, *ledger_path; /* borrowed from argv; NULL: none */
    double period_days;                    /* 0: from the ledger's timestamps */
    bool json;
} advise_args;

static const hl_opt_choice privacy_choices[] = {
    {"required", HL_PRIVACY_REQUIRED}, {"yes", HL_PRIVACY_REQUIRED}, {"no", HL_PRIVACY_NO}, {NULL, 0}};
static const hl_opt_choice accuracy_choices[] = {
    {"classification", HL_ACCURACY_CLASSIFICATION}, {"extraction", HL_ACCURACY_CLASSIFICATION},
    {"reasoning", HL_ACCURACY_REASONING}, {"code", HL_ACCURACY_REASONING},
    {"unsure", HL_ACCURACY_UNSURE}, {NULL, 0}};

/* Fills a from argv. Returns HL_OPT_GO, or the exit status (0 after --help, 2 after a usage
 * error, printed). */
static int advise_parse(advise_args *a, int argc, char **argv, FILE *out, FILE *err) {
    hl_advise_input_defaults(&a->in);
    int privacy = (int)a->in.privacy, accuracy = (int)a->in.accuracy, min_samples = (int)a->in.min_samples;
    hl_opt opts[] = {
        {.name = "--tokens-per-month", .kind = HL_OPT_DOUBLE, .target = &a->in.tokens_per_month,
         .flags = HL_OPT_SUFFIX, .want = "a number >= 0"},
        {.name = "--input-share", .kind = HL_OPT_DOUBLE, .target = &a->in.input_share, .max = 1,
         .want = "a number within 0..1"},
        {.name = "--cloud-model", .kind = HL_OPT_STR, .target = &a->in.cloud_model},
        {.name = "--hardware-usd", .kind = HL_OPT_DOUBLE, .target = &a->in.hardware_usd, .want = "a number >= 0"},
        {.name = "--amortize-months", .kind = HL_OPT_DOUBLE, .target = &a->in.amortize_months,
         .flags = HL_OPT_ABOVE_MIN, .want = "a number > 0"},
        {.name = "--power-usd-month", .kind = HL_OPT_DOUBLE, .target = &a->in.power_usd_month, .want = "a number >= 0"},
        {.name = "--busy-usd-hour", .kind = HL_OPT_DOUBLE, .target = &a->in.busy_usd_hour, .want = "a number >= 0"},
        {.name = "--privacy", .kind = HL_OPT_CHOICE, .target = &privacy, .choices = privacy_choices,
         .want = "required or no"},
        {.name = "--accuracy", .kind = HL_OPT_CHOICE, .target = &accuracy, .choices = accuracy_choices,
         .want = "classification, reasoning or unsure"},
        {.name = "--ledger", .kind = HL_OPT_STR, .target = &a->ledger_path},
        {.name = "--period-days", .kind = HL_OPT_DOUBLE, .target = &a->period_days, .flags = HL_OPT_ABOVE_MIN,
         .want = "a number > 0"},
        {.name = "--config", .kind = HL_OPT_STR, .target = &a->config_path},
        {.name = "--json", .kind = HL_OPT_FLAG, .target = &a->json},
        {.name = "--target", .kind = HL_OPT_DOUBLE, .target = &a->in.target, .max = 1, .flags = HL_OPT_ABOVE_MIN,
         .want = "a number within (0, 1]"},
        {.name = "--min-samples", .kind = HL_OPT_INT, .target = &min_samples, .min = 1, .max = 1e9,
         .want = "an integer >= 1"},
        {.name = "--throughput", .kind = HL_OPT_DOUBLE, .target = &a->in.throughput_tps, .flags = HL_OPT_ABOVE_MIN,
         .want = "a number > 0 (output tokens per second)"},
    };
    hl_opt_cmd c = {"advise", advise_usage, out, err};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    a->in.privacy = (hl_advise_privacy)privacy;
    a->in.accuracy = (hl_advise_accuracy)accuracy;
    a->in.min_samples = (size_t)min_samples;
    bool workload_flags = opts[0].seen || opts[1].seen; /* --tokens-per-month, --input-share */
    if (workload_flags) a->in.brief_scenario = false;
    if (a->ledger_path && workload_flags)
        return hl_opt_usage_error(&c, "--ledger measures the workload: drop --tokens-per-month and --input-share");
    if (a->period_days > 0 && !a->ledger_path) return hl_opt_usage_error(&c, "--period-days goes with --ledger");
    return HL_OPT_GO;
}

/* Measures the ledger (when given), computes and renders. Returns 0 or 1. */
static int advise_run(advise_args *a, FILE *out, FILE *err) {
    char msg[512] = "";
    int rc = 1;
    hl_config *cfg = NULL;
    hl_advise_measured m;
    hl_advise_result *r = NULL;
    hl_buf b;
    hl_buf_init(&b, 0);
    if (a->config_path && hl_config_load(a->config_path, &cfg, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm: bad config: %s\n", msg);
        goto out;
    }
    a->in.prices = cfg;
    if (a->ledger_path) {
        hl_err e = hl_advise_measure(a->ledger_path, a->period_days, &m, msg, sizeof msg);
        if (e) {
            fprintf(err, "hybridllm advise: %s\n", msg);
            goto out;
        }
        if (m.bad_lines) fprintf(err, "hybridllm advise: warning: %zu lines skipped; the first: %s\n", m.bad_lines, msg);
        a->in.measured = &m;
        a->in.brief_scenario = false;
    }
    if (!(r = malloc(sizeof *r))) goto out;
    if (hl_advise_compute(&a->in, r, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm advise: %s\n", msg);
        goto out;
    }
    rc = write_out(out, err, a->json ? hl_advise_render_json(&a->in, r, &b) : hl_advise_render_text(&a->in, r, &b), &b);
out:
    free(r);
    hl_buf_release(&b);
    hl_config_free(cfg);
    a->in.prices = NULL;
    a->in.measured = NULL;
    return rc;
}

int hl_cli_advise_io(int argc, char **argv, FILE *out, FILE *err) {
    advise_args a = {0};
    int rc = advise_parse(&a, argc, argv, out, err);
    return rc != HL_OPT_GO ? rc : advise_run(&a, out, err);
}

/* ---- simulate ---- */

/* The --latency ranges given. */
typedef struct latency_set {
    hl_sim_latency v[MAX_LATENCY];
    char names[MAX_LATENCY][128];
    size_t n;
} latency_set;

/* --latency "NAME=LO-HI" (or NAME=MS for a fixed latency) into the set (hl_opt's HL_OPT_FN). */
static bool add_latency(void *target, const char *s) {
    latency_set *set = target;
    const char *eq = strrchr(s, '=');
    if (set->n >= MAX_LATENCY || !eq || eq == s || (size_t)(eq - s) >= sizeof set->names[0]) return false;
    char range[64];
    if (snprintf(range, sizeof range, "%s", eq + 1) >= (int)sizeof range) return false;
    char *dash = strchr(range, '-');
    double lo, hi;
    if (dash) {
        *dash = '\0';
        if (!hl_opt_number(range, false, &lo) || !hl_opt_number(dash + 1, false, &hi)) return false;
    } else if (!hl_opt_number(range, false, &lo)) {
        return false;
    } else {
        hi = lo;
    }
    if (!(lo >= 0) || !(hi >= lo)) return false;
    char *name = set->names[set->n];
    memcpy(name, s, (size_t)(eq - s));
    name[eq - s] = '\0';
    set->v[set->n++] = (hl_sim_latency){.name = name, .lo_ms = lo, .hi_ms = hi};
    return true;
}

/* The policy's column name: the file's name without directory or extension. */
static void policy_name(const char *path, char *buf, size_t len) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, len, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
}

typedef struct simulate_args {
    hl_sim_gen gen;
    const char *config_path, *ledger_path, *cloud_model, *local_model; /* borrowed; NULL: none */
    const char *policy_paths[MAX_POLICIES];
    hl_opt_list policies;   /* over policy_paths */
    latency_set latency;
    double period_days, local_usd_hour, hardware, months, power, target;
    int min_samples;
    bool json;
} simulate_args;

/* Fills a from argv. Returns HL_OPT_GO, or the exit status (0 after --help, 2 after a usage
 * error, printed). */
static int simulate_parse(simulate_args *a, int argc, char **argv, FILE *out, FILE *err) {
    hl_sim_gen_defaults(&a->gen);
    a->policies = (hl_opt_list){a->policy_paths, 0, MAX_POLICIES};
    a->local_usd_hour = HL_ADVISE_BUSY_USD_HOUR;
    a->hardware = HL_ADVISE_HARDWARE_USD;
    a->months = HL_ADVISE_AMORTIZE_MONTHS;
    a->power = HL_ADVISE_POWER_USD_MONTH;
    a->target = HL_ADVISE_TARGET;
    a->min_samples = HL_ADVISE_MIN_SAMPLES;
    hl_opt opts[] = {
        {.name = "--tokens-per-month", .kind = HL_OPT_DOUBLE, .target = &a->gen.tokens_per_month,
         .flags = HL_OPT_SUFFIX | HL_OPT_ABOVE_MIN, .want = "a number > 0"},
        {.name = "--sensitive-share", .kind = HL_OPT_DOUBLE, .target = &a->gen.sensitive_share, .max = 1,
         .want = "0..1"},
        {.name = "--seed", .kind = HL_OPT_U64, .target = &a->gen.seed},
        {.name = "--ledger", .kind = HL_OPT_STR, .target = &a->ledger_path},
        {.name = "--period-days", .kind = HL_OPT_DOUBLE, .target = &a->period_days, .flags = HL_OPT_ABOVE_MIN,
         .want = "a number > 0"},
        {.name = "--policy", .kind = HL_OPT_LIST, .target = &a->policies},
        {.name = "--cloud-model", .kind = HL_OPT_STR, .target = &a->cloud_model},
        {.name = "--local-model", .kind = HL_OPT_STR, .target = &a->local_model},
        {.name = "--local-usd-hour", .kind = HL_OPT_DOUBLE, .target = &a->local_usd_hour, .want = "a number >= 0"},
        {.name = "--config", .kind = HL_OPT_STR, .target = &a->config_path},
        {.name = "--latency", .kind = HL_OPT_FN, .target = &a->latency, .fn = add_latency,
         .want = "NAME=LO-HI in ms (16 at most)"},
        {.name = "--hardware-usd", .kind = HL_OPT_DOUBLE, .target = &a->hardware, .want = "a number >= 0"},
        {.name = "--amortize-months", .kind = HL_OPT_DOUBLE, .target = &a->months, .flags = HL_OPT_ABOVE_MIN,
         .want = "a number > 0"},
        {.name = "--power-usd-month", .kind = HL_OPT_DOUBLE, .target = &a->power, .want = "a number >= 0"},
        {.name = "--json", .kind = HL_OPT_FLAG, .target = &a->json},
        {.name = "--target", .kind = HL_OPT_DOUBLE, .target = &a->target, .max = 1, .flags = HL_OPT_ABOVE_MIN,
         .want = "a number within (0, 1]"},
        {.name = "--min-samples", .kind = HL_OPT_INT, .target = &a->min_samples, .min = 1, .max = 1e9,
         .want = "an integer >= 1"},
    };
    hl_opt_cmd c = {"simulate", simulate_usage, out, err};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (a->ledger_path && (opts[0].seen || opts[1].seen)) /* --tokens-per-month, --sensitive-share */
        return hl_opt_usage_error(&c, "--ledger is the workload: drop --tokens-per-month and --sensitive-share");
    if (a->period_days > 0 && !a->ledger_path) return hl_opt_usage_error(&c, "--period-days goes with --ledger");
    return HL_OPT_GO;
}

/* The policies compared: the three built on the brief's config, the measured one when the
 * workload has scored lines, then each --policy file. */
typedef struct policy_set {
    hl_config *brief, *measured, *files[MAX_POLICIES]; /* owned */
    hl_sim_policy v[4 + MAX_POLICIES];
    size_t n;
} policy_set;

/* Loads the policies into p (released by policies_release even on failure). Returns 0 or 1. */
static int policies_load(const simulate_args *a, const hl_sim_workload *w, policy_set *p, FILE *err) {
    char msg[512] = "";
    if (hl_sim_brief_config(a->cloud_model, a->local_model, a->local_usd_hour, &p->brief, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm simulate: %s\n", msg);
        return 1;
    }
    p->v[p->n++] = (hl_sim_policy){"all-cloud", HL_SIM_ALL_CLOUD, p->brief};
    p->v[p->n++] = (hl_sim_policy){"all-local", HL_SIM_ALL_LOCAL, p->brief};
    p->v[p->n++] = (hl_sim_policy){"hybrid (brief)", HL_SIM_ROUTER, p->brief};
    if (w->scored) {
        size_t n_local;
        char names[400];
        if (hl_sim_measured_config(a->cloud_model, a->local_model, a->local_usd_hour, w, a->target,
                                   (size_t)a->min_samples, &p->measured, &n_local, names, sizeof names, msg,
                                   sizeof msg) != HL_OK) {
            fprintf(err, "hybridllm simulate: %s\n", msg);
            return 1;
        }
        p->v[p->n] = (hl_sim_policy){"", HL_SIM_ROUTER, p->measured};
        snprintf(p->v[p->n].name, sizeof p->v[p->n].name, "measured (%g%%)", a->target * 100);
        p->n++;
    }
    for (size_t i = 0; i < a->policies.n; i++) {
        if (hl_config_load(a->policy_paths[i], &p->files[i], msg, sizeof msg) != HL_OK) {
            fprintf(err, "hybridllm: bad policy: %s\n", msg);
            return 1;
        }
        p->v[p->n] = (hl_sim_policy){"", HL_SIM_ROUTER, p->files[i]};
        policy_name(a->policy_paths[i], p->v[p->n].name, sizeof p->v[p->n].name);
        p->n++;
    }
    return 0;
}

static void policies_release(policy_set *p) {
    for (size_t i = 0; i < MAX_POLICIES; i++) hl_config_free(p->files[i]);
    hl_config_free(p->measured);
    hl_config_free(p->brief);
}

/* Loads the prices, the policies and the workload, runs every policy and renders. Returns 0
 * or 1. */
static int simulate_run(const simulate_args *a, FILE *out, FILE *err) {
    char msg[512] = "";
    int rc = 1;
    hl_config *prices = NULL;
    policy_set p = {0};
    hl_sim_workload w = {0};
    hl_sim_result *results = NULL;
    hl_buf b;
    hl_buf_init(&b, 0);
    if (a->config_path && hl_config_load(a->config_path, &prices, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm: bad config: %s\n", msg);
        goto out;
    }
    hl_err e = a->ledger_path ? hl_sim_load_ledger(a->ledger_path, a->period_days, a->gen.seed, &w, msg, sizeof msg)
                              : hl_sim_generate(&a->gen, &w);
    if (e) {
        fprintf(err, "hybridllm simulate: %s\n", msg[0] ? msg : hl_err_str(e));
        goto out;
    }
    if (msg[0]) fprintf(err, "hybridllm simulate: warning: lines skipped; the first: %s\n", msg);
    if (policies_load(a, &w, &p, err)) goto out;
    hl_sim_options opt = {
        .seed = a->gen.seed,
        .prices = prices,
        .latency = a->latency.v,
        .n_latency = a->latency.n,
        .local_fixed_usd_month = a->hardware / a->months + a->power,
    };
    if (!(results = calloc(p.n, sizeof *results))) goto out;
    for (size_t i = 0; i < p.n; i++)
        if (hl_sim_run(&w, &p.v[i], &opt, &results[i], msg, sizeof msg) != HL_OK) {
            fprintf(err, "hybridllm simulate: %s\n", msg);
            goto out;
        }
    rc = write_out(out, err, a->json ? hl_sim_render_json(&w, results, p.n, &b) : hl_sim_render_text(&w, results, p.n, &b),
                   &b);
out:
    free(results);
    hl_buf_release(&b);
    hl_sim_workload_release(&w);
    policies_release(&p);
    hl_config_free(prices);
    return rc;
}

int hl_cli_simulate_io(int argc, char **argv, FILE *out, FILE *err) {
    simulate_args *a = calloc(1, sizeof *a); /* the latency names are 2 KiB */
    if (!a) {
        fprintf(err, "hybridllm simulate: out of memory\n");
        return 1;
    }
    int rc = simulate_parse(a, argc, argv, out, err);
    if (rc == HL_OPT_GO) rc = simulate_run(a, out, err);
    free(a);
    return rc;
}

int hl_cli_advise(int argc, char **argv) { return hl_cli_advise_io(argc, argv, stdout, stderr); }

int hl_cli_simulate(int argc, char **argv) { return hl_cli_simulate_io(argc, argv, stdout, stderr); }
