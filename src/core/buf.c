/* buf.c — the growable string of buf.h. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tally_buf_init(tally_buf *b) { b->s = NULL; b->len = b->cap = 0; }
void tally_buf_free(tally_buf *b) { free(b->s); tally_buf_init(b); }

static void reserve(tally_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        abort();
    b->s = s;
    b->cap = cap;
}

void tally_buf_addn(tally_buf *b, const char *text, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void tally_buf_add(tally_buf *b, const char *text) { tally_buf_addn(b, text, strlen(text)); }
void tally_buf_addc(tally_buf *b, char c) { tally_buf_addn(b, &c, 1); }

char *tally_buf_room(tally_buf *b, size_t n)
{
    reserve(b, n);
    return b->s + b->len;
}

void tally_buf_commit(tally_buf *b, char *end)
{
    b->len = (size_t)(end - b->s);
    b->s[b->len] = '\0';
}

char *tally_put_int(char *out, long long v)
{
    char d[24];
    size_t k = sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        d[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--k] = '-';
    memcpy(out, d + k, sizeof d - k);
    return out + (sizeof d - k);
}

void tally_buf_add_int(tally_buf *b, long long v) { tally_buf_commit(b, tally_put_int(tally_buf_room(b, 20), v)); }

void tally_buf_addf(tally_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
