/* Fuzz target: the one ledger reader. Each line of the input goes through
 * hl_ledger_parse_line; a line it accepts must survive the writer: format -> parse gives the
 * same record (same key, same fields, numbers as the writer rounds them) and formatting that
 * again gives the same bytes. The whole input is also read as a journal file by hl_ledger_read
 * (every line accounted for exactly once) and replayed by the budgets (which read it
 * backwards first). Aborts on a broken property; must never crash, hang, leak or read out of
 * bounds. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "hl_budget.h"
#include "hl_ledger.h"

#define REQUIRE(c)                                                                     \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fuzz_ledger: property broken: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* b is a, formatted and parsed again. */
static void check_same(const hl_ledger_entry *a, const hl_ledger_entry *b) {
    const hl_ledger_record *x = &a->rec, *y = &b->rec;
    REQUIRE(!strcmp(x->request_id, y->request_id) && x->attempt == y->attempt);
    REQUIRE(x->cloud == y->cloud);
    REQUIRE(x->usage.input_tokens == y->usage.input_tokens && x->usage.output_tokens == y->usage.output_tokens);
    REQUIRE(x->usage.cached_input_tokens == y->usage.cached_input_tokens);
    REQUIRE(x->usage.cache_write_tokens == y->usage.cache_write_tokens && x->usage.estimated == y->usage.estimated);
    REQUIRE(same_str(x->backend, y->backend) && same_str(x->model, y->model));
    REQUIRE(same_str(x->route_reason, y->route_reason) && same_str(x->status, y->status));
    REQUIRE(same_str(x->tenant, y->tenant) && same_str(x->task_type, y->task_type));
    REQUIRE(same_str(x->pii, y->pii) && same_str(x->error, y->error));
    REQUIRE(x->stream == y->stream && x->task_inferred == y->task_inferred && x->sensitive == y->sensitive);
    REQUIRE(x->http_status == y->http_status && x->cost_known == y->cost_known);
    REQUIRE((x->ttft_ms < 0) == (y->ttft_ms < 0) && (x->confidence < 0) == (y->confidence < 0));
    /* the writer keeps milliseconds */
    REQUIRE(llabs(a->ts_us - b->ts_us) <= 500);
}

static void round_trip(const char *line, size_t n) {
    hl_ledger_entry e1, e2, e3;
    char why[160];
    if (hl_ledger_parse_line(line, n, &e1, why, sizeof why) != HL_OK) {
        REQUIRE(why[0] != '\0');
        return;
    }
    hl_buf l2, l3;
    hl_buf_init(&l2, 0);
    hl_buf_init(&l3, 0);
    REQUIRE(hl_ledger_format(&e1.rec, &l2) == HL_OK);
    REQUIRE(hl_ledger_parse_line(l2.data, l2.len - 1, &e2, why, sizeof why) == HL_OK);
    check_same(&e1, &e2);
    REQUIRE(!e2.id_derived);
    REQUIRE(hl_ledger_format(&e2.rec, &l3) == HL_OK);
    REQUIRE(l2.len == l3.len && !memcmp(l2.data, l3.data, l2.len));
    REQUIRE(hl_ledger_parse_line(l3.data, l3.len - 1, &e3, why, sizeof why) == HL_OK);
    REQUIRE(e3.ts_ms == e2.ts_ms);
    long long ms;
    REQUIRE(hl_ledger_line_time(l2.data, l2.len - 1, &ms) == HL_OK && ms == e2.ts_ms);
    hl_ledger_entry_release(&e1);
    hl_ledger_entry_release(&e2);
    hl_ledger_entry_release(&e3);
    hl_buf_release(&l2);
    hl_buf_release(&l3);
}

static hl_err count(void *ctx, const hl_ledger_entry *e, size_t line_no) {
    (void)e;
    (void)line_no;
    (*(size_t *)ctx)++;
    return HL_OK;
}

static const char cfg_text[] =
    "backends:\n  - {name: a, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: m}\n"
    "budgets:\n  - {name: m, period: month, limit_usd: 1}\n  - {name: d, period: day, limit_usd: 1, scope: tenant}\n"
    "routes:\n  - {name: d, to: a}\n";

static void as_journal(const uint8_t *data, size_t size) {
    int fd = memfd_create("ledger", 0);
    if (fd < 0) return;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    char path[64], err[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    size_t seen = 0;
    hl_ledger_read_stats st;
    REQUIRE(hl_ledger_read(path, 0, count, &seen, &st, err, sizeof err) == HL_OK);
    REQUIRE(seen == st.records);
    REQUIRE(st.lines == st.blank + st.records + st.malformed + st.duplicates + st.conflicts);
    hl_config *cfg = NULL;
    hl_budgets *b = NULL;
    size_t lines;
    if (hl_config_parse("fuzz.yaml", cfg_text, sizeof cfg_text - 1, &cfg, err, sizeof err) == HL_OK &&
        hl_budgets_new(&b, cfg) == HL_OK) {
        hl_budgets_load_ledger(b, path, (time_t)1795608000, &lines);
        hl_budgets_free(b);
    }
    hl_config_free(cfg);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        round_trip(p, n);
        p += n + 1;
    }
    as_journal(data, size);
    return 0;
}
