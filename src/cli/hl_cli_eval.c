/* hl_cli_eval: `hybridllm eval`, an offline run of a JSONL dataset through named backends
 * (src/eval/: the dataset, the calls, the scores and the figures). This file parses the
 * options, loads the config and the backends as `serve` does, runs the calls with a progress
 * bar on a terminal, writes the ledger lines and prints the figures.
 *
 * Decisions, as the usage says: a bad dataset line stops the command before any call (exit
 * 2, naming file and line) unless --skip-bad; a sensitive item never goes to a cloud backend
 * (there is no flag to allow it: the gateway's guarantee holds here too), it is counted as
 * refused; retries are the backend's own (max_retries); the run completes with exit 0 even
 * when calls failed (each failure is reported on stderr and in the JSON's "failures"). */
#include "hl_cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "hl_builtin.h"
#include "hl_config.h"
#include "hl_eval_report.h"
#include "hl_log.h"
#include "hl_opt.h"

#define MAX_BACKENDS 16

static const char eval_usage[] =
    "usage: hybridllm eval DATASET.jsonl --backends A[,B...] --config FILE [options]\n"
    "  Runs every item of a JSONL dataset through each named backend of the config (the\n"
    "  gateway's providers, not streamed) and reports, per backend, accuracy against the\n"
    "  items' \"expected\" answers (else agreement with --reference) with a 95% Wilson\n"
    "  interval and n, latency p50/p95, tokens and cost: overall, by task type and by prompt\n"
    "  length (<=1k, 1k-4k, 4k-8k, >8k tokens). Every call is also a ledger line (route_reason\n"
    "  \"eval\", eval_run the run's id, with its score), so `report` and `advise` see it.\n"
    "\n"
    "dataset: one JSON object a line: {\"messages\": [...] | \"prompt\": \"...\", \"expected\"?:\n"
    "  string | object | array, \"task_type\"?, \"id\"?, \"max_tokens\"?}. A bad line stops the\n"
    "  command before any call (exit 2, with its file and line), unless --skip-bad.\n"
    "\n"
    "options:\n"
    "  --backends A[,B...]    backends of the config to ask (required; 16 at most)\n"
    "  --config FILE          the gateway's config: backends, prices, privacy, ledger path\n"
    "  --reference BACKEND    items without \"expected\" are scored against this backend's\n"
    "                         answer (it is asked too, if not in --backends)\n"
    "  --compare METHOD       auto (default: by task type, see hl_compare), exact, json, tools,\n"
    "                         token_f1, rouge_l\n"
    "  --threshold X          agreement for token_f1 and rouge_l: score >= X (default 0.5)\n"
    "  --concurrency N        calls in flight at most (default 4)\n"
    "  --limit N              the first N items only\n"
    "  --timeout-ms N         per call (default: each backend's timeout_ms)\n"
    "  --skip-bad             skip bad dataset lines (each named on stderr) instead of stopping\n"
    "  --format FMT           table (default), json or csv, on stdout\n"
    "  --ledger PATH          write the ledger lines here (default: the config's ledger.path)\n"
    "  --no-ledger            write no ledger lines\n"
    "\n"
    "privacy: items the config's PII detector finds sensitive are never sent to a cloud\n"
    "  backend; they are counted as refused. Retries follow each backend's max_retries.\n"
    "  Failed calls are named on stderr (item, line, backend, why) and counted as errors,\n"
    "  outside n. A progress bar goes to stderr when it is a terminal.\n";

static const hl_opt_choice formats[] = {{"table", HL_EVAL_TABLE}, {"json", HL_EVAL_JSON}, {"csv", HL_EVAL_CSV}, {NULL, 0}};

