/*
 * hpcq-supervisor: the per-job supervisor (what slurmstepd or a container shim is to their daemons).
 *
 * The daemon (Node) cannot act between fork and exec, so this small program does what must happen
 * there: it puts the job into its cgroups before any of the user's code runs, sets its rlimits,
 * drops to the user with initgroups (keeping supplementary groups), sets no_new_privs, opens the
 * output files and enters the working directory AS THE USER, and execs with exactly the given
 * environment and no inherited descriptors. It then stays alive as the job's reaper and watchdog:
 * it enforces the wall-time limit on a monotonic clock, handles cancel (SIGUSR1), kills every
 * leftover process when the job ends and records the outcome in an exit file that the daemon reads,
 * even if the daemon was killed and restarted in between.
 *
 * Protocol with the daemon (see src/exec/supervisor-process.ts; started by src/launcher/hpcq-launcher.c
 * for the daemon, or by supervisor-process.ts directly):
 *   stdout: exactly one line, "started <job_pid> <job_start_ticks>" or "failed <message>";
 *   DIR/<id>.sup: who the supervisor is (pid, start ticks, boot id), written before the job starts;
 *   DIR/<id>.exit: the outcome, written atomically once no process of the job is left;
 *   SIGUSR1: cancel the job (SIGTERM, SIGKILL after the grace period).
 * Options (values are separate arguments; the program and its arguments follow "--"):
 *   --job-id N --run-dir DIR --user NAME --uid N --gid N --cwd DIR --stdout PATH --stderr PATH
 *   [--umask OOOO] [--time-limit SECONDS] [--kill-grace SECONDS] [--launch-timeout SECONDS] [--go-fd FD]
 *   [--cgroup-procs FILE]... [--kill-cgroup2 DIR | --kill-cgroup1-freezer DIR]
 *   [--cgroup-mkdir DIR | --cgroup-write FILE=VALUE | --cgroup-write-optional FILE=VALUE]...
 *   [--account FILE]...
 *   [--rlimit NAME=SOFT[:HARD]]...  NAME: AS DATA CPU NPROC NOFILE FSIZE CORE; a value is a number
 *     in the kernel's unit or "unlimited"; HARD defaults to SOFT and must not be below it
 *   [--env KEY=VALUE]...  -- PROGRAM [ARG]...
 * The time limit counts from the supervisor's start, launch included. The launch (everything the
 * job's process does between fork and exec) has its own deadline, --launch-timeout (0: none): a
 * step that hangs (NSS in initgroups, an open on a hung filesystem) fails the launch with a message
 * naming the step instead of leaving the job starting for ever. SIGUSR1 during the launch cancels
 * it (recorded as cancelled, not as a launch failure); so does the time limit (recorded as timed out).
 * --go-fd FD: the daemon sets the job up while it is still storing the job as RUNNING. Everything
 * up to the exec is done, then the job waits for the byte 'g' on FD (the daemon's go: RUNNING is
 * durable); only then is the .sup file written and the program executed. FD ending without 'g'
 * (the daemon's abort, or its death) ends the launch with no run file written and nothing of the
 * job run: "failed aborted ..." on stdout. Whatever else ends the launch before the go (a failed
 * step, cancel, a deadline) is recorded only once the go comes.
 * --cgroup-mkdir / --cgroup-write / --cgroup-write-optional: the job's cgroup set-up, made in the
 * order given before the job is forked (so while the daemon is still storing the job as RUNNING):
 * a directory is created (an existing one is kept), a value written in one write(2). A failed
 * mkdir or write fails the launch with `cgroup set-up: ...` and the directories made are removed;
 * an optional write may fail (best-effort settings, files older kernels lack).
 * --account FILE: once the job's last process is gone, each FILE (the job's cgroup accounting:
 * memory peak, OOM kills, CPU time) is read and recorded in the exit file as
 * `account:<path>=<contents>` (both %XX-escaped); then each --cgroup-mkdir directory is removed
 * (rmdir) and the record says `cgroups_removed=1` if all are gone. Done here, in the job's own
 * process, so the daemon's one thread reads no cgroup file and removes no cgroup per job (what
 * slurmstepd does for slurmd);
 * whatever is left (a busy cgroup, an older supervisor) the daemon still removes itself.
 * Exit status: 0 once the exit file is written, 1 on an internal failure, 2 on a usage error.
 *
 * Deliberately libc only, single-threaded, no allocation after start-up beyond what opendir and
 * NSS (initgroups, in the child) do: it must stay tiny and predictable for the life of every job.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "percent-escape.h"

/* These numbers are shared by every Linux architecture; older libc headers may lack the names. */
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define MAX_ENV 4096        /* --env entries; more is refused (exit 2) rather than allocated */
#define MAX_CGROUPS 16      /* --cgroup-procs files */
#define MAX_RLIMITS 16      /* --rlimit entries */
#define MAX_SETUP 64        /* --cgroup-mkdir and --cgroup-write steps */
#define MAX_ACCOUNT 16      /* --account files */
#define ACCOUNT_MAX 2048    /* bytes read of one accounting file (cpu.stat is about 200) */
#define RECORD_MAX 16384    /* the exit record, accounting included */
#define MAX_DESC 4096       /* descendants signalled per sweep; later sweeps catch the rest */
#define MSG_MAX 1024        /* launch error message */
#define SWEEP_MS 250        /* re-kill interval once SIGKILL was decided (catches racing forks) */
#define CLEANUP_POLL_MS 100 /* reap/kill interval after the main process ended */
/* After the main process ended and all our descendants are reaped, how long we keep waiting for
 * cgroup members that are not our descendants (only root can put them there) before recording the
 * outcome anyway: a record with leftovers beats a job that never ends. */
#define FOREIGN_WAIT_MS 60000

struct rlimit_opt {
    const char *name;
    int resource;
    rlim_t soft, hard;
};

/* Parsed command line. Strings point into argv, which lives as long as the process. */
static struct {
    unsigned long long job_id;
    const char *run_dir, *user, *cwd, *out_path, *err_path, *uid_s, *gid_s, *umask_s;
    const char *time_limit_s, *kill_grace_s, *launch_timeout_s;
    uid_t uid;
    gid_t gid;
    mode_t umask;
    unsigned long long time_limit, kill_grace, launch_timeout;
    int go_fd; /* -1: no go to wait for */
    const char *cgroup_procs[MAX_CGROUPS];
    int n_cgroup_procs;
    const char *kill_cg2, *kill_freezer;
    struct setup_step {
        char kind; /* 'd' mkdir, 'w' write, 'o' optional write */
        const char *path, *value;
    } setup[MAX_SETUP];
    int n_setup;
    const char *account[MAX_ACCOUNT];
    int n_account;
    struct rlimit_opt rlimits[MAX_RLIMITS];
    int n_rlimits;
    char *env[MAX_ENV + 1];
    int n_env;
    char **prog; /* PROGRAM ARG... NULL, the tail of argv */
} opt = {.umask = 022, .kill_grace = 30, .go_fd = -1};

/* Paths derived once from the options, so the kill paths never format under pressure. */
static char cg_procs_path[PATH_MAX], cg_kill_path[PATH_MAX], freezer_state_path[PATH_MAX];

