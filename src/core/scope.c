/* scope.c — parsing, printing and matching API key scopes; see scope.h. */
#include "core/scope.h"

#include <stdio.h>
#include <string.h>

#include "core/value.h"

static const struct {
    const char *word;
    tally_scope_kind kind;
    int named; /* 0: never, 1: optional (read/write), 2: required (action) */
} WORDS[] = {
    {"admin", TALLY_SCOPE_ADMIN, 0},   {"read", TALLY_SCOPE_READ, 1},     {"write", TALLY_SCOPE_WRITE, 1},
    {"locks", TALLY_SCOPE_LOCKS, 0},   {"limits", TALLY_SCOPE_LIMITS, 0}, {"changes", TALLY_SCOPE_CHANGES, 0},
    {"metrics", TALLY_SCOPE_METRICS, 0}, {"action", TALLY_SCOPE_ACTION, 2},
};

#define SCOPES_ARE "admin, read, write, read:MODEL, write:MODEL, locks, limits, changes, action:NAME or metrics"

int tally_scope_parse(const char *text, size_t len, tally_scope *out, tally_error *err)
{
    const char *colon = memchr(text, ':', len);
    size_t wlen = colon ? (size_t)(colon - text) : len;
    for (size_t i = 0; i < sizeof WORDS / sizeof WORDS[0]; i++) {
        if (strlen(WORDS[i].word) != wlen || memcmp(WORDS[i].word, text, wlen) != 0)
            continue;
        memset(out, 0, sizeof *out);
        out->kind = WORDS[i].kind;
        if (!colon) {
            if (WORDS[i].named == 2)
                return tally_fail(err, TALLY_BAD_REQUEST, "scopes", "the scope action needs a name: action:NAME");
            return 0;
        }
        size_t nlen = len - wlen - 1;
        if (WORDS[i].named == 0)
            return tally_fail(err, TALLY_BAD_REQUEST, "scopes", "the scope %s takes no ':NAME'", WORDS[i].word);
        if (nlen == 0 || nlen >= TALLY_SCOPE_NAME_MAX || !tally_is_identifier(colon + 1, nlen))
            return tally_fail(err, TALLY_BAD_REQUEST, "scopes",
                              "'%.*s' is not a scope: after '%s:' comes a model or action name such as post "
                              "([A-Za-z][A-Za-z0-9_]*, at most 63 characters)",
                              (int)(len > 100 ? 100 : len), text, WORDS[i].word);
        memcpy(out->name, colon + 1, nlen);
        out->name[nlen] = '\0';
        return 0;
    }
    return tally_fail(err, TALLY_BAD_REQUEST, "scopes", "'%.*s' is not a scope; the scopes are " SCOPES_ARE,
                      (int)(len > 100 ? 100 : len), text);
}

static bool same(const tally_scope *a, const tally_scope *b)
{
    return a->kind == b->kind && strcmp(a->name, b->name) == 0;
}

int tally_scopes_add(tally_scopes *set, const tally_scope *s, tally_error *err)
{
    for (int i = 0; i < set->n; i++)
        if (same(&set->s[i], s))
            return 0;
    if (set->n == TALLY_MAX_SCOPES)
        return tally_fail(err, TALLY_BAD_REQUEST, "scopes", "a key has at most %d scopes", TALLY_MAX_SCOPES);
    set->s[set->n++] = *s;
    return 0;
}

int tally_scopes_parse_list(const char *text, tally_scopes *out, tally_error *err)
{
    out->n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = p;
        while (*end && *end != ' ')
            end++;
        if (end > p) {
            tally_scope s;
            if (tally_scope_parse(p, (size_t)(end - p), &s, err) || tally_scopes_add(out, &s, err))
                return -TALLY_BAD_REQUEST;
        }
        p = end;
    }
    return 0;
}

void tally_scope_format(const tally_scope *s, char *out, size_t cap)
{
    const char *word = "?";
    for (size_t i = 0; i < sizeof WORDS / sizeof WORDS[0]; i++)
        if (WORDS[i].kind == s->kind)
            word = WORDS[i].word;
    snprintf(out, cap, "%s%s%s", word, s->name[0] ? ":" : "", s->name);
}

void tally_scopes_format(const tally_scopes *set, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < set->n && len + 1 < cap; i++) {
        char one[TALLY_SCOPE_NAME_MAX + 16];
        tally_scope_format(&set->s[i], one, sizeof one);
        int n = snprintf(out + len, cap - len, "%s%s", i ? " " : "", one);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

/* Whether one scope the key has grants need. */
static bool grants(const tally_scope *have, const tally_scope *need)
{
    if (have->kind == TALLY_SCOPE_ADMIN)
        return true;
    if (need->kind == TALLY_SCOPE_READ || need->kind == TALLY_SCOPE_WRITE) {
        bool kind_ok = have->kind == need->kind || (need->kind == TALLY_SCOPE_READ && have->kind == TALLY_SCOPE_WRITE);
        return kind_ok && (have->name[0] == '\0' || strcmp(have->name, need->name) == 0);
    }
    return same(have, need);
}

bool tally_scopes_allow(const tally_scopes *set, const tally_scope *need)
{
    for (int i = 0; i < set->n; i++)
        if (grants(&set->s[i], need))
            return true;
    return false;
}

tally_scope tally_scope_of(tally_scope_kind kind, const char *name)
{
    tally_scope s = {.kind = kind};
    if (name) { /* cut to fit, as snprintf would: a model name always fits */
        size_t n = strnlen(name, sizeof s.name - 1);
        memcpy(s.name, name, n);
        s.name[n] = '\0';
    }
    return s;
}
