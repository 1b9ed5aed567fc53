/*
 * gen_ts.c — `tally gen ts`: TypeScript types for a schema; see gen_ts.h.
 *
 * For a model `product` it writes
 *
 *   export interface Product        the record: id, fields (null unless required), createdAt, updatedAt
 *   export interface ProductCreate  required-without-default fields required, belongsTo as a link or a
 *                                   nested create, hasMany as a list of those
 *   export interface ProductUpdate  every field optional, belongsTo as a link, `_atomics` with the
 *                                   numeric fields only (none: no `_atomics` at all), `_where`
 *   export type ProductNumeric      the numeric fields' names (never when there are none)
 *
 * and `export interface Schema { product: {record, create, update, numeric}; … }`.
 * Helper types come from @tally/client as the namespace `Tally`, so that no
 * model's name can shadow them.
 */
#include "cli/gen_ts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TYPE_NAME_MAX (TALLY_NAME_MAX + 16)

/* The model's type name: its name with the first letter in upper case (post -> Post, rateLimit -> RateLimit). */
static void type_name(const tally_model *m, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%c%s%s", m->name[0] >= 'a' && m->name[0] <= 'z' ? m->name[0] - 32 : m->name[0], m->name + 1,
             suffix);
}

static bool is_numeric(const tally_field *f) { return f->type == TALLY_TYPE_INTEGER || f->type == TALLY_TYPE_FLOAT; }

/* The TypeScript type of a stored value as the server answers it. */
static const char *answer_type(const tally_field *f)
{
    switch (f->type) {
    case TALLY_TYPE_INTEGER:
    case TALLY_TYPE_FLOAT:
    case TALLY_TYPE_BELONGS_TO: return "number";
    case TALLY_TYPE_BOOLEAN: return "boolean";
    case TALLY_TYPE_STRING:
    case TALLY_TYPE_DATETIME: return "string";
    case TALLY_TYPE_JSON: return "unknown";
    case TALLY_TYPE_HAS_MANY: break;
    }
    return "never";
}

static void number_text(tally_buf *b, const tally_value *v)
{
    if (v->kind == TALLY_VALUE_INT)
        tally_buf_addf(b, "%lld", (long long)v->u.i);
    else
        tally_buf_addf(b, "%.17g", v->u.f);
}

/* A JSDoc line saying what the schema declares of the field. */
static void field_doc(tally_buf *b, const tally_schema *s, const tally_field *f)
{
    tally_buf_addf(b, "  /** %s", tally_type_name(f->type));
    if (f->type == TALLY_TYPE_BELONGS_TO || f->type == TALLY_TYPE_HAS_MANY)
        tally_buf_addf(b, " %s", s->models[f->target_model].name);
    if (f->type == TALLY_TYPE_BELONGS_TO)
        tally_buf_add(b, f->on_delete == TALLY_ON_DELETE_CASCADE    ? " (onDelete cascade)"
                         : f->on_delete == TALLY_ON_DELETE_SET_NULL ? " (onDelete setNull)"
                                                                    : " (onDelete restrict)");
    if (f->type == TALLY_TYPE_HAS_MANY)
        tally_buf_addf(b, " (inverse %s)", f->inverse);
    if (f->required)
        tally_buf_add(b, ", required");
    if (f->unique)
        tally_buf_add(b, ", unique");
    if (f->has_default && (is_numeric(f) || f->type == TALLY_TYPE_BOOLEAN)) {
        tally_buf_add(b, ", default ");
        if (f->type == TALLY_TYPE_BOOLEAN)
            tally_buf_add(b, f->default_value.u.i ? "true" : "false");
        else
            number_text(b, &f->default_value);
    } else if (f->has_default) {
        tally_buf_add(b, ", has a default"); /* a string's text could end the comment: not shown */
    }
    if (f->has_min) {
        tally_buf_add(b, ", min ");
        number_text(b, &f->min);
    }
    if (f->has_max) {
        tally_buf_add(b, ", max ");
        number_text(b, &f->max);
    }
    if (f->has_max_length)
        tally_buf_addf(b, ", maxLength %lld", (long long)f->max_length);
    if (f->type == TALLY_TYPE_DATETIME)
        tally_buf_add(b, ", RFC 3339");
    tally_buf_add(b, " */\n");
}

