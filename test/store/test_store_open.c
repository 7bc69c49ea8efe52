/* Tests for how a SQLite store is opened: hl_store_open_existing (what `hybridllm report`
 * uses) creates no file and opens a hybridllm ledger only; neither it nor hl_store_open
 * changes a byte of another program's database, in rollback or WAL mode. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_store.h"
#include "hl_test.h"

typedef struct files {
    char dir[64], db[128], foreign[128], wal[128], empty[128];
} files;

static void files_init(files *f) {
    snprintf(f->dir, sizeof f->dir, "/tmp/hl_store_open_XXXXXX");
    if (!mkdtemp(f->dir)) abort();
    snprintf(f->db, sizeof f->db, "%s/ledger.db", f->dir);
    snprintf(f->foreign, sizeof f->foreign, "%s/other.db", f->dir);
    snprintf(f->wal, sizeof f->wal, "%s/other-wal.db", f->dir);
    snprintf(f->empty, sizeof f->empty, "%s/empty.db", f->dir);
}

static void files_cleanup(files *f) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", f->dir);
}

/* Another program's database at path: one table, one row; in WAL mode when wal. */
static void make_foreign(const char *path, bool wal) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    if (wal && sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK) abort();
    if (sqlite3_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                         "INSERT INTO notes (body) VALUES ('keep me')", NULL, NULL, NULL) != SQLITE_OK)
        abort();
    sqlite3_close(db);
}

/* The file's bytes (malloc'd, at most 1 MiB; *len set), or NULL when it does not exist. */
static char *file_bytes(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *b = malloc(1 << 20);
    *len = b ? fread(b, 1, 1 << 20, fp) : 0;
    fclose(fp);
    return b;
}

HL_TEST(open_existing_creates_nothing) {
    files f;
    files_init(&f);
    char err[600];
    hl_store *s = (hl_store *)1;
    HL_CHECK(hl_store_open_existing(&s, f.db, err, sizeof err) != HL_OK);
    HL_CHECK(s == NULL);
    HL_CHECK(strstr(err, f.db) != NULL);
    HL_CHECK(access(f.db, F_OK) != 0);
    files_cleanup(&f);
}

HL_TEST(open_existing_opens_a_ledger) {
    files f;
    files_init(&f);
    char err[600];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.db, err, sizeof err) == HL_OK);
    int version = hl_store_schema_version(s);
    HL_CHECK(version > 0);
    hl_store_close(s);
    s = NULL;
    HL_REQUIRE(hl_store_open_existing(&s, f.db, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_store_schema_version(s), version);
    unsigned long long n = 1;
    HL_CHECK(hl_store_count(s, &n) == HL_OK);
    HL_CHECK(n == 0);
    hl_store_close(s);
    files_cleanup(&f);
}

/* An empty file: not a ledger for a reader; a new store for hl_store_open. */
HL_TEST(an_empty_file) {
    files f;
    files_init(&f);
    FILE *fp = fopen(f.empty, "w");
    HL_REQUIRE(fp);
    fclose(fp);
    char err[600];
    hl_store *s = NULL;
    HL_CHECK(hl_store_open_existing(&s, f.empty, err, sizeof err) == HL_ERR_UNSUPPORTED);
    HL_CHECK(strstr(err, "not a hybridllm ledger") != NULL);
    size_t n = 1;
    char *b = file_bytes(f.empty, &n);
    HL_CHECK(b && n == 0);
    free(b);
    HL_REQUIRE(hl_store_open(&s, f.empty, err, sizeof err) == HL_OK);
    HL_CHECK(hl_store_schema_version(s) > 0);
    hl_store_close(s);
    files_cleanup(&f);
}

HL_TEST(a_foreign_database_is_refused_untouched) {
    files f;
    files_init(&f);
    make_foreign(f.foreign, false);
    make_foreign(f.wal, true);
    const char *const paths[] = {f.foreign, f.wal};
    for (size_t i = 0; i < 2; i++) {
        size_t n0 = 0, n1 = 0;
        char *before = file_bytes(paths[i], &n0);
        HL_REQUIRE(before && n0 > 0);
        char err[600];
        hl_store *s = NULL;
        HL_CHECK(hl_store_open_existing(&s, paths[i], err, sizeof err) == HL_ERR_UNSUPPORTED);
        HL_CHECK(strstr(err, "not a hybridllm ledger") != NULL);
        HL_CHECK(s == NULL);
        HL_CHECK(hl_store_open(&s, paths[i], err, sizeof err) == HL_ERR_UNSUPPORTED);
        HL_CHECK(s == NULL);
        char *after = file_bytes(paths[i], &n1);
        HL_REQUIRE(after);
        if (n0 != n1 || memcmp(before, after, n0) != 0) HL_FAIL_("%s was changed", paths[i]);
        free(before);
        free(after);
    }
    /* and its table is still the only one */
    sqlite3 *db;
    HL_REQUIRE(sqlite3_open_v2(f.foreign, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *st;
    HL_REQUIRE(sqlite3_prepare_v2(db, "SELECT group_concat(name) FROM sqlite_master", -1, &st, NULL) == SQLITE_OK);
    HL_REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    HL_CHECK_STR_EQ((const char *)sqlite3_column_text(st, 0), "notes");
    sqlite3_finalize(st);
    sqlite3_close(db);
    files_cleanup(&f);
}

HL_TEST_MAIN()
