#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the tests (Debian packages; installed if missing).
# Prints the export line for MSCC_TEST_POSTGRES_URL; `scripts/postgres.sh stop DIR` stops it.
set -euo pipefail
if [ "${1:-}" = "stop" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  su postgres -c "$PGBIN/pg_ctl -D '$2' -m fast -w stop" >/dev/null 2>&1 || true
  rm -rf "$2"
  exit 0
fi
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDATA=$(mktemp -d /tmp/mscc-pg.XXXXXX)
chown postgres "$PGDATA"
PORT=${PGPORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
su postgres -c "$PGBIN/initdb -D '$PGDATA' -A trust -U postgres" >/dev/null
su postgres -c "$PGBIN/pg_ctl -D '$PGDATA' -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1' -l '$PGDATA/server.log' -w start" >/dev/null
echo "export MSCC_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres MSCC_TEST_POSTGRES_DIR=$PGDATA"
