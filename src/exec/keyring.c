/*
 * keyring.c — the cached key table and the thread that keeps it fresh; see
 * keyring.h.  The cache is an array replaced whole on each reload, under a
 * read-write lock (lookups share it).  The thread waits on its call queue
 * at most TALLY_KEYRING_POLL_MS, then compares the database's generation
 * with the cached one.
 */
#include "exec/keyring.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/thread.h"

typedef struct entry {
    unsigned char hash[32];
    tally_key key;
} entry;

struct tally_keyring {
    tally_store *store; /* owned; the keyring thread's (and start's) only */
    pthread_rwlock_t lock;
    entry *entries;     /* under lock */
    int n;              /* under lock */
    int64_t generation; /* keyring thread only (after start) */
    atomic_bool ever;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tally_keys_call *head, *tail; /* under mu */
    bool stopping;                /* under mu */
    pthread_t thread;
    bool started;
};

/* Reads the table and replaces the cache.  0 or -code (the cache is kept). */
static int reload(tally_keyring *kr, tally_error *err)
{
    tally_key_row *rows;
    int n;
    tally_keys_state state;
    if (tally_store_keys_list(kr->store, &rows, &n, &state, err))
        return -(int)err->code;
    entry *fresh = n ? calloc((size_t)n, sizeof *fresh) : NULL;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        tally_error perr;
        entry *e = &fresh[kept];
        if (tally_scopes_parse_list(rows[i].scopes, &e->key.scopes, &perr)) {
            fprintf(stderr, "tally: key '%s' has scopes this server does not know (%s); it is refused here\n",
                    rows[i].name, perr.message);
            continue;
        }
        memcpy(e->hash, rows[i].hash, sizeof e->hash);
        e->key.id = rows[i].id;
        snprintf(e->key.name, sizeof e->key.name, "%s", rows[i].name);
        kept++;
    }
    free(rows);
    pthread_rwlock_wrlock(&kr->lock);
    entry *old = kr->entries;
    kr->entries = fresh;
    kr->n = kept;
    pthread_rwlock_unlock(&kr->lock);
    free(old);
    kr->generation = state.generation;
    atomic_store(&kr->ever, state.ever);
    return 0;
}

static void run_call(tally_keyring *kr, tally_keys_call *c)
{
    tally_error_clear(&c->err);
    switch (c->op) {
    case TALLY_KEYS_CREATE: c->rc = tally_store_keys_create(kr->store, &c->row, &c->err); break;
    case TALLY_KEYS_REVOKE: c->rc = tally_store_keys_revoke(kr->store, c->row.name, &c->err); break;
    default: {
        tally_keys_state state;
        c->rc = tally_store_keys_list(kr->store, &c->rows, &c->nrows, &state, &c->err);
    }
    }
    if (c->rc == 0 && c->op != TALLY_KEYS_LIST) {
        tally_error err;
        reload(kr, &err); /* the change takes effect here before it is answered */
    }
}

static struct timespec in_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

static void *keyring_main(void *arg)
{
    tally_keyring *kr = arg;
    struct timespec next_poll = in_ms(TALLY_KEYRING_POLL_MS);
    pthread_mutex_lock(&kr->mu);
    for (;;) {
        while (!kr->head && !kr->stopping) {
            if (pthread_cond_timedwait(&kr->cv, &kr->mu, &next_poll) != 0)
                break; /* time to poll */
        }
        tally_keys_call *c = kr->head;
        if (c) {
            kr->head = c->next;
            if (!kr->head)
                kr->tail = NULL;
        }
        bool stopping = kr->stopping;
        pthread_mutex_unlock(&kr->mu);
        if (c) {
            if (stopping) {
                c->rc = tally_fail(&c->err, TALLY_OVERLOADED, NULL, "the server is stopping; nothing was changed");
            } else {
                run_call(kr, c);
            }
            c->done(c);
        } else if (stopping) {
            return NULL;
        } else {
            tally_keys_state state;
            tally_error err;
            if (tally_store_keys_state(kr->store, &state, &err) == 0 &&
                (state.generation != kr->generation || state.ever != atomic_load(&kr->ever)))
                reload(kr, &err);
            next_poll = in_ms(TALLY_KEYRING_POLL_MS);
        }
        pthread_mutex_lock(&kr->mu);
    }
}

int tally_keyring_start(const char *url, const tally_schema *schema, const tally_store_options *opt, tally_keyring **out,
                        tally_error *err)
{
    *out = NULL;
    tally_keyring *kr = calloc(1, sizeof *kr);
    if (!kr)
        abort();
    pthread_rwlock_init(&kr->lock, NULL);
    pthread_mutex_init(&kr->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&kr->cv, &ca);
    pthread_condattr_destroy(&ca);
    tally_store_options so = *opt;
    so.role = TALLY_STORE_KEYS;
    if (tally_store_open(url, schema, &so, &kr->store, err) || reload(kr, err)) {
        tally_keyring_free(kr);
        return -(int)err->code;
    }
    if (tally_thread_start(&kr->thread, keyring_main, kr) != 0) {
        tally_keyring_free(kr);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the key table's thread");
    }
    kr->started = true;
    *out = kr;
    return 0;
}

void tally_keyring_stop(tally_keyring *kr)
{
    if (!kr)
        return;
    pthread_mutex_lock(&kr->mu);
    kr->stopping = true;
    pthread_cond_signal(&kr->cv);
    pthread_mutex_unlock(&kr->mu);
    if (kr->started)
        pthread_join(kr->thread, NULL);
    kr->started = false;
}

void tally_keyring_free(tally_keyring *kr)
{
    if (!kr)
        return;
    tally_keyring_stop(kr);
    tally_store_close(kr->store);
    free(kr->entries);
    pthread_rwlock_destroy(&kr->lock);
    pthread_mutex_destroy(&kr->mu);
    pthread_cond_destroy(&kr->cv);
    free(kr);
}

bool tally_keyring_keys_on(tally_keyring *kr) { return atomic_load(&kr->ever); }

bool tally_keyring_find(tally_keyring *kr, const unsigned char hash[32], tally_key *out)
{
    int found = -1;
    pthread_rwlock_rdlock(&kr->lock);
    /* Every digest is compared in full, in constant time, whatever matched before. */
    for (int i = 0; i < kr->n; i++)
        if (CRYPTO_memcmp(kr->entries[i].hash, hash, 32) == 0)
            found = i;
    if (found >= 0)
        *out = kr->entries[found].key;
    pthread_rwlock_unlock(&kr->lock);
    return found >= 0;
}

int tally_keyring_submit(tally_keyring *kr, tally_keys_call *call)
{
    call->next = NULL;
    pthread_mutex_lock(&kr->mu);
    if (kr->stopping) {
        pthread_mutex_unlock(&kr->mu);
        return -TALLY_OVERLOADED;
    }
    if (kr->tail)
        kr->tail->next = call;
    else
        kr->head = call;
    kr->tail = call;
    pthread_cond_signal(&kr->cv);
    pthread_mutex_unlock(&kr->mu);
    return 0;
}
