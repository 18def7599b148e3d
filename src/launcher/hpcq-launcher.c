/*
 * hpcq-launcher: starts the per-job supervisors (hpcq-supervisor) for the daemon.
 *
 * Why: a fork of the daemon (a Node process of 100+ MiB) per job costs milliseconds of the
 * daemon's event loop, most of it copying page tables. This process is started once by the daemon
 * and stays small, so each supervisor is forked from a process of a few hundred KiB instead.
 *
 * It starts supervisors exactly as the daemon did: own session (setsid), empty environment, cwd /,
 * no inherited descriptor but stdin (the argument block, from a memfd: a big block never blocks
 * us) and stdout + stderr (one pipe to us, carrying the supervisor's one-line handshake). It never
 * waits for one supervisor: one epoll loop serves the daemon's requests, the handshakes and the
 * exits (signalfd).
 *
 * Protocol with the daemon (src/exec/supervisor-launcher.ts, the only caller):
 *   stdin, frames: u32 little-endian length N, then N bytes:
 *     "S" REQ "\0" JOBID "\0" RUNDIR "\0" ARGS   start a supervisor; ARGS is the NUL-terminated
 *        argument block it reads with --args-from-stdin. REQ: the daemon's number for this start.
 *     "P" ...same as "S"...   start one that waits for the daemon's go: its fd 3 is a pipe from us
 *        (ARGS then has --go-fd 3), held until "G" or "A" for that REQ, or our end
 *     "G" REQ "\0"   go: 'g' into that pipe, which is then closed
 *     "A" REQ "\0"   abort: the pipe is closed without a 'g' (so is every one when we end)
 *     "R" JOBID "\0" RUNDIR "\0"   remove the job's run files RUNDIR/JOBID.sup and .exit (once the
 *        daemon stored the job's end): the daemon's one thread is spared two unlinks per job; the
 *        daemon sends it with its next frame (a launch's or a go's), or alone after 200 ms. No answer.
 *   stdout, one line each, in this order for one REQ:
 *     spawned REQ PID START_TICKS      forked (START_TICKS: field 22 of /proc/PID/stat)
 *     spawnfailed REQ MESSAGE          not forked; nothing was started
 *     line REQ TEXT                    a line the supervisor wrote (its handshake is the last one:
 *                                      "started ..." or "failed ..."); control characters as '?'
 *     record REQ TEXT                  the job's exit record (RUNDIR/JOBID.exit) as it was right
 *                                      after the supervisor ended, bytes below 0x20, '%' and from
 *                                      0x7f on as %XX; left out when there is none, or it is not
 *                                      a regular file, or is too big for a line (then the daemon
 *                                      reads the file itself)
 *     exit REQ CODE SIGNAL             the supervisor ended (reaped by us)
 * The launcher exits when its stdin ends (the daemon closed it or died), leaving the supervisors
 * running: they are detached, outlive the daemon by design and are found again through their run
 * files. It is also killed with the daemon (PR_SET_PDEATHSIG), so it never outlives it.
 *
 * Options: --supervisor PATH (absolute) --parent PID (the daemon, to catch a death before prctl).
 * Deliberately libc only and single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "percent-escape.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define MAX_FRAME ((4 << 20) + 65536) /* the supervisor's own limit on the block, plus the header */
#define MAX_OUTPUT 8192                /* bytes of supervisor output forwarded per supervisor */
#define EV_STDIN UINT64_MAX
#define EV_SIGNAL (UINT64_MAX - 1)

/* One started supervisor, until it is reaped. `fd` is its stdout+stderr pipe until the handshake. */
struct sup {
    bool used;
    unsigned long long req;
    pid_t pid;
    int fd;
    size_t len;
    char *buf; /* MAX_OUTPUT bytes while fd >= 0 */
    int go;    /* write end of its go pipe until the go or the abort; -1 */
    char *exit_path; /* RUNDIR/JOBID.exit: read when it is reaped */
};

