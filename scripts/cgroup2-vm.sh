#!/bin/bash
# Runs a command of this checkout inside a small KVM virtual machine whose kernel has only
# cgroup v2 (cgroup_no_v1=all), as production hosts do. Why: a test host may be cgroup v1 or
# hybrid, where the daemon's cgroup v2 limiter and the supervisor's cgroup.kill can only meet a
# fake cgroupfs; this gives them a real one.
#
#   cgroup2-vm.sh ensure            install the packages (as root) and build the initramfs
#   cgroup2-vm.sh run [--] CMD...   boot the VM, run CMD as root in the checkout, exit with its status
#
# The VM sees this machine's root file system read-only (9p) under a tmpfs overlay, so it runs
# the very same Node.js, node_modules and build as the host, may write anywhere (/etc, /home, /tmp)
# and writes nothing back. CMD's output comes out of the second serial port (our stdout; the first
# one carries the kernel's messages); its exit status comes back through a small writable share.
#
# It needs /dev/kvm. Where the CPU offers no hardware virtualization (no vmx/svm flag) that
# /dev/kvm belongs to a software hypervisor such as PVM, which runs only kernels built to be its
# guests: Debian's kernel hangs there, so the VM runs on QEMU's emulator (TCG) instead, the same
# kernel several times slower.
#
# Environment: HPCQ_VM_CACHE (default /var/cache/hpcq-test-vm) holds the initramfs;
# HPCQ_VM_TIMEOUT (seconds, default 600) bounds a run; HPCQ_VM_MEM_MB (default 2048);
# HPCQ_VM_CPUS (default 2); HPCQ_VM_ACCEL (kvm or tcg) overrides the choice above.
# HPCQ_TEST_REQUIRE_PRIVILEGED is passed on to CMD.
set -eu

checkout="$(cd "$(dirname "$0")/.." && pwd)"
cache="${HPCQ_VM_CACHE:-/var/cache/hpcq-test-vm}"
# xz-utils: newer Debian kernels ship their modules xz-compressed.
packages="qemu-system-x86 linux-image-amd64 busybox-static cpio kmod xz-utils"
# Modules the initramfs loads: the 9p share over virtio, and overlayfs for the writable layer.
modules="9p 9pnet_virtio virtio_pci overlay"

die() {
  echo "cgroup2-vm: $*" >&2
  exit 1
}

is_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_packages() {
  missing=""
  for p in $packages; do is_installed "$p" || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages:$missing (run 'ensure' as root to install them)"
  echo "cgroup2-vm: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The package lists are refreshed only when something is missing: a second run needs no network.
  apt-get update >&2
  # INITRD=No: Debian's kernel hook would build an initramfs for booting this machine, which the
  # VM does not use (it gets its own, below), and that takes a while.
  # shellcheck disable=SC2086
  INITRD=No apt-get install -y --no-install-recommends $missing >&2
}

# The newest kernel in /boot whose modules are installed (a kernel without them cannot load 9p).
pick_kernel() {
  for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -rV); do
    v="${k#/boot/vmlinuz-}"
    if [ -f "/lib/modules/$v/modules.dep" ]; then
      echo "$v"
      return 0
    fi
  done
  return 1
}

