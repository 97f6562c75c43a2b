/* fork + execvp with three pipes serviced by poll(2) until the child closes its output and
 * exits, so a chatty child never blocks on a full pipe and a silent one is killed on time.
 * The child leads its own process group and keeps only fds 0, 1 and 2 (not the agent's MQTT
 * socket, lock or key files); on timeout the whole group is killed, background jobs too. */
#include "agent/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hub_exec_run(const struct hub_exec *e, hub_buf_t *out, int *exit_code, int *truncated)
{
    int in[2] = {-1, -1}, outp[2] = {-1, -1};
    *truncated = 0;
    *exit_code = -1;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0) {
        hub_error("pipe failed: %s", strerror(errno));
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        hub_error("fork failed: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in[0], 0);
        dup2(outp[1], 1);
        if (e->merge_stderr)
            dup2(outp[1], 2);
        if (close_range(3, ~0U, 0) != 0)
            for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
                close((int)fd);
        signal(SIGPIPE, SIG_DFL);
        execvp(e->argv[0], (char *const *)e->argv);
        fprintf(stderr, "iothub-device: cannot run %s: %s\n", e->argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: the group exists before any kill below */
    close(in[0]);
    close(outp[1]);
    in[0] = outp[1] = -1;
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t written = 0;
    if (e->input == NULL || e->input_len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    long long deadline = now_ms() + (long long)e->timeout_s * 1000;
    int timed_out = 0;
    while (outp[0] >= 0) {
        struct pollfd pf[2] = {{outp[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int n = poll(pf, in[1] >= 0 ? 2 : 1, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno != EINTR)
            break;
        if (in[1] >= 0 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], (const char *)e->input + written, e->input_len - written);
            if (w > 0)
                written += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                written = e->input_len; /* the child closed its stdin */
            if (written >= e->input_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t r = read(outp[0], buf, sizeof buf);
            if (r > 0) {
                size_t keep = out->len >= e->cap ? 0 : e->cap - out->len;
                if ((size_t)r > keep)
                    *truncated = 1;
                hub_buf_append(out, buf, (size_t)r < keep ? (size_t)r : keep);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(outp[0]);
                outp[0] = -1;
            }
        }
    }
    int status = 0;
    if (timed_out) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    } else {
        /* Output closed: the child is exiting; give it until the deadline. */
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (now_ms() >= deadline) {
                timed_out = 1;
                kill(-pid, SIGKILL);
                waitpid(pid, &status, 0);
                break;
            }
            usleep(10000);
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    if (outp[0] >= 0)
        close(outp[0]);
    if (hub_buf_reserve(out, 1) == 0)
        out->data[out->len] = 0;
    if (timed_out)
        *exit_code = -1;
    else if (WIFEXITED(status))
        *exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *exit_code = 128 + WTERMSIG(status);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    return HUB_EIO;
}
