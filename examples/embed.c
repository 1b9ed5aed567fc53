/*
 * embed.c — libtally in a program of its own: the course enrolment story,
 * 8 threads racing to enrol 80 students into a course of 30 seats, with no
 * server.  Each enrolment is one all-or-nothing transaction: take a seat
 * (slotsTaken + 1) only if the course still has one (expect slotsTaken <=
 * maxStudents), and record the enrolment; past capacity the whole
 * transaction is refused (409 EXPECTATION_FAILED) and nothing of it stays.
 *
 *   cc embed.c $(pkg-config --cflags --libs tally) -o embed
 *   ./embed [SCHEMA] [DATA_FOLDER]    (defaults: examples/shop.json, a new temporary folder, removed after)
 *
 * Prints how many got a seat; exits 1 unless exactly 30 did.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tally.h>

#define THREADS 8
#define STUDENTS_PER_THREAD 10
#define SEATS 30

static tally *db;

typedef struct tally_count {
    int enrolled, refused, other;
} tally_count;

static const char ENROL[] =
    "{\"steps\": ["
    " {\"update\": \"course\", \"id\": 1, \"data\": {\"_atomics\": {\"slotsTaken\": {\"increment\": 1}}},"
    "  \"expect\": {\"slotsTaken\": {\"lessThanOrEqual\": {\"field\": \"maxStudents\"}}}},"
    " {\"create\": \"post\", \"data\": {\"title\": \"enrolled\"}}]}";

static void *student_desk(void *arg)
{
    tally_count *c = arg;
    for (int i = 0; i < STUDENTS_PER_THREAD; i++) {
        tally_answer a;
        tally_call(db, "POST", "/api/transaction", ENROL, -1, &a); /* blocks until durable */
        if (a.status == 200)
            c->enrolled++;
        else if (a.status == 409 && strstr(a.body, "EXPECTATION_FAILED"))
            c->refused++;
        else {
            c->other++;
            fprintf(stderr, "embed: unexpected answer %d %s\n", a.status, a.body);
        }
        tally_answer_free(&a);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *schema = argc > 1 ? argv[1] : "examples/shop.json";
    char tmp[] = "/tmp/tally-embed-XXXXXX";
    const char *data = argc > 2 ? argv[2] : mkdtemp(tmp);
    tally_error err;
    if (!data || tally_open(schema, data, NULL, &db, &err) != 0) {
        fprintf(stderr, "embed: %s\n", data ? err.message : "cannot make a temporary folder");
        return 1;
    }
    tally_answer a;
    char course[128];
    snprintf(course, sizeof course, "{\"name\": \"Databases\", \"maxStudents\": %d}", SEATS);
    if (tally_call(db, "POST", "/api/course", course, -1, &a) != 0 || a.status != 201 ||
        !strstr(a.body, "\"id\":1,")) {
        fprintf(stderr, "embed: the course was not created as record 1 (use a new data folder): %d %s\n", a.status,
                a.body);
        tally_answer_free(&a);
        tally_close(db);
        return 1;
    }
    tally_answer_free(&a);

    pthread_t desks[THREADS];
    tally_count counts[THREADS] = {{0}};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&desks[i], NULL, student_desk, &counts[i]);
    tally_count total = {0};
    for (int i = 0; i < THREADS; i++) {
        pthread_join(desks[i], NULL);
        total.enrolled += counts[i].enrolled;
        total.refused += counts[i].refused;
        total.other += counts[i].other;
    }
    /* The counter as stored: tally_increment by 0 reads it through the write path. */
    int64_t taken = -1;
    if (tally_increment(db, "course", 1, "slotsTaken", 0, &taken, &err) != 0)
        fprintf(stderr, "embed: %s\n", err.message);
    tally_close(db);
    if (argc <= 2) { /* our temporary folder: the database, its WAL and index, the folder's lock */
        const char *files[] = {"tally.db", "tally.db-wal", "tally.db-shm", "tally.lock"};
        char path[sizeof tmp + 16];
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", data, files[i]);
            unlink(path);
        }
        rmdir(data);
    }
    printf("embed: %d students at %d desks: %d enrolled, %d refused (course full), slotsTaken %lld of %d\n",
           THREADS * STUDENTS_PER_THREAD, THREADS, total.enrolled, total.refused, (long long)taken, SEATS);
    return total.enrolled == SEATS && taken == SEATS && total.other == 0 ? 0 : 1;
}
