/* Tests for hl_gguf: values round-trip through our writer, and every kind of corruption
 * (truncation at each byte, bad counts, offsets, alignment, types, duplicates) is a clean
 * HL_ERR_PARSE/HL_ERR_UNSUPPORTED with a message, never a crash (the ASan build checks the
 * "never reads out of bounds" half). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hl_gguf.h"
#include "hl_gguf_write.h"
#include "hl_test.h"
#include "test_models_dir.h"

/* A small valid file: a few kv of each kind and two tensors. */
static void build_sample(hl_buf *out, hl_gguf_writer *w) {
    hl_gguf_writer_init(w);
    hl_gguf_writer_kv_str(w, "general.architecture", "llama");
    hl_gguf_writer_kv_u32(w, "llama.block_count", 2);
    hl_gguf_writer_kv_i32(w, "neg", -5);
    hl_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    hl_gguf_writer_kv_bool(w, "flag", 1);
    const char *toks[] = {"<unk>", "a", "\xe2\x96\x81the"};
    hl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 3);
    float scores[] = {0.f, -1.5f, -2.25f};
    hl_gguf_writer_kv_arr(w, "tokenizer.ggml.scores", HL_GGUF_V_FLOAT32, scores, 3);
    uint64_t ne1[] = {4, 3};
    hl_gguf_writer_tensor(w, "a.weight", HL_GGUF_F32, 2, ne1);
    uint64_t ne2[] = {64};
    hl_gguf_writer_tensor(w, "b.weight", HL_GGUF_Q8_0, 1, ne2);
    hl_buf_init(out, 0);
    hl_gguf_writer_header(w, out);
    float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    hl_buf_append(out, a, sizeof a);
    static const char zeros[64];
    hl_buf_append(out, zeros, hl_gguf_writer_pad(w, sizeof a));
    uint8_t q[68];
    memset(q, 7, sizeof q);
    hl_buf_append(out, q, sizeof q);
    hl_buf_append(out, zeros, hl_gguf_writer_pad(w, sizeof q));
}

HL_TEST(round_trip) {
    hl_gguf_writer w;
    hl_buf b;
    build_sample(&b, &w);
    hl_gguf *g;
    char err[HL_GGUF_ERR_MAX];
    HL_REQUIRE(hl_gguf_open_buffer(&g, b.data, b.len, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(g->version, 3);
    HL_CHECK_INT_EQ(g->n_kv, 7);
    HL_CHECK_INT_EQ(g->n_tensors, 2);
    hl_gguf_str s;
    HL_CHECK_INT_EQ(hl_gguf_get_str(g, "general.architecture", &s), HL_OK);
    HL_CHECK(hl_gguf_str_eq(s, "llama"));
    uint32_t u = 0;
    HL_CHECK_INT_EQ(hl_gguf_get_u32(g, "llama.block_count", &u), HL_OK);
    HL_CHECK_INT_EQ(u, 2);
    HL_CHECK_INT_EQ(hl_gguf_get_u32(g, "neg", &u), HL_ERR_PARSE); /* out of range */
    int64_t i64;
    HL_CHECK_INT_EQ(hl_gguf_get_i64(g, "neg", &i64), HL_OK);
    HL_CHECK_INT_EQ(i64, -5);
    float f;
    HL_CHECK_INT_EQ(hl_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), HL_OK);
    HL_CHECK_NEAR(f, 1e-5, 1e-12);
    bool flag = false;
    HL_CHECK_INT_EQ(hl_gguf_get_bool(g, "flag", &flag), HL_OK);
    HL_CHECK(flag);
    HL_CHECK_INT_EQ(hl_gguf_get_u32(g, "missing", &u), HL_ERR_NOTFOUND);
    HL_CHECK_INT_EQ(hl_gguf_get_str(g, "llama.block_count", &s), HL_ERR_PARSE);
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, "tokenizer.ggml.tokens");
    HL_REQUIRE(kv && kv->arr_n == 3);
    hl_gguf_str strs[3];
    HL_CHECK_INT_EQ(hl_gguf_arr_strings(kv, strs), HL_OK);
    HL_CHECK(hl_gguf_str_eq(strs[0], "<unk>"));
    HL_CHECK(hl_gguf_str_eq(strs[2], "\xe2\x96\x81the"));
    kv = hl_gguf_find_kv(g, "tokenizer.ggml.scores");
    HL_REQUIRE(kv);
    HL_CHECK_NEAR(hl_gguf_arr_num(kv, 2), -2.25, 0);
    const hl_gguf_tensor *t = hl_gguf_find_tensor(g, "a.weight");
    HL_REQUIRE(t);
    HL_CHECK_INT_EQ(t->ne[0], 4);
    HL_CHECK_INT_EQ(t->ne[1], 3);
    HL_CHECK_INT_EQ(t->nbytes, 48);
    float a11;
    memcpy(&a11, (const char *)t->data + 11 * 4, 4);
    HL_CHECK_NEAR(a11, 11, 0);
    t = hl_gguf_find_tensor(g, "b.weight");
    HL_REQUIRE(t);
    HL_CHECK_INT_EQ(t->nbytes, 68);
    HL_CHECK_INT_EQ(((const uint8_t *)t->data)[67], 7);
    HL_CHECK(hl_gguf_find_tensor(g, "c.weight") == NULL);
    hl_gguf_free(g);
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
}

