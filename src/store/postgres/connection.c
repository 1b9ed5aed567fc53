/* connection.c — placeholder for the PostgreSQL backend while it is being written. */
#include "store/backend.h"

static int pg_open(const char *target, const tally_schema *schema, const tally_store_options *opt, tally_store **out,
                   tally_error *err)
{
    (void)target; (void)schema; (void)opt;
    *out = NULL;
    return tally_fail(err, TALLY_INTERNAL, NULL, "this build has no PostgreSQL backend yet");
}

const tally_backend_ops tally_postgres_backend = {.name = "postgresql", .open = pg_open};
