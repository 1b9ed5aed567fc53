#!/usr/bin/env bash
# tsan.sh — libtally's tests under ThreadSanitizer: a build-tsan/ meson setup
# (debug, -fsanitize=thread), then tests/unit/test_lib.c and examples/embed.c
# in it, with a shorter race (16 threads x 1,000 increments: TSan is ~10x slower
# and tracks every access).  A report fails the run (halt_on_error).
#
#   scripts/tsan.sh         (`make tsan`; scripts/test.sh runs it as the tsan phase)
# TALLY_TEST_PG_URL, when set, runs the PostgreSQL half too.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-tsan/build.ninja ] || meson setup build-tsan --buildtype=debug -Dwerror=true -Db_sanitize=thread \
    -Db_lundef=false >/dev/null
ninja -C build-tsan test_lib embed >/dev/null
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
TALLY_LIB_TEST_THREADS=${TALLY_LIB_TEST_THREADS:-16} TALLY_LIB_TEST_PER_THREAD=${TALLY_LIB_TEST_PER_THREAD:-1000} \
  build-tsan/test_lib
build-tsan/embed examples/shop.json
echo "tsan: no data race reported"
