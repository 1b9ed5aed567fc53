/* metrics.c — renders the counters of metrics.h as Prometheus text, and
 * records the observations of its histograms (lock-free: relaxed atomics). */
#include "exec/metrics.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef TALLY_VERSION
#error "TALLY_VERSION is defined by meson.build from project()'s version"
#endif

tally_metrics tally_metrics_global;

#define GET(name) ((unsigned long long)atomic_load_explicit(&tally_metrics_global.name, memory_order_relaxed))

const char *const tally_route_names[TALLY_ROUTES] = {"records", "list", "bulk", "transaction", "locks", "limits",
                                                     "keys", "ws", "health", "metrics", "other"};
static const char *const status_names[TALLY_STATUS_CLASSES] = {"2xx", "4xx", "5xx"};
static const char *const kind_names[TALLY_REQUEST_KINDS] = {"read", "write", "transaction"};
static const char *const begin_reasons[TALLY_BEGIN_REFUSED_REASONS] = {"per_key", "total", "timeout"};

/* Upper bounds of the buckets (the last bucket counts what is above them all). */
static const uint64_t duration_bounds_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000,
                                              100000, 250000, 500000, 1000000, 2500000, 5000000};
#define NDURATION (sizeof duration_bounds_us / sizeof duration_bounds_us[0])
static const uint64_t batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define NBATCH (sizeof batch_bounds / sizeof batch_bounds[0])
_Static_assert(NDURATION < TALLY_HISTOGRAM_MAX_BUCKETS && NBATCH < TALLY_HISTOGRAM_MAX_BUCKETS, "bucket room");

static void observe(tally_histogram *h, const uint64_t *bounds, size_t nbounds, uint64_t v)
{
    size_t i = 0;
    while (i < nbounds && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void tally_metrics_batch(uint64_t n)
{
    TALLY_METRIC_ADD(batches, 1);
    observe(&tally_metrics_global.batch_size, batch_bounds, NBATCH, n);
}

void tally_metrics_request(tally_route route, int status, tally_request_kind kind, uint64_t duration_us)
{
    tally_status_class c = status >= 500 ? TALLY_STATUS_5XX : status >= 400 ? TALLY_STATUS_4XX : TALLY_STATUS_2XX;
    if ((unsigned)route >= TALLY_ROUTES)
        route = TALLY_ROUTE_OTHER;
    atomic_fetch_add_explicit(&tally_metrics_global.http_requests[route][c], 1, memory_order_relaxed);
    if ((unsigned)kind < TALLY_REQUEST_KINDS)
        observe(&tally_metrics_global.request_duration[kind], duration_bounds_us, NDURATION, duration_us);
}

/* One histogram's _bucket/_sum/_count lines.  The count is the buckets' own
 * total, so the +Inf bucket always equals _count within one scrape; scale
 * divides the bounds and the sum (1e6: microseconds shown as seconds). */
static void render_histogram(FILE *f, const char *name, const char *label, const tally_histogram *h,
                             const uint64_t *bounds, size_t nbounds, double scale)
{
    char sep[200];
    snprintf(sep, sizeof sep, "%s%s", label ? label : "", label ? "," : "");
    uint64_t cum = 0;
    for (size_t i = 0; i <= nbounds; i++) {
        cum += (uint64_t)atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < nbounds)
            fprintf(f, "%s_bucket{%sle=\"%g\"} %llu\n", name, sep, (double)bounds[i] / scale, (unsigned long long)cum);
        else
            fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, sep, (unsigned long long)cum);
    }
    double sum = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / scale;
    if (label) {
        fprintf(f, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, label, sum, name, label, (unsigned long long)cum);
    } else {
        fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
    }
}

