#!/bin/sh
# Removes what scripts/install-service.sh installed: exactly what its manifest
# ($PREFIX/lib/hpcq/.install-manifest) lists, that is $PREFIX/lib/hpcq, $PREFIX/bin/hpcq,
# $PREFIX/sbin/hpcqd, the unit hpcqd.service, and the directories the install created (when they
# are empty again). Nothing else: the state directory (database, audit log, token key), /run/hpcq,
# configuration files and `systemctl edit` drop-ins stay.
#
# Usage: uninstall-service.sh [--prefix DIR] [--destdir DIR]
# The installed copy, $PREFIX/lib/hpcq/uninstall-service.sh, removes its own installation.
set -eu

die() {
  printf 'uninstall-service: %s\n' "$*" >&2
  exit 1
}

PREFIX=${PREFIX:-}
DESTDIR=${DESTDIR:-}
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --*=*) value=${opt#*=}; opt=${opt%%=*} ;;
    --prefix | --destdir)
      [ $# -ge 2 ] || die "$opt needs a value"
      value=$2
      shift ;;
    *) value= ;;
  esac
  case $opt in
    --prefix) PREFIX=$value ;;
    --destdir) DESTDIR=$value ;;
    -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done
D=${DESTDIR%/}

# Which installation: the one named, else the one this copy belongs to, else /usr/local's.
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "$PREFIX" ]; then
  libdir=$D${PREFIX%/}/lib/hpcq
elif [ -f "$here/.install-manifest" ]; then
  libdir=$here
else
  libdir=$D/usr/local/lib/hpcq
fi
manifest=$libdir/.install-manifest
[ -f "$manifest" ] || die "no installation at $libdir (no .install-manifest); give its --prefix"

as_root=0
[ "$(id -u)" = 0 ] && as_root=1
[ "$as_root" = 1 ] || [ -n "$D" ] || die "run as root (or give --destdir for a staged install)"

# Root deletes what the manifest names: it must be root's and nobody else's to write (as
# install-service.sh checks it; a sticky directory such as /tmp above it is fine).
root_only() {
  p=$1
  while :; do
    [ -z "$(find -H "$p" -prune \( ! -user 0 -o \( -perm -020 -o -perm -002 \) ! -perm -1000 \) -print)" ] || return 1
    [ "$p" != / ] || return 0
    p=$(dirname "$p")
  done
}
[ "$as_root" = 0 ] || root_only "$manifest" || die "$manifest is not root's alone; not trusting it"

entries=$(grep -v '^#' "$manifest")
tree=$(printf '%s\n' "$entries" | sed -n 's/^tree //p')
# The manifest must describe the directory it is in, or it is not this installation's.
[ -n "$tree" ] && [ -d "$D$tree" ] && [ "$(cd "$D$tree" && pwd -P)" = "$(cd "$libdir" && pwd -P)" ] ||
  die "$manifest does not describe $libdir (staged? give --destdir)"
case $tree in
  */lib/hpcq) ;;
  *) die "$manifest names an unexpected package directory: $tree" ;;
esac
unit=$(printf '%s\n' "$entries" | sed -n 's|^file \(.*/hpcqd\.service\)$|\1|p')
state_dir=$(printf '%s\n' "$entries" | sed -n 's/^keep state //p')

# A running hpcqd of this installation is stopped first by the admin, not here: stopping it is a
# decision about the node (its running jobs carry on under their supervisors either way).
if [ -z "$D" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  if [ -n "$unit" ] && [ "$(systemctl show -P FragmentPath hpcqd.service 2>/dev/null || true)" = "$unit" ]; then
    ! systemctl is-active --quiet hpcqd.service || die "hpcqd.service is running: systemctl disable --now hpcqd, then run this again"
    # Enabling made links to the unit (multi-user.target.wants/): they go with it.
    ! systemctl is-enabled --quiet hpcqd.service || systemctl disable hpcqd.service
  fi
fi
if [ -n "$state_dir" ] && [ -f "$D$state_dir/hpcqd.pid" ]; then
  pid=$(sed -n 's/^pid=\([0-9][0-9]*\)$/\1/p' "$D$state_dir/hpcqd.pid")
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$tree/dist/daemon/main.cjs"; then
    die "hpcqd (pid $pid) of this installation is running: stop it first"
  fi
fi

printf '%s\n' "$entries" | sed -n 's/^file //p' | while IFS= read -r f; do
  rm -f "$D$f"
done
rm -rf "$D$tree"
# Directories the install created, children first; rmdir leaves any that hold something now.
printf '%s\n' "$entries" | sed -n 's/^dir //p' | sort -r | while IFS= read -r d; do
  rmdir "$D$d" 2>/dev/null || true
done

if [ -z "$D" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
fi
echo "uninstall-service: removed $tree and the files it installed"
kept=$(printf '%s\n' "$entries" | sed -n 's/^keep [a-z]* //p' | tr '\n' ' ')
echo "  kept: ${kept}configuration files and drop-ins (remove them yourself if you mean to)"
