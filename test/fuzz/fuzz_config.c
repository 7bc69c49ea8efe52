/* fuzz_config: hl_config_parse() on arbitrary bytes. Beyond memory safety (ASan/UBSan), it
 * checks the loader's promises: on error no config and one "fuzz.yaml:LINE: ..." line; on
 * success every route target names a declared backend and lookups behave. Corpus:
 * test/fuzz/corpus/config/ (replayed by the normal test run). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_config *cfg = NULL;
    char err[256];
    hl_err e = hl_config_parse("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof err);
    if (e != HL_OK) {
        if (cfg || strncmp(err, "fuzz.yaml:", 10) != 0 || strchr(err, '\n')) abort();
        return 0;
    }
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
