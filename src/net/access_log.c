/*
 * access_log.c — request and start-up lines on stderr, and the per-request
 * metrics; see access_log.h.  The configuration is two globals written once
 * before the loops start and only read afterwards.
 */
#include "net/access_log.h"

#include "core/buf.h" /* tally_put_int */
#include "exec/job.h" /* tally_clock_ns */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static tally_log_format log_format = TALLY_LOG_TEXT;
static tally_log_level log_min = TALLY_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The longest piece of a path that is logged (the rest is cut, marked "..."). */
#define PATH_LOG_MAX 1024
/* The longest line; a longer one is cut. */
#define LINE_MAX_BYTES 8192

void tally_log_configure(tally_log_format format, tally_log_level min_level)
{
    log_format = format;
    log_min = min_level;
}

int tally_log_parse_format(const char *s, tally_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = TALLY_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = TALLY_LOG_JSON;
    else
        return -1;
    return 0;
}

int tally_log_parse_level(const char *s, tally_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (tally_log_level)i;
            return 0;
        }
    return -1;
}

/* ---- a line under construction ------------------------------------------------- */

typedef struct line {
    char s[LINE_MAX_BYTES];
    size_t n;
    bool first; /* no field yet */
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > sizeof l->s - 2 - l->n) /* room kept for the newline */
        n = sizeof l->s - 2 - l->n;
    memcpy(l->s + l->n, s, n);
    l->n += n;
}

static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }

/* What a byte asks of a value: 1, quotes (text format); 2, an escape. */
static const unsigned char byte_class[256] = {
    [0x00 ... 0x1f] = 2, [' '] = 1, ['"'] = 2, ['='] = 1, ['\\'] = 2, [0x7f ... 0xff] = 2,
};

/* A value as text: JSON string contents, or (text format) bare when it is
 * plain and quoted otherwise.  Bytes outside printable ASCII are escaped.
 * The common case, nothing to escape, is one scan and one copy. */
static void put_value(line *l, const char *v, size_t n, bool quote_always)
{
    bool json = log_format == TALLY_LOG_JSON;
    unsigned char seen = 0;
    for (size_t i = 0; i < n; i++)
        seen |= byte_class[(unsigned char)v[i]];
    bool escape = seen & 2, quote = json || quote_always || n == 0 || seen;
    if (quote)
        put(l, "\"", 1);
    if (!escape) {
        put(l, v, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            char esc[8];
            if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                put(l, esc, 2);
            } else if (c < 0x20 || c > 0x7e) {
                int k = json ? snprintf(esc, sizeof esc, "\\u%04x", c) : snprintf(esc, sizeof esc, "\\x%02x", c);
                put(l, esc, (size_t)k);
            } else {
                put(l, (const char *)&c, 1);
            }
        }
    }
    if (quote)
        put(l, "\"", 1);
}

/* A number in decimal, appended without printf. */
static void put_uint(line *l, uint64_t v)
{
    char d[24];
    put(l, d, (size_t)(tally_put_int(d, v > INT64_MAX ? INT64_MAX : (long long)v) - d));
}

static void field_sep(line *l, const char *name)
{
    if (log_format == TALLY_LOG_JSON) {
        puts_(l, l->first ? "{\"" : ",\"");
        puts_(l, name);
        puts_(l, "\":");
    } else {
        if (!l->first)
            put(l, " ", 1);
        puts_(l, name);
        put(l, "=", 1);
    }
    l->first = false;
}

static void field_str(line *l, const char *name, const char *v, size_t n)
{
    field_sep(l, name);
    put_value(l, v, n, false);
}

/* A value known to need neither quotes nor escapes (a time, a level, a fixed word). */
static void field_plain(line *l, const char *name, const char *v, size_t n)
{
    field_sep(l, name);
    bool json = log_format == TALLY_LOG_JSON;
    if (json)
        put(l, "\"", 1);
    put(l, v, n);
    if (json)
        put(l, "\"", 1);
}

/* time and level, the first two fields of every line.  The date and time
 * to the second are formatted once a second per thread; the milliseconds
 * are added by hand. */
