/* Where engine tests find the shared test models (../shared/models, see its README).
 * $HL_MODELS_DIR wins; else $HL_SRC_DIR/../shared/models (ctest sets HL_SRC_DIR to the repo
 * root); else ../shared/models relative to the working directory. A test whose model is
 * absent prints "SKIP: models not found at ..." and passes. */
#ifndef HL_TEST_MODELS_DIR_H
#define HL_TEST_MODELS_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes dir/rel into out; returns 1 when that file exists, else prints the SKIP line. */
static inline int hl_test_model_path(char *out, size_t n, const char *rel) {
    const char *env = getenv("HL_MODELS_DIR");
    const char *src = getenv("HL_SRC_DIR");
    char dir[2048];
    if (env && *env) snprintf(dir, sizeof dir, "%s", env);
    else if (src && *src) snprintf(dir, sizeof dir, "%s/../shared/models", src);
    else snprintf(dir, sizeof dir, "../shared/models");
    snprintf(out, n, "%s/%s", dir, rel);
    if (access(out, R_OK) == 0) return 1;
    printf("SKIP: models not found at %s\n", out);
    return 0;
}

#endif
