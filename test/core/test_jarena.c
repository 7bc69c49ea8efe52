/* Tests for hl_jarena: jansson's allocations in a scope come from the arena and go back at its
 * end; exported values survive it; outside a scope jansson allocates and frees as before.
 * (Under ASan every arena block is its own malloc freed at the scope's end, so a value used
 * after its scope is reported.) */
#include <string.h>
#include "hl_jarena.h"
#include "hl_test.h"

static const char doc[] = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                          "\"content\":\"positive\"}}],\"usage\":{\"prompt_tokens\":14}}";

HL_TEST(scope_allocates_from_the_arena_and_takes_it_back) {
    hl_jarena_install();
    HL_CHECK_INT_EQ(hl_jarena_bytes(), 0);
    hl_jarena_begin();
    json_t *root = json_loads(doc, 0, NULL);
    HL_CHECK(root != NULL);
    size_t used = hl_jarena_bytes();
    HL_CHECK(used > 200); /* objects, tables, strings: all from the arena */
    HL_CHECK_STR_EQ(json_string_value(json_object_get(root, "id")), "x");
    json_decref(root); /* free is a no-op for arena blocks */
    HL_CHECK_INT_EQ(hl_jarena_bytes(), used);
    hl_jarena_end();
    HL_CHECK_INT_EQ(hl_jarena_bytes(), 0);
}

HL_TEST(nested_scopes_return_memory_at_the_outermost_end) {
    hl_jarena_install();
    hl_jarena_begin();
    json_t *a = json_loads(doc, 0, NULL);
    hl_jarena_begin();
    json_t *b = json_loads(doc, 0, NULL);
    hl_jarena_end();
    /* a and b are both still valid: the inner end gave nothing back */
    HL_CHECK(json_equal(a, b));
    HL_CHECK(hl_jarena_bytes() > 0);
    json_decref(a);
    json_decref(b);
    hl_jarena_end();
    HL_CHECK_INT_EQ(hl_jarena_bytes(), 0);
}

HL_TEST(export_outlives_the_scope) {
    hl_jarena_install();
    hl_jarena_begin();
    json_t *root = json_loads(doc, 0, NULL);
    json_t *usage = hl_jarena_export(json_incref(json_object_get(root, "usage")));
    size_t before = hl_jarena_bytes();
    json_t *copy = hl_jarena_export(root); /* consumes root */
    HL_CHECK_INT_EQ(hl_jarena_bytes(), before); /* the copy is on the heap */
    hl_jarena_end();
    HL_CHECK(usage != NULL && copy != NULL);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(usage, "prompt_tokens")), 14);
    json_t *choice = json_array_get(json_object_get(copy, "choices"), 0);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(choice, "message"), "content")), "positive");
    /* heap values are modified and freed as usual */
    HL_CHECK_INT_EQ(json_object_set_new(copy, "extra", json_string("y")), 0);
    json_decref(copy);
    json_decref(usage);
    HL_CHECK(hl_jarena_export(NULL) == NULL);
}

HL_TEST(outside_a_scope_the_heap) {
    hl_jarena_install();
    json_t *root = json_loads(doc, 0, NULL);
    HL_CHECK(root != NULL);
    HL_CHECK_INT_EQ(hl_jarena_bytes(), 0);
    hl_jarena_end(); /* an end without a begin does nothing */
    HL_CHECK_STR_EQ(json_string_value(json_object_get(root, "id")), "x");
    json_decref(root);
}

HL_TEST(large_blocks_and_many_scopes) {
    hl_jarena_install();
    char *big = malloc(300000);
    HL_CHECK(big != NULL);
    memset(big, 'a', 299999);
    big[299999] = 0;
    for (int i = 0; i < 50; i++) {
        hl_jarena_begin();
        json_t *s = json_string(big); /* bigger than a chunk */
        json_t *arr = json_array();
        for (int k = 0; k < 2000; k++) json_array_append_new(arr, json_integer(k));
        HL_CHECK_INT_EQ(json_string_length(s), 299999);
        HL_CHECK_INT_EQ(json_integer_value(json_array_get(arr, 1999)), 1999);
        json_decref(s);
        json_decref(arr);
        hl_jarena_end();
    }
    free(big);
}

HL_TEST_MAIN()
