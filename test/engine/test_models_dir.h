/* Where engine tests find the shared test models (../shared/models, see its README).
 * $HL_MODELS_DIR wins; else $HL_SRC_DIR/../shared/models (ctest sets HL_SRC_DIR to the repo
 * root); else ../shared/models relative to the working directory. A test whose model is
 * absent is skipped (exit 77, reported by ctest as skipped), or fails when
 * HL_REQUIRE_MODELS=1 (as scripts/test.sh sets), so that a run without the models never
 * reads as passed. */
#ifndef HL_TEST_MODELS_DIR_H
#define HL_TEST_MODELS_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl_test.h"

/* Writes dir/rel into out; returns 1 when that file exists, else marks the running test
 * skipped (or failed, under HL_REQUIRE_MODELS=1) and returns 0: the caller returns. */
static inline int hl_test_model_path(char *out, size_t n, const char *rel) {
    const char *env = getenv("HL_MODELS_DIR");
    const char *src = getenv("HL_SRC_DIR");
    const char *req = getenv("HL_REQUIRE_MODELS");
    char dir[2048];
    if (env && *env) snprintf(dir, sizeof dir, "%s", env);
    else if (src && *src) snprintf(dir, sizeof dir, "%s/../shared/models", src);
    else snprintf(dir, sizeof dir, "../shared/models");
    snprintf(out, n, "%s/%s", dir, rel);
    if (access(out, R_OK) == 0) return 1;
    if (req && strcmp(req, "1") == 0) HL_FAIL_("model not found at %s (HL_REQUIRE_MODELS=1)", out);
    else HL_SKIP_MARK("model not found at %s", out);
    return 0;
}

#endif
