/* lock_hints.c — the hints thread: listens, sends, reconnects; see lock_hints.h. */
#include "exec/lock_hints.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/thread.h"

/* Names waiting to be sent: a handful between two wake-ups; beyond this many
 * the rest are dropped (their waiters poll). */
#define MAX_PENDING 1024

typedef struct pending_name {
    char *name; /* malloc'ed */
    size_t len;
} pending_name;

struct tally_lock_hints {
    char *url;                  /* owned copy */
    const tally_schema *schema; /* borrowed */
    tally_store_options opt;
    tally_hint_fn on_hint;
    void *ctx;
    pthread_t thread;
    int wake[2];                /* a pipe: a byte written wakes the thread (names to send, or stop) */
    pthread_mutex_t mu;         /* guards pending, npending, stopping */
    pending_name pending[MAX_PENDING];
    int npending;
    pending_name sending[MAX_PENDING]; /* the thread's: what it took out of pending */
    bool stopping;
    bool joined; /* the thread has ended (stop is called twice) */
    atomic_uint_fast64_t sent, received;
    atomic_bool listening;
};

/* Takes the names to send out of h (under its mutex) into out; returns how many, or -1 when stopping. */
static int take_pending(tally_lock_hints *h, pending_name *out)
{
    pthread_mutex_lock(&h->mu);
    int n = h->stopping ? -1 : h->npending;
    if (n > 0)
        memcpy(out, h->pending, (size_t)n * sizeof *out);
    h->npending = 0;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static void deliver(void *arg, const char *name, size_t len)
{
    tally_lock_hints *h = arg;
    atomic_fetch_add(&h->received, 1);
    h->on_hint(h->ctx, name, len);
}

/* Sends what is pending on st; false when the connection failed. */
static bool send_pending(tally_lock_hints *h, tally_store *st, pending_name *batch, int n)
{
    if (n <= 0)
        return true;
    const char *names[MAX_PENDING] = {0};
    size_t lens[MAX_PENDING] = {0};
    for (int i = 0; i < n; i++) {
        names[i] = batch[i].name;
        lens[i] = batch[i].len;
    }
    tally_error err;
    bool ok = !st || st->ops->hint_send(st, names, lens, n, &err) == 0; /* not connected: lost, as hints may be */
    if (st && ok)
        atomic_fetch_add(&h->sent, (uint64_t)n);
    for (int i = 0; i < n; i++)
        free(batch[i].name);
    return ok;
}

static void *hints_main(void *arg)
{
    tally_lock_hints *h = arg;
    tally_store *st = NULL;
    int sock = -1;
    int backoff_ms = 100;
    for (;;) {
        if (!st) {
            tally_error err;
            if (tally_store_open(h->url, h->schema, &h->opt, &st, &err) == 0 &&
                (sock = st->ops->hint_listen(st, &err)) >= 0) {
                atomic_store(&h->listening, true);
                backoff_ms = 100;
            } else {
                if (st)
                    tally_store_close(st);
                st = NULL;
                sock = -1;
            }
        }
        struct pollfd fds[2] = {{.fd = h->wake[0], .events = POLLIN}, {.fd = sock, .events = POLLIN}};
        int rc = poll(fds, st ? 2 : 1, st ? -1 : backoff_ms);
        if (!st && backoff_ms < 5000)
            backoff_ms *= 2;
        if (rc < 0 && errno != EINTR)
            break;
        bool lost = false;
        if (fds[0].revents) {
            drain(h->wake[0]);
            int n = take_pending(h, h->sending);
            if (n < 0)
                break;
            lost = !send_pending(h, st, h->sending, n);
        }
        /* After a send too: our own notifications may have come in with its
         * answer, already read off the socket into libpq's queue. */
        if (st && !lost && (fds[1].revents || fds[0].revents)) {
            tally_error err;
            lost = st->ops->hint_take(st, deliver, h, &err) != 0;
        }
        if (lost) { /* hints meanwhile are lost; waiters poll */
            atomic_store(&h->listening, false);
            tally_store_close(st);
            st = NULL;
            sock = -1;
        }
    }
    if (st)
        tally_store_close(st);
    return NULL;
}

int tally_lock_hints_start(const char *url, const tally_schema *schema, const tally_store_options *opt,
                           tally_hint_fn on_hint, void *ctx, tally_lock_hints **out, tally_error *err)
{
    tally_lock_hints *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    h->url = strdup(url);
    h->schema = schema;
    h->opt = *opt;
    h->opt.role = TALLY_STORE_HINTS;
    h->on_hint = on_hint;
    h->ctx = ctx;
    pthread_mutex_init(&h->mu, NULL);
    if (pipe2(h->wake, O_NONBLOCK | O_CLOEXEC) != 0 || tally_thread_start(&h->thread, hints_main, h) != 0) {
        if (h->wake[0] > 0) {
            close(h->wake[0]);
            close(h->wake[1]);
        }
        pthread_mutex_destroy(&h->mu);
        free(h->url);
        free(h);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the lock hints thread");
    }
    *out = h;
    return 0;
}

static void poke(tally_lock_hints *h)
{
    ssize_t w = write(h->wake[1], "", 1); /* a full pipe is a wake-up already pending */
    (void)w;
}

void tally_lock_hints_released(tally_lock_hints *h, const char *name, size_t len)
{
    if (!h || len == 0)
        return;
    pthread_mutex_lock(&h->mu);
    bool known = false, first = h->npending == 0;
    for (int i = 0; i < h->npending && !known; i++)
        known = h->pending[i].len == len && memcmp(h->pending[i].name, name, len) == 0;
    if (!known && h->npending < MAX_PENDING) {
        char *copy = malloc(len);
        if (!copy)
            abort();
        memcpy(copy, name, len);
        h->pending[h->npending++] = (pending_name){copy, len};
    }
    pthread_mutex_unlock(&h->mu);
    if (first)
        poke(h);
}

tally_lock_hints_stats tally_lock_hints_get_stats(tally_lock_hints *h)
{
    tally_lock_hints_stats s = {0};
    if (h) {
        s.sent = atomic_load(&h->sent);
        s.received = atomic_load(&h->received);
        s.listening = atomic_load(&h->listening);
    }
    return s;
}

void tally_lock_hints_stop(tally_lock_hints *h)
{
    if (!h || h->joined)
        return; /* the engine stops at drain and again when it closes */
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    poke(h);
    pthread_join(h->thread, NULL);
    h->joined = true;
}

void tally_lock_hints_free(tally_lock_hints *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->npending; i++)
        free(h->pending[i].name);
    close(h->wake[0]);
    close(h->wake[1]);
    pthread_mutex_destroy(&h->mu);
    free(h->url);
    free(h);
}
