/* Unit tests for api/origin: the server's own origin against the Host
 * header (scheme, name and port, default ports filled in), --cors-origin
 * ("*" only with keys on), the open-mode Host names against DNS rebinding,
 * and which --listen hosts are loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api/origin.h"

static bool own(const char *origin, const char *host, bool tls)
{
    return tally_origin_is_own(origin, strlen(origin), host, strlen(host), tls);
}

static void own_origin(void **state)
{
    (void)state;
    assert_true(own("http://127.0.0.1:8080", "127.0.0.1:8080", false));
    assert_true(own("http://LOCALHOST:8080", "localhost:8080", false));
    assert_true(own("http://example.com", "example.com:80", false));
    assert_true(own("https://example.com", "example.com", true));
    assert_true(own("http://[::1]:8080", "[::1]:8080", false));
    assert_false(own("https://127.0.0.1:8080", "127.0.0.1:8080", false)); /* scheme */
    assert_false(own("http://127.0.0.1:8081", "127.0.0.1:8080", false));  /* port */
    assert_false(own("http://evil.example:8080", "127.0.0.1:8080", false));
    assert_false(own("null", "127.0.0.1:8080", false));
    assert_false(own("http://127.0.0.1:8080/path", "127.0.0.1:8080", false));
    assert_false(own("http://user@127.0.0.1:8080", "127.0.0.1:8080", false));
    assert_false(own("http://127.0.0.1:80a", "127.0.0.1:80a", false));
}

static bool allowed(const tally_access *a, bool keys_on, const char *origin)
{
    return tally_origin_allowed(a, keys_on, origin, strlen(origin), "127.0.0.1:8080", 14, false);
}

static void cors_origins(void **state)
{
    (void)state;
    const char *list[] = {"https://app.example"};
    tally_access a = {.cors = list, .ncors = 1};
    assert_true(allowed(&a, false, "https://app.example"));
    assert_true(allowed(&a, false, "https://APP.example:443"));
    assert_false(allowed(&a, false, "http://app.example"));
    assert_false(allowed(&a, false, "https://app.example.evil"));
    assert_true(allowed(&a, false, "http://127.0.0.1:8080")); /* its own */
    const char *star[] = {"*"};
    tally_access s = {.cors = star, .ncors = 1};
    assert_false(allowed(&s, false, "https://anything.example")); /* "*" only with keys on */
    assert_true(allowed(&s, true, "https://anything.example"));
    assert_true(tally_origin_valid("*"));
    assert_true(tally_origin_valid("https://a.example:8443"));
    assert_false(tally_origin_valid("a.example"));
    assert_false(tally_origin_valid("https://a.example/x"));
}

static bool host_ok(const tally_access *a, const char *h) { return tally_host_allowed(a, h, strlen(h)); }

static void open_mode_hosts(void **state)
{
    (void)state;
    const char *hosts[] = {"tally.test"};
    tally_access a = {.hosts = hosts, .nhosts = 1, .listen_host = "127.0.0.1"};
    assert_true(host_ok(&a, "localhost:8080"));
    assert_true(host_ok(&a, "127.0.0.1:8080"));
    assert_true(host_ok(&a, "[::1]:8080"));
    assert_true(host_ok(&a, "localhost"));
    assert_true(host_ok(&a, "TALLY.test:9"));
    assert_false(host_ok(&a, "attacker.example:8080"));
    assert_false(host_ok(&a, "127.0.0.1.attacker.example"));
    assert_false(host_ok(&a, "localhost.attacker.example:8080"));
    assert_false(host_ok(&a, ""));
    tally_access lan = {.listen_host = "192.168.1.5"};
    assert_true(host_ok(&lan, "192.168.1.5:8080"));
    tally_access any = {.listen_host = "0.0.0.0"};
    assert_false(host_ok(&any, "0.0.0.0:8080"));
}

static void loopback_listen(void **state)
{
    (void)state;
    assert_true(tally_listen_is_loopback("127.0.0.1"));
    assert_true(tally_listen_is_loopback("127.1.2.3"));
    assert_true(tally_listen_is_loopback("::1"));
    assert_true(tally_listen_is_loopback("localhost"));
    assert_false(tally_listen_is_loopback("0.0.0.0"));
    assert_false(tally_listen_is_loopback("::"));
    assert_false(tally_listen_is_loopback("192.168.1.5"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_origin),
        cmocka_unit_test(cors_origins),
        cmocka_unit_test(open_mode_hosts),
        cmocka_unit_test(loopback_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
