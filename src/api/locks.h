/*
 * locks.h — the request side of locks, rate limits and idempotency keys
 * (README.md, "Locks, rate limits and safe retries"): names and keys from the
 * path, bodies into plan steps, and the key that makes a retry safe.
 */
#ifndef TALLY_API_LOCKS_H
#define TALLY_API_LOCKS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"
#include "core/plan.h"
#include "exec/job.h"

#define TALLY_KEY_MAX 128 /* bytes of a lock name or a limit key */
#define TALLY_LOCK_TTL_MAX 86400000
#define TALLY_LOCK_WAIT_MAX 30000

/* A lock name or limit key: 1 to 128 bytes of UTF-8, no control characters. */
bool tally_valid_key(const char *s, size_t len);

/* POST /api/locks/{name}/{op}: op is acquire ({"ttlMs", "waitMs"}), renew
 * ({"token", "ttlMs"}), release ({"token"}), or "check" ({"token"}, the
 * transaction step).  Returns the step index or -code. */
int tally_decode_lock(tally_plan *plan, const char *name, size_t len, const char *op, json_t *body, tally_error *err);
/* GET /api/locks */
int tally_decode_lock_list(tally_plan *plan);
/* POST /api/limits/{name}/{key} with an optional body {"cost": n}. */
int tally_decode_limit(tally_plan *plan, const char *name, size_t name_len, const char *key, size_t key_len,
                       json_t *body, tally_error *err);

/* Idempotency-Key: checks the header value (1 to 255 visible ASCII
 * characters) and fills a key scoped by method and path, with the body's
 * SHA-256.  Returns NULL with err set when the key is malformed. */
tally_idem_key *tally_idem_key_new(const char *method, size_t method_len, const char *path, size_t path_len,
                                   const char *key, size_t key_len, const char *body, size_t body_len, tally_error *err);

#endif
