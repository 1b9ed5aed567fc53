/* http_errors.c — h2o's plain-text error answers rewritten as JSON; see http_errors.h. */
#include "net/http_errors.h"

#include <stdlib.h>
#include <string.h>

#include "api/render.h"
#include "core/error.h"

typedef struct errors_filter {
    h2o_filter_t super;
    size_t max_body;
} errors_filter;

typedef struct errors_ostream {
    h2o_ostream_t super;
    const errors_filter *filter;
} errors_ostream;

/* Our error for h2o's: chosen by the text h2o would have sent. */
static void our_error(const errors_filter *f, int status, const char *h2o_text, size_t n, tally_error *err)
{
#define SAYS(s) (n == sizeof(s) - 1 && memcmp(h2o_text, s, n) == 0)
    if (status == 413)
        tally_fail(err, TALLY_PAYLOAD_TOO_LARGE, NULL, "the request body is larger than this server accepts: at most "
                   "%zu bytes (--max-body); nothing was read or applied", f->max_body);
    else if (SAYS("broken content-length header"))
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "the Content-Length header is not a length: give the body's size "
                   "in bytes as a whole number from 0, or send the body with Transfer-Encoding: chunked");
    else if (SAYS("unknown transfer-encoding"))
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "Transfer-Encoding takes only chunked; or leave it out and give "
                   "a Content-Length");
    else if (SAYS("broken chunked-encoding"))
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "the chunked body is malformed: each chunk is its size in hex, "
                   "CRLF, its bytes, CRLF, and a chunk of size 0 ends the body");
    else if (status == 417)
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "the Expect header takes only 100-continue; leave it out");
    else
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "the request is not well-formed HTTP: check its line and headers "
                   "(header names are tokens, values hold no control characters)");
#undef SAYS
}

static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    errors_ostream *o = (errors_ostream *)self;
    /* h2o_send_generic_error sends its text in one final piece */
    h2o_iovec_t text = bufcnt > 0 ? bufs[0] : h2o_iovec_init(NULL, 0);
    tally_error err;
    our_error(o->filter, req->res.status, text.base, text.len, &err);
    int status;
    size_t len;
    char *body = tally_render_error(&err, &status, &len);
    h2o_iovec_t out = h2o_strdup(&req->pool, body, len);
    free(body);
    req->res.status = status;
    req->res.reason = status == 413 ? "Payload Too Large" : "Bad Request";
    req->res.content_length = len;
    memset(&req->res.headers, 0, sizeof req->res.headers);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_ostream_send_next(self, req, &out, 1, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    /* h2o's own errors are text/plain; Tally's answers are JSON and pass untouched */
    if (req->res.status >= 400 && ct >= 0 &&
        h2o_memis(req->res.headers.entries[ct].value.base, req->res.headers.entries[ct].value.len,
                  H2O_STRLIT("text/plain; charset=utf-8"))) {
        errors_ostream *o = (errors_ostream *)h2o_add_ostream(req, sizeof *o, slot);
        o->super.do_send = on_send;
        o->filter = (errors_filter *)self;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void tally_http_errors_register(h2o_pathconf_t *pathconf, size_t max_body)
{
    errors_filter *f = (errors_filter *)h2o_create_filter(pathconf, sizeof *f);
    f->super.on_setup_ostream = on_setup_ostream;
    f->max_body = max_body;
}
