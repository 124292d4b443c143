#!/usr/bin/env bash
# Provision a Debian 12 machine for Portcullis. Idempotent: what is installed already
# is left alone. Two profiles:
#
#   bash appliance/provision.sh [dev]      # a developer's machine or CI: the lab, the
#                                          # tests, the benches, Chromium, the image tools;
#                                          # every npm dependency (npm ci)
#   bash appliance/provision.sh appliance  # a security VM by hand: only what the running
#                                          # service needs (nftables, Suricata 7, dnsmasq,
#                                          # conntrack); the compiled service (dist/, from
#                                          # npm run build) and production modules only
#                                          # (npm ci --omit=dev); the service user
#   PORTCULLIS_SKIP_NPM=1 bash appliance/provision.sh [profile]   # packages only
#
# The image (appliance/image/build.sh) installs the same appliance packages with
# mmdebstrap instead; `run.sh lab|test` provision the dev profile.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

log() { printf '[provision] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh must run as root (it installs packages and needs network namespaces)" >&2
  exit 1
fi

profile="${1:-dev}"
export DEBIAN_FRONTEND=noninteractive
backports=/etc/apt/sources.list.d/bookworm-backports.list
# what the running service needs (the image's package list has the same, plus a kernel)
appliance_packages=(nftables libnftables1 iptables iproute2 dnsmasq-base dnsmasq-utils conntrack ca-certificates tcpdump)
case "$profile" in
  appliance)
    # D-Bus and polkit: the service starts Suricata's and dnsmasq's units through systemd
    packages=("${appliance_packages[@]}" dbus polkitd)
    extra=(suricata)
    ;;
  dev)
    packages=("${appliance_packages[@]}" tcpreplay iperf3 dnsperf
      socat busybox openssl curl jq iputils-ping netcat-openbsd bind9-dnsutils
      python3 make g++ chromium
      # promtool and a Prometheus server: the metrics checks and their lab test
      prometheus
      # appliance/libvirt/: its XML is checked against libvirt's schemas
      libvirt-clients libxml2-utils
      # the security VM image (appliance/image/build.sh) and its boot test under QEMU
      qemu-system-x86 qemu-utils fdisk e2fsprogs dosfstools mtools grub-pc-bin)
    extra=(suricata mmdebstrap)
    ;;
  *)
    echo "provision.sh: unknown profile '$profile' (dev: lab, tests, benches; appliance: the running service only)" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}" "${extra[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
suricata_ok=0
if command -v suricata >/dev/null && suricata -V 2>/dev/null | grep -q 'version 7\.'; then suricata_ok=1; fi
# mmdebstrap from bookworm-backports (1.5), the version appliance/image/build.sh is built with
mmdebstrap_ok=1
if [ "$profile" = dev ]; then mmdebstrap_ok=0; fi
if [ "$mmdebstrap_ok" -eq 0 ] && dpkg-query -W -f='${Version}' mmdebstrap 2>/dev/null | grep -q '^1\.[5-9]'; then mmdebstrap_ok=1; fi

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

if [ "$profile" = appliance ]; then
  # the service's own user (appliance/systemd/portcullis.service runs as it)
  if ! id -u portcullis >/dev/null 2>&1; then
    log "adding the system user portcullis"
    useradd --system --user-group --home-dir /var/lib/portcullis --no-create-home --shell /usr/sbin/nologin portcullis
  fi
  # Suricata's own (appliance/systemd/portcullis-suricata@.service; Debian's package makes none)
  if ! id -u suricata >/dev/null 2>&1; then
    log "adding the system user suricata"
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin suricata
  fi
  if [ "${PORTCULLIS_SKIP_NPM:-0}" != 1 ]; then
    cd "$repo"
    if [ ! -f dist/portcullis.mjs ]; then
      # a checkout, not a release: the bundler is a dev dependency, removed again after
      log "npm ci and npm run build (dist/ is missing)"
      npm ci --no-audit --no-fund --loglevel=error
      npm run --silent build
    fi
    log "npm ci --omit=dev"
    npm ci --omit=dev --no-audit --no-fund --loglevel=error
    rm -f node_modules/.portcullis-lock-hash # the dev profile's stamp: its modules are gone
  fi
elif [ "${PORTCULLIS_SKIP_NPM:-0}" != 1 ]; then
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
