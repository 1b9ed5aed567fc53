/* keys.c — POST/GET /api/keys and DELETE /api/keys/{name}; see keys.h. */
#include "api/keys.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/render.h"
#include "core/buf.h"
#include "core/datetime.h"
#include "exec/keyring.h"

static int answer(tally_http_response *resp, int status, char *body, size_t len)
{
    resp->status = status;
    resp->body = body;
    resp->body_len = len;
    resp->content_type = "application/json";
    return TALLY_API_NOW;
}

static int answer_error(tally_http_response *resp, const tally_error *err)
{
    int status;
    size_t len;
    char *body = tally_render_error(err, &status, &len);
    return answer(resp, status, body, len);
}

int tally_keys_decode_scopes(const tally_schema *schema, const char *const *scopes, int n, tally_scopes *set,
                             tally_error *err)
{
    set->n = 0;
    if (n == 0)
        return tally_fail(err, TALLY_BAD_REQUEST, "scopes",
                          "a key needs at least one scope, such as read, write:post or admin");
    for (int i = 0; i < n; i++) {
        tally_scope s;
        if (tally_scope_parse(scopes[i], strlen(scopes[i]), &s, err))
            return -TALLY_BAD_REQUEST;
        if (schema && s.name[0] && (s.kind == TALLY_SCOPE_READ || s.kind == TALLY_SCOPE_WRITE) &&
            !tally_schema_model(schema, s.name, strlen(s.name)))
            return tally_fail(err, TALLY_BAD_REQUEST, "scopes", "the scope %s names no model of the schema",
                              scopes[i]);
        if (tally_scopes_add(set, &s, err))
            return -TALLY_BAD_REQUEST;
    }
    return 0;
}

static void add_scopes(tally_buf *b, const char *stored)
{
    tally_scopes set;
    tally_error err;
    tally_buf_addc(b, '[');
    if (tally_scopes_parse_list(stored, &set, &err) == 0)
        for (int i = 0; i < set.n; i++) {
            char one[TALLY_SCOPE_NAME_MAX + 16];
            tally_scope_format(&set.s[i], one, sizeof one);
            if (i)
                tally_buf_addc(b, ',');
            tally_json_string(b, one, strlen(one));
        }
    tally_buf_addc(b, ']');
}

/* A pending call: the request's way back, and the token to show once. */
typedef struct key_call {
    tally_keys_call call;
    char token[TALLY_TOKEN_LEN + 1];
    void (*complete)(tally_job *job);
    void *origin;
} key_call;

/* Keyring thread: renders the answer into a job and hands it back to the request's loop. */
static void call_done(tally_keys_call *c)
{
    key_call *k = (key_call *)c;
    tally_job *job = tally_job_new(NULL);
    job->complete = k->complete;
    job->origin = k->origin;
    if (c->rc) {
        int status;
        size_t len;
        char *body = tally_render_error(&c->err, &status, &len);
        tally_job_set_body(job, status, body, len);
    } else {
        tally_buf b;
        tally_buf_init(&b);
        if (c->op == TALLY_KEYS_CREATE) {
            tally_buf_add(&b, "{\"name\":");
            tally_json_string(&b, c->row.name, strlen(c->row.name));
            tally_buf_add(&b, ",\"scopes\":");
            add_scopes(&b, c->row.scopes);
            tally_buf_add(&b, ",\"token\":");
            tally_json_string(&b, k->token, strlen(k->token));
            tally_buf_addc(&b, '}');
        } else if (c->op == TALLY_KEYS_REVOKE) {
            tally_buf_add(&b, "{\"name\":");
            tally_json_string(&b, c->row.name, strlen(c->row.name));
            tally_buf_add(&b, ",\"revoked\":true}");
        } else {
            tally_buf_add(&b, "{\"keys\":[");
            for (int i = 0; i < c->nrows; i++) {
                char at[40];
                tally_datetime_format(c->rows[i].created_at, at);
                tally_buf_add(&b, i ? ",{\"name\":" : "{\"name\":");
                tally_json_string(&b, c->rows[i].name, strlen(c->rows[i].name));
                tally_buf_add(&b, ",\"scopes\":");
                add_scopes(&b, c->rows[i].scopes);
                tally_buf_addf(&b, ",\"createdAt\":\"%s\"}", at);
            }
            tally_buf_add(&b, "]}");
        }
        tally_job_set_body(job, c->op == TALLY_KEYS_CREATE ? 201 : 200, b.s, b.len);
    }
    free(c->rows);
    memset(k->token, 0, sizeof k->token);
    free(k);
    job->complete(job);
}

