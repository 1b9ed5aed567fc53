/* Unit tests for api/console: files read from a folder once and answered by
 * exact name (/console and /console/ are index.html), content types, 404 for
 * other names and for anything with a slash or "..", 405 for writes, and the
 * search for the folder when none is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/console.h"

static char dir[64];

static void put(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tally-console-XXXXXX");
    assert_non_null(mkdtemp(dir));
    put("index.html", "<!doctype html><p>hi</p>");
    put("console.js", "console.log(1)");
    put("console.css", "p{}");
    char sub[96];
    snprintf(sub, sizeof sub, "%s/below", dir);
    mkdir(sub, 0755);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static tally_http_response ask(const tally_console *c, const char *method, const char *path)
{
    tally_http_request req = {.method = method, .method_len = strlen(method), .path = path, .path_len = strlen(path)};
    tally_http_response resp;
    memset(&resp, 0, sizeof resp);
    assert_int_equal(tally_console_answer(c, &req, &resp), TALLY_API_NOW);
    return resp;
}

static void served_by_name(void **state)
{
    (void)state;
    char err[512];
    tally_console *c = tally_console_load(dir, err, sizeof err);
    assert_non_null(c);
    static const struct { const char *path; int status; const char *type; const char *body; } cases[] = {
        {"/console", 200, "text/html; charset=utf-8", "<!doctype html><p>hi</p>"},
        {"/console/", 200, "text/html; charset=utf-8", "<!doctype html><p>hi</p>"},
        {"/console/index.html", 200, "text/html; charset=utf-8", "<!doctype html><p>hi</p>"},
        {"/console/console.js", 200, "text/javascript; charset=utf-8", "console.log(1)"},
        {"/console/console.css", 200, "text/css; charset=utf-8", "p{}"},
        {"/console/nope.js", 404, "application/json", NULL},
        {"/console/../console.js", 404, "application/json", NULL},
        {"/console/below/x", 404, "application/json", NULL},
        {"/console/below", 404, "application/json", NULL},
        {"/console/..", 404, "application/json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally_http_response r = ask(c, "GET", cases[i].path);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(r.content_type, cases[i].type);
        if (cases[i].body) {
            assert_int_equal(r.body_len, strlen(cases[i].body));
            assert_memory_equal(r.body, cases[i].body, r.body_len);
        } else {
            assert_non_null(strstr(r.body, "NOT_FOUND"));
        }
        free(r.body);
    }
    tally_http_response head = ask(c, "HEAD", "/console");
    assert_int_equal(head.status, 200);
    free(head.body);
    tally_http_response post = ask(c, "POST", "/console");
    assert_int_equal(post.status, 405);
    assert_string_equal(post.allow, "GET");
    free(post.body);
    tally_console_free(c);
    tally_http_response none = ask(NULL, "GET", "/console");
    assert_int_equal(none.status, 404);
    assert_non_null(strstr(none.body, "--console-dir"));
    free(none.body);
}

static void paths(void **state)
{
    (void)state;
    assert_true(tally_console_path("/console", 8));
    assert_true(tally_console_path("/console/", 9));
    assert_true(tally_console_path("/console/a.js", 13));
    assert_false(tally_console_path("/consoles", 9));
    assert_false(tally_console_path("/consol", 7));
    assert_false(tally_console_path("/api/console", 12));
}

static void finding_the_folder(void **state)
{
    (void)state;
    char out[4096], err[8192];
    assert_int_equal(tally_console_find(dir, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, dir);
    assert_int_equal(tally_console_find("/nonexistent", out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "--console-dir /nonexistent holds no index.html"));
    /* without a folder given: beside this test binary (the build folder has console/ from meson) */
    if (tally_console_find(NULL, out, sizeof out, err, sizeof err) == 0)
        assert_non_null(strstr(out, "console"));
    else
        assert_non_null(strstr(err, "--console-dir"));
    char cannot[512];
    assert_null(tally_console_load("/nonexistent", cannot, sizeof cannot));
    assert_non_null(strstr(cannot, "cannot open the console folder /nonexistent"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(served_by_name),
        cmocka_unit_test(paths),
        cmocka_unit_test(finding_the_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
