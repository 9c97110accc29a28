#!/usr/bin/env bash
# A site: start a Flower SuperNode that connects to the coordinator's SuperLink over TLS
# and authenticates with the site's ECDSA P-384 private key.
#
#   deploy/supernode.sh --superlink HOST:PORT --root-certificates ca.crt \
#       --key supernode_key --site-id Center001 (--data-path DIR | --manifest-path FILE) \
#       [--site-config site.yaml] [--role train|evaluate] [--site-worker FOLDER] \
#       [--port 9094] [--host 127.0.0.1] \
#       [--node-config 'extra="k=v"'] [-- EXTRA ARGS]
#
# --role evaluate makes an evaluation-only site: it never trains, and scores the global
# model on all of its data when the coordinator asks (docs/federated-training.md,
# "Evaluation-only sites").
# --site-config is the site's own settings (device, threads, DP-SGD budget:
# docs/federated-training.md, "What a site decides"); the coordinator's run config cannot
# change them.
# --site-worker hands every message's work to a warm `cardiomm site-worker FOLDER` that the
# site runs beside this SuperNode as the same user (docs/federated-training.md, "Warm
# sites"); when it is not running, the ClientApp does the work itself.
# --port is the SuperNode's local Runtime API port (its ClientApp connects there); it must
# differ between SuperNodes on one machine. The public half of --key (key.pub) must have
# been registered by the researcher (`deploy/register_supernodes.sh`), otherwise the
# SuperLink refuses the node (exit code 305, "Failed to activate SuperNode").
# The ClientApp runs in this environment (torch, h5py, ... already installed); set
# FLWR_BIN to the folder with flower-supernode if it is not the project's .venv/bin.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${FLWR_BIN:-$here/../.venv/bin}"
superlink="" root="" key="" site="" data="" manifest="" site_config="" role="train" port="9094"
site_worker=""
host="127.0.0.1"
node_extra="" max_wait=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --superlink) superlink="$2"; shift 2 ;;
    --root-certificates) root="$2"; shift 2 ;;
    --key) key="$2"; shift 2 ;;
    --site-id) site="$2"; shift 2 ;;
    --data-path) data="$2"; shift 2 ;;
    --manifest-path) manifest="$2"; shift 2 ;;
    --site-config) site_config="$2"; shift 2 ;;
    --role) role="$2"; shift 2 ;;
    --site-worker) site_worker="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --node-config) node_extra="$2"; shift 2 ;;
    --max-wait-time) max_wait="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ -n "$superlink" && -n "$root" && -n "$key" && -n "$site" ]] || {
  echo "--superlink, --root-certificates, --key and --site-id are required" >&2; exit 2; }
[[ -n "$data" || -n "$manifest" ]] || { echo "--data-path or --manifest-path is required" >&2; exit 2; }
[[ "$role" == "train" || "$role" == "evaluate" ]] || { echo "--role is train or evaluate, not $role" >&2; exit 2; }
[[ -r "$root" ]] || { echo "cannot read $root" >&2; exit 1; }
[[ -r "$key" ]] || { echo "cannot read $key" >&2; exit 1; }
[[ "$site$data$manifest$site_config$site_worker" != *'"'* ]] || { echo "values must not contain double quotes" >&2; exit 2; }
[[ -x "$bin/flower-supernode" ]] || { echo "flower-supernode not found in $bin" >&2; exit 1; }
export PATH="$bin:$PATH"   # flower-supernode starts flower-superexec / flwr-clientapp from PATH
# Its SuperExec looks for a new message every second by default: 0.2 s takes up to 0.8 s
# off every message for a local HTTP request five times a second. (The SuperNode's own 3 s
# wait between pulls from the SuperLink is fixed in Flower 1.42.)
export FLWR_SUPEREXEC_TASK_POLL_INTERVAL="${FLWR_SUPEREXEC_TASK_POLL_INTERVAL:-0.2}"

node_config="site-id=\"$site\" role=\"$role\""
[[ -n "$data" ]] && node_config+=" data-path=\"$data\""
[[ -n "$manifest" ]] && node_config+=" manifest-path=\"$manifest\""
[[ -n "$site_config" ]] && node_config+=" site-config=\"$(cd "$(dirname "$site_config")" && pwd)/$(basename "$site_config")\""
# The worker's folder must be private (0700); made so here if the worker has not started yet.
[[ -n "$site_worker" ]] && node_config+=" site-worker=\"$(umask 077 && mkdir -p "$site_worker" && cd "$site_worker" && pwd)\""
[[ -n "$node_extra" ]] && node_config+=" $node_extra"

args=(
  --superlink "$superlink"
  --root-certificates "$(cd "$(dirname "$root")" && pwd)/$(basename "$root")"
  --auth-supernode-private-key "$(cd "$(dirname "$key")" && pwd)/$(basename "$key")"
  --node-config "$node_config"
  --host "$host"
  --port "$port"
)
[[ -n "$max_wait" ]] && args+=(--max-wait-time "$max_wait")
exec "$bin/flower-supernode" "${args[@]}" "${extra[@]}"
