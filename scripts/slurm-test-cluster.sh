#!/bin/sh
# A real single-node Slurm cluster for tests, installed from Debian's packages and run without
# systemd (as root). Everything of one cluster lives under a directory the caller gives, so a test
# can start it in a temp dir and throw the dir away afterwards.
#
#   slurm-test-cluster.sh install            apt-get install slurm-wlm and munge if missing
#   slurm-test-cluster.sh start <dir>        config, munge key, munged + slurmctld + slurmd; waits
#                                            until the node is idle. Prints the environment a
#                                            caller must export (KEY=value lines) on stdout.
#   slurm-test-cluster.sh stop <dir>         cancels jobs, stops the daemons, kills leftovers
#   slurm-test-cluster.sh stop-ctld <dir>    stops slurmctld only (controller outage tests)
#   slurm-test-cluster.sh start-ctld <dir>   starts slurmctld again and waits until it answers
#
# Only the KEY=value lines go to stdout; every diagnostic goes to stderr.
#
# Environment:
#   HPCQ_SLURM_MIN_JOB_AGE   MinJobAge (seconds a finished job stays visible to scontrol); Slurm's
#                            default (300) when unset
#   HPCQ_SLURMCTLD_PORT, HPCQ_SLURMD_PORT   ports (default 6817, 6818)
set -eu

# Root's daemons are in sbin, which a test runner's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"
export PATH

me=slurm-test-cluster
say() { echo "$me: $*" >&2; }
die() {
  say "$*"
  exit 1
}

usage() {
  echo "usage: $0 install | start <dir> | stop <dir> | stop-ctld <dir> | start-ctld <dir>" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------
# install

missing_tools() {
  for tool in slurmctld slurmd munged sbatch; do
    command -v "$tool" >/dev/null 2>&1 || return 0
  done
  return 1
}

cmd_install() {
  missing_tools || return 0
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and only root can install it (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null 2>&1 || die "Slurm is not installed and there is no apt-get to install it"
  # Without systemd, the packages' postinst would start the system munged (and try slurmd and
  # slurmctld) through invoke-rc.d, leaving daemons nobody stops. A policy-rc.d that answers 101
  # ("action forbidden") is Debian's documented way to keep package installs from starting
  # services; one is put in place only for the install, and only when the machine has none.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT INT TERM
  fi
  say "installing slurm-wlm and munge from Debian's packages"
  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >&2; }
  # The package lists of a fresh machine may be missing or stale: update only when needed.
  apt_install || { apt-get update >&2 && apt_install; }
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT INT TERM
  fi
  missing_tools && die "slurm-wlm and munge are installed but slurmctld, slurmd, munged or sbatch is still missing"
  say "installed $(dpkg-query -W -f '${Package} ${Version}' slurm-wlm)"
}

# ---------------------------------------------------------------------------------------------
# layout of one cluster under <dir>

set_paths() {
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || die "no directory $1"
  dir="$(cd "$1" && pwd)"
  conf="$dir/slurm.conf"
  munge_dir="$dir/munge"
  munge_socket="$munge_dir/munge.socket"
  munge_pid="$munge_dir/munged.pid"
  munge_log="$munge_dir/munged.log"
  ctld_pid="$dir/run/slurmctld.pid"
  slurmd_pid="$dir/run/slurmd.pid"
  ctld_log="$dir/log/slurmctld.log"
  slurmd_log="$dir/log/slurmd.log"
}

# Runs a Slurm command against this cluster. SLURM_CONF is not exported by the script itself:
# it marks the processes of the cluster (see cluster_processes), and the script's own must not
# carry the mark.
sl() { env SLURM_CONF="$conf" "$@"; }

# The pid in a pid file, if that process is alive and runs the expected program (a pid file can
# outlive its daemon, and the pid can be reused by an unrelated process).
live_pid() { # <pid file> <program>
  [ -s "$1" ] || return 1
  pid="$(tr -dc 0-9 <"$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
  "$2"*) echo "$pid" ;;
  *) return 1 ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# configuration

