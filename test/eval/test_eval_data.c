/* Tests for hl_eval_data: the dataset line parser (each shape an item may take, each mistake
 * named) and the loader (file and line in the error, blank lines, --skip-bad, --limit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_eval_data.h"
#include "hl_test.h"

static hl_err parse(const char *line, hl_eval_item *it, char *why) {
    return hl_eval_item_parse(line, strlen(line), 7, it, why, 256);
}

/* The error phrase for a line that must be refused ("" when it was accepted). */
static const char *refusal(const char *line) {
    static char why[256];
    hl_eval_item it;
    if (parse(line, &it, why) == HL_OK) {
        hl_eval_item_release(&it);
        return "";
    }
    return why;
}

HL_TEST(prompt_item_becomes_one_user_message) {
    hl_eval_item it;
    char why[256];
    HL_REQUIRE(parse("{\"prompt\":\"Is water wet?\",\"expected\":\"yes\",\"task_type\":\"classification\","
                     "\"max_tokens\":3}", &it, why) == HL_OK);
    HL_CHECK_INT_EQ(it.req.n_messages, 1);
    HL_CHECK_INT_EQ(it.req.messages[0].role, HL_ROLE_USER);
    HL_CHECK_STR_EQ(it.req.messages[0].text, "Is water wet?");
    HL_CHECK_INT_EQ(it.req.max_tokens, 3);
    HL_CHECK(it.has_expected && !it.expected_json);
    HL_CHECK_STR_EQ(it.expected.text, "yes");
    HL_CHECK_STR_EQ(it.task_type, "classification");
    HL_CHECK_STR_EQ(it.id, "7"); /* the line number when no id is given */
    HL_CHECK_INT_EQ(it.line, 7);
    HL_CHECK(it.prompt_tokens > 0);
    hl_eval_item_release(&it);
}

HL_TEST(messages_item_keeps_roles_and_id) {
    hl_eval_item it;
    char why[256];
    HL_REQUIRE(parse("{\"id\":\"q-1\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]}", &it, why) == HL_OK);
    HL_CHECK_INT_EQ(it.req.n_messages, 2);
    HL_CHECK_INT_EQ(it.req.messages[0].role, HL_ROLE_SYSTEM);
    HL_CHECK_STR_EQ(it.req.messages[1].text, "Hi");
    HL_CHECK_STR_EQ(it.id, "q-1");
    HL_CHECK(!it.has_expected);
    HL_CHECK(it.task_type == NULL);
    HL_CHECK_INT_EQ(it.req.max_tokens, -1);
    hl_eval_item_release(&it);
    HL_REQUIRE(parse("{\"id\":42,\"prompt\":\"x\"}", &it, why) == HL_OK);
    HL_CHECK_STR_EQ(it.id, "42");
    hl_eval_item_release(&it);
}

HL_TEST(expected_object_is_compact_json) {
    hl_eval_item it;
    char why[256];
    HL_REQUIRE(parse("{\"prompt\":\"x\",\"expected\":{\"b\": 2, \"a\": [1, \"z\"]}}", &it, why) == HL_OK);
    HL_CHECK(it.has_expected && it.expected_json);
    HL_CHECK_STR_EQ(it.expected.text, "{\"a\":[1,\"z\"],\"b\":2}");
    hl_eval_item_release(&it);
    HL_REQUIRE(parse("{\"prompt\":\"x\",\"expected\":null}", &it, why) == HL_OK);
    HL_CHECK(!it.has_expected);
    hl_eval_item_release(&it);
}