/* The families added for operations (README, "Logs and metrics"). */
static void render_operations(FILE *f, const char *backend)
{
    tally_metrics *m = &tally_metrics_global;
    fprintf(f, "# HELP tally_http_requests_total HTTP requests answered, by route and status class (1xx-3xx as 2xx).\n"
               "# TYPE tally_http_requests_total counter\n");
    for (int r = 0; r < TALLY_ROUTES; r++)
        for (int c = 0; c < TALLY_STATUS_CLASSES; c++)
            fprintf(f, "tally_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", tally_route_names[r],
                    status_names[c],
                    (unsigned long long)atomic_load_explicit(&m->http_requests[r][c], memory_order_relaxed));
    fprintf(f, "# HELP tally_request_duration_seconds Time from a request's arrival to its answer, by kind.\n"
               "# TYPE tally_request_duration_seconds histogram\n");
    for (int k = 0; k < TALLY_REQUEST_KINDS; k++) {
        char label[64];
        snprintf(label, sizeof label, "kind=\"%s\"", kind_names[k]);
        render_histogram(f, "tally_request_duration_seconds", label, &m->request_duration[k], duration_bounds_us,
                         NDURATION, 1e6);
    }
    fprintf(f, "# HELP tally_batch_size Writes per committed batch (an interactive transaction's commit is one).\n"
               "# TYPE tally_batch_size histogram\n");
    render_histogram(f, "tally_batch_size", NULL, &m->batch_size, batch_bounds, NBATCH, 1);
    fprintf(f, "# HELP tally_websocket_connections WebSocket connections open.\n"
               "# TYPE tally_websocket_connections gauge\ntally_websocket_connections %lld\n"
               "# HELP tally_interactive_transactions Interactive (WebSocket) transactions from an accepted begin to their end.\n"
               "# TYPE tally_interactive_transactions gauge\ntally_interactive_transactions %lld\n"
               "# HELP tally_lock_waits_total Lock acquires that found the lock held and waited (waitMs).\n"
               "# TYPE tally_lock_waits_total counter\ntally_lock_waits_total %llu\n"
               "# HELP tally_limit_refusals_total Rate-limit calls refused (429 RATE_LIMITED).\n"
               "# TYPE tally_limit_refusals_total counter\ntally_limit_refusals_total %llu\n",
            (long long)atomic_load_explicit(&m->websocket_connections, memory_order_relaxed),
            (long long)atomic_load_explicit(&m->interactive_transactions, memory_order_relaxed),
            GET(lock_waits), GET(limit_refusals));
    fprintf(f, "# HELP tally_begin_refused_total WebSocket begins refused: the key's limit, the server's, or a wait past --queue-timeout.\n"
               "# TYPE tally_begin_refused_total counter\n");
    for (int r = 0; r < TALLY_BEGIN_REFUSED_REASONS; r++)
        fprintf(f, "tally_begin_refused_total{reason=\"%s\"} %llu\n", begin_reasons[r], GET(begin_refused[r]));
    fprintf(f, "# HELP tally_build_info This server's version and storage backend.\n"
               "# TYPE tally_build_info gauge\ntally_build_info{version=\"%s\",backend=\"%s\"} 1\n",
            TALLY_VERSION, backend);
}


