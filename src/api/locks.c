/* locks.c — locks, limits and idempotency keys from requests; see locks.h. */
#include "api/locks.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "api/decode.h"

bool tally_valid_key(const char *s, size_t len)
{
    if (len == 0 || len > TALLY_KEY_MAX)
        return false;
    for (size_t i = 0; i < len;) { /* well-formed UTF-8, no control characters */
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len || (n == 1 && (c < 0x20 || c == 0x7f)))
            return false;
        if (n == 2 && c < 0xc2)
            return false; /* overlong */
        for (size_t k = 1; k < n; k++)
            if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

/* An optional whole number field within [min, max]. */
static int number(json_t *body, const char *key, int64_t min, int64_t max, int64_t dflt, int64_t *out, tally_error *err)
{
    json_t *v = json_object_get(body, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return tally_fail(err, TALLY_BAD_REQUEST, key, "%s is a whole number from %lld to %lld", key, (long long)min,
                          (long long)max);
    *out = json_integer_value(v);
    return 0;
}

int tally_decode_lock(tally_plan *plan, const char *name, size_t len, const char *op, json_t *body, tally_error *err)
{
    static const struct {
        const char *op;
        tally_op code;
        const char *const keys[3];
    } ops[] = {{"acquire", TALLY_OP_LOCK_ACQUIRE, {"ttlMs", "waitMs", NULL}},
               {"renew", TALLY_OP_LOCK_RENEW, {"token", "ttlMs", NULL}},
               {"release", TALLY_OP_LOCK_RELEASE, {"token", NULL}},
               {"check", TALLY_OP_LOCK_CHECK, {"token", NULL}}};
    size_t k = 0;
    while (k < sizeof ops / sizeof ops[0] && strcmp(ops[k].op, op))
        k++;
    if (k == sizeof ops / sizeof ops[0])
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "unknown lock operation '%s': use acquire, renew or release", op);
    if (!tally_valid_key(name, len))
        return tally_fail(err, TALLY_BAD_REQUEST, "name",
                          "a lock name is 1 to 128 bytes of UTF-8 without control characters, URL-encoded in the path");
    if (!json_is_object(body))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "the body is a JSON object such as {\"ttlMs\": 30000}");
    if (tally_decode_check_keys(body, ops[k].keys, op, err))
        return -TALLY_BAD_REQUEST;
    tally_step *s = tally_plan_add_step(plan, ops[k].code, NULL);
    s->name = tally_arena_strndup(&plan->arena, name, len);
    s->name_len = len;
    if (ops[k].code == TALLY_OP_LOCK_ACQUIRE || ops[k].code == TALLY_OP_LOCK_RENEW) {
        if (!json_object_get(body, "ttlMs"))
            return tally_fail(err, TALLY_BAD_REQUEST, "ttlMs", "ttlMs is required: how long the lease lasts, 1 to %d ms",
                              TALLY_LOCK_TTL_MAX);
        if (number(body, "ttlMs", 1, TALLY_LOCK_TTL_MAX, 0, &s->ttl_ms, err))
            return -TALLY_BAD_REQUEST;
    }
    if (ops[k].code == TALLY_OP_LOCK_ACQUIRE) {
        if (number(body, "waitMs", 0, TALLY_LOCK_WAIT_MAX, 0, &s->wait_ms, err))
            return -TALLY_BAD_REQUEST;
    } else {
        json_t *t = json_object_get(body, "token");
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 64)
            return tally_fail(err, TALLY_BAD_REQUEST, "token", "token is required: the token that acquire returned");
        s->token = tally_arena_strndup(&plan->arena, json_string_value(t), json_string_length(t));
    }
    return plan->nsteps - 1;
}

int tally_decode_lock_list(tally_plan *plan)
{
    tally_plan_add_step(plan, TALLY_OP_LOCK_LIST, NULL);
    return plan->nsteps - 1;
}

int tally_decode_limit(tally_plan *plan, const char *name, size_t name_len, const char *key, size_t key_len,
                       json_t *body, tally_error *err)
{
    const tally_limit *l = tally_schema_limit(plan->schema, name, name_len);
    if (!l)
        return tally_fail(err, TALLY_NOT_FOUND, NULL, "there is no limit '%.*s' in the schema's \"limits\"",
                          (int)name_len, name);
    if (!tally_valid_key(key, key_len))
        return tally_fail(err, TALLY_BAD_REQUEST, "key",
                          "a limit key is 1 to 128 bytes of UTF-8 without control characters, URL-encoded in the path");
    static const char *const keys[] = {"cost", NULL};
    if (body && (!json_is_object(body) || tally_decode_check_keys(body, keys, "a limit call", err)))
        return json_is_object(body) ? -TALLY_BAD_REQUEST
                                    : tally_fail(err, TALLY_BAD_REQUEST, NULL, "the body is empty or {\"cost\": n}");
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_LIMIT, NULL);
    s->limit = l;
    s->name = tally_arena_strndup(&plan->arena, key, key_len);
    s->name_len = key_len;
    if (number(body, "cost", 1, 1000000000, 1, &s->cost, err))
        return -TALLY_BAD_REQUEST;
    if (s->cost > l->burst)
        return tally_fail(err, TALLY_BAD_REQUEST, "cost",
                          "cost %lld is more than the limit's burst of %lld, so it could never be allowed",
                          (long long)s->cost, (long long)l->burst);
    return plan->nsteps - 1;
}

tally_idem_key *tally_idem_key_new(const char *method, size_t method_len, const char *path, size_t path_len,
                                   const char *key, size_t key_len, const char *body, size_t body_len, tally_error *err)
{
    bool ok = key_len >= 1 && key_len <= 255;
    for (size_t i = 0; ok && i < key_len; i++)
        ok = key[i] > 0x20 && key[i] < 0x7f;
    if (!ok) {
        tally_fail(err, TALLY_BAD_REQUEST, "Idempotency-Key",
                   "the Idempotency-Key header is 1 to 255 visible ASCII characters (a UUID is a good choice)");
        return NULL;
    }
    tally_idem_key *k = calloc(1, sizeof *k);
    k->method = strndup(method, method_len);
    k->path = strndup(path, path_len);
    k->key = strndup(key, key_len);
    EVP_Digest(body ? body : "", body_len, k->hash, NULL, EVP_sha256(), NULL);
    return k;
}
