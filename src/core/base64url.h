/* base64url: unpadded base64url (RFC 4648 §5), the encoding of the opaque
 * paging cursors. Owns no state; the caller owns every buffer. */
#ifndef TALLY_CORE_BASE64URL_H
#define TALLY_CORE_BASE64URL_H

#include <stddef.h>

/* Encoded length for n input bytes (no padding), not counting NUL. */
size_t tally_base64url_encoded_len(size_t n);

/* Encodes n bytes into out (room for encoded_len+1), NUL-terminates, returns
 * the length. in may be NULL when n is 0. */
size_t tally_base64url_encode(const void *in, size_t n, char *out);

/* Decodes; returns decoded length, or -1 on a character outside the alphabet
 * (including '+' and '/' of plain base64), '=' padding, an impossible length
 * (len % 4 == 1), or a last character whose unused low bits are not zero (so
 * every byte string has exactly one accepted encoding). out needs room for
 * len*3/4+1 bytes; on failure its contents are unspecified. */
ptrdiff_t tally_base64url_decode(const char *in, size_t len, void *out);

#endif
