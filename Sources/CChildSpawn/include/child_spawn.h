#ifndef BACKSTOP_CHILD_SPAWN_H
#define BACKSTOP_CHILD_SPAWN_H
#include <sys/types.h>

/* What a child gets. Descriptors are the parent's; -1 means /dev/null. Every other
   descriptor is closed in the child. */
typedef struct {
    const char *executable;      /* a path, or a name looked up on the parent's PATH */
    char *const *argv;           /* NULL-terminated */
    char *const *envp;           /* NULL-terminated */
    int stdin_fd;
    int stdout_fd;
    const char *stderr_path;     /* created 0600 and truncated; NULL means /dev/null */
    int death_signal;            /* sent to the child when this process dies (PR_SET_PDEATHSIG) */
} backstop_spawn_request;

/* Starts a child: fork, then in the child default signal dispositions and an empty mask,
   PR_SET_PDEATHSIG, a check that the parent is still alive, the three standard descriptors,
   every other descriptor closed, execve. The fork runs on one dedicated thread that lives as
   long as the process, because the kernel sends the death signal when the *thread* that
   forked ends, not the process: a child forked on a pool thread that is later retired would
   be killed mid-job. Returns 0 and the pid, or an errno (ENOENT when the program is not
   found, or the errno of execve as reported by the child). Thread-safe. */
int backstop_spawn(const backstop_spawn_request *request, pid_t *pid);
#endif
