/*
 * main.c — the `tally` command: serve, check-schema, migrate, copy, keys.
 *
 *   tally serve --schema FILE (--data DIR | --db URL) --listen HOST:PORT [options]
 *   tally check-schema FILE
 *   tally migrate --schema FILE (--data DIR | --db URL) [--allow-destructive]
 *   tally keys create|list|revoke (--data DIR | --db URL) …   (cli/keys.c)
 *   tally gen ts --schema FILE [--out FILE]                     (cli/gen_ts.c)
 *
 * Every flag may also be given as an environment variable TALLY_<FLAG>
 * (--db as TALLY_DB, --queue-timeout as TALLY_QUEUE_TIMEOUT); a flag on the
 * command line wins.
 *
 * Start-up order for serve: schema, on SQLite the data folder lock (flock,
 * so two servers never share one SQLite file), the engine (connections,
 * durability checked, migration, workers), then the HTTP loops.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/actions.h"
#include "api/api.h"
#include "api/console.h"
#include "api/openapi.h"
#include "api/origin.h"
#include "api/txn_quota.h"
#include "cli/gen_ts.h"
#include "cli/keys.h"
#include "core/json_arena.h"
#include "exec/engine.h"
#include "exec/keyring.h"
#include "lib/embed.h"
#include "net/server.h"
#include "store/backup.h"
#include "store/copy.h"

#define MAX_REPEATS 64

typedef struct options {
    const char *schema, *data, *db, *listen, *from, *to, *tls_cert, *tls_key, *name, *console_dir;
    const char *cors[MAX_REPEATS], *hosts[MAX_REPEATS], *scopes[MAX_REPEATS];
    int ncors, nhosts, nscopes;
    bool open;
    int max_txns, max_txns_per_key;
    bool queue_timeout_set;
    bool positional_wanted;  /* tally keys revoke NAME */
    const char *positional;
    size_t max_body, max_header_size;
    int max_connections;
    long request_timeout_ms;
    long queue_timeout_ms, queue_max, batch_max;
    int threads, sessions, lanes;
    int max_txn_steps;
    long max_txn_ms;
    long idempotency_ttl_ms;
    long changes_retention_ms, changes_max_rows;
    bool allow_destructive, relaxed, portable, dry_run;
    tally_log_format log_format;
    tally_log_level log_level;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  tally serve --schema FILE (--data DIR | --db URL) --listen HOST:PORT [options]\n"
            "  tally check-schema FILE [--data DIR | --db URL]   (and whether that database would migrate to it)\n"
            "  tally migrate --schema FILE (--data DIR | --db URL) [--allow-destructive] [--dry-run]\n"
            "                         (prints each change it makes; --dry-run prints them and changes nothing)\n"
            "  tally backup --data DIR --to FILE   (a consistent copy of a SQLite database while it is served)\n"
            "  tally restore --from FILE --data NEW_DIR   (a backup into a new data folder; ids and fences move on)\n"
            "  tally copy --schema FILE --from DIR --to postgresql://…   (SQLite data folder into an empty\n"
            "                         PostgreSQL database: records with their ids, fences, limits, stored answers,\n"
            "                         API keys)\n"
            "\n"
            "serve options (each also as an environment variable: --db as TALLY_DB, --max-body as TALLY_MAX_BODY):\n"
            "  --schema FILE          models to serve (JSON; see the README, section Schema)\n"
            "  --data DIR             SQLite: the data folder (tally.db and its WAL); created if missing, locked while\n"
            "                         served\n"
            "  --db URL               the database: sqlite:DIR (the same as --data DIR) or\n"
            "                         postgresql://USER[:PASSWORD]@HOST:PORT/DB, shared by any number of servers\n"
            "  --listen HOST:PORT     address to serve HTTP on (default 127.0.0.1:8080; port 0 picks a free one)\n"
            "  --max-body BYTES       largest request body (default 1048576); larger ones get 413\n"
            "  --tls-cert FILE        serve HTTPS (HTTP/2 by ALPN, HTTP/1.1 otherwise) with this PEM certificate\n"
            "                         (chain); needs --tls-key\n"
            "  --tls-key FILE         the certificate's PEM private key (unencrypted)\n"
            "  --max-connections N    connections open at once (default 1024); past it a request is answered 503\n"
            "                         OVERLOADED and its connection closed\n"
            "  --max-header-size BYTES  a request's line and headers (default 65536, at most 262144); larger: 431\n"
            "  --request-timeout MS   a client's time to send a request's headers and body, to finish the TLS\n"
            "                         handshake, or to stay idle between requests; then the connection is closed\n"
            "                         and a slow request logged (default 10000)\n"
            "  --queue-timeout MS     a write waiting longer for the writer gets 503, unapplied (default: --max-txn-ms\n"
            "                         + 5000, so 10000: above the longest interactive transaction)\n"
            "  --queue-max N          writes that may wait for the writer before new ones get 503 (default 10000)\n"
            "  --batch-max N          writes committed together at most (default 256)\n"
            "  --threads N            HTTP event loops (default: one per core)\n"
            "  --max-txn-steps N      steps in one transaction at most (default 1000)\n"
            "  --max-txn-ms MS        longest an interactive (WebSocket) transaction may stay open (default 5000)\n"
            "  --idempotency-ttl-ms MS  how long Idempotency-Key answers are kept (default 86400000, 24 h)\n"
            "  --changes-retention-ms MS  how long the change feed keeps a change (default 86400000, a day)\n"
            "  --changes-max-rows N   the change feed keeps at most the newest N changes (default: no bound)\n"
            "  --allow-destructive    let a migration drop models and fields the schema no longer has\n"
            "  --durability-relaxed   SQLite synchronous=NORMAL: a power cut may lose the last commits (a crash of\n"
            "                         the process still loses nothing); PostgreSQL synchronous_commit=off: a crash\n"
            "                         of the database server may lose the last commits. Default: every answered\n"
            "                         write is on disk\n"
            "  --lanes N              PostgreSQL: writer connections, each with its own group-commit batch; a\n"
            "                         request goes to the lane of the first key it touches (default 4)\n"
            "  --sessions N           PostgreSQL: interactive transactions open at once, each on its own\n"
            "                         connection (default 16); a begin past them waits up to --queue-timeout\n"
            "  --portable             PostgreSQL: only what PostgreSQL-compatible distributed engines share: a meta\n"
            "                         row locked FOR UPDATE instead of advisory locks, no LISTEN/NOTIFY (lock\n"
            "                         waiters on other servers are found by polling); see docs/distributed-engines.md\n"
            "  --max-txns N           interactive transactions open or waiting to begin at once, in all; a begin\n"
            "                         beyond gets 503 OVERLOADED (default 64)\n"
            "  --max-txns-per-key N   the same for one API key; beyond, 429 TOO_MANY_TRANSACTIONS (default 4)\n"
            "  --log-format text|json the request and start-up lines on stderr: key=value text, or one JSON object a\n"
            "                         line (default text)\n"
            "  --log-level LEVEL      debug, info, warn or error: lines below it are not written (default info;\n"
            "                         2xx/3xx requests are info, 4xx/5xx warn)\n"
            "  --console-dir DIR      the web console's files, served at /console (default: console/ beside the\n"
            "                         binary, then ../share/tally/console; without them /console answers 404)\n"
            "\n"
            "access (README, section Access; each also as TALLY_CORS_ORIGIN, TALLY_HOST: comma-separated):\n"
            "  --cors-origin ORIGIN   let web pages from ORIGIN (https://app.example.com) call the server; repeatable;\n"
            "                         '*' (any page) only counts once API keys exist\n"
            "  --host NAME            with no API keys yet, answer to Host NAME too (besides localhost, 127.0.0.1\n"
            "                         and [::1]); repeatable\n"
            "  --open                 serve without API keys on a non-loopback address: anyone who can reach it\n"
            "                         may read and write everything\n"
            "\n"
            "keys (work while a server serves the same --data or --db):\n"
            "  tally keys create --name NAME --scope SCOPE [--scope SCOPE...] (--data DIR | --db URL) [--schema FILE]\n"
            "                         prints the new key's token, once; scopes: admin, read, write, read:MODEL,\n"
            "                         write:MODEL, locks, limits, changes, action:NAME, metrics\n"
            "  tally keys list (--data DIR | --db URL)\n"
            "  tally keys revoke NAME (--data DIR | --db URL)\n"
            "\n"
            "  tally gen ts --schema FILE [--out FILE]   TypeScript types of the schema's models for @tally/client\n"
            "\n"
            "  tally --version        prints the version\n");
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

