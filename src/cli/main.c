/*
 * main.c — the `tally` command: serve, check-schema, migrate.
 *
 *   tally serve --schema FILE --data DIR --listen HOST:PORT [options]
 *   tally check-schema FILE
 *   tally migrate --schema FILE --data DIR [--allow-destructive]
 *
 * Start-up order for serve: schema, data folder lock (flock, so two servers
 * never share one SQLite file), writer connection (durability checked),
 * migration, writer and reader threads, then the HTTP loops.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "net/server.h"
#include "store/store.h"

typedef struct options {
    const char *schema, *data, *listen;
    size_t max_body;
    long queue_timeout_ms, queue_max, batch_max;
    int threads;
    int max_txn_steps;
    long max_txn_ms;
    long idempotency_ttl_ms;
    bool allow_destructive, relaxed;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  tally serve --schema FILE --data DIR --listen HOST:PORT [options]\n"
            "  tally check-schema FILE\n"
            "  tally migrate --schema FILE --data DIR [--allow-destructive]\n"
            "\n"
            "serve options:\n"
            "  --schema FILE          models to serve (JSON, see DESIGN.md section 2)\n"
            "  --data DIR             data folder: tally.db and its WAL; created if missing, locked while served\n"
            "  --listen HOST:PORT     address to serve HTTP on (default 127.0.0.1:8080; port 0 picks a free one)\n"
            "  --max-body BYTES       largest request body (default 1048576); larger ones get 413\n"
            "  --queue-timeout MS     a write waiting longer for the writer gets 503, unapplied (default 5000)\n"
            "  --queue-max N          writes that may wait for the writer before new ones get 503 (default 10000)\n"
            "  --batch-max N          writes committed together at most (default 256)\n"
            "  --threads N            HTTP event loops (default: one per core)\n"
            "  --max-txn-steps N      steps in one transaction at most (default 1000)\n"
            "  --max-txn-ms MS        longest an interactive (WebSocket) transaction may stay open (default 5000)\n"
            "  --idempotency-ttl-ms MS  how long Idempotency-Key answers are kept (default 86400000, 24 h)\n"
            "  --allow-destructive    let a migration drop models and fields the schema no longer has\n"
            "  --durability-relaxed   synchronous=NORMAL: a power cut may lose the last commits (a crash of the\n"
            "                         process still loses nothing); default is FULL, every answered write on disk\n");
}

static long parse_long(const char *flag, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max) {
        fprintf(stderr, "tally: %s takes a whole number from %ld to %ld, not '%s'\n", flag, min, max, s);
        exit(2);
    }
    return v;
}

static int parse_args(int argc, char **argv, options *o)
{
    enum { O_SCHEMA = 256, O_DATA, O_LISTEN, O_MAX_BODY, O_QTIMEOUT, O_QMAX, O_BATCH, O_THREADS, O_DESTRUCTIVE,
           O_RELAXED, O_MAX_TXN_STEPS, O_MAX_TXN_MS, O_IDEM_TTL, O_HELP };
    static const struct option longopts[] = {
        {"schema", required_argument, 0, O_SCHEMA},       {"data", required_argument, 0, O_DATA},
        {"listen", required_argument, 0, O_LISTEN},       {"max-body", required_argument, 0, O_MAX_BODY},
        {"queue-timeout", required_argument, 0, O_QTIMEOUT}, {"queue-max", required_argument, 0, O_QMAX},
        {"batch-max", required_argument, 0, O_BATCH},     {"threads", required_argument, 0, O_THREADS},
        {"allow-destructive", no_argument, 0, O_DESTRUCTIVE}, {"durability-relaxed", no_argument, 0, O_RELAXED},
        {"max-txn-steps", required_argument, 0, O_MAX_TXN_STEPS},
        {"max-txn-ms", required_argument, 0, O_MAX_TXN_MS},
        {"idempotency-ttl-ms", required_argument, 0, O_IDEM_TTL},
        {"help", no_argument, 0, O_HELP},                 {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_SCHEMA: o->schema = optarg; break;
        case O_DATA: o->data = optarg; break;
        case O_LISTEN: o->listen = optarg; break;
        case O_MAX_BODY: o->max_body = (size_t)parse_long("--max-body", optarg, 1, 1L << 30); break;
        case O_QTIMEOUT: o->queue_timeout_ms = parse_long("--queue-timeout", optarg, 1, 3600000); break;
        case O_QMAX: o->queue_max = parse_long("--queue-max", optarg, 1, 10000000); break;
        case O_BATCH: o->batch_max = parse_long("--batch-max", optarg, 1, 100000); break;
        case O_THREADS: o->threads = (int)parse_long("--threads", optarg, 1, 256); break;
        case O_DESTRUCTIVE: o->allow_destructive = true; break;
        case O_RELAXED: o->relaxed = true; break;
        case O_IDEM_TTL: o->idempotency_ttl_ms = parse_long("--idempotency-ttl-ms", optarg, 1000, 365L * 86400000); break;
        case O_MAX_TXN_MS: o->max_txn_ms = parse_long("--max-txn-ms", optarg, 1, 3600000); break;
        case O_MAX_TXN_STEPS: o->max_txn_steps = (int)parse_long("--max-txn-steps", optarg, 1, 100000); break;
        case 'h':
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    return 0;
}

static int split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    size_t n = (size_t)(colon - listen);
    if (listen[0] == '[' && listen[n - 1] == ']') { /* [::1]:8080 */
        listen++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, listen, n);
    host[n] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* Creates the data folder if needed and locks it for this process's lifetime. */
