/* Tests for hl_hub's pure parts (specs, file lists, the choice of a file, ETags) and for
 * hl_models (the models directory, listing, "pulled:" resolution). The downloads themselves
 * are tested against a fake Hub in test/integration/pull.test.mjs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "hl_hub.h"
#include "hl_models.h"
#include "hl_test.h"

HL_TEST(spec_forms) {
    hl_hub_spec s;
    char err[512];
    HL_CHECK_INT_EQ(hl_hub_parse_spec("TheBloke/Llama-2-7B-GGUF", &s, err, sizeof err), HL_OK);
    HL_CHECK_STR_EQ(s.repo, "TheBloke/Llama-2-7B-GGUF");
    HL_CHECK_STR_EQ(s.quant, "");
    HL_CHECK_STR_EQ(s.file, "");
    HL_CHECK_INT_EQ(hl_hub_parse_spec("Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m", &s, err, sizeof err), HL_OK);
    HL_CHECK_STR_EQ(s.repo, "Qwen/Qwen2.5-0.5B-Instruct-GGUF");
    HL_CHECK_STR_EQ(s.quant, "q4_k_m");
    HL_CHECK_INT_EQ(hl_hub_parse_spec("a/b/sub/m.Q8_0.GGUF", &s, err, sizeof err), HL_OK);
    HL_CHECK_STR_EQ(s.repo, "a/b");
    HL_CHECK_STR_EQ(s.file, "sub/m.Q8_0.GGUF");
    static const char *const bad[] = {"", "a", "/b", "a/", "a/b:", "a/b/", "a/b:Q4 K", "a/b/../x.gguf",
                                      "a/b/x.bin", "a/b//x.gguf", "../b", "a/.b", "a b/c", "a/b/.x.gguf",
                                      "a/b:Q4/x.gguf", "a/b/c:d.gguf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (hl_hub_parse_spec(bad[i], &s, err, sizeof err) != HL_ERR_INVAL || !err[0])
            HL_FAIL_("'%s' was accepted", bad[i]);
    }
}

HL_TEST(safe_paths) {
    HL_CHECK(hl_hub_safe_path("a.gguf"));
    HL_CHECK(hl_hub_safe_path("dir/x-1_2+3.gguf"));
    HL_CHECK(!hl_hub_safe_path(""));
    HL_CHECK(!hl_hub_safe_path("/abs.gguf"));
    HL_CHECK(!hl_hub_safe_path("../x.gguf"));
    HL_CHECK(!hl_hub_safe_path("a/../x.gguf"));
    HL_CHECK(!hl_hub_safe_path("a//x.gguf"));
    HL_CHECK(!hl_hub_safe_path("a/x.gguf/"));
    HL_CHECK(!hl_hub_safe_path("a\\x.gguf"));
    HL_CHECK(!hl_hub_safe_path("a/x y.gguf"));
}

HL_TEST(quant_matches_whole_words) {
    HL_CHECK(hl_hub_quant_matches("m.Q4_K_M.gguf", "Q4_K_M"));
    HL_CHECK(hl_hub_quant_matches("qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M"));
    HL_CHECK(hl_hub_quant_matches("dir.Q8_0/m-Q4_K_M-00001-of-00002.gguf", "q4_k_m"));
    HL_CHECK(!hl_hub_quant_matches("m.Q4_K_M.gguf", "Q4_K"));   /* followed by '_' */
    HL_CHECK(!hl_hub_quant_matches("m.IQ4_XS.gguf", "Q4_XS"));  /* preceded by a letter */
    HL_CHECK(!hl_hub_quant_matches("m.Q8_0.gguf", "Q8_01"));
    HL_CHECK(!hl_hub_quant_matches("dir.Q8_0/m.F16.gguf", "Q8_0")); /* only the file's own name */
    HL_CHECK(!hl_hub_quant_matches("m.Q8_0.gguf", ""));
}

static hl_hub_file F(const char *p) {
    hl_hub_file f = {.path = (char *)p, .size = 1};
    return f;
}

