/*
 * arena.h — a bump allocator for one request.
 *
 * A plan, its decoded values and its results live in one arena that is freed
 * whole when the request is answered.  An arena has one owner at a time: the
 * loop thread that decoded the request, then the worker that runs it, then
 * the loop again.  Allocation never fails quietly: out of memory aborts, as
 * there is no sensible way to answer without memory.
 */
#ifndef TALLY_CORE_ARENA_H
#define TALLY_CORE_ARENA_H

#include <stddef.h>

typedef struct tally_arena_chunk tally_arena_chunk;

typedef struct tally_arena {
    tally_arena_chunk *head; /* newest chunk first */
    char *cur, *end;         /* free space in head */
} tally_arena;

void tally_arena_init(tally_arena *a);
/* Frees every chunk; the arena can be used again afterwards. */
void tally_arena_free(tally_arena *a);
/* Returns n bytes aligned for any type; zeroed when zero != 0. */
void *tally_arena_alloc(tally_arena *a, size_t n);
void *tally_arena_zalloc(tally_arena *a, size_t n);
/* Copies len bytes and adds a NUL. */
char *tally_arena_strndup(tally_arena *a, const char *s, size_t len);
/* A larger copy of an array: cap elements of size each, the first used copied from old. */
void *tally_arena_grow(tally_arena *a, const void *old, size_t used, size_t cap, size_t size);
char *tally_arena_printf(tally_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a, sep and b joined ("path" "." "name"), without printf: the request
 * paths every decoded field gets.  sep is left out when a is empty. */
char *tally_arena_join(tally_arena *a, const char *left, const char *sep, const char *right);

#endif
