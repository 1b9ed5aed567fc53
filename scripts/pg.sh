#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, all inside one folder.
#
#   scripts/pg.sh start DIR   # initdb into DIR, start, wait; prints postgresql://tally@127.0.0.1:PORT
#                             # (databases: postgres, and tally, which the bare URL connects to)
#   scripts/pg.sh stop DIR    # stop it (fast shutdown) and remove DIR
#   scripts/pg.sh url DIR     # print the URL of the server running in DIR
#   scripts/pg.sh restart DIR # pg_ctl restart (fast) on the same port: for fault tests
#
# The superuser is `tally`, with trust authentication on the unix socket
# (in DIR) and on 127.0.0.1 only; it listens on 127.0.0.1 alone, on a port
# the kernel says is free (another is tried if it is taken by the time the
# server binds). fsync stays on: durability is tested.
#
# initdb and postgres refuse to run as root; as root (CI) they run as the
# `postgres` system user that Debian's postgresql package creates, and DIR
# is handed to that user. Environment: PG_BIN (the folder of initdb/pg_ctl,
# default: the newest /usr/lib/postgresql/*/bin), PG_MAX_CONNECTIONS (400),
# PG_SHARED_BUFFERS (128MB), PG_FSYNC (on; off only to test that Tally refuses it).
# Everything but the URL goes to stderr.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }
say() { echo "pg.sh: $*" >&2; }

cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: scripts/pg.sh start|stop|restart|url DIR"

if [ -z "${PG_BIN:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$PG_BIN" ] || PG_BIN=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
fi
[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] \
  || die "no PostgreSQL server binaries in $PG_BIN (install postgresql-15: scripts/deps.sh test)"

# Run a PostgreSQL program as the user that owns the cluster.
if [ "$(id -u)" = 0 ]; then
  PG_USER=postgres
  id "$PG_USER" >/dev/null 2>&1 || die "running as root needs the '$PG_USER' system user (from Debian's postgresql package)"
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi

data="$dir/data"

# pid of the postmaster running in $data, or nothing.
running_pid() {
  [ -f "$data/postmaster.pid" ] || return 0
  local pid
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

port_of() { sed -n 4p "$data/postmaster.pid" 2>/dev/null; }

free_port() {
  # Ask the kernel for a free port on 127.0.0.1; 55432 is someone's dev server.
  local p=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if command -v node >/dev/null; then
      p=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
    elif command -v python3 >/dev/null; then
      p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()')
    else
      p=$(( 20000 + RANDOM % 30000 ))
    fi
    [ "$p" != 55432 ] && [ "$p" != 5432 ] && { echo "$p"; return; }
  done
  die "no free port found"
}

stop_cluster() {
  local pid
  pid=$(running_pid)
  [ -n "$pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "postmaster $pid did not stop; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "postmaster $pid is still running"
}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  data="$dir/data"
  if pid=$(running_pid) && [ -n "$pid" ]; then
    say "already running in $dir (pid $pid)"
    echo "postgresql://tally@127.0.0.1:$(port_of)"
    exit 0
  fi
  rm -rf "$data" "$dir/log" "$dir/url"
  # The cluster's user must reach DIR: every folder above it needs search (x) permission.
  if [ "$(id -u)" = 0 ]; then
    p="$dir"
    while [ "$p" != / ]; do
      p=$(dirname "$p")
      runuser -u "$PG_USER" -- test -x "$p" || { say "chmod o+x $p (so that $PG_USER can reach $dir)"; chmod o+x "$p"; }
    done
    chown "$PG_USER" "$dir"
  fi
  chmod 700 "$dir"
  # unix socket path: sun_path holds 107 bytes
  [ ${#dir} -le 90 ] || die "$dir is too long a path for the unix socket; use a shorter folder"

  as_pg "$PG_BIN/initdb" -D "$data" -U tally --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >"$data/pg_hba.conf" <<'EOF'
# throwaway test cluster: trust, on the local socket and 127.0.0.1 only
local   all             all                     trust
host    all             all     127.0.0.1/32    trust
EOF
  cat >>"$data/postgresql.conf" <<EOF

# --- scripts/pg.sh: a throwaway cluster for the tests ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = ${PG_MAX_CONNECTIONS:-400}
shared_buffers = ${PG_SHARED_BUFFERS:-128MB}
fsync = ${PG_FSYNC:-on}
synchronous_commit = on
full_page_writes = on
max_wal_size = 1GB
logging_collector = off
log_min_messages = warning
log_checkpoints = off
EOF
  started=""
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    if as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 -o "-p $port" start >/dev/null 2>&1; then
      started=1; break
    fi
    if grep -qiE 'could not bind|address already in use|could not create any TCP/IP sockets' "$dir/log" 2>/dev/null; then
      say "port $port was taken; trying another (attempt $attempt)"
      stop_cluster
      : >"$dir/log"
      continue
    fi
    tail -n 30 "$dir/log" >&2 || true
    stop_cluster
    die "PostgreSQL did not start (log above, $dir/log)"
  done
  [ -n "$started" ] || die "PostgreSQL did not start: no free port after 5 tries"
  for _ in $(seq 1 300); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U tally -d postgres && break
    sleep 0.1
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U tally -d postgres \
    || { tail -n 30 "$dir/log" >&2; stop_cluster; die "PostgreSQL does not accept connections on 127.0.0.1:$port"; }
  # a database named after the user, so that the bare URL (no database: libpq
  # then takes the user's name) connects as it is
  "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U tally -d postgres -c 'CREATE DATABASE tally' >/dev/null \
    || { stop_cluster; die "could not create the database 'tally'"; }
  url="postgresql://tally@127.0.0.1:$port"
  echo "$url" >"$dir/url"
  say "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') serving $url (folder $dir, pid $(running_pid))"
  echo "$url"
  ;;
stop)
  [ -e "$dir" ] || exit 0
  dir=$(cd "$dir" && pwd -P)
  data="$dir/data"
  stop_cluster
  rm -rf "$dir"
  ;;
restart)
  dir=$(cd "$dir" && pwd -P)
  data="$dir/data"
  pid=$(running_pid)
  [ -n "$pid" ] || die "no PostgreSQL running in $dir"
  port=$(port_of)
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$dir/log" -m fast -w -t 60 -o "-p $port" restart >/dev/null \
    || { tail -n 30 "$dir/log" >&2; die "PostgreSQL did not restart"; }
  say "PostgreSQL restarted on port $port"
  ;;
url)
  pid=$(running_pid)
  [ -n "$pid" ] || die "no PostgreSQL running in $dir"
  echo "postgresql://tally@127.0.0.1:$(port_of)"
  ;;
*)
  die "usage: scripts/pg.sh start|stop|restart|url DIR"
  ;;
esac
