/* Fuzz target: what a shadow comparison reads from upstreams (src/gateway/hl_shadow.c): an
 * embeddings answer for both answers, and an LLM judge's one-word verdict. The first byte
 * picks which. Must never crash, leak or read out of bounds; a parsed answer has two finite
 * vectors of one length, their cosine in [0, 1]; a verdict is -1, 0 or 1. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl_compare.h"
#include "hl_shadow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        float *v = NULL;
        size_t dim = 0;
        long tokens = 0;
        if (hl_shadow_embeddings_parse(p, n, &v, &dim, &tokens) == HL_OK) {
            if (!v || dim == 0 || dim > HL_SHADOW_MAX_DIM || tokens < -1) abort();
            for (size_t i = 0; i < 2 * dim; i++)
                if (isnan(v[i])) abort();
            double c = hl_cmp_cosine(v, v + dim, dim);
            if (!(c >= 0 && c <= 1)) abort();
            free(v);
        } else if (v || dim) {
            abort();
        }
        return 0;
    }
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    int verdict = 7;
    if (hl_shadow_judge_verdict(s, &verdict) == HL_OK && verdict != -1 && verdict != 0 && verdict != 1) abort();
    free(s);
    return 0;
}
