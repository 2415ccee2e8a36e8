#!/usr/bin/env bash
# Exits 0 when a PostgreSQL server accepts TCP connections at the host and
# port of the URL given (postgres://user@host:port/db), 1 otherwise.
set -euo pipefail
url=${1:?usage: postgres-reachable.sh URL}
authority=${url#*://}
authority=${authority%%/*}
authority=${authority##*@}
host=${authority%%:*}
port=5432
[[ $authority == *:* ]] && port=${authority##*:}
if command -v pg_isready >/dev/null 2>&1; then
  pg_isready -q -h "$host" -p "$port" -t 3
else
  timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
fi
