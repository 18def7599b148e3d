#!/bin/sh
# Compiles the Node-API addon src/native/peer-credentials.c to dist/native/peer-credentials.node.
# It is C because Node cannot read a unix socket's peer credentials (SO_PEERCRED), and the daemon
# must take each client's identity from the kernel when the connection is accepted.
# Built against the node-api-headers package, with no node-gyp and nothing downloaded; the napi_*
# symbols stay undefined and are resolved by Node when it loads the addon.
# A C compiler is installed from Debian's packages if missing (as root only).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/src/native/peer-credentials.c"
out="$root/dist/native/peer-credentials.node"
cc_bin="${CC:-cc}"
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-native: no C compiler; installing gcc and libc6-dev from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev >&2; }
  else
    echo "build-native: a C compiler (cc) is required; install gcc" >&2
    exit 1
  fi
fi
mkdir -p "$root/dist/native"
"$cc_bin" -O2 -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -I"$root/node_modules/node-api-headers/include" -o "$out.tmp" "$src"
mv -f "$out.tmp" "$out"
