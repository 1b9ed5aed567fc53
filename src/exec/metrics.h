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

#include "exec/lock_hints.h"
#include "exec/writer.h"
#include "store/backend.h"

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
} tally_metrics;

extern tally_metrics tally_metrics_global;

#define TALLY_METRIC_ADD(name, n) atomic_fetch_add_explicit(&tally_metrics_global.name, (n), memory_order_relaxed)

/* What the engine knows at the moment of a scrape (all borrowed). */
typedef struct tally_metrics_gauges {
    const tally_backend_ops *backend;
    size_t write_queue_depth, read_queue_depth, open_sessions;
    const tally_writer_stats *lanes; /* one per writer lane */
    int nlanes;
    tally_lock_hints_stats hints;    /* zero where the server has no hints (SQLite, --portable) */
} tally_metrics_gauges;

/* Prometheus text for every counter plus the gauges, per-lane counters and
 * the backend's own lines; malloc'ed, *len set. */
char *tally_metrics_render(const tally_metrics_gauges *g, size_t *len);

#endif
