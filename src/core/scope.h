/*
 * scope.h — what an API key may do: its scopes, parsed from and written back
 * to text ("read", "write:post", "action:sellTicket"), and whether a key's
 * scopes allow what a call needs.  Plain data, no I/O: the key table lives in
 * the database (store/), its cache in exec/keyring.h, the checks of a
 * request in api/auth.h.
 *
 *   admin           everything: keys, deleteMany of every row, every other scope
 *   read / write    every model (write implies read)
 *   read:M / write:M  model M (write:M implies read:M)
 *   locks, limits, changes, metrics   /api/locks, /api/limits, the change feed, /metrics
 *   action:NAME     running the named action
 */
#ifndef TALLY_CORE_SCOPE_H
#define TALLY_CORE_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define TALLY_SCOPE_NAME_MAX 64  /* a model or action name: 63 bytes + NUL */
#define TALLY_MAX_SCOPES 64      /* scopes of one key */
#define TALLY_SCOPES_TEXT_MAX (TALLY_MAX_SCOPES * (TALLY_SCOPE_NAME_MAX + 8))

typedef enum tally_scope_kind {
    TALLY_SCOPE_ADMIN,
    TALLY_SCOPE_READ,        /* name "": every model; else that model */
    TALLY_SCOPE_WRITE,       /* likewise */
    TALLY_SCOPE_LOCKS,
    TALLY_SCOPE_LIMITS,
    TALLY_SCOPE_CHANGES,
    TALLY_SCOPE_METRICS,
    TALLY_SCOPE_ACTION,      /* name: the action */
} tally_scope_kind;

typedef struct tally_scope {
    tally_scope_kind kind;
    char name[TALLY_SCOPE_NAME_MAX]; /* "" unless read:M, write:M, action:N */
} tally_scope;

typedef struct tally_scopes {
    int n;
    tally_scope s[TALLY_MAX_SCOPES];
} tally_scopes;

/* Parses one scope ("write:post").  0, or -TALLY_BAD_REQUEST with err saying
 * what the scopes are. */
int tally_scope_parse(const char *text, size_t len, tally_scope *out, tally_error *err);

/* Adds a parsed scope to set unless it is already there; -TALLY_BAD_REQUEST past TALLY_MAX_SCOPES. */
int tally_scopes_add(tally_scopes *set, const tally_scope *s, tally_error *err);

/* Parses a space-separated list (as stored in the key table). */
int tally_scopes_parse_list(const char *text, tally_scopes *out, tally_error *err);

/* The scope as text ("write:post") into out (cap bytes). */
void tally_scope_format(const tally_scope *s, char *out, size_t cap);
/* The set as a space-separated list (the stored form). */
void tally_scopes_format(const tally_scopes *set, char *out, size_t cap);

/* Whether set grants need: admin grants everything, write grants the matching
 * read, an unnamed read/write covers every model. */
bool tally_scopes_allow(const tally_scopes *set, const tally_scope *need);

/* Shorthands for the scope a call needs. */
tally_scope tally_scope_of(tally_scope_kind kind, const char *name);

#endif
