#!/usr/bin/env bash
# Schemathesis against the running service: every operation in openapi.yaml, every check, no 5xx allowed.
# Starts the service on a free loopback port (development mode, with an operator token of its own), waits for it,
# and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${CONTRACT_PORT:-$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
LOG=$(mktemp)
MSCC_CONTRACT_OPERATOR_TOKEN=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))')
export MSCC_CONTRACT_OPERATOR_TOKEN
MSCC_DEV_MODE=true MSCC_DATABASE_URL="sqlite:///$(mktemp -d)/contract.sqlite3" \
  MSCC_OPERATOR_TOKEN="$MSCC_CONTRACT_OPERATOR_TOKEN" \
  "$BIN/python" -m service serve --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  if "$BIN/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 $SERVER 2>/dev/null; then cat "$LOG"; echo "service did not start" >&2; exit 1; fi
  sleep 0.1
done
"$BIN/schemathesis" run openapi.yaml --url "http://127.0.0.1:$PORT" \
  --max-examples "${CONTRACT_EXAMPLES:-60}" --seed 20261124 --no-color \
  --generation-database none --warnings off "$@"
if grep -q '"level": "ERROR"' "$LOG"; then
  echo "the service logged errors during the contract run:" >&2; grep '"level": "ERROR"' "$LOG" >&2; exit 1
fi
