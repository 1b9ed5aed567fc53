/*
 * http_errors.h — h2o's own error answers in Tally's JSON shape.
 *
 * h2o refuses some requests before any handler runs (a Content-Length that
 * is not a length, a body past max_request_entity_size, a broken chunked
 * body, an unknown Expect), through h2o_send_error_generic, whose answer is
 * plain text.  That answer still passes the path's output filters, so a
 * filter here replaces it with {"error": {"code", "message"}} in our words.
 * What h2o 2.2.5 writes straight to the socket (send_bad_request in
 * lib/http1.c: an unparsable request head, one past H2O_MAX_REQLEN) never
 * passes a filter and stays plain text; see docs/decisions.md.
 */
#ifndef TALLY_NET_HTTP_ERRORS_H
#define TALLY_NET_HTTP_ERRORS_H

#include <h2o.h>
#include <stddef.h>

/* Adds the filter to pathconf; max_body is the --max-body the 413 names. */
void tally_http_errors_register(h2o_pathconf_t *pathconf, size_t max_body);

#endif
