/* route.c — the key a request is routed by; see route.h. */
#include "exec/route.h"

#include <string.h>

/* FNV-1a over bytes, continued from h: stable across processes and servers. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static uint64_t mix_int(uint64_t h, int64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    return mix(h, b, sizeof b);
}

/* A value that is known before the plan runs; false for a $ref (known only
 * once an earlier step ran) or an unset value. */
static bool mix_value(uint64_t *h, const tally_value *v)
{
    switch (v->kind) {
    case TALLY_VALUE_INT: *h = mix_int(mix(*h, "i", 1), v->u.i); return true;
    case TALLY_VALUE_FLOAT: *h = mix(mix(*h, "f", 1), &v->u.f, sizeof v->u.f); return true;
    case TALLY_VALUE_TEXT: *h = mix(mix_int(mix(*h, "t", 1), (int64_t)v->u.text.len), v->u.text.ptr, v->u.text.len); return true;
    default: return false;
    }
}

/* A last avalanche, so that nearby ids spread over few lanes evenly. */
static uint64_t avalanche(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t model_seed(const tally_step *s)
{
    return mix(1469598103934665603ULL, s->model->name, strlen(s->model->name) + 1);
}

/* The value given for column c in a create's or upsert's sets. */
static const tally_value *set_value(const tally_step *s, int c)
{
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i].column == c)
            return &s->sets[i].value;
    return NULL;
}

bool tally_route_key(const tally_plan *plan, uint64_t *hash)
{
    if (plan->nsteps == 0)
        return false;
    const tally_step *s = &plan->steps[0];
    uint64_t h;
    switch (s->op) {
    case TALLY_OP_GET:
    case TALLY_OP_UPDATE:
    case TALLY_OP_DELETE:
        h = model_seed(s);
        if (!mix_value(&h, &s->id))
            return false;
        break;
    case TALLY_OP_UPSERT:
        h = model_seed(s);
        for (int i = 0; i < s->non; i++) {
            const tally_value *v = set_value(s, s->on[i]);
            if (!v || !mix_value(&h, v))
                return false;
        }
        break;
    case TALLY_OP_LOCK_ACQUIRE:
    case TALLY_OP_LOCK_RENEW:
    case TALLY_OP_LOCK_RELEASE:
    case TALLY_OP_LOCK_CHECK:
        *hash = tally_route_lock(s->name, s->name_len);
        return true;
    case TALLY_OP_LIMIT:
        h = mix(mix(1469598103934665603ULL, "limit", 6), s->limit->name, strlen(s->limit->name) + 1);
        h = mix(h, s->name, s->name_len);
        break;
    default: /* create, list, bulk changes by filter, the lock list */
        return false;
    }
    *hash = avalanche(h);
    return true;
}

uint64_t tally_route_lock(const char *name, size_t len)
{
    return avalanche(mix(mix(1469598103934665603ULL, "lock", 5), name, len));
}
