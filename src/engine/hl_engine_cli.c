/* hl_engine_cli: `hybridllm run` and `hybridllm gguf info`; see hl_engine_cli.h. Options are
 * an hl_opt table (hl_opt.h), as for every command. */
#include "hl_engine_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl_engine.h"
#include "hl_gguf.h"
#include "hl_opt.h"

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
    hl_engine_sampling s = hl_engine_sampling_default();
    hl_opt opts[] = {
        {.name = "--prompt", .letter = 'p', .kind = HL_OPT_STR, .target = &prompt},
        {.name = "--n-predict", .letter = 'n', .kind = HL_OPT_INT, .target = &n, .max = 1e9},
        {.name = "--temp", .kind = HL_OPT_FLOAT, .target = &s.temperature, .max = 1e6},
        {.name = "--top-k", .kind = HL_OPT_INT, .target = &s.top_k, .min = -1, .max = 1e9},
        {.name = "--top-p", .kind = HL_OPT_FLOAT, .target = &s.top_p, .max = 1e6},
        {.name = "--min-p", .kind = HL_OPT_FLOAT, .target = &s.min_p, .max = 1e6},
        {.name = "--repeat-penalty", .kind = HL_OPT_FLOAT, .target = &s.repeat_penalty, .max = 1e6},
        {.name = "--threads", .letter = 't', .kind = HL_OPT_INT, .target = &threads, .min = 1, .max = 256,
         .want = "an integer within 1..256"},
        {.name = "--ctx", .letter = 'c', .kind = HL_OPT_INT, .target = &ctx, .max = 1e9},
        {.name = "--seed", .letter = 's', .kind = HL_OPT_U64, .target = &seed},
    };
    hl_opt_list pos = {&model, 0, 1};
    hl_opt_cmd c = {"run", run_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], &pos, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!model || !prompt) return hl_opt_usage_error(&c, "%s", !model ? "missing MODEL.gguf" : "missing -p PROMPT");
    bool seed_set = opts[9].seen > 0; /* --seed */
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
    const char *words[2] = {NULL, NULL};
    hl_opt_list pos = {words, 0, 2};
    hl_opt_cmd c = {"gguf", gguf_usage, stdout, stderr};
    int rc = hl_opt_parse(&c, NULL, 0, &pos, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (pos.n != 2 || strcmp(words[0], "info") != 0)
        return hl_opt_usage_error(&c, "%s", pos.n ? "the subcommand is info, then MODEL.gguf" : "a subcommand is required");
    const char *path = words[1];
    hl_gguf *g;
    char err[HL_GGUF_ERR_MAX];
    if (hl_gguf_open(&g, path, err, sizeof err) != HL_OK) {
        fprintf(stderr, "hybridllm gguf: %s\n", err);
        return 1;
    }
    printf("%s: GGUF v%u, %zu bytes, alignment %u, data at %" PRIu64 "\n", path, g->version,
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
