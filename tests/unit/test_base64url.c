/* Unit tests for core/base64url: the RFC 4648 §10 vectors (unpadded, url
 * alphabet), vectors that need '-' and '_', round trips of every length
 * 0..20 through exact-size heap buffers, and every rejection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "core/base64url.h"

/* Encodes into an exact-size heap buffer (so ASan sees any overrun), checks
 * the result, then decodes it back, also into an exact-size buffer. */
static void check_pair(const void *raw, size_t n, const char *want)
{
    size_t elen = tally_base64url_encoded_len(n);
    assert_int_equal(elen, strlen(want));
    char *enc = test_malloc(elen + 1);
    assert_int_equal(tally_base64url_encode(raw, n, enc), elen);
    assert_string_equal(enc, want);
    test_free(enc);

    size_t cap = strlen(want) * 3 / 4 + 1;
    unsigned char *dec = test_malloc(cap);
    assert_int_equal(tally_base64url_decode(want, strlen(want), dec), (ptrdiff_t)n);
    if (n)
        assert_memory_equal(dec, raw, n);
    test_free(dec);
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10, with the padding dropped; none of them use '+' or '/'. */
    check_pair("", 0, "");
    check_pair("f", 1, "Zg");
    check_pair("fo", 2, "Zm8");
    check_pair("foo", 3, "Zm9v");
    check_pair("foob", 4, "Zm9vYg");
    check_pair("fooba", 5, "Zm9vYmE");
    check_pair("foobar", 6, "Zm9vYmFy");
}

static void test_url_alphabet(void **state)
{
    (void)state;
    /* Values 62 and 63, written '+' and '/' in plain base64. */
    check_pair("\xfb\xff", 2, "-_8");
    check_pair("\xff\xff\xff", 3, "____");
    check_pair("\xfb\xef\xbe", 3, "----");
    check_pair("\x03\xe0", 2, "A-A");
    check_pair("\x00\x00\x00", 3, "AAAA");
    check_pair("\x00", 1, "AA");
    check_pair("\xff", 1, "_w");
    check_pair("\xff\xff", 2, "__8");
    /* Every alphabet character in order. */
    static const unsigned char all[48] = {
        0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3, 0x8f,
        0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9b, 0x71, 0xd7, 0x9f,
        0x82, 0x18, 0xa3, 0x92, 0x59, 0xa7, 0xa2, 0x9a, 0xab, 0xb2, 0xdb, 0xaf,
        0xc3, 0x1c, 0xb3, 0xd3, 0x5d, 0xb7, 0xe3, 0x9e, 0xbb, 0xf3, 0xdf, 0xbf,
    };
    check_pair(all, sizeof all,
               "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
}

static void test_encoded_len(void **state)
{
    (void)state;
    static const size_t want[] = {0, 2, 3, 4, 6, 7, 8, 10, 11, 12};
    for (size_t n = 0; n < sizeof want / sizeof want[0]; n++)
        assert_int_equal(tally_base64url_encoded_len(n), want[n]);
    assert_int_equal(tally_base64url_encoded_len(300), 400);
}

static bool in_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void test_round_trip_lengths(void **state)
{
    (void)state;
    uint32_t x = 2463534242u;
    for (int round = 0; round < 200; round++) {
        for (size_t n = 0; n <= 20; n++) {
            unsigned char *raw = test_malloc(n ? n : 1);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                raw[i] = (unsigned char)(x >> 24);
            }
            size_t elen = tally_base64url_encoded_len(n);
            assert_int_not_equal(elen % 4, 1);
            char *enc = test_malloc(elen + 1);
            assert_int_equal(tally_base64url_encode(n ? raw : NULL, n, enc), elen);
            assert_int_equal(strlen(enc), elen);
            for (size_t i = 0; i < elen; i++)
                assert_true(in_alphabet(enc[i]));

            unsigned char *dec = test_malloc(elen * 3 / 4 + 1);
            assert_int_equal(tally_base64url_decode(enc, elen, dec), (ptrdiff_t)n);
            if (n)
                assert_memory_equal(dec, raw, n);
            test_free(dec);
            test_free(enc);
            test_free(raw);
        }
    }
}

static void assert_rejected(const char *s, size_t len)
{
    unsigned char *out = test_malloc(len * 3 / 4 + 1);
    assert_int_equal(tally_base64url_decode(s, len, out), -1);
    test_free(out);
}

static void test_rejections(void **state)
{
    (void)state;
    static const char *bad[] = {
        /* padding */
        "Zg==", "Zm8=", "Zg=", "====", "Zm9v====",
        /* impossible lengths */
        "Z", "Zm9vY", "AAAAAAAAA",
        /* plain-base64 characters and other strangers */
        "Zm+v", "Zm/v", "+/8", "Zm9 ", " Zm9", "Zm9\n", "Zm.v", "Zm~v", "Zm9v\r\n",
        "Zm9vYg!", "\x80\x81\x82\x83", "Zm\xffv",
        /* non-zero bits below the last byte: the canonical forms are "QQ",
         * "QUE" and "_w" */
        "QR", "QB", "QUF", "QUH", "_x", "__",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_rejected(bad[i], strlen(bad[i]));
    /* NUL is not in the alphabet either, wherever it sits. */
    assert_rejected("Zm\0v", 4);
    assert_rejected("Zm9v\0\0", 6);

    unsigned char out[4];
    assert_int_equal(tally_base64url_decode("QQ", 2, out), 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(tally_base64url_decode("QUE", 3, out), 2);
    assert_memory_equal(out, "AA", 2);
    assert_int_equal(tally_base64url_decode("", 0, out), 0);
    /* Only len bytes are read: the junk after them is not looked at. */
    assert_int_equal(tally_base64url_decode("Zm9v=!", 4, out), 3);
    assert_memory_equal(out, "foo", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_encoded_len),
        cmocka_unit_test(test_round_trip_lengths),
        cmocka_unit_test(test_rejections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
