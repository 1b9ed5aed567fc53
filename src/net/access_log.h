/*
 * access_log.h — the server's structured log on stderr: one line per HTTP
 * request answered (and per WebSocket upgrade), and the start-up line, in
 * --log-format text (logfmt: key=value) or json (one object per line),
 * filtered by --log-level.  README, section "Logs and metrics", lists the
 * fields.  It also feeds the per-request metrics (exec/metrics.h).
 *
 * A line is formatted on the calling thread into a stack buffer.  On a
 * loop thread (tally_log_buffer_start) it joins the loop's other lines and
 * they go out with one write(2) per loop iteration (tally_log_flush): one
 * system call per line cost a sixth of the hot counter's throughput.  Other
 * threads write each line at once.  Writes are serialised by a lock, so
 * lines never mix.  A write blocks only if stderr's reader stops reading.
 *
 * Never logged: the query string (an access_token may be there), headers,
 * tokens; a request's key appears by its name only.
 */
#ifndef TALLY_NET_ACCESS_LOG_H
#define TALLY_NET_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/metrics.h"
#include "store/backend.h"

typedef enum { TALLY_LOG_DEBUG, TALLY_LOG_INFO, TALLY_LOG_WARN, TALLY_LOG_ERROR } tally_log_level;
typedef enum { TALLY_LOG_TEXT, TALLY_LOG_JSON } tally_log_format;

/* Set once at start-up, before the loops run (default: text, info). */
void tally_log_configure(tally_log_format format, tally_log_level min_level);
/* "text"/"json", "debug"/"info"/"warn"/"error": 0, or -1 for another word. */
int tally_log_parse_format(const char *s, tally_log_format *out);
int tally_log_parse_level(const char *s, tally_log_level *out);

/* A field of an event line: name and text value (borrowed). */
typedef struct tally_log_field {
    const char *name, *value;
} tally_log_field;

/* The calling thread's lines are collected from now on (a loop thread,
 * before it runs): written by tally_log_flush, or when 64 KiB have
 * gathered.  tally_log_buffer_stop writes what is left and goes back to one
 * write per line.  Without memory for the buffer, lines go out one by one. */
void tally_log_buffer_start(void);
void tally_log_flush(void);
void tally_log_buffer_stop(void);

/* One line: time, level, msg, then the fields in order. */
void tally_log_event(tally_log_level level, const char *msg, const tally_log_field *fields, int nfields);

#define TALLY_REQUEST_ID_MAX 128

/* What the log line of one request needs beyond the request itself; lives
 * in the request's memory pool (owned by h2o's request, freed with it). */
typedef struct tally_access_entry {
    uint64_t start_ns;                        /* monotonic, when the handler got the request */
    char request_id[TALLY_REQUEST_ID_MAX + 1]; /* the client's X-Request-Id, or 16 random hex digits */
    char key_name[TALLY_KEY_NAME_MAX];        /* the valid key it carried, or "" */
    tally_route route;
    tally_request_kind kind;
} tally_access_entry;

/* Starts an entry: the clock, the route and kind from method and path (no
 * query), and the request id: client_id (the X-Request-Id header, may be
 * NULL) when it is 1-128 printable ASCII characters, else a new one. */
void tally_access_begin(tally_access_entry *e, const char *method, size_t method_len, const char *path,
                        size_t path_len, const char *client_id, size_t client_id_len);

/* The answer went out: counts it (tally_http_requests_total and, by kind,
 * the latency histogram) and logs its line.  body is the answer's, for the
 * error code of a 4xx/5xx (its "error":{"code":…}). */
void tally_access_finish(const tally_access_entry *e, const char *method, size_t method_len, const char *path,
                         size_t path_len, int status, size_t bytes, const char *body, size_t body_len);

#endif
