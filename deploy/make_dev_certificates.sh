#!/usr/bin/env bash
# Development certificates and SuperNode keys for a loopback / test deployment.
#
#   deploy/make_dev_certificates.sh OUT_DIR [NUM_SUPERNODES] [--force]
#
# Writes into OUT_DIR:
#   ca.crt / ca.key              self-signed certificate authority (the file sites and
#                                researchers pass as --root-certificates / root-certificates)
#   server.pem / server.key      SuperLink TLS certificate signed by the CA, with
#                                SANs DNS:localhost, IP:127.0.0.1, IP:::1 (+ $EXTRA_SANS,
#                                e.g. EXTRA_SANS="DNS:coordinator.example.org,IP:10.0.0.5")
#   supernode_N / supernode_N.pub   ECDSA P-384 key pairs (N = 1..NUM_SUPERNODES, default 3),
#                                private key in OpenSSH format, public key as
#                                "ecdsa-sha2-nistp384 ..." for `flwr supernode register`
#
# These are for development and tests only: a real deployment uses certificates from the
# institution's CA, and each site creates its own key pair and sends only the .pub file.
# Existing files are never overwritten unless --force is given.
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR [NUM_SUPERNODES] [--force]" >&2; exit 2; }

force=0
positional=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "unknown option: $arg" >&2; usage ;;
    *) positional+=("$arg") ;;
  esac
done
[[ ${#positional[@]} -ge 1 && ${#positional[@]} -le 2 ]] || usage
out="${positional[0]}"
num="${positional[1]:-3}"
[[ "$num" =~ ^[0-9]+$ ]] || { echo "NUM_SUPERNODES must be a non-negative integer" >&2; exit 2; }

command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
command -v ssh-keygen >/dev/null || { echo "ssh-keygen not found" >&2; exit 1; }

mkdir -p "$out"
targets=(ca.crt ca.key server.pem server.key)
for ((i = 1; i <= num; i++)); do targets+=("supernode_$i" "supernode_$i.pub"); done
if [[ $force -eq 0 ]]; then
  for f in "${targets[@]}"; do
    if [[ -e "$out/$f" ]]; then
      echo "refusing to overwrite existing $out/$f (pass --force to replace all keys)" >&2
      exit 1
    fi
  done
fi
for f in "${targets[@]}"; do rm -f "$out/$f"; done

sans="DNS:localhost,IP:127.0.0.1,IP:::1${EXTRA_SANS:+,$EXTRA_SANS}"
days="${CERT_DAYS:-365}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
umask 077

# Certificate authority
openssl genrsa -out "$out/ca.key" 4096 2>/dev/null
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" \
  -subj "/CN=CardioMM-FL development CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$out/ca.crt"

# SuperLink server certificate with SANs
openssl genrsa -out "$out/server.key" 4096 2>/dev/null
openssl req -new -key "$out/server.key" -subj "/CN=localhost" -out "$tmp/server.csr"
cat > "$tmp/server.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
  -extfile "$tmp/server.ext" -out "$out/server.pem" 2>/dev/null
openssl verify -CAfile "$out/ca.crt" "$out/server.pem" >/dev/null

# SuperNode authentication keys: ECDSA P-384
for ((i = 1; i <= num; i++)); do
  ssh-keygen -q -t ecdsa -b 384 -N "" -C "supernode_$i" -f "$out/supernode_$i"
done
chmod 644 "$out/ca.crt" "$out/server.pem" "$out"/supernode_*.pub 2>/dev/null || true

echo "wrote CA, SuperLink certificate (SANs: $sans) and $num SuperNode key pair(s) to $out"
