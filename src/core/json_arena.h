/*
 * json_arena.h — where jansson's memory comes from while a request's JSON is
 * parsed: a bump allocator per thread instead of one malloc and one free per
 * value, key and hashtable (a 1,000-step transaction body is some 20,000 of
 * each; their malloc and free were a sixth of a step's cost).
 *
 * tally_json_arena_install() hands jansson this file's allocation functions
 * (json_set_alloc_funcs).  It must run before jansson allocates anything
 * (first thing in main): from then on every allocation jansson makes carries
 * a small header saying where it came from, and jansson's free reads it.
 * Between tally_json_arena_begin() and _end() (tally_json_parse brackets
 * json_loadb with them) small allocations come from the calling thread's
 * current block, otherwise from malloc.  A value from a block may be freed
 * on any thread: a block counts its live values atomically, is reused by its
 * thread once they are all freed, and is freed by whoever frees its last
 * value after its thread moved on to a new block.
 *
 * So text jansson allocates must go back to jansson, never to free():
 * tally_json_text() serialises into plain malloc'ed memory instead of
 * json_dumps, for callers that free() it.
 */
#ifndef TALLY_CORE_JSON_ARENA_H
#define TALLY_CORE_JSON_ARENA_H

#include <jansson.h>

void tally_json_arena_install(void);
void tally_json_arena_begin(void);
void tally_json_arena_end(void);

/* json_dumps(v, flags), but in memory from malloc (the caller free()s it); NULL on failure. */
char *tally_json_text(const json_t *v, size_t flags);

#endif
