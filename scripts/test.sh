#!/usr/bin/env bash
# Runs every test: C unit tests (plain and under ASan+UBSan), then the
# black-box suites against the real server binary, then the record-path
# suites again against the sanitizer build.  Called by `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== unit tests (build/)"
meson test -C build --print-errorlogs --num-processes 2 || status=1
echo "== unit tests under ASan+UBSan (build-asan/)"
ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2 || status=1

echo "== black-box tests under ASan+UBSan (records, atomics, relations, transactions, WebSocket)"
# Leak checks are for the unit tests: a server stopped by a signal exits
# with h2o's per-connection memory still held, by design.
(cd tests/e2e && TALLY_BIN="$PWD/../../build-asan/tally" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    node --test --test-concurrency=1 records.test.mjs atomics.test.mjs relations.test.mjs transaction.test.mjs ws.test.mjs) || status=1

echo "== black-box tests (build/tally)"
(cd tests/e2e && node --test --test-concurrency=1 *.test.mjs) || status=1

exit $status
