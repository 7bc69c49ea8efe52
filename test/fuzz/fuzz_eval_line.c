/* Fuzz target: the eval dataset's line parser (hl_eval_item_parse), each line of the input
 * on its own, then the whole input as a dataset file through the loader (with and without
 * skip_bad). A refused line must say why; an accepted one must hold a request with at least
 * one message, an id, and an expected answer whenever it says it has one. Must never crash,
 * hang, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "hl_eval_data.h"

#define REQUIRE(c)                                                                          \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "fuzz_eval_line: property broken: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static void one_line(const char *p, size_t n, size_t line_no) {
    hl_eval_item it;
    char why[256];
    hl_err e = hl_eval_item_parse(p, n, line_no, &it, why, sizeof why);
    if (e != HL_OK) {
        REQUIRE(why[0] != '\0');
        return;
    }
    REQUIRE(it.req.n_messages >= 1 && it.id && it.id[0] && it.line == line_no);
    REQUIRE(!it.has_expected || it.expected.text);
    REQUIRE(!it.expected_json || it.has_expected);
    REQUIRE(it.prompt_tokens >= 0);
    hl_eval_item_release(&it);
}

static void as_file(const uint8_t *data, size_t size) {
    int fd = memfd_create("dataset", 0);
    if (fd < 0) return;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (int skip = 0; skip < 2; skip++) {
        hl_eval_dataset ds;
        hl_err e = hl_eval_dataset_load(path, skip, 0, &ds, NULL, NULL, err, sizeof err);
        if (e == HL_OK) {
            for (size_t i = 1; i < ds.n; i++) REQUIRE(ds.v[i].line > ds.v[i - 1].line);
            hl_eval_dataset_release(&ds);
        } else {
            REQUIRE(err[0] != '\0' && ds.n == 0 && ds.v == NULL);
        }
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    size_t line_no = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line_no++;
        if (!hl_eval_blank(p, n)) one_line(p, n, line_no);
        p += n + 1;
    }
    as_file(data, size);
    return 0;
}