static pid_t self_pid, job_pid = -1;
static bool job_reaped, timed_out, cancelled;
static int job_status;
static long long start_ms, end_ms;
/* How the job's process entered its cgroups, for its exit record: "clone3" (created inside, cgroup
 * v2), "write" (joined after fork) or "none". */
static const char *cgroup_entry = "none";
/* The `account:` lines of the exit record and whether every --cgroup-mkdir directory is gone. */
static char account_lines[RECORD_MAX / 2];
static bool cgroups_removed;

/* ---------- small helpers ---------- */

static void __attribute__((noreturn, format(printf, 1, 2))) usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("hpcq-supervisor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    exit(2);
}

static long long clock_ms(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads up to size-1 bytes and NUL-terminates. Returns the length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len < size - 1) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* One write(2) of a short string, as cgroup control files want; -1 with errno on failure. */
static int write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = write_all(fd, s, strlen(s));
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Closes every descriptor >= from except `keep` (-1 for none). close_range needs Linux 5.9. */
static void close_fds_from(int from, int keep) {
    bool ok;
    if (keep >= from)
        ok = (keep == from || syscall(SYS_close_range, (unsigned)from, (unsigned)keep - 1, 0) == 0) &&
             syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) == 0;
    else
        ok = syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0;
    if (ok) return;
    /* Older kernel: close what /proc/self/fd lists (or, without /proc, a generous range). */
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        for (int fd = from; fd < 65536; fd++)
            if (fd != keep) close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= from && fd != keep && fd != dirfd(d)) close(fd);
    }
    closedir(d);
}

/* Parses /proc/<pid>/stat. The command name may contain spaces and ')', so fields are counted
 * after the LAST ')': token 0 is field 3 (state), token 1 field 4 (ppid), token 19 field 22. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start_ticks) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof buf) <= 0) return -1;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ') p++;
        if (!*p) return -1;
        if (field == 3 && state) *state = *p;
        if (field == 4 && ppid) *ppid = (pid_t)strtol(p, NULL, 10);
        if (field == 22 && start_ticks) *start_ticks = strtoull(p, NULL, 10);
        while (*p && *p != ' ') p++;
    }
    return 0;
}

/* ---------- argument parsing ---------- */

static unsigned long long parse_uint(const char *name, const char *s, int base, unsigned long long max) {
    char *end;
    if (!*s || !strchr(base == 8 ? "01234567" : "0123456789", *s)) usage("%s: not a number: '%s'", name, s);
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end || v > max) usage("%s: invalid value '%s'", name, s);
    return v;
}

static const struct {
    const char *name;
    int resource;
} RLIMITS[] = {{"AS", RLIMIT_AS},       {"DATA", RLIMIT_DATA},     {"CPU", RLIMIT_CPU}, {"NPROC", RLIMIT_NPROC},
               {"NOFILE", RLIMIT_NOFILE}, {"FSIZE", RLIMIT_FSIZE}, {"CORE", RLIMIT_CORE}};

/* One rlimit value: a decimal number or "unlimited". */
static rlim_t parse_rlim_value(const char *arg, const char *v) {
    if (!strcmp(v, "unlimited")) return RLIM_INFINITY;
    if (!*v) usage("--rlimit: missing value in '%s'", arg);
    return (rlim_t)parse_uint("--rlimit", v, 10, RLIM_INFINITY - 1);
}

/* NAME=SOFT or NAME=SOFT:HARD. Without HARD the hard limit equals the soft one, so the job cannot
 * raise it. A separate HARD (>= SOFT) lets the kernel warn first: RLIMIT_CPU sends SIGXCPU at the
 * soft limit and SIGKILL at the hard one (with soft = hard Linux sends SIGKILL alone). */
static void parse_rlimit(const char *s) {
    const char *eq = strchr(s, '=');
    if (!eq) usage("--rlimit: expected NAME=SOFT[:HARD], got '%s'", s);
    if (opt.n_rlimits == MAX_RLIMITS) usage("too many --rlimit options");
    for (size_t i = 0; i < sizeof RLIMITS / sizeof RLIMITS[0]; i++) {
        if (strlen(RLIMITS[i].name) == (size_t)(eq - s) && !strncmp(s, RLIMITS[i].name, (size_t)(eq - s))) {
            for (int j = 0; j < opt.n_rlimits; j++)
                if (opt.rlimits[j].resource == RLIMITS[i].resource) usage("--rlimit %s given twice", RLIMITS[i].name);
            char soft_s[32];
            const char *colon = strchr(eq + 1, ':');
            size_t soft_len = colon ? (size_t)(colon - (eq + 1)) : strlen(eq + 1);
            if (soft_len >= sizeof soft_s) usage("--rlimit: invalid value in '%s'", s);
            memcpy(soft_s, eq + 1, soft_len);
            soft_s[soft_len] = '\0';
            struct rlimit_opt *r = &opt.rlimits[opt.n_rlimits++];
            r->name = RLIMITS[i].name;
            r->resource = RLIMITS[i].resource;
            r->soft = parse_rlim_value(s, soft_s);
            r->hard = colon ? parse_rlim_value(s, colon + 1) : r->soft;
            /* RLIM_INFINITY is the largest rlim_t, so this also refuses "unlimited:<number>". */
            if (r->hard < r->soft) usage("--rlimit: hard limit below the soft limit in '%s'", s);
            return;
        }
    }
    usage("--rlimit: unknown limit in '%s' (AS, DATA, CPU, NPROC, NOFILE, FSIZE, CORE)", s);
}

/* Single-valued options may appear once: a repeated one means the caller built argv wrongly. */
static void set_once(const char **slot, const char *name, const char *v) {
    if (*slot) usage("%s given twice", name);
    *slot = v;
}

static void require_abs(const char *name, const char *v) {
    if (!v) usage("missing required option %s", name);
    if (v[0] != '/') usage("%s must be an absolute path: '%s'", name, v);
    if (strlen(v) >= PATH_MAX - 32) usage("%s is too long", name);
}

