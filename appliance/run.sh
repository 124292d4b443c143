#!/usr/bin/env bash
# The two commands of the README, for a newcomer on a fresh Debian 12 machine (root):
#
#   bash appliance/run.sh lab     # provision, build the lab, start the service; prints the dashboard URL
#   bash appliance/run.sh test    # provision, then every test: unit, lab, replay, red team
#
# Both install what they need first (idempotent).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"
bash "$here/provision.sh"
# shellcheck source=appliance/node.sh
. "$here/node.sh"
portcullis_node_install
case "${1:-}" in
  lab)
    shift
    exec "$repo/gateway/bin/portcullis" lab up "$@"
    ;;
  test)
    shift
    npx tsc --noEmit
    npx eslint --max-warnings=0 .
    npx prettier --check . >/dev/null || { npx prettier --list-different . >&2; echo "these files are not Prettier-formatted: npm run format" >&2; exit 1; }
    exec npm test -- "$@"
    ;;
  *)
    echo "usage: bash appliance/run.sh lab|test" >&2
    exit 2
    ;;
esac
