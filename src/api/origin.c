/* origin.c — origin, Host and CORS decisions; see origin.h. */
#include "api/origin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* host[:port] split: the name (brackets kept for IPv6) and the port text ("" when none). */
typedef struct authority {
    const char *name;
    size_t name_len;
    const char *port;
    size_t port_len;
} authority;

static bool split_authority(const char *s, size_t n, authority *out)
{
    if (n == 0)
        return false;
    size_t name_end;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return false;
        name_end = (size_t)(close - s) + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        name_end = colon ? (size_t)(colon - s) : n;
    }
    out->name = s;
    out->name_len = name_end;
    if (name_end == n) {
        out->port = "";
        out->port_len = 0;
    } else if (s[name_end] == ':') {
        out->port = s + name_end + 1;
        out->port_len = n - name_end - 1;
    } else {
        return false;
    }
    for (size_t i = 0; i < out->port_len; i++)
        if (out->port[i] < '0' || out->port[i] > '9')
            return false;
    if (out->name_len == 0)
        return false;
    for (size_t i = 0; i < out->name_len; i++) /* no userinfo, path, spaces or controls */
        if (strchr("@/?# \t\r\n\\", out->name[i]) || (unsigned char)out->name[i] < 0x20)
            return false;
    return true;
}

/* The port as a number, the scheme's default when none is written. */
static long port_of(const authority *a, bool https)
{
    if (a->port_len == 0 || a->port_len > 5)
        return a->port_len ? -1 : https ? 443 : 80;
    char buf[8];
    memcpy(buf, a->port, a->port_len);
    buf[a->port_len] = '\0';
    return strtol(buf, NULL, 10);
}

/* "scheme://authority" with nothing after it. */
static bool parse_origin(const char *o, size_t n, bool *https, authority *a)
{
    size_t skip;
    if (n > 7 && strncasecmp(o, "http://", 7) == 0) {
        *https = false;
        skip = 7;
    } else if (n > 8 && strncasecmp(o, "https://", 8) == 0) {
        *https = true;
        skip = 8;
    } else {
        return false;
    }
    return split_authority(o + skip, n - skip, a);
}

static bool same_name(const authority *a, const authority *b)
{
    return a->name_len == b->name_len && strncasecmp(a->name, b->name, a->name_len) == 0;
}

bool tally_origin_is_own(const char *origin, size_t olen, const char *host, size_t hlen, bool tls)
{
    bool https;
    authority o, h;
    if (!origin || !host || !parse_origin(origin, olen, &https, &o) || !split_authority(host, hlen, &h))
        return false;
    return https == tls && same_name(&o, &h) && port_of(&o, https) == port_of(&h, tls);
}

/* Whether two origins are the same (scheme and name case-insensitive, default ports filled in). */
static bool same_origin(const char *a, size_t alen, const char *b, size_t blen)
{
    bool ha, hb;
    authority x, y;
    if (!parse_origin(a, alen, &ha, &x) || !parse_origin(b, blen, &hb, &y))
        return false;
    return ha == hb && same_name(&x, &y) && port_of(&x, ha) == port_of(&y, hb);
}

bool tally_origin_allowed(const tally_access *a, bool keys_on, const char *origin, size_t olen, const char *host,
                          size_t hlen, bool tls)
{
    if (tally_origin_is_own(origin, olen, host, hlen, tls))
        return true;
    for (int i = 0; a && i < a->ncors; i++) {
        if (strcmp(a->cors[i], "*") == 0) {
            if (keys_on)
                return true;
        } else if (same_origin(a->cors[i], strlen(a->cors[i]), origin, olen)) {
            return true;
        }
    }
    return false;
}

static bool name_is(const authority *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

bool tally_host_allowed(const tally_access *a, const char *host, size_t hlen)
{
    authority h;
    if (!split_authority(host, hlen, &h))
        return false;
    if (name_is(&h, "localhost") || name_is(&h, "127.0.0.1") || name_is(&h, "[::1]"))
        return true;
    for (int i = 0; a && i < a->nhosts; i++) {
        authority g;
        if (split_authority(a->hosts[i], strlen(a->hosts[i]), &g) && same_name(&g, &h))
            return true;
    }
    if (a && a->listen_host && !tally_listen_is_loopback(a->listen_host) && strcmp(a->listen_host, "0.0.0.0") != 0 &&
        strcmp(a->listen_host, "::") != 0) {
        size_t n = strlen(a->listen_host);
        bool v6 = strchr(a->listen_host, ':') != NULL; /* --listen [fe80::1]:80 gives "fe80::1" */
        if (v6 ? h.name_len == n + 2 && strncasecmp(h.name + 1, a->listen_host, n) == 0
               : h.name_len == n && strncasecmp(h.name, a->listen_host, n) == 0)
            return true;
    }
    return false;
}

bool tally_listen_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcasecmp(host, "localhost") == 0;
}

bool tally_origin_valid(const char *origin)
{
    bool https;
    authority a;
    return strcmp(origin, "*") == 0 || parse_origin(origin, strlen(origin), &https, &a);
}