enum { O_SCHEMA = 256, O_DATA, O_DB, O_FROM, O_TO, O_SESSIONS, O_LANES, O_LISTEN, O_MAX_BODY, O_QTIMEOUT, O_QMAX, O_BATCH, O_THREADS,
       O_DESTRUCTIVE, O_RELAXED, O_PORTABLE, O_DRY_RUN, O_MAX_TXN_STEPS, O_MAX_TXN_MS, O_IDEM_TTL, O_TLS_CERT, O_TLS_KEY,
       O_MAX_CONN, O_MAX_HEADER, O_REQ_TIMEOUT, O_HELP, O_CORS, O_HOST, O_OPEN, O_MAX_TXNS, O_MAX_TXNS_KEY, O_NAME,
       O_SCOPE, O_LOG_FORMAT, O_LOG_LEVEL, O_VERSION, O_CONSOLE_DIR, O_CHANGES_RETENTION, O_CHANGES_MAX_ROWS };

/* A repeatable flag's value: kept in list (at most MAX_REPEATS). */
static void repeat(const char *flag, const char **list, int *n, const char *v)
{
    if (*n == MAX_REPEATS) {
        fprintf(stderr, "tally: %s is given more than %d times\n", flag, MAX_REPEATS);
        exit(2);
    }
    list[(*n)++] = v;
}