static int lock_data_dir(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "tally: cannot create data folder %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tally.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "tally: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "tally: the data folder %s is locked by another tally process (%s); stop it first or use "
                        "another --data folder\n", dir, path);
        close(fd);
        return -1;
    }
    return fd; /* kept open: the lock lasts as long as the process */
}

typedef struct workers {
    tally_writer *writer;
    tally_reader *reader;
} workers;

static void drain(void *arg)
{
    workers *w = arg;
    tally_writer_stop(w->writer);
    tally_reader_stop(w->reader);
}

/* Opens the writer connection and migrates; shared by serve and migrate. */
static int open_and_migrate(const options *o, const tally_schema *schema, char *db_path, size_t db_len,
                            tally_store **out)
{
    tally_error err;
    snprintf(db_path, db_len, "%s/tally.db", o->data);
    tally_store_options so = {.role = TALLY_STORE_WRITER, .relaxed_durability = o->relaxed};
    if (tally_store_open(db_path, schema, &so, out, &err)) {
        fprintf(stderr, "tally: %s\n", err.message);
        return -1;
    }
    if (tally_store_migrate(*out, o->allow_destructive, &err)) {
        fprintf(stderr, "tally: schema change refused: %s\n", err.message);
        tally_store_close(*out);
        return -1;
    }
    return 0;
}

static int load_schema(const char *path, tally_schema **schema)
{
    tally_error err;
    if (!path) {
        fprintf(stderr, "tally: --schema FILE is required\n");
        return -1;
    }
    if (tally_schema_load(path, schema, &err)) {
        fprintf(stderr, "tally: bad schema %s: %s\n", path, err.message);
        return -1;
    }
    return 0;
}

static int cmd_serve(options *o)
{
    tally_schema *schema = NULL;
    char host[256], db_path[PATH_MAX];
    int port;
    if (!o->data) {
        fprintf(stderr, "tally: --data DIR is required\n");
        return 2;
    }
    if (split_listen(o->listen ? o->listen : "127.0.0.1:8080", host, sizeof host, &port)) {
        fprintf(stderr, "tally: --listen takes HOST:PORT, such as 127.0.0.1:8080, not '%s'\n", o->listen);
        return 2;
    }
    if (load_schema(o->schema, &schema) || lock_data_dir(o->data) < 0)
        return 1;
    tally_store *wstore, *rstore;
    tally_error err;
    if (open_and_migrate(o, schema, db_path, sizeof db_path, &wstore))
        return 1;
    tally_store_options ro = {.role = TALLY_STORE_READER};
    if (tally_store_open(db_path, schema, &ro, &rstore, &err)) {
        fprintf(stderr, "tally: %s\n", err.message);
        return 1;
    }
    workers w = {0};
    tally_writer_options wo = {.queue_max = (size_t)o->queue_max, .batch_max = (size_t)o->batch_max,
                               .queue_timeout_ms = (uint64_t)o->queue_timeout_ms,
                               .idempotency_ttl_ms = (uint64_t)o->idempotency_ttl_ms};
    if (tally_writer_start(wstore, &wo, &w.writer, &err) || tally_reader_start(rstore, 10000, &w.reader, &err)) {
        fprintf(stderr, "tally: %s\n", err.message);
        return 1;
    }
    tally_api api = {.schema = schema, .writer = w.writer, .reader = w.reader, .max_body = o->max_body,
                     .max_txn_steps = o->max_txn_steps, .max_txn_ms = (uint64_t)o->max_txn_ms};
    tally_server_options so = {.host = host, .port = port, .threads = o->threads, .api = &api,
                               .db_path = db_path, .schema = schema, .drain = drain, .drain_arg = &w};
    int rc = tally_server_run(&so, &err);
    if (rc)
        fprintf(stderr, "tally: %s\n", err.message);
    drain(&w);
    tally_writer_free(w.writer); /* closes the writer connection: SQLite checkpoints on close */
    tally_reader_free(w.reader);
    tally_schema_free(schema);
    if (rc == 0)
        fprintf(stderr, "tally: stopped cleanly\n");
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    options o = {.max_body = 1 << 20, .queue_timeout_ms = 5000, .queue_max = 10000, .batch_max = 256,
                 .max_txn_steps = 1000, .max_txn_ms = 5000, .idempotency_ttl_ms = 86400000};
    if (strcmp(cmd, "check-schema") == 0) {
        tally_schema *schema;
        if (argc != 3) {
            fprintf(stderr, "usage: tally check-schema FILE\n");
            return 2;
        }
        if (load_schema(argv[2], &schema))
            return 1;
        printf("tally: %s is a valid schema with %d model(s)\n", argv[2], schema->nmodels);
        tally_schema_free(schema);
        return 0;
    }
    if (parse_args(argc - 1, argv + 1, &o))
        return 2;
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(&o);
    if (strcmp(cmd, "migrate") == 0) {
        tally_schema *schema;
        tally_store *st;
        char db_path[PATH_MAX];
        if (!o.data || load_schema(o.schema, &schema) || lock_data_dir(o.data) < 0)
            return o.data ? 1 : (fprintf(stderr, "tally: --data DIR is required\n"), 2);
        if (open_and_migrate(&o, schema, db_path, sizeof db_path, &st))
            return 1;
        tally_store_close(st);
        tally_schema_free(schema);
        printf("tally: %s matches %s\n", db_path, o.schema);
        return 0;
    }
    fprintf(stderr, "tally: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
