/* base64url: unpadded RFC 4648 §5 encoding and strict decoding (see
 * base64url.h). Owns only the two constant tables below. */
#include "core/base64url.h"

#include <stdbool.h>
#include <stdint.h>

static const char k_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Character -> 6-bit value plus one; 0 (the default of every entry not
 * listed) marks anything outside the alphabet: '=', '+', '/', NUL and every
 * byte >= 0x80. Storing value+1 keeps the table free of overriding
 * initialisers. */
static const uint8_t k_decode[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

size_t tally_base64url_encoded_len(size_t n)
{
    /* 4 characters per full 3-byte group; a trailing 1 or 2 bytes take 2 or
     * 3 characters. */
    static const size_t tail[3] = {0, 2, 3};
    return n / 3 * 4 + tail[n % 3];
}

size_t tally_base64url_encode(const void *in, size_t n, char *out)
{
    const uint8_t *p = in;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = k_alphabet[v >> 18];
        *o++ = k_alphabet[(v >> 12) & 63];
        *o++ = k_alphabet[(v >> 6) & 63];
        *o++ = k_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = k_alphabet[v >> 18];
        *o++ = k_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = k_alphabet[v >> 18];
        *o++ = k_alphabet[(v >> 12) & 63];
        *o++ = k_alphabet[(v >> 6) & 63];
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* Decodes up to 4 characters into their 6-bit values; false if any is
 * outside the alphabet. */
static bool decode_group(const uint8_t *s, size_t n, uint32_t *bits)
{
    uint32_t v = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t x = k_decode[s[k]];
        if (x == 0)
            return false;
        v = v << 6 | (uint32_t)(x - 1);
    }
    *bits = v << (6 * (4 - n)); /* left-align to 24 bits */
    return true;
}

ptrdiff_t tally_base64url_decode(const char *in, size_t len, void *out)
{
    if (len % 4 == 1 || len / 4 * 3 + 2 > (size_t)PTRDIFF_MAX)
        return -1;
    const uint8_t *s = (const uint8_t *)in;
    uint8_t *o = out;
    size_t i = 0;
    uint32_t v;
    for (; i + 4 <= len; i += 4) {
        if (!decode_group(s + i, 4, &v))
            return -1;
        *o++ = (uint8_t)(v >> 16);
        *o++ = (uint8_t)(v >> 8);
        *o++ = (uint8_t)v;
    }
    size_t rest = len - i; /* 0, 2 or 3 */
    if (rest >= 2) {
        if (!decode_group(s + i, rest, &v))
            return -1;
        /* The bits below the last whole byte must be zero: "QR" and "QQ"
         * would otherwise both decode to "A". */
        if (rest == 2 ? (v & 0xffff) : (v & 0xff))
            return -1;
        *o++ = (uint8_t)(v >> 16);
        if (rest == 3)
            *o++ = (uint8_t)(v >> 8);
    }
    return o - (uint8_t *)out;
}
