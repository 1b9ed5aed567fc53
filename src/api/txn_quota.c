/* txn_quota.c — open interactive transactions per key and in all; see txn_quota.h. */
#include "api/txn_quota.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct held {
    int64_t key_id;
    int n;
} held;

struct tally_txn_quota {
    pthread_mutex_t mu;
    int per_key, total;
    int open;      /* under mu */
    held *keys;    /* under mu: keys with at least one */
    int nkeys, cap;
};

tally_txn_quota *tally_txn_quota_new(int per_key, int total)
{
    tally_txn_quota *q = calloc(1, sizeof *q);
    if (!q)
        abort();
    pthread_mutex_init(&q->mu, NULL);
    q->per_key = per_key;
    q->total = total;
    return q;
}

void tally_txn_quota_free(tally_txn_quota *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    free(q->keys);
    free(q);
}

static held *find(tally_txn_quota *q, int64_t key_id)
{
    for (int i = 0; i < q->nkeys; i++)
        if (q->keys[i].key_id == key_id)
            return &q->keys[i];
    return NULL;
}

int tally_txn_quota_take(tally_txn_quota *q, int64_t key_id, const char *key_name, tally_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    held *h = key_id ? find(q, key_id) : NULL;
    if (key_id && h && h->n >= q->per_key) {
        rc = tally_fail(err, TALLY_TOO_MANY_TRANSACTIONS, NULL,
                        "the key '%s' already has %d interactive transactions open, its limit (--max-txns-per-key); "
                        "commit or roll one back first", key_name, q->per_key);
    } else if (q->open >= q->total) {
        rc = tally_fail(err, TALLY_OVERLOADED, NULL,
                        "the server already has %d interactive transactions open, its limit (--max-txns); nothing "
                        "began, retry later", q->total);
    } else {
        q->open++;
        if (key_id && !h) {
            if (q->nkeys == q->cap) {
                q->cap = q->cap ? q->cap * 2 : 16;
                q->keys = realloc(q->keys, (size_t)q->cap * sizeof *q->keys);
                if (!q->keys)
                    abort();
            }
            h = &q->keys[q->nkeys++];
            *h = (held){.key_id = key_id};
        }
        if (h)
            h->n++;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void tally_txn_quota_give(tally_txn_quota *q, int64_t key_id)
{
    pthread_mutex_lock(&q->mu);
    q->open--;
    held *h = key_id ? find(q, key_id) : NULL;
    if (h && --h->n == 0)
        *h = q->keys[--q->nkeys];
    pthread_mutex_unlock(&q->mu);
}