char *tally_metrics_render(const tally_metrics_gauges *g, size_t *len)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    fprintf(f,
            "# HELP tally_writes_total Write requests applied and committed.\n"
            "# TYPE tally_writes_total counter\ntally_writes_total %llu\n"
            "# HELP tally_write_errors_total Write requests answered with an error (nothing applied).\n"
            "# TYPE tally_write_errors_total counter\ntally_write_errors_total %llu\n"
            "# HELP tally_batches_total Transactions committed by the writer (one per group commit).\n"
            "# TYPE tally_batches_total counter\ntally_batches_total %llu\n"
            "# HELP tally_failed_batches_total Batches the database aborted or could not commit.\n"
            "# TYPE tally_failed_batches_total counter\ntally_failed_batches_total %llu\n"
            "# HELP tally_checkpoints_total WAL checkpoints run by the writer between batches.\n"
            "# TYPE tally_checkpoints_total counter\ntally_checkpoints_total %llu\n"
            "# HELP tally_reads_total Read requests answered.\n"
            "# TYPE tally_reads_total counter\ntally_reads_total %llu\n"
            "# HELP tally_rejected_total Writes refused unapplied (queue full or past --queue-timeout).\n"
            "# TYPE tally_rejected_total counter\ntally_rejected_total %llu\n"
            "# HELP tally_max_batch Largest batch committed so far.\n"
            "# TYPE tally_max_batch gauge\ntally_max_batch %llu\n"
            "# HELP tally_queue_depth Writes waiting for the writer.\n"
            "# TYPE tally_queue_depth gauge\ntally_queue_depth %zu\n"
            "# HELP tally_read_queue_depth Reads waiting for the reader.\n"
            "# TYPE tally_read_queue_depth gauge\ntally_read_queue_depth %zu\n"
            "# HELP tally_open_sessions Interactive transactions open or waiting for a connection of their own.\n"
            "# TYPE tally_open_sessions gauge\ntally_open_sessions %zu\n"
            "# HELP tally_backend_info The storage backend serving this database.\n"
            "# TYPE tally_backend_info gauge\ntally_backend_info{backend=\"%s\"} 1\n",
            GET(writes), GET(write_errors), GET(batches), GET(failed_batches),
            GET(checkpoints), GET(reads), GET(rejected), GET(max_batch), g->write_queue_depth, g->read_queue_depth,
            g->open_sessions, g->backend->name);
    fprintf(f, "# HELP tally_lane_batches_total Batches committed by each writer lane.\n"
               "# TYPE tally_lane_batches_total counter\n");
    for (int i = 0; i < g->nlanes; i++)
        fprintf(f, "tally_lane_batches_total{lane=\"%d\"} %llu\n", i, (unsigned long long)g->lanes[i].batches);
    fprintf(f, "# HELP tally_lane_writes_total Writes applied and committed by each writer lane.\n"
               "# TYPE tally_lane_writes_total counter\n");
    for (int i = 0; i < g->nlanes; i++)
        fprintf(f, "tally_lane_writes_total{lane=\"%d\"} %llu\n", i, (unsigned long long)g->lanes[i].writes);
    fprintf(f, "# HELP tally_lane_queue_depth Writes waiting for each writer lane.\n"
               "# TYPE tally_lane_queue_depth gauge\n");
    for (int i = 0; i < g->nlanes; i++)
        fprintf(f, "tally_lane_queue_depth{lane=\"%d\"} %zu\n", i, g->lanes[i].queue_depth);
    fprintf(f,
            "# HELP tally_lock_hints_listening 1 while this server listens for other servers' lock releases.\n"
            "# TYPE tally_lock_hints_listening gauge\ntally_lock_hints_listening %d\n"
            "# HELP tally_lock_hints_sent_total Lock releases told to the other servers (after their COMMIT).\n"
            "# TYPE tally_lock_hints_sent_total counter\ntally_lock_hints_sent_total %llu\n"
            "# HELP tally_lock_hints_received_total Lock releases heard of (this server's own included).\n"
            "# TYPE tally_lock_hints_received_total counter\ntally_lock_hints_received_total %llu\n"
            "# HELP tally_lock_hint_wakeups_total Lock waiters that tried again at once on a hint.\n"
            "# TYPE tally_lock_hint_wakeups_total counter\ntally_lock_hint_wakeups_total %llu\n"
            "# HELP tally_coalesced_writes_total Writes applied together with adjacent increments of the same row, as one statement.\n"
            "# TYPE tally_coalesced_writes_total counter\ntally_coalesced_writes_total %llu\n",
            g->hints.listening ? 1 : 0, (unsigned long long)g->hints.sent, (unsigned long long)g->hints.received,
            GET(lock_hint_wakeups), GET(coalesced_writes));
    fprintf(f,
            "# HELP tally_changes_head The newest seq of the change feed.\n"
            "# TYPE tally_changes_head gauge\ntally_changes_head %lld\n"
            "# HELP tally_changes_oldest_kept The oldest seq the change feed still keeps (older were purged).\n"
            "# TYPE tally_changes_oldest_kept gauge\ntally_changes_oldest_kept %lld\n"
            "# HELP tally_changes_pending Committed changes not yet numbered (PostgreSQL's outbox; 0 on SQLite).\n"
            "# TYPE tally_changes_pending gauge\ntally_changes_pending %lld\n"
            "# HELP tally_changes_lag_seconds Age of the oldest committed change followers cannot see yet.\n"
            "# TYPE tally_changes_lag_seconds gauge\ntally_changes_lag_seconds %.3f\n"
            "# HELP tally_changes_waiting Followers waiting for the next change on this server.\n"
            "# TYPE tally_changes_waiting gauge\ntally_changes_waiting %llu\n"
            "# HELP tally_changes_numbered_total Changes this server's sequencer numbered.\n"
            "# TYPE tally_changes_numbered_total counter\ntally_changes_numbered_total %llu\n",
            (long long)g->feed.state.head, (long long)g->feed.state.purged + 1, (long long)g->feed.state.pending,
            (double)g->feed.state.lag_ms / 1000.0, (unsigned long long)g->feed.waiting,
            (unsigned long long)g->feed.numbered);
    render_operations(f, g->backend->name);
    if (g->backend->metrics)
        g->backend->metrics(f); /* the backend's own counters (SQLite: fsyncs seen by its VFS shim) */
    fclose(f);
    *len = n;
    return out;
}