/* Sets the option c (a getopt value) from text v (NULL for a switch). */
static int apply_option(options *o, int c, const char *v)
{
    switch (c) {
    case O_SCHEMA: o->schema = v; break;
    case O_DATA: o->data = v; break;
    case O_DB: o->db = v; break;
    case O_FROM: o->from = v; break;
    case O_TO: o->to = v; break;
    case O_SESSIONS: o->sessions = (int)parse_long("--sessions", v, 1, 10000); break;
    case O_LANES: o->lanes = (int)parse_long("--lanes", v, 1, 64); break;
    case O_LISTEN: o->listen = v; break;
    case O_MAX_BODY: o->max_body = (size_t)parse_long("--max-body", v, 1, 1L << 30); break;
    case O_QTIMEOUT:
        o->queue_timeout_ms = parse_long("--queue-timeout", v, 1, 3600000);
        o->queue_timeout_set = true;
        break;
    case O_CORS:
        if (!tally_origin_valid(v)) {
            fprintf(stderr, "tally: --cors-origin takes an origin such as https://app.example.com (scheme, host, "
                            "optional port, no path) or *, not '%s'\n", v);
            exit(2);
        }
        repeat("--cors-origin", o->cors, &o->ncors, v);
        break;
    case O_HOST: repeat("--host", o->hosts, &o->nhosts, v); break;
    case O_SCOPE: repeat("--scope", o->scopes, &o->nscopes, v); break;
    case O_NAME: o->name = v; break;
    case O_CONSOLE_DIR: o->console_dir = v; break;
    case O_OPEN: o->open = true; break;
    case O_MAX_TXNS: o->max_txns = (int)parse_long("--max-txns", v, 1, 100000); break;
    case O_MAX_TXNS_KEY: o->max_txns_per_key = (int)parse_long("--max-txns-per-key", v, 1, 100000); break;
    case O_QMAX: o->queue_max = parse_long("--queue-max", v, 1, 10000000); break;
    case O_BATCH: o->batch_max = parse_long("--batch-max", v, 1, 100000); break;
    case O_THREADS: o->threads = (int)parse_long("--threads", v, 1, 256); break;
    case O_DESTRUCTIVE: o->allow_destructive = true; break;
    case O_RELAXED: o->relaxed = true; break;
    case O_PORTABLE: o->portable = true; break;
    case O_DRY_RUN: o->dry_run = true; break;
    case O_CHANGES_RETENTION:
        o->changes_retention_ms = parse_long("--changes-retention-ms", v, 100, 3650L * 86400000);
        break;
    case O_CHANGES_MAX_ROWS: o->changes_max_rows = parse_long("--changes-max-rows", v, 1, 1L << 50); break;
    case O_IDEM_TTL: o->idempotency_ttl_ms = parse_long("--idempotency-ttl-ms", v, 1000, 365L * 86400000); break;
    case O_MAX_TXN_MS: o->max_txn_ms = parse_long("--max-txn-ms", v, 1, 3600000); break;
    case O_MAX_TXN_STEPS: o->max_txn_steps = (int)parse_long("--max-txn-steps", v, 1, 100000); break;
    case O_TLS_CERT: o->tls_cert = v; break;
    case O_TLS_KEY: o->tls_key = v; break;
    case O_MAX_CONN: o->max_connections = (int)parse_long("--max-connections", v, 1, 1000000); break;
    case O_MAX_HEADER: o->max_header_size = (size_t)parse_long("--max-header-size", v, 256, 262144); break;
    case O_REQ_TIMEOUT: o->request_timeout_ms = parse_long("--request-timeout", v, 100, 3600000); break;
    case O_LOG_FORMAT:
        if (tally_log_parse_format(v, &o->log_format) != 0) {
            fprintf(stderr, "tally: --log-format takes text or json, not '%s'\n", v);
            exit(2);
        }
        break;
    case O_LOG_LEVEL:
        if (tally_log_parse_level(v, &o->log_level) != 0) {
            fprintf(stderr, "tally: --log-level takes debug, info, warn or error, not '%s'\n", v);
            exit(2);
        }
        break;
    default: return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"schema", required_argument, 0, O_SCHEMA},       {"data", required_argument, 0, O_DATA},
        {"db", required_argument, 0, O_DB},               {"sessions", required_argument, 0, O_SESSIONS},
        {"lanes", required_argument, 0, O_LANES},
        {"from", required_argument, 0, O_FROM},           {"to", required_argument, 0, O_TO},
        {"listen", required_argument, 0, O_LISTEN},       {"max-body", required_argument, 0, O_MAX_BODY},
        {"queue-timeout", required_argument, 0, O_QTIMEOUT}, {"queue-max", required_argument, 0, O_QMAX},
        {"batch-max", required_argument, 0, O_BATCH},     {"threads", required_argument, 0, O_THREADS},
        {"allow-destructive", no_argument, 0, O_DESTRUCTIVE}, {"durability-relaxed", no_argument, 0, O_RELAXED},
        {"portable", no_argument, 0, O_PORTABLE},         {"dry-run", no_argument, 0, O_DRY_RUN},
        {"max-txn-steps", required_argument, 0, O_MAX_TXN_STEPS},
        {"max-txn-ms", required_argument, 0, O_MAX_TXN_MS},
        {"idempotency-ttl-ms", required_argument, 0, O_IDEM_TTL},
        {"changes-retention-ms", required_argument, 0, O_CHANGES_RETENTION},
        {"changes-max-rows", required_argument, 0, O_CHANGES_MAX_ROWS},
        {"tls-cert", required_argument, 0, O_TLS_CERT},   {"tls-key", required_argument, 0, O_TLS_KEY},
        {"max-connections", required_argument, 0, O_MAX_CONN},
        {"max-header-size", required_argument, 0, O_MAX_HEADER},
        {"request-timeout", required_argument, 0, O_REQ_TIMEOUT},
        {"cors-origin", required_argument, 0, O_CORS},    {"host", required_argument, 0, O_HOST},
        {"open", no_argument, 0, O_OPEN},                 {"max-txns", required_argument, 0, O_MAX_TXNS},
        {"max-txns-per-key", required_argument, 0, O_MAX_TXNS_KEY},
        {"name", required_argument, 0, O_NAME},           {"scope", required_argument, 0, O_SCOPE},
        {"log-format", required_argument, 0, O_LOG_FORMAT}, {"log-level", required_argument, 0, O_LOG_LEVEL},
        {"console-dir", required_argument, 0, O_CONSOLE_DIR},
        {"help", no_argument, 0, O_HELP},                 {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0}};
    /* TALLY_<FLAG> first, so that the command line wins. */
    for (const struct option *lo = longopts; lo->name; lo++) {
        char env[64] = "TALLY_";
        size_t n = strlen(env);
        for (const char *p = lo->name; *p && n + 1 < sizeof env; p++)
            env[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[n] = '\0';
        const char *v = getenv(env);
        if (!v || lo->val == O_HELP || lo->val == O_VERSION) /* no TALLY_HELP, TALLY_VERSION */
            continue;
        if (lo->has_arg == no_argument && strcmp(v, "1") != 0 && strcmp(v, "true") != 0)
            continue;
        if (lo->val == O_CORS || lo->val == O_HOST || lo->val == O_SCOPE) { /* repeatable: a comma-separated list */
            char *copy = strdup(v), *save = NULL; /* kept: the options point into it */
            for (char *part = strtok_r(copy, ", ", &save); part; part = strtok_r(NULL, ", ", &save))
                apply_option(o, lo->val, part);
            continue;
        }
        if (apply_option(o, lo->val, v) != 0)
            return -1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h' || c == O_HELP) {
            usage(stdout);
            exit(0);
        }
        if (c == O_VERSION) {
            printf("tally %s\n", TALLY_VERSION);
            exit(0);
        }
        if (apply_option(o, c, optarg) != 0) {
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc && o->positional_wanted && !o->positional)
        o->positional = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "tally: unexpected argument '%s'\n", argv[optind]);
        return -1;
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

