/*
 * buf.h — a growable NUL-terminated byte string, owned by its holder
 * (free with tally_buf_free, or take .s and free() it).  Used to build SQL
 * text and JSON answers.  Out of memory aborts.
 */
#ifndef TALLY_CORE_BUF_H
#define TALLY_CORE_BUF_H

#include <stddef.h>

typedef struct tally_buf {
    char *s;
    size_t len, cap;
} tally_buf;

void tally_buf_init(tally_buf *b);
void tally_buf_free(tally_buf *b);
void tally_buf_addn(tally_buf *b, const char *text, size_t n);
void tally_buf_add(tally_buf *b, const char *text);
void tally_buf_addc(tally_buf *b, char c);
/* v in decimal, without printf (the answers' and SQL's hot path). */
void tally_buf_add_int(tally_buf *b, long long v);
void tally_buf_addf(tally_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
