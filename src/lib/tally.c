/*
 * tally.c — libtally (include/tally.h): one handle wires a schema, a store
 * and the engine together, and answers the API's calls with no HTTP in
 * between, through the same routes (api/routes.c) the server uses.
 *
 * A call becomes a tally_http_request with its completion pointing here:
 * a synchronous caller waits on a condition variable of its own stack frame
 * until the engine thread that made the answer final signals it; an
 * asynchronous one gets its callback run on that thread.  The handle counts
 * calls in flight, so that tally_close can wait for every one to have left
 * the library before freeing what they use.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/embed.h" /* core/error.h before tally.h */

#include "api/api.h"
#include "api/openapi.h"
#include "api/origin.h"
#include "api/render.h"
#include "api/txn_quota.h"
#include "core/json_arena.h"

_Static_assert(sizeof(tally_code) == sizeof(int), "tally.h declares the code as an enum the size of an int");
_Static_assert(offsetof(tally_error, message) == sizeof(int) && sizeof(((tally_error *)0)->message) == 512 &&
                   sizeof(((tally_error *)0)->path) == 256 && sizeof(((tally_error *)0)->step_as) == 64 &&
                   sizeof(tally_rerun) == sizeof(int),
               "tally.h's tally_error has the engine's layout");
/* tally.h copies the error table's codes: a code added to src/core/error.h must be added there too (in order). */
_Static_assert(TALLY__CODE_COUNT == 26 && TALLY_TIMEOUT == 25 && TALLY_INTERNAL == 22 && TALLY_GONE == 12,
               "the error table changed: update tally.h's tally_code enum, this check and test_lib.c");

struct tally {
    tally_schema *schema;
    tally_engine *engine;
    tally_api api;           /* trusted: no API key asked for */
    tally_access access;     /* empty: no origin or Host is ever given */
    tally_txn_quota *txns;
    char *openapi;
    int lock_fd;             /* the SQLite data folder's flock, or -1 */

    /* Calls between their start and their last touch of the handle.  Counted without a lock (every call
     * passes here: a shared mutex made 16 threads queue on it); once closing is set, calls leave under mu
     * and signal idle, and tally_close also looks every millisecond (see call_end). */
    atomic_long inflight;
    atomic_bool closing;
    pthread_mutex_t mu;
    pthread_cond_t idle;
};

/* How many tally callbacks the calling thread is inside of (a synchronous call there would wait on itself). */
static __thread int callback_depth;

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

const char *tally_version(void) { return TALLY_VERSION; }

void tally_options_init(tally_options *o)
{
    memset(o, 0, sizeof *o);
    o->queue_max = 10000;
    o->batch_max = 256;
    o->max_txn_ms = 5000;
    o->queue_timeout_ms = 10000; /* above the longest interactive transaction, as `tally serve` does */
    o->idempotency_ttl_ms = 86400000;
    o->max_txn_steps = 1000;
    o->max_body = 1 << 20;
}

/* ---- calls in flight ----------------------------------------------------------- */

static void call_end(tally *t);

static int call_begin(tally *t, tally_error *err)
{
    atomic_fetch_add(&t->inflight, 1);
    if (atomic_load(&t->closing)) {
        call_end(t);
        return tally_fail(err, TALLY_OVERLOADED, NULL, "this tally handle is closing (tally_close was called); "
                                                       "nothing was applied");
    }
    return 0;
}

/* The call's last touch of t.  Before closing: one atomic decrement, after which t is not touched (tally_close,
 * which may have begun meanwhile, looks again within a millisecond).  While closing: under mu, with a signal,
 * so that tally_close frees nothing before this call has let go of mu. */
static void call_end(tally *t)
{
    if (!atomic_load(&t->closing)) {
        atomic_fetch_sub(&t->inflight, 1);
        return;
    }
    pthread_mutex_lock(&t->mu);
    atomic_fetch_sub(&t->inflight, 1);
    pthread_cond_broadcast(&t->idle);
    pthread_mutex_unlock(&t->mu);
}

static int refuse_in_callback(const char *fn, tally_error *err)
{
    return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                      "%s was called from a tally callback, which runs on an engine thread: waiting there for the "
                      "engine would deadlock; use tally_call_async from a callback, or call from another thread", fn);
}

/* ---- completions ------------------------------------------------------------------ */

/* One call on its way: a synchronous caller's wait, or an asynchronous caller's callback. */
typedef struct lib_call {
    tally *t;
    bool async;
    /* synchronous: the caller's stack */
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    bool done;
    tally_job *job;
    /* asynchronous: heap, freed after the callback */
    tally_done_fn on_done;
    void *ctx;
} lib_call;

