/* thread.c — worker threads that take no process signals; see thread.h. */
#include "exec/thread.h"

#include <signal.h>

int tally_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, before;
    sigfillset(&all);
    /* The new thread inherits the creating thread's mask: block everything around the create. */
    pthread_sigmask(SIG_SETMASK, &all, &before);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    return rc;
}
