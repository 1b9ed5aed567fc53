/* render.c — JSON answers; see render.h. */
#include "api/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/filter.h"
#include "core/datetime.h"

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlongs,
 * no surrogates, at most U+10FFFF), or 0 if there is none. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

/* The longest a string of n bytes can be as a JSON literal: every byte
 * as \u00XX or \ufffd, and the quotes. */
#define JSON_STRING_BOUND(n) (6 * (n) + 2)

/* A JSON string literal written at o (room for JSON_STRING_BOUND(n));
 * returns its end.  Text from a request may not be UTF-8 (a path, a
 * header): each byte that does not start a well-formed sequence becomes
 * U+FFFD, so every answer stays valid JSON. */
static char *put_json_string(char *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    *o++ = '"';
    size_t run = 0; /* bytes copied as they are, in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0x80 ? utf8_sequence(u + i, n - i) : 1;
        if (c >= 0x80 && len > 0) {
            i += len;
            continue;
        }
        memcpy(o, s + run, i - run);
        o += i - run;
        const char *esc;
        char hexesc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: esc = c >= 0x80 ? "\\ufffd" : hexesc;
        }
        size_t k = strlen(esc);
        memcpy(o, esc, k);
        o += k;
        i++;
        run = i;
    }
    memcpy(o, s + run, n - run);
    o += n - run;
    *o++ = '"';
    return o;
}

void tally_json_string(tally_buf *b, const char *s, size_t n)
{
    tally_buf_commit(b, put_json_string(tally_buf_room(b, JSON_STRING_BOUND(n)), s, n));
}

void tally_json_double(tally_buf *b, double d)
{
    if (!isfinite(d)) { /* JSON has no Infinity or NaN */
        tally_buf_add(b, "null");
        return;
    }
    char text[40];
    for (int prec = 15; prec <= 17; prec++) { /* shortest that reads back exactly */
        snprintf(text, sizeof text, "%.*g", prec, d);
        if (strtod(text, NULL) == d)
            break;
    }
    tally_buf_add(b, text);
    if (!strpbrk(text, ".eE")) /* keep it a float on the wire: 3 -> 3.0 */
        tally_buf_add(b, ".0");
}

static void render_value(tally_buf *b, tally_type type, const tally_value *v)
{
    switch (v->kind) {
    case TALLY_VALUE_NULL: tally_buf_add(b, "null"); return;
    case TALLY_VALUE_FLOAT: tally_json_double(b, v->u.f); return;
    case TALLY_VALUE_TEXT:
        if (type == TALLY_TYPE_JSON)
            tally_buf_addn(b, v->u.text.ptr, v->u.text.len); /* stored as compact JSON */
        else
            tally_json_string(b, v->u.text.ptr, v->u.text.len);
        return;
    case TALLY_VALUE_INT:
        if (type == TALLY_TYPE_BOOLEAN)
            tally_buf_add(b, v->u.i ? "true" : "false");
        else if (type == TALLY_TYPE_DATETIME) {
            char text[TALLY_DATETIME_MAX];
            if (tally_datetime_format(v->u.i, text))
                tally_json_string(b, text, strlen(text));
            else
                tally_buf_add(b, "null");
        } else if (type == TALLY_TYPE_FLOAT)
            tally_json_double(b, (double)v->u.i);
        else
            tally_buf_add_int(b, (long long)v->u.i);
        return;
    default: tally_buf_add(b, "null"); return;
    }
}

/* The most bytes render_value can write for v of a field of type t (a
 * float's shortest exact text is at most 24 bytes, and ".0"). */
static size_t value_bound(tally_type t, const tally_value *v)
{
    switch (v->kind) {
    case TALLY_VALUE_TEXT: return t == TALLY_TYPE_JSON ? v->u.text.len : JSON_STRING_BOUND(v->u.text.len);
    case TALLY_VALUE_INT: return t == TALLY_TYPE_DATETIME ? TALLY_DATETIME_MAX + 2 : 40;
    default: return 40;
    }
}

/* A value written at o (room for value_bound); returns its end.  Integers,
 * datetimes and text, the values of nearly every field, need no printf. */
static char *put_value(char *o, tally_type type, const tally_value *v)
{
    if (v->kind == TALLY_VALUE_INT && type != TALLY_TYPE_BOOLEAN && type != TALLY_TYPE_DATETIME &&
        type != TALLY_TYPE_FLOAT)
        return tally_put_int(o, (long long)v->u.i);
    if (v->kind == TALLY_VALUE_INT && type == TALLY_TYPE_DATETIME) {
        char text[TALLY_DATETIME_MAX];
        size_t n = tally_datetime_format(v->u.i, text);
        if (!n) {
            memcpy(o, "null", 4);
            return o + 4;
        }
        *o++ = '"'; /* a datetime's text has nothing to escape */
        memcpy(o, text, n);
        o[n] = '"';
        return o + n + 1;
    }
    if (v->kind == TALLY_VALUE_TEXT && type != TALLY_TYPE_JSON)
        return put_json_string(o, v->u.text.ptr, v->u.text.len);
    tally_buf tmp; /* the rest: floats, booleans, JSON, null */
    tally_buf_init(&tmp);
    render_value(&tmp, type, v);
    memcpy(o, tmp.s, tmp.len);
    o += tmp.len;
    tally_buf_free(&tmp);
    return o;
}