/* body (malloc'ed, len bytes, may be NULL) as an answer: NUL-terminated, never NULL; takes body. */
static tally_answer answer_of(int status, char *body, size_t len)
{
    char *b = realloc(body, len + 1);
    if (!b)
        abort();
    b[len] = '\0';
    return (tally_answer){.status = status, .body = b, .len = len};
}

static tally_answer answer_of_error(const tally_error *err)
{
    int status;
    size_t len;
    char *body = tally_render_error(err, &status, &len);
    return answer_of(status, body, len);
}

static void run_callback(lib_call *c, tally_answer *a)
{
    callback_depth++;
    c->on_done(a, c->ctx);
    callback_depth--;
    tally_answer_free(a);
    tally *t = c->t;
    free(c);
    call_end(t);
}

/* job->complete: on the engine thread that made the outcome final. */
static void on_complete(tally_job *job)
{
    lib_call *c = job->origin;
    if (c->async) {
        tally_answer a = answer_of(job->status, job->body, job->body_len);
        job->body = NULL;
        tally_job_free(job);
        run_callback(c, &a);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->job = job;
    c->done = true;
    pthread_cond_signal(&c->done_cv);
    pthread_mutex_unlock(&c->mu);
}

static void sync_init(lib_call *c, tally *t)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->done_cv, NULL);
}

/* Waits for on_complete; returns the job, now the caller's. */
static tally_job *sync_wait(lib_call *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->done_cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->done_cv);
    return c->job;
}

static void sync_discard(lib_call *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->done_cv);
}

/* ---- tally_call ------------------------------------------------------------------ */

/* Hands the request to the routes: TALLY_API_NOW with *now filled, or TALLY_API_LATER (c's completion will run). */
static int route(tally *t, const char *method, const char *path, const char *body, size_t len, lib_call *c,
                 tally_answer *now)
{
    const char *q = strchr(path, '?');
    tally_http_request req = {
        .method = method, .method_len = strlen(method),
        .path = path, .path_len = q ? (size_t)(q - path) : strlen(path),
        .query = q ? q + 1 : NULL, .query_len = q ? strlen(q + 1) : 0,
        .body = body, .body_len = len,
        .complete = on_complete, .origin = c,
    };
    tally_http_response resp;
    if (tally_api_handle(&t->api, &req, &resp) == TALLY_API_LATER)
        return TALLY_API_LATER;
    *now = answer_of(resp.status, resp.body, resp.body_len);
    return TALLY_API_NOW;
}

static int check_call(tally *t, const char *method, const char *path, const char *body, ptrdiff_t *len,
                      tally_error *err)
{
    if (!t || !method || !path)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "tally_call needs a handle, a method and a path");
    if (*len < 0 && *len != -1)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "the body's length is -1 (NUL-terminated) or >= 0");
    if (!body && *len > 0)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "the body is NULL but its length is not 0");
    if (*len == -1)
        *len = body ? (ptrdiff_t)strlen(body) : 0;
    return 0;
}

int tally_call(tally *t, const char *method, const char *path, const char *body, ptrdiff_t len,
               tally_answer *answer)
{
    tally_error err;
    if (!answer)
        return -TALLY_BAD_REQUEST;
    int rc = check_call(t, method, path, body, &len, &err);
    if (!rc && callback_depth)
        rc = refuse_in_callback("tally_call", &err);
    if (!rc)
        rc = call_begin(t, &err);
    if (rc) {
        *answer = answer_of_error(&err);
        return rc;
    }
    lib_call c;
    sync_init(&c, t);
    if (route(t, method, path, body, (size_t)len, &c, answer) == TALLY_API_NOW) {
        sync_discard(&c);
    } else {
        tally_job *job = sync_wait(&c);
        *answer = answer_of(job->status, job->body, job->body_len);
        job->body = NULL;
        tally_job_free(job);
    }
    call_end(t);
    return 0;
}

int tally_call_async(tally *t, const char *method, const char *path, const char *body, ptrdiff_t len,
                     tally_done_fn on_done, void *ctx)
{
    tally_error err;
    if (!on_done || check_call(t, method, path, body, &len, &err))
        return -TALLY_BAD_REQUEST;
    int rc = call_begin(t, &err);
    if (rc)
        return rc;
    lib_call *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->t = t;
    c->async = true;
    c->on_done = on_done;
    c->ctx = ctx;
    tally_answer now;
    if (route(t, method, path, body, (size_t)len, c, &now) == TALLY_API_NOW)
        run_callback(c, &now); /* ends the call */
    return 0;
}

