#!/usr/bin/env bash
# Coordinator: start the Flower SuperLink with TLS and SuperNode authentication.
#
#   deploy/superlink.sh --certs DIR [--host 127.0.0.1] [--port 8000] [--database state.db]
#                       [--log-file FILE] [-- EXTRA flower-superlink ARGS]
#
# DIR holds ca.crt, server.pem and server.key (deploy/make_dev_certificates.sh makes them
# for development). One HTTPS port serves the Fleet API (SuperNodes), the Control API
# (researchers' `flwr` CLI) and the Runtime API (the ServerApp). The state database keeps
# registered SuperNodes and runs across restarts. Runtime dependency installation
# (`uv sync` per run) is disabled: the coordinator's environment must already hold the
# project's dependencies (this virtualenv). Set FLWR_BIN to the folder with flower-superlink
# if it is not the project's .venv/bin.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${FLWR_BIN:-$here/../.venv/bin}"
certs="" host="127.0.0.1" port="8000" database="state.db" log_file=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --certs) certs="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --database) database="$2"; shift 2 ;;
    --log-file) log_file="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ -n "$certs" ]] || { echo "--certs DIR is required" >&2; exit 2; }
certs="$(cd "$certs" && pwd)"   # absolute: the SuperExec child resolves it elsewhere
for f in ca.crt server.pem server.key; do
  [[ -r "$certs/$f" ]] || { echo "missing $certs/$f" >&2; exit 1; }
done
# Flower's in-memory state (":flwr-in-memory:", nothing kept across restarts) or an SQLite
# file (made absolute: the SuperLink runs its SuperExec from another folder).
[[ "$database" == ":memory:" || "$database" == ":flwr-in-memory:" || "$database" == /* ]] || database="$PWD/$database"
[[ -x "$bin/flower-superlink" ]] || { echo "flower-superlink not found in $bin" >&2; exit 1; }
# flower-superlink starts flower-superexec (and it flwr-serverapp) from PATH.
export PATH="$bin:$PATH"

args=(
  --ssl-ca-certfile "$certs/ca.crt"
  --ssl-certfile "$certs/server.pem"
  --ssl-keyfile "$certs/server.key"
  --enable-supernode-auth
  --disable-runtime-dependency-installation
  --database "$database"
  --host "$host"
  --port "$port"
)
[[ -n "$log_file" ]] && args+=(--log-file "$log_file")
exec "$bin/flower-superlink" "${args[@]}" "${extra[@]}"
