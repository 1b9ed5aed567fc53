/* Unit tests for store/sync_vfs: registration (idempotent, from many threads
 * at once, not the default), WAL databases on real files opened through the
 * shim (commits counted, data read back by a second connection, memory-mapped
 * reads, checkpoints), a rollback-journal database and a temporary database
 * through the shim, a failed open, and a database on the plain default VFS
 * leaving the counter alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite/sync_vfs.h"
#include "test_util.h"

static char g_dir[PATH_MAX];

static void path_in_dir(char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", g_dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static int make_dir(void **state)
{
    (void)state;
    return make_temp_dir(g_dir, sizeof g_dir, "tally-sync-vfs-");
}

static int remove_dir(void **state)
{
    (void)state;
    return remove_temp_dir(g_dir);
}

/* Runs a one-row, one-column query and returns the text of the value. */
static void query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
}

static sqlite3_int64 query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Opens name (in the temp dir) through vfs (NULL = default) in WAL mode with
 * synchronous=FULL, checking that SQLite reports both. */
static sqlite3 *open_wal(const char *name, const char *vfs)
{
    char path[PATH_MAX + 64];
    path_in_dir(path, sizeof path, name);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    if (rc != SQLITE_OK)
        fail_msg("open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    char mode[32];
    query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    exec_ok(db, "PRAGMA synchronous=FULL");
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 2);
    /* Checkpoints only when asked, as the writer runs them. */
    exec_ok(db, "PRAGMA wal_autocheckpoint=0");
    return db;
}

struct reg_arg {
    pthread_barrier_t *start;
    int rc;
};

static void *register_thread(void *p)
{
    struct reg_arg *a = p;
    pthread_barrier_wait(a->start);
    a->rc = tally_sync_vfs_register();
    return NULL;
}

/* Runs first, so that the very first registration is a race. */
static void test_register_concurrent(void **state)
{
    (void)state;
    enum { N = 8 };
    pthread_t th[N];
    struct reg_arg args[N];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, N), 0);
    for (int i = 0; i < N; i++) {
        args[i].start = &start;
        args[i].rc = -1;
        assert_int_equal(pthread_create(&th[i], NULL, register_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].rc, SQLITE_OK);
    }
    pthread_barrier_destroy(&start);
}

static void test_register_idempotent(void **state)
{
    (void)state;
    assert_int_equal(tally_sync_vfs_register(), SQLITE_OK);
    assert_int_equal(tally_sync_vfs_register(), SQLITE_OK);

    sqlite3_vfs *def = sqlite3_vfs_find(NULL);
    sqlite3_vfs *shim = sqlite3_vfs_find(TALLY_SYNC_VFS_NAME);
    assert_non_null(def);
    assert_non_null(shim);
    assert_ptr_not_equal(def, shim); /* not made the default */
    assert_string_equal(shim->zName, TALLY_SYNC_VFS_NAME);
    assert_true(shim->szOsFile > def->szOsFile);
    assert_int_equal(shim->mxPathname, def->mxPathname);

    /* Registered once, however often it was asked. */
    int seen = 0;
    for (sqlite3_vfs *v = def; v; v = v->pNext)
        if (strcmp(v->zName, TALLY_SYNC_VFS_NAME) == 0)
            seen++;
    assert_int_equal(seen, 1);
}