void tally_answer_free(tally_answer *a)
{
    if (!a)
        return;
    free(a->body);
    a->body = NULL;
    a->len = 0;
}

/* ---- tally_increment ----------------------------------------------------------- */

static void render_nothing(tally_job *job) { (void)job; } /* the answer is read from the plan's result */

int tally_increment(tally *t, const char *model, int64_t id, const char *field, int64_t by, int64_t *new_value,
                    tally_error *err)
{
    if (!t || !model || !field)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "tally_increment needs a handle, a model and a field");
    if (callback_depth)
        return refuse_in_callback("tally_increment", err);
    const tally_model *m = tally_schema_model(t->schema, model, strlen(model));
    if (!m)
        return tally_fail(err, TALLY_NOT_FOUND, NULL, "the schema has no model called '%s'", model);
    int fi = tally_model_field(m, field, strlen(field));
    if (fi < 0)
        return tally_fail(err, TALLY_NOT_FOUND, field, "the model %s has no field called '%s'", m->name, field);
    const tally_field *f = &m->fields[fi];
    if (f->type != TALLY_TYPE_INTEGER)
        return tally_fail(err, TALLY_BAD_REQUEST, field, "%s.%s is a %s field; tally_increment adds to integer "
                          "fields (a float field through tally_call's _atomics)", m->name, field,
                          tally_type_name(f->type));
    int rc = call_begin(t, err);
    if (rc)
        return rc;
    tally_plan *plan = tally_plan_new(t->schema);
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_UPDATE, m);
    s->id = tally_value_int(id);
    s->where_path = "_where";
    s->atomics = tally_arena_alloc(&plan->arena, sizeof *s->atomics);
    s->atomics[0] = (tally_atomic){.column = f->column, .kind = TALLY_ATOMIC_INCREMENT, .amount = tally_value_int(by)};
    s->natomics = 1;
    plan->answer_step = 0;
    tally_job *job = tally_job_new(plan);
    job->render = render_nothing;
    job->complete = on_complete;
    lib_call c;
    sync_init(&c, t);
    job->origin = &c;
    if (tally_engine_submit(t->engine, job) != 0) {
        tally_job_free(job);
        sync_discard(&c);
        call_end(t);
        return tally_fail(err, TALLY_OVERLOADED, NULL, "%s",
                          "the write queue is full or the handle is closing; nothing was applied, retry later");
    }
    job = sync_wait(&c);
    rc = job->rc;
    if (rc) {
        if (err)
            *err = job->err;
    } else {
        const tally_value *v = &job->plan->results[0].record.cols[f->column];
        if (new_value)
            *new_value = v->u.i;
        if (err)
            tally_error_clear(err);
    }
    tally_job_free(job);
    call_end(t);
    return rc;
}

/* ---- open and close ---------------------------------------------------------------- */

static void install_json_allocator(void) { tally_json_arena_install(); }

/* Creates the SQLite data folder if needed and locks it: the fd (closed at tally_close), or -1 with err. */
static int lock_data_dir(const char *dir, tally_error *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot create data folder %s: %s", dir, strerror(errno)), -1;
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s is a file, not a data folder: the database is a folder "
                          "(its tally.db inside), sqlite:DIR or a postgresql:// URL", dir), -1;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tally.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot open %s: %s", path, strerror(errno)), -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        tally_fail(err, TALLY_INTERNAL, NULL, "the data folder %s is locked by another tally process (%s); stop it "
                   "first or use another --data folder", dir, path);
        return -1;
    }
    return fd;
}

static int load_schema(const char *schema, tally_schema **out, tally_error *err)
{
    const char *p = schema;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    int rc = *p == '{' ? tally_schema_parse(p, strlen(p), out, err) : tally_schema_load(schema, out, err);
    if (rc) {
        if (*p == '{')
            tally_fail(err, err->code, NULL, "bad schema: %s", err->message);
        else
            tally_fail(err, err->code, NULL, "bad schema %s: %s", schema, err->message);
    }
    return rc;
}

static void report_changes(const tally_buf *changes, const tally_options *o)
{
    for (const char *p = changes->s, *nl; o->on_migration && p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            nl = p + strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(nl - p), p);
        o->on_migration(line, o->on_migration_ctx);
        if (!*nl)
            break;
    }
}