static void begin_line(line *l, tally_log_level level)
{
    static _Thread_local time_t shown_sec = -1;
    static _Thread_local char shown[32]; /* "YYYY-mm-ddTHH:MM:SS." */
    static _Thread_local size_t shown_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != shown_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        shown_len = strftime(shown, sizeof shown - 1, "%Y-%m-%dT%H:%M:%S", &tm);
        shown[shown_len++] = '.';
        shown_sec = ts.tv_sec;
    }
    char t[40];
    long ms = ts.tv_nsec / 1000000;
    memcpy(t, shown, shown_len);
    t[shown_len] = (char)('0' + ms / 100);
    t[shown_len + 1] = (char)('0' + ms / 10 % 10);
    t[shown_len + 2] = (char)('0' + ms % 10);
    t[shown_len + 3] = 'Z';
    l->n = 0;
    l->first = true;
    field_plain(l, "time", t, shown_len + 4);
    field_plain(l, "level", level_names[level], strlen(level_names[level]));
}

/* ---- output: written at once, or collected per loop iteration ------------------ */

/* One write(2) at a time, so that lines never mix even past PIPE_BUF. */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

#define OUT_CAP (64 * 1024) /* a loop's lines between two flushes, at most */

/* The calling thread's collected lines (tally_log_buffer_start); NULL: write each at once. */
static _Thread_local char *out_buf;
static _Thread_local size_t out_len;

static void write_all(const char *s, size_t n)
{
    pthread_mutex_lock(&out_mu);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, s + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* stderr is gone: the log is lost, the server goes on */
        off += (size_t)w;
    }
    pthread_mutex_unlock(&out_mu);
}

void tally_log_buffer_start(void)
{
    if (!out_buf)
        out_buf = malloc(OUT_CAP); /* NULL: lines are written one by one */
    out_len = 0;
}

void tally_log_flush(void)
{
    if (out_buf && out_len) {
        write_all(out_buf, out_len);
        out_len = 0;
    }
}

void tally_log_buffer_stop(void)
{
    tally_log_flush();
    free(out_buf);
    out_buf = NULL;
}

/* Ends the line and writes it, or adds it to the thread's collected lines. */
static void end_line(line *l)
{
    if (log_format == TALLY_LOG_JSON)
        put(l, "}", 1);
    l->s[l->n++] = '\n';
    if (!out_buf) {
        write_all(l->s, l->n);
        return;
    }
    if (out_len + l->n > OUT_CAP)
        tally_log_flush();
    memcpy(out_buf + out_len, l->s, l->n);
    out_len += l->n;
}

void tally_log_event(tally_log_level level, const char *msg, const tally_log_field *fields, int nfields)
{
    if (level < log_min)
        return;
    line l;
    begin_line(&l, level);
    field_str(&l, "msg", msg, strlen(msg));
    for (int i = 0; i < nfields; i++)
        field_str(&l, fields[i].name, fields[i].value, strlen(fields[i].value));
    end_line(&l);
}

/* ---- requests ------------------------------------------------------------------- */

