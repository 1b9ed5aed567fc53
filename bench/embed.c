/*
 * embed.c — in-process increments a second: libtally's tally_increment and
 * tally_call against raw SQLite doing the same durable work, with the same
 * threads, for bench/embed.sh.
 *
 *   build/bench_embed MODE THREADS SECONDS FOLDER
 *     MODE increment  tally_increment(t, "counter", 1, "n", 1, …)
 *          call       tally_call(t, "PATCH", "/api/counter/1", {"_atomics": {"n": {"increment": 1}}})
 *          sqlite     each thread its own connection to FOLDER/raw.db: WAL, synchronous=FULL,
 *                     busy_timeout 5000, `UPDATE counter SET n = n + 1 WHERE id = 1` in a
 *                     transaction of its own (autocommit), prepared once; SQLITE_BUSY retried
 *   FOLDER: a new data folder (tally) or where raw.db goes (sqlite).
 *
 * Prints one line: MODE THREADS ops ops/s cpu-µs/op (the process's user+system
 * CPU over the run, divided by the operations), caller-cpu-µs/op (the calling
 * threads' own CPU only: for tally what a call costs beside the engine's
 * threads, wake-ups included; for raw SQLite everything), caller-user-µs/op
 * (the same in user space only: the library's own work on the calling
 * thread, without the kernel's sleeping and waking), writes/commit (tally: from
 * /metrics; raw SQLite: 1), after checking that the stored counter is
 * exactly the increments counted.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tally.h"

static const char SCHEMA[] = "{\"models\": {\"counter\": {\"fields\": {\"n\": {\"type\": \"integer\", \"default\": 0}}}}}";
static const char PATCH[] = "{\"_atomics\": {\"n\": {\"increment\": 1}}}";

static atomic_bool stop;
static tally *db;
static char raw_path[4200];
static const char *mode;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double user_s_of(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

static double cpu_s_of(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double cpu_s(void) { return cpu_s_of(RUSAGE_SELF); }

/* The calling threads' own CPU (what a call costs its caller, the engine's threads left out). */
static pthread_mutex_t caller_mu = PTHREAD_MUTEX_INITIALIZER;
static double caller_cpu, caller_user;

static void add_caller_cpu(double before, double before_user)
{
    double spent = cpu_s_of(RUSAGE_THREAD) - before, user = user_s_of(RUSAGE_THREAD) - before_user;
    pthread_mutex_lock(&caller_mu);
    caller_cpu += spent;
    caller_user += user;
    pthread_mutex_unlock(&caller_mu);
}

/* The sum of a metric's lines in /metrics text (every lane). */
static double metric_sum(const char *text, const char *name)
{
    double sum = 0;
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '{') {
            const char *v = strchr(p, ' ');
            if (v)
                sum += atof(v + 1);
        }
    return sum;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_embed: %s: %s\n", what, why);
    exit(1);
}

static void *run_tally(void *arg)
{
    long *ops = arg;
    bool call = strcmp(mode, "call") == 0;
    double before = cpu_s_of(RUSAGE_THREAD), before_user = user_s_of(RUSAGE_THREAD);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (call) {
            tally_answer a;
            tally_call(db, "PATCH", "/api/counter/1", PATCH, sizeof PATCH - 1, &a);
            if (a.status != 200)
                die("tally_call", a.body);
            tally_answer_free(&a);
        } else {
            tally_error err;
            if (tally_increment(db, "counter", 1, "n", 1, NULL, &err) != 0)
                die("tally_increment", err.message);
        }
        (*ops)++;
    }
    add_caller_cpu(before, before_user);
    return NULL;
}

static sqlite3 *raw_open(void)
{
    sqlite3 *c;
    if (sqlite3_open(raw_path, &c) != SQLITE_OK)
        die(raw_path, sqlite3_errmsg(c));
    sqlite3_busy_timeout(c, 5000);
    char *msg = NULL;
    if (sqlite3_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) != SQLITE_OK)
        die("pragmas", msg);
    return c;
}

