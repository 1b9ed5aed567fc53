/*
 * queue.h — a bounded queue of jobs between many producer threads (the
 * loops) and one consumer (a worker).  Producers never block: a full queue
 * refuses at once.  The consumer takes everything waiting, up to a batch
 * bound, in one go: that is where group commit comes from.
 */
#ifndef TALLY_EXEC_QUEUE_H
#define TALLY_EXEC_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/job.h"

typedef struct tally_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tally_job *head, *tail;
    size_t depth, max;
    bool closed;
    bool poked; /* tally_queue_poke: the consumer's next wait returns at once */
} tally_queue;

void tally_queue_init(tally_queue *q, size_t max);
void tally_queue_destroy(tally_queue *q);
/* Appends job; returns 0, or -1 when the queue is full or closed (job not taken). */
int tally_queue_push(tally_queue *q, tally_job *job);
/* Waits for jobs and takes up to max of them in order (a list linked by next);
 * returns NULL once the queue is closed and empty. */
tally_job *tally_queue_pop_batch(tally_queue *q, size_t max, size_t *count);
/* The same, waiting at most until deadline_ns (0: no limit).  On a timeout
 * it returns NULL with *count set to (size_t)-1; NULL with *count 0 still
 * means closed and empty. */
tally_job *tally_queue_pop_batch_until(tally_queue *q, size_t max, uint64_t deadline_ns, size_t *count);
/* Takes the first job, waiting at most until deadline_ns (tally_clock_ns);
 * NULL if none came in time. */
tally_job *tally_queue_pop_until(tally_queue *q, uint64_t deadline_ns);
/* Wakes the consumer from tally_queue_pop_batch_until as if its deadline had
 * come (NULL, *count (size_t)-1), for work that is not a job (a hint). */
void tally_queue_poke(tally_queue *q);
/* Refuses new jobs; the consumer still drains what is queued. */
void tally_queue_close(tally_queue *q);
size_t tally_queue_depth(tally_queue *q);

#endif
