/* test_auth_hash.c — tally_auth_hash keeps the tokens a thread saw last
 * (api/auth.c): whatever the order, slot collisions included, each token
 * gets its own SHA-256, the same as OpenSSL computes it afresh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "api/auth.h"

static void sha256(const char *s, size_t n, unsigned char out[32]) { EVP_Digest(s, n, out, NULL, EVP_sha256(), NULL); }

static void test_each_token_its_own_hash(void **state)
{
    (void)state;
    char tokens[40][64];
    for (int i = 0; i < 40; i++) /* more tokens than slots: some share one */
        snprintf(tokens[i], sizeof tokens[i], "tly_token-%d-%s", i, i % 3 ? "abcdefghijklmnop" : "x");
    for (int round = 0; round < 5; round++)
        for (int k = 0; k < 40; k++) {
            int i = (k * 7 + round) % 40;
            unsigned char got[32], want[32];
            tally_auth_hash(tokens[i], strlen(tokens[i]), got);
            sha256(tokens[i], strlen(tokens[i]), want);
            assert_memory_equal(got, want, 32);
        }
}

static void test_prefixes_and_lengths(void **state)
{
    (void)state;
    /* a token and its prefix, a token longer than what is kept, and the empty one */
    char longer[300];
    memset(longer, 'k', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    const char *cases[] = {"tly_abc", "tly_ab", "tly_abc", longer, "", longer, "tly_ab"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char got[32], want[32];
        tally_auth_hash(cases[i], strlen(cases[i]), got);
        sha256(cases[i], strlen(cases[i]), want);
        assert_memory_equal(got, want, 32);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_token_its_own_hash),
        cmocka_unit_test(test_prefixes_and_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
