# The two commands a newcomer runs: `make run` and `make test`.
# Meson builds underneath; `make` alone builds build/tally.
PORT   ?= 8080
SCHEMA ?= examples/shop.json
DATA   ?= data

.PHONY: all build build-asan deps run test unit e2e e2e-pg bench bench-embed tsan check-install clean

all: build

deps:
	@scripts/deps.sh build

build: deps
	@[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized -Dwerror=true
	@ninja -C build

build-asan: deps
	@[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug -Dwerror=true \
	    -Db_sanitize=address,undefined -Db_lundef=false
	@ninja -C build-asan

run: build
	@mkdir -p $(DATA)
	@echo "tally: serving $(SCHEMA) from ./$(DATA) — try:"
	@echo "  curl -s -X POST localhost:$(PORT)/api/customer -H 'content-type: application/json' -d '{\"name\":\"Ada\"}'"
	./build/tally serve --schema $(SCHEMA) --data $(DATA) --listen 127.0.0.1:$(PORT)

# Every phase (unit, unit-asan, e2e-asan, e2e, e2e-pg, e2e-pg-asan: see
# scripts/test.sh), against SQLite and a throwaway PostgreSQL;
# `make test PHASES="e2e e2e-pg"` runs only those.
PHASES ?=
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build build-asan
	@scripts/test.sh $(PHASES)

unit: build build-asan
	@meson test -C build --print-errorlogs
	@meson test -C build-asan --print-errorlogs

# The black-box suites alone: `make e2e` on SQLite, `make e2e-pg` on a
# throwaway PostgreSQL (TALLY_E2E_SUITES="records.test.mjs …" for a few).
e2e: build
	@scripts/deps.sh test
	@scripts/test.sh e2e

e2e-pg: build
	@scripts/deps.sh test
	@scripts/test.sh e2e-pg

# Every benchmark in one run (bench/run.sh: workloads, sweeps, peers,
# PostgreSQL, instructions), then bench/results/<stamp>/report.md and charts;
# `make bench DURATION=10s` for longer wrk runs (see bench/README.md).
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@bench/run.sh

# libtally (docs/libtally.md): its tests under ThreadSanitizer (build-tsan/), the installed
# library and tally.pc checked by building examples/embed.c against them, and its benchmark.
tsan: deps
	@scripts/tsan.sh

check-install: build
	@scripts/check-install.sh

bench-embed: build
	@bench/embed.sh

clean:
	rm -rf build build-asan build-tsan