write_config() {
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem_mib=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 - 512))
  [ "$mem_mib" -gt 256 ] || mem_mib=256
  ctld_port="${HPCQ_SLURMCTLD_PORT:-6817}"
  slurmd_port="${HPCQ_SLURMD_PORT:-6818}"

  min_job_age=
  if [ -n "${HPCQ_SLURM_MIN_JOB_AGE:-}" ]; then
    min_job_age="MinJobAge=$HPCQ_SLURM_MIN_JOB_AGE"
  fi

  # Slurm confines jobs with cgroups when it can: proctrack/cgroup finds every process of a job
  # (even daemonized ones) and task/cgroup enforces the memory and core requests. Slurm (22.05 and
  # later) supports cgroup v1 and v2. Without writable freezer, memory and cpuset controllers (v1)
  # or a writable cgroup2 root (v2), as in many containers, proctrack/cgroup cannot work: then
  # processes are tracked through /proc (proctrack/linuxproc, which misses processes that
  # re-parent to init) and tasks are only bound to cores (task/affinity).
  if cgroups_usable; then
    proctrack=proctrack/cgroup
    taskplugin=task/affinity,task/cgroup
  else
    say "no usable cgroup controllers (see /proc/mounts): falling back to proctrack/linuxproc and task/affinity"
    proctrack=proctrack/linuxproc
    taskplugin=task/affinity
  fi

  cat >"$conf" <<EOF
# Single-node Slurm cluster for hpcq tests, written by scripts/slurm-test-cluster.sh.
ClusterName=hpcqtest
# The controller and the node are reached through the loopback address, so the cluster works
# whether or not the host name resolves.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# One root-run test cluster: both daemons run as root, as slurmd must to start jobs as their users.
SlurmUser=root
SlurmdUser=root

# Authentication through the munged of this cluster (its own key and socket under this directory).
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket

StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$ctld_log
SlurmdLogFile=$slurmd_log
SlurmctldDebug=info
SlurmdDebug=info

ProctrackType=$proctrack
TaskPlugin=$taskplugin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job that names no memory gets its cores' share of the node, not all of it (the default),
# which would run one job at a time whatever the free cores.
DefMemPerCPU=$((mem_mib / cpus))
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Debian's default mail program is not installed (--no-install-recommends).
MailProg=/bin/true

# Fast turnaround for tests: schedule a submitted job at once instead of batching submissions,
# and let the main scheduler run as often as events ask for it.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# An explicit (trivial) epilog: without one, slurmd waits for an epilog-complete round trip
# that makes every job take about a second longer to leave the node.
Epilog=/bin/true
$min_job_age

# A node that was down (e.g. slurmd restarted) comes back by itself once it registers; and an
# outage of either daemon is noticed within seconds, not minutes.
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=10
InactiveLimit=0
KillWait=5

NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  # Slurm reads cgroup.conf from the directory of slurm.conf.
  cat >"$dir/cgroup.conf" <<EOF
# Written by scripts/slurm-test-cluster.sh. Jobs get the memory and cores they asked for, no more.
ConstrainRAMSpace=yes
ConstrainCores=yes
EOF
  if [ -n "$cgroup_v2" ]; then
    # With cgroup v2, slurmd asks systemd (over dbus) for its cgroups; there is no systemd here,
    # so Slurm builds the hierarchy itself (an option Slurm has since 22.05, meant for testing).
    # Written only for v2: the cgroup v1 machines this was developed on do not need it.
    echo "IgnoreSystemd=yes" >>"$dir/cgroup.conf"
  fi
  chmod 644 "$conf" "$dir/cgroup.conf"
}