static void test_wal_commits_counted(void **state)
{
    (void)state;
    sqlite3 *db = open_wal("shim.db", TALLY_SYNC_VFS_NAME);

    /* The file really is behind the shim. */
    char *vfsname = NULL;
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_VFSNAME, &vfsname),
                     SQLITE_OK);
    assert_non_null(vfsname);
    char want[128];
    snprintf(want, sizeof want, "%s/%s", TALLY_SYNC_VFS_NAME, sqlite3_vfs_find(NULL)->zName);
    assert_string_equal(vfsname, want); /* "tally-sync/unix" on Linux */
    sqlite3_free(vfsname);

    uint64_t before = tally_sync_vfs_count();
    exec_ok(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT)");
    assert_true(tally_sync_vfs_count() >= before + 1);

    sqlite3_stmt *ins = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t (n, s) VALUES (?, ?)", -1, &ins, NULL),
                     SQLITE_OK);
    enum { COMMITS = 20, ROWS_PER_COMMIT = 50 };
    for (int c = 0; c < COMMITS; c++) {
        before = tally_sync_vfs_count();
        exec_ok(db, "BEGIN");
        for (int r = 0; r < ROWS_PER_COMMIT; r++) {
            int n = c * ROWS_PER_COMMIT + r;
            sqlite3_bind_int(ins, 1, n);
            sqlite3_bind_text(ins, 2, "payload payload payload payload", -1, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        /* Nothing is synced until COMMIT... */
        assert_int_equal(tally_sync_vfs_count(), before);
        exec_ok(db, "COMMIT");
        /* ...and every commit is synced at least once. */
        assert_true(tally_sync_vfs_count() >= before + 1);
    }
    sqlite3_finalize(ins);

    const sqlite3_int64 total = COMMITS * ROWS_PER_COMMIT;
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), total);
    assert_int_equal(query_int(db, "SELECT sum(n) FROM t"), total * (total - 1) / 2);

    /* A second connection through the shim shares the WAL index (xShm*) and
     * reads through mmap (xFetch/xUnfetch); reading syncs nothing. */
    char path[PATH_MAX + 64];
    path_in_dir(path, sizeof path, "shim.db");
    sqlite3 *rd = NULL;
    assert_int_equal(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, TALLY_SYNC_VFS_NAME),
                     SQLITE_OK);
    exec_ok(rd, "PRAGMA mmap_size=16777216");
    before = tally_sync_vfs_count();
    assert_int_equal(query_int(rd, "SELECT count(*) FROM t"), total);
    assert_int_equal(query_int(rd, "SELECT max(n) FROM t"), total - 1);
    assert_int_equal(tally_sync_vfs_count(), before);

    /* The reader sees a commit made after it opened. */
    exec_ok(db, "INSERT INTO t (n, s) VALUES (-1, 'late')");
    assert_int_equal(query_int(rd, "SELECT count(*) FROM t"), total + 1);

    /* A full checkpoint copies the WAL into the database file and syncs it;
     * TRUNCATE then empties the WAL file. The reader holds no snapshot
     * between statements, so nothing blocks it. */
    char wal[PATH_MAX + 64];
    path_in_dir(wal, sizeof wal, "shim.db-wal");
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size > 0);
    before = tally_sync_vfs_count();
    int log_frames = -1, ckpt_frames = -1;
    assert_int_equal(sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE,
                                               &log_frames, &ckpt_frames),
                     SQLITE_OK);
    assert_int_equal(log_frames, 0); /* 0 after TRUNCATE: the WAL is reset */
    assert_int_equal(ckpt_frames, 0);
    assert_true(tally_sync_vfs_count() > before);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_size, 0);

    /* Still readable from both connections after the checkpoint. */
    assert_int_equal(query_int(rd, "SELECT count(*) FROM t"), total + 1);
    assert_int_equal(sqlite3_close(rd), SQLITE_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), total + 1);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    /* And from a fresh connection after both closed: the data is in the file. */
    db = open_wal("shim.db", TALLY_SYNC_VFS_NAME);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), total + 1);
    char ok[16];
    query_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    assert_string_equal(ok, "ok");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_default_vfs_not_counted(void **state)
{
    (void)state;
    sqlite3 *db = open_wal("plain.db", NULL);
    char *vfsname = NULL;
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_VFSNAME, &vfsname),
                     SQLITE_OK);
    assert_non_null(vfsname);
    assert_string_equal(vfsname, sqlite3_vfs_find(NULL)->zName); /* no shim */
    sqlite3_free(vfsname);

    uint64_t before = tally_sync_vfs_count();
    exec_ok(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)");
    for (int i = 0; i < 10; i++)
        exec_ok(db, "INSERT INTO t (n) VALUES (1)");
    assert_int_equal(sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 10);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(tally_sync_vfs_count(), before);
}

/* Rollback-journal mode exercises xDelete and the journal's own syncs. */
static void test_rollback_journal(void **state)
{
    (void)state;
    char path[PATH_MAX + 64];
    path_in_dir(path, sizeof path, "journal.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     TALLY_SYNC_VFS_NAME),
                     SQLITE_OK);
    char mode[32];
    query_text(db, "PRAGMA journal_mode=DELETE", mode, sizeof mode);
    assert_string_equal(mode, "delete");
    exec_ok(db, "PRAGMA synchronous=FULL");
    exec_ok(db, "CREATE TABLE t (n INTEGER)");
    for (int i = 0; i < 5; i++) {
        uint64_t before = tally_sync_vfs_count();
        exec_ok(db, "INSERT INTO t VALUES (42)");
        assert_true(tally_sync_vfs_count() >= before + 1);
    }
    assert_int_equal(query_int(db, "SELECT sum(n) FROM t"), 5 * 42);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    char journal[PATH_MAX + 64];
    path_in_dir(journal, sizeof journal, "journal.db-journal");
    assert_int_equal(access(journal, F_OK), -1); /* deleted through the shim */
}

/* A temporary database (xOpen with a NULL name) spilled to disk. */
static void test_temp_database(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2("", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     TALLY_SYNC_VFS_NAME),
                     SQLITE_OK);
    exec_ok(db, "PRAGMA cache_size=2");
    exec_ok(db, "CREATE TABLE t (n INTEGER, s TEXT)");
    exec_ok(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000) "
                "INSERT INTO t SELECT i, printf('%0200d', i) FROM c");
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 5000);
    assert_int_equal(query_int(db, "SELECT count(DISTINCT s) FROM t"), 5000);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A failed real xOpen must leave the shim file closed too (no xClose on a
 * file that was never opened: ASan/UBSan would notice). */
static void test_open_failure(void **state)
{
    (void)state;
    char path[PATH_MAX + 64];
    path_in_dir(path, sizeof path, "missing/nope.db");
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             TALLY_SYNC_VFS_NAME);
    assert_int_equal(rc, SQLITE_CANTOPEN);
    sqlite3_close(db);

    path_in_dir(path, sizeof path, "absent.db");
    db = NULL;
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, TALLY_SYNC_VFS_NAME);
    /* The read-only open is lazy in some builds; the first read must fail. */
    if (rc == SQLITE_OK)
        assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM sqlite_schema", NULL, NULL, NULL),
                             SQLITE_OK);
    else
        assert_int_equal(rc, SQLITE_CANTOPEN);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_concurrent),
        cmocka_unit_test(test_register_idempotent),
        cmocka_unit_test(test_wal_commits_counted),
        cmocka_unit_test(test_default_vfs_not_counted),
        cmocka_unit_test(test_rollback_journal),
        cmocka_unit_test(test_temp_database),
        cmocka_unit_test(test_open_failure),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