static struct sup *sups;
static size_t n_sups;
static const char *supervisor_path;
static pid_t self_pid;
static int epfd;

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("hpcq-launcher: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    exit(1);
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

/* One line to the daemon. A daemon that stopped reading is gone: nothing left to do but exit. */
static void __attribute__((format(printf, 1, 2))) reply(const char *fmt, ...) {
    char line[MAX_OUTPUT + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    if (write_all(1, line, (size_t)n) < 0) exit(0);
}

/* Field 22 of /proc/<pid>/stat (start time in clock ticks), counted after the last ')'. */
static unsigned long long start_ticks(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    for (int field = 3; field < 22; field++) {
        while (*p == ' ') p++;
        while (*p && *p != ' ') p++;
    }
    return strtoull(p, NULL, 10);
}

static struct sup *new_slot(void) {
    for (size_t i = 0; i < n_sups; i++)
        if (!sups[i].used) return &sups[i];
    size_t old = n_sups, n = old ? old * 2 : 64;
    struct sup *grown = realloc(sups, n * sizeof *sups);
    if (!grown) return NULL;
    memset(grown + old, 0, (n - old) * sizeof *grown);
    sups = grown;
    n_sups = n;
    return &sups[old];
}

static void close_output(struct sup *s) {
    if (s->fd < 0) return;
    /* Removed explicitly: close alone leaves the registration while a copy of the descriptor lives
     * on (in a child forked meanwhile, until its exec), and the ended pipe would wake us in a loop. */
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    free(s->buf);
    s->buf = NULL;
}

/* Forwards each complete line of the supervisor's output; stops after its handshake (or at EOF,
 * forwarding an unterminated rest as a line). */
static void forward_output(struct sup *s, bool eof) {
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] != '\n' && !(eof && i == s->len - 1)) continue;
        size_t end = s->buf[i] == '\n' ? i : i + 1;
        char *text = s->buf + start;
        for (size_t k = start; k < end; k++)
            if ((unsigned char)s->buf[k] < 0x20 || s->buf[k] == 0x7f) s->buf[k] = '?';
        int len = (int)(end - start);
        reply("line %llu %.*s", s->req, len, text);
        start = i + 1;
        if ((len >= 8 && !strncmp(text, "started ", 8)) || (len >= 7 && !strncmp(text, "failed ", 7))) {
            close_output(s);
            return;
        }
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    if (eof || s->len == MAX_OUTPUT) {
        if (s->len > 0) reply("line %llu %.*s", s->req, (int)s->len, s->buf);
        close_output(s);
    }
}

