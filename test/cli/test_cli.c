/* Tests for the command line's conventions (hl_cli.h): the option parser in-process (hl_opt),
 * then the built binary ($HL_BIN, set by ctest) as a user runs it: --help, `help CMD` and
 * `CMD --help` for every command on stdout with exit 0, --version, usage errors on stderr
 * with exit 2, and the ledger commands' refusals (a missing store or journal, another
 * program's SQLite file left byte for byte as it was, a journal with no record). */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hl_cli.h"
#include "hl_opt.h"
#include "hl_test.h"

/* ---- hl_opt in-process ---- */

typedef struct parsed {
    int rc;
    char out[4096], err[4096];
} parsed;

static void slurp(FILE *f, char *buf, size_t len) {
    rewind(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Parses args (NULL-terminated, the command's name first) against opts. */
static void parse(parsed *p, hl_opt *opts, size_t n, hl_opt_list *pos, const char *const *args) {
    char *argv[32];
    int argc = 0;
    while (args[argc] && argc < 31) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    FILE *out = tmpfile(), *err = tmpfile();
    if (!out || !err) exit(1);
    hl_opt_cmd c = {"demo", "usage: hybridllm demo [options]\n", out, err};
    p->rc = hl_opt_parse(&c, opts, n, pos, argc, argv);
    slurp(out, p->out, sizeof p->out);
    slurp(err, p->err, sizeof p->err);
}

static const hl_opt_choice colours[] = {{"red", 1}, {"green", 2}, {NULL, 0}};

typedef struct demo {
    const char *name;
    bool verbose;
    int count, colour;
    uint64_t seed;
    double share, size;
    const char *items[2];
    hl_opt_list list;
} demo;

/* The demo's table over d; its entries' seen counts start at 0. */
#define DEMO_OPTS(d)                                                                                     \
    {                                                                                                    \
        {.name = "--name", .letter = 'N', .kind = HL_OPT_STR, .target = &(d).name},                      \
        {.name = "--verbose", .letter = 'v', .kind = HL_OPT_FLAG, .target = &(d).verbose},               \
        {.name = "--count", .kind = HL_OPT_INT, .target = &(d).count, .min = 1, .max = 10},              \
        {.name = "--colour", .kind = HL_OPT_CHOICE, .target = &(d).colour, .choices = colours},          \
        {.name = "--seed", .kind = HL_OPT_U64, .target = &(d).seed},                                     \
        {.name = "--share", .kind = HL_OPT_DOUBLE, .target = &(d).share, .max = 1, .want = "0..1"},      \
        {.name = "--size", .kind = HL_OPT_DOUBLE, .target = &(d).size, .flags = HL_OPT_SUFFIX | HL_OPT_ABOVE_MIN}, \
        {.name = "--item", .kind = HL_OPT_LIST, .target = &(d).list},                                    \
    }

HL_TEST(opt_parses_every_kind) {
    demo d = {0};
    d.list = (hl_opt_list){d.items, 0, 2};
    hl_opt opts[] = DEMO_OPTS(d);
    const char *posv[2];
    hl_opt_list pos = {posv, 0, 2};
    parsed p;
    parse(&p, opts, sizeof opts / sizeof opts[0], &pos,
          (const char *[]){"demo", "-N", "x", "--verbose", "--count=3", "--colour", "green", "--seed", "18446744073709551615",
                           "--share", "0.25", "--size", "2.5M", "--item", "a", "--item", "b", "file", "--", "--not-an-option",
                           NULL});
    HL_CHECK_INT_EQ(p.rc, HL_OPT_GO);
    HL_CHECK_STR_EQ(p.err, "");
    HL_CHECK_STR_EQ(d.name, "x");
    HL_CHECK(d.verbose);
    HL_CHECK_INT_EQ(d.count, 3);
    HL_CHECK_INT_EQ(d.colour, 2);
    HL_CHECK(d.seed == UINT64_MAX);
    HL_CHECK_NEAR(d.share, 0.25, 0);
    HL_CHECK_NEAR(d.size, 2.5e6, 0);
    HL_CHECK_INT_EQ(d.list.n, 2);
    HL_CHECK_STR_EQ(d.items[1], "b");
    HL_CHECK_INT_EQ(pos.n, 2);
    HL_CHECK_STR_EQ(posv[0], "file");
    HL_CHECK_STR_EQ(posv[1], "--not-an-option");
    HL_CHECK_INT_EQ(opts[7].seen, 2);
    HL_CHECK_INT_EQ(opts[4].seen, 1);
}

HL_TEST(opt_help_goes_to_out_with_0) {
    demo d = {0};
    d.list = (hl_opt_list){d.items, 0, 2};
    hl_opt opts[] = DEMO_OPTS(d);
    parsed p;
    parse(&p, opts, sizeof opts / sizeof opts[0], NULL, (const char *[]){"demo", "--count", "2", "--help", "--bogus", NULL});
    HL_CHECK_INT_EQ(p.rc, 0);
    HL_CHECK_STR_EQ(p.out, "usage: hybridllm demo [options]\n");
    HL_CHECK_STR_EQ(p.err, "");
    parse(&p, opts, sizeof opts / sizeof opts[0], NULL, (const char *[]){"demo", "-h", NULL});
    HL_CHECK_INT_EQ(p.rc, 0);
    HL_CHECK_STR_EQ(p.out, "usage: hybridllm demo [options]\n");
}

HL_TEST(opt_usage_errors_go_to_err_with_2) {
    static const struct {
        const char *args[6];
        const char *message;
    } cases[] = {
        {{"demo", "--bogus", NULL}, "hybridllm demo: unknown option '--bogus'\n"},
        {{"demo", "-x", NULL}, "hybridllm demo: unknown option '-x'\n"},
        {{"demo", "--name", NULL}, "hybridllm demo: --name wants a value\n"},
        {{"demo", "--name", "--verbose", NULL}, "hybridllm demo: --name wants a value\n"},
        {{"demo", "--verbose=yes", NULL}, "hybridllm demo: --verbose takes no value\n"},
        {{"demo", "--count", "0", NULL}, "hybridllm demo: --count wants an integer, got '0'\n"},
        {{"demo", "--count", "11", NULL}, "hybridllm demo: --count wants an integer, got '11'\n"},
        {{"demo", "--count", "3x", NULL}, "hybridllm demo: --count wants an integer, got '3x'\n"},
        {{"demo", "--seed", "-1", NULL}, "hybridllm demo: --seed wants an unsigned integer, got '-1'\n"},
        {{"demo", "--share", "1.5", NULL}, "hybridllm demo: --share wants 0..1, got '1.5'\n"},
        {{"demo", "--share", "nan", NULL}, "hybridllm demo: --share wants 0..1, got 'nan'\n"},
        {{"demo", "--size", "0", NULL}, "hybridllm demo: --size wants a number, got '0'\n"},
        {{"demo", "--size", "3Q", NULL}, "hybridllm demo: --size wants a number, got '3Q'\n"},
        {{"demo", "--colour", "blue", NULL}, "hybridllm demo: --colour wants one of red, green, got 'blue'\n"},
        {{"demo", "--item", "a", "--item", "b", "--item"}, "hybridllm demo: --item wants a value\n"},
        {{"demo", "stray", NULL}, "hybridllm demo: unexpected argument 'stray'\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        demo d = {0};
        d.list = (hl_opt_list){d.items, 0, 2};
        hl_opt opts[] = DEMO_OPTS(d);
        const char *args[7] = {0};
        memcpy(args, cases[i].args, sizeof cases[i].args);
        parsed p;
        parse(&p, opts, sizeof opts / sizeof opts[0], NULL, args);
        if (p.rc != 2) HL_FAIL_("case %zu: %d, expected 2", i, p.rc);
        char want[512];
        snprintf(want, sizeof want, "%susage: hybridllm demo [options]\n", cases[i].message);
        if (strcmp(p.err, want) != 0) HL_FAIL_("case %zu: stderr '%s', expected '%s'", i, p.err, want);
        HL_CHECK_STR_EQ(p.out, "");
    }
    demo d = {0};
    d.list = (hl_opt_list){d.items, 0, 2};
    hl_opt opts[] = DEMO_OPTS(d);
    parsed p;
    parse(&p, opts, sizeof opts / sizeof opts[0], NULL,
          (const char *[]){"demo", "--item", "a", "--item", "b", "--item", "c", NULL});
    HL_CHECK_INT_EQ(p.rc, 2);
    HL_CHECK(strstr(p.err, "--item is given 2 times at most") != NULL);
}

/* ---- the binary ---- */

typedef struct outcome {
    int rc;
    char out[65536], err[65536];
} outcome;

static outcome run_o; /* large: one at a time */

static const char *bin(void) { return getenv("HL_BIN"); }

static void read_fd(int fd, char *buf, size_t len) {
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* Runs $HL_BIN with args (NULL-terminated, after the program's name), stdin from /dev/null.
 * The result is in run_o. */
static outcome *run(const char *const *args) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)bin();
    for (; *args && argc < 31; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    FILE *o = tmpfile(), *e = tmpfile();
    if (!o || !e) exit(1);
    int ofd = dup(fileno(o)), efd = dup(fileno(e));
    fclose(o);
    fclose(e);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(ofd, 1);
        dup2(efd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    run_o.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    read_fd(ofd, run_o.out, sizeof run_o.out);
    read_fd(efd, run_o.err, sizeof run_o.err);
    return &run_o;
}

#define NEED_BIN()                                                  \
    do {                                                            \
        if (!bin()) HL_SKIP("HL_BIN is not set");                  \
    } while (0)

static const char *const commands[] = {"serve", "route", "ledger", "report", "keys", "advise",
                                       "simulate", "calibrate", "run", "pull", "models", "gguf", "config", "version",
                                       "help"};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

HL_TEST(top_level_help_and_version) {
    NEED_BIN();
    static const char *const helps[][2] = {{"--help", NULL}, {"-h", NULL}, {"help", NULL}};
    for (size_t i = 0; i < 3; i++) {
        outcome *o = run(helps[i]);
        HL_CHECK_INT_EQ(o->rc, 0);
        HL_CHECK(strstr(o->out, "usage: hybridllm <command>") != NULL);
        for (size_t c = 0; c < N_COMMANDS; c++) {
            char line[64];
            snprintf(line, sizeof line, "\n  %s", commands[c]);
            if (!strstr(o->out, line)) HL_FAIL_("`%s` does not list %s", helps[i][0], commands[c]);
        }
        HL_CHECK_STR_EQ(o->err, "");
    }
    static const char *const versions[][2] = {{"--version", NULL}, {"version", NULL}};
    for (size_t i = 0; i < 2; i++) {
        outcome *o = run(versions[i]);
        HL_CHECK_INT_EQ(o->rc, 0);
        HL_CHECK_STR_EQ(o->out, "hybridllm " HL_VERSION "\n");
        HL_CHECK_STR_EQ(o->err, "");
    }
    outcome *o = run((const char *[]){NULL});
    HL_CHECK_INT_EQ(o->rc, 2);
    HL_CHECK_STR_EQ(o->out, "");
    HL_CHECK(strstr(o->err, "usage: hybridllm <command>") != NULL);
    o = run((const char *[]){"frobnicate", NULL});
    HL_CHECK_INT_EQ(o->rc, 2);
    HL_CHECK(strstr(o->err, "hybridllm: unknown command 'frobnicate'") != NULL);
    o = run((const char *[]){"--frobnicate", NULL});
    HL_CHECK_INT_EQ(o->rc, 2);
    HL_CHECK(strstr(o->err, "hybridllm: unknown option '--frobnicate'") != NULL);
    o = run((const char *[]){"help", "frobnicate", NULL});
    HL_CHECK_INT_EQ(o->rc, 2);
    HL_CHECK(strstr(o->err, "hybridllm help: unknown command 'frobnicate'") != NULL);
}

/* CMD --help, CMD -h and help CMD print the same usage on stdout and exit 0. */
HL_TEST(every_command_answers_help) {
    NEED_BIN();
    static const char *const cases[][3] = {
        {"serve"}, {"route"}, {"ledger"}, {"ledger", "index"}, {"report"}, {"advise"},
        {"simulate"}, {"run"}, {"gguf"}, {"gguf", "info"}, {"config"}, {"config", "keys"}, {"config", "check"}, {"version"}, {"help"}, {"calibrate"},
        {"keys"}, {"keys", "create"}, {"keys", "list"}, {"keys", "update"}, {"keys", "revoke"},
        {"pull"}, {"models"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *cmd = cases[i][0], *sub = cases[i][1];
        char want[64];
        snprintf(want, sizeof want, "usage: hybridllm %s", cmd);
        static char first[65536];
        for (int form = 0; form < 3; form++) {
            const char *args[5] = {0};
            int n = 0;
            if (form == 2) args[n++] = "help";
            args[n++] = cmd;
            if (sub) args[n++] = sub;
            if (form < 2) args[n++] = form ? "-h" : "--help";
            outcome *o = run(args);
            if (o->rc != 0 || !strstr(o->out, want) || o->err[0])
                HL_FAIL_("%s%s%s (form %d): exit %d, stdout '%.80s', stderr '%.200s'", cmd, sub ? " " : "",
                         sub ? sub : "", form, o->rc, o->out, o->err);
            if (form == 0) snprintf(first, sizeof first, "%s", o->out);
            else if (strcmp(first, o->out) != 0 && strcmp(cmd, "help") != 0)
                HL_FAIL_("%s: form %d prints another usage", cmd, form);
        }
    }
}

/* An unknown option and a missing value: the message and the usage on stderr, exit 2. */
HL_TEST(usage_errors_exit_2_on_stderr) {
    NEED_BIN();
    static const struct {
        const char *args[7];
        const char *message, *usage;
    } cases[] = {
        {{"serve", "--bogus"}, "hybridllm serve: unknown option '--bogus'", "usage: hybridllm serve"},
        {{"serve", "--config"}, "hybridllm serve: --config wants a value", "usage: hybridllm serve"},
        {{"serve", "--config", "x.yaml", "--log-level", "loud"}, "--log-level wants one of debug, info, warn, error",
         "usage: hybridllm serve"},
        {{"serve"}, "hybridllm serve: --config FILE is required", "usage: hybridllm serve"},
        {{"route", "--bogus"}, "hybridllm route: unknown option '--bogus'", "usage: hybridllm route"},
        {{"route", "--explain", "--header", "nocolon"}, "--header wants 'Name: value'", "usage: hybridllm route"},
        {{"ledger"}, "hybridllm ledger: a subcommand is required", "usage: hybridllm ledger"},
        {{"ledger", "reindex"}, "hybridllm ledger: unknown subcommand 'reindex'", "usage: hybridllm ledger"},
        {{"ledger", "index", "--bogus"}, "hybridllm ledger index: unknown option '--bogus'", "usage: hybridllm ledger"},
        {{"ledger", "index", "--journal"}, "hybridllm ledger index: --journal wants a value", "usage: hybridllm ledger"},
        {{"report", "--bogus"}, "hybridllm report: unknown option '--bogus'", "usage: hybridllm report"},
        {{"report", "--db"}, "hybridllm report: --db wants a value", "usage: hybridllm report"},
        {{"report"}, "hybridllm report: --db FILE|URI is required", "usage: hybridllm report"},
        {{"advise", "--bogus"}, "hybridllm advise: unknown option '--bogus'", "usage: hybridllm advise"},
        {{"advise", "--tokens-per-month"}, "hybridllm advise: --tokens-per-month wants a value", "usage: hybridllm advise"},
        {{"simulate", "--seed", "x"}, "hybridllm simulate: --seed wants an unsigned integer, got 'x'",
         "usage: hybridllm simulate"},
        {{"run", "--bogus"}, "hybridllm run: unknown option '--bogus'", "usage: hybridllm run"},
        {{"run", "m.gguf", "-p"}, "hybridllm run: -p wants a value", "usage: hybridllm run"},
        {{"run", "m.gguf", "-p", "hi", "--threads", "0"}, "--threads wants an integer within 1..256",
         "usage: hybridllm run"},
        {{"gguf", "info"}, "hybridllm gguf: the subcommand is info, then MODEL.gguf", "usage: hybridllm gguf"},
        {{"version", "--bogus"}, "hybridllm version: unknown option '--bogus'", "usage: hybridllm version"},
        {{"config"}, "hybridllm config: a subcommand is required", "usage: hybridllm config"},
        {{"config", "frob"}, "hybridllm config: unknown subcommand 'frob'", "usage: hybridllm config"},
        {{"config", "check"}, "hybridllm config: config check wants the FILE", "usage: hybridllm config"},
        {{"calibrate", "--bogus"}, "hybridllm calibrate: unknown option '--bogus'", "usage: hybridllm calibrate"},
        {{"pull"}, "hybridllm pull: the repository is required", "usage: hybridllm pull"},
        {{"pull", "a/b", "c/d"}, "hybridllm pull: one repository at a time", "usage: hybridllm pull"},
        {{"pull", "nodash"}, "hybridllm pull: 'nodash' is not a repository", "usage: hybridllm pull"},
        {{"pull", "a/b:Q4 K"}, "hybridllm pull: ':Q4 K' is not a quantization", "usage: hybridllm pull"},
        {{"pull", "a/b", "--dir"}, "hybridllm pull: --dir wants a value", "usage: hybridllm pull"},
        {{"models", "extra"}, "hybridllm models: ", "usage: hybridllm models"},
        {{"models", "--bogus"}, "hybridllm models: unknown option '--bogus'", "usage: hybridllm models"},
        {{"calibrate", "--target", "2"}, "hybridllm calibrate: --target wants a number in (0, 1]",
         "usage: hybridllm calibrate"},
        {{"calibrate", "--signal", "best"}, "hybridllm calibrate: --signal wants auto, geomean, margin or min",
         "usage: hybridllm calibrate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome *o = run(cases[i].args);
        if (o->rc != 2 || !strstr(o->err, cases[i].message) || !strstr(o->err, cases[i].usage) || o->out[0])
            HL_FAIL_("case %zu (%s %s): exit %d, stderr '%.300s', stdout '%.80s'", i, cases[i].args[0],
                     cases[i].args[1] ? cases[i].args[1] : "", o->rc, o->err, o->out);
    }
}

/* `config check FILE` loads a config as serve would: ok, or the error naming file, line and key. */
HL_TEST(config_check_names_the_error) {
    NEED_BIN();
    char good[64], bad[64];
    snprintf(good, sizeof good, "/tmp/hl_test_check_good_%d.yaml", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/hl_test_check_bad_%d.yaml", (int)getpid());
    static const char backends[] =
        "backends:\n  - {name: local, kind: openai, location: local, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        "routes:\n  - name: r\n    to: [local]\n";
    FILE *f = fopen(good, "w");
    HL_REQUIRE(f);
    fprintf(f, "%s    escalate: {below: 0.5, signal: margin, to: [local]}\n", backends);
    fclose(f);
    HL_REQUIRE((f = fopen(bad, "w")));
    fprintf(f, "%s    escalate: {below: 0.5, signal: loudest, to: [local]}\n", backends);
    fclose(f);
    outcome *o = run((const char *[]){"config", "check", good, NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    HL_CHECK(strstr(o->out, ": ok") != NULL);
    o = run((const char *[]){"config", "check", bad, NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    if (!strstr(o->err, bad) || !strstr(o->err, ":6") || !strstr(o->err, "signal"))
        HL_FAIL_("config check: '%s'", o->err);
    unlink(good);
    unlink(bad);
}

/* `config keys` prints the loader's own tables: every section, and keys inside lists. */
HL_TEST(config_keys_lists_the_schema) {
    NEED_BIN();
    outcome *o = run((const char *[]){"config", "keys", NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    HL_CHECK_STR_EQ(o->err, "");
    static const char *const want[] = {"\nserver.listen (", "\nledger.path (", "\nbackends (list, required)",
                                       "\nbackends[].kind (openai|anthropic|builtin, required)",
                                       "server.threads (integer 0..256, default 0)"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(o->out, want[i])) HL_FAIL_("config keys lacks '%s'", want[i] + (want[i][0] == '\n'));
}

/* ---- the ledger commands' refusals ---- */

typedef struct dir {
    char path[64];
    char journal[128], db[128], foreign[128], text[128], empty[128];
} dir;

static void dir_init(dir *d) {
    snprintf(d->path, sizeof d->path, "/tmp/hl_test_cli_XXXXXX");
    if (!mkdtemp(d->path)) exit(1);
    snprintf(d->journal, sizeof d->journal, "%s/ledger.jsonl", d->path);
    snprintf(d->db, sizeof d->db, "%s/ledger.db", d->path);
    snprintf(d->foreign, sizeof d->foreign, "%s/other.db", d->path);
    snprintf(d->text, sizeof d->text, "%s/notes.txt", d->path);
    snprintf(d->empty, sizeof d->empty, "%s/empty.db", d->path);
}

static void dir_cleanup(dir *d) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", d->path);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) exit(1);
}

/* The file's bytes (malloc'd; *len set), or NULL when it does not exist. */
static char *file_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 20);
    *len = b ? fread(b, 1, 1 << 20, f) : 0;
    fclose(f);
    return b;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static const char ledger_line[] =
    "{\"timestamp\":\"2026-11-25T09:47:12.188Z\",\"source\":\"cloud\",\"input_tokens\":6,\"output_tokens\":4,"
    "\"latency_ms\":6.596,\"cost_usd\":0.000078,\"request_id\":\"req_1\",\"attempt\":1,"
    "\"backend\":\"cloud-anthropic\",\"model\":\"claude-3-5-sonnet-20241022\",\"route_reason\":\"default\","
    "\"status\":\"ok\",\"stream\":false,\"ttft_ms\":null,\"cached_input_tokens\":0,\"cache_write_tokens\":0,"
    "\"usage_estimated\":false,\"tenant\":null,\"task_type\":\"analysis\",\"task_inferred\":false,"
    "\"sensitive\":false,\"confidence\":null,\"http_status\":200,\"error\":null}\n";

HL_TEST(report_on_a_missing_db_creates_nothing) {
    NEED_BIN();
    dir d;
    dir_init(&d);
    outcome *o = run((const char *[]){"report", "--db", d.db, NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    HL_CHECK(strstr(o->err, d.db) != NULL);
    HL_CHECK_STR_EQ(o->out, "");
    HL_CHECK(!exists(d.db));
    /* with --journal it is an index, then a report: the store is created */
    write_text(d.journal, ledger_line);
    o = run((const char *[]){"report", "--db", d.db, "--journal", d.journal, "--format", "csv", NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    HL_CHECK(strstr(o->out, "\ntotal,,1,1,") != NULL);
    o = run((const char *[]){"report", "--db", d.db, "--format", "csv", NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    HL_CHECK(strstr(o->out, "\ntotal,,1,1,") != NULL);
    dir_cleanup(&d);
}

/* Another program's SQLite file, a text file and an empty file are refused, unchanged, by
 * report and by ledger index. */
HL_TEST(a_foreign_file_is_refused_untouched) {
    NEED_BIN();
    dir d;
    dir_init(&d);
    sqlite3 *db;
    HL_REQUIRE(sqlite3_open(d.foreign, &db) == SQLITE_OK);
    HL_REQUIRE(sqlite3_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                                "INSERT INTO notes (body) VALUES ('keep me')", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    write_text(d.text, "not a database, just some words that are long enough to be looked at\n");
    write_text(d.empty, "");
    write_text(d.journal, ledger_line);
    const char *const files[] = {d.foreign, d.text, d.empty};
    for (size_t i = 0; i < 3; i++) {
        size_t n0 = 0, n1 = 0;
        char *before = file_bytes(files[i], &n0);
        HL_REQUIRE(before);
        outcome *o = run((const char *[]){"report", "--db", files[i], NULL});
        if (o->rc != 1) HL_FAIL_("report on %s: exit %d, stderr '%s'", files[i], o->rc, o->err);
        HL_CHECK_STR_EQ(o->out, "");
        if (i == 0) HL_CHECK(strstr(o->err, "not a hybridllm ledger") != NULL);
        if (i != 2) { /* an empty file becomes a new store for ledger index, as a missing one */
            o = run((const char *[]){"ledger", "index", "--journal", d.journal, "--db", files[i], NULL});
            if (o->rc != 1) HL_FAIL_("ledger index into %s: exit %d, stderr '%s'", files[i], o->rc, o->err);
        }
        char *after = file_bytes(files[i], &n1);
        HL_REQUIRE(after);
        if (n0 != n1 || memcmp(before, after, n0) != 0) HL_FAIL_("%s was changed", files[i]);
        char side[160];
        snprintf(side, sizeof side, "%s-wal", files[i]);
        HL_CHECK(!exists(side));
        free(before);
        free(after);
    }
    dir_cleanup(&d);
}

HL_TEST(ledger_index_refuses_a_missing_or_empty_journal) {
    NEED_BIN();
    dir d;
    dir_init(&d);
    outcome *o = run((const char *[]){"ledger", "index", "--journal", d.journal, "--db", d.db, NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    HL_CHECK(strstr(o->err, d.journal) != NULL);
    HL_CHECK(!exists(d.db));
    o = run((const char *[]){"report", "--db", d.db, "--journal", d.journal, NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    HL_CHECK(!exists(d.db));
    /* garbage only: no valid line */
    write_text(d.journal, "this is not json\n{\"also\": \"not a ledger record\"}\n");
    o = run((const char *[]){"ledger", "index", "--journal", d.journal, "--db", d.db, NULL});
    HL_CHECK(o->rc != 0);
    HL_CHECK(strstr(o->err, "no valid ledger record") != NULL);
    /* empty */
    write_text(d.journal, "");
    o = run((const char *[]){"ledger", "index", "--journal", d.journal, "--db", d.db, NULL});
    HL_CHECK(o->rc != 0);
    /* one good line: indexed, and running again finds nothing new, which is fine */
    write_text(d.journal, ledger_line);
    o = run((const char *[]){"ledger", "index", "--journal", d.journal, "--db", d.db, NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    HL_CHECK(strstr(o->out, "1 lines, 1 new") != NULL);
    o = run((const char *[]){"ledger", "index", "--journal", d.journal, "--db", d.db, NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    /* a directory is not a journal */
    o = run((const char *[]){"ledger", "index", "--journal", d.path, "--db", d.db, NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    dir_cleanup(&d);
}

/* `keys`: create prints the key once, list shows its prefix and never the key, update and
 * revoke exit 0, and mistakes get their own exit status. */
HL_TEST(keys_lifecycle_and_exit_statuses) {
    NEED_BIN();
    dir d;
    dir_init(&d);
    outcome *o = run((const char *[]){"keys", "create", "--db", d.db, "--name", "alice", "--budget-day", "2", NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    char key[80];
    snprintf(key, sizeof key, "%.67s", o->out);
    HL_CHECK(strncmp(key, "hl-", 3) == 0 && strlen(key) == 67);
    o = run((const char *[]){"keys", "list", "--db", d.db, NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    HL_CHECK(strstr(o->out, "alice") != NULL);
    char prefix[12];
    snprintf(prefix, sizeof prefix, "%.11s", key);
    HL_CHECK(strstr(o->out, prefix) != NULL);
    HL_CHECK(strstr(o->out, key + 11) == NULL);
    o = run((const char *[]){"keys", "update", "--db", d.db, "--id", "1", "--cloud", "no", "--rpm", "5", NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    o = run((const char *[]){"keys", "revoke", "--db", d.db, "--id", "1", NULL});
    HL_CHECK_INT_EQ(o->rc, 0);
    o = run((const char *[]){"keys", "list", "--db", d.db, NULL});
    HL_CHECK(strstr(o->out, "revoked") != NULL);
    o = run((const char *[]){"keys", "revoke", "--db", d.db, "--id", "7", NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    o = run((const char *[]){"keys", "create", "--db", d.db, "--name", "alice", NULL});
    HL_CHECK_INT_EQ(o->rc, 1);
    HL_CHECK(strstr(o->err, "already exists") != NULL);
    o = run((const char *[]){"keys", "create", "--db", d.db, "--name", "no spaces", NULL});
    HL_CHECK_INT_EQ(o->rc, 2);
    o = run((const char *[]){"keys", "update", "--db", d.db, "--id", "1", "--cloud", "maybe", NULL});
    HL_CHECK_INT_EQ(o->rc, 2);
    dir_cleanup(&d);
}

HL_TEST_MAIN()
