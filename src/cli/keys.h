/*
 * keys.h — `tally keys create|list|revoke`: the API key table of a database
 * from the command line, while a server serves it or not.  These never take
 * the data folder's lock (the server holds it); SQLite's own locking orders
 * them against the server's writer, and every server sees the change within
 * a second (exec/keyring.h).
 */
#ifndef TALLY_CLI_KEYS_H
#define TALLY_CLI_KEYS_H

#include <stdbool.h>

typedef struct tally_keys_cli {
    const char *command;       /* "create", "list" or "revoke" */
    const char *db;            /* the engine's URL: a SQLite file or postgresql://… */
    const char *dir;           /* the SQLite data folder (created if missing), or NULL */
    const char *schema_path;   /* optional: read:M and write:M are checked against it */
    const char *name;          /* create: --name */
    const char *const *scopes; /* create: --scope … */
    int nscopes;
    const char *revoke_name;   /* revoke NAME */
    bool relaxed;              /* --durability-relaxed: the database may run with fsync off */
} tally_keys_cli;

/* Runs the command: the exit status (0, 1 when the database refused, 2 for a usage mistake). */
int tally_keys_cli_run(const tally_keys_cli *k);

#endif