/* Every proper prefix of the file is rejected. The copy is exactly n bytes so ASan catches
 * any read past it. Prefixes that end inside the last tensor's data must fail on the tensor
 * bounds check; only the padding after it may be cut. */
HL_TEST(every_truncation_fails) {
    hl_gguf_writer w;
    hl_buf b;
    build_sample(&b, &w);
    size_t end = b.len - hl_gguf_writer_pad(&w, 68);
    for (size_t n = 0; n < end; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        hl_gguf *g = NULL;
        char err[HL_GGUF_ERR_MAX] = "";
        hl_err e = hl_gguf_open_buffer(&g, copy, n, err, sizeof err);
        if (e != HL_ERR_PARSE || g != NULL || err[0] == 0) {
            HL_FAIL_("prefix %zu: got %d (%s)", n, e, err);
            hl_gguf_free(g);
        }
        free(copy);
    }
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
}

static hl_err open_patched(const hl_buf *b, size_t off, const void *bytes, size_t n,
                           char *err) {
    char *copy = malloc(b->len);
    memcpy(copy, b->data, b->len);
    memcpy(copy + off, bytes, n);
    hl_gguf *g = NULL;
    hl_err e = hl_gguf_open_buffer(&g, copy, b->len, err, HL_GGUF_ERR_MAX);
    hl_gguf_free(g);
    free(copy);
    return e;
}

static size_t find(const hl_buf *b, const char *needle, size_t n) {
    for (size_t i = 0; i + n <= b->len; i++)
        if (memcmp(b->data + i, needle, n) == 0) return i;
    return (size_t)-1;
}