static int decode_create(const tally_api *api, const tally_http_request *req, key_call *k, tally_error *err)
{
    json_error_t jerr;
    json_t *body = req->body_len ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    int rc = 0;
    const char *unknown = NULL;
    if (!json_is_object(body)) {
        rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "the body is {\"name\": \"ci\", \"scopes\": [\"read\", ...]}");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) if (strcmp(key, "name") && strcmp(key, "scopes")) unknown = key;
    if (unknown) {
        rc = tally_fail(err, TALLY_BAD_REQUEST, unknown, "a key takes name and scopes, not '%s'", unknown);
        goto done;
    }
    json_t *name = json_object_get(body, "name"), *scopes = json_object_get(body, "scopes");
    if (!json_is_string(name)) {
        rc = tally_fail(err, TALLY_BAD_REQUEST, "name", "name is the key's name, a string such as \"ci\"");
        goto done;
    }
    if ((rc = tally_auth_check_key_name(json_string_value(name), json_string_length(name), err)))
        goto done;
    if (!json_is_array(scopes) || json_array_size(scopes) > TALLY_MAX_SCOPES) {
        rc = tally_fail(err, TALLY_BAD_REQUEST, "scopes",
                        "scopes is a list of up to %d scopes, such as [\"read\", \"write:post\"]", TALLY_MAX_SCOPES);
        goto done;
    }
    const char *list[TALLY_MAX_SCOPES];
    size_t i;
    json_array_foreach(scopes, i, v) {
        if (!json_is_string(v)) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, "scopes", "each scope is a string, such as \"read\"");
            goto done;
        }
        list[i] = json_string_value(v);
    }
    tally_scopes set;
    if ((rc = tally_keys_decode_scopes(api->schema, list, (int)json_array_size(scopes), &set, err)))
        goto done;
    snprintf(k->call.row.name, sizeof k->call.row.name, "%s", json_string_value(name));
    tally_scopes_format(&set, k->call.row.scopes, sizeof k->call.row.scopes);
    if ((rc = tally_auth_new_token(k->token, k->call.row.hash, err)))
        goto done;
    k->call.row.created_at = tally_now_ms();
done:
    json_decref(body);
    return rc;
}


int tally_api_keys(const tally_api *api, const tally_http_request *req, const char *name, tally_http_response *resp)
{
    tally_error err;
    const char *allow = name ? "DELETE" : "GET, POST";
    bool ok = name ? tally_http_method_is(req, "DELETE")
                   : tally_http_method_is(req, "GET") || tally_http_method_is(req, "POST");
    if (!ok) {
        tally_fail(&err, TALLY_METHOD_NOT_ALLOWED, NULL, "%.*s is not allowed here; use %s", (int)req->method_len,
                   req->method, allow);
        resp->allow = allow;
        return answer_error(resp, &err);
    }
    key_call *k = calloc(1, sizeof *k);
    if (!k)
        abort();
    k->complete = req->complete;
    k->origin = req->origin;
    k->call.done = call_done;
    if (name) {
        k->call.op = TALLY_KEYS_REVOKE;
        if (tally_auth_check_key_name(name, strlen(name), &err)) {
            free(k);
            tally_fail(&err, TALLY_NOT_FOUND, NULL, "there is no key named '%.64s'", name);
            return answer_error(resp, &err);
        }
        snprintf(k->call.row.name, sizeof k->call.row.name, "%s", name);
    } else if (tally_http_method_is(req, "POST")) {
        k->call.op = TALLY_KEYS_CREATE;
        if (decode_create(api, req, k, &err)) {
            free(k);
            return answer_error(resp, &err);
        }
    } else {
        k->call.op = TALLY_KEYS_LIST;
    }
    if (tally_keyring_submit(tally_engine_keyring(api->engine), &k->call)) {
        free(k);
        tally_fail(&err, TALLY_OVERLOADED, NULL, "the server is stopping; nothing was changed");
        return answer_error(resp, &err);
    }
    return TALLY_API_LATER;
}