typedef struct eval_cli {
    const char *dataset, *backends, *config, *reference, *compare, *ledger_path;
    double threshold;
    int concurrency, limit, timeout_ms, format;
    bool no_ledger, skip_bad;
    /* the run */
    hl_config *cfg;
    hl_backends bs;
    hl_backend *chosen[MAX_BACKENDS + 1];
    size_t n_chosen;
    int reference_index;
    hl_cmp_method method;
    hl_ledger journal;
    bool ledger_open;
    hl_eval_setup su;
    char run_id[64];
    hl_eval_dataset ds;
    /* progress */
    bool tty;
    double t0, last_draw;
} eval_cli;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "done/total [#####.....] rate/s ETA m:ss", redrawn at most 10 times a second. */
static void progress(void *ud, size_t done, size_t total) {
    eval_cli *e = ud;
    if (!e->tty) return;
    double now = mono_s();
    if (done < total && now - e->last_draw < 0.1) return;
    e->last_draw = now;
    double el = now - e->t0, rate = el > 0 ? (double)done / el : 0;
    char bar[31];
    size_t fill = total ? done * 30 / total : 30;
    for (size_t i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r%zu/%zu [%s] %.1f/s ETA %d:%02d ", done, total, bar, rate, (int)eta / 60, (int)eta % 60);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static void warn_line(void *ud, const char *msg) {
    (void)ud;
    fprintf(stderr, "hybridllm eval: skipped %s\n", msg);
}

/* Writes a failed attempt that is retried (the final outcome is written after scoring). */
static void retried(void *ud, size_t item, size_t backend, const hl_privacy_verdict *pv, const hl_eval_call *c) {
    eval_cli *e = ud;
    if (!e->ledger_open) return;
    hl_ledger_record rec;
    char id[128];
    hl_eval_ledger_record(&e->su, item, &e->ds.v[item], backend, pv, c, NULL, id, sizeof id, &rec);
    hl_ledger_append(&e->journal, &rec);
}

/* --backends A,B into e->chosen, then the reference if it is not among them. Returns 0 or
 * the usage error's status. */
static int pick_backends(eval_cli *e, const hl_opt_cmd *c) {
    char *list = strdup(e->backends), *save = NULL;
    if (!list) return 1;
    int rc = 0;
    e->reference_index = -1;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        hl_backend *b = hl_backends_find(&e->bs, tok);
        if (!b) {
            rc = hl_opt_usage_error(c, "--backends: no backend '%s' in %s", tok, e->config);
            break;
        }
        bool dup = false;
        for (size_t i = 0; i < e->n_chosen; i++) dup |= e->chosen[i] == b;
        if (dup) continue;
        if (e->n_chosen == MAX_BACKENDS) {
            rc = hl_opt_usage_error(c, "--backends: %d backends at most", MAX_BACKENDS);
            break;
        }
        e->chosen[e->n_chosen++] = b;
    }
    free(list);
    if (rc) return rc;
    if (!e->n_chosen) return hl_opt_usage_error(c, "--backends: name at least one backend");
    if (e->reference) {
        hl_backend *rb = hl_backends_find(&e->bs, e->reference);
        if (!rb) return hl_opt_usage_error(c, "--reference: no backend '%s' in %s", e->reference, e->config);
        for (size_t i = 0; i < e->n_chosen; i++)
            if (e->chosen[i] == rb) e->reference_index = (int)i;
        if (e->reference_index < 0) {
            e->reference_index = (int)e->n_chosen;
            e->chosen[e->n_chosen++] = rb;
        }
    }
    return 0;
}

/* "ev_" + UTC time + "_" + 8 random hex digits. */
static void make_run_id(char *out, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    unsigned r = (unsigned)(uv_hrtime() ^ ((uint64_t)getpid() << 16));
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&r, sizeof r, 1, f) != 1) r ^= (unsigned)t;
        fclose(f);
    }
    snprintf(out, n, "ev_%04d%02d%02dT%02d%02d%02dZ_%08x", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, r);
}

/* Loads each chosen builtin backend's model (as `serve` does); one that fails fails its calls. */
static void open_builtins(eval_cli *e) {
    for (size_t i = 0; i < e->n_chosen; i++) {
        hl_backend *b = e->chosen[i];
        if (b->cfg->kind != HL_PROVIDER_BUILTIN || b->builtin) continue;
        char berr[512];
        if (hl_builtin_open(&b->builtin, b->cfg, berr, sizeof berr) != HL_OK)
            fprintf(stderr, "hybridllm eval: backend %s: cannot load %s: %s\n", b->cfg->name, b->cfg->model_path, berr);
        else {
            if (!strcmp(b->cfg->model, "auto")) hl_backend_set_model(b, hl_builtin_model_name(b->builtin));
            hl_backend_set_ready(b, true, "ready");
        }
    }
}

