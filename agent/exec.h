/* Child processes of the agent (telemetry command, command handler): run with a time limit,
 * stdin fed from memory, stdout and stderr captured up to a cap. */
#ifndef HUB_AGENT_EXEC_H
#define HUB_AGENT_EXEC_H

#include <stddef.h>

#include "util/buf.h"

struct hub_exec {
    const char *const *argv; /* argv[0] is looked up in PATH */
    const void *input;       /* written to the child's stdin, then closed; or NULL */
    size_t input_len;
    int timeout_s;
    size_t cap;       /* output beyond cap bytes is read and dropped */
    int merge_stderr; /* 1: stderr goes to the output too; 0: to the agent's stderr */
};

/* Runs the child to completion or its time limit (then SIGKILL to its process group). out receives
 * the output; *exit_code the exit status, 128+N for a signal, -1 on timeout; *truncated whether
 * output was dropped. Returns 0 or HUB_EIO (could not start it; logged). */
int hub_exec_run(const struct hub_exec *e, hub_buf_t *out, int *exit_code, int *truncated);

#endif
