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
caller=build-native
. "$root/scripts/ensure-cc.sh"
mkdir -p "$root/dist/native"
"$cc_bin" -O2 -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -I"$root/node_modules/node-api-headers/include" -o "$out.tmp" "$src"
mv -f "$out.tmp" "$out"