static void parse_args(int argc, char **argv) {
    const char *job_id_s = NULL;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) break;
        static const char *const known[] = {"--job-id", "--run-dir", "--user", "--uid", "--gid", "--cwd",
                                            "--stdout", "--stderr", "--umask", "--time-limit", "--kill-grace",
                                            "--cgroup-procs", "--kill-cgroup2", "--kill-cgroup1-freezer",
                                            "--rlimit", "--env", "--launch-timeout", "--go-fd", "--account",
                                            "--cgroup-mkdir", "--cgroup-write", "--cgroup-write-optional", NULL};
        int k = 0;
        while (known[k] && strcmp(known[k], a)) k++;
        if (!known[k]) usage("unknown option '%s'", a);
        if (i + 1 >= argc) usage("option %s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--job-id")) set_once(&job_id_s, a, v);
        else if (!strcmp(a, "--run-dir")) set_once(&opt.run_dir, a, v);
        else if (!strcmp(a, "--user")) set_once(&opt.user, a, v);
        else if (!strcmp(a, "--uid")) set_once(&opt.uid_s, a, v);
        else if (!strcmp(a, "--gid")) set_once(&opt.gid_s, a, v);
        else if (!strcmp(a, "--cwd")) set_once(&opt.cwd, a, v);
        else if (!strcmp(a, "--stdout")) set_once(&opt.out_path, a, v);
        else if (!strcmp(a, "--stderr")) set_once(&opt.err_path, a, v);
        else if (!strcmp(a, "--umask")) set_once(&opt.umask_s, a, v);
        else if (!strcmp(a, "--time-limit")) set_once(&opt.time_limit_s, a, v);
        else if (!strcmp(a, "--kill-grace")) set_once(&opt.kill_grace_s, a, v);
        else if (!strcmp(a, "--launch-timeout")) set_once(&opt.launch_timeout_s, a, v);
        else if (!strcmp(a, "--go-fd")) {
            if (opt.go_fd >= 0) usage("--go-fd given twice");
            opt.go_fd = (int)parse_uint("--go-fd", v, 10, 1023);
            if (opt.go_fd < 3) usage("--go-fd must be 3 or above");
        }
        else if (!strcmp(a, "--kill-cgroup2")) set_once(&opt.kill_cg2, a, v);
        else if (!strcmp(a, "--kill-cgroup1-freezer")) set_once(&opt.kill_freezer, a, v);
        else if (!strcmp(a, "--rlimit")) parse_rlimit(v);
        else if (!strcmp(a, "--cgroup-mkdir") || !strcmp(a, "--cgroup-write") || !strcmp(a, "--cgroup-write-optional")) {
            if (opt.n_setup == MAX_SETUP) usage("too many cgroup set-up options");
            struct setup_step *st = &opt.setup[opt.n_setup++];
            st->kind = !strcmp(a, "--cgroup-mkdir") ? 'd' : !strcmp(a, "--cgroup-write") ? 'w' : 'o';
            st->path = v;
            if (st->kind != 'd') {
                /* FILE=VALUE: values never hold '=', paths might (a configured parent name). */
                char *eq = strrchr((char *)v, '=');
                if (!eq) usage("%s: expected FILE=VALUE, got '%s'", a, v);
                *eq = '\0';
                st->value = eq + 1;
            }
            require_abs(a, st->path);
        } else if (!strcmp(a, "--account")) {
            if (opt.n_account == MAX_ACCOUNT) usage("too many --account options");
            require_abs(a, v);
            opt.account[opt.n_account++] = v;
        } else if (!strcmp(a, "--cgroup-procs")) {
            if (opt.n_cgroup_procs == MAX_CGROUPS) usage("too many --cgroup-procs options");
            require_abs(a, v);
            opt.cgroup_procs[opt.n_cgroup_procs++] = v;
        } else { /* --env */
            if (opt.n_env == MAX_ENV) usage("too many --env options");
            if (!strchr(v, '=') || v[0] == '=') usage("--env: expected KEY=VALUE, got '%s'", v);
            opt.env[opt.n_env++] = (char *)v;
        }
    }
    if (i >= argc) usage("missing '--' before the program");
    if (i + 1 >= argc || !argv[i + 1][0]) usage("missing program after '--'");
    opt.prog = &argv[i + 1];
    opt.env[opt.n_env] = NULL;

    if (!job_id_s) usage("missing required option --job-id");
    opt.job_id = parse_uint("--job-id", job_id_s, 10, 1ULL << 53);
    if (!opt.user || !opt.user[0] || strchr(opt.user, '/')) usage("missing or invalid --user");
    if (!opt.uid_s || !opt.gid_s) usage("missing required option --uid or --gid");
    opt.uid = (uid_t)parse_uint("--uid", opt.uid_s, 10, 0xfffffffeULL);
    opt.gid = (gid_t)parse_uint("--gid", opt.gid_s, 10, 0xfffffffeULL);
    require_abs("--run-dir", opt.run_dir);
    require_abs("--cwd", opt.cwd);
    require_abs("--stdout", opt.out_path);
    require_abs("--stderr", opt.err_path);
    if (opt.umask_s) opt.umask = (mode_t)parse_uint("--umask", opt.umask_s, 8, 0777);
    /* Ten years is far beyond any queue's limit and keeps the millisecond arithmetic exact. */
    if (opt.time_limit_s) opt.time_limit = parse_uint("--time-limit", opt.time_limit_s, 10, 315360000ULL);
    if (opt.kill_grace_s) opt.kill_grace = parse_uint("--kill-grace", opt.kill_grace_s, 10, 86400ULL);
    if (opt.launch_timeout_s) opt.launch_timeout = parse_uint("--launch-timeout", opt.launch_timeout_s, 10, 86400ULL);
    if (opt.kill_cg2 && opt.kill_freezer) usage("--kill-cgroup2 and --kill-cgroup1-freezer are exclusive");
    const char *kill_dir = opt.kill_cg2 ? opt.kill_cg2 : opt.kill_freezer;
    if (kill_dir) {
        require_abs(opt.kill_cg2 ? "--kill-cgroup2" : "--kill-cgroup1-freezer", kill_dir);
        snprintf(cg_procs_path, sizeof cg_procs_path, "%s/cgroup.procs", kill_dir);
        snprintf(cg_kill_path, sizeof cg_kill_path, "%s/cgroup.kill", kill_dir);
        snprintf(freezer_state_path, sizeof freezer_state_path, "%s/freezer.state", kill_dir);
    }
}

/* ---------- run files ---------- */

/* Writes DIR/<id>.<suffix> atomically: temp file, rename. A reader (the daemon, possibly after a
 * crash of either side) sees the whole record or none.
 * No fsync, on purpose: the page cache survives any crash of the daemon or the supervisor, which
 * is what these records are for. Only a crash of the whole node loses them, and that also kills
 * the job and changes the boot id, so the daemon reports NODE_FAIL (never success) either way.
 * Measured: the two fsyncs of the file and the directory cost 3-6 ms per record, more than the
 * rest of a short job's launch. */
static int write_run_file(const char *suffix, const char *content) {
    char tmp[PATH_MAX], final[PATH_MAX];
    if (snprintf(final, sizeof final, "%s/%llu.%s", opt.run_dir, opt.job_id, suffix) >= (int)sizeof final ||
        snprintf(tmp, sizeof tmp, "%s.tmp", final) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    /* Someone removed the run directory: it is the daemon's (under its 0700 state directory), so
     * it is made again rather than the job's outcome lost. */
    if (fd < 0 && errno == ENOENT && (mkdir(opt.run_dir, 0700) == 0 || errno == EEXIST))
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (write_all(fd, content, strlen(content)) < 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, final) < 0) return -1;
    return 0;
}

