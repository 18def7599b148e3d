#!/bin/sh
# Compiles the per-job supervisor (src/launcher/hpcq-supervisor.c) to dist/libexec/.
# It is C because it must do what Node cannot between fork and exec: join the job's cgroup,
# initgroups + setresuid, PR_SET_NO_NEW_PRIVS, close inherited descriptors, open the output
# files as the user, and outlive the daemon as a tiny reaper.
# A C compiler is installed from Debian's packages if missing (as root only).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/src/launcher/hpcq-supervisor.c"
out="$root/dist/libexec/hpcq-supervisor"
cc_bin="${CC:-cc}"
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-launcher: no C compiler; installing gcc and libc6-dev from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev >&2; }
  else
    echo "build-launcher: a C compiler (cc) is required; install gcc" >&2
    exit 1
  fi
fi
mkdir -p "$root/dist/libexec"
"$cc_bin" -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -o "$out.tmp" "$src"
mv -f "$out.tmp" "$out"
