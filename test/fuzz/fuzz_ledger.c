/* Fuzz target: the two readers of the JSONL ledger: the advisor's forward scanner and the
 * budgets' backward replay. The bytes are written to an in-memory file first (both read
 * files by path). Must never crash, hang, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include "hl_advise.h"
#include "hl_budget.h"

static hl_err count(const hl_advise_ledger_line *line, void *ud) {
    (void)line;
    (*(size_t *)ud)++;
    return HL_OK;
}

static const char cfg_text[] =
    "backends:\n  - {name: a, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: m}\n"
    "budgets:\n  - {name: m, period: month, limit_usd: 1}\n  - {name: d, period: day, limit_usd: 1, scope: tenant}\n"
    "routes:\n  - {name: d, to: a}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("ledger", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    size_t n = 0, lines = 0, bad = 0;
    hl_advise_ledger_scan(path, count, &n, &lines, &bad, err, sizeof err);
    hl_config *cfg = NULL;
    hl_budgets *b = NULL;
    if (hl_config_parse("fuzz.yaml", cfg_text, sizeof cfg_text - 1, &cfg, err, sizeof err) == HL_OK &&
        hl_budgets_new(&b, cfg) == HL_OK) {
        hl_budgets_load_ledger(b, path, (time_t)1795608000, &lines);
        hl_budgets_free(b);
    }
    hl_config_free(cfg);
    close(fd);
    return 0;
}