/* Reads what the supervisor wrote so far (non-blocking). */
static void read_output(struct sup *s) {
    while (s->fd >= 0) {
        ssize_t n = read(s->fd, s->buf + s->len, MAX_OUTPUT - s->len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        s->len += n > 0 ? (size_t)n : 0;
        forward_output(s, n <= 0);
    }
}

/* In the forked child: becomes the supervisor, or reports why not on its stdout and exits. */
static void __attribute__((noreturn)) exec_supervisor(int args_fd, int out_fd, int go_fd, char *job_id, char *run_dir) {
    /* Killed if the launcher dies before the exec: then nobody would hear of this supervisor. The
     * supervisor clears this first thing, before it starts anything of the job. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != self_pid) _exit(127);
    if (setsid() < 0 || dup2(args_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) _exit(127);
    if (go_fd >= 0 && dup2(go_fd, 3) < 0) _exit(127);
    unsigned first = go_fd >= 0 ? 4U : 3U;
    if (syscall(SYS_close_range, first, ~0U, 0) < 0)
        for (int fd = (int)first; fd < 1024; fd++) close(fd);
    /* The signal mask stays as inherited from fork: SIGUSR1 (cancel) and SIGCHLD blocked across
     * the exec. The supervisor takes both synchronously, and a cancel sent as soon as the daemon
     * heard of its pid must not kill it before it is ready for one. */
    signal(SIGPIPE, SIG_DFL);
    if (chdir("/") < 0) _exit(127);
    char *argv[] = {(char *)supervisor_path, "--job-id", job_id, "--run-dir", run_dir, "--args-from-stdin", NULL};
    char *envp[] = {NULL};
    execve(supervisor_path, argv, envp);
    dprintf(1, "failed cannot start the job supervisor %s: %s\n", supervisor_path, strerror(errno));
    _exit(127);
}

static void close_go(struct sup *s) {
    if (s->go < 0) return;
    close(s->go);
    s->go = -1;
}

/* "G"/"A" frames: the go, or the abort, of the supervisor started for REQ. */
static void go_request(const char *p, size_t len, bool go) {
    if (!memchr(p, '\0', len)) die("malformed go request");
    unsigned long long req = strtoull(p, NULL, 10);
    for (size_t i = 0; i < n_sups; i++) {
        struct sup *s = &sups[i];
        if (!s->used || s->req != req || s->go < 0) continue;
        if (go) write_all(s->go, "g", 1); /* a supervisor that is gone has nothing left to start */
        close_go(s);
        return;
    }
}

/* One "S" or "P" frame: REQ, JOBID, RUNDIR, then the argument block. */
static void spawn_request(char *p, size_t len, bool with_go) {
    char *fields[3];
    char *end = p + len;
    for (int i = 0; i < 3; i++) {
        char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul) die("malformed spawn request");
        fields[i] = p;
        p = nul + 1;
    }
    unsigned long long req = strtoull(fields[0], NULL, 10);
    size_t block_len = (size_t)(end - p);

    int args_fd = (int)syscall(SYS_memfd_create, "hpcq-supervisor-args", MFD_CLOEXEC);
    if (args_fd < 0) return reply("spawnfailed %llu memfd_create: %s", req, strerror(errno));
    int out[2] = {-1, -1}, go[2] = {-1, -1};
    struct sup *s = NULL;
    char *exit_path = NULL;
    const char *step = "write arguments";
    if (write_all(args_fd, p, block_len) < 0 || lseek(args_fd, 0, SEEK_SET) < 0) goto fail;
    step = "pipe";
    if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 || (with_go && pipe2(go, O_CLOEXEC) < 0)) goto fail;
    step = "out of memory";
    errno = ENOMEM;
    size_t path_len = strlen(fields[2]) + strlen(fields[1]) + sizeof "/.exit";
    if (!(s = new_slot()) || !(s->buf = malloc(MAX_OUTPUT)) || !(exit_path = malloc(path_len))) goto fail;
    snprintf(exit_path, path_len, "%s/%s.exit", fields[2], fields[1]);
    step = "fork";
    pid_t pid = fork();
    if (pid < 0) goto fail;
    if (pid == 0) exec_supervisor(args_fd, out[1], go[0], fields[1], fields[2]);
    close(args_fd);
    close(out[1]);
    if (go[0] >= 0) close(go[0]);
    *s = (struct sup){.used = true, .req = req, .pid = pid, .fd = out[0], .len = 0, .buf = s->buf, .go = go[1], .exit_path = exit_path};
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(s - sups)};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, out[0], &ev) < 0) close_output(s); /* its exit is still reported */
    reply("spawned %llu %d %llu", req, (int)pid, start_ticks(pid));
    return;
fail:;
    int err = errno;
    if (s) free(s->buf), s->buf = NULL;
    free(exit_path);
    if (out[0] >= 0) close(out[0]), close(out[1]);
    if (go[0] >= 0) close(go[0]), close(go[1]);
    close(args_fd);
    reply("spawnfailed %llu %s: %s", req, step, strerror(err));
}

/* One "R" frame: JOBID (digits), RUNDIR (absolute). Files already gone are fine. unlink() removes
 * a link itself, never what it points to; the run directory is the daemon's own (0700, root's). */
static void remove_request(char *p, size_t len) {
    char *end = p + len;
    char *nul = memchr(p, '\0', len);
    char *dir = nul ? nul + 1 : NULL;
    if (!nul || dir >= end || !memchr(dir, '\0', (size_t)(end - dir))) die("malformed remove request");
    if (!*p || strspn(p, "0123456789") != strlen(p) || dir[0] != '/') die("malformed remove request");
    char path[PATH_MAX];
    static const char *const kinds[] = {"sup", "exit"};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        if (snprintf(path, sizeof path, "%s/%s.%s", dir, p, kinds[i]) >= (int)sizeof path) die("run directory path too long");
        unlink(path);
    }
}

/* The job's exit record, read once its supervisor has ended (it is complete then: the supervisor
 * renames it into place before it exits), sent before the exit line: the daemon then takes the
 * job's end from us instead of reading the file on its one thread. Not followed if a link. */
