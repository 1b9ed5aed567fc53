/*
 * hints.c — wake-up hints between Tally servers on one PostgreSQL, with
 * LISTEN/NOTIFY on a side connection (role TALLY_STORE_HINTS), never from a
 * writer lane: a NOTIFY inside a transaction takes an instance-wide lock
 * until its commit is flushed, which would serialise every lane's commits
 * (docs/architecture.md, "PostgreSQL: many servers on one database").  So a lane commits first and the hint goes afterwards from
 * here, several names merged into one statement.
 *
 * The channel is tally_locks; a payload is a released lock's name in hex (a
 * name is bytes, a payload must be text).  Hints are only hints: lost on a
 * reconnect, never needed for correctness, since waiters poll as well.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/internal.h"
#include "store/sql.h"

#define CHANNEL "tally_locks"
/* A payload must stay under PostgreSQL's 8000 bytes; longer names are left to polling. */
#define MAX_HINT_NAME 3000

int tally_pg_hint_listen(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (st->portable)
        return tally_fail(err, TALLY_INTERNAL, NULL, "no LISTEN/NOTIFY with --portable: lock waiters only poll");
    if (tally_pg_exec(st, "LISTEN " CHANNEL, err))
        return -(int)err->code;
    if (PQsetnonblocking(st->conn, 1) != 0)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "cannot make the hint connection to %s non-blocking",
                          st->where);
    return PQsocket(st->conn);
}

static void hex(tally_sql *q, const char *name, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        char two[3] = {digits[c >> 4], digits[c & 15], 0};
        tally_sql_add(q, two);
    }
}

int tally_pg_hint_send(tally_store *base, const char *const *names, const size_t *lens, int n, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    /* One statement for all of them: the names in hex, comma-separated, one notification each. */
    tally_sql list;
    tally_sql_init(&list);
    int sent = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > MAX_HINT_NAME)
            continue;
        if (sent++)
            tally_sql_add(&list, ",");
        hex(&list, names[i], lens[i]);
    }
    int rc = 0;
    if (sent) {
        tally_value v = tally_value_text(list.s, strlen(list.s));
        PGresult *r;
        tally_pg_diag d;
        if (tally_pg_query(st, NULL, "SELECT pg_notify('" CHANNEL "', h) FROM unnest(string_to_array($1, ',')) AS h",
                           &v, 1, &r, &d))
            rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "cannot send lock hints to %s (%s)", st->where,
                            d.lost ? "connection lost" : d.sqlstate ? d.sqlstate : "no answer");
        PQclear(r);
    }
    tally_sql_free(&list);
    return rc;
}

static int unhex(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

int tally_pg_hint_take(tally_store *base, void (*on)(void *ctx, const char *name, size_t len), void *ctx,
                       tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (!PQconsumeInput(st->conn) || PQstatus(st->conn) != CONNECTION_OK)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the hint connection to %s was lost", st->where);
    PGnotify *note;
    while ((note = PQnotifies(st->conn)) != NULL) {
        size_t hl = strlen(note->extra);
        char name[MAX_HINT_NAME];
        size_t len = 0;
        bool ok = strcmp(note->relname, CHANNEL) == 0 && hl % 2 == 0 && hl / 2 <= sizeof name;
        for (size_t i = 0; ok && i < hl; i += 2) {
            int hi = unhex(note->extra[i]), lo = unhex(note->extra[i + 1]);
            ok = hi >= 0 && lo >= 0;
            name[len++] = (char)(hi << 4 | lo);
        }
        if (ok && len)
            on(ctx, name, len);
        PQfreemem(note);
    }
    return 0;
}
