/*
 * keyring.h — this server's copy of the API key table (README.md, "Access: keys, scopes, origins"), kept
 * fresh on a thread of its own with a connection of its own.
 *
 * The table lives in the database, so every server on one PostgreSQL (or a
 * `tally keys` command beside a SQLite server) shares it.  Each change bumps
 * a generation counter in the same transaction; the keyring thread reads
 * that counter every TALLY_KEYRING_POLL_MS and reloads the table when it
 * moved, so a key created or revoked anywhere takes effect here within that
 * time.  Changes asked of this server (POST/DELETE /api/keys) run on the
 * keyring's connection and reload before they are answered, so here they
 * take effect at once.
 *
 * Lookups are by the SHA-256 of the presented token, compared in constant
 * time with every stored digest; they copy what they find, so nothing
 * returned points into the cache.  Any thread may look up.
 */
#ifndef TALLY_EXEC_KEYRING_H
#define TALLY_EXEC_KEYRING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/scope.h"
#include "store/backend.h"

#define TALLY_KEYRING_POLL_MS 200

typedef struct tally_keyring tally_keyring;

/* One live key as a request sees it. */
typedef struct tally_key {
    int64_t id;
    char name[TALLY_KEY_NAME_MAX];
    tally_scopes scopes;
} tally_key;

/* A change or listing asked over HTTP, run on the keyring's thread. */
typedef enum tally_keys_op { TALLY_KEYS_CREATE, TALLY_KEYS_REVOKE, TALLY_KEYS_LIST } tally_keys_op;

typedef struct tally_keys_call {
    tally_keys_op op;
    tally_key_row row;   /* create: name, scopes, hash, created_at in, id out; revoke: name */
    int rc;              /* 0 or -code, err filled */
    tally_error err;
    tally_key_row *rows; /* list: every key (malloc'ed, freed with the call by its owner) */
    int nrows;
    /* Called on the keyring thread once done; the call is the caller's again. */
    void (*done)(struct tally_keys_call *call);
    void *arg;
    struct tally_keys_call *next;
} tally_keys_call;

/* Opens the keyring's connection (url and schema borrowed; opt's durability,
 * role KEYS), loads the table, starts the thread. */
int tally_keyring_start(const char *url, const tally_schema *schema, const tally_store_options *opt, tally_keyring **out,
                        tally_error *err);
/* Stops the thread: calls still queued are answered OVERLOADED.  Safe to call twice. */
void tally_keyring_stop(tally_keyring *kr);
/* Stops if needed, closes the connection, frees. */
void tally_keyring_free(tally_keyring *kr);

/* Whether a key has ever existed: then every call but /health needs a token. */
bool tally_keyring_keys_on(tally_keyring *kr);
/* The live key whose token has this SHA-256: true with *out filled, or false. */
bool tally_keyring_find(tally_keyring *kr, const unsigned char hash[32], tally_key *out);

/* Queues a call: 0, or -TALLY_OVERLOADED when stopping (the call stays the caller's). */
int tally_keyring_submit(tally_keyring *kr, tally_keys_call *call);

#endif
