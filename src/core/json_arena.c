/* json_arena.c — jansson's allocation functions; see json_arena.h. */
#include "core/json_arena.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BLOCK_BYTES (64 * 1024)
#define LARGEST (BLOCK_BYTES / 8) /* larger allocations come from malloc */
#define TAG 0xF0A7C0DEF0A7C0DEULL /* in every header: a pointer jansson never allocated is caught */

typedef struct block {
    atomic_size_t refs; /* live values, plus one while it is its thread's current block */
    size_t used;
    _Alignas(16) unsigned char mem[];
} block;

/* 16 bytes before every allocation, so the pointer returned stays 16-aligned. */
typedef struct header {
    block *owner; /* NULL: from malloc, the header included */
    uint64_t tag;
} header;

static _Thread_local block *current;
static _Thread_local bool on;

static void drop(block *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* A thread's current block is dropped when the thread ends (libtally's callers come and go). */
static pthread_key_t current_key;
static pthread_once_t current_key_once = PTHREAD_ONCE_INIT;
static void drop_at_exit(void *b) { drop(b); }
static void make_current_key(void) { pthread_key_create(&current_key, drop_at_exit); }

static void *from_malloc(size_t n)
{
    header *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->owner = NULL;
    h->tag = TAG;
    return h + 1;
}

static void *arena_malloc(size_t n)
{
    if (!on || n > LARGEST)
        return from_malloc(n);
    size_t need = (sizeof(header) + n + 15) & ~(size_t)15;
    block *b = current;
    if (b && atomic_load_explicit(&b->refs, memory_order_acquire) == 1)
        b->used = 0; /* every value from it was freed: start over */
    if (!b || b->used + need > BLOCK_BYTES) {
        block *fresh = malloc(sizeof *fresh + BLOCK_BYTES);
        if (!fresh)
            return from_malloc(n);
        atomic_init(&fresh->refs, 1);
        fresh->used = 0;
        if (b)
            drop(b); /* freed once its last value is */
        current = b = fresh;
        pthread_once(&current_key_once, make_current_key);
        pthread_setspecific(current_key, b);
    }
    header *h = (header *)(b->mem + b->used);
    b->used += need;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    h->owner = b;
    h->tag = TAG;
    return h + 1;
}

static void arena_free(void *p)
{
    if (!p)
        return;
    header *h = (header *)p - 1;
    if (h->tag != TAG) {
        fprintf(stderr, "tally: jansson was handed memory it did not allocate (json_arena.h); stopping\n");
        abort();
    }
    h->tag = 0; /* a second free of the same value is caught too */
    if (h->owner)
        drop(h->owner);
    else
        free(h);
}

void tally_json_arena_install(void) { json_set_alloc_funcs(arena_malloc, arena_free); }
void tally_json_arena_begin(void) { on = true; }
void tally_json_arena_end(void) { on = false; }

char *tally_json_text(const json_t *v, size_t flags)
{
    size_t n = json_dumpb(v, NULL, 0, flags);
    if (n == 0)
        return NULL;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    json_dumpb(v, s, n, flags);
    s[n] = '\0';
    return s;
}
