/*
 * hpcq-command-runner: runs the short commands the daemon needs (Slurm's sbatch, squeue, scancel,
 * sacct, ...) on its behalf.
 *
 * Why: Node starts a child by forking its whole process on the event loop. For a daemon of
 * 100-150 MB that costs milliseconds per command (13 s of a 58 s run that handed 1,000 jobs to
 * Slurm), during which no request is answered. This tiny process, started once, forks instead.
 *
 * Protocol (src/system/command-runner.ts is the only caller). Integers are 32-bit little-endian.
 *   request on stdin:  len id timeout_ms nargs nenv input_len, then nargs NUL-terminated
 *                      arguments (argv[0] is the program: a path, or a name searched in the PATH
 *                      of the given environment), nenv NUL-terminated KEY=VALUE entries, then
 *                      input_len bytes for the command's stdin. len counts everything after it.
 *   answer on stdout:  len id kind value stdout_len stderr_len, then the bytes of both.
 *                      kind 0: exited with status `value`; 1: killed by signal `value`;
 *                      2: killed at its deadline; 3: could not be started (errno `value`).
 * A command gets exactly the given environment, cwd /, no descriptor besides its three pipes,
 * default signal dispositions. Output beyond the caps is read and dropped, so a chatty command
 * never blocks. Commands run concurrently; answers come in the order they end.
 * At EOF on stdin the runner stops taking requests, waits for the commands it runs, and exits.
 *
 * libc only, single-threaded (poll + signalfd), no allocation per byte: it must stay small and
 * predictable, since it runs as root next to the daemon for the daemon's whole life.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define MAX_COMMANDS 256               /* running at once; more are answered EAGAIN */
#define MAX_REQUEST (16u << 20)        /* one request: arguments, environment and input */
#define MAX_STDOUT (64u << 20)         /* kept of a command's stdout (squeue of 100k jobs fits) */
#define MAX_STDERR (64u << 10)         /* kept of its stderr */

struct command {
    bool used;
    uint32_t id;
    pid_t pid;
    bool reaped, timed_out;
    int status;
    long long deadline_ms;                   /* monotonic; -1 = none */
    int in_fd, out_fd, err_fd;               /* our ends; -1 once closed */
    char *input;
    uint32_t input_len, input_off;
    char *out, *err;
    uint32_t out_len, out_cap, err_len, err_cap;
};

static struct command commands[MAX_COMMANDS];
static int running;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put32(char *p, uint32_t v) {
    p[0] = (char)(v & 0xff), p[1] = (char)(v >> 8 & 0xff), p[2] = (char)(v >> 16 & 0xff), p[3] = (char)(v >> 24 & 0xff);
}

static uint32_t get32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* Writes all of buf to the daemon; a daemon gone (EPIPE) ends the runner: nobody is listening. */
static void write_all(const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(1, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) _exit(0);
        buf += n, len -= (size_t)n;
    }
}

static void answer(uint32_t id, uint32_t kind, uint32_t value, const char *out, uint32_t out_len, const char *err, uint32_t err_len) {
    char head[24];
    put32(head, 20 + out_len + err_len); /* everything after the length */
    put32(head + 4, id), put32(head + 8, kind), put32(head + 12, value);
    put32(head + 16, out_len), put32(head + 20, err_len);
    write_all(head, 24);
    write_all(out, out_len);
    write_all(err, err_len);
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Appends up to the cap and drops the rest; returns false at EOF or on an error. */
static bool drain(int *fd, char **buf, uint32_t *len, uint32_t *cap, uint32_t max) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return true;
        if (n <= 0) {
            close_fd(fd);
            return false;
        }
        uint32_t keep = *len >= max ? 0 : (uint32_t)n < max - *len ? (uint32_t)n : max - *len;
        if (keep == 0) continue;
        if (*len + keep > *cap) {
            uint32_t next = *cap ? *cap : 4096;
            while (next < *len + keep) next *= 2;
            char *grown = realloc(*buf, next);
            if (!grown) continue; /* out of memory: drop, the command still ends */
            *buf = grown, *cap = next;
        }
        memcpy(*buf + *len, chunk, keep);
        *len += keep;
    }
}

