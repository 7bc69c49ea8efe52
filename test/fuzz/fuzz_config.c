/* fuzz_config: hl_config_parse() on arbitrary bytes. Beyond memory safety (ASan/UBSan), it
 * checks the loader's promises: on error no config and one "fuzz.yaml:LINE: ..." line; on
 * success every route target names a declared backend and lookups behave. Loading is a
 * function of the bytes: a second parse gives the same error, or a config with the same
 * backends, routes and prices. Corpus: test/fuzz/corpus/config/ (replayed by the normal test
 * run). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_same(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* The two loads agree on what the harness can name: backends, routes, prices. */
static void check_same(const hl_config *a, const hl_config *b) {
    if (a->n_backends != b->n_backends || a->n_routes != b->n_routes || a->n_prices != b->n_prices)
        abort();
    for (size_t i = 0; i < a->n_backends; i++)
        if (!str_same(a->backends[i].name, b->backends[i].name) ||
            !str_same(a->backends[i].model, b->backends[i].model) ||
            a->backends[i].n_base_urls != b->backends[i].n_base_urls)
            abort();
    for (size_t i = 0; i < a->n_routes; i++) {
        if (a->routes[i].n_to != b->routes[i].n_to) abort();
        for (size_t j = 0; j < a->routes[i].n_to; j++)
            if (!str_same(a->routes[i].to[j], b->routes[i].to[j])) abort();
    }
    for (size_t i = 0; i < a->n_prices; i++)
        if (!str_same(a->prices[i].model, b->prices[i].model)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_config *cfg = NULL, *cfg2 = NULL;
    char err[256], err2[256];
    hl_err e = hl_config_parse("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof err);
    hl_err e2 = hl_config_parse("fuzz.yaml", (const char *)data, size, &cfg2, err2, sizeof err2);
    if (e != e2) abort();
    if (e != HL_OK) {
        if (cfg || strncmp(err, "fuzz.yaml:", 10) != 0 || strchr(err, '\n')) abort();
        if (cfg2 || strcmp(err, err2) != 0) abort();
        return 0;
    }
    check_same(cfg, cfg2);
    hl_config_free(cfg2);
    if (!cfg || cfg->n_backends == 0 || cfg->n_routes == 0) abort();
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const hl_backend_cfg *b = &cfg->backends[i];
        if (hl_config_backend(cfg, b->name) != b || b->n_base_urls == 0 || !b->model) abort();
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        for (size_t j = 0; j < cfg->routes[i].n_to; j++)
            if (!hl_config_backend(cfg, cfg->routes[i].to[j])) abort();
    for (size_t i = 0; i < cfg->n_prices; i++)
        if (hl_config_price(cfg, cfg->prices[i].model) != &cfg->prices[i]) abort();
    hl_config_price(cfg, "gpt-4o-2024-08-06");
    hl_config_free(cfg);
    return 0;
}
