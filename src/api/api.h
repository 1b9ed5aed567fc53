/*
 * api.h — what the HTTP layer asks of the API layer: turn one request into
 * an answer now, or into a job for a worker whose answer comes later.
 *
 * The API layer parses JSON, routes, decodes plans and renders answers; it
 * never touches a database handle itself (the loop's read-only store is
 * passed through, opaque, to exec's tally_read_here) and never sees h2o.
 */
#ifndef TALLY_API_API_H
#define TALLY_API_API_H

#include <stddef.h>
#include <stdint.h>

#include "core/schema.h"
#include "exec/job.h"
#include "exec/reader.h"
#include "exec/writer.h"

typedef struct tally_api {
    const tally_schema *schema; /* borrowed */
    tally_writer *writer;       /* borrowed */
    tally_reader *reader;       /* borrowed */
    size_t max_body;            /* bytes; larger bodies get 413 */
    int max_txn_steps;          /* steps in one transaction */
    uint64_t max_txn_ms;        /* interactive transactions' longest timeout */
} tally_api;

typedef struct tally_http_request {
    const char *method;
    size_t method_len;
    const char *path;   /* raw path, without the query string */
    size_t path_len;
    const char *query;  /* after '?', or NULL */
    size_t query_len;
    const char *body;
    size_t body_len;
    const char *idem_key;             /* the Idempotency-Key header, or NULL */
    size_t idem_key_len;
    tally_store *local_store;         /* the loop thread's read-only connection */
    void (*complete)(tally_job *job); /* called (on a worker thread) with a job's answer */
    void *origin;                     /* stored in the job for complete */
} tally_http_request;

typedef struct tally_http_response {
    int status;
    char *body;               /* malloc'ed; the caller frees it */
    size_t body_len;
    const char *content_type; /* static */
    const char *allow;        /* static; set with 405 */
    int retry_after_s;        /* > 0: a Retry-After header */
} tally_http_response;

enum { TALLY_API_LATER = 0, TALLY_API_NOW = 1 };

/* Answers now (returns TALLY_API_NOW, resp filled) or submits a job whose
 * answer reaches req->complete later (returns TALLY_API_LATER). */
int tally_api_handle(const tally_api *api, const tally_http_request *req, tally_http_response *resp);

#endif
