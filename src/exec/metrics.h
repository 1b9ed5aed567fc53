/*
 * metrics.h — process-wide counters for GET /metrics (Prometheus text).
 * Updated with relaxed atomics by the workers; read by any thread.
 * A backend adds its own lines (SQLite's `tally_fsyncs_total` is counted by
 * its VFS shim, which sees every real sync SQLite asks for).
 */
#ifndef TALLY_EXEC_METRICS_H
#define TALLY_EXEC_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/feed.h"
#include "exec/lock_hints.h"
#include "exec/writer.h"
#include "store/backend.h"

/* Why a WebSocket begin was refused: the key's limit (429), the server's
 * limit (503), or waiting past --queue-timeout for its turn (503). */
typedef enum { TALLY_BEGIN_REFUSED_PER_KEY, TALLY_BEGIN_REFUSED_TOTAL, TALLY_BEGIN_REFUSED_TIMEOUT,
               TALLY_BEGIN_REFUSED_REASONS } tally_begin_refused_reason;

/* The route label of tally_http_requests_total (net/access_log.c decides it from the path). */
typedef enum { TALLY_ROUTE_RECORDS, TALLY_ROUTE_LIST, TALLY_ROUTE_BULK, TALLY_ROUTE_TRANSACTION, TALLY_ROUTE_LOCKS,
               TALLY_ROUTE_LIMITS, TALLY_ROUTE_KEYS, TALLY_ROUTE_WS, TALLY_ROUTE_HEALTH, TALLY_ROUTE_METRICS,
               TALLY_ROUTE_OTHER, TALLY_ROUTES } tally_route;
extern const char *const tally_route_names[TALLY_ROUTES];

/* Status classes: 1xx-3xx (a 101 upgrade, a 204) count as "2xx". */
typedef enum { TALLY_STATUS_2XX, TALLY_STATUS_4XX, TALLY_STATUS_5XX, TALLY_STATUS_CLASSES } tally_status_class;

/* The kind label of tally_request_duration_seconds; NONE: not observed. */
typedef enum { TALLY_KIND_READ, TALLY_KIND_WRITE, TALLY_KIND_TRANSACTION, TALLY_REQUEST_KINDS,
               TALLY_KIND_NONE = TALLY_REQUEST_KINDS } tally_request_kind;

/* A histogram of non-negative integer observations: one counter per bucket
 * (not cumulative; the render sums them), the last one past every bound,
 * and the sum.  Lock-free: each observation is two relaxed atomic adds. */
#define TALLY_HISTOGRAM_MAX_BUCKETS 16
typedef struct tally_histogram {
    atomic_uint_least64_t bucket[TALLY_HISTOGRAM_MAX_BUCKETS];
    atomic_uint_least64_t sum;
} tally_histogram;

typedef struct tally_metrics {
    atomic_uint_least64_t writes;          /* write requests applied and committed */
    atomic_uint_least64_t write_errors;    /* write requests answered with an error */
    atomic_uint_least64_t batches;         /* transactions committed by the writer */
    atomic_uint_least64_t failed_batches;  /* batches the database aborted or failed to commit */
    atomic_uint_least64_t checkpoints;
    atomic_uint_least64_t reads;
    atomic_uint_least64_t rejected;        /* refused unapplied: queue full or past --queue-timeout */
    atomic_uint_least64_t max_batch;
    atomic_uint_least64_t lock_hint_wakeups; /* lock waiters woken early by another server's release hint */
    atomic_uint_least64_t coalesced_writes;  /* writes applied in a run of increments to one row (coalesce.h) */
    atomic_uint_least64_t lock_waits;        /* lock acquires that were parked to wait (counted once each) */
    atomic_uint_least64_t limit_refusals;    /* rate-limit steps refused (429 RATE_LIMITED) */
    atomic_uint_least64_t begin_refused[TALLY_BEGIN_REFUSED_REASONS]; /* by tally_begin_refused_reason */
    atomic_int_least64_t websocket_connections;   /* gauge: upgraded connections open */
    atomic_int_least64_t interactive_transactions; /* gauge: WebSocket transactions from begin taken to end */
    tally_histogram batch_size;              /* writes per committed batch (an interactive commit: 1) */
    /* HTTP requests by route and status class, and latency by kind (net/access_log.h fills these) */
    atomic_uint_least64_t http_requests[TALLY_ROUTES][TALLY_STATUS_CLASSES];
    tally_histogram request_duration[TALLY_REQUEST_KINDS]; /* microseconds */
} tally_metrics;

extern tally_metrics tally_metrics_global;

#define TALLY_METRIC_ADD(name, n) atomic_fetch_add_explicit(&tally_metrics_global.name, (n), memory_order_relaxed)

/* A committed batch of n writes: tally_batches_total and tally_batch_size together. */
void tally_metrics_batch(uint64_t n);
/* One HTTP answer: its route and status, and (kind != NONE) its duration. */
void tally_metrics_request(tally_route route, int status, tally_request_kind kind, uint64_t duration_us);

/* What the engine knows at the moment of a scrape (all borrowed). */
typedef struct tally_metrics_gauges {
    const tally_backend_ops *backend;
    size_t write_queue_depth, read_queue_depth, open_sessions;
    const tally_writer_stats *lanes; /* one per writer lane */
    int nlanes;
    tally_lock_hints_stats hints;    /* zero where the server has no hints (SQLite, --portable) */
    tally_feed_stats feed;           /* the change feed as its thread last read it */
} tally_metrics_gauges;

/* Prometheus text for every counter plus the gauges, per-lane counters and
 * the backend's own lines; malloc'ed, *len set. */
char *tally_metrics_render(const tally_metrics_gauges *g, size_t *len);

#endif