static void record_type(tally_buf *b, const tally_schema *s, const tally_model *m)
{
    char name[TYPE_NAME_MAX];
    type_name(m, "", name, sizeof name);
    tally_buf_addf(b, "/** A %s record as the server answers it. */\nexport interface %s {\n  id: number;\n", m->name, name);
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        if (f->type == TALLY_TYPE_HAS_MANY)
            continue; /* virtual: list the child model instead */
        field_doc(b, s, f);
        tally_buf_addf(b, "  %s: %s%s;\n", f->name, answer_type(f), f->required || f->type == TALLY_TYPE_JSON ? "" : " | null");
    }
    tally_buf_add(b, "  createdAt: string;\n  updatedAt: string;\n}\n\n");
}

/* The type a create or update takes for field f (without null). */
static void input_type(tally_buf *b, const tally_schema *s, const tally_field *f, bool create)
{
    char target[TYPE_NAME_MAX];
    if (f->type == TALLY_TYPE_BELONGS_TO || f->type == TALLY_TYPE_HAS_MANY)
        type_name(&s->models[f->target_model], "Create", target, sizeof target);
    switch (f->type) {
    case TALLY_TYPE_BELONGS_TO:
        if (create)
            tally_buf_addf(b, "Tally.LinkOrCreate<%s>", target);
        else
            tally_buf_add(b, "Tally.Link");
        return;
    case TALLY_TYPE_HAS_MANY: /* the children's link back is set by the server */
        tally_buf_addf(b, "Array<Tally.HasManyItem<Omit<%s, \"%s\">>>", target, f->inverse);
        return;
    case TALLY_TYPE_DATETIME:
        tally_buf_add(b, "string | Date");
        return;
    case TALLY_TYPE_INTEGER:
    case TALLY_TYPE_FLOAT:
        tally_buf_add(b, "number | Tally.Ref");
        return;
    default:
        tally_buf_add(b, answer_type(f));
        return;
    }
}

static void create_type(tally_buf *b, const tally_schema *s, const tally_model *m)
{
    char name[TYPE_NAME_MAX];
    type_name(m, "Create", name, sizeof name);
    tally_buf_addf(b, "/** What creating a %s takes. */\nexport interface %s {\n", m->name, name);
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        bool needed = f->required && !f->has_default && f->type != TALLY_TYPE_HAS_MANY;
        field_doc(b, s, f);
        tally_buf_addf(b, "  %s%s: ", f->name, needed ? "" : "?");
        input_type(b, s, f, true);
        tally_buf_add(b, f->required || f->type == TALLY_TYPE_HAS_MANY || f->type == TALLY_TYPE_JSON ? ";\n" : " | null;\n");
    }
    tally_buf_add(b, "}\n\n");
}

static void update_type(tally_buf *b, const tally_schema *s, const tally_model *m)
{
    char name[TYPE_NAME_MAX], record[TYPE_NAME_MAX];
    type_name(m, "Update", name, sizeof name);
    type_name(m, "", record, sizeof record);
    tally_buf_addf(b, "/** What updating a %s takes: fields to set, `_atomics` on its numeric fields, a `_where` guard. */\n"
                      "export interface %s {\n", m->name, name);
    int numeric = 0;
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        if (f->type == TALLY_TYPE_HAS_MANY)
            continue;
        numeric += is_numeric(f);
        field_doc(b, s, f);
        tally_buf_addf(b, "  %s?: ", f->name);
        input_type(b, s, f, false);
        tally_buf_add(b, f->required || f->type == TALLY_TYPE_JSON ? ";\n" : " | null;\n");
    }
    if (numeric) {
        tally_buf_add(b, "  /** Changes inside the database, in one statement: the answer carries the new values. */\n"
                         "  _atomics?: {\n");
        for (int i = 0; i < m->nfields; i++)
            if (is_numeric(&m->fields[i]))
                tally_buf_addf(b, "    %s?: Tally.AtomicChange;\n", m->fields[i].name);
        tally_buf_add(b, "  };\n");
    }
    tally_buf_addf(b, "  /** A guard on the row: the change happens only while it matches (else GuardFailed). */\n"
                      "  _where?: Tally.Filter<%s>;\n}\n\n", record);
    type_name(m, "Numeric", name, sizeof name);
    tally_buf_addf(b, "/** The numeric fields of %s: the ones increment, decrement and `_atomics` take. */\nexport type %s =",
                   m->name, name);
    if (!numeric)
        tally_buf_add(b, " never");
    for (int i = 0, n = 0; i < m->nfields; i++)
        if (is_numeric(&m->fields[i]))
            tally_buf_addf(b, "%s \"%s\"", n++ ? " |" : "", m->fields[i].name);
    tally_buf_add(b, ";\n\n");
}