static int write_exit_file(const char *status, int exit_code, int sig, const char *error) {
    struct rusage ru = {0};
    getrusage(RUSAGE_CHILDREN, &ru);
    static char buf[RECORD_MAX];
    int n = snprintf(buf, sizeof buf,
                     "status=%s\nexit_code=%d\nsignal=%d\ntimed_out=%d\ncancelled=%d\njob_pid=%d\n"
                     "start_ms=%lld\nend_ms=%lld\nutime_us=%lld\nstime_us=%lld\nmaxrss_kb=%ld\ncgroup_entry=%s\n"
                     "cgroups_removed=%d\n%s",
                     status, exit_code, sig, timed_out, cancelled, (int)job_pid, start_ms, end_ms,
                     (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
                     (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss, cgroup_entry,
                     cgroups_removed, account_lines);
    if (error && n > 0 && n < (int)sizeof buf) snprintf(buf + n, sizeof buf - (size_t)n, "error=%s\n", error);
    /* The exit file is the job's only record once the daemon is gone: a full disk or a transient
     * error must not lose it, so keep trying for a while before giving up. */
    for (int attempt = 0; attempt < 60; attempt++) {
        if (write_run_file("exit", buf) == 0) return 0;
        sleep_ms(1000);
    }
    return -1;
}

/* Launch failure: the record is written BEFORE the "failed" line, so a daemon that saw the line
 * and cleans up the run files cannot race with a late exit file. */
static int launch_failed(const char *msg) {
    end_ms = clock_ms(CLOCK_REALTIME);
    int rc = write_exit_file("launch_failed", 127, 0, msg);
    dprintf(1, "failed %s\n", msg);
    return rc < 0 ? 1 : 0;
}

/* DIR/<id>.sup: who this supervisor is, written before the job's program can run. */
static int write_sup_file(void) {
    unsigned long long self_start = 0;
    proc_stat(self_pid, NULL, NULL, &self_start);
    char boot_id[64] = "";
    read_file("/proc/sys/kernel/random/boot_id", boot_id, sizeof boot_id);
    boot_id[strcspn(boot_id, "\r\n")] = '\0';
    char sup[256];
    snprintf(sup, sizeof sup, "supervisor_pid=%d\nsupervisor_start_ticks=%llu\nboot_id=%s\n", (int)self_pid,
             self_start, boot_id);
    return write_run_file("sup", sup);
}

/* ---------- the job child (between fork and exec) ---------- */

/* The steps of the job's process between fork and exec. The child writes each step's byte to the
 * status pipe as it begins it, so a launch that hangs can be reported by the step it hangs in. */
#define STEP_CGROUP 'c'
#define STEP_RLIMITS 'r'
#define STEP_USER 'p'
#define STEP_GROUPS 'g'
#define STEP_UID 'u'
#define STEP_STDOUT 'o'
#define STEP_STDERR 'e'
#define STEP_CWD 'd'
#define STEP_EXEC 'x'
#define STEP_WAIT_GO 'w'
/* Follows the last step byte when the launch failed; the message runs to the end of the pipe. */
#define STEP_FAILED '!'

static void step(int errfd, char code) {
    write_all(errfd, &code, 1);
}

/* What the job's process was doing at `code`, for a message about a launch that hung there. */
static void describe_step(char code, char *buf, size_t size) {
    switch (code) {
    case STEP_CGROUP: snprintf(buf, size, "joining its cgroups (%s)", opt.n_cgroup_procs ? opt.cgroup_procs[0] : ""); break;
    case STEP_RLIMITS: snprintf(buf, size, "setting its resource limits"); break;
    case STEP_USER: snprintf(buf, size, "looking up user %s", opt.user); break;
    case STEP_GROUPS: snprintf(buf, size, "setting its supplementary groups (initgroups %s)", opt.user); break;
    case STEP_UID: snprintf(buf, size, "switching to uid %u", (unsigned)opt.uid); break;
    case STEP_STDOUT: snprintf(buf, size, "opening stdout %s", opt.out_path); break;
    case STEP_STDERR: snprintf(buf, size, "opening stderr %s", opt.err_path); break;
    case STEP_CWD: snprintf(buf, size, "entering its working directory %s", opt.cwd); break;
    case STEP_EXEC: snprintf(buf, size, "executing %s", opt.prog[0]); break;
    case STEP_WAIT_GO: snprintf(buf, size, "waiting for the daemon to store the job as running"); break;
    default: snprintf(buf, size, "before its first step"); break;
    }
}

static void __attribute__((noreturn, format(printf, 3, 4))) child_fail(int errfd, int err, const char *fmt, ...) {
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    if (err) snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(err));
    step(errfd, STEP_FAILED);
    write_all(errfd, msg, strlen(msg));
    _exit(127);
}


/* Opens a job's output file (as the user, in the child) without ever blocking, and refuses anything
 * but a regular file or /dev/null: a FIFO, socket or device there could wedge or misdirect the job. */
static int open_output(int errfd, const char *what, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0666);
    if (fd < 0 && errno == ENXIO) child_fail(errfd, 0, "%s %s is a FIFO or socket, not a regular file", what, path);
    if (fd < 0) child_fail(errfd, errno, "open %s %s", what, path);
    struct stat st;
    if (fstat(fd, &st) < 0) child_fail(errfd, errno, "fstat %s %s", what, path);
    if (!S_ISREG(st.st_mode) && strcmp(path, "/dev/null") != 0) {
        const char *kind = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : S_ISDIR(st.st_mode) ? "a directory" : "not a regular file";
        child_fail(errfd, 0, "%s %s is %s, not a regular file", what, path, kind);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) child_fail(errfd, errno, "fcntl %s %s", what, path);
    return fd;
}

/* clone3 and its arguments; older libc headers may lack them (the numbers are the kernel's). */
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define HPCQ_CLONE_INTO_CGROUP 0x200000000ULL
struct hpcq_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* Creates the job's process. On cgroup v2 it is created inside its cgroup (clone3 with
 * CLONE_INTO_CGROUP): no running process is migrated, which is cheaper for the kernel and leaves
 * no moment in which the job's process counts in the supervisor's cgroup. On cgroup v1, or a
 * kernel without it (before 5.7): fork, and the child joins its cgroups itself. Like fork (no new
 * stack): the child returns 0 here. The supervisor is single-threaded, so no lock of libc can be
 * held across it. */
static pid_t fork_job(void) {
    size_t len = opt.n_cgroup_procs == 1 ? strlen(opt.cgroup_procs[0]) : 0;
    const char *suffix = "/cgroup.procs";
    if (opt.kill_cg2 && len > strlen(suffix) && len < PATH_MAX && strcmp(opt.cgroup_procs[0] + len - strlen(suffix), suffix) == 0) {
        char dir[PATH_MAX];
        memcpy(dir, opt.cgroup_procs[0], len - strlen(suffix));
        dir[len - strlen(suffix)] = '\0';
        int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cfd >= 0) {
            struct hpcq_clone_args args;
            memset(&args, 0, sizeof args);
            args.flags = HPCQ_CLONE_INTO_CGROUP;
            args.exit_signal = SIGCHLD;
            args.cgroup = (uint64_t)cfd;
            long pid = syscall(SYS_clone3, &args, sizeof args);
            int err = errno;
            close(cfd);
            if (pid >= 0) {
                cgroup_entry = "clone3";
                return (pid_t)pid;
            }
            errno = err; /* ENOSYS, E2BIG or EINVAL on an older kernel: fork below */
        }
    }
    if (opt.n_cgroup_procs) cgroup_entry = "write";
    return fork();
}