# A writable cgroup v2 root (sets cgroup_v2=1), or the v1 controllers Slurm's cgroup plugins use
# (freezer for tracking, memory and cpuset for the limits), each mounted and writable by root.
cgroup_v2=
cgroups_usable() {
  if awk '$2 == "/sys/fs/cgroup" && $3 == "cgroup2" { found = 1 } END { exit !found }' /proc/mounts; then
    [ -w /sys/fs/cgroup ] || return 1
    cgroup_v2=1
    return 0
  fi
  for controller in freezer memory cpuset; do
    mnt="$(awk -v c="$controller" '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) { print $2; exit } }' /proc/mounts)"
    [ -n "$mnt" ] && [ -w "$mnt" ] || return 1
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
# daemons

start_munged() {
  if live_pid "$munge_pid" munged >/dev/null; then return 0; fi
  mkdir -p "$munge_dir"
  # munged insists that its key is private to the user it runs as, and that the directories on
  # the way to its socket are not writable by others; the socket itself is open to every user
  # (it is how unprivileged sbatch and squeue get credentials).
  chmod 755 "$munge_dir"
  if [ ! -s "$munge_dir/munge.key" ]; then
    (umask 077 && head -c 1024 /dev/urandom >"$munge_dir/munge.key")
  fi
  chmod 400 "$munge_dir/munge.key"
  munged --key-file="$munge_dir/munge.key" --socket="$munge_socket" --pid-file="$munge_pid" \
    --log-file="$munge_log" --seed-file="$munge_dir/munged.seed" >&2 ||
    fail "munged did not start"
  # Check that a credential round trip works before the Slurm daemons depend on it.
  i=0
  until munge -n -S "$munge_socket" 2>/dev/null | unmunge -S "$munge_socket" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || fail "munged does not answer on $munge_socket"
    sleep 0.2
  done
}

start_slurmctld() {
  if live_pid "$ctld_pid" slurmctld >/dev/null; then return 0; fi
  # Daemonizes; keeps the job state of an earlier run in StateSaveLocation (start-ctld recovers).
  sl slurmctld -f "$conf" >&2 || fail "slurmctld did not start"
}

start_slurmd() {
  if live_pid "$slurmd_pid" slurmd >/dev/null; then return 0; fi
  # SLURM_CONF in slurmd's environment is inherited by every slurmstepd it starts: the mark by
  # which stop finds steps that outlived slurmd.
  sl slurmd -f "$conf" >&2 || fail "slurmd did not start"
}

# Whether a process exists and is not a zombie (whose parent has not reaped it yet).
alive() {
  case "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" in
  Z | X | "") return 1 ;;
  *) return 0 ;;
  esac
}

# Stops the daemon of a pid file: SIGTERM, then SIGKILL if it has not exited within 20 s.
stop_daemon() { # <pid file> <program>
  pid="$(live_pid "$1" "$2")" || {
    rm -f "$1"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  i=0
  while alive "$pid"; do
    i=$((i + 1))
    if [ "$i" -eq 100 ]; then
      say "$2 (pid $pid) ignores SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    [ "$i" -lt 150 ] || die "$2 (pid $pid) does not exit"
    sleep 0.2
  done
  rm -f "$1"
}

# The node's state as sinfo prints it (idle, allocated, mixed, ..., with a '*' appended while
# slurmd is not responding), or "" when slurmctld does not answer.
node_state() {
  sl sinfo -h -N -o %T 2>/dev/null | head -n 1 || true
}

wait_for() { # <seconds> <what> <states...>: until node_state is one of states
  limit=$1
  what=$2
  shift 2
  start=$(date +%s)
  while :; do
    state="$(node_state)"
    for want in "$@"; do
      [ "$state" = "$want" ] && return 0
    done
    [ $(($(date +%s) - start)) -lt "$limit" ] || fail "$what: node state is '${state:-no answer}' after ${limit}s"
    sleep 0.25
  done
}

# Fails loudly: the message and the end of every log of this cluster.
fail() {
  say "$*"
  for log in "$munge_log" "$ctld_log" "$slurmd_log"; do
    if [ -s "$log" ]; then
      echo "----- tail $log" >&2
      tail -n 30 "$log" >&2
    fi
  done
  exit 1
}

cmd_start() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1"
  set_paths "$@"
  [ "$(id -u)" = 0 ] || die "start needs root (slurmd starts jobs as their users)"
  missing_tools && die "Slurm is not installed: run '$0 install' first"
  mkdir -p "$dir/state" "$dir/spool" "$dir/run" "$dir/log"
  # Unprivileged users read slurm.conf and reach the munge socket; job outputs go elsewhere.
  chmod 755 "$dir"
  chmod 700 "$dir/state" "$dir/spool"
  write_config
  start_munged
  start_slurmctld
  start_slurmd
  # A fresh cluster has no jobs, so its node becomes idle; a cluster that was already running
  # (start is idempotent) may be busy.
  wait_for 60 "the cluster did not come up" idle mixed allocated completing
  say "cluster up: $(sl sinfo -h -N -o '%N %T %c CPUs %m MiB' | head -n 1) ($(sl sinfo -V))"
  echo "SLURM_CONF=$conf"
}

