/* hl_cli_pull: `hybridllm pull REPO[:QUANT|/FILE.gguf]` (a GGUF file from the Hugging Face Hub
 * into the models directory, hl_hub.h) and `hybridllm models` (what is there, hl_models.h):
 * one command to a local model that a builtin backend serves. */
#include "hl_cli_pull.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "hl_hub.h"
#include "hl_models.h"
#include "hl_opt.h"

static const char pull_usage[] =
    "usage: hybridllm pull OWNER/NAME[:QUANT | /FILE.gguf] [--dir DIR] [--quiet]\n"
    "  Downloads a GGUF file from the Hugging Face Hub into the models directory, where\n"
    "  `hybridllm models` lists it and a builtin backend with model_path \"pulled:\" serves it.\n"
    "    OWNER/NAME             the repository's only .gguf file, or its Q4_K_M one\n"
    "    OWNER/NAME:Q8_0        the file whose name has that quantization (any case)\n"
    "    OWNER/NAME/FILE.gguf   that file\n"
    "  An interrupted download resumes (run it again); the file's SHA-256 is checked against\n"
    "  the one the Hub publishes.\n"
    "  --dir DIR    the models directory (default: $HYBRIDLLM_MODELS_DIR, else\n"
    "               $XDG_CACHE_HOME/hybridllm/models, else ~/.cache/hybridllm/models)\n"
    "  --quiet      no progress bar or notes (the bar is drawn only on a terminal)\n"
    "  environment: HF_TOKEN (gated or private repositories), HF_ENDPOINT (a mirror; default\n"
    "  https://huggingface.co)\n"
    "  prints the file's path on stdout; exit 1 when the pull fails\n";

static const char models_usage[] =
    "usage: hybridllm models [--dir DIR] [--json]\n"
    "  Lists the GGUF files in the models directory: name, size, quantization and\n"
    "  architecture (from each file's GGUF header).\n"
    "  --dir DIR    the models directory (default as for `hybridllm pull`)\n"
    "  --json       one JSON array of {name, path, size, quantization, architecture, modified}\n";

int hl_cli_pull(int argc, char **argv) {
    const char *dir_opt = NULL;
    bool quiet = false;
    hl_opt opts[] = {
        {.name = "--dir", .kind = HL_OPT_STR, .target = &dir_opt},
        {.name = "--quiet", .letter = 'q', .kind = HL_OPT_FLAG, .target = &quiet},
    };
    const char *pos[2];
    hl_opt_list words = {pos, 0, 2};
    hl_opt_cmd c = {"pull", pull_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], &words, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (words.n != 1) return hl_opt_usage_error(&c, words.n ? "one repository at a time" : "the repository is required");
    char err[2048];
    hl_hub_spec spec;
    if (hl_hub_parse_spec(pos[0], &spec, err, sizeof err) != HL_OK) return hl_opt_usage_error(&c, "%s", err);
    char dir[4096];
    if (hl_models_dir(dir_opt, dir, sizeof dir) != HL_OK)
        return hl_opt_usage_error(&c, "no models directory: give --dir, or set HYBRIDLLM_MODELS_DIR or HOME");
    const char *endpoint = getenv("HF_ENDPOINT");
    char ep[1024];
    snprintf(ep, sizeof ep, "%s", endpoint && *endpoint ? endpoint : "https://huggingface.co");
    for (size_t n = strlen(ep); n && ep[n - 1] == '/';) ep[--n] = '\0';
    if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
        return hl_opt_usage_error(&c, "HF_ENDPOINT must be an http:// or https:// URL");
    const char *token = getenv("HF_TOKEN");
    if (!token || !*token) token = getenv("HUGGING_FACE_HUB_TOKEN");
    hl_hub_opts o = {
        .endpoint = ep, .token = token, .dir = dir,
        .progress = !quiet && isatty(STDERR_FILENO), .out = quiet ? NULL : stderr,
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char path[4600];
    bool already = false;
    hl_err e = hl_hub_pull(&o, &spec, path, sizeof path, &already, err, sizeof err);
    if (e != HL_OK) {
        fprintf(stderr, "hybridllm pull: %s\n", err);
        return 1;
    }
    if (already && !quiet) fprintf(stderr, "already pulled: %s\n", path);
    printf("%s\n", path);
    return fflush(stdout) == 0 ? 0 : 1;
}

static void print_json(const hl_model_entry *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char when[32];
        time_t t = (time_t)v[i].mtime;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "name", v[i].name, "path", v[i].path,
                                           "size", (json_int_t)v[i].size, "quantization", v[i].quant,
                                           "architecture", v[i].arch, "modified", when));
    }
    char *s = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
    if (s) puts(s);
    free(s);
    json_decref(a);
}

int hl_cli_models(int argc, char **argv) {
    const char *dir_opt = NULL;
    bool as_json = false;
    hl_opt opts[] = {
        {.name = "--dir", .kind = HL_OPT_STR, .target = &dir_opt},
        {.name = "--json", .kind = HL_OPT_FLAG, .target = &as_json},
    };
    hl_opt_cmd c = {"models", models_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    char dir[4096];
    if (hl_models_dir(dir_opt, dir, sizeof dir) != HL_OK)
        return hl_opt_usage_error(&c, "no models directory: give --dir, or set HYBRIDLLM_MODELS_DIR or HOME");
    hl_model_entry *v = NULL;
    size_t n = 0;
    if (hl_models_list(dir, 1, &v, &n) != HL_OK) {
        fprintf(stderr, "hybridllm models: cannot read %s: %m\n", dir);
        return 1;
    }
    if (as_json) {
        print_json(v, n);
    } else if (!n) {
        printf("no models in %s: `hybridllm pull OWNER/NAME:QUANT` downloads one\n", dir);
    } else {
        size_t w = 4;
        for (size_t i = 0; i < n; i++)
            if (strlen(v[i].name) > w) w = strlen(v[i].name);
        printf("%-*s  %10s  %-8s  %s\n", (int)w, "NAME", "SIZE", "QUANT", "ARCH");
        for (size_t i = 0; i < n; i++) {
            double mib = (double)v[i].size / (1024.0 * 1024.0);
            char size[32];
            if (mib >= 1024) snprintf(size, sizeof size, "%.2f GiB", mib / 1024);
            else snprintf(size, sizeof size, "%.1f MiB", mib);
            printf("%-*s  %10s  %-8s  %s\n", (int)w, v[i].name, size, v[i].quant, v[i].arch);
        }
        printf("(in %s)\n", dir);
    }
    hl_models_free(v, n);
    return fflush(stdout) == 0 ? 0 : 1;
}