/* `gofd`: where the supervisor sends 'g' once the daemon's go came (-1: no go to wait for). */
static void __attribute__((noreturn)) run_child(int errfd, int gofd) {
    /* a. Own session and process group: signals meant for the supervisor's group miss the job, and
     * the job can be signalled as one group. Default signal handling, like any fresh process. */
    if (setsid() < 0) child_fail(errfd, errno, "setsid");
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* b. Join the job's cgroups while still root and before any code of the user runs: whatever
     * the job does first (allocate, fork) is already accounted and limited. "0" means "myself". */
    if (opt.n_cgroup_procs && strcmp(cgroup_entry, "clone3") != 0) {
        step(errfd, STEP_CGROUP);
        for (int i = 0; i < opt.n_cgroup_procs; i++)
            if (write_file(opt.cgroup_procs[i], "0") < 0) child_fail(errfd, errno, "join cgroup %s", opt.cgroup_procs[i]);
    }

    /* c. Limits; the job can raise a soft limit only up to its hard one, which is the soft one
     * unless --rlimit gave NAME=SOFT:HARD. Set as root so they may exceed the supervisor's own
     * hard limits. */
    if (opt.n_rlimits) step(errfd, STEP_RLIMITS);
    for (int i = 0; i < opt.n_rlimits; i++) {
        struct rlimit rl = {opt.rlimits[i].soft, opt.rlimits[i].hard};
        if (setrlimit(opt.rlimits[i].resource, &rl) < 0) child_fail(errfd, errno, "setrlimit %s", opt.rlimits[i].name);
    }

    /* d. Become the user. Never root; initgroups (unlike Node's spawn({uid,gid})) keeps the user's
     * supplementary groups and drops ours. setuid(0) succeeding afterwards would mean a saved or
     * effective root id survived, so that is checked rather than assumed. */
    if (opt.uid == 0) child_fail(errfd, 0, "refusing to run a job as root (uid 0)");
    if (geteuid() == 0) {
        step(errfd, STEP_USER);
        struct passwd *pw = getpwnam(opt.user);
        if (!pw) child_fail(errfd, 0, "user %s does not exist", opt.user);
        if (pw->pw_uid != opt.uid)
            child_fail(errfd, 0, "user %s has uid %u, not %u", opt.user, (unsigned)pw->pw_uid, (unsigned)opt.uid);
        step(errfd, STEP_GROUPS);
        if (initgroups(opt.user, opt.gid) < 0) child_fail(errfd, errno, "initgroups %s", opt.user);
        step(errfd, STEP_UID);
        if (setresgid(opt.gid, opt.gid, opt.gid) < 0) child_fail(errfd, errno, "setresgid %u", (unsigned)opt.gid);
        if (setresuid(opt.uid, opt.uid, opt.uid) < 0) child_fail(errfd, errno, "setresuid %u", (unsigned)opt.uid);
        if (setuid(0) == 0) child_fail(errfd, 0, "privileges could not be dropped");
    } else if (getuid() != opt.uid || geteuid() != opt.uid) {
        /* An unprivileged supervisor can only run jobs as its own user. */
        child_fail(errfd, 0, "supervisor runs as uid %u and cannot run a job as uid %u", (unsigned)geteuid(),
                   (unsigned)opt.uid);
    }

    /* e. No setuid binary or file capability can give the job more than the user has. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(errfd, errno, "PR_SET_NO_NEW_PRIVS");
    umask(opt.umask);

    /* f. Open the outputs as the user: a symlink in a parent directory can then only lead where the
     * user may write anyway, and O_NOFOLLOW refuses a symlink as the last component (ELOOP).
     * O_NONBLOCK: a FIFO without a reader would otherwise block this open for ever (and with it
     * the launch); only regular files (and /dev/null) are taken as outputs. */
    step(errfd, STEP_STDOUT);
    int out = open_output(errfd, "stdout", opt.out_path);
    int err = out;
    if (strcmp(opt.out_path, opt.err_path) != 0) step(errfd, STEP_STDERR), err = open_output(errfd, "stderr", opt.err_path);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0) child_fail(errfd, errno, "open /dev/null");
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) child_fail(errfd, errno, "dup2");

    /* g. Enter the working directory as the user: a directory the user cannot enter fails here
     * instead of being entered with root's rights. */
    step(errfd, STEP_CWD);
    if (chdir(opt.cwd) < 0) child_fail(errfd, errno, "chdir %s", opt.cwd);

    /* h. Only 0, 1, 2 reach the job; the error pipe closes itself on a successful exec. */
    /* i. Everything is ready: with a go to wait for, the program runs only once the daemon has
     * stored the job as RUNNING. Anything but 'g' (the supervisor ended us or died) ends us here. */
    if (gofd >= 0) {
        step(errfd, STEP_WAIT_GO);
        char go = 0;
        ssize_t n;
        while ((n = read(gofd, &go, 1)) < 0 && errno == EINTR) {
        }
        if (n != 1 || go != 'g') _exit(127);
    }
    close_fds_from(3, errfd);
    step(errfd, STEP_EXEC);
    execve(opt.prog[0], opt.prog, opt.env);
    child_fail(errfd, errno, "exec %s", opt.prog[0]);
}

/* ---------- the launch ---------- */

enum launch_result { LAUNCHED, LAUNCH_FAILED, LAUNCH_CANCELLED, LAUNCH_TIMED_OUT, LAUNCH_ABORTED };

static int write_sup_file(void);

/* Waits for the daemon's go on opt.go_fd: true on 'g' (then the .sup file is written), false when
 * it ended without one. */
