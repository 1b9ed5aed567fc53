/*
 * schema.h — the models a Tally server serves, parsed and checked.
 *
 * A schema is read once at start-up from JSON (README.md, "Schema") and is then
 * immutable and shared by every thread without locks.  It owns all its
 * memory; tally_schema_free releases it.
 *
 * Storage layout of a model, fixed here so every layer agrees: column 0 is
 * `id`, 1 `createdAt`, 2 `updatedAt`, then each stored field (every field but
 * hasMany) in declaration order.  tally_field.column gives a field's column;
 * hasMany fields are virtual and have column -1.
 */
#ifndef TALLY_CORE_SCHEMA_H
#define TALLY_CORE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/value.h"

#define TALLY_NAME_MAX 64 /* 63 bytes + NUL */
#define TALLY_MAX_FIELDS 500
#define TALLY_MAX_UNIQUE_FIELDS 8

enum { TALLY_COL_ID = 0, TALLY_COL_CREATED_AT = 1, TALLY_COL_UPDATED_AT = 2, TALLY_COL_FIRST_FIELD = 3 };

typedef enum tally_type {
    TALLY_TYPE_INTEGER,
    TALLY_TYPE_FLOAT,
    TALLY_TYPE_BOOLEAN,
    TALLY_TYPE_STRING,
    TALLY_TYPE_DATETIME,
    TALLY_TYPE_JSON,
    TALLY_TYPE_BELONGS_TO,
    TALLY_TYPE_HAS_MANY,
} tally_type;

typedef enum tally_on_delete {
    TALLY_ON_DELETE_RESTRICT,
    TALLY_ON_DELETE_CASCADE,
    TALLY_ON_DELETE_SET_NULL,
} tally_on_delete;

typedef struct tally_field {
    char name[TALLY_NAME_MAX];
    tally_type type;
    int column;              /* storage column, -1 for hasMany */
    bool required, unique;
    bool has_default, has_min, has_max, has_max_length;
    tally_value default_value; /* text owned by the schema */
    tally_value min, max;      /* INT for integer fields, FLOAT for float fields */
    int64_t max_length;        /* in Unicode code points */
    /* belongsTo / hasMany */
    char target[TALLY_NAME_MAX];
    int target_model;          /* index in schema->models */
    tally_on_delete on_delete; /* belongsTo */
    char inverse[TALLY_NAME_MAX];
    int inverse_field;         /* hasMany: the belongsTo field's index in the target */
} tally_field;

typedef struct tally_unique_key {
    int nfields;
    int fields[TALLY_MAX_UNIQUE_FIELDS]; /* field indexes */
} tally_unique_key;

typedef struct tally_model {
    char name[TALLY_NAME_MAX];
    int index;
    tally_field *fields;
    int nfields;
    int ncolumns; /* 3 + stored fields */
    int *column_field; /* column -> field index (-1 for id/createdAt/updatedAt) */
    tally_unique_key *uniques; /* compound keys from the model's "unique" */
    int nuniques;
    bool changes; /* its writes go to the change feed (the default; "changes": false opts out) */
} tally_model;

/* A rate limit declared beside the models (GCRA, README.md, "Locks, rate limits and safe retries"). */
typedef struct tally_limit {
    char name[TALLY_NAME_MAX];
    int64_t rate;      /* requests per period on average */
    int64_t period_ms;
    int64_t burst;     /* requests at once */
} tally_limit;

/* A named action's parameter (README.md, "Named actions"). */
typedef struct tally_action_param {
    char name[TALLY_NAME_MAX];
    tally_type type;    /* integer, float, boolean, string, datetime or json */
    bool required;
} tally_action_param;

/* A named action: transaction steps where {"$param": name} stands for a
 * value, run as one transaction by POST /api/actions/{name}.  The steps are
 * kept as JSON text; the API layer (api/actions.h) checks them at start-up
 * and fills in the params on each call. */
typedef struct tally_action {
    char name[TALLY_NAME_MAX];
    tally_action_param *params;
    int nparams;
    char *steps;        /* the "steps" list as compact JSON (owned) */
} tally_action;

typedef struct tally_schema {
    tally_model *models;
    int nmodels;
    tally_limit *limits;
    int nlimits;
    tally_action *actions;
    int nactions;
    /* SHA-256 (hex) of the schema's canonical JSON (keys sorted, no spaces):
     * what the database records as a schema version, so that a server with
     * an older schema file is recognised (store/migration.h). */
    char digest[65];
} tally_schema;

/* Parses and checks schema JSON text.  On error returns -code and err names
 * the model, the field and the problem. */
int tally_schema_parse(const char *text, size_t len, tally_schema **out, tally_error *err);
/* Reads and parses a file. */
int tally_schema_load(const char *path, tally_schema **out, tally_error *err);
void tally_schema_free(tally_schema *schema);

/* Lookups; NULL / -1 when there is no such name. */
const tally_model *tally_schema_model(const tally_schema *schema, const char *name, size_t len);
int tally_model_field(const tally_model *model, const char *name, size_t len);
/* The name of column c ("id", "createdAt", "updatedAt" or the field's). */
const char *tally_model_column_name(const tally_model *model, int c);
/* The type of column c (id and belongsTo are INTEGER-like, timestamps DATETIME). */
tally_type tally_model_column_type(const tally_model *model, int c);

const char *tally_type_name(tally_type type);
/* The action called name, or NULL. */
const tally_action *tally_schema_action(const tally_schema *schema, const char *name, size_t len);
/* The schema's "actions" object into s (core/action.c): names, params and
 * the shape of the steps; what the steps mean is checked by api/actions.h. */
struct json_t;
int tally_actions_parse(struct json_t *actions, tally_schema *s, tally_error *err);
void tally_actions_free(tally_schema *s);

/* The limit called name, or NULL. */
const tally_limit *tally_schema_limit(const tally_schema *schema, const char *name, size_t len);

#endif
