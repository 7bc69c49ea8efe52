/* hl_cli_report: `hybridllm advise` and `hybridllm simulate` (see hl_cli_report.h). Flags are
 * parsed here into hl_advise / hl_simulate inputs; the arithmetic and the reports live there.
 * The commands write to the streams they are given so that tests can run them in-process. */
#include "hl_cli_report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_advise.h"
#include "hl_buf.h"
#include "hl_config.h"
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
    "the brief's questions:\n"
    "  --privacy required|no\n"
    "  --accuracy classification|reasoning|unsure\n"
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

static int usage_error(FILE *err, const char *usage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int usage_error(FILE *err, const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    fputs(usage, err);
    return 2;
}

/* A number, all of s; with suffixes, K/M/G multiply by 1e3/1e6/1e9. */
static bool parse_num(const char *s, bool suffixes, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !isfinite(x)) return false;
    if (suffixes && *end) {
        if (*end == 'k' || *end == 'K') x *= 1e3;
        else if (*end == 'm' || *end == 'M') x *= 1e6;
        else if (*end == 'g' || *end == 'G') x *= 1e9;
        else return false;
        end++;
    }
    if (*end) return false;
    *out = x;
    return true;
}

/* Is a one of the NULL-terminated names? */
static bool is_one_of(const char *a, const char *const *names) {
    for (; *names; names++)
        if (!strcmp(a, *names)) return true;
    return false;
}

static const char *const advise_flags[] = {"--tokens-per-month", "--input-share", "--cloud-model", "--hardware-usd",
                                           "--amortize-months", "--power-usd-month", "--busy-usd-hour", "--privacy",
                                           "--accuracy", "--ledger", "--period-days", "--config", NULL};
static const char *const simulate_flags[] = {"--tokens-per-month", "--sensitive-share", "--seed", "--ledger",
                                             "--period-days", "--policy", "--cloud-model", "--local-model",
                                             "--local-usd-hour", "--config", "--latency", "--hardware-usd",
                                             "--amortize-months", "--power-usd-month", NULL};

static int write_out(FILE *out, FILE *err, hl_err e, hl_buf *b) {
    if (e) {
        fprintf(err, "hybridllm: could not format the report: %s\n", hl_err_str(e));
        return 1;
    }
    fputs(b->data ? b->data : "", out);
    return fflush(out) == 0 ? 0 : 1;
}