void tally_render_record(tally_buf *b, const tally_model *m, const tally_record *r)
{
    /* id, the fields in schema order, then createdAt and updatedAt; the room
     * for all of it reserved at once. */
    static const char created[] = ",\"createdAt\":", updated[] = ",\"updatedAt\":";
    size_t bound = 32 + sizeof created + sizeof updated + 2 * (TALLY_DATETIME_MAX + 2);
    for (int c = TALLY_COL_FIRST_FIELD; c < m->ncolumns; c++) {
        const tally_field *f = &m->fields[m->column_field[c]];
        bound += strlen(f->name) + 4 + value_bound(f->type, &r->cols[c]);
    }
    char *o = tally_buf_room(b, bound);
    memcpy(o, "{\"id\":", 6);
    o = tally_put_int(o + 6, (long long)r->cols[TALLY_COL_ID].u.i);
    for (int c = TALLY_COL_FIRST_FIELD; c < m->ncolumns; c++) {
        const tally_field *f = &m->fields[m->column_field[c]];
        size_t n = strlen(f->name); /* a schema name: letters, digits and '_', nothing to escape */
        *o++ = ',';
        *o++ = '"';
        memcpy(o, f->name, n);
        o += n;
        *o++ = '"';
        *o++ = ':';
        o = put_value(o, f->type, &r->cols[c]);
    }
    memcpy(o, created, sizeof created - 1);
    o = put_value(o + sizeof created - 1, TALLY_TYPE_DATETIME, &r->cols[TALLY_COL_CREATED_AT]);
    memcpy(o, updated, sizeof updated - 1);
    o = put_value(o + sizeof updated - 1, TALLY_TYPE_DATETIME, &r->cols[TALLY_COL_UPDATED_AT]);
    *o++ = '}';
    tally_buf_commit(b, o);
}

/* Appends "code", "message", "path", "step", "as" of an error object (no braces). */
static void error_fields(tally_buf *b, const tally_error *err)
{
    const char *name = tally_code_name(err->code);
    tally_buf_add(b, "\"code\":");
    tally_json_string(b, name, strlen(name));
    tally_buf_add(b, ",\"message\":");
    const char *msg = err->message[0] ? err->message : tally_code_text(err->code);
    tally_json_string(b, msg, strlen(msg));
    if (err->path[0]) {
        tally_buf_add(b, ",\"path\":");
        tally_json_string(b, err->path, strlen(err->path));
    }
    if (err->step >= 0) {
        tally_buf_addf(b, ",\"step\":%d", err->step);
        if (err->step_as[0]) {
            tally_buf_add(b, ",\"as\":");
            tally_json_string(b, err->step_as, strlen(err->step_as));
        }
    }
}

static void datetime(tally_buf *b, int64_t ms)
{
    char text[TALLY_DATETIME_MAX];
    if (tally_datetime_format(ms, text))
        tally_json_string(b, text, strlen(text));
    else
        tally_buf_add(b, "null");
}

char *tally_render_error(const tally_error *err, int *status, size_t *len)
{
    tally_buf b;
    tally_buf_init(&b);
    tally_buf_add(&b, "{\"error\":{");
    error_fields(&b, err);
    tally_buf_add(&b, "}}");
    *status = tally_code_status(err->code);
    *len = b.len;
    return b.s;
}

static void limit_fields(tally_buf *b, const tally_step_result *r)
{
    tally_buf_addf(b, "\"allowed\":%s,\"remaining\":%lld,\"retryAfterMs\":%lld,\"resetAfterMs\":%lld",
                   r->allowed ? "true" : "false", (long long)r->remaining, (long long)r->retry_after_ms,
                   (long long)r->reset_after_ms);
}

char *tally_render_plan_error(tally_plan *plan, const tally_error *err, int *status, size_t *len)
{
    const tally_step *s = plan->results ? &plan->steps[plan->failed_step] : NULL;
    const tally_step_result *r = s ? &plan->results[plan->failed_step] : NULL;
    tally_buf b;
    tally_buf_init(&b);
    tally_buf_addc(&b, '{');
    if (r && err->code == TALLY_RATE_LIMITED) { /* a refused limit still answers its numbers */
        limit_fields(&b, r);
        tally_buf_addc(&b, ',');
    }
    tally_buf_add(&b, "\"error\":{");
    error_fields(&b, err);
    if (r && err->code == TALLY_GUARD_FAILED && r->record.cols) {
        tally_buf_add(&b, ",\"current\":");
        tally_render_record(&b, s->model, &r->record);
    }
    if (r && err->code == TALLY_LOCKED && r->expires_at) {
        tally_buf_add(&b, ",\"expiresAt\":");
        datetime(&b, r->expires_at);
    }
    tally_buf_add(&b, "}}");
    *status = tally_code_status(err->code);
    *len = b.len;
    return b.s;
}

