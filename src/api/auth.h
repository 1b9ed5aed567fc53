/*
 * auth.h — who is asking and whether they may (README.md, "Access: keys,
 * scopes, origins"): the token of a request, the key it names, and the scope a
 * call needs checked against that key's scopes.
 *
 * A request carries `Authorization: Bearer TOKEN`; a WebSocket upgrade may
 * carry `access_token=TOKEN` in its query instead (a browser cannot set the
 * header there).  A token is `tly_` and 32 random bytes in base64url; only
 * its SHA-256 is stored, and it is found by comparing digests in constant
 * time (exec/keyring.h).  While no key has ever existed the server is in open
 * mode and every call is allowed (api/origin.h then guards the Host).
 *
 * Nothing here logs or copies a token beyond the caller's buffers.
 */
#ifndef TALLY_API_AUTH_H
#define TALLY_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "api/api.h"
#include "core/plan.h"
#include "core/scope.h"
#include "exec/keyring.h"

#define TALLY_TOKEN_PREFIX "tly_"
#define TALLY_TOKEN_LEN 47 /* "tly_" + 43 characters of base64url for 32 bytes */

typedef struct tally_principal {
    bool open;              /* open mode: no key has ever existed, everything is allowed */
    unsigned char hash[32]; /* the SHA-256 of the token (keyed mode) */
    tally_key key;          /* the key it named, as it was when last looked up */
} tally_principal;

/* The request's token: the Bearer credential, or (allow_query: WebSocket
 * upgrades) an access_token query parameter.  false when there is none. */
bool tally_auth_token(const tally_http_request *req, bool allow_query, const char **token, size_t *len);

/* Who the token names: 0 with *out filled (open mode needs no token), or
 * -TALLY_UNAUTHORIZED with err saying what to send.  token may be NULL. */
int tally_auth_authenticate(const tally_api *api, const char *token, size_t len, tally_principal *out,
                            tally_error *err);
/* Looks the principal's key up again (a WebSocket checks every message
 * against the key as it is now): 0, or -TALLY_UNAUTHORIZED once revoked. */
int tally_auth_refresh(const tally_api *api, tally_principal *p, tally_error *err);

/* 0 when p may do what needs `need`; else -TALLY_FORBIDDEN whose message
 * names the scope and what it is for (`what`, e.g. "to read post records"). */
int tally_auth_require(const tally_principal *p, const tally_scope *need, const char *what, tally_error *err);

/* Every step of plan from `from` on, checked before any runs: a write of a
 * model needs write:M (a nested create of another model too), a read read:M,
 * deleteMany of every row ({"filter": {}}) admin, locks locks, limits limits.
 * A refusal names the transaction step (err->step) when plan is one. */
int tally_auth_check_plan(const tally_principal *p, const tally_plan *plan, int from, tally_error *err);

/* Whether p may open an interactive transaction: any read or write scope. */
int tally_auth_check_begin(const tally_principal *p, tally_error *err);

/* A new token (NUL-terminated, TALLY_TOKEN_LEN characters) and its SHA-256. */
int tally_auth_new_token(char token[TALLY_TOKEN_LEN + 1], unsigned char hash[32], tally_error *err);
/* SHA-256 of a token as presented. */
void tally_auth_hash(const char *token, size_t len, unsigned char hash[32]);

/* A key name: 1 to 63 of [A-Za-z0-9._-].  0 or -TALLY_BAD_REQUEST. */
int tally_auth_check_key_name(const char *name, size_t len, tally_error *err);

#endif