/* The final ledger line of every call made (refused ones were never made). */
static void write_ledger(eval_cli *e, const hl_eval_results *res, const hl_eval_score *scores) {
    for (size_t i = 0; i < e->ds.n; i++)
        for (size_t b = 0; b < e->n_chosen; b++) {
            const hl_eval_call *c = hl_eval_at(res, i, b);
            if (c->status != HL_EVAL_OK && c->status != HL_EVAL_ERROR) continue;
            hl_ledger_record rec;
            char id[128];
            hl_eval_ledger_record(&e->su, i, &e->ds.v[i], b, &res->privacy[i], c, &scores[i * e->n_chosen + b], id,
                                  sizeof id, &rec);
            if (hl_ledger_append(&e->journal, &rec) != HL_OK)
                fprintf(stderr, "hybridllm eval: ledger write failed for %s: %s\n", id, strerror(errno));
        }
}

/* Each failed call on stderr; refused ones counted per backend. */
static void report_failures(const eval_cli *e, const hl_eval_results *res) {
    for (size_t b = 0; b < e->n_chosen; b++) {
        size_t refused = 0;
        for (size_t i = 0; i < e->ds.n; i++) {
            const hl_eval_call *c = hl_eval_at(res, i, b);
            if (c->status == HL_EVAL_REFUSED) refused++;
            if (c->status == HL_EVAL_ERROR)
                fprintf(stderr, "hybridllm eval: item %s (line %zu) on backend %s failed: %s\n", e->ds.v[i].id,
                        e->ds.v[i].line, e->chosen[b]->cfg->name, c->error);
        }
        if (refused)
            fprintf(stderr, "hybridllm eval: %zu sensitive item%s not sent to cloud backend %s (refused)\n", refused,
                    refused == 1 ? "" : "s", e->chosen[b]->cfg->name);
    }
}

/* Runs, scores, writes the ledger, prints. Returns the exit status. */
static int eval_execute(eval_cli *e) {
    hl_pii_detector *pii = NULL;
    if (e->cfg->privacy.detect_pii) {
        char perr[256];
        if (hl_pii_detector_new(&pii, (const char *const *)e->cfg->privacy.custom_patterns,
                                (const char *const *)e->cfg->privacy.custom_names, e->cfg->privacy.n_custom, perr,
                                sizeof perr) != HL_OK) {
            fprintf(stderr, "hybridllm eval: PII detector: %s\n", perr);
            return 1;
        }
    }
    hl_eval_opts o = {.backends = e->chosen, .n_backends = e->n_chosen, .cfg = e->cfg, .pii = pii,
                      .concurrency = e->concurrency, .timeout_ms = e->timeout_ms, .progress = progress,
                      .retried = retried, .ud = e};
    hl_eval_results res;
    hl_eval_score *scores = NULL;
    int rc = 1;
    e->t0 = mono_s();
    hl_err err = hl_eval_run(&e->ds, &o, &res);
    if (err != HL_OK) {
        fprintf(stderr, "hybridllm eval: %s\n", hl_err_str(err));
        goto out_pii;
    }
    if (!(scores = calloc(e->ds.n * e->n_chosen + 1, sizeof *scores)) ||
        (err = hl_eval_score_all(&e->su, &e->ds, &res, scores)) != HL_OK) {
        fprintf(stderr, "hybridllm eval: scoring: %s\n", hl_err_str(err ? err : HL_ERR_NOMEM));
        goto out;
    }
    if (e->ledger_open) write_ledger(e, &res, scores);
    report_failures(e, &res);
    err = hl_eval_print(&e->su, &e->ds, &res, scores, (hl_eval_format)e->format, stdout);
    if (err != HL_OK) {
        fprintf(stderr, "hybridllm eval: could not write the figures: %s\n", hl_err_str(err));
        goto out;
    }
    rc = 0;
out:
    free(scores);
    hl_eval_results_release(&res);
out_pii:
    hl_pii_detector_free(pii);
    return rc;
}