static void *run_sqlite(void *arg)
{
    long *ops = arg;
    double before = cpu_s_of(RUSAGE_THREAD), before_user = user_s_of(RUSAGE_THREAD);
    sqlite3 *c = raw_open();
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c, "UPDATE counter SET n = n + 1 WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(c));
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            continue; /* past the busy timeout: try again */
        if (rc != SQLITE_DONE)
            die("update", sqlite3_errmsg(c));
        (*ops)++;
    }
    sqlite3_finalize(st);
    sqlite3_close(c);
    add_caller_cpu(before, before_user);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_embed increment|call|sqlite THREADS SECONDS FOLDER\n");
        return 2;
    }
    mode = argv[1];
    int threads = atoi(argv[2]);
    double seconds = atof(argv[3]);
    const char *folder = argv[4];
    bool raw = strcmp(mode, "sqlite") == 0;
    if (threads < 1 || threads > 1024 || seconds <= 0 || (!raw && strcmp(mode, "increment") && strcmp(mode, "call")))
        die("arguments", "MODE is increment, call or sqlite; THREADS 1..1024; SECONDS > 0");
    if (raw) {
        snprintf(raw_path, sizeof raw_path, "%s/raw.db", folder);
        sqlite3 *c = raw_open();
        char *msg = NULL;
        if (sqlite3_exec(c, "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
                            "INSERT OR REPLACE INTO counter VALUES (1, 0);", NULL, NULL, &msg) != SQLITE_OK)
            die("create", msg);
        sqlite3_close(c);
    } else {
        tally_error err;
        if (tally_open(SCHEMA, folder, NULL, &db, &err) != 0)
            die("tally_open", err.message);
        tally_answer a;
        tally_call(db, "POST", "/api/counter", "{}", 2, &a);
        if (a.status != 201 || !strstr(a.body, "\"id\":1,"))
            die("the counter (use a new folder)", a.body);
        tally_answer_free(&a);
    }
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    long *ops = calloc((size_t)threads, sizeof *ops);
    double c0 = cpu_s(), t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, raw ? run_sqlite : run_tally, &ops[i]);
    struct timespec nap = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (time_t)seconds) * 1e9)};
    nanosleep(&nap, NULL);
    atomic_store(&stop, true);
    long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += ops[i];
    }
    double dt = now_s() - t0, cpu = cpu_s() - c0;
    /* The stored counter must be exactly the operations counted. */
    int64_t n = -1;
    double per_commit = 1; /* raw SQLite: one increment a transaction */
    if (!raw) {
        tally_answer a;
        tally_call(db, "GET", "/metrics", NULL, 0, &a);
        double batches = metric_sum(a.body, "tally_lane_batches_total");
        if (batches > 0)
            per_commit = metric_sum(a.body, "tally_lane_writes_total") / batches;
        tally_answer_free(&a);
    }
    if (raw) {
        sqlite3 *c = raw_open();
        sqlite3_stmt *st;
        sqlite3_prepare_v2(c, "SELECT n FROM counter WHERE id = 1", -1, &st, NULL);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(c);
    } else {
        tally_increment(db, "counter", 1, "n", 0, &n, NULL);
        tally_close(db);
    }
    if (n != total) {
        fprintf(stderr, "bench_embed: the counter is %lld after %ld increments\n", (long long)n, total);
        return 1;
    }
    printf("%-9s %3d threads  %9ld ops  %9.0f ops/s  %7.2f cpu-us/op  %6.2f caller-cpu-us/op  %6.2f caller-user-us/op  "
           "%6.1f writes/commit\n", mode, threads, total, total / dt, cpu * 1e6 / (double)total,
           caller_cpu * 1e6 / (double)total, caller_user * 1e6 / (double)total, per_commit);
    free(ops);
    free(th);
    return 0;
}
