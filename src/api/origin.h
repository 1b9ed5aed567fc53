/*
 * origin.h — which browsers' pages and which Host names may reach the
 * server (README.md, "Access: keys, scopes, origins"), and the CORS answers for those allowed.
 *
 * A request with an Origin header is served only when that origin is the
 * server's own (its scheme, host and port equal the request's Host) or one
 * given with --cors-origin ("*" counts only while keys are on).  In open
 * mode (no key has ever existed) the Host must also be a loopback name
 * (localhost, 127.0.0.1, [::1], any port) or one given with --host, so that
 * a web page cannot reach a local server through DNS rebinding.  A request
 * with no Origin (curl, servers) or no Host (HTTP/1.0) is not a browser's
 * page and is not refused here.
 *
 * Pure functions over strings, no I/O; the caller owns every buffer.
 */
#ifndef TALLY_API_ORIGIN_H
#define TALLY_API_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tally_access {
    const char *const *cors; /* --cors-origin values, as given (borrowed) */
    int ncors;
    const char *const *hosts; /* --host names (borrowed), matched without their port */
    int nhosts;
    const char *listen_host;  /* the --listen host: also a Host served in open mode (unless a wildcard) */
    bool open;                /* --open: serve without keys on a non-loopback address */
} tally_access;

/* Whether origin (as the header says, "http://host:port") is the server's own for Host host. */
bool tally_origin_is_own(const char *origin, size_t olen, const char *host, size_t hlen, bool tls);
/* Whether a request from origin may be served: its own, listed, or "*" listed and keys_on. */
bool tally_origin_allowed(const tally_access *a, bool keys_on, const char *origin, size_t olen, const char *host,
                          size_t hlen, bool tls);
/* Open mode: whether Host names this server (loopback, --host, the listen address). */
bool tally_host_allowed(const tally_access *a, const char *host, size_t hlen);
/* Whether a --listen host is a loopback address (127.0.0.0/8, ::1, localhost). */
bool tally_listen_is_loopback(const char *host);
/* Whether a --cors-origin value is an origin ("scheme://host[:port]", or "*"). */
bool tally_origin_valid(const char *origin);

#endif