static void report_exit_record(struct sup *s) {
    static char raw[MAX_OUTPUT / 3], line[MAX_OUTPUT + 1];
    int fd = open(s->exit_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    size_t len = 0;
    bool whole = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    while (whole) {
        ssize_t n = read(fd, raw + len, sizeof raw - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            whole = n == 0;
            break;
        }
        len += (size_t)n;
        if (len == sizeof raw) whole = false; /* too big for a line: the daemon reads the file */
    }
    close(fd);
    if (!whole) return;
    percent_escape(line, 0, sizeof line, raw, len, "");
    reply("record %llu %s", s->req, line);
}

/* Reaps every ended supervisor; its remaining output is forwarded before its exit. */
static void reap(void) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        for (size_t i = 0; i < n_sups; i++) {
            struct sup *s = &sups[i];
            if (!s->used || s->pid != pid) continue;
            read_output(s);
            close_output(s);
            close_go(s);
            report_exit_record(s);
            reply("exit %llu %d %d", s->req, WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            free(s->exit_path);
            s->exit_path = NULL;
            s->used = false;
            break;
        }
    }
}

/* Reads the daemon's frames and serves the complete ones; returns false at the end of its stream
 * (after serving what came before it). */
static char *in_buf;
static size_t in_len, in_cap;
static bool read_requests(void) {
    bool open = true;
    while (open) {
        if (in_cap - in_len < 65536) {
            size_t cap = in_cap ? in_cap * 2 : 1 << 20;
            if (cap > 2 * (size_t)MAX_FRAME) cap = 2 * (size_t)MAX_FRAME;
            if (cap <= in_len) die("request buffer full");
            if (!(in_buf = realloc(in_buf, cap))) die("out of memory");
            in_cap = cap;
        }
        ssize_t n = read(0, in_buf + in_len, in_cap - in_len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) open = false;
        else in_len += (size_t)n;
    }
    size_t off = 0;
    while (in_len - off >= 4) {
        unsigned char *h = (unsigned char *)in_buf + off;
        size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
        if (len == 0 || len > MAX_FRAME) die("frame of %zu bytes", len);
        if (in_len - off - 4 < len) break;
        char *frame = in_buf + off + 4;
        if (frame[0] == 'S' || frame[0] == 'P') spawn_request(frame + 1, len - 1, frame[0] == 'P');
        else if (frame[0] == 'G' || frame[0] == 'A') go_request(frame + 1, len - 1, frame[0] == 'G');
        else if (frame[0] == 'R') remove_request(frame + 1, len - 1);
        else die("unknown request '%c'", frame[0]);
        off += 4 + len;
    }
    memmove(in_buf, in_buf + off, in_len - off);
    in_len -= off;
    return open;
}

int main(int argc, char **argv) {
    /* The daemon's LevelDB files are opened without O_CLOEXEC and leak into us: holding them would
     * keep replaced database files alive. Only stdin, stdout and stderr are ours. */
    if (syscall(SYS_close_range, 3U, ~0U, 0) < 0)
        for (int fd = 3; fd < 1024; fd++) close(fd);
    pid_t parent = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--supervisor")) supervisor_path = argv[i + 1];
        else if (!strcmp(argv[i], "--parent")) parent = (pid_t)atoi(argv[i + 1]);
        else die("unknown option '%s'", argv[i]);
    }
    if (!supervisor_path || supervisor_path[0] != '/' || parent <= 0) die("usage: hpcq-launcher --supervisor PATH --parent PID");
    /* Never outlive the daemon; a daemon that died before the prctl is caught by the ppid check. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent) return 0;
    self_pid = getpid();
    if (chdir("/") < 0) die("chdir /: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    /* SIGUSR1 is blocked for the supervisors' sake (see exec_supervisor): from the fork on. */
    sigset_t blocked = chld;
    sigaddset(&blocked, SIGUSR1);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sigfd < 0 || epfd < 0) die("signalfd/epoll: %s", strerror(errno));
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_STDIN};
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = EV_SIGNAL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &sev) < 0)
        die("epoll_ctl: %s", strerror(errno));

    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(epfd, evs, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == EV_STDIN) {
                /* The daemon is gone or done: the supervisors carry on without us. */
                if (!read_requests()) return 0;
            } else if (tag == EV_SIGNAL) {
                struct signalfd_siginfo si;
                while (read(sigfd, &si, sizeof si) > 0) {
                }
                reap();
            } else if (tag < n_sups && sups[tag].used && sups[tag].fd >= 0) {
                read_output(&sups[tag]);
            }
        }
    }
}
