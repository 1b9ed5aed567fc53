/* keys.c — `tally keys create|list|revoke`; see keys.h. */
#include "cli/keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/auth.h"
#include "api/keys.h"
#include "core/datetime.h"
#include "store/backend.h"

static int create(tally_store *st, const tally_schema *schema, const tally_keys_cli *k)
{
    tally_error err;
    tally_key_row row = {0};
    tally_scopes set;
    char token[TALLY_TOKEN_LEN + 1];
    if (!k->name) {
        fprintf(stderr, "tally: keys create needs --name NAME (such as ci or admin)\n");
        return 2;
    }
    if (tally_auth_check_key_name(k->name, strlen(k->name), &err) ||
        tally_keys_decode_scopes(schema, k->scopes, k->nscopes, &set, &err)) {
        fprintf(stderr, "tally: %s%s\n", err.message,
                k->nscopes ? "" : " (give --scope SCOPE, once per scope)");
        return 2;
    }
    snprintf(row.name, sizeof row.name, "%s", k->name);
    tally_scopes_format(&set, row.scopes, sizeof row.scopes);
    if (tally_auth_new_token(token, row.hash, &err)) {
        fprintf(stderr, "tally: %s\n", err.message);
        return 1;
    }
    row.created_at = tally_now_ms();
    if (tally_store_keys_create(st, &row, &err)) {
        fprintf(stderr, "tally: %s; nothing was changed\n", err.message);
        return 1;
    }
    printf("%s\n", token); /* the token alone on stdout, once: it is not stored */
    fprintf(stderr, "tally: created key '%s' with scopes %s; keep the token above, it cannot be shown again\n",
            row.name, row.scopes);
    return 0;
}

static int list(tally_store *st)
{
    tally_error err;
    tally_key_row *rows;
    int n;
    tally_keys_state state;
    if (tally_store_keys_list(st, &rows, &n, &state, &err)) {
        fprintf(stderr, "tally: %s\n", err.message);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char at[40];
        tally_datetime_format(rows[i].created_at, at);
        printf("%-24s %-30s %s\n", rows[i].name, at, rows[i].scopes);
    }
    if (n == 0)
        fprintf(stderr, state.ever ? "tally: no keys: every call but /health is refused until one is created\n"
                                   : "tally: no keys yet: the server serves without keys, on loopback only\n");
    free(rows);
    return 0;
}

static int revoke(tally_store *st, const tally_keys_cli *k)
{
    tally_error err;
    const char *name = k->revoke_name ? k->revoke_name : k->name;
    if (!name) {
        fprintf(stderr, "usage: tally keys revoke NAME (--data DIR | --db URL)\n");
        return 2;
    }
    if (tally_store_keys_revoke(st, name, &err)) {
        fprintf(stderr, "tally: %s; nothing was changed\n", err.message);
        return 1;
    }
    fprintf(stderr, "tally: revoked key '%s'; every server refuses it within a second\n", name);
    return 0;
}

int tally_keys_cli_run(const tally_keys_cli *k)
{
    tally_schema *schema = NULL;
    tally_error err;
    if (k->schema_path && tally_schema_load(k->schema_path, &schema, &err)) {
        fprintf(stderr, "tally: bad schema %s: %s\n", k->schema_path, err.message);
        return 1;
    }
    if (k->dir && mkdir(k->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "tally: cannot create data folder %s: %s\n", k->dir, strerror(errno));
        tally_schema_free(schema);
        return 1;
    }
    tally_store *st;
    tally_store_options so = {.role = TALLY_STORE_KEYS, .relaxed_durability = k->relaxed};
    if (tally_store_open(k->db, schema, &so, &st, &err) || tally_store_keys_prepare(st, &err)) {
        char where[300];
        tally_url_redact(k->dir ? k->dir : k->db, where, sizeof where);
        fprintf(stderr, "tally: cannot use the key table of %s: %s\n", where, err.message);
        tally_schema_free(schema);
        return 1;
    }
    int rc = strcmp(k->command, "create") == 0 ? create(st, schema, k)
             : strcmp(k->command, "list") == 0 ? list(st)
                                               : revoke(st, k);
    tally_store_close(st);
    tally_schema_free(schema);
    return rc;
}
