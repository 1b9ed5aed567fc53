#!/usr/bin/env bash
# Installs what building and testing Tally needs, only when something is missing:
# Debian packages with apt-get, the black-box tests' npm packages with npm ci.
# Usage: scripts/deps.sh build|test|bench
set -euo pipefail
cd "$(dirname "$0")/.."

need_build=(libh2o-dev libuv1-dev libwslay-dev libssl-dev libjansson-dev libsqlite3-dev
            libpq-dev libcmocka-dev meson ninja-build pkg-config gcc make)
# postgresql-15: the server (it brings postgresql-client-15) for the throwaway
# cluster that scripts/pg.sh starts for the PostgreSQL runs of the tests.
# openssl: tests/e2e/net.test.mjs makes its TLS certificate; curl: its --http2 check.
# chromium: tests/e2e/console.test.mjs drives Debian's browser headless (puppeteer-core, no browser download).
need_test=(nodejs npm strace postgresql-15 openssl curl chromium)
# bench: the load generator and the peers; sqlite3 and jq for the end checks
# and record creation; valgrind for bench/instructions.sh; gnuplot-nox for
# the charts of bench/report.sh.
need_bench=(wrk redis-server redis-tools nginx-light curl sqlite3 jq valgrind gnuplot-nox)

want=("${need_build[@]}")
case "${1:-build}" in
  test)  want+=("${need_test[@]}") ;;
  bench) want+=("${need_test[@]}" "${need_bench[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  # node and npm may come from outside Debian (a machine image); accept them on PATH.
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Every lockfile of the project: the black-box tests' packages, and clients/js's
# build tools (TypeScript); the tests build the client from its lockfile.
if [ "${1:-build}" != build ]; then
  for dir in tests/e2e clients/js; do
    [ -f "$dir/package-lock.json" ] || continue
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
fi
