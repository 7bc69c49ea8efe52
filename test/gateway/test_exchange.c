/* Tests of the exchange's phases (src/gateway/hl_exchange.c): the transitions are the diagram
 * in the file's opening comment, and a callback in a phase that cannot receive it is caught:
 * debug builds (the sanitizer build defines HL_DEBUG) abort, release builds refuse it. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hl_exchange.h"
#include "hl_test.h"

#define P(x) HL_EX_##x

HL_TEST(transitions_are_the_diagram) {
    static const struct { hl_ex_phase from, to; } allowed[] = {
        {P(ROUTING), P(ATTEMPTING)},   {P(ROUTING), P(FINISHING)},    {P(ROUTING), P(WAITING)},
        {P(WAITING), P(ATTEMPTING)},   {P(WAITING), P(HOLDING)},
        {P(WAITING), P(FINISHING)},    {P(ATTEMPTING), P(STREAMING)}, {P(ATTEMPTING), P(WAITING)},
        {P(ATTEMPTING), P(FINISHING)}, {P(HOLDING), P(STREAMING)},    {P(HOLDING), P(WAITING)},
        {P(HOLDING), P(FINISHING)},    {P(STREAMING), P(FINISHING)},  {P(FINISHING), P(DONE)},
        {P(WAITING), P(DONE)},         {P(ATTEMPTING), P(DONE)},      {P(HOLDING), P(DONE)},
        {P(STREAMING), P(DONE)},
    };
    int n_allowed = 0;
    for (int from = 0; from < HL_EX_N_PHASES; from++)
        for (int to = 0; to < HL_EX_N_PHASES; to++) {
            bool want = false;
            for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
                want |= allowed[i].from == (hl_ex_phase)from && allowed[i].to == (hl_ex_phase)to;
            n_allowed += want;
            if (hl_ex_transition_ok(from, to) != want)
                HL_FAIL_("%s -> %s: %s", hl_ex_phase_name(from), hl_ex_phase_name(to),
                         want ? "refused" : "allowed");
        }
    HL_CHECK_INT_EQ(n_allowed, (int)(sizeof allowed / sizeof allowed[0]));
    /* Once streaming, nothing can go back to trying another backend. */
    HL_CHECK(!hl_ex_transition_ok(P(STREAMING), P(WAITING)));
    HL_CHECK(!hl_ex_transition_ok(P(STREAMING), P(ATTEMPTING)));
    HL_CHECK(!hl_ex_transition_ok(P(DONE), P(FINISHING)));
    HL_CHECK(!hl_ex_transition_ok(P(N_PHASES), P(DONE)));
}

HL_TEST(right_phase_passes) {
    unsigned in_call = HL_EX_BIT(P(ATTEMPTING)) | HL_EX_BIT(P(HOLDING)) | HL_EX_BIT(P(STREAMING));
    HL_CHECK(hl_ex_phase_ok(P(ATTEMPTING), in_call, "test"));
    HL_CHECK(hl_ex_phase_ok(P(HOLDING), in_call, "test"));
    HL_CHECK(hl_ex_phase_ok(P(STREAMING), in_call, "test"));
    HL_CHECK(hl_ex_phase_ok(P(WAITING), HL_EX_BIT(P(WAITING)), "test"));
}

/* A provider callback reaching a finished exchange: in a child process, since debug builds
 * abort. */
HL_TEST(wrong_phase_is_caught) {
    unsigned in_call = HL_EX_BIT(P(ATTEMPTING)) | HL_EX_BIT(P(HOLDING)) | HL_EX_BIT(P(STREAMING));
    fflush(NULL);
    pid_t pid = fork();
    HL_REQUIRE(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        bool ok = hl_ex_phase_ok(P(FINISHING), in_call, "provider on_done");
        _exit(ok ? 1 : 0);
    }
    int st = 0;
    HL_REQUIRE(waitpid(pid, &st, 0) == pid);
    if (hl_ex_debug_checks()) {
        HL_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    } else {
        HL_CHECK(WIFEXITED(st));
        HL_CHECK_INT_EQ(WEXITSTATUS(st), 0); /* refused, so the callback is ignored */
    }
}

HL_TEST(phase_names) {
    HL_CHECK_STR_EQ(hl_ex_phase_name(P(HOLDING)), "holding");
    HL_CHECK_STR_EQ(hl_ex_phase_name(P(DONE)), "done");
    HL_CHECK_STR_EQ(hl_ex_phase_name(P(N_PHASES)), "?");
}

HL_TEST_MAIN()