static bool wait_for_go(bool *sup_failed) {
    char go = 0;
    ssize_t n;
    while ((n = read(opt.go_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    close(opt.go_fd);
    opt.go_fd = -1;
    if (n != 1 || go != 'g') return false;
    *sup_failed = write_sup_file() < 0;
    return true;
}

/* Follows the job's process from fork to exec through its status pipe `fd`, with the launch
 * deadline and the time limit (both from `mono_start`; -1: none) and SIGUSR1 (cancel). Anything
 * but LAUNCHED has SIGKILLed the child (the caller reaps it) and says why in msg. SIGCHLD and
 * SIGUSR1 stay blocked; a signalfd takes them here, the main loop's sigtimedwait later. */
static enum launch_result watch_launch(int fd, int child_go, const sigset_t *set, long long mono_start,
                                       long long limit_deadline, char *msg, size_t size) {
    long long launch_deadline = opt.launch_timeout ? mono_start + (long long)opt.launch_timeout * 1000 : -1;
    long long due = launch_deadline;
    if (limit_deadline >= 0 && (due < 0 || limit_deadline < due)) due = limit_deadline;
    int sfd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
    char last_step = 0;
    size_t mlen = 0;
    bool failing = false;
    enum launch_result result;
    msg[0] = '\0';
    for (;;) {
        long long now = clock_ms(CLOCK_MONOTONIC);
        if (due >= 0 && now >= due) {
            result = limit_deadline >= 0 && now >= limit_deadline ? LAUNCH_TIMED_OUT : LAUNCH_FAILED;
            break;
        }
        struct pollfd p[3] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}, {.fd = opt.go_fd, .events = POLLIN}};
        if (poll(p, 3, due < 0 ? -1 : (int)(due - now)) < 0) {
            if (errno == EINTR) continue;
            sleep_ms(10);
        }
        if (opt.go_fd >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            bool sup_failed = false;
            if (!wait_for_go(&sup_failed)) {
                result = LAUNCH_ABORTED;
                break;
            }
            if (sup_failed) {
                snprintf(msg, size, "write %.400s/%llu.sup: %s", opt.run_dir, opt.job_id, strerror(errno));
                if (sfd >= 0) close(sfd);
                kill(job_pid, SIGKILL);
                return LAUNCH_FAILED;
            }
            if (write_all(child_go, "g", 1) < 0) { /* the child died: its status pipe tells why */
            }
        }
        if (sfd >= 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            bool cancel = false;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) cancel |= si.ssi_signo == SIGUSR1;
            if (cancel) {
                result = LAUNCH_CANCELLED;
                break;
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (sfd >= 0) close(sfd);
            msg[mlen] = '\0';
            if (!failing) return LAUNCHED; /* executed: only after the go */
            bool sup_failed = false;
            if (opt.go_fd >= 0 && !wait_for_go(&sup_failed)) {
                snprintf(msg, size, "aborted: the daemon did not store the job as running");
                return LAUNCH_ABORTED;
            }
            return LAUNCH_FAILED;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (failing) {
                if (mlen < size - 1) msg[mlen++] = buf[i];
            } else if (buf[i] == STEP_FAILED) {
                failing = true;
            } else {
                last_step = buf[i];
            }
        }
    }
    if (sfd >= 0) close(sfd);
    kill(job_pid, SIGKILL); /* it has not executed the job yet, so it is the only process of it */
    if (result == LAUNCH_ABORTED) {
        snprintf(msg, size, "aborted: the daemon did not store the job as running");
        return result;
    }
    /* Decided before the daemon's go: recorded only if it comes (else nothing of the job is left). */
    bool sup_failed = false;
    if (opt.go_fd >= 0 && !wait_for_go(&sup_failed)) {
        snprintf(msg, size, "aborted: the daemon did not store the job as running");
        return LAUNCH_ABORTED;
    }
    char where[PATH_MAX + 64];
    describe_step(last_step, where, sizeof where);
    if (result == LAUNCH_CANCELLED) snprintf(msg, size, "cancelled while launching (%.900s)", where);
    else if (result == LAUNCH_TIMED_OUT) snprintf(msg, size, "the time limit ran out while launching (%.900s)", where);
    else snprintf(msg, size, "launch did not finish within %llu s: stuck %.900s", opt.launch_timeout, where);
    return result;
}

/* ---------- finding and signalling the job's processes ---------- */

/* Reaps every child without blocking. Returns true when no child is left (ECHILD). __WALL also
 * reaps reparented descendants whatever their exit signal. */
static bool reap_children(void) {
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG | __WALL);
        if (p > 0) {
            if (p == job_pid && !job_reaped) {
                job_reaped = true;
                job_status = st;
                end_ms = clock_ms(CLOCK_REALTIME);
            }
            continue;
        }
        if (p == 0) return false;
        if (errno == EINTR) continue;
        return true;
    }
}

/* Calls fn for every pid listed in a cgroup.procs file. Returns the count, or -1 if unreadable. */
static int for_each_pid_in_file(const char *path, void (*fn)(pid_t, void *), void *ctx) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    long cur = -1;
    int count = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
            } else if (cur >= 0) {
                count++;
                if (fn) fn((pid_t)cur, ctx);
                cur = -1;
            }
        }
    }
    if (cur >= 0) {
        count++;
        if (fn) fn((pid_t)cur, ctx);
    }
    close(fd);
    return count;
}

struct find_ctx {
    pid_t pid;
    bool found;
};
static void find_pid_cb(pid_t p, void *ctx) {
    struct find_ctx *f = ctx;
    if (p == f->pid) f->found = true;
}

struct signal_ctx {
    const char *path;
    int sig;
};

/* A pid read from cgroup.procs may exit and be reused by an unrelated process before we signal it.
 * Pinning it with a pidfd and then seeing it still listed proves the pinned process is a member. */
static void signal_member_cb(pid_t pid, void *ctx) {
    struct signal_ctx *s = ctx;
    if (pid <= 1 || pid == self_pid) return;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) {
        if (errno == ENOSYS) kill(pid, s->sig); /* pre-5.3 kernel: best effort */
        return;
    }
    struct find_ctx f = {pid, false};
    for_each_pid_in_file(s->path, find_pid_cb, &f);
    if (f.found) syscall(SYS_pidfd_send_signal, pfd, s->sig, NULL, 0);
    close(pfd);
}

static void signal_cgroup_members(int sig) {
    struct signal_ctx s = {cg_procs_path, sig};
    for_each_pid_in_file(cg_procs_path, signal_member_cb, &s);
}

static void kill_member_cb(pid_t pid, void *ctx) {
    (void)ctx;
    if (pid > 1 && pid != self_pid) kill(pid, SIGKILL);
}

/* cgroup v1 has no cgroup.kill. Frozen tasks cannot fork or exit, so the member list is stable and
 * every pid in it is still the member we read: freeze, kill them all, thaw (the kills land on
 * thaw), and repeat until the cgroup is empty. Bounded so a task that never freezes (stuck in the
 * kernel) cannot hang us; the caller's cleanup loop comes back later. */
static void freezer_kill(void) {
    for (int round = 0; round < 10; round++) {
        if (for_each_pid_in_file(cg_procs_path, NULL, NULL) <= 0) return;
        if (write_file(freezer_state_path, "FROZEN") == 0) {
            char st[32];
            for (int i = 0; i < 200; i++) {
                if (read_file(freezer_state_path, st, sizeof st) > 0 && !strncmp(st, "FROZEN", 6)) break;
                sleep_ms(10);
            }
        }
        for_each_pid_in_file(cg_procs_path, kill_member_cb, NULL);
        write_file(freezer_state_path, "THAWED");
        reap_children();
        sleep_ms(10);
    }
}

static pid_t desc_pid[MAX_DESC];
static unsigned long long desc_start[MAX_DESC];
static int desc_n;

static bool is_known(pid_t p) {
    if (p == self_pid) return true;
    for (int i = 0; i < desc_n; i++)
        if (desc_pid[i] == p) return true;
    return false;
}

/* Every descendant of the supervisor, by walking /proc parent links until nothing is added. As a
 * child subreaper we inherit every orphan of the job, so setsid'ed and double-forked processes are
 * still found here; in rlimit mode this is the only way to find them. */
static void collect_descendants(void) {
    desc_n = 0;
    for (int pass = 0; pass < 64 && desc_n < MAX_DESC; pass++) {
        bool added = false;
        DIR *d = opendir("/proc");
        if (!d) return;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && desc_n < MAX_DESC) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
            pid_t p = (pid_t)atoi(e->d_name);
            pid_t pp;
            unsigned long long st;
            if (is_known(p) || proc_stat(p, NULL, &pp, &st) < 0 || !is_known(pp)) continue;
            desc_pid[desc_n] = p;
            desc_start[desc_n++] = st;
            added = true;
        }
        closedir(d);
        if (!added) break;
    }
}

