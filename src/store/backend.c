/* backend.c — picks the backend a database URL names; see backend.h. */
#include "store/backend.h"

#include <stdio.h>
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

void tally_url_redact(const char *url, char *out, size_t cap)
{
    if (!cap)
        return;
    snprintf(out, cap, "%s", url);
    /* scheme://user:password@host -> scheme://user@host */
    char *auth = strstr(out, "://");
    if (auth) {
        auth += 3;
        char *at = strchr(auth, '@'), *slash = strchr(auth, '/');
        char *colon = strchr(auth, ':');
        if (at && (!slash || at < slash) && colon && colon < at)
            memmove(colon, at, strlen(at) + 1);
    }
    /* ?password=…&… or &password=… */
    for (char *p = strstr(out, "password="); p; p = strstr(p, "password=")) {
        if (p == out || (p[-1] != '?' && p[-1] != '&')) {
            p += 9;
            continue;
        }
        char *end = strchr(p, '&');
        if (end)
            memmove(p, end + 1, strlen(end + 1) + 1);
        else
            *(p[-1] == '?' || p[-1] == '&' ? p - 1 : p) = '\0';
    }
}