static void finish(struct command *c) {
    uint32_t kind = c->timed_out ? 2 : WIFSIGNALED(c->status) ? 1 : 0;
    uint32_t value = WIFSIGNALED(c->status) ? (uint32_t)WTERMSIG(c->status) : (uint32_t)WEXITSTATUS(c->status);
    answer(c->id, kind, value, c->out, c->out_len, c->err, c->err_len);
    close_fd(&c->in_fd), close_fd(&c->out_fd), close_fd(&c->err_fd);
    free(c->input), free(c->out), free(c->err);
    memset(c, 0, sizeof *c);
    running--;
}

/* In the child: its pipes on 0-2, nothing else open, default signals, then exec. Never returns. */
static void exec_child(int in, int out, int err, char **argv, char **envp) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
    if (syscall(SYS_close_range, 3U, ~0U, 0) != 0)
        for (int fd = 3; fd < 65536; fd++) close(fd);
    if (chdir("/") != 0) _exit(127);
    /* The PATH search uses the command's own environment, not the runner's (it has none). */
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) setenv("PATH", *e + 5, 1);
    execvpe(argv[0], argv, envp);
    dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
    _exit(127);
}

/* Close-on-exec, so a command started later does not inherit another's pipes. */
static int cloexec_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

/* Starts the command of one request (payload without len); answers at once if it cannot. */
static void start(char *req, uint32_t len) {
    if (len < 20) return;
    uint32_t id = get32(req), timeout = get32(req + 4), nargs = get32(req + 8), nenv = get32(req + 12), input_len = get32(req + 16);
    char *p = req + 20, *end = req + len;
    if (nargs < 1 || nargs > 100000 || nenv > 100000 || input_len > (uint32_t)(end - p)) {
        answer(id, 3, EINVAL, NULL, 0, "malformed request", 17);
        return;
    }
    char **argv = calloc(nargs + 1, sizeof *argv), **envp = calloc(nenv + 1, sizeof *envp);
    if (!argv || !envp) {
        free(argv), free(envp);
        answer(id, 3, ENOMEM, NULL, 0, "out of memory", 13);
        return;
    }
    char *strings_end = end - input_len;
    for (uint32_t i = 0; i < nargs + nenv; i++) {
        char *nul = p < strings_end ? memchr(p, '\0', (size_t)(strings_end - p)) : NULL;
        if (!nul) {
            free(argv), free(envp);
            answer(id, 3, EINVAL, NULL, 0, "malformed request", 17);
            return;
        }
        if (i < nargs) argv[i] = p;
        else envp[i - nargs] = p;
        p = nul + 1;
    }
    struct command *c = NULL;
    for (int i = 0; i < MAX_COMMANDS && !c; i++)
        if (!commands[i].used) c = &commands[i];
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    pid_t pid = -1;
    int why = EAGAIN;
    if (c && cloexec_pipe(in) == 0 && cloexec_pipe(out) == 0 && cloexec_pipe(err) == 0) {
        pid = fork();
        why = errno;
        if (pid == 0) exec_child(in[0], out[1], err[1], argv, envp);
    }
    free(argv), free(envp);
    close_fd(&in[0]), close_fd(&out[1]), close_fd(&err[1]);
    if (pid < 0) {
        close_fd(&in[1]), close_fd(&out[0]), close_fd(&err[0]);
        answer(id, 3, (uint32_t)why, NULL, 0, why == EAGAIN ? "too many commands at once" : "fork failed", why == EAGAIN ? 25 : 11);
        return;
    }
    memset(c, 0, sizeof *c);
    c->used = true, c->id = id, c->pid = pid;
    c->deadline_ms = timeout ? now_ms() + timeout : -1;
    c->in_fd = in[1], c->out_fd = out[0], c->err_fd = err[0];
    fcntl(c->in_fd, F_SETFL, O_NONBLOCK), fcntl(c->out_fd, F_SETFL, O_NONBLOCK), fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
    c->input_len = input_len;
    if (input_len > 0 && (c->input = malloc(input_len)) != NULL) memcpy(c->input, strings_end, input_len);
    else close_fd(&c->in_fd); /* no input: the command reads EOF */
    running++;
}

