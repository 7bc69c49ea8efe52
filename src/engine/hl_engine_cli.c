/* hl_engine_cli: `hybridllm run` and `hybridllm gguf info`; see hl_engine_cli.h. Options are
 * a table of {name, kind, target}. */
#include "hl_engine_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl_engine.h"
#include "hl_gguf.h"

static const char run_usage[] =
    "usage: hybridllm run MODEL.gguf -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
    "                     [--min-p P] [--repeat-penalty R] [--threads T] [--ctx N] [--seed S]\n"
    "  -n N              tokens to generate (default 128; 0: until end of text)\n"
    "  --temp T          temperature; 0 is greedy (default 0.8)\n"
    "  --top-k K         (default 40)   --top-p P (default 0.95)   --min-p P (default 0.05)\n"
    "  --repeat-penalty  (default 1.0, off)\n"
    "  --threads T       matmul threads (default 1)\n"
    "  --ctx N           context size (default: the model's, at most 4096)\n"
    "  --seed S          sampling seed (default: from the clock, printed)\n";

static const char gguf_usage[] = "usage: hybridllm gguf info MODEL.gguf\n";

typedef enum { OPT_INT, OPT_FLOAT, OPT_STR, OPT_U64 } opt_kind;

typedef struct opt {
    const char *name, *alt;
    opt_kind kind;
    void *target;
} opt;

static int parse_value(const opt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (*end || end == v || errno || x < -1 || x > 1000000000) return -1;
        *(int *)o->target = (int)x;
        return 0;
    }
    case OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || end == v || errno || v[0] == '-') return -1;
        *(uint64_t *)o->target = x;
        return 0;
    }
    case OPT_FLOAT: {
        float x = strtof(v, &end);
        if (*end || end == v || errno || !(x >= 0 && x < 1e6f)) return -1;
        *(float *)o->target = x;
        return 0;
    }
    case OPT_STR: *(const char **)o->target = v; return 0;
    }
    return -1;
}

static int stream_token(void *ctx, const hl_engine_token *tk) {
    (void)ctx;
    fwrite(tk->text, 1, tk->len, stdout);
    fflush(stdout);
    return 0;
}

int hl_engine_cli_run(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL;
    int n = 128, threads = 1, ctx = 0;
    uint64_t seed = 0;
    int seed_set = 0;
    hl_engine_sampling s = hl_engine_sampling_default();
    const opt opts[] = {
        {"-p", "--prompt", OPT_STR, &prompt},
        {"-n", "--n-predict", OPT_INT, &n},
        {"--temp", NULL, OPT_FLOAT, &s.temperature},
        {"--top-k", NULL, OPT_INT, &s.top_k},
        {"--top-p", NULL, OPT_FLOAT, &s.top_p},
        {"--min-p", NULL, OPT_FLOAT, &s.min_p},
        {"--repeat-penalty", NULL, OPT_FLOAT, &s.repeat_penalty},
        {"--threads", "-t", OPT_INT, &threads},
        {"--ctx", "-c", OPT_INT, &ctx},
        {"--seed", "-s", OPT_U64, &seed},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(run_usage, stdout);
            return 0;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (model) {
                fprintf(stderr, "hybridllm run: unexpected argument '%s'\n%s", a, run_usage);
                return 2;
            }
            model = a;
            continue;
        }
        const opt *o = NULL;
        for (size_t k = 0; k < sizeof opts / sizeof *opts; k++)
            if (strcmp(a, opts[k].name) == 0 || (opts[k].alt && strcmp(a, opts[k].alt) == 0))
                o = &opts[k];
        if (!o) {
            fprintf(stderr, "hybridllm run: unknown option '%s'\n%s", a, run_usage);
            return 2;
        }
        if (i + 1 >= argc || parse_value(o, argv[i + 1]) != 0) {
            fprintf(stderr, "hybridllm run: %s needs a valid value\n%s", a, run_usage);
            return 2;
        }
        if (o->target == &seed) seed_set = 1;
        i++;
    }
    if (!model || !prompt || n < 0 || threads < 1 || threads > 256 || ctx < 0) {
        fprintf(stderr, "hybridllm run: %s\n%s",
                !model ? "missing MODEL.gguf" : !prompt ? "missing -p PROMPT" : "bad value",
                run_usage);
        return 2;
    }
    if (!seed_set) seed = (uint64_t)time(NULL);
    s.seed = seed;
    hl_engine *e;
    char err[512];
    hl_engine_params p = {.model_path = model, .n_threads = threads, .n_ctx = (uint32_t)ctx};
    if (hl_engine_open(&e, &p, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm run: %s\n", err);
        return 1;
    }
    hl_engine_request req = {.prompt = prompt, .prompt_len = strlen(prompt), .add_bos = true,
                             .max_tokens = n, .sampling = s, .on_token = stream_token};
    hl_engine_result res;
    fputs(prompt, stdout);
    fflush(stdout);
    hl_err r = hl_engine_generate(e, &req, &res);
    fputc('\n', stdout);
    fflush(stdout);
    if (r) {
        fprintf(stderr, "hybridllm run: generation failed: %s\n", hl_err_str(r));
        hl_engine_free(e);
        return 1;
    }
    static const char *const why[] = {"end of text", "token limit", "context full", "cancelled"};
    fprintf(stderr,
            "prefill: %d tokens in %.3f s (%.2f tok/s)\n"
            "decode:  %d tokens in %.3f s (%.2f tok/s)\n"
            "stop: %s; seed %" PRIu64 "; threads %d\n",
            res.n_prompt, res.prefill_s, res.prefill_s > 0 ? res.n_prompt / res.prefill_s : 0,
            res.n_gen, res.decode_s, res.decode_s > 0 ? res.n_gen / res.decode_s : 0,
            why[res.stop], seed, threads);
    hl_engine_free(e);
    return 0;
}

