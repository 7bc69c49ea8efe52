/* hl_cli_calibrate: `hybridllm calibrate` (see hl_cli_calibrate.h): options into hl_calibrate,
 * which reads the ledger, sweeps the thresholds and renders; this file picks the ledger, the
 * task types and the output, and writes the config snippet. */
#include "hl_cli_calibrate.h"

#include <stdlib.h>
#include <string.h>
#include "hl_buf.h"
#include "hl_calibrate.h"
#include "hl_config.h"
#include "hl_opt.h"

static const char calibrate_usage[] =
    "usage: hybridllm calibrate [options]\n"
    "  Picks, per task type, the confidence threshold below which local answers escalate to the\n"
    "  cloud (escalate.below) that reaches a target agreement with the cloud with the smallest\n"
    "  cloud share, from the ledger's scored lines that carry a local answer's confidence\n"
    "  (shadow comparisons; eval runs with a cloud reference backend). Prints the curve\n"
    "  (threshold, agreement, cloud share, cloud cost), the choice with its 95% interval, and\n"
    "  each signal's ROC AUC for predicting agreement (which separates best on your data).\n"
    "  A task type needs 50 samples; exit 1 when none has them.\n"
    "\n"
    "  --target A             agreement to reach, in (0, 1] (default 0.95)\n"
    "  --ledger FILE.jsonl    the ledger (default: --config's ledger.path, else\n"
    "                         hybridllm-ledger.jsonl)\n"
    "  --config FILE          a gateway config: its ledger.path\n"
    "  --task-type T          only this task type\n"
    "  --signal S             auto (default: the best AUC), geomean, margin or min\n"
    "  --cloud-price USD      cost of one cloud request (default: the ledger's mean)\n"
    "  --format F             table (default) or json\n"
    "  --write-config FILE    write the thresholds as a YAML routes snippet\n"
    "  --local NAME  --cloud NAME\n"
    "                         the snippet's backends (default: the ledger's most used of each)\n";

typedef struct cal_args {
    double target, cloud_price;
    const char *ledger, *config, *task, *write_config, *local, *cloud;
    int signal, format;
} cal_args;

static const hl_opt_choice signal_choices[] = {
    {"auto", -1}, {"geomean", HL_SIGNAL_GEOMEAN}, {"margin", HL_SIGNAL_MARGIN}, {"min", HL_SIGNAL_MIN}, {NULL, 0}};
static const hl_opt_choice format_choices[] = {{"table", 0}, {"json", 1}, {NULL, 0}};

static int cal_parse(cal_args *a, int argc, char **argv, FILE *out, FILE *err) {
    *a = (cal_args){.target = 0.95, .cloud_price = -1, .signal = -1};
    hl_opt opts[] = {
        {.name = "--target", .kind = HL_OPT_DOUBLE, .target = &a->target, .min = 0, .max = 1,
         .flags = HL_OPT_ABOVE_MIN, .want = "a number in (0, 1]"},
        {.name = "--ledger", .kind = HL_OPT_STR, .target = &a->ledger},
        {.name = "--config", .kind = HL_OPT_STR, .target = &a->config},
        {.name = "--task-type", .kind = HL_OPT_STR, .target = &a->task},
        {.name = "--signal", .kind = HL_OPT_CHOICE, .target = &a->signal, .choices = signal_choices,
         .want = "auto, geomean, margin or min"},
        {.name = "--cloud-price", .kind = HL_OPT_DOUBLE, .target = &a->cloud_price, .want = "a number >= 0"},
        {.name = "--format", .kind = HL_OPT_CHOICE, .target = &a->format, .choices = format_choices,
         .want = "table or json"},
        {.name = "--write-config", .kind = HL_OPT_STR, .target = &a->write_config},
        {.name = "--local", .kind = HL_OPT_STR, .target = &a->local},
        {.name = "--cloud", .kind = HL_OPT_STR, .target = &a->cloud},
    };
    hl_opt_cmd c = {"calibrate", calibrate_usage, out, err};
    return hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
}

