/* hl_cli_store: `hybridllm ledger index` and `hybridllm report` (see hl_cli_store.h). Flags
 * are parsed here (hl_opt tables) and the files named are checked before a store is opened,
 * so that a typo creates nothing; the work is hl_store's and hl_report's. */
#include "hl_cli_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_opt.h"
#include "hl_pricing.h"
#include "hl_report.h"
#include "hl_store.h"

static const char ledger_usage[] =
    "usage: hybridllm ledger index --journal FILE --db FILE|URI\n"
    "  Indexes the JSONL ledger into a SQLite file (created if missing) or a PostgreSQL\n"
    "  database (postgresql://...), from where the last run stopped; safe to run again at any\n"
    "  time. The journal must exist, and a journal read from its start must hold at least one\n"
    "  ledger record. A SQLite file of another program is refused, untouched.\n"
    "  --journal FILE     the gateway's JSONL ledger\n"
    "  --db FILE|URI      the store\n";

static const char report_usage[] =
    "usage: hybridllm report --db FILE|URI [--journal FILE] [--from ISO] [--to ISO]\n"
    "         [--group-by KEY[,KEY...]] [--tenant T] [--key K] [--backend B] [--model M]\n"
    "         [--task-type T] [--source local|cloud] [--format table|json|csv] [--include-eval]\n"
    "         [--exact] [--cloud-model NAME [--config FILE] | --cloud-price IN/OUT[/CACHED]]\n"
    "         [--hardware-usd X] [--amortize-months N]\n"
    "  Requests, tokens, cost, cost per inference, latency p50/p95/p99, TTFT, error and\n"
    "  escalation rates, and savings against all-cloud: every answered request priced at the\n"
    "  cloud model's USD per 1M tokens, against what those requests cost here and the local\n"
    "  hardware amortized; sensitive requests (they could never go to the cloud) are left out\n"
    "  of the comparison. Shadow attempts are counted in cost and shadow $ only; scored lines\n"
    "  give agreement (with its 95% Wilson interval), the sample count and the mean score.\n"
    "  Answers from the store's rollups (percentiles within 2%) unless --exact, a range not on\n"
    "  whole UTC hours, or --group-by prompt_length: those read the rows.\n"
    "  --db FILE|URI      the store: a hybridllm SQLite ledger (it must exist unless --journal\n"
    "                     is given) or a PostgreSQL URI\n"
    "  --journal FILE     index this journal into the store first\n"
    "  --from, --to ISO   the time range; --from is inclusive, --to exclusive\n"
    "  --group-by KEYS    up to 4 of source, backend, model, task_type, route_reason, tenant,\n"
    "                     key, status, hour, day, week, month, prompt_length (input tokens up\n"
    "                     to 1k, 1k-4k, 4k-8k, 8k+), comma-separated (day,source); none: the\n"
    "                     total only (default source)\n"
    "  --tenant, --key, --backend, --model, --task-type, --source V   only records with V\n"
    "  --exact            read the rows: exact percentiles (slower on large ledgers)\n"
    "  --include-eval     count `hybridllm eval` lines too (not gateway traffic: left out by default)\n"
    "  --format F         table (default), json or csv\n"
    "  --cloud-model NAME price at this model: --config FILE's `prices` first, else the built-in\n"
    "                     table (the one `advise` uses)\n"
    "  --cloud-price IN/OUT[/CACHED]      or at these USD per 1M tokens\n"
    "  --hardware-usd X   local hardware subtracted from savings, amortized (default 550, as advise;\n"
    "                     0: none)\n"
    "  --amortize-months N  over this many months (default 36)\n";

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A journal to index must be a readable file: the indexer takes a missing one for a gateway
 * that has not written yet, which on the command line is a typo. Returns 0, or 1 (printed). */
static int check_journal(const char *cmd, const char *journal) {
    struct stat st;
    if (stat(journal, &st) != 0 || access(journal, R_OK) != 0) {
        fprintf(stderr, "hybridllm %s: cannot read the journal %s: %s\n", cmd, journal, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "hybridllm %s: the journal %s is not a regular file\n", cmd, journal);
        return 1;
    }
    return 0;
}

/* Opens the store at db; with must_exist, an existing hybridllm ledger only. NULL (printed)
 * on failure. */
static hl_store *open_store(const char *cmd, const char *db, bool must_exist) {
    char err[600];
    hl_store *s = NULL;
    if (must_exist && !hl_store_location_is_pg(db) && access(db, F_OK) != 0) {
        fprintf(stderr, "hybridllm %s: %s: %s (index a journal first: hybridllm ledger index, or give --journal)\n",
                cmd, db, strerror(errno));
        return NULL;
    }
    hl_err e = must_exist ? hl_store_open_existing(&s, db, err, sizeof err) : hl_store_open(&s, db, err, sizeof err);
    if (e != HL_OK) fprintf(stderr, "hybridllm %s: %s\n", cmd, err);
    return s;
}

/* Indexes journal into s and prints what happened (on stderr when quiet_stdout: the report
 * owns stdout). Returns 0, or 1 when indexing failed or found no record where it should have:
 * lines read and all malformed, or a pass from the journal's start with no record at all. */
