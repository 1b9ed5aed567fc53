/*
 * keys.h — the API keys over HTTP, for an admin key (README.md, "Access: keys, scopes, origins"):
 *   POST /api/keys {"name", "scopes": [...]}  201 {"name", "scopes", "token"}: the token, once
 *   GET /api/keys                             200 {"keys": [{"name", "scopes", "createdAt"}]}, never tokens
 *   DELETE /api/keys/{name}                   200 {"name", "revoked": true}
 * The changes run on the keyring's own connection (exec/keyring.h), so they
 * take effect on this server before they are answered and on every other
 * server within TALLY_KEYRING_POLL_MS.  Idempotency-Key is not applied here:
 * a stored answer would keep the token; a repeated create is refused with
 * 409 instead, which is as safe.
 */
#ifndef TALLY_API_KEYS_H
#define TALLY_API_KEYS_H

#include "api/api.h"
#include "core/scope.h"

/* name: the {name} segment or NULL for /api/keys.  Returns TALLY_API_NOW or TALLY_API_LATER. */
int tally_api_keys(const tally_api *api, const tally_http_request *req, const char *name, tally_http_response *resp);

/* Decodes a key's scopes (a JSON list of strings) into set, checking read:M
 * and write:M against the schema (NULL: syntax only).  0 or -TALLY_BAD_REQUEST. */
int tally_keys_decode_scopes(const tally_schema *schema, const char *const *scopes, int n, tally_scopes *set,
                             tally_error *err);

#endif
