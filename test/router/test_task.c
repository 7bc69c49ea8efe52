/* Tests for hl_task: the task-type inference heuristic, one table of prompts. */
#include "hl_task.h"
#include "hl_test.h"

static const char *infer(const char *system, const char *user) {
    hl_message m[2] = {{.role = HL_ROLE_SYSTEM, .text = (char *)system}, {.role = HL_ROLE_USER, .text = (char *)user}};
    hl_chat_request r = {.messages = m, .n_messages = 2};
    return hl_task_infer(&r);
}

HL_TEST(inference_table) {
    static const char *const cases[][3] = {
        {"", "Write a Python function that reverses a linked list", "code_generation"},
        {"", "why does this crash?\n```c\nint *p = 0; *p = 1;\n```", "code_generation"},
        {"", "Fix the bug in my SQL query: SELECT * FORM users", "code_generation"},
        {"", "Classify this review as positive or negative: great film", "classification"},
        {"", "What is the sentiment of: I hate Mondays", "classification"},
        {"", "Extract the invoice number and total from the text below", "extraction"},
        {"", "Summarize this article in three bullet points", "summarization"},
        {"", "tl;dr of the meeting notes please", "summarization"},
        {"", "Solve for x: 3x + 5 = 20, step by step", "reasoning"},
        {"", "Compare PostgreSQL and MySQL for analytics workloads", "analysis"},
        {"You label support tickets by team.", "My printer is on fire", "classification"},
        {"", "Hello! How are you today?", NULL},
        {"", "Write a poem about autumn", NULL},      /* "write" without a code word */
        {"", "unclassified documents are fine", NULL}, /* word start: "classify" not inside */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = infer(cases[i][0], cases[i][1]);
        const char *want = cases[i][2];
        if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
            HL_FAIL_("case %zu \"%s\": got %s, expected %s", i, cases[i][1], got ? got : "NULL", want ? want : "NULL");
    }
}

HL_TEST_MAIN()