static int run_index(const char *cmd, hl_store *s, const char *journal, const char *db, bool quiet_stdout) {
    hl_store_index_stats st;
    double t0 = now_s();
    hl_err e = hl_store_index(s, journal, &st);
    double dt = now_s() - t0;
    if (e) {
        fprintf(stderr, "hybridllm %s: indexing %s: %s\n", cmd, journal, hl_store_errmsg(s));
        return 1;
    }
    FILE *f = quiet_stdout ? stderr : stdout;
    char where[600];
    hl_store_redact(db, where, sizeof where);
    fprintf(f, "indexed %s into %s: %llu lines, %llu new, %llu already indexed, %llu malformed, "
               "%llu conflicting; at byte %lld of %lld%s (%.2f s)\n",
            journal, where, st.lines, st.inserted, st.duplicates, st.malformed, st.conflicts, st.offset,
            st.size, st.restarted ? "; the journal was rotated or truncated, so it was read from the start" : "",
            dt);
    bool from_start = st.offset == (long long)st.bytes;
    if (st.malformed == st.lines && (st.lines > 0 || from_start)) {
        fprintf(stderr, "hybridllm %s: %s holds no valid ledger record%s\n", cmd, journal,
                st.lines ? " in the lines read (see the log for the first malformed ones)" : "");
        return 1;
    }
    return 0;
}

int hl_cli_store_ledger(int argc, char **argv) {
    hl_opt_cmd c = {"ledger", ledger_usage, stdout, stderr};
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return hl_opt_help(&c);
    if (argc < 2) return hl_opt_usage_error(&c, "a subcommand is required");
    if (strcmp(argv[1], "index") != 0) return hl_opt_usage_error(&c, "unknown subcommand '%s'", argv[1]);
    c.name = "ledger index";
    const char *journal = NULL, *db = NULL;
    hl_opt opts[] = {
        {.name = "--journal", .kind = HL_OPT_STR, .target = &journal},
        {.name = "--db", .kind = HL_OPT_STR, .target = &db},
    };
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc - 1, argv + 1);
    if (rc != HL_OPT_GO) return rc;
    if (!journal || !db) return hl_opt_usage_error(&c, "--journal FILE and --db FILE|URI are required");
    if (check_journal(c.name, journal)) return 1;
    hl_store *s = open_store(c.name, db, false);
    if (!s) return 1;
    rc = run_index(c.name, s, journal, db, false);
    hl_store_close(s);
    return rc;
}

/* "IN/OUT" or "IN/OUT/CACHED", USD per 1M tokens. */
static bool parse_price(const char *text, hl_price *p) {
    char *end;
    errno = 0;
    double v[3] = {0, 0, -1};
    const char *at = text;
    int n = 0;
    for (; n < 3; n++) {
        v[n] = strtod(at, &end);
        if (end == at || errno || v[n] < 0) return false;
        if (*end == '\0') {
            n++;
            break;
        }
        if (*end != '/') return false;
        at = end + 1;
    }
    if (n < 2 || *end != '\0') return false;
    *p = (hl_price){.model = "custom", .input_per_mtok = v[0], .output_per_mtok = v[1],
                    .cached_input_per_mtok = n == 3 ? v[2] : v[0], .cache_write_per_mtok = v[0]};
    return true;
}

typedef struct report_args {
    const char *db, *journal, *config, *cloud_model; /* borrowed from argv; NULL: none */
    hl_report_opts o;
    hl_report_format fmt;
    hl_price price;    /* o.cloud_price points here when a price was given */
    hl_config *cfg;    /* owned: --config's, whose price price copies */
} report_args;

/* Fills a from argv and checks it. Returns HL_OPT_GO, or the exit status (0 after --help,
 * 2 after a usage error, printed). */
