/* Unit tests for cli/gen_ts: the TypeScript written for the shop schema
 * (records, creates, updates, numeric fields, links, the Schema type),
 * a model without numeric fields (no _atomics), and clashing type names
 * refused.  tests/e2e/gen-ts.test.mjs compiles the output with tsc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/gen_ts.h"
#include "shop_json.h"

static char *generate(const char *json, char *err, size_t errlen, int *rc)
{
    tally_schema *s;
    tally_error e;
    assert_int_equal(tally_schema_parse(json, strlen(json), &s, &e), 0);
    tally_buf b;
    tally_buf_init(&b);
    *rc = tally_gen_ts(s, "schema.json", &b, err, errlen);
    tally_schema_free(s);
    if (*rc) {
        tally_buf_free(&b);
        return NULL;
    }
    return b.s;
}

static void has(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("the generated TypeScript lacks: %s\n---\n%s", part, text);
}

static void shop(void **state)
{
    (void)state;
    char err[256];
    int rc;
    char *ts = generate(SHOP_JSON, err, sizeof err, &rc);
    assert_int_equal(rc, 0);
    has(ts, "import type * as Tally from \"@tally/client\";");
    has(ts, "export interface Customer {\n  id: number;\n  /** string, required */\n  name: string;\n");
    has(ts, "  /** integer, default 0 */\n  orderCount: number | null;\n");
    has(ts, "export interface CustomerCreate {\n  /** string, required */\n  name: string;\n");
    has(ts, "  email?: string | null;\n");
    has(ts, "  _atomics?: {\n    orderCount?: Tally.AtomicChange;\n  };\n");
    has(ts, "  _where?: Tally.Filter<Customer>;\n");
    has(ts, "export type EventNumeric = \"soldTicketCount\" | \"availableTicketCount\";");
    has(ts, "  /** belongsTo event (onDelete restrict), required */\n  event: number;\n");
    has(ts, "  event: Tally.LinkOrCreate<EventCreate>;\n");
    has(ts, "  event?: Tally.Link;\n");
    has(ts, "  images?: Array<Tally.HasManyItem<Omit<ImageCreate, \"post\">>>;\n");
    has(ts, "  /** integer, default 0, min 0 */\n  stock: number | null;\n");
    has(ts, "export type TicketNumeric = never;");
    has(ts, "  rateLimit: { record: RateLimit; create: RateLimitCreate; update: RateLimitUpdate; numeric: RateLimitNumeric };\n");
    has(ts, "export type LimitName = \"login\";");
    /* a model without numeric fields takes no _atomics at all */
    const char *ticket_update = strstr(ts, "export interface TicketUpdate {");
    assert_non_null(ticket_update);
    const char *end = strstr(ticket_update, "\n}\n");
    assert_non_null(end);
    char *atomics = strstr(ticket_update, "_atomics");
    assert_true(atomics == NULL || atomics > end);
    /* hasMany is not part of the record */
    const char *post = strstr(ts, "export interface Post {");
    assert_true(strstr(post, "images") > strstr(post, "\n}\n"));
    free(ts);
}

static void clashing_names(void **state)
{
    (void)state;
    char err[256];
    int rc;
    assert_null(generate("{\"models\": {\"post\": {\"fields\": {\"t\": {\"type\": \"string\"}}},"
                         " \"Post\": {\"fields\": {\"t\": {\"type\": \"string\"}}}}}", err, sizeof err, &rc));
    assert_int_equal(rc, -1);
    assert_string_equal(err, "models 'post' and 'Post' would both get the TypeScript type Post; rename one");
    assert_null(generate("{\"models\": {\"product\": {\"fields\": {\"t\": {\"type\": \"string\"}}},"
                         " \"productCreate\": {\"fields\": {\"t\": {\"type\": \"string\"}}}}}", err, sizeof err, &rc));
    assert_non_null(strstr(err, "'product' and 'productCreate' would both get the TypeScript type ProductCreate"));
    assert_null(generate("{\"models\": {\"schema\": {\"fields\": {\"t\": {\"type\": \"string\"}}}}}", err, sizeof err, &rc));
    assert_non_null(strstr(err, "model 'schema' would get the type name Schema"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shop),
        cmocka_unit_test(clashing_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