HL_TEST(corruptions) {
    hl_gguf_writer w;
    hl_buf b;
    build_sample(&b, &w);
    char err[HL_GGUF_ERR_MAX];
    uint8_t u64max[8];
    memset(u64max, 0xff, 8);
    HL_CHECK_INT_EQ(open_patched(&b, 0, "GGUG", 4, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "magic") != NULL);
    uint32_t v1 = 1, v9 = 9;
    HL_CHECK_INT_EQ(open_patched(&b, 4, &v1, 4, err), HL_ERR_UNSUPPORTED);
    HL_CHECK_INT_EQ(open_patched(&b, 4, &v9, 4, err), HL_ERR_PARSE);
    /* n_tensors and n_kv far beyond what the file can hold. */
    HL_CHECK_INT_EQ(open_patched(&b, 8, u64max, 8, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "n_tensors") != NULL);
    HL_CHECK_INT_EQ(open_patched(&b, 16, u64max, 8, err), HL_ERR_PARSE);
    /* A key length past the end. */
    HL_CHECK_INT_EQ(open_patched(&b, 24, u64max, 8, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "truncated") != NULL);
    /* The string array's count: 2^61 strings. */
    size_t k = find(&b, "tokenizer.ggml.tokens", 21);
    uint64_t huge = 1ull << 61;
    HL_CHECK_INT_EQ(open_patched(&b, k + 21 + 4 + 4, &huge, 8, err), HL_ERR_PARSE);
    /* The float array's count: overflowing count * 4. */
    k = find(&b, "tokenizer.ggml.scores", 21);
    huge = (1ull << 62) + 1;
    HL_CHECK_INT_EQ(open_patched(&b, k + 21 + 4 + 4, &huge, 8, err), HL_ERR_PARSE);
    /* An unknown value type, and an array of arrays. */
    uint32_t t99 = 99, tarr = HL_GGUF_V_ARRAY;
    k = find(&b, "llama.block_count", 17);
    HL_CHECK_INT_EQ(open_patched(&b, k + 17, &t99, 4, err), HL_ERR_PARSE);
    k = find(&b, "tokenizer.ggml.scores", 21);
    HL_CHECK_INT_EQ(open_patched(&b, k + 21 + 4, &tarr, 4, err), HL_ERR_UNSUPPORTED);
    /* A bool that is not 0/1. */
    k = find(&b, "flag", 4);
    uint8_t two = 2;
    HL_CHECK_INT_EQ(open_patched(&b, k + 4 + 4, &two, 1, err), HL_ERR_PARSE);
    /* Duplicate key: rename "neg" to "flag"'s length-3 sibling is awkward; rename the
     * 17-byte "llama.block_count" to the 17-byte... simpler: make two tensor names equal. */
    k = find(&b, "b.weight", 8);
    HL_CHECK_INT_EQ(open_patched(&b, k, "a", 1, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "duplicate tensor") != NULL);
    /* Tensor a.weight fields: n_dims, ne, type, offset. */
    size_t ta = find(&b, "a.weight", 8) + 8;
    uint32_t nd5 = 5;
    HL_CHECK_INT_EQ(open_patched(&b, ta, &nd5, 4, err), HL_ERR_PARSE);
    uint64_t big = 1ull << 40;
    HL_CHECK_INT_EQ(open_patched(&b, ta + 4, &big, 8, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "outside") != NULL);
    uint64_t ovf[2] = {1ull << 33, 1ull << 33};
    HL_CHECK_INT_EQ(open_patched(&b, ta + 4, ovf, 16, err), HL_ERR_PARSE);
    uint32_t tq = HL_GGUF_Q8_0; /* ne[0] = 4 is not a multiple of 32 */
    HL_CHECK_INT_EQ(open_patched(&b, ta + 4 + 16, &tq, 4, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "multiple") != NULL);
    uint32_t t77 = 77;
    HL_CHECK_INT_EQ(open_patched(&b, ta + 4 + 16, &t77, 4, err), HL_ERR_UNSUPPORTED);
    uint64_t off3 = 3, off_far = 1ull << 20;
    HL_CHECK_INT_EQ(open_patched(&b, ta + 4 + 16 + 4, &off3, 8, err), HL_ERR_PARSE);
    HL_CHECK(strstr(err, "alignment") != NULL);
    HL_CHECK_INT_EQ(open_patched(&b, ta + 4 + 16 + 4, &off_far, 8, err), HL_ERR_PARSE);
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
}