/* The database the options name: db (a URL for the engine) and, on SQLite,
 * the data folder that serve and migrate lock.  -1 after saying what is wrong. */
static int resolve_db(const options *o, char *db, size_t cap, const char **sqlite_dir)
{
    *sqlite_dir = NULL;
    if (o->data && o->db) {
        fprintf(stderr, "tally: give either --data DIR or --db URL, not both\n");
        return -1;
    }
    if (!o->data && !o->db) {
        fprintf(stderr, "tally: --data DIR (SQLite) or --db URL (sqlite:DIR or postgresql://…) is required\n");
        return -1;
    }
    const char *target;
    if (o->db && tally_backend_for(o->db, &target) != &tally_sqlite_backend) {
        snprintf(db, cap, "%s", o->db);
        return 0;
    }
    *sqlite_dir = o->data ? o->data : target;
    if (!**sqlite_dir) {
        fprintf(stderr, "tally: --db sqlite:DIR needs a folder after 'sqlite:'\n");
        return -1;
    }
    snprintf(db, cap, "%s/tally.db", *sqlite_dir);
    return 0;
}

static tally_engine_options engine_options(const options *o, const char *db)
{
    return (tally_engine_options){
        .db = db, .relaxed_durability = o->relaxed, .allow_destructive = o->allow_destructive,
        .portable = o->portable,
        .writer = {.queue_max = (size_t)o->queue_max, .batch_max = (size_t)o->batch_max,
                   .queue_timeout_ms = (uint64_t)o->queue_timeout_ms,
                   .idempotency_ttl_ms = (uint64_t)o->idempotency_ttl_ms},
        .sessions = o->sessions,
        .lanes = o->lanes,
        .changes_retention_ms = o->changes_retention_ms,
        .changes_max_rows = o->changes_max_rows,
    };
}

