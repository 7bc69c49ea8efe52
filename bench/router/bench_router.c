/* bench_router: what the routing decision costs per request, measured in isolation.
 *
 * Three figures, each the median of 7 runs of N iterations:
 *   route      hl_router_route() alone on a policy of 8 rules (privacy, aliases, tenant,
 *              prompt size, latency budget, task types, a weighted split, escalation)
 *   infer      task-type inference on a typical prompt (no declared type)
 *   pii        the PII detector over a typical 2 KiB chat request
 *   parse      the OpenAI request body into the internal model (jansson)
 *   full       parse an OpenAI request body + PII scan + inference + route: the gateway's
 *              whole decision before an upstream call
 * and the PII scan's cost per KiB on 256 KiB of ordinary text (English prose, a chat with
 * PII, a mail thread with quoted replies and Unicode spaces, a .env file, code) and on
 * adversarial patterns built to make a scanner re-read (spaced digit pairs, digits broken by
 * no-break spaces or line wraps, '@' and ':' storms, secret-looking names, unterminated key
 * blocks), the median and the worst; the targets are 10 us/KiB ordinary, 50 worst.
 * Usage: bench_router [iterations] (default 200000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_openai.h"
#include "hl_pii.h"
#include "hl_router.h"
#include "hl_task.h"

static const char policy[] =
    "backends:\n"
    "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, api_key_env: HOME, model: claude-3-5-sonnet-20241022, context_window: 200000}\n"
    "  - {name: gpt, kind: openai, location: cloud, base_url: http://127.0.0.1:1/v1, api_key_env: HOME, model: gpt-4o}\n"
    "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b, context_window: 8000}\n"
    "routes:\n"
    "  - {name: privacy, when: {sensitive: true}, to: [local]}\n"
    "  - {name: fast, when: {model: fast}, to: [local]}\n"
    "  - {name: acme, when: {tenant: acme}, to: [claude]}\n"
    "  - {name: long, when: {min_prompt_tokens: 6000}, to: [claude]}\n"
    "  - {name: urgent, when: {latency_budget_below_ms: 1000}, to: [claude, local]}\n"
    "  - {name: complex, when: {task_type: [code_generation, analysis, reasoning]}, to: [claude, gpt]}\n"
    "  - {name: trial, when: {task_type: summarization}, split: [{to: local, weight: 10}, {to: claude, weight: 90}]}\n"
    "  - {name: default, to: [local, claude], escalate: {below: 0.7, to: claude}}\n";

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(void *ctx, long i);

static double median_ns(bench_fn fn, void *ctx, long n) {
    double runs[7];
    for (int r = 0; r < 7; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) fn(ctx, i);
        runs[r] = (now_ns() - t0) / (double)n;
    }
    qsort(runs, 7, sizeof runs[0], cmp);
    return runs[3];
}

typedef struct ctx {
    hl_config *cfg;
    hl_backends bs;
    hl_pii_detector *pii;
    hl_chat_request req;
    char body[4096];
    size_t body_len;
    volatile long sink;
} ctx;

static void bench_route(void *p, long i) {
    ctx *c = p;
    static const char *const tasks[] = {"classification", "code_generation", "summarization", NULL};
    char id[32];
    snprintf(id, sizeof id, "req_%ld", i);
    hl_route_input in = {.model = "auto", .task_type = tasks[i & 3], .sticky_key = id, .prompt_tokens = 400,
                         .max_tokens = 256, .now_ms = 1};
    hl_route r;
    hl_api_error e;
    c->sink += hl_router_route(c->cfg, &c->bs, &in, &r, &e, NULL) == HL_OK ? r.n : -1;
}

static void bench_infer(void *p, long i) {
    ctx *c = p;
    (void)i;
    c->sink += hl_task_infer(&c->req) != NULL;
}

static void bench_pii(void *p, long i) {
    ctx *c = p;
    (void)i;
    hl_pii_report rep = {0};
    for (size_t m = 0; m < c->req.n_messages; m++)
        hl_pii_scan(c->pii, c->req.messages[m].text, strlen(c->req.messages[m].text), &rep);
    c->sink += rep.total;
}

static void bench_parse(void *p, long i) {
    ctx *c = p;
    (void)i;
    hl_chat_request req;
    hl_api_error e;
    hl_chat_request_init(&req);
    c->sink += hl_openai_parse_request(c->body, c->body_len, &req, &e);
    hl_chat_request_release(&req);
}

static void bench_full(void *p, long i) {
    ctx *c = p;
    hl_chat_request req;
    hl_api_error e;
    hl_chat_request_init(&req);
    if (hl_openai_parse_request(c->body, c->body_len, &req, &e) == HL_OK) {
        hl_pii_report rep = {0};
        for (size_t m = 0; m < req.n_messages; m++) hl_pii_scan(c->pii, req.messages[m].text, strlen(req.messages[m].text), &rep);
        char id[32];
        snprintf(id, sizeof id, "req_%ld", i);
        hl_route_input in = {.model = req.model, .inferred_task = hl_task_infer(&req), .sensitive = rep.total > 0,
                             .sticky_key = id, .prompt_tokens = hl_tokens_estimate(req.text_bytes), .now_ms = 1};
        hl_route r;
        c->sink += hl_router_route(c->cfg, &c->bs, &in, &r, &e, NULL) == HL_OK ? r.n : -1;
    }
    hl_chat_request_release(&req);
}

typedef struct kib_ctx {
    const char *text;
    size_t len;
    volatile long sink;
} kib_ctx;

static void bench_kib(void *p, long i) {
    kib_ctx *c = p;
    (void)i;
    hl_pii_report rep = {0};
    hl_pii_scan(NULL, c->text, c->len, &rep);
    c->sink += rep.total;
}

/* 256 KiB of unit repeated; caller frees. */
static char *repeat(const char *unit, size_t *len) {
    size_t ul = strlen(unit), n = 256 * 1024 / ul + 1;
    char *t = malloc(n * ul + 1);
    if (!t) exit(1);
    for (size_t i = 0; i < n; i++) memcpy(t + i * ul, unit, ul);
    t[n * ul] = '\0';
    *len = n * ul;
    return t;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_per_kib(void) {
    static const struct { const char *name, *unit; } ordinary[] = {
        {"prose", "The quarterly report shows revenue growth in three regions, with churn down. "},
        {"chat with PII", "Hi, I'm Ana (ana.lima@example.com, +44 20 7946 0958); my card 4111 1111 1111 1111 "
                          "was charged twice on 2024-03-05, order 123456789. Can you help? "},
        {"mail thread", "> On Mon, 4 Mar 2024 at 10:12, Bob <bob@example.org> wrote:\n> Call me on "
                        "020\xc2\xa0" "7946\xc2\xa0" "0958" " or\n> 0612\n> 345678 tomorrow \xe2\x80\x94 thanks!\n"},
        {".env file", "NODE_ENV=production\nPORT=3000\nDB_PASSWORD=Tr0ub4dor&3\nOPENAI_API_KEY=sk-proj-"
                      "A1b2C3d4E5f6G7h8I9j0K1l2M3n4\nLOG_LEVEL=info\n"},
        {"code", "for (int i = 0; i < n; i++) { sum += v[i] * 0x1F; if (x == 10.5) return a[i:j]; }\n"},
    };
    static const struct { const char *name, *unit; } adversarial[] = {
        {"spaced digit pairs", "12 34 "},
        {"spaced single digits", "1 "},
        {"spaced zero pairs", "01 "},
        {"spaced 4-digit groups", "4111 "},
        {"spaced 3-digit groups", "415 "},
        {"phone word + digits", "tel 12 34 "},
        {"digits + NBSP", "12\xc2\xa0"},
        {"digits + wraps", "12\n> "},
        {"long digit run", "1234567890"},
        {"dashed digits", "0-"},
        {"dotted octets", "1.2."},
        {"@ storm", "a@"},
        {"dotted @", "a.b@c."},
        {"colon storm", "a:"},
        {"hex colons", "ab:"},
        {"secret names", "PASSWORD="},
        {"url userinfo", "s://a:b"},
        {"begin key", "-----BEGIN RSA PRIVATE KEY-----"},
        {"sk- prefixes", "sk-"},
        {"jwt heads", "eyJabcdefghijk."},
        {"full-width digits", "\xef\xbc\x91\xef\xbc\x92 "},
        {"zero-width digits", "1\xe2\x80\x8b"},
        {"uppercase words", "AB12 "},
    };
    double ord[8], adv[40];
    size_t no = sizeof ordinary / sizeof ordinary[0], na = sizeof adversarial / sizeof adversarial[0];
    printf("PII scan per KiB (256 KiB texts, median of 7 runs)\n");
    for (size_t k = 0; k < no; k++) {
        kib_ctx c = {0};
        char *t = repeat(ordinary[k].unit, &c.len);
        c.text = t;
        ord[k] = median_ns(bench_kib, &c, 5) / 1000.0 / ((double)c.len / 1024.0);
        printf("  ordinary     %-22s %7.2f us/KiB\n", ordinary[k].name, ord[k]);
        free(t);
    }
    double worst = 0;
    const char *worst_name = "";
    for (size_t k = 0; k < na; k++) {
        kib_ctx c = {0};
        char *t = repeat(adversarial[k].unit, &c.len);
        c.text = t;
        adv[k] = median_ns(bench_kib, &c, 3) / 1000.0 / ((double)c.len / 1024.0);
        printf("  adversarial  %-22s %7.2f us/KiB\n", adversarial[k].name, adv[k]);
        if (adv[k] > worst) {
            worst = adv[k];
            worst_name = adversarial[k].name;
        }
        free(t);
    }
    qsort(ord, no, sizeof ord[0], cmp_d);
    printf("  ordinary median %.2f us/KiB (target <= 10); adversarial worst %.2f us/KiB, %s "
           "(target <= 50)\n",
           ord[no / 2], worst, worst_name);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_router [iterations]\n");
        return 2;
    }
    ctx c = {0};
    char err[512];
    if (hl_config_parse("bench.yaml", policy, sizeof policy - 1, &c.cfg, err, sizeof err) ||
        hl_backends_init(&c.bs, c.cfg, false) || hl_pii_detector_new(&c.pii, NULL, NULL, 0, err, sizeof err)) {
        fprintf(stderr, "bench_router: setup failed: %s\n", err);
        return 1;
    }
    /* A typical request: a system prompt and ~1.7 KiB of user text, no PII. */
    char user[1800];
    const char *para = "The quarterly report shows revenue growth in three regions, with churn down and "
                       "support tickets resolved faster than last year. Summarize the main points. ";
    user[0] = '\0';
    while (strlen(user) + strlen(para) < sizeof user) strcat(user, para);
    c.body_len = (size_t)snprintf(c.body, sizeof c.body,
                                  "{\"model\":\"auto\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a "
                                  "careful analyst.\"},{\"role\":\"user\",\"content\":\"%s\"}]}", user);
    hl_api_error e;
    hl_chat_request_init(&c.req);
    if (hl_openai_parse_request(c.body, c.body_len, &c.req, &e) != HL_OK) return 1;
    printf("routing decision cost (median of 7 runs x %ld iterations; request body %zu bytes)\n", n, c.body_len);
    printf("  route (8 rules)              %8.0f ns\n", median_ns(bench_route, &c, n));
    printf("  task inference               %8.0f ns\n", median_ns(bench_infer, &c, n / 10 + 1));
    printf("  PII scan (%5zu bytes)        %8.0f ns\n", c.req.text_bytes, median_ns(bench_pii, &c, n / 10 + 1));
    printf("  parse the OpenAI body        %8.0f ns\n", median_ns(bench_parse, &c, n / 10 + 1));
    printf("  full: parse+PII+infer+route  %8.0f ns\n", median_ns(bench_full, &c, n / 10 + 1));
    bench_per_kib();
    hl_chat_request_release(&c.req);
    hl_pii_detector_free(c.pii);
    hl_backends_release(&c.bs);
    hl_config_free(c.cfg);
    return c.sink == 42 ? 3 : 0; /* keep the results alive */
}
