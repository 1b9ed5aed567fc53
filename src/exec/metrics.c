/* metrics.c — renders the counters of metrics.h as Prometheus text. */
#include "exec/metrics.h"

#include <stdio.h>
#include <stdlib.h>

tally_metrics tally_metrics_global;

#define GET(name) ((unsigned long long)atomic_load_explicit(&tally_metrics_global.name, memory_order_relaxed))

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
    if (g->backend->metrics)
        g->backend->metrics(f); /* the backend's own counters (SQLite: fsyncs seen by its VFS shim) */
    fclose(f);
    *len = n;
    return out;
}
