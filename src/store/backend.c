/* backend.c — picks the backend a database URL names; see backend.h. */
#include "store/backend.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"

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

void tally_url_redact(const char *url, char *out, size_t cap)
{
    tally_buf b;
    tally_buf_init(&b);
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme) {
        const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *q = auth; q < end; q++)
            if (*q == '@')
                at = q;
        tally_buf_addn(&b, url, (size_t)(auth - url));
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            tally_buf_addn(&b, auth, (size_t)((colon ? colon : at) - auth));
            p = at;
        } else {
            p = auth;
        }
    }
    /* password=... among the URL's parameters */
    while (*p) {
        if (p > url && (p[-1] == '?' || p[-1] == '&') && strncmp(p, "password=", 9) == 0) {
            tally_buf_add(&b, "password=***");
            p += 9 + strcspn(p + 9, "&");
            continue;
        }
        tally_buf_addc(&b, *p++);
    }
    snprintf(out, cap, "%s", b.s ? b.s : "");
    tally_buf_free(&b);
}