/* Signals the descendants found by collect_descendants. The pidfd pins the process, and its start
 * time proves it is the one we found and not a newcomer that reused the pid. */
static void signal_descendants(int sig) {
    collect_descendants();
    for (int i = 0; i < desc_n; i++) {
        char state;
        unsigned long long st;
        int pfd = (int)syscall(SYS_pidfd_open, desc_pid[i], 0);
        if (pfd < 0 && errno != ENOSYS) continue;
        if (proc_stat(desc_pid[i], &state, NULL, &st) == 0 && st == desc_start[i] && state != 'Z') {
            if (pfd >= 0) syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
            else kill(desc_pid[i], sig);
        }
        if (pfd >= 0) close(pfd);
    }
}

/* Signals every process of the job by every mechanism we have; they overlap on purpose. */
static void signal_job(int sig) {
    if (opt.kill_cg2) {
        if (sig != SIGKILL || write_file(cg_kill_path, "1") < 0) signal_cgroup_members(sig);
    } else if (opt.kill_freezer) {
        if (sig == SIGKILL) freezer_kill();
        else signal_cgroup_members(sig);
    }
    /* The group id is safe to use only while the unreaped leader pins it. */
    if (!job_reaped) kill(-job_pid, sig);
    signal_descendants(sig);
}

static bool cgroup_empty(void) {
    if (!opt.kill_cg2 && !opt.kill_freezer) return true;
    return for_each_pid_in_file(cg_procs_path, NULL, NULL) <= 0;
}

/* Waits for SIGCHLD or SIGUSR1 (both blocked) for up to timeout_ms (< 0: forever). Returns the
 * signal, or 0 on timeout. */
static int wait_signal(const sigset_t *set, long long timeout_ms) {
    int sig;
    if (timeout_ms < 0) {
        sig = sigwaitinfo(set, NULL);
    } else {
        struct timespec ts = {(time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000L};
        sig = sigtimedwait(set, NULL, &ts);
    }
    return sig < 0 ? 0 : sig;
}

/* ---------- cgroup set-up, before the job starts ---------- */

/* Makes the --cgroup-* steps in order. On a failure, removes the directories it created and
 * returns -1 with the reason in msg. */
static int set_up_cgroups(char *msg, size_t size) {
    const char *made[MAX_SETUP];
    int n_made = 0;
    for (int i = 0; i < opt.n_setup; i++) {
        const struct setup_step *st = &opt.setup[i];
        if (st->kind == 'd') {
            if (mkdir(st->path, 0755) == 0) made[n_made++] = st->path;
            else if (errno != EEXIST) {
                snprintf(msg, size, "cgroup set-up: mkdir %s: %s", st->path, strerror(errno));
                goto undo;
            }
        } else if (write_file(st->path, st->value) < 0 && st->kind == 'w') {
            snprintf(msg, size, "cgroup set-up: write %s to %s: %s", st->value, st->path, strerror(errno));
            goto undo;
        }
    }
    return 0;
undo:
    while (n_made > 0) rmdir(made[--n_made]);
    return -1;
}

/* rmdir of every --cgroup-mkdir directory, the last made first; true if none is left. With
 * `wait_busy`, EBUSY (the kernel may answer it for a moment after a cgroup's last process was
 * reaped) is retried for about 100 ms; what still fails is the daemon's to remove. */
static bool remove_cgroup_dirs(bool wait_busy) {
    bool all = true, any = false;
    for (int i = opt.n_setup - 1; i >= 0; i--) {
        if (opt.setup[i].kind != 'd') continue;
        any = true;
        int tries = 0;
        while (rmdir(opt.setup[i].path) < 0 && errno != ENOENT) {
            if (!wait_busy || errno != EBUSY || ++tries > 50) {
                all = false;
                break;
            }
            sleep_ms(2);
        }
    }
    return any && all;
}

/* ---------- accounting and removal, once the job is gone ---------- */

/* Copies s into out at `at`, %XX-escaping what would break a `key=value` line; returns the new end. */
static size_t escape_into(char *out, size_t at, size_t size, const char *s, size_t len) {
    return percent_escape(out, at, size, s, len, " =");
}

/* Reads every --account file into account_lines; a file that does not exist is left out (the
 * daemon treats it as the kernel not having it). A line that would not fit is left out whole. */
static void record_accounting(void) {
    size_t at = 0;
    for (int i = 0; i < opt.n_account; i++) {
        char content[ACCOUNT_MAX];
        ssize_t len = read_file(opt.account[i], content, sizeof content);
        if (len < 0) continue;
        char line[3 * (PATH_MAX + ACCOUNT_MAX) + 16];
        /* "account:" itself is plain text; the path and contents are escaped. */
        size_t l = 8;
        memcpy(line, "account:", 8);
        l = escape_into(line, l, sizeof line, opt.account[i], strlen(opt.account[i]));
        line[l++] = '=';
        l = escape_into(line, l, sizeof line, content, (size_t)len);
        if (l + 2 >= sizeof line || at + l + 2 >= sizeof account_lines) continue;
        memcpy(account_lines + at, line, l);
        at += l;
        account_lines[at++] = '\n';
        account_lines[at] = '\0';
    }
}

/* ---------- main ---------- */

/* The daemon passes everything about the job (user, paths, environment, command) on stdin, NUL
 * separated, after `--job-id N --run-dir D --args-from-stdin`: /proc/<pid>/cmdline is readable by
 * every local user, so the command line carries only what identifies a supervisor. Returns the
 * full argument vector, as if it had all been given on the command line. */
#define MAX_STDIN_ARGS (4 << 20)
static char **args_from_stdin(int *argc, char **argv) {
    if (*argc != 6 || strcmp(argv[5], "--args-from-stdin") != 0) return argv;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) usage("out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_STDIN_ARGS) usage("arguments on stdin exceed %d bytes", MAX_STDIN_ARGS);
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) usage("out of memory");
        }
        ssize_t n = read(0, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) usage("reading arguments from stdin: %s", strerror(errno));
        if (n == 0) break;
        len += (size_t)n;
    }
    if (len == 0 || buf[len - 1] != '\0') usage("arguments on stdin must end with a NUL");
    int extra = 0;
    for (size_t i = 0; i < len; i++) extra += buf[i] == '\0';
    char **all = calloc((size_t)(5 + extra + 1), sizeof(char *));
    if (!all) usage("out of memory");
    for (int i = 0; i < 5; i++) all[i] = argv[i];
    int k = 5;
    for (size_t i = 0; i < len; k++) {
        all[k] = buf + i;
        i += strlen(buf + i) + 1;
    }
    all[k] = NULL;
    *argc = k;
    /* stdin has done its work; the job gets /dev/null of its own later. */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != 0) dup2(devnull, 0), close(devnull);
    return all;
}

