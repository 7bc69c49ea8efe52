/* The crash test of issue 5, shared by the SQLite and PostgreSQL store tests: a child process
 * writes ledger lines through hl_ledger as fast as it can while the background indexer
 * indexes them into the store every millisecond, and is killed with SIGKILL once lines have
 * been both written and indexed. The test then re-indexes and checks that every line of the
 * journal is in the store exactly once.
 *
 * Line i: request crash_<i>, attempt 1 + i % 2, cloud when i is odd at $0.50, one second
 * apart from 2024-05-01T00:00:00Z. */
#ifndef HL_TEST_STORE_CRASH_H
#define HL_TEST_STORE_CRASH_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_store.h"

static void crash_child(const char *journal, const char *location, int progress_fd) {
    hl_ledger l;
    char err[512];
    hl_store *s = NULL;
    if (hl_ledger_open(&l, journal) != HL_OK || hl_store_open(&s, location, err, sizeof err) != HL_OK ||
        hl_store_indexer_start(s, journal, 1, NULL) != HL_OK)
        _exit(3);
    char id[32];
    for (int i = 0; i < 2000000; i++) {
        snprintf(id, sizeof id, "crash_%07d", i);
        hl_ledger_record r = {0};
        r.timestamp = 1714521600.0 + i;
        r.request_id = id;
        r.attempt = 1 + i % 2;
        r.cloud = i % 2;
        r.backend = r.model = r.route_reason = "x";
        r.status = "ok";
        r.ttft_ms = r.confidence = -1;
        r.cost_usd = r.cloud ? 0.5 : 0;
        r.cost_known = true;
        if (hl_ledger_append(&l, &r) != HL_OK) _exit(4);
        if (i % 2000 == 1999) {
            hl_store_indexer_stats ist;
            hl_store_indexer_stats_get(s, &ist);
            /* Progress once some lines are both written and indexed. */
            if (ist.inserted > 0 && write(progress_fd, "x", 1) != 1) _exit(5);
        }
    }
    _exit(6);
}

/* Runs the child against journal and location, kills it with SIGKILL after five progress
 * reports, and returns the number of complete lines in the journal; -1 (with a message) when
 * the child did not get that far or did not die of the signal. */
static long long crash_and_count(const char *journal, const char *location) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(pipefd[0]);
        crash_child(journal, location, pipefd[1]);
    }
    close(pipefd[1]);
    char c;
    int reports = 0;
    while (reports < 5 && read(pipefd[0], &c, 1) == 1) reports++;
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(pipefd[0]);
    if (reports != 5 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "  crash child: %d progress reports, exit status %#x\n", reports, status);
        return -1;
    }
    FILE *f = fopen(journal, "r");
    if (!f) return -1;
    char line[4096];
    long long lines = 0;
    while (fgets(line, sizeof line, f))
        if (strchr(line, '\n')) lines++;
    fclose(f);
    return lines;
}

#endif
