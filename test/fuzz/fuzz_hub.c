/* fuzz_hub: libFuzzer target for what `hybridllm pull` reads from the Hub and the user: the
 * file list (a tree listing's JSON), the spec (OWNER/NAME[:QUANT|/FILE.gguf]) and ETag
 * headers. The input's first line is a spec, the second an ETag value, the rest a listing.
 * Properties, any broken one aborts: every listed path is safe to create under the models
 * directory and ends in .gguf; a chosen file is one of the listed; a parsed spec's parts are
 * safe; an ETag read as a SHA-256 is 64 lower-case hex digits. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl_hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n'), *etag = NULL, *json = NULL;
    if (nl) {
        *nl = '\0';
        etag = nl + 1;
        char *nl2 = strchr(etag, '\n');
        if (nl2) {
            *nl2 = '\0';
            json = nl2 + 1;
        }
    }
    char err[512];
    hl_hub_spec s;
    bool spec_ok = hl_hub_parse_spec(text, &s, err, sizeof err) == HL_OK;
    if (spec_ok && (!strchr(s.repo, '/') || (s.file[0] && !hl_hub_safe_path(s.file)))) abort();
    char sha[65];
    if (etag && hl_hub_etag_sha256(etag, sha)) {
        if (strlen(sha) != 64) abort();
        for (int i = 0; i < 64; i++)
            if (!isxdigit((unsigned char)sha[i]) || isupper((unsigned char)sha[i])) abort();
    }
    if (json) {
        hl_hub_file *v = NULL;
        size_t n = 0;
        if (hl_hub_parse_tree(json, strlen(json), &v, &n, err, sizeof err) == HL_OK) {
            for (size_t i = 0; i < n; i++) {
                size_t l = strlen(v[i].path);
                if (!hl_hub_safe_path(v[i].path) || l < 6 || strcasecmp(v[i].path + l - 5, ".gguf")) abort();
                if (v[i].sha256[0] && strlen(v[i].sha256) != 64) abort();
            }
            if (spec_ok) {
                long k = hl_hub_choose(v, n, &s, err, sizeof err);
                if (k >= (long)n || k < -1) abort();
                if (k >= 0 && s.quant[0] && !hl_hub_quant_matches(v[k].path, s.quant)) abort();
            }
            hl_hub_files_free(v, n);
        } else if (v || n) {
            abort();
        }
    }
    free(text);
    return 0;
}
