/*
 * thread.h — how the engine starts its threads (writers, readers, session
 * runners, the lock-hints and keyring threads): with every signal blocked,
 * so that a process signal (SIGTERM, SIGINT) is never delivered to a worker,
 * whose default action would end the process.  The server's main thread
 * waits for those signals itself (net/server.c); a program embedding the
 * engine keeps its own signal handling.
 */
#ifndef TALLY_EXEC_THREAD_H
#define TALLY_EXEC_THREAD_H

#include <pthread.h>

/* pthread_create with the new thread's signals blocked; 0 or an errno value. */
int tally_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
