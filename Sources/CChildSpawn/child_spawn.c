#define _GNU_SOURCE
#include "child_spawn.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* One request at a time is handed to the spawner thread through this slot. */
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;     /* held by the caller for the whole spawn */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t state_changed = PTHREAD_COND_INITIALIZER;
static const backstop_spawn_request *pending_request;
static const char *pending_path;
static int pending_done;
static int pending_error;
static pid_t pending_pid;
static pthread_once_t spawner_once = PTHREAD_ONCE_INIT;
static int spawner_error;

/* Closes every descriptor >= `from` except `keep`. close_range when the kernel has it,
   a loop otherwise. Async-signal-safe. */
static void close_from(int from, int keep) {
    if (keep >= from) {
        if (keep > from) {
            if (syscall(SYS_close_range, (unsigned)from, (unsigned)(keep - 1), 0u) != 0)
                for (int fd = from; fd < keep; fd++) close(fd);
        }
        from = keep + 1;
    }
    if (syscall(SYS_close_range, (unsigned)from, ~0u, 0u) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536) max = 65536;
        for (int fd = from; fd < max; fd++) if (fd != keep) close(fd);
    }
}

/* Puts `fd` (or /dev/null when -1) on `target`. Async-signal-safe. */
static int place(int fd, int target, int flags) {
    if (fd < 0) {
        fd = open("/dev/null", flags);
        if (fd < 0) return -1;
    }
    if (fd == target) {
        int current = fcntl(fd, F_GETFD);
        return current < 0 ? -1 : fcntl(fd, F_SETFD, current & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

/* The child between fork and execve: only async-signal-safe calls. Never returns. */
static void run_child(const backstop_spawn_request *request, const char *path, pid_t parent, int error_fd) {
    sigset_t empty;
    sigemptyset(&empty);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) (void)sigaction(sig, &action, NULL);
    }
    sigprocmask(SIG_SETMASK, &empty, NULL);
    int failure = 0;
    /* Its own process group, so stopping it reaches what it starts too (pg_basebackup's WAL
       streamer, a wrapper's real program); the parent sets it as well, whichever runs first. */
    (void)setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, request->death_signal) != 0) failure = errno;
    /* The parent may have died between fork and prctl: then nobody would send the signal. */
    else if (getppid() != parent) failure = ESRCH;
    else {
        /* stdout first, then stdin: a pipe end numbered 0 or 1 is never overwritten before use
           (serve's own 0/1/2 are taken, so pipe ends are >= 3 in practice). */
        int stderr_fd = request->stderr_path ? open(request->stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        /* 64 KiB reserved for the stderr file while there is room (its size stays 0): a child
           that fails because the disk filled under it (the backup volume also holds .state/,
           where this file lives) can still write the error that says so. Best effort: a file
           system without fallocate, or one already full, just gets none. */
        if (stderr_fd >= 0) (void)fallocate(stderr_fd, FALLOC_FL_KEEP_SIZE, 0, 65536);
        if (request->stderr_path && stderr_fd < 0) failure = errno;
        else if (place(request->stdout_fd, 1, O_WRONLY) != 0) failure = errno;
        else if (place(request->stdin_fd, 0, O_RDONLY) != 0) failure = errno;
        else if (place(stderr_fd, 2, O_WRONLY) != 0) failure = errno;
        else {
            close_from(3, error_fd);
            execve(path, request->argv, request->envp);
            failure = errno;
        }
    }
    ssize_t ignored = write(error_fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

/* Forks one child for the pending request; on the spawner thread. */
static int fork_child(const backstop_spawn_request *request, const char *path, pid_t *pid) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return errno;
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int error = errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return error;
    }
    if (child == 0) {
        close(pipe_fds[0]);
        run_child(request, path, parent, pipe_fds[1]);
    }
    (void)setpgid(child, child);
    close(pipe_fds[1]);
    int failure = 0;
    ssize_t n;
    do { n = read(pipe_fds[0], &failure, sizeof failure); } while (n < 0 && errno == EINTR);
    close(pipe_fds[0]);
    if (n == (ssize_t)sizeof failure) {
        /* execve (or the set-up before it) failed: reap the child, report its errno. */
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return failure != 0 ? failure : ECHILD;
    }
    *pid = child;
    return 0;
}

static void *spawner_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&state_lock);
    for (;;) {
        while (pending_request == NULL || pending_done) pthread_cond_wait(&state_changed, &state_lock);
        const backstop_spawn_request *request = pending_request;
        const char *path = pending_path;
        pthread_mutex_unlock(&state_lock);
        pid_t pid = 0;
        int error = fork_child(request, path, &pid);
        pthread_mutex_lock(&state_lock);
        pending_error = error;
        pending_pid = pid;
        pending_done = 1;
        pthread_cond_broadcast(&state_changed);
    }
    return NULL;
}

static void start_spawner(void) {
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    /* All signals blocked on the spawner: it must never run a handler between fork steps. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    spawner_error = pthread_create(&thread, &attributes, spawner_main, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attributes);
}

/* A name without '/' looked up on PATH (as posix_spawnp and execvp do); in the caller's
   thread, before fork, where malloc is allowed. */
static char *resolve(const char *executable) {
    if (strchr(executable, '/') != NULL) return strdup(executable);
    const char *search = getenv("PATH");
    if (search == NULL || *search == 0) search = "/usr/local/bin:/usr/bin:/bin";
    size_t name_length = strlen(executable);
    const char *start = search;
    for (;;) {
        const char *end = strchr(start, ':');
        size_t dir_length = end ? (size_t)(end - start) : strlen(start);
        char *candidate = malloc(dir_length + name_length + 3);
        if (candidate == NULL) return NULL;
        if (dir_length == 0) snprintf(candidate, name_length + 3, "./%s", executable);
        else snprintf(candidate, dir_length + name_length + 2, "%.*s/%s", (int)dir_length, start, executable);
        if (access(candidate, X_OK) == 0) return candidate;
        free(candidate);
        if (end == NULL) return NULL;
        start = end + 1;
    }
}

int backstop_spawn(const backstop_spawn_request *request, pid_t *pid) {
    pthread_once(&spawner_once, start_spawner);
    if (spawner_error != 0) return spawner_error;
    char *path = resolve(request->executable);
    if (path == NULL) return ENOENT;
    pthread_mutex_lock(&slot_lock);
    pthread_mutex_lock(&state_lock);
    pending_request = request;
    pending_path = path;
    pending_done = 0;
    pthread_cond_broadcast(&state_changed);
    while (!pending_done) pthread_cond_wait(&state_changed, &state_lock);
    int error = pending_error;
    *pid = pending_pid;
    pending_request = NULL;
    pthread_mutex_unlock(&state_lock);
    pthread_mutex_unlock(&slot_lock);
    free(path);
    return error;
}
