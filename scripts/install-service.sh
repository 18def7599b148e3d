#!/bin/sh
# Installs hpcq and hpcqd on this node for every user, from a built checkout (`npm ci` builds it):
#
#   $PREFIX/lib/hpcq/       a copy of the package: dist/, proto/, production node_modules/,
#                           package.json, config/hpcqd.yaml (a commented configuration to start
#                           from), uninstall-service.sh and .install-manifest
#   $PREFIX/bin/hpcq        the CLI
#   $PREFIX/sbin/hpcqd      the daemon
#   $UNITDIR/hpcqd.service  the systemd unit (config/hpcqd.service, with this installation's paths)
#   $STATE_DIR, $RUN_DIR    created if missing (0700 and 0755, root's)
#
# A copy, not links into the checkout: hpcqd runs as root, so nothing it runs may be writable by
# anyone else, and a checkout usually is. Everything installed is root's and not group- or
# other-writable. The wrappers run the Node.js found now, by its absolute path: what `hpcq` runs
# then depends neither on the caller's PATH nor on the current directory.
#
# scripts/uninstall-service.sh (installed as $PREFIX/lib/hpcq/uninstall-service.sh) removes exactly
# what .install-manifest lists; the state directory, /run/hpcq and configuration files stay.
#
# Usage: scripts/install-service.sh [--prefix DIR] [--unit-dir DIR] [--state-dir DIR]
#                                   [--run-dir DIR] [--destdir DIR] [--node PATH] [--enable]
# or the same as environment variables PREFIX, UNITDIR, STATE_DIR, RUN_DIR, DESTDIR, NODE.
set -eu
umask 022

usage() {
  cat <<'EOF'
Usage: scripts/install-service.sh [options]   (or: npm run install-service -- [options])

Installs hpcq (CLI) and hpcqd (daemon) for every user of this node, and the systemd unit hpcqd.service.

  --prefix DIR     where to install (default /usr/local): DIR/bin/hpcq, DIR/sbin/hpcqd, DIR/lib/hpcq/
  --unit-dir DIR   where the unit goes (default /etc/systemd/system)
  --state-dir DIR  the daemon's state directory (default /var/lib/hpcq); another one is passed to
                   hpcqd with --state-dir, and its socket is then /run/hpcq/hpcqd-<hash>.sock
  --run-dir DIR    the socket directory to create now (default /run/hpcq, which the daemon always
                   uses and systemd recreates at each start); change it only to stage or test
  --destdir DIR    stage everything below DIR (packaging); installed files still name the final paths
  --node PATH      the Node.js (>= 20) to run them with (default: node on PATH, by absolute path)
  --enable         also `systemctl enable --now hpcqd` (only where systemd is running)

Each option may also be given as an environment variable: PREFIX, UNITDIR, STATE_DIR, RUN_DIR,
DESTDIR, NODE. Uninstall with DIR/lib/hpcq/uninstall-service.sh (keeps the state directory).
EOF
}

die() {
  printf 'install-service: %s\n' "$*" >&2
  exit 1
}

PREFIX=${PREFIX:-/usr/local}
UNITDIR=${UNITDIR:-/etc/systemd/system}
STATE_DIR=${STATE_DIR:-/var/lib/hpcq}
RUN_DIR=${RUN_DIR:-/run/hpcq}
DESTDIR=${DESTDIR:-}
NODE=${NODE:-}
enable=0
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --*=*) value=${opt#*=}; opt=${opt%%=*} ;;
    --prefix | --unit-dir | --state-dir | --run-dir | --destdir | --node)
      [ $# -ge 2 ] || die "$opt needs a value"
      value=$2
      shift ;;
    *) value= ;;
  esac
  case $opt in
    --prefix) PREFIX=$value ;;
    --unit-dir) UNITDIR=$value ;;
    --state-dir) STATE_DIR=$value ;;
    --run-dir) RUN_DIR=$value ;;
    --destdir) DESTDIR=$value ;;
    --node) NODE=$value ;;
    --enable) enable=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

