#!/bin/sh
# Compiles the daemon's helper programs (src/launcher/*.c) to dist/libexec/:
# - hpcq-supervisor, the per-job supervisor. It is C because it must do what Node cannot between
#   fork and exec: join the job's cgroup, initgroups + setresuid, PR_SET_NO_NEW_PRIVS, close
#   inherited descriptors, open the output files as the user, and outlive the daemon as a tiny
#   reaper.
# - hpcq-launcher, the long-lived process that starts the supervisors, and hpcq-command-runner,
#   which runs Slurm's commands: so that Node never forks its own large process on its event loop.
# A C compiler is installed from Debian's packages if missing (as root only).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
caller=build-launcher
. "$root/scripts/ensure-cc.sh"
mkdir -p "$root/dist/libexec"
for program in hpcq-supervisor hpcq-launcher hpcq-command-runner; do
  out="$root/dist/libexec/$program"
  "$cc_bin" -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -o "$out.tmp" "$root/src/launcher/$program.c"
  mv -f "$out.tmp" "$out"
done
