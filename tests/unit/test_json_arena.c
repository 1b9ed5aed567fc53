/* test_json_arena.c — jansson's values from per-thread blocks (core/json_arena.h):
 * documents bigger than a block, strings from json_dumps freed with free(),
 * values freed on another thread than the one that parsed them, and blocks
 * reused once everything from them is freed.  Each document is checked value
 * by value before it is freed, so memory handed out twice would show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_arena.h"

/* {"items":[{"n":0,"name":"item-0"},...]} with n items: about 60 bytes of JSON and a dozen allocations each. */
static char *document(int n)
{
    size_t cap = (size_t)n * 48 + 32, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "{\"items\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s{\"n\":%d,\"name\":\"item-%d\"}", i ? "," : "", i, i);
    snprintf(s + len, cap - len, "]}");
    return s;
}

static json_t *parse(const char *text)
{
    tally_json_arena_begin();
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    tally_json_arena_end();
    assert_non_null(v);
    return v;
}

static void check(json_t *doc, int n)
{
    json_t *items = json_object_get(doc, "items");
    assert_int_equal(json_array_size(items), (size_t)n);
    for (int i = 0; i < n; i++) {
        json_t *it = json_array_get(items, (size_t)i);
        assert_int_equal(json_integer_value(json_object_get(it, "n")), i);
        char want[32];
        snprintf(want, sizeof want, "item-%d", i);
        assert_string_equal(json_string_value(json_object_get(it, "name")), want);
    }
}

static void test_bigger_than_a_block(void **state)
{
    (void)state;
    char *text = document(5000); /* some 300 KiB of values: several blocks */
    json_t *doc = parse(text);
    check(doc, 5000);
    char *again = tally_json_text(doc, JSON_COMPACT); /* plain malloc, freed with free() */
    assert_string_equal(again, text);
    free(again);
    json_decref(doc);
    doc = parse(text); /* the blocks are reused (or freed) once empty */
    check(doc, 5000);
    json_decref(doc);
    free(text);
}

static void test_interleaved_documents(void **state)
{
    (void)state;
    char *a = document(10), *b = document(300);
    json_t *keep = parse(a);
    for (int round = 0; round < 200; round++) {
        json_t *d = parse(b);
        check(keep, 10); /* a value still alive is never handed out again */
        check(d, 300);
        json_decref(d);
    }
    json_object_set_new(keep, "added", json_string("after the parse")); /* malloc'ed, freed with the rest */
    check(keep, 10);
    json_decref(keep);
    free(a);
    free(b);
}

/* ---- values freed on another thread ---- */

#define HANDOFFS 400

typedef struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *slot[HANDOFFS];
    int produced;
} handoff;

static void *consumer(void *arg)
{
    handoff *h = arg;
    for (int i = 0; i < HANDOFFS; i++) {
        pthread_mutex_lock(&h->mu);
        while (h->produced <= i)
            pthread_cond_wait(&h->cv, &h->mu);
        json_t *d = h->slot[i];
        pthread_mutex_unlock(&h->mu);
        check(d, 50 + i % 7);
        json_decref(d);
    }
    return NULL;
}

static void test_freed_on_another_thread(void **state)
{
    (void)state;
    handoff h = {.produced = 0};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, consumer, &h);
    for (int i = 0; i < HANDOFFS; i++) {
        char *text = document(50 + i % 7);
        json_t *d = parse(text);
        free(text);
        pthread_mutex_lock(&h.mu);
        h.slot[i] = d;
        h.produced++;
        pthread_cond_signal(&h.cv);
        pthread_mutex_unlock(&h.mu);
    }
    pthread_join(t, NULL);
    json_t *d = parse("{\"items\":[{\"n\":0,\"name\":\"item-0\"}]}");
    check(d, 1);
    json_decref(d);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
}

int main(void)
{
    tally_json_arena_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bigger_than_a_block),
        cmocka_unit_test(test_interleaved_documents),
        cmocka_unit_test(test_freed_on_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