# Paths end up in shell wrappers, a sed replacement and a unit file: allowing only plain characters
# keeps every one of them free of quoting problems (spaces, quotes, %, &, newlines).
checked_path() {
  case $2 in
    /*) ;;
    *) die "$1 must be an absolute path: $2" ;;
  esac
  case $2 in
    *[!A-Za-z0-9_./+-]*) die "$1 may contain only letters, digits and _ . / + -: $2" ;;
  esac
  printf '%s\n' "$2" | sed 's|/*$||; s|^$|/|'
}
PREFIX=$(checked_path --prefix "$PREFIX")
UNITDIR=$(checked_path --unit-dir "$UNITDIR")
STATE_DIR=$(checked_path --state-dir "$STATE_DIR")
RUN_DIR=$(checked_path --run-dir "$RUN_DIR")
[ -z "$DESTDIR" ] || DESTDIR=$(checked_path --destdir "$DESTDIR")
[ "$DESTDIR" != / ] || DESTDIR=
D=$DESTDIR

as_root=0
[ "$(id -u)" = 0 ] && as_root=1
# Without DESTDIR this installs a root service: only root may. Staging (DESTDIR) may be done by
# anyone; the package build then sets the owners.
[ "$as_root" = 1 ] || [ -n "$D" ] || die "run as root (or stage with --destdir)"

src=$(cd "$(dirname "$0")/.." && pwd -P) # as npm ls prints it
for f in dist/cli/main.js dist/daemon/main.cjs dist/daemon/process-tuning.js dist/libexec/hpcq-supervisor \
  dist/native/peer-credentials.node proto package.json config/hpcqd.service scripts/uninstall-service.sh; do
  [ -e "$src/$f" ] || die "$src/$f is missing: build the checkout first (npm ci, or npm run build)"
done

# True when $1 and every directory above it are root's and not writable by group or others, but
# for sticky directories such as /tmp, where nobody may rename or remove what is root's (-H: the
# target of a link).
root_only() {
  p=$1
  while :; do
    [ -z "$(find -H "$p" -prune \( ! -user 0 -o \( -perm -020 -o -perm -002 \) ! -perm -1000 \) -print)" ] || return 1
    [ "$p" != / ] || return 0
    p=$(dirname "$p")
  done
}

# Node.js: fixed now, by absolute path.
[ -n "$NODE" ] || NODE=$(command -v node) || die "no node on PATH; give one with --node"
case $NODE in
  /*) ;;
  *) die "--node must be an absolute path: $NODE" ;;
esac
NODE=$(checked_path --node "$NODE")
[ -x "$NODE" ] || die "$NODE is not executable"
"$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "$NODE is older than Node.js 20"
if [ -z "$D" ]; then
  # hpcqd runs it as root: a node that another user could replace would run their code as root.
  real_node=$(readlink -f "$NODE")
  root_only "$NODE" && root_only "$real_node" ||
    die "$NODE (or a directory above it) is not root's alone: install Node.js system-wide, or give one with --node"
fi

# systemd is told about the unit only where it runs (sd_booted: /run/systemd/system exists) and
# only for a real install; nothing is enabled or started unless --enable says so.
systemd_running=0
[ -n "$D" ] || [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null || systemd_running=1
[ "$enable" = 0 ] || [ "$systemd_running" = 1 ] ||
  die "--enable: systemd is not running here (or this is a staged install)"

LIBDIR=$PREFIX/lib/hpcq
BINDIR=$PREFIX/bin
SBINDIR=$PREFIX/sbin
MANIFEST=$LIBDIR/.install-manifest
UNIT=$UNITDIR/hpcqd.service

# A previous installation here (an upgrade): its manifest says which existing files are ours to
# replace, and which directories it created (still ours to remove at uninstall).
old_manifest=
if [ -e "$D$LIBDIR" ]; then
  [ -f "$D$MANIFEST" ] || die "$D$LIBDIR exists but was not installed by this script (no .install-manifest); remove it first"
  if [ "$as_root" = 1 ] && ! root_only "$D$MANIFEST"; then
    die "$D$MANIFEST is not root's alone; not trusting it"
  fi
  old_manifest=$(cat "$D$MANIFEST")
fi
in_old_manifest() {
  printf '%s\n' "$old_manifest" | grep -qxF "$1"
}
# Never overwrite a file this script did not install.
for f in "$BINDIR/hpcq" "$SBINDIR/hpcqd" "$UNIT"; do
  if [ -e "$D$f" ] || [ -L "$D$f" ]; then
    in_old_manifest "file $f" || die "$D$f exists and was not installed by this script; remove it first"
  fi
done

# Directories created here (not existing before) are recorded, parents first, so that uninstall
# removes them again (when empty) and nothing that was there before. Not when staging: what a
# staging directory lacks says nothing about the node the package will be installed on.
created=$(printf '%s\n' "$old_manifest" | grep '^dir ' || true)
make_dir() {
  missing=
  d=$1
  while [ "$d" != / ] && [ ! -d "$D$d" ]; do
    missing="dir $d
$missing"
    d=$(dirname "$d")
  done
  mkdir -p "$D$1"
  [ -z "$missing" ] || [ -n "$D" ] || created="$created
${missing%
}"
}
make_dir "$PREFIX/lib"
make_dir "$BINDIR"
make_dir "$SBINDIR"
make_dir "$UNITDIR"

# Everything is assembled next to its final place, then renamed into it: an upgrade never writes
# into files in use (a running supervisor's binary cannot be overwritten, ETXTBSY), and a failed
# install leaves the previous one as it was.
stage=$(mktemp -d "$D$PREFIX/lib/.hpcq-install.XXXXXX")
cleanup() {
  rm -rf "$stage"
  rm -f "$D$BINDIR/.hpcq.tmp.$$" "$D$SBINDIR/.hpcqd.tmp.$$" "$D$UNIT.tmp.$$"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

echo "install-service: copying the package to $D$LIBDIR"
cp -R "$src/package.json" "$src/proto" "$stage/"
cp -R "$src/dist" "$stage/dist"
rm -rf "$stage/dist/bench" # benchmarks are for the checkout
mkdir "$stage/config"
cp "$src/config/hpcqd.yaml" "$stage/config/"
cp "$src/scripts/uninstall-service.sh" "$stage/uninstall-service.sh"
# Production dependencies only, as npm resolved them in the checkout (nothing is downloaded). Each
# top-level package is copied whole: what is nested below it belongs to it.
deps=$(cd "$src" && npm ls --omit=dev --all --parseable) ||
  die "npm ls failed in $src: run npm ci there first"
printf '%s\n' "$deps" | while IFS= read -r dir; do
  rel=${dir#"$src"/}
  case $rel in
    node_modules/@*/*/*) continue ;; # nested below a scoped package
    node_modules/@*/*) ;;
    node_modules/*/*) continue ;; # nested below a package
    node_modules/*) ;;
    *) continue ;; # the project itself
  esac
  [ ! -L "$dir" ] || die "$rel is a link (npm link?); install from a checkout made by npm ci"
  mkdir -p "$stage/$(dirname "$rel")"
  cp -R "$dir" "$stage/$rel"
done
[ -d "$stage/node_modules/@grpc/grpc-js" ] || die "the production dependencies were not copied"

# hpcqd needs settings made before Node starts (MALLOC_ARENA_MAX, the libuv pool size, V8 flags).
# They are taken from the built process-tuning.js, the one place that defines them, so that this
# wrapper stays in step with hpcqd's own first line and with `hpcq daemon`.
tuning=$("$NODE" --input-type=module -e '
  const { HPCQD_ENV, HPCQD_NODE_FLAGS } = await import(process.argv[1]);
  const plain = (s) => /^[A-Za-z0-9_.=+-]+$/.test(s);
  for (const [k, v] of Object.entries(HPCQD_ENV)) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k) || !plain(v)) throw new Error(`unexpected setting ${k}=${v}`);
    console.log(`${k}=${v}; export ${k}`);
  }
  if (!HPCQD_NODE_FLAGS.every(plain)) throw new Error(`unexpected node flags ${HPCQD_NODE_FLAGS}`);
  console.log(`FLAGS ${HPCQD_NODE_FLAGS.join(" ")}`);
' "$stage/dist/daemon/process-tuning.js") || die "could not read hpcqd's process settings"
tuning_env=$(printf '%s\n' "$tuning" | grep -v '^FLAGS' || true)
tuning_flags=$(printf '%s\n' "$tuning" | sed -n 's/^FLAGS //p')

# The unit: config/hpcqd.service with this installation's hpcqd and state directory.
state_args=
state_dir_line="StateDirectory=hpcq"
if [ "$STATE_DIR" != /var/lib/hpcq ]; then
  state_args=" --state-dir $STATE_DIR"
  case $STATE_DIR in
    /var/lib/?*) state_dir_line="StateDirectory=${STATE_DIR#/var/lib/}" ;;
    # systemd makes state directories only below /var/lib; this script makes this one.
    *) state_dir_line="# $STATE_DIR is outside /var/lib: made by install-service.sh, not by systemd" ;;
  esac
fi
unit_text=$(sed -e "s|^ExecStart=/usr/local/sbin/hpcqd\$|ExecStart=$SBINDIR/hpcqd$state_args|" \
  -e "s|^StateDirectory=hpcq\$|$state_dir_line|" "$src/config/hpcqd.service")
printf '%s\n' "$unit_text" | grep -qxF "ExecStart=$SBINDIR/hpcqd$state_args" ||
  die "config/hpcqd.service has no line ExecStart=/usr/local/sbin/hpcqd to fill in"
if [ "${state_dir_line#\#}" != "$state_dir_line" ]; then
  unit_text=$(printf '%s\n' "$unit_text" | grep -v '^StateDirectoryMode=')
fi

# What uninstall removes: every file and directory written here, and the directories created.
# Its `keep` lines are only reported.
{
  echo "# installed by scripts/install-service.sh; read by uninstall-service.sh"
  echo "tree $LIBDIR"
  echo "file $BINDIR/hpcq"
  echo "file $SBINDIR/hpcqd"
  echo "file $UNIT"
  printf '%s\n' "$created" | grep '^dir ' | awk '!seen[$0]++' # parents first, each once
  # Made if missing, but never removed: they hold the node's jobs and the daemon's socket.
  echo "keep state $STATE_DIR"
  echo "keep run $RUN_DIR"
} >"$stage/.install-manifest"

# root's, readable by all, writable by nobody else, whatever the checkout's owners and modes were.
[ "$as_root" = 0 ] || chown -R 0:0 "$stage"
chmod -R u+rwX,go+rX,go-w "$stage"
chmod 755 "$stage"

# write_file PATH MODE: stdin to PATH, made beside it and renamed into place.
write_file() {
  tmp="$D$1.tmp.$$"
  cat >"$tmp"
  [ "$as_root" = 0 ] || chown 0:0 "$tmp"
  chmod "$2" "$tmp"
  mv -f "$tmp" "$D$1"
}

# Into place: the package first (the wrappers point into it), then the wrappers and the unit.
if [ -e "$D$LIBDIR" ]; then
  mv "$D$LIBDIR" "$stage.old"
  mv "$stage" "$D$LIBDIR"
  rm -rf "$stage.old"
else
  mv "$stage" "$D$LIBDIR"
fi

write_file "$BINDIR/hpcq" 755 <<EOF
#!/bin/sh
# hpcq, the client of hpcqd; installed by scripts/install-service.sh with the Node.js found then.
exec $NODE $LIBDIR/dist/cli/main.js "\$@"
EOF

write_file "$SBINDIR/hpcqd" 755 <<EOF
#!/bin/sh
# hpcqd, the hpcq daemon; installed by scripts/install-service.sh with the Node.js found then.
# Settings that must be in place before Node starts (dist/daemon/process-tuning.js):
$tuning_env
exec $NODE $tuning_flags $LIBDIR/dist/daemon/main.cjs "\$@"
EOF

printf '%s\n' "$unit_text" | write_file "$UNIT" 644

# An upgrade whose files moved (another --unit-dir): the old ones go.
printf '%s\n' "$old_manifest" | sed -n 's/^file //p' | while IFS= read -r f; do
  grep -qxF "file $f" "$D$MANIFEST" || rm -f "$D$f"
done

# The daemon makes both itself; made now so that they exist, with the right modes, before its
# first start. Existing ones are left as they are (the daemon checks the state directory's mode).
for spec in "$STATE_DIR 700" "$RUN_DIR 755"; do
  dir=${spec% *}
  if [ ! -d "$D$dir" ]; then
    mkdir -p "$D$dir"
    chmod "${spec#* }" "$D$dir"
  fi
done

echo "install-service: installed $BINDIR/hpcq, $SBINDIR/hpcqd (Node.js $NODE), $UNIT"
echo "  state directory $STATE_DIR, socket directory $RUN_DIR; uninstall: $LIBDIR/uninstall-service.sh"

if [ "$systemd_running" = 1 ]; then
  systemctl daemon-reload
  if [ "$enable" = 1 ]; then
    systemctl enable --now hpcqd.service
    echo "install-service: hpcqd.service enabled and started"
  fi
fi

if [ "$enable" = 0 ]; then
  cat <<EOF

Next steps:
  systemctl enable --now hpcqd      # start hpcqd now and at every boot
  hpcq queues                       # as any user: the node's queues
To run it on a configuration file (start from $LIBDIR/config/hpcqd.yaml):
  systemctl edit hpcqd              # [Service]  Environment=HPCQ_CONFIG=/etc/hpcq/hpcqd.yaml
EOF
  if [ "$systemd_running" = 0 ] && [ -z "$D" ]; then
    echo "(systemd is not running here: start $SBINDIR/hpcqd from your service manager, which must not kill its other processes when it stops it.)"
  fi
fi