HL_TEST(bad_lines_are_named) {
    HL_CHECK(strstr(refusal("not json"), "not JSON") != NULL);
    HL_CHECK(strstr(refusal("[1,2]"), "not a JSON object") != NULL);
    HL_CHECK(strstr(refusal("{}"), "exactly one of \"messages\" and \"prompt\"") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}"),
                    "exactly one of") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"\"}"), "\"prompt\" must be a string") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":7}"), "\"prompt\" must be a string") != NULL);
    HL_CHECK(strstr(refusal("{\"messages\":[]}"), "\"messages\" must be an array") != NULL);
    HL_CHECK(strstr(refusal("{\"messages\":[{\"role\":\"wizard\",\"content\":\"b\"}]}"), "bad request") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"expected\":3}"), "\"expected\" must be") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"expectd\":\"b\"}"), "unknown key \"expectd\"") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"max_tokens\":0}"), "\"max_tokens\" must be") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"max_tokens\":1.5}"), "\"max_tokens\" must be") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"task_type\":\"\"}"), "\"task_type\" must be") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"id\":true}"), "\"id\" must be") != NULL);
    HL_CHECK(strstr(refusal("{\"prompt\":\"a\",\"prompt\":\"b\"}"), "not JSON") != NULL); /* duplicate key */
    HL_CHECK_STR_EQ(refusal("{\"prompt\":\"a\"}"), "");
}

static char *write_temp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/hl_eval_data_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) path[0] = '\0';
    close(fd);
    return path;
}

static int warned;
static void count_warn(void *ud, const char *msg) {
    (void)ud;
    if (strstr(msg, ":3: ")) warned++;
}

HL_TEST(loader_names_file_and_line) {
    char *path = write_temp("{\"prompt\":\"a\",\"expected\":\"b\"}\n\n{\"prompt\":\"c\",\"expected\":5}\n{\"prompt\":\"d\"}\n");
    HL_REQUIRE(path && path[0]);
    hl_eval_dataset ds;
    char err[512];
    HL_CHECK_INT_EQ(hl_eval_dataset_load(path, false, 0, &ds, NULL, NULL, err, sizeof err), HL_ERR_PARSE);
    char want[128];
    snprintf(want, sizeof want, "%s:3: \"expected\" must be", path);
    HL_CHECK(strstr(err, want) == err);
    HL_CHECK(ds.v == NULL && ds.n == 0);
    /* skip_bad: the bad line reported and counted, the others kept; blank lines are not items */
    warned = 0;
    HL_REQUIRE(hl_eval_dataset_load(path, true, 0, &ds, count_warn, NULL, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(ds.n, 2);
    HL_CHECK_INT_EQ(ds.skipped, 1);
    HL_CHECK_INT_EQ(warned, 1);
    HL_CHECK_INT_EQ(ds.v[1].line, 4);
    HL_CHECK_STR_EQ(ds.v[1].req.messages[0].text, "d");
    hl_eval_dataset_release(&ds);
    /* limit: the first items only, and a bad line after them is never read */
    HL_REQUIRE(hl_eval_dataset_load(path, false, 1, &ds, NULL, NULL, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(ds.n, 1);
    hl_eval_dataset_release(&ds);
    unlink(path);
    HL_CHECK_INT_EQ(hl_eval_dataset_load("/nonexistent/eval.jsonl", false, 0, &ds, NULL, NULL, err, sizeof err),
                    HL_ERR_IO);
    HL_CHECK(strstr(err, "/nonexistent/eval.jsonl") != NULL);
}

HL_TEST(shipped_example_parses) {
    const char *src = getenv("HL_SRC_DIR");
    if (!src) HL_SKIP("HL_SRC_DIR is not set");
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/examples/eval/support.jsonl", src);
    hl_eval_dataset ds;
    HL_REQUIRE(hl_eval_dataset_load(path, false, 0, &ds, NULL, NULL, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(ds.n, 40);
    size_t json = 0;
    for (size_t i = 0; i < ds.n; i++) {
        HL_CHECK(ds.v[i].has_expected && ds.v[i].task_type);
        json += ds.v[i].expected_json;
    }
    HL_CHECK_INT_EQ(json, 10);
    hl_eval_dataset_release(&ds);
}

HL_TEST_MAIN()
