/* hl_cli: the table of commands and what every command shares: dispatch, `help`, `--help`,
 * `--version` (see hl_cli.h). A command's own usage lives beside its code; `help CMD` runs
 * `CMD --help`, so there is one usage text per command. */
#include "hl_cli.h"

#include <stdio.h>
#include <string.h>
#include "hl_cli_calibrate.h"
#include "hl_cli_keys.h"
#include "hl_cli_pull.h"
#include "hl_cli_report.h"
#include "hl_config.h"
#include "hl_cli_store.h"
#include "hl_engine_cli.h"
#include "hl_opt.h"

typedef struct command {
    const char *name;
    const char *synopsis; /* the line under the name in `hybridllm help` */
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int cmd_config(int argc, char **argv);

static const command commands[] = {
    {"serve", "serve --config FILE [--log-level debug|info|warn|error]",
     "run the gateway (OpenAI- and Anthropic-compatible HTTP API)", hl_cli_serve},
    {"route", "route --explain --config FILE [--format openai|anthropic] [--header 'Name: value']...",
     "read a request body on stdin and print the routing decision and every rule that matched\n"
     "or not; calls no backend", hl_cli_route},
    {"ledger", "ledger index --journal FILE --db FILE|URI",
     "index a JSONL ledger into SQLite (a file) or PostgreSQL (postgresql://...); idempotent,\n"
     "resumable", hl_cli_store_ledger},
    {"report", "report --db FILE|URI [--journal FILE] [--from ISO] [--to ISO] [--group-by KEY,...] ...",
     "requests, tokens, cost, latency, errors, escalations and savings against all-cloud,\n"
     "grouped by up to 4 keys and filtered, from the store's rollups (--exact: the rows)", hl_cli_store_report},
    {"keys", "keys create|list|update|revoke --db FILE|URI ...",
     "issue, list, change and revoke client keys in the store (gateways pick changes up\n"
     "within one index interval)", hl_cli_keys},
    {"advise", "advise [--tokens-per-month N | --ledger FILE] [--privacy required|no] ...",
     "cloud or local: the brief's decision matrix and break-even arithmetic, from flags or a\n"
     "measured ledger", hl_cli_advise},
    {"simulate", "simulate [--policy FILE]... [--ledger FILE] [--seed N] [--json] ...",
     "replay a workload through the router, policies side by side", hl_cli_simulate},
    {"eval", "eval DATASET.jsonl --backends A[,B...] --config FILE [--reference B] [--format table|json|csv] ...",
     "run a JSONL dataset through backends: accuracy with a 95% interval, latency, tokens and\n"
     "cost per backend, by task type and prompt length; ledger lines for `report`", hl_cli_eval},
    {"calibrate", "calibrate [--target 0.95] [--ledger FILE] [--task-type T] [--signal auto|...] ...",
     "escalation thresholds per task type from measured agreement: the curve, the choice,\n"
     "which confidence signal separates best; --write-config writes them as routes", hl_cli_calibrate},
    {"run", "run MODEL.gguf -p PROMPT [-n N] [--temp T] [--threads T] [--seed S] ...",
     "generate with the embedded CPU engine; prints tokens/s", hl_engine_cli_run},
    {"pull", "pull OWNER/NAME[:QUANT|/FILE.gguf] [--dir DIR]",
     "download a GGUF model from the Hugging Face Hub (HF_TOKEN, HF_ENDPOINT) into the models\n"
     "directory; resumes, verifies its SHA-256", hl_cli_pull},
    {"models", "models [--dir DIR] [--json]", "list the pulled GGUF models: size, quantization, architecture",
     hl_cli_models},
    {"gguf", "gguf info MODEL.gguf", "print a GGUF file's metadata and tensors", hl_engine_cli_gguf},
    {"config", "config keys | config check FILE",
     "print every config key: its type, bounds, default and help; or check a config file", cmd_config},
    {"version", "version", "print the version (also: hybridllm --version)", cmd_version},
    {"help", "help [COMMAND]", "print this help, or a command's usage (also: COMMAND --help)", cmd_help},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* The list of commands, each with its synopsis and its summary indented under it. */
static void print_overview(FILE *f) {
    fputs("usage: hybridllm <command> [options]\n"
          "       hybridllm --help | --version\n"
          "\n"
          "commands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %s\n", commands[i].synopsis);
        for (const char *s = commands[i].summary; *s;) {
            size_t n = strcspn(s, "\n");
            fprintf(f, "      %.*s\n", (int)n, s);
            s += n + (s[n] == '\n');
        }
    }
    fputs("\n`hybridllm help COMMAND` or `hybridllm COMMAND --help` prints a command's options.\n", f);
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

static const char version_usage[] = "usage: hybridllm version\n  prints \"hybridllm " HL_VERSION "\"\n";

static int cmd_version(int argc, char **argv) {
    hl_opt_cmd c = {"version", version_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, NULL, 0, NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    printf("hybridllm %s\n", HL_VERSION);
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char config_usage[] = "usage: hybridllm config keys | config check FILE\n"
                                   "  keys: every key of the YAML config, with its type, bounds, default and\n"
                                   "  help, from the loader's own tables\n"
                                   "  check: loads FILE as `serve` would (probes nothing); prints the first\n"
                                   "  error (file, line and key) and exits 1, or \"FILE: ok\"\n";

static int cmd_config(int argc, char **argv) {
    hl_opt_cmd c = {"config", config_usage, stdout, stderr};
    const char *pos[2];
    hl_opt_list words = {pos, 0, 2};
    int rc = hl_opt_parse(&c, NULL, 0, &words, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (words.n >= 1 && !strcmp(pos[0], "check")) {
        if (words.n != 2) return hl_opt_usage_error(&c, "config check wants the FILE");
        char err[512];
        hl_config *cfg = NULL;
        if (hl_config_load(pos[1], &cfg, err, sizeof err) != HL_OK) {
            fprintf(stderr, "hybridllm config: %s\n", err);
            return 1;
        }
        hl_config_free(cfg);
        printf("%s: ok\n", pos[1]);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (words.n != 1 || strcmp(pos[0], "keys") != 0)
        return words.n ? hl_opt_usage_error(&c, "unknown subcommand '%s'", pos[0])
                       : hl_opt_usage_error(&c, "a subcommand is required");
    hl_config_print_reference(stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

static const char help_usage[] = "usage: hybridllm help [COMMAND [SUBCOMMAND]]\n"
                                 "  the list of commands, or a command's usage and options\n";

/* help CMD [SUB] is CMD [SUB] --help. */
static int cmd_help(int argc, char **argv) {
    hl_opt_cmd c = {"help", help_usage, stdout, stderr};
    const char *pos[2];
    hl_opt_list words = {pos, 0, 2};
    int rc = hl_opt_parse(&c, NULL, 0, &words, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!words.n) {
        print_overview(stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    const command *cmd = find_command(pos[0]);
    if (!cmd) return hl_opt_usage_error(&c, "unknown command '%s'", pos[0]);
    char *args[4] = {(char *)pos[0], NULL, NULL, NULL};
    int n = 1;
    if (words.n > 1) args[n++] = (char *)pos[1];
    args[n++] = "--help";
    return cmd->run(n, args);
}

int hl_cli_main(int argc, char **argv) {
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *a = argv[1];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return cmd_help(1, argv + 1);
    if (!strcmp(a, "--version") || !strcmp(a, "-V")) return cmd_version(1, argv + 1);
    const command *cmd = find_command(a);
    if (!cmd) {
        fprintf(stderr, "hybridllm: unknown %s '%s'\n\n", a[0] == '-' ? "option" : "command", a);
        print_overview(stderr);
        return 2;
    }
    return cmd->run(argc - 1, argv + 1);
}