/* Writes the snippet to a->write_config. Returns 0 or 1 (message printed). */
static int write_snippet(const cal_args *a, const hl_cal_data *d, const hl_cal_result *r, size_t n, FILE *err) {
    const char *local = a->local ? a->local : d->local_backend, *cloud = a->cloud ? a->cloud : d->cloud_backend;
    if (!local[0] || !cloud[0]) {
        fprintf(err, "hybridllm calibrate: the ledger names no %s backend: give --%s NAME for the snippet\n",
                local[0] ? "cloud" : "local", local[0] ? "cloud" : "local");
        return 1;
    }
    hl_buf b;
    hl_buf_init(&b, 0);
    int rc = 1;
    FILE *f = NULL;
    if (hl_cal_write_config(r, n, a->target, local, cloud, &b) != HL_OK) {
        fprintf(err, "hybridllm calibrate: out of memory\n");
    } else if (!(f = fopen(a->write_config, "w")) || fputs(b.data ? b.data : "", f) < 0) {
        fprintf(err, "hybridllm calibrate: cannot write %s: %m\n", a->write_config);
    } else {
        rc = 0;
    }
    if (f && fclose(f) != 0 && rc == 0) {
        fprintf(err, "hybridllm calibrate: cannot write %s: %m\n", a->write_config);
        rc = 1;
    }
    hl_buf_release(&b);
    return rc;
}

static int cal_run(const cal_args *a, FILE *out, FILE *err) {
    char msg[512] = "";
    hl_config *cfg = NULL;
    if (a->config && hl_config_load(a->config, &cfg, msg, sizeof msg) != HL_OK) {
        fprintf(err, "hybridllm calibrate: bad config: %s\n", msg);
        return 1;
    }
    const char *path = a->ledger ? a->ledger : cfg && cfg->ledger_path ? cfg->ledger_path : "hybridllm-ledger.jsonl";
    int rc = 1;
    hl_cal_data *d = malloc(sizeof *d);
    hl_cal_result *r = calloc(HL_CAL_MAX_TASKS, sizeof *r);
    size_t n = 0, calibrated = 0;
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_err e = d && r ? hl_cal_load(path, a->task, d, msg, sizeof msg) : HL_ERR_NOMEM;
    if (e) {
        fprintf(err, "hybridllm calibrate: %s\n", msg[0] ? msg : hl_err_str(e));
        goto out;
    }
    if (d->bad_lines) fprintf(err, "hybridllm calibrate: warning: %zu lines skipped; the first: %s\n", d->bad_lines, msg);
    for (; n < d->n_tasks && !e; n++) {
        if (d->tasks[n].n == 0) continue; /* a task type with cloud lines only */
        e = hl_cal_compute(d, &d->tasks[n], a->target, a->signal, a->cloud_price, &r[n]);
        calibrated += !e && r[n].enough;
    }
    if (!e) e = a->format ? hl_cal_render_json(d, r, n, a->target, &b) : hl_cal_render_text(d, r, n, a->target, &b);
    if (e) {
        fprintf(err, "hybridllm calibrate: %s\n", hl_err_str(e));
        goto out;
    }
    fputs(b.data ? b.data : "", out);
    if (fflush(out) != 0) goto out;
    if (!calibrated) {
        fprintf(err, "hybridllm calibrate: no task type in %s has the %d samples calibration needs "
                "(scored lines with a local answer's confidence: shadow comparisons or eval runs)\n",
                path, HL_CAL_MIN_SAMPLES);
        goto out;
    }
    rc = a->write_config ? write_snippet(a, d, r, n, err) : 0;
out:
    for (size_t i = 0; r && i < n; i++) hl_cal_result_release(&r[i]);
    free(r);
    if (d) hl_cal_data_release(d);
    free(d);
    hl_buf_release(&b);
    hl_config_free(cfg);
    return rc;
}

int hl_cli_calibrate_io(int argc, char **argv, FILE *out, FILE *err) {
    cal_args a;
    int rc = cal_parse(&a, argc, argv, out, err);
    return rc != HL_OPT_GO ? rc : cal_run(&a, out, err);
}

int hl_cli_calibrate(int argc, char **argv) { return hl_cli_calibrate_io(argc, argv, stdout, stderr); }