cmd_start_ctld() {
  set_paths "$@"
  [ -s "$conf" ] || die "no cluster in $dir (run start first)"
  start_slurmctld
  # The recovered node is "not responding" (state*) until slurmd registers again.
  wait_for 60 "slurmctld did not come back" idle allocated mixed completing
}

cmd_stop_ctld() {
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || return 0 # nothing was started there
  set_paths "$@"
  stop_daemon "$ctld_pid" slurmctld
}

# The slurmstepd processes of this cluster (marked by SLURM_CONF, inherited from slurmd) and all
# their descendants: what remains of jobs once the daemons are gone.
cluster_processes() {
  steps=
  for env in /proc/[0-9]*/environ; do
    pid="${env#/proc/}"
    pid="${pid%/environ}"
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] || continue
    # (cat, not a redirection: the process may exit meanwhile, and the shell would complain.)
    if cat "$env" 2>/dev/null | tr '\0' '\n' | grep -qxF "SLURM_CONF=$conf"; then steps="$steps $pid"; fi
  done
  [ -n "$steps" ] || return 0
  # pid and parent pid of every process; then the closure of the steps under "is a child of".
  for stat in /proc/[0-9]*/stat; do
    # The command name (field 2) may contain spaces: take the fields after its closing ')'.
    sed -n 's/^\([0-9]*\) (.*) [A-Za-z] \([0-9]*\) .*/\1 \2/p' "$stat" 2>/dev/null || true
  done | awk -v steps="$steps" '
    { parent[$1] = $2 }
    END {
      n = split(steps, s, " "); for (i = 1; i <= n; i++) mark[s[i]] = 1
      do { grew = 0; for (p in parent) if (!(p in mark) && (parent[p] in mark)) { mark[p] = 1; grew = 1 } } while (grew)
      for (p in mark) print p
    }'
}

cmd_stop() {
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || return 0 # nothing was started there (or it is gone already)
  set_paths "$@"
  # Cancel jobs first so that slurmstepd cleans up (cgroups, outputs) the ordinary way.
  if live_pid "$ctld_pid" slurmctld >/dev/null; then
    jobs="$(sl squeue -h -o %A 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      sl scancel $jobs 2>/dev/null || true
      i=0
      while [ -n "$(sl squeue -h -o %A 2>/dev/null || true)" ] && [ "$i" -lt 50 ]; do
        i=$((i + 1))
        sleep 0.2
      done
    fi
  fi
  stop_daemon "$slurmd_pid" slurmd
  stop_daemon "$ctld_pid" slurmctld
  stop_daemon "$munge_pid" munged
  leftovers="$(cluster_processes)"
  if [ -n "$leftovers" ]; then
    say "killing leftover processes of the cluster: $(echo $leftovers)"
    # The job cgroups they are in (e.g. /slurm_<node>/uid_1001/job_7), removed once they are
    # empty: slurmstepd would have removed them, and the next cluster starts at job 1 again.
    job_cgroups="$(for pid in $leftovers; do sed -n 's|^[^:]*:[^:]*:\(/.*/job_[0-9]*\).*|\1|p' "/proc/$pid/cgroup" 2>/dev/null; done | sort -u)"
    # shellcheck disable=SC2086
    kill -KILL $leftovers 2>/dev/null || true
    for pid in $leftovers; do
      i=0
      while alive "$pid" && [ "$i" -lt 50 ]; do
        i=$((i + 1))
        sleep 0.1
      done
    done
    for cg in $job_cgroups; do
      for mnt in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts); do
        [ -d "$mnt$cg" ] && find "$mnt$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      done
    done
  fi
}

case "${1:-}" in
install) cmd_install ;;
start) shift && cmd_start "$@" ;;
stop) shift && cmd_stop "$@" ;;
stop-ctld) shift && cmd_stop_ctld "$@" ;;
start-ctld) shift && cmd_start_ctld "$@" ;;
*) usage ;;
esac