# The /init of the initramfs (busybox sh, PID 1).
init_script() {
  cat <<'EOF'
#!/bin/sh
# PID 1 of the test VM: mounts the host's root read-only under a tmpfs overlay, sets up cgroup v2,
# runs the command (read from the writable share) in a chroot, stores its status, powers off.
export PATH=/bin
fail() { echo "cgroup2-vm init: $*" >/dev/console; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod "/modules/$m" || fail "cannot load $m"; done
mkdir -p /lower /rw /root /out
# cache=loose: the share is read-only and nothing changes it during a run, so the guest may cache
# aggressively; Node reads thousands of files of node_modules.
opts=trans=virtio,version=9p2000.L,msize=512000,access=client
mount -t 9p -o "ro,cache=loose,$opts" hostroot /lower || fail "cannot mount the host root"
mount -t 9p -o "$opts" hpcqout /out || fail "cannot mount the output share"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /root || fail "cannot mount the overlay"
# Mounted again rather than moved: PID 1 keeps its /dev (ash opens /dev/null for background jobs).
mount -t proc proc /root/proc
mount -t sysfs sysfs /root/sys
mount -t devtmpfs devtmpfs /root/dev
mkdir -p /root/dev/pts /root/dev/shm
mount -t devpts devpts /root/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /root/dev/shm
# Fresh /tmp and /run, as after a boot: nothing of the host's lingers in them.
mount -t tmpfs -o mode=1777 tmpfs /root/tmp
mount -t tmpfs -o mode=0755 tmpfs /root/run
# The checkout may lie where the fresh /tmp hides it (a CI clone) or on another file system than
# the root: it is shared on its own and put back at its path, writable through an overlay too.
co="$(cat /out/checkout)"
mkdir -p /lowerco /rw/co-upper /rw/co-work "/root$co"
mount -t 9p -o "ro,cache=loose,$opts" checkout /lowerco || fail "cannot mount the checkout"
mount -t overlay overlay -o lowerdir=/lowerco,upperdir=/rw/co-upper,workdir=/rw/co-work "/root$co" || fail "cannot mount the checkout's overlay"
mount -t cgroup2 -o nsdelegate cgroup2 /root/sys/fs/cgroup || fail "cannot mount cgroup2"
# Like systemd: every controller enabled below the root, and the command in a leaf of its own
# (the daemon must work from there, not from the root cgroup).
cg=/root/sys/fs/cgroup
for c in cpu memory pids io cpuset; do
  grep -qw "$c" $cg/cgroup.controllers && echo "+$c" >$cg/cgroup.subtree_control
done
mkdir $cg/tests
ip link set lo up
hostname hpcq-test-vm
mkdir -p /root/run/hpcq-vm
cp /out/cmd /root/run/hpcq-vm/cmd
# The command's output goes to the second serial port (the first one carries the firmware's and
# the kernel's messages) through a pipe, so that it does not write to a terminal (no progress bars,
# no \n -> \r\n).
stty -F /dev/ttyS1 raw -echo
mkfifo /root/run/hpcq-vm/output
cat /root/run/hpcq-vm/output >/dev/ttyS1 &
copier=$!
# In the background, so that this shell, PID 1, reaps the orphans that end up with it while it
# waits (ash's wait reaps any child).
chroot /root /bin/sh -c 'echo $$ >/sys/fs/cgroup/tests/cgroup.procs && exec /bin/bash /run/hpcq-vm/cmd' >/root/run/hpcq-vm/output 2>&1 &
wait $!
status=$?
# Whatever the command left running (and which may hold the pipe open) ends here.
echo 1 >$cg/tests/cgroup.kill
wait $copier
echo $status >/out/status
sync
poweroff -f
EOF
}

build_initramfs() {
  kver="$(pick_kernel)" || die "no kernel with modules in /boot and /lib/modules (is linux-image-amd64 installed?)"
  busybox="$(command -v busybox)" || busybox=/bin/busybox
  [ -x "$busybox" ] || die "busybox is missing"
  # One module per modprobe call (further names would be taken as module parameters); a module
  # two of them need is listed once, at its first place.
  deps="$(for m in $modules; do modprobe -S "$kver" --show-depends "$m" || exit 1; done)" ||
    die "cannot resolve the modules $modules for kernel $kver"
  deps="$(echo "$deps" | awk '!seen[$0]++')"
  stamp="$(
    {
      echo "$kver"
      sha256sum "$busybox" "/boot/vmlinuz-$kver"
      echo "$deps"
      cat "$0" # this script: the init and how the image is put together
    } | sha256sum | cut -d' ' -f1
  )"
  if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -f "$cache/initramfs.gz" ] && [ -f "$cache/vmlinuz" ]; then
    return 0
  fi
  echo "cgroup2-vm: building the initramfs for kernel $kver in $cache" >&2
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  root="$tmp/root"
  mkdir -p "$root/bin" "$root/modules" "$root/proc" "$root/sys" "$root/dev"
  cp "$busybox" "$root/bin/busybox"
  for app in sh mount mkdir cat insmod chroot poweroff grep ip hostname sync echo stty mkfifo; do ln -s busybox "$root/bin/$app"; done
  init_script >"$root/init"
  chmod 755 "$root/init"
  # In dependency order, as modprobe prints them; "builtin" lines need nothing. Compressed modules
  # are unpacked, since busybox insmod loads plain ELF only.
  echo "$deps" | while read -r kind path _; do
    [ "$kind" = insmod ] || continue
    name="$(basename "$path")"
    case "$name" in
      *.ko.xz) xz -dc "$path" >"$root/modules/${name%.xz}"; name="${name%.xz}" ;;
      *.ko.zst) zstd -qdc "$path" >"$root/modules/${name%.zst}"; name="${name%.zst}" ;;
      *.ko.gz) gzip -dc "$path" >"$root/modules/${name%.gz}"; name="${name%.gz}" ;;
      *) cp "$path" "$root/modules/$name" ;;
    esac
    echo "$name" >>"$root/modules.list"
  done
  touch "$root/modules.list"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initramfs.gz"
  cp "/boot/vmlinuz-$kver" "$tmp/vmlinuz"
  mv -f "$tmp/initramfs.gz" "$tmp/vmlinuz" "$cache/"
  echo "$stamp" >"$cache/stamp"
  rm -rf "$tmp"
  trap - EXIT
}