HL_TEST(alignment_key) {
    hl_gguf_writer w;
    hl_gguf_writer_init(&w);
    hl_gguf_writer_kv_u32(&w, "general.alignment", 64);
    w.alignment = 64;
    uint64_t ne[] = {3};
    hl_gguf_writer_tensor(&w, "x", HL_GGUF_F32, 1, ne);
    hl_gguf_writer_tensor(&w, "y", HL_GGUF_F32, 1, ne);
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_gguf_writer_header(&w, &b);
    HL_CHECK_INT_EQ(b.len % 64, 0);
    char data[128] = {0};
    hl_buf_append(&b, data, 64 + 12);
    hl_gguf *g;
    char err[HL_GGUF_ERR_MAX];
    HL_REQUIRE(hl_gguf_open_buffer(&g, b.data, b.len, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(g->alignment, 64);
    HL_CHECK_INT_EQ(hl_gguf_find_tensor(g, "y")->offset, 64);
    hl_gguf_free(g);
    /* alignment 48 is not a power of two */
    size_t k = find(&b, "general.alignment", 17);
    uint32_t a48 = 48;
    HL_CHECK_INT_EQ(open_patched(&b, k + 17 + 4, &a48, 4, err), HL_ERR_PARSE);
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
}

HL_TEST(version2_and_empty) {
    hl_gguf_writer w;
    hl_gguf_writer_init(&w);
    w.version = 2;
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_gguf_writer_header(&w, &b);
    hl_gguf *g;
    HL_REQUIRE(hl_gguf_open_buffer(&g, b.data, b.len, NULL, 0) == HL_OK);
    HL_CHECK_INT_EQ(g->version, 2);
    HL_CHECK_INT_EQ(g->n_kv, 0);
    HL_CHECK(hl_gguf_find_kv(g, "x") == NULL);
    hl_gguf_free(g);
    hl_buf_release(&b);
    hl_gguf_writer_release(&w);
}

HL_TEST(open_errors) {
    hl_gguf *g = (hl_gguf *)1;
    char err[HL_GGUF_ERR_MAX];
    HL_CHECK_INT_EQ(hl_gguf_open(&g, "/nonexistent/x.gguf", err, sizeof err), HL_ERR_NOTFOUND);
    HL_CHECK(g == NULL);
    HL_CHECK(strstr(err, "/nonexistent/x.gguf") != NULL);
    HL_CHECK_INT_EQ(hl_gguf_open(&g, "/", err, sizeof err), HL_ERR_IO);
}

HL_TEST(stories260k_file) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_gguf *g;
    char err[HL_GGUF_ERR_MAX];
    HL_REQUIRE(hl_gguf_open(&g, path, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(g->version, 3);
    HL_CHECK_INT_EQ(g->n_tensors, 48);
    HL_CHECK_INT_EQ(g->n_kv, 19);
    const hl_gguf_tensor *t = hl_gguf_find_tensor(g, "token_embd.weight");
    HL_REQUIRE(t);
    HL_CHECK_INT_EQ(t->ne[0], 64);
    HL_CHECK_INT_EQ(t->ne[1], 512);
    HL_CHECK_INT_EQ(t->type, HL_GGUF_F32);
    HL_CHECK_INT_EQ((uintptr_t)t->data % 32, 0);
    uint32_t n = 0;
    HL_CHECK_INT_EQ(hl_gguf_get_u32(g, "llama.attention.head_count_kv", &n), HL_OK);
    HL_CHECK_INT_EQ(n, 4);
    hl_gguf_free(g);
}

/* hl_gguf_release: the whole pages inside a tensor's bytes become unreadable (a read is a
 * crash, seen from a child process), the bytes around them stay as they were, and a
 * buffer-backed file is left alone. */
static int child_reads(const volatile uint8_t *p) {
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* under ASan: die of the signal, not of its report */
        uint8_t v = *p;
        _exit(v == 0xA5 ? 3 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

HL_TEST(release_drops_pages) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "derived/synth-tiny256-f32.gguf")) return;
    hl_gguf *g;
    HL_REQUIRE(hl_gguf_open(&g, path, NULL, 0) == HL_OK);
    const hl_gguf_tensor *t = hl_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    HL_REQUIRE(t);
    size_t n = (size_t)t->ne[0] * t->ne[1] * 4, ps = (size_t)sysconf(_SC_PAGESIZE);
    const uint8_t *p = t->data;
    uintptr_t lo = ((uintptr_t)p + ps - 1) / ps * ps, hi = ((uintptr_t)p + n) / ps * ps;
    HL_REQUIRE(hi > lo + ps);
    uint8_t before = p[0], after = p[n - 1];
    HL_CHECK_INT_EQ(child_reads((const uint8_t *)lo), 0);
    hl_gguf_release(g, p, n);
    HL_CHECK_INT_EQ(child_reads((const uint8_t *)lo), -SIGSEGV);
    HL_CHECK_INT_EQ(child_reads((const uint8_t *)hi - 1), -SIGSEGV);
    /* the partial pages at either end (other tensors' bytes too) are untouched */
    HL_CHECK_INT_EQ(p[0], before);
    HL_CHECK_INT_EQ(p[n - 1], after);
    hl_gguf_free(g);
    /* the same file from a buffer (the caller's memory): nothing happens */
    FILE *f = fopen(path, "rb");
    HL_REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size);
    HL_REQUIRE(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    HL_REQUIRE(hl_gguf_open_buffer(&g, buf, (size_t)size, NULL, 0) == HL_OK);
    t = hl_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    HL_REQUIRE(t);
    uint8_t *q = (uint8_t *)t->data + n / 2;
    *q = 0xA5;
    hl_gguf_release(g, t->data, n);
    HL_CHECK_INT_EQ(child_reads(q), 3);
    hl_gguf_free(g);
    free(buf);
}

HL_TEST_MAIN()
