/*
 * console.c — the web console's files, read once and served at /console; see console.h.
 */
#include "api/console.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/render.h"
#include "core/error.h"

#define CONSOLE_MAX_FILES 64
#define CONSOLE_MAX_BYTES (8u << 20) /* all files together */

typedef struct console_file {
    char name[NAME_MAX + 1];
    char *data;
    size_t len;
    const char *content_type; /* static */
} console_file;

struct tally_console {
    console_file files[CONSOLE_MAX_FILES];
    int nfiles;
};

static bool has_index(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/index.html", dir) < (int)sizeof p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int tally_console_find(const char *dir, char *out, size_t cap, char *err, size_t errlen)
{
    if (dir) {
        if (!has_index(dir)) {
            snprintf(err, errlen, "--console-dir %s holds no index.html: give the folder of the console's files "
                                  "(console/ in the source tree, share/tally/console where tally is installed)", dir);
            return -1;
        }
        snprintf(out, cap, "%s", dir);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(err, errlen, "cannot tell where the tally binary is (/proc/self/exe: %s); give --console-dir",
                 strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    static const char *const beside[] = {"console", "../share/tally/console"};
    for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
        char cand[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s/%s", exe, beside[i]) >= (int)sizeof cand)
            continue;
        if (has_index(cand)) {
            snprintf(out, cap, "%s", cand);
            return 0;
        }
    }
    snprintf(err, errlen, "the web console's files are not beside the binary (looked in %s/console and "
                          "%s/../share/tally/console); give --console-dir DIR", exe, exe);
    return -1;
}

static const char *content_type_of(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int read_file(const char *path, console_file *f, size_t budget, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || (size_t)st.st_size > budget) {
        snprintf(err, errlen, "%s is too large for the console (all its files together may be at most %u bytes)", path,
                 CONSOLE_MAX_BYTES);
        fclose(fp);
        return -1;
    }
    f->len = (size_t)st.st_size;
    f->data = malloc(f->len + 1);
    if (!f->data)
        abort();
    size_t got = fread(f->data, 1, f->len, fp);
    fclose(fp);
    if (got != f->len) {
        snprintf(err, errlen, "reading %s was cut short", path);
        return -1;
    }
    return 0;
}

tally_console *tally_console_load(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open the console folder %s: %s", dir, strerror(errno));
        return NULL;
    }
    tally_console *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    size_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode) || strcmp(e->d_name, "meson.build") == 0)
            continue;
        if (c->nfiles == CONSOLE_MAX_FILES) {
            snprintf(err, errlen, "the console folder %s has more than %d files", dir, CONSOLE_MAX_FILES);
            goto fail;
        }
        console_file *f = &c->files[c->nfiles];
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
        f->content_type = content_type_of(f->name);
        if (read_file(path, f, CONSOLE_MAX_BYTES - total, err, errlen)) {
            free(f->data);
            goto fail;
        }
        total += f->len;
        c->nfiles++;
    }
    closedir(d);
    return c;
fail:
    closedir(d);
    tally_console_free(c);
    return NULL;
}

void tally_console_free(tally_console *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nfiles; i++)
        free(c->files[i].data);
    free(c);
}

bool tally_console_path(const char *p, size_t n)
{
    return n >= 8 && memcmp(p, "/console", 8) == 0 && (n == 8 || p[8] == '/');
}

static int refuse(tally_http_response *resp, tally_code code, const char *fmt, const char *arg)
{
    tally_error err;
    tally_fail(&err, code, NULL, fmt, arg);
    resp->body = tally_render_error(&err, &resp->status, &resp->body_len);
    resp->content_type = "application/json";
    return TALLY_API_NOW;
}

int tally_console_answer(const tally_console *c, const tally_http_request *req, tally_http_response *resp)
{
    if (!tally_http_method_is(req, "GET")) {
        resp->allow = "GET";
        return refuse(resp, TALLY_METHOD_NOT_ALLOWED, "%s", "the console's files are read with GET");
    }
    if (!c)
        return refuse(resp, TALLY_NOT_FOUND, "%s",
                      "this server has no console files (they were not found at start-up: see the start-up "
                      "message, or give --console-dir DIR)");
    char name[NAME_MAX + 1] = "index.html";
    size_t n = req->path_len;
    if (n > 9) { /* /console/NAME: one name, no folders */
        size_t len = n - 9;
        if (len >= sizeof name || memchr(req->path + 9, '/', len))
            return refuse(resp, TALLY_NOT_FOUND, "%s", "no such console file");
        memcpy(name, req->path + 9, len);
        name[len] = '\0';
    }
    for (int i = 0; i < c->nfiles; i++) {
        const console_file *f = &c->files[i];
        if (strcmp(f->name, name) != 0)
            continue;
        resp->status = 200;
        resp->body = malloc(f->len + 1);
        if (!resp->body)
            abort();
        memcpy(resp->body, f->data, f->len);
        resp->body_len = f->len;
        resp->content_type = f->content_type;
        return TALLY_API_NOW;
    }
    return refuse(resp, TALLY_NOT_FOUND, "there is no console file '%s'", name);
}
