#!/usr/bin/env bash
# check-install.sh — `meson install` of a build into a scratch folder, then a
# program built against it with pkg-config alone, as a user would:
#   cc examples/embed.c $(pkg-config --cflags --libs tally)            (shared libtally)
#   cc examples/embed.c $(pkg-config --cflags tally) -L"$libdir" -Wl,-Bstatic -ltally -Wl,-Bdynamic \
#      $(pkg-config --libs jansson sqlite3 libpq openssl) -pthread -lm        (static libtally.a)
# and both run (the course enrolment: exactly 30 of 80 get a seat).
#
#   scripts/check-install.sh [BUILD_DIR]     (default build; `make check-install`)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dest=$(mktemp -d /tmp/tally-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --quiet >/dev/null
pc=$(dirname "$(find "$dest" -name tally.pc | head -1)")
[ -n "$pc" ] || { echo "check-install: no tally.pc was installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$dest
echo "check-install: pkg-config --cflags --libs tally: $(pkg-config --cflags --libs tally)"
for h in tally.h; do find "$dest" -name "$h" | grep -q . || { echo "check-install: $h was not installed" >&2; exit 1; }; done
libdir=$(pkg-config --variable=libdir tally)
cc -Wall -Wextra -Werror examples/embed.c $(pkg-config --cflags --libs tally) -o "$dest/embed-shared"
# libtally.a itself, its dependencies shared: Debian's libpq has no static libpgcommon for `pkg-config --static`.
cc -Wall -Wextra -Werror examples/embed.c $(pkg-config --cflags tally) -L"$libdir" -Wl,-Bstatic -ltally -Wl,-Bdynamic \
   $(pkg-config --libs jansson sqlite3 libpq openssl) -pthread -lm -o "$dest/embed-static"
LD_LIBRARY_PATH="$libdir" "$dest/embed-shared" examples/shop.json
"$dest/embed-static" examples/shop.json
if ldd "$dest/embed-static" | grep -q libtally; then echo "check-install: embed-static links libtally.so" >&2; exit 1; fi
echo "check-install: ok (libtally shared and static, tally.h, tally.pc under $(pkg-config --variable=prefix tally))"
