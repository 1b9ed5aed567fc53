/* test_util.h — helpers the unit tests share: JSON written with ' for " so it
 * stays readable in C, schemas parsed and looked up, a temporary folder, and
 * SQL that must run.  Include it after <cmocka.h> (the helpers fail the test
 * with fail_msg).  All static inline: a test uses what it needs. */
#ifndef TALLY_TEST_UTIL_H
#define TALLY_TEST_UTIL_H

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/schema.h"

/* ---- JSON ------------------------------------------------------------------------------------ */

/* A copy of sq with every ' turned into "; the caller frees it. */
static inline char *dq(const char *sq)
{
    char *out = strdup(sq);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* JSON written with ' for ", parsed with json_loads flags; bad JSON fails the test. */
static inline json_t *json_sq(const char *sq, size_t flags)
{
    char *text = dq(sq);
    json_error_t jerr;
    json_t *j = json_loads(text, flags, &jerr);
    if (!j)
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    free(text);
    return j;
}

/* JSON written with ' for ": any value, duplicate keys refused. */
static inline json_t *J(const char *sq)
{
    return json_sq(sq, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY);
}

/* ---- schemas --------------------------------------------------------------------------------- */

/* Parses schema JSON into *out; a refusal is printed and returns -1 (for cmocka setups). */
static inline int parse_schema(const char *json, tally_schema **out)
{
    tally_error err;
    if (tally_schema_parse(json, strlen(json), out, &err) != 0) {
        fprintf(stderr, "schema refused: %s\n", err.message);
        return -1;
    }
    return 0;
}

/* The model called name; a missing one fails the test. */
static inline const tally_model *M(const tally_schema *s, const char *name)
{
    const tally_model *m = tally_schema_model(s, name, strlen(name));
    if (!m)
        fail_msg("no model %s", name);
    return m;
}

/* The field called name; a missing one fails the test. */
static inline const tally_field *F(const tally_model *m, const char *name)
{
    int fi = tally_model_field(m, name, strlen(name));
    if (fi < 0)
        fail_msg("no field %s.%s", m->name, name);
    return &m->fields[fi];
}

/* The column of the field called name. */
static inline int col(const tally_model *m, const char *name)
{
    return F(m, name)->column;
}

/* ---- files and SQL --------------------------------------------------------------------------- */

/* Makes a fresh folder $TMPDIR/<prefix>XXXXXX (/tmp if TMPDIR is unset or
 * empty) and writes its path into dir; 0, or -1 if it cannot. */
static inline int make_temp_dir(char *dir, size_t cap, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/%sXXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes the files in dir, then dir itself; 0, or -1 if it cannot. */
static inline int remove_temp_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char p[PATH_MAX + 256];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

/* Runs SQL that must succeed; an error fails the test with the statement. */
static inline void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

#endif