static int report_parse(report_args *a, int argc, char **argv) {
    const char *from = NULL, *to = NULL, *group = "source", *format = "table", *cloud_price = NULL;
    bool include_eval = false, exact = false;
    hl_report_opts_init(&a->o);
    hl_opt opts[] = {
        {.name = "--db", .kind = HL_OPT_STR, .target = &a->db},
        {.name = "--journal", .kind = HL_OPT_STR, .target = &a->journal},
        {.name = "--from", .kind = HL_OPT_STR, .target = &from},
        {.name = "--to", .kind = HL_OPT_STR, .target = &to},
        {.name = "--group-by", .kind = HL_OPT_STR, .target = &group},
        {.name = "--format", .kind = HL_OPT_STR, .target = &format},
        {.name = "--cloud-model", .kind = HL_OPT_STR, .target = &a->cloud_model},
        {.name = "--config", .kind = HL_OPT_STR, .target = &a->config},
        {.name = "--cloud-price", .kind = HL_OPT_STR, .target = &cloud_price},
        {.name = "--include-eval", .kind = HL_OPT_FLAG, .target = &include_eval},
        {.name = "--exact", .kind = HL_OPT_FLAG, .target = &exact},
        {.name = "--tenant", .kind = HL_OPT_STR, .target = &a->o.filter.tenant},
        {.name = "--key", .kind = HL_OPT_STR, .target = &a->o.filter.key_name},
        {.name = "--backend", .kind = HL_OPT_STR, .target = &a->o.filter.backend},
        {.name = "--model", .kind = HL_OPT_STR, .target = &a->o.filter.model},
        {.name = "--task-type", .kind = HL_OPT_STR, .target = &a->o.filter.task_type},
        {.name = "--source", .kind = HL_OPT_STR, .target = &a->o.filter.source},
        {.name = "--hardware-usd", .kind = HL_OPT_DOUBLE, .target = &a->o.hardware_usd, .want = "a number >= 0"},
        {.name = "--amortize-months", .kind = HL_OPT_DOUBLE, .target = &a->o.amortize_months,
         .flags = HL_OPT_ABOVE_MIN, .want = "a number > 0"},
    };
    hl_opt_cmd c = {"report", report_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!a->db) return hl_opt_usage_error(&c, "--db FILE|URI is required");
    a->o.include_eval = include_eval;
    a->o.exact = exact;
    if (hl_report_parse_group_by(group, &a->o) != HL_OK)
        return hl_opt_usage_error(&c, "--group-by '%s': give up to 4 distinct keys of source, backend, model, "
                                      "task_type, route_reason, tenant, key, status, hour, day, week, month, "
                                      "prompt_length (or none), comma-separated", group);
    if (a->o.filter.source && strcmp(a->o.filter.source, "local") && strcmp(a->o.filter.source, "cloud"))
        return hl_opt_usage_error(&c, "--source: '%s' is neither local nor cloud", a->o.filter.source);
    if (hl_report_format_parse(format, &a->fmt) != HL_OK) return hl_opt_usage_error(&c, "unknown --format '%s'", format);
    if (from && hl_store_parse_time(from, strlen(from), &a->o.from_ms) != HL_OK)
        return hl_opt_usage_error(&c, "--from: '%s' is not an ISO 8601 time (2024-05-01 or 2024-05-01T12:00:00Z)", from);
    if (to && hl_store_parse_time(to, strlen(to), &a->o.to_ms) != HL_OK)
        return hl_opt_usage_error(&c, "--to: '%s' is not an ISO 8601 time (2024-06-01 or 2024-06-01T00:00:00Z)", to);
    if (a->o.from_ms >= a->o.to_ms) return hl_opt_usage_error(&c, "--from must be before --to");
    if (cloud_price && a->cloud_model) return hl_opt_usage_error(&c, "give --cloud-price or --cloud-model, not both");
    if (a->config && !a->cloud_model) return hl_opt_usage_error(&c, "--config FILE goes with --cloud-model NAME");
    if (cloud_price && !parse_price(cloud_price, &a->price))
        return hl_opt_usage_error(&c, "--cloud-price: '%s' is not IN/OUT or IN/OUT/CACHED (USD per 1M tokens)",
                                  cloud_price);
    if (cloud_price) a->o.cloud_price = &a->price;
    return HL_OPT_GO;
}

/* --cloud-model's price (--config's `prices`, else the built-in table: hl_pricing.h) into
 * a->price. Returns 0 or 1 (printed). */
static int load_cloud_price(report_args *a) {
    char err[512];
    if (a->config && hl_config_load(a->config, &a->cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm report: bad config: %s\n", err);
        return 1;
    }
    const hl_price *p = hl_pricing_lookup(a->cfg, a->cloud_model, NULL);
    if (!p) {
        fprintf(stderr, "hybridllm report: no price for '%s': add it to `prices` in a config given with --config, "
                        "or use a built-in model (gpt-4o, gpt-4o-mini, claude-3-5-sonnet-20241022)\n", a->cloud_model);
        return 1;
    }
    a->price = *p;
    a->price.model = (char *)a->cloud_model;
    a->o.cloud_price = &a->price;
    return 0;
}

/* Without --journal the store must be a hybridllm ledger already: report never creates one,
 * nor touches another program's database. */
static int report_run(report_args *a) {
    int rc = 1;
    hl_report *r = NULL;
    hl_store *s = NULL;
    hl_buf out;
    hl_buf_init(&out, 0);
    if (a->cloud_model && load_cloud_price(a)) goto out;
    if (a->journal && check_journal("report", a->journal)) goto out;
    if (!(s = open_store("report", a->db, !a->journal))) goto out;
    if (a->journal && run_index("report", s, a->journal, a->db, true) != 0) goto out;
    char err[600];
    if (hl_report_build(s, &a->o, &r, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm report: %s\n", err);
        goto out;
    }
    if (hl_report_render(r, a->fmt, &out) != HL_OK) {
        fprintf(stderr, "hybridllm report: out of memory\n");
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    hl_buf_release(&out);
    hl_report_free(r);
    hl_store_close(s);
    return rc;
}

int hl_cli_store_report(int argc, char **argv) {
    report_args a = {0};
    int rc = report_parse(&a, argc, argv);
    if (rc == HL_OPT_GO) rc = report_run(&a);
    hl_config_free(a.cfg);
    return rc;
}
