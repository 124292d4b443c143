#!/usr/bin/env bash
# Make a seed disk for the security VM: a 1 MiB FAT volume labelled PORTCULLIS holding
# seed.env (no loop device or mount needed; dosfstools and mtools).
#
#   bash appliance/image/seed.sh my-seed.env seed.img
#
# seed.env is KEY=value lines (appliance/image/example-seed.env has them all); the VM
# checks it at boot (portcullis-setup) and says on its console what is wrong.
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1" ]; then
  echo "usage: seed.sh SEED.env OUT.img   (SEED.env: see appliance/image/example-seed.env)" >&2
  exit 2
fi
for tool in mkfs.vfat mcopy; do
  command -v "$tool" >/dev/null || {
    echo "seed.sh: $tool is missing: run 'bash appliance/provision.sh'" >&2
    exit 1
  }
done
rm -f "$2"
mkfs.vfat -C -n PORTCULLIS "$2" 1024 >/dev/null
mcopy -i "$2" "$1" ::seed.env
