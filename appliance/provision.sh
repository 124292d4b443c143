#!/usr/bin/env bash
# Provision a Debian 12 machine for Portcullis: a real security VM, a developer's
# machine or CI. Idempotent: what is installed already is left alone.
#
#   bash appliance/provision.sh          # packages + npm dependencies
#   PORTCULLIS_SKIP_NPM=1 bash appliance/provision.sh   # packages only
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

log() { printf '[provision] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh must run as root (it installs packages and needs network namespaces)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
backports=/etc/apt/sources.list.d/bookworm-backports.list
packages=(nftables libnftables1 iptables iproute2 dnsmasq-base tcpreplay tcpdump iperf3 dnsperf
  conntrack socat busybox openssl curl jq ca-certificates iputils-ping netcat-openbsd bind9-dnsutils
  python3 make g++ chromium
  # promtool and a Prometheus server: the metrics checks and their lab test
  prometheus
  # the security VM image (appliance/image/build.sh) and its boot test under QEMU
  qemu-system-x86 qemu-utils fdisk e2fsprogs dosfstools mtools grub-pc-bin)

missing=()
for p in "${packages[@]}" suricata mmdebstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
suricata_ok=0
if command -v suricata >/dev/null && suricata -V 2>/dev/null | grep -q 'version 7\.'; then suricata_ok=1; fi
# mmdebstrap from bookworm-backports (1.5), the version appliance/image/build.sh is built with
mmdebstrap_ok=0
if dpkg-query -W -f='${Version}' mmdebstrap 2>/dev/null | grep -q '^1\.[5-9]'; then mmdebstrap_ok=1; fi

if [ ${#missing[@]} -gt 0 ] || [ "$suricata_ok" -eq 0 ] || [ "$mmdebstrap_ok" -eq 0 ]; then
  if [ ! -f "$backports" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports (Suricata 7)"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$backports"
  fi
  log "apt-get update"
  apt-get update -q >/dev/null 2>&1 || apt-get update -q
  base=()
  for p in "${missing[@]}"; do [ "$p" != suricata ] && [ "$p" != mmdebstrap ] && base+=("$p"); done
  if [ ${#base[@]} -gt 0 ]; then
    log "installing ${base[*]}"
    apt-get install -y -q --no-install-recommends "${base[@]}" >/dev/null
  fi
  if [ "$suricata_ok" -eq 0 ]; then
    log "installing suricata 7 from bookworm-backports"
    apt-get install -y -q -t bookworm-backports suricata >/dev/null
  fi
  if [ "$mmdebstrap_ok" -eq 0 ]; then
    log "installing mmdebstrap from bookworm-backports"
    apt-get install -y -q --no-install-recommends -t bookworm-backports mmdebstrap >/dev/null
  fi
fi
# Debian starts suricata.service with its own config; the appliance runs its own instance.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now suricata.service >/dev/null 2>&1 || true
  # the prometheus package starts a server of its own; the tests run theirs
  systemctl disable --now prometheus.service prometheus-node-exporter.service >/dev/null 2>&1 || true
fi

modprobe nfnetlink_queue 2>/dev/null || true
modprobe br_netfilter 2>/dev/null || true

# the runtime: Node 24 LTS in the project's prefix (appliance/node.sh)
# shellcheck source=appliance/node.sh
. "$here/node.sh"
portcullis_node_install

if [ "${PORTCULLIS_SKIP_NPM:-0}" != 1 ]; then
  cd "$repo"
  stamp=node_modules/.portcullis-lock-hash
  # the lock and the runtime together: a new Node needs the native addons rebuilt
  want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$PORTCULLIS_NODE_VERSION"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
fi
log "ready: node $(node --version); $(suricata -V 2>/dev/null | head -1); $(nft --version)"