static int run_advise(int argc, char **argv, FILE *out, FILE *err) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    const char *config_path = NULL, *ledger_path = NULL;
    double period_days = 0;
    bool json = false, share_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(advise_usage, out);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!is_one_of(a, advise_flags)) return usage_error(err, advise_usage, "hybridllm advise: unknown option '%s'", a);
        if (!v) return usage_error(err, advise_usage, "hybridllm advise: %s wants a value", a);
        i++;
        if (!strcmp(a, "--tokens-per-month")) {
            if (!parse_num(v, true, &x) || x < 0)
                return usage_error(err, advise_usage, "hybridllm advise: --tokens-per-month wants a number >= 0, got '%s'", v);
            in.tokens_per_month = x;
            in.brief_scenario = false;
        } else if (!strcmp(a, "--input-share")) {
            if (!parse_num(v, false, &x) || x < 0 || x > 1)
                return usage_error(err, advise_usage, "hybridllm advise: --input-share wants a number within 0..1, got '%s'", v);
            in.input_share = x;
            share_given = true;
            in.brief_scenario = false;
        } else if (!strcmp(a, "--cloud-model")) {
            in.cloud_model = v;
        } else if (!strcmp(a, "--hardware-usd")) {
            if (!parse_num(v, false, &x) || x < 0)
                return usage_error(err, advise_usage, "hybridllm advise: --hardware-usd wants a number >= 0, got '%s'", v);
            in.hardware_usd = x;
        } else if (!strcmp(a, "--amortize-months")) {
            if (!parse_num(v, false, &x) || !(x > 0))
                return usage_error(err, advise_usage, "hybridllm advise: --amortize-months wants a number > 0, got '%s'", v);
            in.amortize_months = x;
        } else if (!strcmp(a, "--power-usd-month")) {
            if (!parse_num(v, false, &x) || x < 0)
                return usage_error(err, advise_usage, "hybridllm advise: --power-usd-month wants a number >= 0, got '%s'", v);
            in.power_usd_month = x;
        } else if (!strcmp(a, "--busy-usd-hour")) {
            if (!parse_num(v, false, &x) || x < 0)
                return usage_error(err, advise_usage, "hybridllm advise: --busy-usd-hour wants a number >= 0, got '%s'", v);
            in.busy_usd_hour = x;
        } else if (!strcmp(a, "--privacy")) {
            if (!strcmp(v, "required") || !strcmp(v, "yes")) in.privacy = HL_PRIVACY_REQUIRED;
            else if (!strcmp(v, "no")) in.privacy = HL_PRIVACY_NO;
            else return usage_error(err, advise_usage, "hybridllm advise: --privacy is required or no, not '%s'", v);
        } else if (!strcmp(a, "--accuracy")) {
            if (!strcmp(v, "classification") || !strcmp(v, "extraction")) in.accuracy = HL_ACCURACY_CLASSIFICATION;
            else if (!strcmp(v, "reasoning") || !strcmp(v, "code")) in.accuracy = HL_ACCURACY_REASONING;
            else if (!strcmp(v, "unsure")) in.accuracy = HL_ACCURACY_UNSURE;
            else return usage_error(err, advise_usage,
                                    "hybridllm advise: --accuracy is classification, reasoning or unsure, not '%s'", v);
        } else if (!strcmp(a, "--ledger")) {
            ledger_path = v;
        } else if (!strcmp(a, "--period-days")) {
            if (!parse_num(v, false, &x) || !(x > 0))
                return usage_error(err, advise_usage, "hybridllm advise: --period-days wants a number > 0, got '%s'", v);
            period_days = x;
        } else if (!strcmp(a, "--config")) {
            config_path = v;
        } else {
            return usage_error(err, advise_usage, "hybridllm advise: unknown option '%s'", a);
        }
    }
    if (ledger_path && (!in.brief_scenario || share_given))
        return usage_error(err, advise_usage, "hybridllm advise: %s", "--ledger measures the workload: drop --tokens-per-month and --input-share");
    if (period_days > 0 && !ledger_path)
        return usage_error(err, advise_usage, "hybridllm advise: %s", "--period-days goes with --ledger");

    char msg[512] = "";
    int rc = 1;
    hl_config *cfg = NULL;
    hl_advise_measured m;
    hl_advise_result *r = NULL;
    hl_buf b;
    hl_buf_init(&b, 0);
    if (config_path && hl_config_load(config_path, &cfg, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm: bad config: %s\n", msg);
        goto out;
    }
    in.prices = cfg;
    if (ledger_path) {
        hl_err e = hl_advise_measure(ledger_path, period_days, &m, msg, sizeof msg);
        if (e) {
            fprintf(err, "hybridllm advise: %s\n", msg);
            goto out;
        }
        if (m.bad_lines) fprintf(err, "hybridllm advise: warning: %zu lines skipped; the first: %s\n", m.bad_lines, msg);
        in.measured = &m;
        in.brief_scenario = false;
    }
    if (!(r = malloc(sizeof *r))) goto out;
    if (hl_advise_compute(&in, r, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm advise: %s\n", msg);
        goto out;
    }
    rc = write_out(out, err, json ? hl_advise_render_json(&in, r, &b) : hl_advise_render_text(&in, r, &b), &b);
out:
    free(r);
    hl_buf_release(&b);
    hl_config_free(cfg);
    return rc;
}

/* "NAME=LO-HI" (or NAME=MS for a fixed latency); the name is copied into name. */
static bool parse_latency(const char *s, char *name, size_t name_len, hl_sim_latency *l) {
    const char *eq = strrchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= name_len) return false;
    char range[64];
    if (snprintf(range, sizeof range, "%s", eq + 1) >= (int)sizeof range) return false;
    char *dash = strchr(range, '-');
    double lo, hi;
    if (dash) {
        *dash = '\0';
        if (!parse_num(range, false, &lo) || !parse_num(dash + 1, false, &hi)) return false;
    } else if (!parse_num(range, false, &lo)) {
        return false;
    } else {
        hi = lo;
    }
    if (!(lo >= 0) || !(hi >= lo)) return false;
    memcpy(name, s, (size_t)(eq - s));
    name[eq - s] = '\0';
    l->name = name;
    l->lo_ms = lo;
    l->hi_ms = hi;
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

static int run_simulate(int argc, char **argv, FILE *out, FILE *err) {
    hl_sim_gen gen;
    hl_sim_gen_defaults(&gen);
    const char *config_path = NULL, *ledger_path = NULL, *cloud_model = NULL, *local_model = NULL;
    const char *policy_paths[MAX_POLICIES];
    size_t n_policies = 0, n_latency = 0;
    hl_sim_latency latency[MAX_LATENCY];
    char latency_names[MAX_LATENCY][128];
    double period_days = 0, local_usd_hour = HL_ADVISE_BUSY_USD_HOUR;
    double hardware = HL_ADVISE_HARDWARE_USD, months = HL_ADVISE_AMORTIZE_MONTHS, power = HL_ADVISE_POWER_USD_MONTH;
    bool json = false, generator_flags = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(simulate_usage, out);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!is_one_of(a, simulate_flags))
            return usage_error(err, simulate_usage, "hybridllm simulate: unknown option '%s'", a);
        if (!v) return usage_error(err, simulate_usage, "hybridllm simulate: %s wants a value", a);
        i++;
        if (!strcmp(a, "--tokens-per-month")) {
            if (!parse_num(v, true, &x) || !(x > 0))
                return usage_error(err, simulate_usage, "hybridllm simulate: --tokens-per-month wants a number > 0, got '%s'", v);
            gen.tokens_per_month = x;
            generator_flags = true;
        } else if (!strcmp(a, "--sensitive-share")) {
            if (!parse_num(v, false, &x) || x < 0 || x > 1)
                return usage_error(err, simulate_usage, "hybridllm simulate: --sensitive-share wants 0..1, got '%s'", v);
            gen.sensitive_share = x;
            generator_flags = true;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || errno || *v == '-')
                return usage_error(err, simulate_usage, "hybridllm simulate: --seed wants an unsigned integer, got '%s'", v);
            gen.seed = s;
        } else if (!strcmp(a, "--ledger")) {
            ledger_path = v;
        } else if (!strcmp(a, "--period-days")) {
            if (!parse_num(v, false, &x) || !(x > 0))
                return usage_error(err, simulate_usage, "hybridllm simulate: --period-days wants a number > 0, got '%s'", v);
            period_days = x;
        } else if (!strcmp(a, "--policy")) {
            if (n_policies >= MAX_POLICIES)
                return usage_error(err, simulate_usage, "hybridllm simulate: %s", "at most 4 --policy files");
            policy_paths[n_policies++] = v;
        } else if (!strcmp(a, "--cloud-model")) {
            cloud_model = v;
        } else if (!strcmp(a, "--local-model")) {
            local_model = v;
        } else if (!strcmp(a, "--local-usd-hour")) {
            if (!parse_num(v, false, &x) || x < 0)
                return usage_error(err, simulate_usage, "hybridllm simulate: --local-usd-hour wants a number >= 0, got '%s'", v);
            local_usd_hour = x;
        } else if (!strcmp(a, "--config")) {
            config_path = v;
        } else if (!strcmp(a, "--latency")) {
            if (n_latency >= MAX_LATENCY ||
                !parse_latency(v, latency_names[n_latency], sizeof latency_names[0], &latency[n_latency]))
                return usage_error(err, simulate_usage, "hybridllm simulate: --latency wants NAME=LO-HI in ms (16 at most), got '%s'", v);
            n_latency++;
        } else if (!strcmp(a, "--hardware-usd")) {
            if (!parse_num(v, false, &x) || x < 0)
                return usage_error(err, simulate_usage, "hybridllm simulate: --hardware-usd wants a number >= 0, got '%s'", v);
            hardware = x;
        } else if (!strcmp(a, "--amortize-months")) {
            if (!parse_num(v, false, &x) || !(x > 0))
                return usage_error(err, simulate_usage, "hybridllm simulate: --amortize-months wants a number > 0, got '%s'", v);
            months = x;
        } else if (!strcmp(a, "--power-usd-month")) {
            if (!parse_num(v, false, &x) || x < 0)
                return usage_error(err, simulate_usage, "hybridllm simulate: --power-usd-month wants a number >= 0, got '%s'", v);
            power = x;
        } else {
            return usage_error(err, simulate_usage, "hybridllm simulate: unknown option '%s'", a);
        }
    }
    if (ledger_path && generator_flags)
        return usage_error(err, simulate_usage, "hybridllm simulate: %s",
                           "--ledger is the workload: drop --tokens-per-month and --sensitive-share");
    if (period_days > 0 && !ledger_path)
        return usage_error(err, simulate_usage, "hybridllm simulate: %s", "--period-days goes with --ledger");

    char msg[512] = "";
    int rc = 1;
    hl_config *prices = NULL, *brief = NULL, *files[MAX_POLICIES] = {0};
    hl_sim_workload w = {0};
    hl_sim_policy policies[3 + MAX_POLICIES];
    hl_sim_result *results = NULL;
    size_t n = 0;
    hl_buf b;
    hl_buf_init(&b, 0);
    if (config_path && hl_config_load(config_path, &prices, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm: bad config: %s\n", msg);
        goto out;
    }
    if (hl_sim_brief_config(cloud_model, local_model, local_usd_hour, &brief, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm simulate: %s\n", msg);
        goto out;
    }
    policies[n++] = (hl_sim_policy){"all-cloud", HL_SIM_ALL_CLOUD, brief};
    policies[n++] = (hl_sim_policy){"all-local", HL_SIM_ALL_LOCAL, brief};
    policies[n++] = (hl_sim_policy){"hybrid (brief)", HL_SIM_ROUTER, brief};
    for (size_t i = 0; i < n_policies; i++) {
        if (hl_config_load(policy_paths[i], &files[i], msg, sizeof msg) != HL_OK) {
            fprintf(err, "hybridllm: bad policy: %s\n", msg);
            goto out;
        }
        policies[n] = (hl_sim_policy){"", HL_SIM_ROUTER, files[i]};
        policy_name(policy_paths[i], policies[n].name, sizeof policies[n].name);
        n++;
    }
    hl_err e = ledger_path ? hl_sim_load_ledger(ledger_path, period_days, gen.seed, &w, msg, sizeof msg)
                           : hl_sim_generate(&gen, &w);
    if (e) {
        fprintf(err, "hybridllm simulate: %s\n", msg[0] ? msg : hl_err_str(e));
        goto out;
    }
    if (msg[0]) fprintf(err, "hybridllm simulate: warning: lines skipped; the first: %s\n", msg);
    hl_sim_options opt = {
        .seed = gen.seed,
        .prices = prices,
        .latency = latency,
        .n_latency = n_latency,
        .local_fixed_usd_month = hardware / months + power,
    };
    if (!(results = calloc(n, sizeof *results))) goto out;
    for (size_t i = 0; i < n; i++)
        if (hl_sim_run(&w, &policies[i], &opt, &results[i], msg, sizeof msg) != HL_OK) {
            fprintf(err, "hybridllm simulate: %s\n", msg);
            goto out;
        }
    rc = write_out(out, err, json ? hl_sim_render_json(&w, results, n, &b) : hl_sim_render_text(&w, results, n, &b), &b);
out:
    free(results);
    hl_buf_release(&b);
    hl_sim_workload_release(&w);
    for (size_t i = 0; i < n_policies; i++) hl_config_free(files[i]);
    hl_config_free(brief);
    hl_config_free(prices);
    return rc;
}

int hl_cli_advise(int argc, char **argv) { return run_advise(argc, argv, stdout, stderr); }

int hl_cli_simulate(int argc, char **argv) { return run_simulate(argc, argv, stdout, stderr); }