ensure() {
  # One at a time: test runs of two checkouts may start together, and apt and the cache are shared.
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  install_packages
  build_initramfs
  exec 9>&-
}

# The kernel's messages (on the first serial port), for a VM that failed or hung.
console_tail() {
  echo "cgroup2-vm: the VM console's last lines:" >&2
  tail -n 40 "$out/console.log" | tr -d '\r' >&2
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "usage: $0 run [--] CMD..."
  if [ ! -e /dev/kvm ]; then
    die "/dev/kvm is missing: this machine cannot run KVM virtual machines (enable virtualization or nested virtualization)"
  fi
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || die "no read/write access to /dev/kvm (run as root or in group kvm)"
  ensure
  accel="${HPCQ_VM_ACCEL:-}"
  if [ -z "$accel" ]; then
    if grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
  fi
  case "$accel" in
    kvm) qemu_cpu="-accel kvm -cpu host" ;;
    tcg)
      echo "cgroup2-vm: /dev/kvm cannot run an unmodified kernel here (no vmx/svm); emulating the VM (TCG)" >&2
      qemu_cpu="-accel tcg,thread=multi -cpu max"
      ;;
    *) die "HPCQ_VM_ACCEL must be kvm or tcg, not $accel" ;;
  esac
  out="$(mktemp -d "${TMPDIR:-/tmp}/hpcq-vm.XXXXXX")"
  trap 'rm -rf "$out"' EXIT
  # The command, quoted for bash, run in the checkout with the caller's PATH (the same file
  # system, so the same node) and the test switches.
  {
    echo "cd $(printf '%q' "$checkout") || exit 1"
    echo "export PATH=$(printf '%q' "$PATH") HOME=/root LANG=C.UTF-8 TERM=dumb HPCQ_TEST_IN_CGROUP2_VM=1"
    [ -n "${HPCQ_TEST_REQUIRE_PRIVILEGED:-}" ] && echo "export HPCQ_TEST_REQUIRE_PRIVILEGED=$(printf '%q' "$HPCQ_TEST_REQUIRE_PRIVILEGED")"
    [ -n "${CI:-}" ] && echo "export CI=$(printf '%q' "$CI")"
    # No colour codes in the output the caller reads (CI alone would turn vitest's on).
    echo "export NO_COLOR=1"
    # Tests that wait for processes to start give an emulated VM more time.
    [ "$accel" = tcg ] && echo "export HPCQ_TEST_VM_EMULATED=1"
    echo "echo \"cgroup2-vm: booted in \$(cut -d' ' -f1 /proc/uptime) s\" >&2"
    printf 'exec'
    printf ' %q' "$@"
    echo
  } >"$out/cmd"
  printf '%s' "$checkout" >"$out/checkout"
  status=0
  # shellcheck disable=SC2086 # $qemu_cpu is several options
  # -nic none: no network, and no option ROM to look for. panic=-1 with -no-reboot: a kernel panic
  # ends qemu at once instead of hanging the run.
  timeout -k 10 "${HPCQ_VM_TIMEOUT:-600}" qemu-system-x86_64 \
    $qemu_cpu -m "${HPCQ_VM_MEM_MB:-2048}" -smp "${HPCQ_VM_CPUS:-2}" \
    -display none -monitor none -no-reboot -nic none \
    -serial "file:$out/console.log" -serial stdio \
    -kernel "$cache/vmlinuz" -initrd "$cache/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all rdinit=/init" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
    -virtfs "local,path=$checkout,mount_tag=checkout,security_model=passthrough,readonly=on,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=hpcqout,security_model=none" \
    </dev/null || status=$?
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    console_tail
    die "the VM did not finish within ${HPCQ_VM_TIMEOUT:-600} s; killed"
  fi
  [ "$status" = 0 ] || die "qemu failed (exit status $status)"
  if [ ! -s "$out/status" ]; then
    console_tail
    die "the VM powered off without the command's exit status (it crashed or failed to boot)"
  fi
  exit "$(cat "$out/status")"
}

case "${1:-}" in
  ensure) ensure ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 ensure | run [--] CMD..." ;;
esac