/* -1 with err when two generated names are the same (post and Post, or a model named productCreate beside product). */
static int check_names(const tally_schema *s, char *err, size_t errlen)
{
    static const char *const suffixes[] = {"", "Create", "Update", "Numeric"};
    static const char *const taken[] = {"Tally", "Schema", "LimitName", "Actions", "ActionName"};
    int n = s->nmodels * 4;
    char(*names)[TYPE_NAME_MAX] = calloc((size_t)n + 1, sizeof *names);
    const char **owner = calloc((size_t)n + 1, sizeof *owner);
    if (!names || !owner)
        abort();
    int rc = 0;
    for (int i = 0; i < s->nmodels && !rc; i++)
        for (int k = 0; k < 4 && !rc; k++) {
            int at = i * 4 + k;
            type_name(&s->models[i], suffixes[k], names[at], sizeof names[at]);
            owner[at] = s->models[i].name;
            for (size_t t = 0; t < sizeof taken / sizeof taken[0] && !rc; t++)
                if (strcmp(names[at], taken[t]) == 0) {
                    snprintf(err, errlen, "model '%s' would get the type name %s, which the generated file uses "
                                          "for itself; rename the model", owner[at], names[at]);
                    rc = -1;
                }
            for (int j = 0; j < at && !rc; j++)
                if (strcmp(names[j], names[at]) == 0) {
                    snprintf(err, errlen, "models '%s' and '%s' would both get the TypeScript type %s; rename one",
                             owner[j], owner[at], names[at]);
                    rc = -1;
                }
        }
    free(names);
    free(owner);
    return rc;
}

int tally_gen_ts(const tally_schema *s, const char *source, tally_buf *b, char *err, size_t errlen)
{
    if (check_names(s, err, errlen))
        return -1;
    tally_buf_addf(b,
                   "// Types for the Tally schema %s (digest %.12s), written by `tally gen ts`: do not edit; run it\n"
                   "// again after changing the schema. Use them with @tally/client:\n"
                   "//   import { createClient } from \"@tally/client\";\n"
                   "//   import type { Schema } from \"./this-file.js\";\n"
                   "//   const db = createClient<Schema>({ url: \"http://127.0.0.1:8080\" });\n"
                   "import type * as Tally from \"@tally/client\";\n\n",
                   source, s->digest);
    for (int i = 0; i < s->nmodels; i++) {
        record_type(b, s, &s->models[i]);
        create_type(b, s, &s->models[i]);
        update_type(b, s, &s->models[i]);
    }
    tally_buf_add(b, "/** Every model of the schema: createClient<Schema>(…) types db.<model>. */\nexport type Schema = {\n");
    for (int i = 0; i < s->nmodels; i++) {
        char r[TYPE_NAME_MAX], c[TYPE_NAME_MAX], u[TYPE_NAME_MAX], n[TYPE_NAME_MAX];
        type_name(&s->models[i], "", r, sizeof r);
        type_name(&s->models[i], "Create", c, sizeof c);
        type_name(&s->models[i], "Update", u, sizeof u);
        type_name(&s->models[i], "Numeric", n, sizeof n);
        tally_buf_addf(b, "  %s: { record: %s; create: %s; update: %s; numeric: %s };\n", s->models[i].name, r, c, u, n);
    }
    tally_buf_add(b, "};\n\n/** The rate limits the schema declares. */\nexport type LimitName =");
    if (!s->nlimits)
        tally_buf_add(b, " never");
    for (int i = 0; i < s->nlimits; i++)
        tally_buf_addf(b, "%s \"%s\"", i ? " |" : "", s->limits[i].name);
    tally_buf_add(b, ";\n\n/** The named actions the schema declares and their params: POST /api/actions/{name}. */\n"
                     "export type Actions = {\n");
    for (int i = 0; i < s->nactions; i++) {
        const tally_action *a = &s->actions[i];
        tally_buf_addf(b, "  %s: {", a->name);
        for (int k = 0; k < a->nparams; k++) {
            const tally_action_param *p = &a->params[k];
            const char *t = p->type == TALLY_TYPE_INTEGER || p->type == TALLY_TYPE_FLOAT ? "number"
                            : p->type == TALLY_TYPE_BOOLEAN                             ? "boolean"
                            : p->type == TALLY_TYPE_JSON                                ? "unknown"
                                                                                        : "string";
            tally_buf_addf(b, "%s %s%s: %s%s", k ? ";" : "", p->name, p->required ? "" : "?", t,
                           p->required ? "" : " | null");
        }
        tally_buf_add(b, a->nparams ? " };\n" : "};\n");
    }
    tally_buf_add(b, "};\n\n/** The names of the actions. */\nexport type ActionName = keyof Actions;\n");
    return 0;
}