/* The same settings for libtally's tally_open (serve). */
static tally_options library_options(const options *o)
{
    tally_options lo;
    tally_options_init(&lo);
    lo.relaxed_durability = o->relaxed;
    lo.allow_destructive = o->allow_destructive;
    lo.portable = o->portable;
    lo.queue_max = o->queue_max;
    lo.batch_max = o->batch_max;
    lo.queue_timeout_ms = o->queue_timeout_ms;
    lo.idempotency_ttl_ms = o->idempotency_ttl_ms;
    lo.lanes = o->lanes;
    lo.sessions = o->sessions;
    lo.max_txn_steps = o->max_txn_steps;
    lo.max_txn_ms = o->max_txn_ms;
    lo.max_body = o->max_body;
    lo.changes_retention_ms = o->changes_retention_ms;
    lo.changes_max_rows = o->changes_max_rows;
    return lo;
}

static void drain(void *arg) { tally_engine_stop(arg); }

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
    if (tally_actions_check(*schema, &err)) { /* the steps of named actions, against the models */
        fprintf(stderr, "tally: bad schema %s: %s\n", path, err.message);
        tally_schema_free(*schema);
        *schema = NULL;
        return -1;
    }
    return 0;
}

/* Each connection is an open file: raise the soft limit toward the hard one
 * if --max-connections needs it, and say so when even that is too low. */