int tally_open(const char *schema, const char *db, const tally_options *options, tally **out, tally_error *err)
{
    tally_error local_err;
    if (!err)
        err = &local_err;
    if (!out)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "tally_open needs somewhere to put the handle");
    *out = NULL;
    if (!schema || !db || !*db)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "tally_open needs a schema (a file or JSON text) and a "
                          "database (a data folder, sqlite:DIR or postgresql://…)");
    pthread_once(&json_once, install_json_allocator); /* before anything here allocates JSON */
    tally_options given; /* NULL, or a field left 0: the default */
    tally_options_init(&given);
    if (options) {
        tally_options d = given;
        given = *options;
        if (given.queue_max <= 0)
            given.queue_max = d.queue_max;
        if (given.batch_max <= 0)
            given.batch_max = d.batch_max;
        if (given.queue_timeout_ms <= 0)
            given.queue_timeout_ms = d.queue_timeout_ms;
        if (given.idempotency_ttl_ms <= 0)
            given.idempotency_ttl_ms = d.idempotency_ttl_ms;
        if (given.max_txn_steps <= 0)
            given.max_txn_steps = d.max_txn_steps;
        if (given.max_txn_ms <= 0)
            given.max_txn_ms = d.max_txn_ms;
        if (given.max_body == 0)
            given.max_body = d.max_body;
    }
    options = &given;
    tally *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->lock_fd = -1;
    atomic_init(&t->inflight, 0);
    atomic_init(&t->closing, false);
    char file[PATH_MAX + 16];
    const char *target;
    int rc = load_schema(schema, &t->schema, err);
    if (rc)
        goto fail;
    if (tally_backend_for(db, &target) == &tally_sqlite_backend) {
        if (!*target) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s", "sqlite:DIR needs a folder after 'sqlite:'");
            goto fail;
        }
        if ((t->lock_fd = lock_data_dir(target, err)) < 0) {
            rc = -(int)err->code;
            goto fail;
        }
        snprintf(file, sizeof file, "%s/tally.db", target);
    } else {
        snprintf(file, sizeof file, "%s", db);
    }
    tally_buf changes;
    tally_buf_init(&changes);
    tally_engine_options eo = {
        .db = file, .relaxed_durability = options->relaxed_durability != 0,
        .allow_destructive = options->allow_destructive != 0, .portable = options->portable != 0,
        .migration_changes = &changes,
        .writer = {.queue_max = (size_t)options->queue_max, .batch_max = (size_t)options->batch_max,
                   .queue_timeout_ms = (uint64_t)options->queue_timeout_ms,
                   .idempotency_ttl_ms = (uint64_t)options->idempotency_ttl_ms},
        .sessions = options->sessions, .lanes = options->lanes,
        .changes_retention_ms = options->changes_retention_ms, .changes_max_rows = options->changes_max_rows,
    };
    rc = tally_engine_open(t->schema, &eo, &t->engine, err);
    if (rc == 0)
        report_changes(&changes, options);
    tally_buf_free(&changes);
    if (rc)
        goto fail;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->idle, NULL);
    size_t openapi_len;
    t->openapi = tally_openapi_build(t->schema, &openapi_len);
    t->txns = tally_txn_quota_new(4, 64);
    t->api = (tally_api){.schema = t->schema, .engine = t->engine, .access = &t->access, .txns = t->txns,
                         .max_body = options->max_body, .max_txn_steps = options->max_txn_steps,
                         .max_txn_ms = (uint64_t)options->max_txn_ms, .openapi = t->openapi,
                         .openapi_len = openapi_len, .trusted = true};
    *out = t;
    tally_error_clear(err);
    return 0;
fail:
    if (t->lock_fd >= 0)
        close(t->lock_fd);
    tally_schema_free(t->schema);
    free(t);
    return rc;
}

int tally_close(tally *t)
{
    if (!t)
        return 0;
    if (callback_depth)
        return -TALLY_BAD_REQUEST;
    atomic_store(&t->closing, true);
    tally_engine_stop(t->engine); /* runs and answers everything queued; new submissions are refused */
    pthread_mutex_lock(&t->mu);
    while (atomic_load(&t->inflight) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&t->idle, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
    tally_engine_close(t->engine);
    tally_txn_quota_free(t->txns);
    free(t->openapi);
    tally_schema_free(t->schema);
    if (t->lock_fd >= 0)
        close(t->lock_fd); /* releases the data folder's lock */
    pthread_cond_destroy(&t->idle);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return 0;
}

tally_engine *tally_lib_engine(tally *t) { return t->engine; }
const tally_schema *tally_lib_schema(const tally *t) { return t->schema; }