HL_TEST(choose_a_file) {
    hl_hub_file v[] = {F("m.Q8_0.gguf"), F("m.Q4_K_M.gguf"), F("m.Q4_K_S.gguf"), F("p/m.Q2_K-00001-of-00002.gguf"),
                       F("p/m.Q2_K-00002-of-00002.gguf")};
    hl_hub_spec s;
    char err[1024];
    HL_REQUIRE(hl_hub_parse_spec("o/n:q8_0", &s, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 5, &s, err, sizeof err), 0);
    HL_REQUIRE(hl_hub_parse_spec("o/n", &s, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 5, &s, err, sizeof err), 1); /* Q4_K_M by default */
    HL_CHECK_INT_EQ(hl_hub_choose(v, 1, &s, err, sizeof err), 0); /* the only one */
    HL_CHECK_INT_EQ(hl_hub_choose(v + 2, 3, &s, err, sizeof err), -1);
    HL_CHECK(strstr(err, "none is Q4_K_M") && strstr(err, "m.Q4_K_S.gguf, p/m.Q2_K-00001"));
    HL_REQUIRE(hl_hub_parse_spec("o/n:Q2_K", &s, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 5, &s, err, sizeof err), -1);
    HL_CHECK(strstr(err, "2 files of repository o/n match Q2_K") != NULL);
    HL_CHECK(strstr(err, "00001-of-00002.gguf, p/m.Q2_K-00002") != NULL);
    HL_CHECK(strstr(err, "Q8_0") == NULL); /* only the matches are listed */
    HL_REQUIRE(hl_hub_parse_spec("o/n:Q5_K_M", &s, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 5, &s, err, sizeof err), -1);
    HL_CHECK(strstr(err, "no file of repository o/n is quantized Q5_K_M; its GGUF files: m.Q8_0.gguf") != NULL);
    HL_REQUIRE(hl_hub_parse_spec("o/n/m.Q4_K_S.gguf", &s, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 5, &s, err, sizeof err), 2);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 0, &s, err, sizeof err), -1);
    HL_CHECK(strstr(err, "has no .gguf file") != NULL);
    /* a long list is cut, never overrun */
    char small[40];
    HL_REQUIRE(hl_hub_parse_spec("o/n:Q5_K_M", &s, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_hub_choose(v, 5, &s, small, sizeof small), -1);
    HL_CHECK(strlen(small) == sizeof small - 1);
}