static bool is(const char *s, size_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

/* The route label and latency kind of a request, from its method and path. */
static tally_route route_of(const char *method, size_t mlen, const char *p, size_t n, tally_request_kind *kind)
{
    bool read = is(method, mlen, "GET") || is(method, mlen, "HEAD");
    *kind = TALLY_KIND_NONE;
    while (n > 1 && p[n - 1] == '/')
        n--; /* a trailing slash is the same route */
    if (is(p, n, "/health"))
        return TALLY_ROUTE_HEALTH;
    if (is(p, n, "/metrics"))
        return TALLY_ROUTE_METRICS;
    if (n < 5 || memcmp(p, "/api/", 5) != 0)
        return TALLY_ROUTE_OTHER;
    const char *seg = p + 5, *end = p + n;
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    size_t first = (size_t)((slash ? slash : end) - seg);
    if (is(seg, first, "ws"))
        return slash ? TALLY_ROUTE_OTHER : TALLY_ROUTE_WS;
    if (is(seg, first, "keys"))
        return TALLY_ROUTE_KEYS;
    if (is(seg, first, "locks") || is(seg, first, "limits")) {
        *kind = TALLY_KIND_WRITE;
        return is(seg, first, "locks") ? TALLY_ROUTE_LOCKS : TALLY_ROUTE_LIMITS;
    }
    if (is(seg, first, "transaction")) {
        *kind = TALLY_KIND_TRANSACTION;
        return slash ? TALLY_ROUTE_OTHER : TALLY_ROUTE_TRANSACTION;
    }
    if (first == 0)
        return TALLY_ROUTE_OTHER;
    if (!slash) { /* /api/{model}: GET lists, POST creates */
        *kind = read ? TALLY_KIND_READ : TALLY_KIND_WRITE;
        return read ? TALLY_ROUTE_LIST : TALLY_ROUTE_RECORDS;
    }
    const char *second = slash + 1;
    size_t slen = (size_t)(end - second);
    if (is(second, slen, "find")) {
        *kind = TALLY_KIND_READ;
        return TALLY_ROUTE_LIST;
    }
    if (is(second, slen, "updateMany") || is(second, slen, "deleteMany") || is(second, slen, "upsert")) {
        *kind = TALLY_KIND_WRITE;
        return TALLY_ROUTE_BULK;
    }
    if (memchr(second, '/', slen))
        return TALLY_ROUTE_OTHER;
    *kind = read ? TALLY_KIND_READ : TALLY_KIND_WRITE; /* /api/{model}/{id} */
    return TALLY_ROUTE_RECORDS;
}

/* A request id of 16 hex digits from a per-thread generator (xorshift64*,
 * seeded from the system's random bytes): unique enough to find a line. */
static void new_request_id(char out[17])
{
    static _Thread_local uint64_t state;
    if (state == 0) {
        if (getrandom(&state, sizeof state, 0) != sizeof state)
            state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&state;
        state |= 1;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    uint64_t v = state * 0x2545F4914F6CDD1DULL;
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    out[16] = '\0';
}

void tally_access_begin(tally_access_entry *e, const char *method, size_t method_len, const char *path,
                        size_t path_len, const char *client_id, size_t client_id_len)
{
    e->start_ns = tally_clock_ns();
    e->key_name[0] = '\0';
    e->route = route_of(method, method_len, path, path_len, &e->kind);
    bool ok = client_id && client_id_len >= 1 && client_id_len <= TALLY_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < client_id_len; i++)
        ok = client_id[i] >= 0x20 && client_id[i] <= 0x7e;
    if (ok) {
        memcpy(e->request_id, client_id, client_id_len);
        e->request_id[client_id_len] = '\0';
    } else {
        new_request_id(e->request_id);
    }
}

/* The code of an error answer's {"error":{"code":"…"}} (also inside a
 * refused rate limit's answer), or NULL. */
static const char *error_code(const char *body, size_t len, size_t *n)
{
    static const char tag[] = "\"error\":{\"code\":\"";
    if (!body)
        return NULL;
    const char *at = memmem(body, len, tag, sizeof tag - 1);
    if (!at)
        return NULL;
    const char *s = at + sizeof tag - 1, *end = body + len;
    const char *q = memchr(s, '"', (size_t)(end - s));
    if (!q || q - s > 64)
        return NULL;
    *n = (size_t)(q - s);
    return s;
}

void tally_access_finish(const tally_access_entry *e, const char *method, size_t method_len, const char *path,
                         size_t path_len, int status, size_t bytes, const char *body, size_t body_len)
{
    uint64_t us = (tally_clock_ns() - e->start_ns) / 1000;
    tally_metrics_request(e->route, status, e->kind, us);
    tally_log_level level = status >= 400 ? TALLY_LOG_WARN : TALLY_LOG_INFO;
    if (level < log_min)
        return;
    line l;
    begin_line(&l, level);
    field_plain(&l, "msg", "request", 7);
    field_str(&l, "method", method, method_len > 32 ? 32 : method_len);
    bool cut = path_len > PATH_LOG_MAX;
    field_sep(&l, "path");
    if (cut) { /* the cut is marked inside the value */
        char shown[PATH_LOG_MAX + 3];
        memcpy(shown, path, PATH_LOG_MAX);
        memcpy(shown + PATH_LOG_MAX, "...", 3);
        put_value(&l, shown, sizeof shown, false);
    } else {
        put_value(&l, path, path_len, false);
    }
    field_sep(&l, "status");
    put_uint(&l, status > 0 ? (uint64_t)status : 0);
    field_sep(&l, "duration_ms");
    put_uint(&l, us / 1000);
    char frac[4] = {'.', (char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10), (char)('0' + us % 10)};
    put(&l, frac, 4);
    field_sep(&l, "bytes");
    put_uint(&l, bytes);
    field_str(&l, "request_id", e->request_id, strlen(e->request_id));
    if (e->key_name[0])
        field_str(&l, "key", e->key_name, strlen(e->key_name));
    size_t clen = 0;
    const char *code = status >= 400 ? error_code(body, body_len, &clen) : NULL;
    if (status >= 400)
        field_str(&l, "code", code ? code : "-", code ? clen : 1);
    end_line(&l);
}
