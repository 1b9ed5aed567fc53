/* backend.c — picks the backend a database URL names; see backend.h. */
#include "store/backend.h"

#include <string.h>

const tally_backend_ops *tally_backend_for(const char *url, const char **target)
{
    *target = url;
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return &tally_postgres_backend;
    if (strncmp(url, "sqlite:", 7) == 0)
        *target = url + 7;
    return &tally_sqlite_backend;
}

int tally_store_open(const char *url, const tally_schema *schema, const tally_store_options *opt, tally_store **out,
                     tally_error *err)
{
    const char *target;
    const tally_backend_ops *ops = tally_backend_for(url, &target);
    return ops->open(target, schema, opt, out, err);
}
