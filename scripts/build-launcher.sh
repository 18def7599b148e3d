#!/bin/sh
# Compiles the per-job supervisor (src/launcher/hpcq-supervisor.c) and the long-lived launcher that
# starts them (src/launcher/hpcq-launcher.c) to dist/libexec/.
# It is C because it must do what Node cannot between fork and exec: join the job's cgroup,
# initgroups + setresuid, PR_SET_NO_NEW_PRIVS, close inherited descriptors, open the output
# files as the user, and outlive the daemon as a tiny reaper.
# A C compiler is installed from Debian's packages if missing (as root only).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
caller=build-launcher
. "$root/scripts/ensure-cc.sh"
mkdir -p "$root/dist/libexec"
for name in hpcq-supervisor hpcq-launcher; do
  out="$root/dist/libexec/$name"
  "$cc_bin" -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -o "$out.tmp" "$root/src/launcher/$name.c"
  mv -f "$out.tmp" "$out"
done