static void feed(struct command *c) {
    while (c->input_off < c->input_len) {
        ssize_t n = write(c->in_fd, c->input + c->input_off, c->input_len - c->input_off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0) break; /* the command closed its stdin: it does not want the rest */
        c->input_off += (uint32_t)n;
    }
    close_fd(&c->in_fd);
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        for (int i = 0; i < MAX_COMMANDS; i++)
            if (commands[i].used && commands[i].pid == pid) commands[i].reaped = true, commands[i].status = status;
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* the daemon's terminal or group: only EOF on stdin ends us */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("hpcq-command-runner: signalfd");
        return 1;
    }
    fcntl(0, F_SETFL, O_NONBLOCK);
    char *req = malloc(MAX_REQUEST + 4);
    uint32_t have = 0;
    bool eof = false;
    if (!req) return 1;

    while (!eof || running > 0) {
        struct pollfd fds[2 + 3 * MAX_COMMANDS];
        struct command *owner[2 + 3 * MAX_COMMANDS];
        int n = 0;
        fds[n] = (struct pollfd){.fd = sfd, .events = POLLIN}, owner[n++] = NULL;
        if (!eof) fds[n] = (struct pollfd){.fd = 0, .events = POLLIN}, owner[n++] = NULL;
        long long next = -1, now = now_ms();
        for (int i = 0; i < MAX_COMMANDS; i++) {
            struct command *c = &commands[i];
            if (!c->used) continue;
            if (c->in_fd >= 0) fds[n] = (struct pollfd){.fd = c->in_fd, .events = POLLOUT}, owner[n++] = c;
            if (c->out_fd >= 0) fds[n] = (struct pollfd){.fd = c->out_fd, .events = POLLIN}, owner[n++] = c;
            if (c->err_fd >= 0) fds[n] = (struct pollfd){.fd = c->err_fd, .events = POLLIN}, owner[n++] = c;
            if (c->deadline_ms >= 0 && !c->timed_out && (next < 0 || c->deadline_ms < next)) next = c->deadline_ms;
        }
        int wait = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
        if (poll(fds, (nfds_t)n, wait) < 0 && errno != EINTR) {
            perror("hpcq-command-runner: poll");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            if (!fds[k].revents) continue;
            struct command *c = owner[k];
            if (fds[k].fd == sfd) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) > 0) {
                }
                reap();
            } else if (!c) {
                ssize_t r = read(0, req + have, MAX_REQUEST + 4 - have);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) eof = true;
                if (r > 0) have += (uint32_t)r;
                /* Every whole request in the buffer; a request over the limit is a broken daemon. */
                while (have >= 4) {
                    uint32_t len = get32(req);
                    if (len > MAX_REQUEST) {
                        fprintf(stderr, "hpcq-command-runner: request of %u bytes refused\n", len);
                        return 1;
                    }
                    if (have < 4 + len) break;
                    start(req + 4, len);
                    memmove(req, req + 4 + len, have - 4 - len);
                    have -= 4 + len;
                }
            } else if (fds[k].fd == c->in_fd) {
                feed(c);
            } else if (fds[k].fd == c->out_fd) {
                drain(&c->out_fd, &c->out, &c->out_len, &c->out_cap, MAX_STDOUT);
            } else if (fds[k].fd == c->err_fd) {
                drain(&c->err_fd, &c->err, &c->err_len, &c->err_cap, MAX_STDERR);
            }
        }
        now = now_ms();
        for (int i = 0; i < MAX_COMMANDS; i++) {
            struct command *c = &commands[i];
            if (!c->used) continue;
            if (!c->timed_out && c->deadline_ms >= 0 && now >= c->deadline_ms) {
                c->timed_out = true;
                if (!c->reaped) kill(c->pid, SIGKILL);
            }
            /* Done once it was reaped and its output read to the end (or, killed at its deadline,
             * once reaped: a process it left behind may hold the pipes open). */
            if (c->reaped && ((c->out_fd < 0 && c->err_fd < 0) || c->timed_out)) finish(c);
        }
    }
    return 0;
}