int main(int argc, char **argv) {
    /* Started by hpcq-launcher, we inherit its request to be killed should it die before our exec;
     * from here on we outlive the launcher and the daemon (the job must not depend on them). */
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    /* 1. The daemon's LevelDB files are opened without O_CLOEXEC and leak into us; close all.
     * Then make sure 0, 1 and 2 exist, so no file we open later lands on them by accident. */
    close_fds_from(4, -1); /* 3 may be the daemon's go (--go-fd 3): closed below unless it is */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd) dup2(n, fd), close(n);
        }
    }
    /* The time limit, the launch deadline and the job's wall time count from here: a launch that
     * takes long is the job's time too, and is accounted as such. */
    long long mono_start = clock_ms(CLOCK_MONOTONIC);
    start_ms = clock_ms(CLOCK_REALTIME);
    argv = args_from_stdin(&argc, argv);
    parse_args(argc, argv);
    close_fds_from(3, opt.go_fd);

    /* Stray signals (the daemon's process group, a terminal hangup, a closed handshake pipe) must
     * not end the supervisor: it is the job's only reaper and record keeper. SIGCHLD and SIGUSR1
     * are blocked and taken synchronously by sigtimedwait in the main loop. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) perror("hpcq-supervisor: PR_SET_CHILD_SUBREAPER");
    if (chdir("/") < 0) perror("hpcq-supervisor: chdir /");
    umask(022);

    /* 2. Identify ourselves before the job can start (at once, or at the daemon's go), so a
     * restarted daemon can tell this supervisor from a process that reused its pid, or from one of
     * a previous boot. */
    self_pid = getpid();
    if (opt.go_fd < 0 && write_sup_file() < 0) {
        dprintf(1, "failed write %s/%llu.sup: %s\n", opt.run_dir, opt.job_id, strerror(errno));
        return 1;
    }

    /* 3. The job's cgroups, before its process exists (it is created in them on cgroup v2). */
    char setup_msg[MSG_MAX];
    if (set_up_cgroups(setup_msg, sizeof setup_msg) < 0) {
        bool sup_failed = false;
        if (opt.go_fd >= 0 && !wait_for_go(&sup_failed)) return dprintf(1, "failed aborted: %s\n", setup_msg) < 0;
        return launch_failed(setup_msg);
    }

    /* 4. Start the job. The pipe is close-on-exec: the child's step bytes, then EOF when the exec
     * succeeded, or STEP_FAILED and the reason. */
    int pfd[2], gfd[2] = {-1, -1};
    if (pipe2(pfd, O_CLOEXEC) < 0 || (opt.go_fd >= 0 && pipe2(gfd, O_CLOEXEC) < 0) || (job_pid = fork_job()) < 0) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "cannot start the job: %s", strerror(errno));
        bool sup_failed = false;
        if (opt.go_fd >= 0 && !wait_for_go(&sup_failed)) return remove_cgroup_dirs(false), dprintf(1, "failed aborted: %s\n", msg) < 0;
        return launch_failed(msg);
    }
    if (job_pid == 0) {
        close(pfd[0]);
        if (gfd[1] >= 0) close(gfd[1]);
        run_child(pfd[1], gfd[0]);
    }
    close(pfd[1]);
    if (gfd[0] >= 0) close(gfd[0]);
    long long limit_deadline = opt.time_limit ? mono_start + (long long)opt.time_limit * 1000 : -1;
    char msg[MSG_MAX];
    enum launch_result launched = watch_launch(pfd[0], gfd[1], &set, mono_start, limit_deadline, msg, sizeof msg);
    close(pfd[0]);
    if (gfd[1] >= 0) close(gfd[1]);

    /* 5. Handshake. A launch that did not end in the exec ended its child, which is reaped. */
    if (launched != LAUNCHED) {
        for (char *c = msg; *c; c++) /* one line, whatever the path contained */
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        int st;
        while (waitpid(job_pid, &st, 0) < 0 && errno == EINTR) {
        }
        job_reaped = true;
        if (launched == LAUNCH_ABORTED) return remove_cgroup_dirs(false), dprintf(1, "failed %s\n", msg) < 0; /* no record: nothing ran */
        if (launched == LAUNCH_FAILED) return launch_failed(msg);
        /* Cancelled or out of time before the job ran: its true outcome, not a launch failure. */
        end_ms = clock_ms(CLOCK_REALTIME);
        cancelled = launched == LAUNCH_CANCELLED;
        timed_out = launched == LAUNCH_TIMED_OUT;
        int rc = write_exit_file("signaled", 0, SIGKILL, NULL);
        dprintf(1, "failed %s\n", msg);
        return rc < 0 ? 1 : 0;
    }
    unsigned long long job_start = 0;
    proc_stat(job_pid, NULL, NULL, &job_start); /* unreaped, so readable even if it already exited */
    dprintf(1, "started %d %llu\n", (int)job_pid, job_start);
    /* The daemon may go away at any time: never write to (or be SIGPIPE'd by) its pipes again. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
        close(devnull);
    }

    /* 6. Watch the job. Deadlines are on CLOCK_MONOTONIC so wall-clock jumps do not matter. */
    enum { RUNNING, TERM_SENT, KILL_SENT } phase = RUNNING;
    long long deadline = limit_deadline;
    long long next = deadline; /* when something is due in the current phase; -1 = nothing */
    for (;;) {
        reap_children();
        if (job_reaped) break;
        long long now = clock_ms(CLOCK_MONOTONIC);
        if (phase == RUNNING && deadline >= 0 && now >= deadline) {
            timed_out = true;
            signal_job(SIGTERM);
            signal_job(SIGCONT); /* a stopped process would never see the SIGTERM */
            phase = TERM_SENT;
            next = now + (long long)opt.kill_grace * 1000;
            continue;
        }
        if (phase != RUNNING && now >= next) {
            signal_job(SIGKILL);
            phase = KILL_SENT;
            next = now + SWEEP_MS;
            continue;
        }
        int sig = wait_signal(&set, next < 0 ? -1 : next - now);
        if (sig == SIGUSR1 && phase == RUNNING) { /* the daemon's cancel; only the first reason counts */
            cancelled = true;
            signal_job(SIGTERM);
            signal_job(SIGCONT);
            phase = TERM_SENT;
            next = clock_ms(CLOCK_MONOTONIC) + (long long)opt.kill_grace * 1000;
        }
    }

    /* 7. The main process ended: nothing of the job may outlive it. Kill and reap until no child
     * is left and the cgroup is empty, then record the outcome. Checked before killing: with no
     * child left we have no descendant either (orphans are re-parented to us, the subreaper), so a
     * job that left nothing behind is recorded without a kill round (and its scan of /proc). */
    long long no_children_since = -1;
    for (;;) {
        bool no_children = reap_children();
        if (no_children && cgroup_empty()) break;
        signal_job(SIGKILL);
        long long now = clock_ms(CLOCK_MONOTONIC);
        if (!no_children) no_children_since = -1;
        else if (no_children_since < 0) no_children_since = now;
        else if (now - no_children_since > FOREIGN_WAIT_MS) break;
        wait_signal(&set, CLEANUP_POLL_MS);
    }
    record_accounting();
    cgroups_removed = remove_cgroup_dirs(true);
    int rc = WIFSIGNALED(job_status) ? write_exit_file("signaled", 0, WTERMSIG(job_status), NULL)
                                     : write_exit_file("exited", WEXITSTATUS(job_status), 0, NULL);
    return rc < 0 ? 1 : 0;
}