static int gen_usage(void)
{
    fprintf(stderr, "usage: tally gen ts --schema FILE [--out FILE]   (TypeScript types for @tally/client; stdout "
                    "without --out)\n");
    return 2;
}

int tally_gen_cli(int argc, char **argv)
{
    /* argv[0] is "gen" */
    if (argc < 2 || strcmp(argv[1], "ts") != 0) {
        if (argc >= 2)
            fprintf(stderr, "tally: gen writes ts (TypeScript) only, not '%s'\n", argv[1]);
        return gen_usage();
    }
    const char *schema_path = getenv("TALLY_SCHEMA"), *out_path = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        size_t n = strcspn(a, "=");
        if ((strncmp(a, "--schema", n) == 0 && n == 8) || (strncmp(a, "--out", n) == 0 && n == 5)) {
            if (a[n] == '=')
                v = a + n + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                fprintf(stderr, "tally: %s needs a file name\n", a);
                return gen_usage();
            }
            if (n == 8)
                schema_path = v;
            else
                out_path = v;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            gen_usage();
            return 0;
        } else {
            fprintf(stderr, "tally: gen ts takes --schema FILE and --out FILE, not '%s'\n", a);
            return gen_usage();
        }
    }
    if (!schema_path) {
        fprintf(stderr, "tally: gen ts needs --schema FILE\n");
        return gen_usage();
    }
    tally_schema *schema;
    tally_error err;
    if (tally_schema_load(schema_path, &schema, &err)) {
        fprintf(stderr, "tally: bad schema %s: %s\n", schema_path, err.message);
        return 1;
    }
    tally_buf b;
    tally_buf_init(&b);
    char msg[512];
    int rc = tally_gen_ts(schema, schema_path, &b, msg, sizeof msg);
    tally_schema_free(schema);
    if (rc) {
        fprintf(stderr, "tally: cannot write types for %s: %s\n", schema_path, msg);
        tally_buf_free(&b);
        return 1;
    }
    FILE *f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "tally: cannot write %s: %s\n", out_path, strerror(errno));
        tally_buf_free(&b);
        return 1;
    }
    bool ok = fwrite(b.s, 1, b.len, f) == b.len;
    ok = (out_path ? fclose(f) : fflush(f)) == 0 && ok;
    tally_buf_free(&b);
    if (!ok) {
        fprintf(stderr, "tally: writing %s failed: %s\n", out_path ? out_path : "stdout", strerror(errno));
        return 1;
    }
    if (out_path)
        fprintf(stderr, "tally: wrote the types of %s to %s\n", schema_path, out_path);
    return 0;
}
