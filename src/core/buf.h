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
/* Room for n more bytes (and the NUL): where to write them.  Write at most
 * n, then tally_buf_commit with the end of what was written.  For a writer
 * that knows a bound up front, so it checks capacity once, not per piece. */
char *tally_buf_room(tally_buf *b, size_t n);
void tally_buf_commit(tally_buf *b, char *end);
/* v in decimal, without printf (the answers' and SQL's hot path). */
void tally_buf_add_int(tally_buf *b, long long v);
/* The same into out (room for 20 bytes); returns the end of what it wrote. */
char *tally_put_int(char *out, long long v);
void tally_buf_addf(tally_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