int tally_render_step_result(tally_buf *b, tally_plan *plan, int step)
{
    const tally_step *s = &plan->steps[step];
    const tally_step_result *r = &plan->results[step];
    int status = 200;
    switch (s->op) {
    case TALLY_OP_CREATE:
        status = 201;
        /* fall through */
    case TALLY_OP_GET:
    case TALLY_OP_UPDATE:
        tally_render_record(b, s->model, &r->record);
        break;
    case TALLY_OP_DELETE:
        tally_buf_addf(b, "{\"id\":%lld}", (long long)r->id);
        break;
    case TALLY_OP_UPDATE_MANY:
    case TALLY_OP_DELETE_MANY:
        tally_buf_addf(b, "{\"count\":%lld}", (long long)r->count);
        break;
    case TALLY_OP_UPSERT:
        status = r->created ? 201 : 200;
        tally_buf_add(b, "{\"record\":");
        tally_render_record(b, s->model, &r->record);
        tally_buf_add(b, r->created ? ",\"created\":true}" : ",\"created\":false}");
        break;
    case TALLY_OP_LOCK_ACQUIRE:
        tally_buf_add(b, "{\"token\":");
        tally_json_string(b, r->token, strlen(r->token));
        tally_buf_addf(b, ",\"fence\":%lld,\"expiresAt\":", (long long)r->fence);
        datetime(b, r->expires_at);
        tally_buf_addc(b, '}');
        break;
    case TALLY_OP_LOCK_RENEW:
    case TALLY_OP_LOCK_CHECK:
        tally_buf_addf(b, "{\"fence\":%lld,\"expiresAt\":", (long long)r->fence);
        datetime(b, r->expires_at);
        tally_buf_addc(b, '}');
        break;
    case TALLY_OP_LOCK_RELEASE:
        tally_buf_addf(b, "{\"released\":true,\"fence\":%lld}", (long long)r->fence);
        break;
    case TALLY_OP_LOCK_LIST:
        tally_buf_add(b, "{\"locks\":[");
        for (int i = 0; i < r->nlocks; i++) {
            tally_buf_add(b, i ? ",{\"name\":" : "{\"name\":");
            tally_json_string(b, r->locks[i].name, r->locks[i].name_len);
            tally_buf_addf(b, ",\"fence\":%lld,\"expiresAt\":", (long long)r->locks[i].fence);
            datetime(b, r->locks[i].expires_at);
            tally_buf_addc(b, '}');
        }
        tally_buf_add(b, "]}");
        break;
    case TALLY_OP_CHANGES: /* answered by api/changes.c */
        break;
    case TALLY_OP_LIMIT:
        tally_buf_addc(b, '{');
        limit_fields(b, r);
        tally_buf_addc(b, '}');
        break;
    case TALLY_OP_LIST:
        tally_buf_add(b, "{\"records\":[");
        for (int i = 0; i < r->nrecords; i++) {
            if (i)
                tally_buf_addc(b, ',');
            tally_render_record(b, s->model, &r->records[i]);
        }
        tally_buf_add(b, "],\"next\":");
        if (r->has_next) {
            const char *cursor = tally_cursor_encode(&plan->arena, s, &r->records[r->nrecords - 1]);
            tally_json_string(b, cursor, strlen(cursor));
        } else {
            tally_buf_add(b, "null");
        }
        tally_buf_addc(b, '}');
        break;
    }
    return status;
}


void tally_render_job(tally_job *job)
{
    tally_plan *plan = job->plan;
    if (job->rc != 0) {
        int status;
        size_t len;
        char *body = tally_render_plan_error(plan, &job->err, &status, &len);
        tally_job_set_body(job, status, body, len);
        if (job->err.code == TALLY_RATE_LIMITED && plan->results) /* whole seconds, rounded up */
            job->retry_after_s = (int)((plan->results[plan->failed_step].retry_after_ms + 999) / 1000);
        return;
    }
    tally_buf b;
    tally_buf_init(&b);
    int status = 200;
    if (plan->txn) { /* a transaction answers every step's result, in order */
        tally_buf_add(&b, "{\"results\":[");
        for (int t = 0; t < plan->ntxn; t++) {
            if (t)
                tally_buf_addc(&b, ',');
            tally_render_step_result(&b, plan, plan->txn[t].answer);
        }
        tally_buf_add(&b, "]}");
    } else {
        status = tally_render_step_result(&b, plan, plan->answer_step);
    }
    tally_job_set_body(job, status, b.s, b.len);
}
