# The two commands a newcomer runs: `make run` and `make test`.
# Meson builds underneath; `make` alone builds build/tally.
PORT   ?= 8080
SCHEMA ?= examples/shop.json
DATA   ?= data

.PHONY: all build build-asan deps run test unit e2e bench clean

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

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build build-asan
	@scripts/test.sh

unit: build build-asan
	@meson test -C build --print-errorlogs
	@meson test -C build-asan --print-errorlogs

e2e: build
	@scripts/deps.sh test
	@cd tests/e2e && node --test --test-concurrency=1 *.test.mjs

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@bench/run.sh

clean:
	rm -rf build build-asan
