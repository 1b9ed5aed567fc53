/* auth.c — tokens, keys and the scope every call needs; see auth.h. */
#include "api/auth.h"

#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64url.h"

bool tally_auth_token(const tally_http_request *req, bool allow_query, const char **token, size_t *len)
{
    if (req->authorization) {
        const char *a = req->authorization;
        size_t n = req->authorization_len;
        if (n > 7 && strncasecmp(a, "Bearer ", 7) == 0) {
            size_t i = 7;
            while (i < n && a[i] == ' ')
                i++;
            while (n > i && (a[n - 1] == ' ' || a[n - 1] == '\t'))
                n--;
            *token = a + i;
            *len = n - i;
            return true;
        }
        *token = a; /* another scheme: no token we could know */
        *len = 0;
        return true;
    }
    if (allow_query && req->query) {
        const char *q = req->query, *end = q + req->query_len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            const char *stop = amp ? amp : end;
            if ((size_t)(stop - q) > 13 && memcmp(q, "access_token=", 13) == 0) {
                *token = q + 13;
                *len = (size_t)(stop - q - 13);
                return true;
            }
            q = stop + 1;
        }
    }
    return false;
}

/* The tokens a thread saw last and their SHA-256: a client sends the same
 * token with every request, and hashing it was a sixth of a request's
 * work.  The hash of a token never changes, so nothing needs invalidating;
 * revocation is still checked against the keyring on every request.  A
 * hit is a constant-time comparison of the whole token. */
#define MEMO_SLOTS 8
#define MEMO_TOKEN_MAX 96

typedef struct token_memo {
    size_t len; /* 0: empty */
    char token[MEMO_TOKEN_MAX];
    unsigned char hash[32];
} token_memo;

void tally_auth_hash(const char *token, size_t len, unsigned char hash[32])
{
    static _Thread_local token_memo memo[MEMO_SLOTS];
    uint32_t h = 2166136261u; /* FNV-1a picks the slot */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 16777619u;
    token_memo *m = &memo[h % MEMO_SLOTS];
    if (len && m->len == len && CRYPTO_memcmp(m->token, token, len) == 0) {
        memcpy(hash, m->hash, 32);
        return;
    }
    EVP_Digest(token, len, hash, NULL, EVP_sha256(), NULL);
    if (len && len <= MEMO_TOKEN_MAX) {
        memcpy(m->token, token, len);
        memcpy(m->hash, hash, 32);
        m->len = len;
    }
}

int tally_auth_authenticate(const tally_api *api, const char *token, size_t len, tally_principal *out,
                            tally_error *err)
{
    tally_keyring *kr = tally_engine_keyring(api->engine);
    memset(out, 0, sizeof *out);
    if (api->trusted || !tally_keyring_keys_on(kr)) {
        out->open = true;
        return 0;
    }
    if (!token)
        return tally_fail(err, TALLY_UNAUTHORIZED, NULL,
                          "this server needs an API key: send Authorization: Bearer TOKEN (a WebSocket may pass "
                          "access_token=TOKEN in its URL); `tally keys create` makes one");
    tally_auth_hash(token, len, out->hash);
    if (len == 0 || !tally_keyring_find(kr, out->hash, &out->key))
        return tally_fail(err, TALLY_UNAUTHORIZED, NULL,
                          "the token is not a key of this server (unknown, mistyped or revoked); send "
                          "Authorization: Bearer TOKEN with a live key");
    return 0;
}

int tally_auth_refresh(const tally_api *api, tally_principal *p, tally_error *err)
{
    tally_keyring *kr = tally_engine_keyring(api->engine);
    if (p->open) {
        if (!tally_keyring_keys_on(kr))
            return 0;
        return tally_fail(err, TALLY_UNAUTHORIZED, NULL,
                          "this server has API keys now: reconnect with access_token=TOKEN in the URL");
    }
    if (!tally_keyring_find(kr, p->hash, &p->key))
        return tally_fail(err, TALLY_UNAUTHORIZED, NULL, "the key of this connection has been revoked");
    return 0;
}