static void open_files_for(int max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + 256; /* the databases, the data folder, the loops */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        fprintf(stderr, "tally: --max-connections %d needs about %llu open files, and this process may open only "
                        "%llu (ulimit -n): connections past that are refused by the system, unanswered\n",
                max_connections, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

/* The migration's changes, a line each with prefix (nothing when there were none). */
static void print_changes(FILE *f, const char *prefix, const tally_buf *changes)
{
    for (const char *p = changes->s, *nl; p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        fprintf(f, "tally: %s%.*s\n", prefix, (int)(nl - p), p);
    }
}

/* tally_options.on_migration: a line on stderr per change the start-up migration made. */
static void print_migrated(const char *change, void *ctx) { fprintf(stderr, "tally: migrated: %s\n", change); }

static int cmd_serve(options *o)
{
    char host[256], db[PATH_MAX + 16];
    const char *dir;
    int port;
    if (resolve_db(o, db, sizeof db, &dir))
        return 2;
    if (split_listen(o->listen ? o->listen : "127.0.0.1:8080", host, sizeof host, &port)) {
        fprintf(stderr, "tally: --listen takes HOST:PORT, such as 127.0.0.1:8080, not '%s'\n", o->listen);
        return 2;
    }
    if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
        fprintf(stderr, "tally: HTTPS needs both --tls-cert FILE and --tls-key FILE; %s was not given\n",
                o->tls_cert ? "--tls-key" : "--tls-cert");
        return 2;
    }
    tally_log_configure(o->log_format, o->log_level);
    open_files_for(o->max_connections);
    if (!o->schema) {
        fprintf(stderr, "tally: --schema FILE is required\n");
        return 1;
    }
    /* The engine through libtally (src/lib/tally.c): schema, the data folder's lock, store, migration, workers. */
    tally *lib;
    tally_error err;
    tally_options lo = library_options(o);
    lo.on_migration = print_migrated;
    if (tally_open(o->schema, o->db ? o->db : o->data, &lo, &lib, &err)) {
        fprintf(stderr, "tally: %s\n", err.message);
        return 1;
    }
    tally_engine *engine = tally_lib_engine(lib);
    const tally_schema *schema = tally_lib_schema(lib);
    /* Open mode (no key has ever existed) only on a loopback address, unless --open says otherwise. */
    bool keys_on = tally_keyring_keys_on(tally_engine_keyring(engine));
    if (!keys_on && !o->open && !tally_listen_is_loopback(host)) {
        fprintf(stderr,
                "tally: refusing to serve %s without API keys: anyone who can reach it could read and write "
                "everything. Create a key first:\n"
                "  tally keys create --name admin --scope admin %s %s\n"
                "(it prints the token to send as Authorization: Bearer TOKEN), or listen on 127.0.0.1, or pass "
                "--open to serve without keys anyway\n",
                o->listen, o->db ? "--db" : "--data", o->db ? o->db : dir);
        tally_close(lib);
        return 1;
    }
    if (!keys_on)
        for (int i = 0; i < o->ncors; i++)
            if (strcmp(o->cors[i], "*") == 0)
                fprintf(stderr, "tally: --cors-origin '*' allows no page until an API key exists\n");
    tally_access access = {.cors = o->cors, .ncors = o->ncors, .hosts = o->hosts, .nhosts = o->nhosts,
                           .listen_host = host, .open = o->open};
    char console_dir[PATH_MAX], console_err[PATH_MAX * 2 + 200];
    tally_console *console = NULL;
    if (tally_console_find(o->console_dir, console_dir, sizeof console_dir, console_err, sizeof console_err) == 0)
        console = tally_console_load(console_dir, console_err, sizeof console_err);
    if (!console && o->console_dir) { /* asked for by name: a mistake to stop at */
        fprintf(stderr, "tally: %s\n", console_err);
        tally_close(lib);
        return 2;
    }
    if (!console)
        fprintf(stderr, "tally: note: no web console: %s; /console answers 404\n", console_err);
    tally_txn_quota *txns = tally_txn_quota_new(o->max_txns_per_key, o->max_txns);
    size_t openapi_len;
    char *openapi = tally_openapi_build(schema, &openapi_len); /* once: every GET /api/openapi.json serves these bytes */
    tally_api api = {.schema = schema, .engine = engine, .access = &access, .txns = txns, .max_body = o->max_body,
                     .max_txn_steps = o->max_txn_steps, .max_txn_ms = (uint64_t)o->max_txn_ms,
                     .openapi = openapi, .openapi_len = openapi_len, .console = console};
    char where[PATH_MAX + 16];
    tally_url_redact(dir ? dir : db, where, sizeof where);
    const tally_log_field startup[] = {
        {"version", TALLY_VERSION},
        {"backend", tally_engine_backend(engine)->name},
        {"db", where},
        {"durability", o->relaxed ? "relaxed" : "durable"},
        {"access", keys_on ? "keys" : "open"},
    };
    tally_server_options so = {.host = host, .port = port, .threads = o->threads, .api = &api,
                               .startup = startup, .nstartup = (int)(sizeof startup / sizeof startup[0]),
                               .tls_cert = o->tls_cert, .tls_key = o->tls_key,
                               .max_connections = o->max_connections, .max_header_size = o->max_header_size,
                               .request_timeout_ms = (uint64_t)o->request_timeout_ms,
                               .drain = drain, .drain_arg = engine};
    int rc = tally_server_run(&so, &err);
    tally_txn_quota_free(txns);
    tally_console_free(console);
    free(openapi);
    if (rc)
        fprintf(stderr, "tally: %s\n", err.message);
    tally_close(lib); /* the drain stopped the engine; this closes it and the data folder's lock */
    if (rc == 0)
        fprintf(stderr, "tally: stopped cleanly\n");
    return rc ? 1 : 0;
}

static int cmd_migrate(options *o)
{
    tally_schema *schema;
    char db[PATH_MAX + 16];
    const char *dir;
    tally_error err;
    if (resolve_db(o, db, sizeof db, &dir))
        return 2;
    if (load_schema(o->schema, &schema) || (dir && lock_data_dir(dir) < 0))
        return 1;
    tally_engine_options eo = engine_options(o, db);
    tally_buf changes;
    tally_buf_init(&changes);
    eo.migration_changes = &changes;
    eo.check_only = o->dry_run;
    int rc = tally_engine_migrate(schema, &eo, &err);
    if (rc) {
        fprintf(stderr, "tally: %s\n", err.message);
    } else {
        print_changes(stdout, o->dry_run ? "would apply: " : "applied: ", &changes);
        if (o->dry_run)
            printf("tally: dry run: %s; nothing was changed\n",
                   changes.len ? "the changes above would be made" : "the database already matches the schema");
        else
            printf("tally: the database matches %s%s\n", o->schema, changes.len ? "" : " (nothing to change)");
    }
    tally_buf_free(&changes);
    tally_schema_free(schema);
    return rc ? 1 : 0;
}

/* tally check-schema FILE [--data DIR | --db URL]: the schema alone, or also
 * whether that database would migrate to it (the migration is run and rolled back). */
static int cmd_check_schema(int argc, char **argv, options *o)
{
    tally_schema *schema;
    if (argc < 3 || argv[2][0] == '-') {
        fprintf(stderr, "usage: tally check-schema FILE [--data DIR | --db URL]\n");
        return 2;
    }
    const char *file = argv[2];
    if (parse_args(argc - 2, argv + 2, o))
        return 2;
    if (load_schema(file, &schema))
        return 1;
    printf("tally: %s is a valid schema with %d model(s)\n", file, schema->nmodels);
    int rc = 0;
    if (o->data || o->db) {
        char db[PATH_MAX + 16], where[300];
        const char *dir;
        tally_error err;
        if (resolve_db(o, db, sizeof db, &dir)) {
            tally_schema_free(schema);
            return 2;
        }
        tally_url_redact(dir ? dir : db, where, sizeof where);
        if (dir && access(db, F_OK) != 0) {
            printf("tally: %s holds no database yet; serving it would create one for this schema\n", where);
        } else {
            tally_engine_options eo = engine_options(o, db);
            tally_buf changes;
            tally_buf_init(&changes);
            eo.check_only = true;
            eo.migration_changes = &changes;
            rc = tally_engine_migrate(schema, &eo, &err);
            if (rc)
                fprintf(stderr, "tally: %s cannot serve this schema as it is: %s\n", where, err.message);
            else {
                print_changes(stdout, "would apply: ", &changes);
                printf("tally: %s matches it, or will be migrated to it at start-up (nothing was changed now)\n",
                       where);
            }
            tally_buf_free(&changes);
        }
    }
    tally_schema_free(schema);
    return rc ? 1 : 0;
}

/* The SQLite data folder of a backup or restore; PostgreSQL has its own tools. */
static int sqlite_folder(const options *o, const char *command, char *file, size_t cap, const char **dir)
{
    if (resolve_db(o, file, cap, dir))
        return -1;
    if (!*dir) {
        fprintf(stderr, "tally: %s is for SQLite data folders; back up PostgreSQL with pg_dump, or base backups with "
                        "point-in-time recovery (README, section Backups)\n", command);
        return -1;
    }
    return 0;
}

/* tally backup --data DIR --to FILE: one consistent snapshot while a server may serve DIR (store/backup.h). */
static int cmd_backup(options *o)
{
    char file[PATH_MAX + 16];
    const char *dir;
    if (!o->to) {
        fprintf(stderr, "tally: backup needs --to FILE (a new file for the copy)\n");
        return 2;
    }
    if (sqlite_folder(o, "tally backup", file, sizeof file, &dir))
        return 2;
    tally_backup_info info = {0};
    tally_error err;
    if (tally_backup_sqlite(file, o->to, &info, &err)) {
        fprintf(stderr, "tally: backup failed: %s\n", err.message);
        return 1;
    }
    printf("tally: backed up %s to %s: one snapshot, %d pages of %d bytes; restore it with tally restore --from %s "
           "--data NEW_DIR\n", dir, o->to, info.pages, info.page_size, o->to);
    return 0;
}

/* tally restore --from FILE --data NEW_DIR: the backup into a new folder, as the next restore generation. */
static int cmd_restore(options *o)
{
    char file[PATH_MAX + 16];
    const char *dir;
    if (!o->from) {
        fprintf(stderr, "tally: restore needs --from FILE (a file made by tally backup)\n");
        return 2;
    }
    if (sqlite_folder(o, "tally restore", file, sizeof file, &dir) || lock_data_dir(dir) < 0)
        return 2;
    int64_t generation = 0;
    tally_error err;
    if (tally_restore_sqlite(o->from, file, &generation, &err)) {
        fprintf(stderr, "tally: restore failed, nothing was restored: %s\n", err.message);
        return 1;
    }
    printf("tally: restored %s into %s (restore generation %lld: new ids and lock fences start above %lld, past any "
           "the lost database may have handed out after the backup); serve it with --data %s\n",
           o->from, dir, (long long)generation, (long long)TALLY_RESTORE_FLOOR(generation), dir);
    return 0;
}

static int cmd_copy(options *o)
{
    tally_schema *schema;
    if (!o->from || !o->to) {
        fprintf(stderr, "tally: copy needs --from DIR (the SQLite data folder) and --to postgresql://…\n");
        return 2;
    }
    if (load_schema(o->schema, &schema))
        return 1;
    char file[PATH_MAX + 16];
    const char *target;
    tally_backend_for(o->from, &target); /* --from sqlite:DIR or DIR */
    snprintf(file, sizeof file, "%s/tally.db", target);
    tally_copy_counts n;
    tally_error err;
    int rc = tally_copy_sqlite_to_postgres(file, o->to, schema, &n, &err);
    char where[300];
    tally_url_redact(o->to, where, sizeof where);
    if (rc)
        fprintf(stderr, "tally: copy failed, nothing was copied: %s\n", err.message);
    else
        printf("tally: copied %lld record(s), %lld lock(s), %lld rate-limit state(s), %lld stored answer(s) and "
               "%lld API key(s) from %s to %s\n", (long long)n.records, (long long)n.locks, (long long)n.limits,
               (long long)n.answers, (long long)n.keys, target, where);
    tally_schema_free(schema);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("tally %s\n", TALLY_VERSION);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    tally_json_arena_install(); /* before any thread parses JSON (core/json_arena.h) */
    const char *cmd = argv[1];
    options o = {.max_body = 1 << 20, .queue_timeout_ms = 5000, .queue_max = 10000, .batch_max = 256,
                 .max_txn_steps = 1000, .max_txn_ms = 5000, .idempotency_ttl_ms = 86400000,
                 .max_connections = 1024, .max_header_size = 65536, .request_timeout_ms = 10000,
                 .max_txns = 64, .max_txns_per_key = 4, .log_format = TALLY_LOG_TEXT, .log_level = TALLY_LOG_INFO};
    if (strcmp(cmd, "check-schema") == 0)
        return cmd_check_schema(argc, argv, &o);
    if (strcmp(cmd, "gen") == 0) /* tally gen ts --schema FILE [--out FILE] (cli/gen_ts.c) */
        return tally_gen_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0) {
        if (argc < 3 || (strcmp(argv[2], "create") && strcmp(argv[2], "list") && strcmp(argv[2], "revoke"))) {
            fprintf(stderr, "usage: tally keys create|list|revoke … (tally --help says more)\n");
            return 2;
        }
        o.positional_wanted = strcmp(argv[2], "revoke") == 0;
        if (parse_args(argc - 2, argv + 2, &o))
            return 2;
        char db[PATH_MAX + 16];
        const char *dir;
        if (resolve_db(&o, db, sizeof db, &dir))
            return 2;
        tally_keys_cli k = {.command = argv[2], .db = db, .dir = dir, .schema_path = o.schema, .name = o.name,
                            .scopes = o.scopes, .nscopes = o.nscopes, .revoke_name = o.positional,
                            .relaxed = o.relaxed};
        return tally_keys_cli_run(&k);
    }
    if (strcmp(cmd, "backup") == 0 || strcmp(cmd, "restore") == 0) {
        if (parse_args(argc - 1, argv + 1, &o))
            return 2;
        return strcmp(cmd, "backup") == 0 ? cmd_backup(&o) : cmd_restore(&o);
    }
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0 && strcmp(cmd, "copy") != 0) {
        fprintf(stderr, "tally: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (parse_args(argc - 1, argv + 1, &o))
        return 2;
    /* A write queued behind a legal interactive transaction must not time out: the queue's
     * timeout is above the longest transaction unless set otherwise. */
    if (!o.queue_timeout_set)
        o.queue_timeout_ms = o.max_txn_ms + 5000;
    else if (o.queue_timeout_ms <= o.max_txn_ms && strcmp(cmd, "serve") == 0)
        fprintf(stderr, "tally: note: --queue-timeout %ld is not above --max-txn-ms %ld, so a write queued behind "
                        "an interactive transaction may get 503\n", o.queue_timeout_ms, o.max_txn_ms);
    if (strcmp(cmd, "copy") == 0)
        return cmd_copy(&o);
    return strcmp(cmd, "serve") == 0 ? cmd_serve(&o) : cmd_migrate(&o);
}
