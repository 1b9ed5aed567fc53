/*
 * api.h — what the HTTP layer asks of the API layer: turn one request into
 * an answer now, or into a job for a worker whose answer comes later.
 *
 * The API layer parses JSON, routes, decodes plans and renders answers; it
 * never touches a database handle (it hands plans to the engine, exec/
 * engine.h, and passes the loop's opaque in-place read context through) and
 * never sees h2o.  The net layer sees jobs only through the functions below.
 */
#ifndef TALLY_API_API_H
#define TALLY_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/schema.h"
#include "exec/engine.h"
#include "exec/job.h"

struct tally_access;
struct tally_txn_quota;
struct tally_console;

typedef struct tally_api {
    const tally_schema *schema; /* borrowed */
    tally_engine *engine;       /* borrowed */
    const struct tally_access *access; /* origins, hosts, open mode (api/origin.h); borrowed */
    struct tally_txn_quota *txns;      /* open interactive transactions per key and in all (api/txn_quota.h) */
    size_t max_body;            /* bytes; larger bodies get 413 */
    int max_txn_steps;          /* steps in one transaction */
    uint64_t max_txn_ms;        /* interactive transactions' longest timeout */
    const char *openapi;        /* the API description (api/openapi.h), built at start-up; borrowed */
    size_t openapi_len;
    const struct tally_console *console; /* the web console's files (api/console.h), or NULL; borrowed */
    bool trusted;               /* libtally's own calls (src/lib/): no API key is asked for */
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
    const char *authorization;        /* the Authorization header, or NULL */
    size_t authorization_len;
    const char *origin_header;        /* the Origin header, or NULL */
    size_t origin_header_len;
    const char *host;                 /* the Host header (HTTP/2: :authority), or NULL */
    size_t host_len;
    bool tls;                         /* arrived over HTTPS: the server's own origin is https://Host */
    tally_engine_local *local;        /* the loop thread's in-place read context (may be NULL) */
    void (*complete)(tally_job *job); /* called (on a worker thread) with a job's answer */
    void *origin;                     /* stored in the job for complete */
} tally_http_request;

/* Whether req's method is m; HEAD counts as GET (answered as GET, h2o sends no body). */
bool tally_http_method_is(const tally_http_request *req, const char *m);

typedef struct tally_http_response {
    int status;
    char *body;               /* malloc'ed; the caller frees it */
    size_t body_len;
    const char *content_type; /* static */
    const char *allow;        /* static; set with 405 */
    int retry_after_s;        /* > 0: a Retry-After header */
    /* Set whether the answer is now or later: headers for the net layer to add. */
    bool www_authenticate;    /* a 401: WWW-Authenticate: Bearer */
    const char *cors_origin;  /* an allowed cross-origin request: Access-Control-Allow-Origin (points
                                 into the request's Origin header), Vary, Expose-Headers */
    size_t cors_origin_len;
    bool preflight;           /* an answered CORS preflight: the Allow-Methods/-Headers/-Max-Age headers */
    char key_name[64];        /* the name of the valid key the request carried, for the log ("": none) */
} tally_http_response;

enum { TALLY_API_LATER = 0, TALLY_API_NOW = 1 };

/* Answers now (returns TALLY_API_NOW, resp filled) or submits a job whose
 * answer reaches req->complete later (returns TALLY_API_LATER). */
int tally_api_handle(const tally_api *api, const tally_http_request *req, tally_http_response *resp);

/* A WebSocket upgrade at /api/ws: 0 when it may proceed (its origin, Host
 * and token checked; *principal is for tally_ws_new, malloc'ed, handed over),
 * else TALLY_API_NOW with resp the refusal to send instead. */
struct tally_principal;
int tally_api_ws_admit(const tally_api *api, const tally_http_request *req, tally_http_response *resp,
                       struct tally_principal **principal);

/* A loop thread's context for answering point reads in place (NULL when the
 * backend cannot); opened and closed by that thread. */
int tally_api_local_open(const tally_api *api, tally_engine_local **out, tally_error *err);
void tally_api_local_close(tally_engine_local *local);

/* What a completed job answers; the strings are the job's. */
typedef struct tally_api_answer {
    int status;
    const char *body;
    size_t body_len;
    int retry_after_s; /* > 0: a Retry-After header */
} tally_api_answer;
tally_api_answer tally_api_job_answer(const tally_job *job);
/* The origin the request gave (tally_http_request.origin, or the WebSocket connection). */
void *tally_api_job_origin(const tally_job *job);
/* Frees a completed job once its answer is sent (or its client has gone). */
void tally_api_job_release(tally_job *job);

#endif