int tally_auth_require(const tally_principal *p, const tally_scope *need, const char *what, tally_error *err)
{
    if (p->open || tally_scopes_allow(&p->key.scopes, need))
        return 0;
    char scope[TALLY_SCOPE_NAME_MAX + 16];
    tally_scope_format(need, scope, sizeof scope);
    return tally_fail(err, TALLY_FORBIDDEN, NULL, "the key '%s' lacks the scope %s, needed %s; nothing was changed",
                      p->key.name, scope, what);
}

/* The scope step s needs; *what (a static phrase) says what for, and
 * *what_model names the model in it, if it does: formatted only when the
 * key lacks the scope (this runs for every step of every request). */
static tally_scope step_scope(const tally_step *s, const char **what, const char **what_model)
{
    const char *model = s->model ? s->model->name : "";
    *what_model = model;
    switch (s->op) {
    case TALLY_OP_GET:
    case TALLY_OP_LIST:
        *what = "to read %s records";
        return tally_scope_of(TALLY_SCOPE_READ, model);
    case TALLY_OP_DELETE_MANY:
        if (!s->where || s->where->kind == TALLY_FILTER_TRUE) {
            *what = "to delete every %s record (\"filter\": {})";
            return tally_scope_of(TALLY_SCOPE_ADMIN, NULL);
        }
        /* fall through */
    case TALLY_OP_CREATE:
    case TALLY_OP_UPDATE:
    case TALLY_OP_DELETE:
    case TALLY_OP_UPDATE_MANY:
    case TALLY_OP_UPSERT:
        *what = "to write %s records";
        return tally_scope_of(TALLY_SCOPE_WRITE, model);
    case TALLY_OP_LIMIT:
        *what = "for rate limits";
        return tally_scope_of(TALLY_SCOPE_LIMITS, NULL);
    default: /* every lock operation */
        *what = "for locks";
        return tally_scope_of(TALLY_SCOPE_LOCKS, NULL);
    }
}

int tally_auth_check_plan(const tally_principal *p, const tally_plan *plan, int from, tally_error *err)
{
    if (p->open)
        return 0;
    for (int i = from; i < plan->nsteps; i++) {
        const char *fmt, *model;
        tally_scope need = step_scope(&plan->steps[i], &fmt, &model);
        if (tally_scopes_allow(&p->key.scopes, &need))
            continue;
        char what[160];
        snprintf(what, sizeof what, fmt, model); /* a phrase without %s ignores model */
        tally_auth_require(p, &need, what, err);
        int t = plan->txn ? tally_plan_txn_step(plan, i) : -1;
        if (t >= 0) {
            err->step = t;
            snprintf(err->step_as, sizeof err->step_as, "%s", plan->txn[t].as ? plan->txn[t].as : "");
        }
        return -TALLY_FORBIDDEN;
    }
    return 0;
}

int tally_auth_check_begin(const tally_principal *p, tally_error *err)
{
    if (p->open)
        return 0;
    for (int i = 0; i < p->key.scopes.n; i++) {
        tally_scope_kind k = p->key.scopes.s[i].kind;
        if (k == TALLY_SCOPE_ADMIN || k == TALLY_SCOPE_READ || k == TALLY_SCOPE_WRITE || k == TALLY_SCOPE_LOCKS)
            return 0;
    }
    return tally_fail(err, TALLY_FORBIDDEN, NULL,
                      "the key '%s' lacks a scope a transaction could use (read, write, read:MODEL, write:MODEL or "
                      "locks), needed to begin one",
                      p->key.name);
}

int tally_auth_new_token(char token[TALLY_TOKEN_LEN + 1], unsigned char hash[32], tally_error *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return tally_fail(err, TALLY_INTERNAL, NULL, "the system's random number generator failed; no key was made");
    memcpy(token, TALLY_TOKEN_PREFIX, 4);
    tally_base64url_encode(raw, sizeof raw, token + 4);
    tally_auth_hash(token, TALLY_TOKEN_LEN, hash);
    return 0;
}

int tally_auth_check_key_name(const char *name, size_t len, tally_error *err)
{
    if (len == 0)
        return tally_fail(err, TALLY_BAD_REQUEST, "name", "a key needs a name, such as \"ci\" or \"web-frontend\"");
    bool ok = len < TALLY_KEY_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '-';
    }
    return ok ? 0
              : tally_fail(err, TALLY_BAD_REQUEST, "name",
                           "a key's name is 1 to %d letters, digits, '.', '_' or '-'", TALLY_KEY_NAME_MAX - 1);
}
