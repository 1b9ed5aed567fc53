/* error.c — names, statuses and texts of the error table in error.h. */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {
#define X(name, status, text) #name,
    TALLY_ERRORS(X)
#undef X
};
static const int statuses[] = {
#define X(name, status, text) status,
    TALLY_ERRORS(X)
#undef X
};
static const char *const texts[] = {
#define X(name, status, text) text,
    TALLY_ERRORS(X)
#undef X
};

static int in_range(tally_code code) { return (int)code >= 0 && code < TALLY__CODE_COUNT; }

const char *tally_code_name(tally_code code) { return in_range(code) ? names[code] : "INTERNAL"; }
int tally_code_status(tally_code code) { return in_range(code) ? statuses[code] : 500; }
const char *tally_code_text(tally_code code) { return in_range(code) ? texts[code] : texts[TALLY_INTERNAL]; }

void tally_error_clear(tally_error *err)
{
    err->code = TALLY_OK;
    err->message[0] = '\0';
    err->path[0] = '\0';
    err->step = -1;
    err->step_as[0] = '\0';
    err->rerun = TALLY_RERUN_NO;
}

int tally_fail(tally_error *err, tally_code code, const char *path, const char *fmt, ...)
{
    if (err) {
        /* Formatted aside first: an argument may point into err itself
         * (a caller wrapping err->message in a new message). */
        char message[sizeof err->message], where[sizeof err->path];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        snprintf(where, sizeof where, "%s", path ? path : "");
        err->code = code;
        memcpy(err->message, message, sizeof message);
        memcpy(err->path, where, sizeof where);
        err->step = -1;
        err->step_as[0] = '\0';
        err->rerun = TALLY_RERUN_NO;
    }
    return -(int)code;
}
