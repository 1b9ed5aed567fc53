/* arena.c — bump allocation in chunks that grow; see arena.h. */
#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tally_arena_chunk {
    tally_arena_chunk *next;
    size_t size;
    max_align_t data[]; /* aligned start */
};

#define ARENA_MIN_CHUNK 4096
#define ARENA_ALIGN (sizeof(max_align_t))

void tally_arena_init(tally_arena *a) { a->head = NULL; a->cur = a->end = NULL; }

void tally_arena_free(tally_arena *a)
{
    tally_arena_chunk *c = a->head;
    while (c) {
        tally_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    tally_arena_init(a);
}

void *tally_arena_alloc(tally_arena *a, size_t n)
{
    n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (n == 0)
        n = ARENA_ALIGN;
    if (a->cur == NULL || (size_t)(a->end - a->cur) < n) {
        size_t size = a->head ? a->head->size * 2 : ARENA_MIN_CHUNK;
        if (size > 1 << 20)
            size = 1 << 20;
        if (size < n)
            size = n;
        tally_arena_chunk *c = malloc(sizeof *c + size);
        if (!c)
            abort();
        c->next = a->head;
        c->size = size;
        a->head = c;
        a->cur = (char *)c->data;
        a->end = a->cur + size;
    }
    void *p = a->cur;
    a->cur += n;
    return p;
}

void *tally_arena_zalloc(tally_arena *a, size_t n)
{
    void *p = tally_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *tally_arena_strndup(tally_arena *a, const char *s, size_t len)
{
    char *p = tally_arena_alloc(a, len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *tally_arena_grow(tally_arena *a, const void *old, size_t used, size_t cap, size_t size)
{
    void *p = tally_arena_zalloc(a, cap * size);
    if (used)
        memcpy(p, old, used * size);
    return p;
}

char *tally_arena_printf(tally_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = tally_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

char *tally_arena_join(tally_arena *a, const char *left, const char *sep, const char *right)
{
    size_t l = strlen(left), s = left[0] ? strlen(sep) : 0, r = strlen(right);
    char *p = tally_arena_alloc(a, l + s + r + 1);
    memcpy(p, left, l);
    memcpy(p + l, sep, s);
    memcpy(p + l + s, right, r + 1);
    return p;
}
