/* hl_cli_store: `hybridllm ledger index` and `hybridllm report` (see hl_cli_store.h). Flags
 * are parsed here; the work is hl_store's and hl_report's. */
#include "hl_cli_store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_buf.h"
#include "hl_config.h"
#include "hl_report.h"
#include "hl_store.h"

const char hl_cli_store_usage[] =
    "  ledger index --journal FILE --db FILE|URI\n"
    "                         index the JSONL ledger into a SQLite file or a PostgreSQL\n"
    "                         database (postgresql://...), from where the last run stopped;\n"
    "                         safe to run again at any time\n"
    "  report --db FILE|URI [--journal FILE] [--from ISO] [--to ISO]\n"
    "         [--group-by source|backend|model|task_type|route_reason|tenant|day|none]\n"
    "         [--format table|json|csv]\n"
    "         [--cloud-model NAME --config FILE | --cloud-price IN/OUT[/CACHED]]\n"
    "                         requests, tokens, cost, cost per inference, latency p50/p95/p99,\n"
    "                         TTFT, error and escalation rates, and savings against all-cloud\n"
    "                         (local answers priced at the cloud model's USD per 1M tokens);\n"
    "                         --journal indexes it first; --from is inclusive, --to exclusive\n";

__attribute__((format(printf, 2, 3))) static int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hybridllm %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nusage:\n%s", hl_cli_store_usage);
    va_end(ap);
    return 2;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static hl_store *open_store(const char *cmd, const char *db) {
    char err[600];
    hl_store *s = NULL;
    if (hl_store_open(&s, db, err, sizeof err) != HL_OK) fprintf(stderr, "hybridllm %s: %s\n", cmd, err);
    return s;
}

/* Indexes journal into s and prints what happened (on stderr when quiet_stdout: the report
 * owns stdout). Returns 0 or 1. */
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
    return 0;
}

int hl_cli_store_ledger(int argc, char **argv) {
    const char *cmd = "ledger";
    if (argc < 2 || strcmp(argv[1], "index") != 0)
        return usage_error(cmd, "%s", argc < 2 ? "a subcommand is required" : "unknown subcommand");
    const char *journal = NULL, *db = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--journal") && i + 1 < argc) journal = argv[++i];
        else if (!strcmp(argv[i], "--db") && i + 1 < argc) db = argv[++i];
        else return usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!journal || !db) return usage_error(cmd, "%s", "index: --journal FILE and --db FILE|URI are required");
    hl_store *s = open_store(cmd, db);
    if (!s) return 1;
    int rc = run_index(cmd, s, journal, db, false);
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

int hl_cli_store_report(int argc, char **argv) {
    const char *cmd = "report";
    const char *db = NULL, *journal = NULL, *from = NULL, *to = NULL, *group = "source";
    const char *format = "table", *cloud_model = NULL, *config = NULL, *cloud_price = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--db")            ? &db
                            : !strcmp(a, "--journal")     ? &journal
                            : !strcmp(a, "--from")        ? &from
                            : !strcmp(a, "--to")          ? &to
                            : !strcmp(a, "--group-by")    ? &group
                            : !strcmp(a, "--format")      ? &format
                            : !strcmp(a, "--cloud-model") ? &cloud_model
                            : !strcmp(a, "--config")      ? &config
                            : !strcmp(a, "--cloud-price") ? &cloud_price
                                                          : NULL;
        if (!slot || i + 1 >= argc) return usage_error(cmd, "unexpected argument '%s'", a);
        *slot = argv[++i];
    }
    if (!db) return usage_error(cmd, "%s", "--db FILE|URI is required");
    hl_report_opts o = {.from_ms = HL_STORE_TIME_MIN, .to_ms = HL_STORE_TIME_MAX};
    hl_report_format fmt;
    if (hl_store_group_parse(group, &o.group_by) != HL_OK)
        return usage_error(cmd, "unknown --group-by '%s'", group);
    if (hl_report_format_parse(format, &fmt) != HL_OK)
        return usage_error(cmd, "unknown --format '%s'", format);
    if (from && hl_store_parse_time(from, strlen(from), &o.from_ms) != HL_OK)
        return usage_error(cmd, "--from: '%s' is not an ISO 8601 time (2024-05-01 or 2024-05-01T12:00:00Z)", from);
    if (to && hl_store_parse_time(to, strlen(to), &o.to_ms) != HL_OK)
        return usage_error(cmd, "--to: '%s' is not an ISO 8601 time (2024-06-01 or 2024-06-01T00:00:00Z)", to);
    if (o.from_ms >= o.to_ms) return usage_error(cmd, "%s", "--from must be before --to");
    if (cloud_price && cloud_model) return usage_error(cmd, "%s", "give --cloud-price or --cloud-model, not both");
    if (!!cloud_model != !!config) return usage_error(cmd, "%s", "--cloud-model NAME and --config FILE go together");

    hl_price price;
    hl_config *cfg = NULL;
    if (cloud_price && !parse_price(cloud_price, &price))
        return usage_error(cmd, "--cloud-price: '%s' is not IN/OUT or IN/OUT/CACHED (USD per 1M tokens)", cloud_price);
    if (cloud_model) {
        char err[512];
        if (hl_config_load(config, &cfg, err, sizeof err) != HL_OK) {
            fprintf(stderr, "hybridllm report: bad config: %s\n", err);
            return 1;
        }
        const hl_price *p = hl_config_price(cfg, cloud_model);
        if (!p) {
            fprintf(stderr, "hybridllm report: %s has no price for '%s' (see `prices`)\n", config, cloud_model);
            hl_config_free(cfg);
            return 1;
        }
        price = *p;
        price.model = (char *)cloud_model;
    }
    if (cloud_price || cloud_model) o.cloud_price = &price;

    int rc = 1;
    hl_report *r = NULL;
    hl_buf out;
    hl_buf_init(&out, 0);
    hl_store *s = open_store(cmd, db);
    if (!s) goto out;
    if (journal && run_index(cmd, s, journal, db, true) != 0) goto out;
    char err[600];
    if (hl_report_build(s, &o, &r, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm report: %s\n", err);
        goto out;
    }
    if (hl_report_render(r, fmt, &out) != HL_OK) {
        fprintf(stderr, "hybridllm report: out of memory\n");
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    hl_buf_release(&out);
    hl_report_free(r);
    hl_store_close(s);
    hl_config_free(cfg);
    return rc;
}