HL_TEST(tree_listing) {
    const char *j = "[{\"type\":\"file\",\"oid\":\"aa\",\"size\":12,\"path\":\"README.md\"},"
                    "{\"type\":\"directory\",\"oid\":\"bb\",\"size\":0,\"path\":\"x.gguf\"},"
                    "{\"type\":\"file\",\"oid\":\"cc\",\"size\":134,\"path\":\"m.Q8_0.gguf\",\"lfs\":{\"oid\":"
                    "\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\",\"size\":5000000,"
                    "\"pointerSize\":134}},"
                    "{\"type\":\"file\",\"oid\":\"dd\",\"size\":7,\"path\":\"small.gguf\"},"
                    "{\"type\":\"file\",\"path\":\"../evil.gguf\",\"size\":1},"
                    "{\"type\":\"file\",\"path\":\"/abs.gguf\"}]";
    hl_hub_file *v = NULL;
    size_t n = 0;
    char err[256];
    HL_REQUIRE(hl_hub_parse_tree(j, strlen(j), &v, &n, err, sizeof err) == HL_OK);
    HL_REQUIRE(n == 2);
    HL_CHECK_STR_EQ(v[0].path, "m.Q8_0.gguf");
    HL_CHECK_INT_EQ(v[0].size, 5000000); /* the LFS size, not the pointer's */
    HL_CHECK_STR_EQ(v[0].sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    HL_CHECK_STR_EQ(v[1].path, "small.gguf");
    HL_CHECK_INT_EQ(v[1].size, 7);
    HL_CHECK_STR_EQ(v[1].sha256, "");
    hl_hub_files_free(v, n);
    static const char *const bad[] = {"", "{}", "[1]", "[{\"type\":\"file\"}, \"x\"]", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (hl_hub_parse_tree(bad[i], strlen(bad[i]), &v, &n, err, sizeof err) != HL_ERR_PARSE)
            HL_FAIL_("'%s' was accepted", bad[i]);
        HL_CHECK(v == NULL && n == 0);
    }
}

HL_TEST(etag_sha256) {
    char out[65];
    const char *hex = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
    char q[80];
    snprintf(q, sizeof q, "\"%s\"", hex);
    HL_CHECK(hl_hub_etag_sha256(q, out));
    HL_CHECK_STR_EQ(out, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    snprintf(q, sizeof q, "W/\"%s\"", hex);
    HL_CHECK(hl_hub_etag_sha256(q, out));
    HL_CHECK(hl_hub_etag_sha256(hex, out));
    HL_CHECK(!hl_hub_etag_sha256("\"0123456789abcdef0123456789abcdef01234567\"", out)); /* a git SHA-1 */
    HL_CHECK(!hl_hub_etag_sha256("\"cdn-etag\"", out));
    HL_CHECK(!hl_hub_etag_sha256("", out));
    snprintf(q, sizeof q, "\"%sX\"", hex);
    HL_CHECK(!hl_hub_etag_sha256(q, out));
}

/* ---- hl_models ---- */

static void write_file(const char *path, const void *data, size_t n, time_t mtime) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    utimes(path, tv);
}

/* A GGUF v3 header with general.architecture and general.file_type, no tensors. */
static size_t tiny_gguf(unsigned char *b, const char *arch, uint32_t ftype) {
    size_t n = 0;
#define PUT(p, len) (memcpy(b + n, (p), (len)), n += (len))
    uint32_t u32;
    uint64_t u64;
    PUT("GGUF", 4);
    u32 = 3, PUT(&u32, 4);
    u64 = 0, PUT(&u64, 8);
    u64 = 2, PUT(&u64, 8);
    u64 = 20, PUT(&u64, 8);
    PUT("general.architecture", 20);
    u32 = 8, PUT(&u32, 4);
    u64 = strlen(arch), PUT(&u64, 8);
    PUT(arch, strlen(arch));
    u64 = 17, PUT(&u64, 8);
    PUT("general.file_type", 17);
    u32 = 4, PUT(&u32, 4);
    PUT(&ftype, 4);
#undef PUT
    while (n % 32) b[n++] = 0;
    return n;
}

HL_TEST(models_dir_list_and_resolve) {
    char dir[] = "/tmp/hltest-models-XXXXXX";
    HL_REQUIRE(mkdtemp(dir) != NULL);
    char out[4096], err[512], p[4200];
    setenv("HYBRIDLLM_MODELS_DIR", dir, 1);
    HL_CHECK_INT_EQ(hl_models_dir(NULL, out, sizeof out), HL_OK);
    HL_CHECK_STR_EQ(out, dir);
    HL_CHECK_INT_EQ(hl_models_dir("/x/y/", out, sizeof out), HL_OK);
    HL_CHECK_STR_EQ(out, "/x/y");
    unsetenv("HYBRIDLLM_MODELS_DIR");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    HL_CHECK_INT_EQ(hl_models_dir(NULL, out, sizeof out), HL_OK);
    HL_CHECK_STR_EQ(out, "/xdg/hybridllm/models");
    setenv("XDG_CACHE_HOME", "relative", 1); /* XDG says: ignore a relative one */
    setenv("HOME", "/home/u", 1);
    HL_CHECK_INT_EQ(hl_models_dir(NULL, out, sizeof out), HL_OK);
    HL_CHECK_STR_EQ(out, "/home/u/.cache/hybridllm/models");
    unsetenv("XDG_CACHE_HOME");

    /* An empty (and a missing) directory: nothing, and a resolve that says what to pull. */
    setenv("HYBRIDLLM_MODELS_DIR", dir, 1);
    hl_model_entry *v = NULL;
    size_t n = 9;
    HL_CHECK_INT_EQ(hl_models_list("/nonexistent/hl", 1, &v, &n), HL_OK);
    HL_CHECK_INT_EQ(n, 0);
    hl_models_free(v, n);
    HL_CHECK_INT_EQ(hl_models_resolve("pulled:", out, sizeof out, err, sizeof err), HL_ERR_NOTFOUND);
    HL_CHECK(strstr(err, "no model pulled yet") && strstr(err, "hybridllm pull"));

    unsigned char g[256];
    size_t gn;
    snprintf(p, sizeof p, "%s/acme", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/acme/m-GGUF", dir);
    mkdir(p, 0755);
    gn = tiny_gguf(g, "qwen2", 15);
    snprintf(p, sizeof p, "%s/acme/m-GGUF/m.Q4_K_M.gguf", dir);
    write_file(p, g, gn, 1000);
    gn = tiny_gguf(g, "llama", 7);
    snprintf(p, sizeof p, "%s/acme/m-GGUF/m.Q8_0.gguf", dir);
    write_file(p, g, gn, 3000);
    snprintf(p, sizeof p, "%s/loose.gguf", dir);
    write_file(p, "not a gguf", 10, 2000);
    snprintf(p, sizeof p, "%s/acme/m-GGUF/big.Q2_K.gguf.part", dir); /* unfinished: not listed */
    write_file(p, "x", 1, 9000);
    HL_REQUIRE(hl_models_list(dir, 1, &v, &n) == HL_OK);
    HL_REQUIRE(n == 3);
    HL_CHECK_STR_EQ(v[0].name, "acme/m-GGUF/m.Q4_K_M.gguf");
    HL_CHECK_STR_EQ(v[0].quant, "Q4_K_M");
    HL_CHECK_STR_EQ(v[0].arch, "qwen2");
    HL_CHECK_INT_EQ(v[0].size, (long long)gn);
    HL_CHECK_STR_EQ(v[1].name, "acme/m-GGUF/m.Q8_0.gguf");
    HL_CHECK_STR_EQ(v[1].quant, "Q8_0");
    HL_CHECK_STR_EQ(v[1].arch, "llama");
    HL_CHECK_STR_EQ(v[2].name, "loose.gguf");
    HL_CHECK_STR_EQ(v[2].arch, "?"); /* not a GGUF: listed, unknown */
    hl_models_free(v, n);

    /* pulled: the newest; pulled:TEXT the newest whose name has TEXT; a path as it is. */
    HL_CHECK_INT_EQ(hl_models_resolve("pulled:", out, sizeof out, err, sizeof err), HL_OK);
    snprintf(p, sizeof p, "%s/acme/m-GGUF/m.Q8_0.gguf", dir);
    HL_CHECK_STR_EQ(out, p);
    HL_CHECK_INT_EQ(hl_models_resolve("pulled:q4_k_m", out, sizeof out, err, sizeof err), HL_OK);
    snprintf(p, sizeof p, "%s/acme/m-GGUF/m.Q4_K_M.gguf", dir);
    HL_CHECK_STR_EQ(out, p);
    HL_CHECK_INT_EQ(hl_models_resolve("pulled:acme/", out, sizeof out, err, sizeof err), HL_OK);
    HL_CHECK(strstr(out, "m.Q8_0.gguf") != NULL);
    HL_CHECK_INT_EQ(hl_models_resolve("pulled:Q6_K", out, sizeof out, err, sizeof err), HL_ERR_NOTFOUND);
    HL_CHECK(strstr(err, "matches 'Q6_K'") != NULL);
    HL_CHECK_INT_EQ(hl_models_resolve("/models/x.gguf", out, sizeof out, err, sizeof err), HL_OK);
    HL_CHECK_STR_EQ(out, "/models/x.gguf");
    HL_CHECK(hl_models_is_pulled("pulled:") && !hl_models_is_pulled("/pulled:x"));
    HL_CHECK_STR_EQ(hl_models_ftype_name(15), "Q4_K_M");
    HL_CHECK(hl_models_ftype_name(4) == NULL && hl_models_ftype_name(999) == NULL);

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    HL_CHECK_INT_EQ(system(cmd), 0);
    unsetenv("HYBRIDLLM_MODELS_DIR");
}

HL_TEST_MAIN()