/* ---- gguf info -------------------------------------------------------------------------- */

static void print_str(hl_gguf_str s, size_t max) {
    putchar('"');
    for (uint64_t i = 0; i < s.n && i < max; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c < 32 || c == 127) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (s.n > max) printf("... (%" PRIu64 " bytes)", s.n);
}

static void print_kv(const hl_gguf_kv *kv) {
    printf("  %.*s: %s = ", (int)kv->key.n, kv->key.p, hl_gguf_vtype_name(kv->type));
    switch (kv->type) {
    case HL_GGUF_V_STRING: print_str(kv->str, 120); break;
    case HL_GGUF_V_FLOAT32: case HL_GGUF_V_FLOAT64: printf("%g", kv->v.f); break;
    case HL_GGUF_V_BOOL: fputs(kv->v.u ? "true" : "false", stdout); break;
    case HL_GGUF_V_INT8: case HL_GGUF_V_INT16: case HL_GGUF_V_INT32: case HL_GGUF_V_INT64:
        printf("%" PRId64, kv->v.i);
        break;
    case HL_GGUF_V_ARRAY: {
        printf("[%" PRIu64 " x %s]", kv->arr_n, hl_gguf_vtype_name(kv->arr_type));
        uint64_t show = kv->arr_n < 5 ? kv->arr_n : 5;
        if (kv->arr_type == HL_GGUF_V_STRING) {
            hl_gguf_str first[5];
            /* Walk only the first few: hl_gguf_arr_strings fills all, so copy the kv with a
             * shorter count. */
            hl_gguf_kv head = *kv;
            head.arr_n = show;
            hl_gguf_arr_strings(&head, first);
            for (uint64_t i = 0; i < show; i++) {
                putchar(' ');
                print_str(first[i], 40);
            }
        } else {
            for (uint64_t i = 0; i < show; i++) printf(" %g", hl_gguf_arr_num(kv, i));
        }
        if (kv->arr_n > show) fputs(" ...", stdout);
        break;
    }
    default: printf("%" PRIu64, kv->v.u); break;
    }
    putchar('\n');
}

int hl_engine_cli_gguf(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(gguf_usage, stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "info") != 0) {
        fputs(gguf_usage, stderr);
        return 2;
    }
    hl_gguf *g;
    char err[HL_GGUF_ERR_MAX];
    if (hl_gguf_open(&g, argv[2], err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm gguf: %s\n", err);
        return 1;
    }
    printf("%s: GGUF v%u, %zu bytes, alignment %u, data at %" PRIu64 "\n", argv[2], g->version,
           g->size, g->alignment, g->data_offset);
    printf("metadata (%" PRIu64 "):\n", g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) print_kv(&g->kv[i]);
    printf("tensors (%" PRIu64 "):\n", g->n_tensors);
    uint64_t total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hl_gguf_tensor *t = &g->tensors[i];
        char shape[96];
        int o = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
        printf("  %-32.*s %-5s [%s] offset %" PRIu64 ", %" PRIu64 " bytes\n", (int)t->name.n,
               t->name.p, hl_gguf_type_name(t->type), shape, t->offset, t->nbytes);
        total += t->nbytes;
    }
    printf("tensor data: %" PRIu64 " bytes (%.2f MiB)\n", total, total / 1048576.0);
    hl_gguf_free(g);
    return 0;
}
