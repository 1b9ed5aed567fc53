/*
 * txn_quota.h — how many interactive transactions (WebSocket begin … end)
 * may be open or waiting to begin at once: per key (--max-txns-per-key, 429
 * TOO_MANY_TRANSACTIONS beyond) and in all (--max-txns, 503 OVERLOADED
 * beyond), both judged at begin.  In open mode there is no key: each
 * connection holds at most one transaction, so only the total applies.
 * Thread-safe (the loops of every connection share one quota).
 */
#ifndef TALLY_API_TXN_QUOTA_H
#define TALLY_API_TXN_QUOTA_H

#include <stdint.h>

#include "core/error.h"

typedef struct tally_txn_quota tally_txn_quota;

tally_txn_quota *tally_txn_quota_new(int per_key, int total);
void tally_txn_quota_free(tally_txn_quota *q);
/* Takes one for key_id (0: no key): 0, or -code with err saying why and what to do. */
int tally_txn_quota_take(tally_txn_quota *q, int64_t key_id, const char *key_name, tally_error *err);
/* Gives back what take took for key_id. */
void tally_txn_quota_give(tally_txn_quota *q, int64_t key_id);

#endif