/* Everything after the options: config, backends, dataset, ledger, then the run. */
static int eval_main(eval_cli *e, const hl_opt_cmd *c) {
    char err[1024];
    if (hl_config_load(e->config, &e->cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm: bad config: %s\n", err);
        return 1;
    }
    if (!hl_cmp_method_parse(e->compare, &e->method))
        return hl_opt_usage_error(c, "--compare: '%s' is not auto, exact, json, tools, token_f1 or rouge_l", e->compare);
    if (hl_backends_init(&e->bs, e->cfg, false) != HL_OK) return 1;
    int rc = pick_backends(e, c);
    if (rc) return rc;
    /* The dataset first: a bad line stops everything before any backend is probed or asked. */
    hl_err de = hl_eval_dataset_load(e->dataset, e->skip_bad, (size_t)e->limit, &e->ds, warn_line, NULL, err, sizeof err);
    if (de != HL_OK) {
        fprintf(stderr, "hybridllm eval: %s\n", err);
        return de == HL_ERR_PARSE || de == HL_ERR_LIMIT ? 2 : 1;
    }
    /* Now the backends as `serve` resolves them: probes find local servers and auto models. */
    hl_backends_release(&e->bs);
    if (hl_backends_init(&e->bs, e->cfg, true) != HL_OK) return 1;
    e->n_chosen = 0;
    if ((rc = pick_backends(e, c))) return rc;
    open_builtins(e);
    const char *lpath = e->ledger_path ? e->ledger_path : e->cfg->ledger_path;
    if (!e->no_ledger) {
        if (hl_ledger_open(&e->journal, lpath) != HL_OK) {
            fprintf(stderr, "hybridllm eval: cannot open ledger %s: %s\n", lpath, strerror(errno));
            return 1;
        }
        e->ledger_open = true;
    }
    make_run_id(e->run_id, sizeof e->run_id);
    e->su = (hl_eval_setup){.run_id = e->run_id, .dataset = e->dataset, .skipped = e->ds.skipped,
                            .backends = e->chosen, .n_backends = e->n_chosen, .reference = e->reference_index,
                            .method = e->method, .threshold = e->threshold};
    e->tty = isatty(STDERR_FILENO);
    return eval_execute(e);
}

int hl_cli_eval(int argc, char **argv) {
    eval_cli e = {.compare = "auto", .threshold = 0.5, .concurrency = 4, .format = HL_EVAL_TABLE};
    e.journal.fd = -1;
    const char *pos[2];
    hl_opt_list words = {pos, 0, 2};
    hl_opt opts[] = {
        {.name = "--backends", .kind = HL_OPT_STR, .target = &e.backends},
        {.name = "--config", .kind = HL_OPT_STR, .target = &e.config},
        {.name = "--reference", .kind = HL_OPT_STR, .target = &e.reference},
        {.name = "--compare", .kind = HL_OPT_STR, .target = &e.compare},
        {.name = "--threshold", .kind = HL_OPT_DOUBLE, .target = &e.threshold, .min = 0, .max = 1,
         .flags = HL_OPT_ABOVE_MIN},
        {.name = "--concurrency", .kind = HL_OPT_INT, .target = &e.concurrency, .min = 1, .max = 256},
        {.name = "--limit", .kind = HL_OPT_INT, .target = &e.limit, .min = 1, .max = HL_EVAL_MAX_ITEMS},
        {.name = "--timeout-ms", .kind = HL_OPT_INT, .target = &e.timeout_ms, .min = 1, .max = 3600000},
        {.name = "--skip-bad", .kind = HL_OPT_FLAG, .target = &e.skip_bad},
        {.name = "--format", .kind = HL_OPT_CHOICE, .target = &e.format, .choices = formats},
        {.name = "--ledger", .kind = HL_OPT_STR, .target = &e.ledger_path},
        {.name = "--no-ledger", .kind = HL_OPT_FLAG, .target = &e.no_ledger},
    };
    hl_opt_cmd c = {"eval", eval_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], &words, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (words.n != 1) return hl_opt_usage_error(&c, words.n ? "one dataset file only" : "a DATASET.jsonl is required");
    e.dataset = pos[0];
    if (!e.backends) return hl_opt_usage_error(&c, "--backends A[,B...] is required");
    if (!e.config) return hl_opt_usage_error(&c, "--config FILE is required");
    if (e.ledger_path && e.no_ledger) return hl_opt_usage_error(&c, "--ledger and --no-ledger exclude each other");
    hl_log_set_level(HL_LOG_ERROR); /* stderr is for the progress bar and the failures */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = eval_main(&e, &c);
    if (e.ledger_open) hl_ledger_close(&e.journal);
    hl_eval_dataset_release(&e.ds);
    for (size_t i = 0; i < e.bs.n; i++) hl_builtin_free(e.bs.v[i].builtin);
    hl_backends_release(&e.bs);
    hl_config_free(e.cfg);
    curl_global_cleanup();
    return rc;
}
