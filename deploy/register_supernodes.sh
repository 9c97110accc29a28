#!/usr/bin/env bash
# Researcher: register the sites' SuperNode public keys with the SuperLink.
#
#   deploy/register_supernodes.sh CONNECTION KEY.pub [KEY.pub ...]
#
# CONNECTION is a SuperLink connection in $FLWR_HOME/config.toml (default ~/.flwr), e.g.
#
#   [superlink.cardiomm]
#   address = "coordinator.example.org:8000"
#   root-certificates = "/abs/path/ca.crt"
#
# Each KEY.pub is an "ecdsa-sha2-nistp384 ..." OpenSSH public key sent by a site. The node
# name is the file name without .pub. Prints one node id per key; lists all nodes at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${FLWR_BIN:-$here/../.venv/bin}"
[[ $# -ge 2 ]] || { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2; }
connection="$1"; shift
flwr="$bin/flwr"
[[ -x "$flwr" ]] || flwr="$(command -v flwr)" || { echo "flwr not found" >&2; exit 1; }

for pub in "$@"; do
  [[ -r "$pub" ]] || { echo "cannot read $pub" >&2; exit 1; }
  grep -q '^ecdsa-sha2-nistp384 ' "$pub" || {
    echo "$pub is not an ECDSA P-384 OpenSSH public key" >&2; exit 1; }
  name="$(basename "$pub" .pub)"
  "$flwr" supernode register "$pub" "$connection" --name "$name"
done
"$flwr" supernode list "$connection"
