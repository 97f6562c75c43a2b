#include "agent/fwstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/version.h"
#include "util/error.h"
#include "util/log.h"

static const char *phase_names[] = {"idle", "downloading", "installing", "switched"};

char hub_fw_other_slot(char slot)
{
    return slot == 'b' ? 'a' : 'b';
}

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

int hub_fw_state_load(const struct hub_state *st, const char *factory, struct hub_fw_state *fw)
{
    char path[1100], line[1024];
    memset(fw, 0, sizeof *fw);
    fw->slot = 'a';
    COPY(fw->installed, factory);
    hub_state_path(st, "firmware", path, sizeof path);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        hub_error("cannot open %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strstr(line, " = ");
        if (line[0] == '#' || line[0] == 0)
            continue;
        if (eq == NULL) {
            rc = HUB_EINVAL;
            break;
        }
        *eq = 0;
        const char *k = line, *v = eq + 3;
        if (strcmp(k, "installed") == 0 && hub_version_parse(v, NULL) == 0)
            COPY(fw->installed, v);
        else if (strcmp(k, "slot") == 0 && (v[0] == 'a' || v[0] == 'b') && v[1] == 0)
            fw->slot = v[0];
        else if (strcmp(k, "phase") == 0) {
            for (int i = 0; i < 4; i++)
                if (strcmp(v, phase_names[i]) == 0)
                    fw->phase = (enum hub_fw_phase)i;
        } else if (strcmp(k, "rollout") == 0)
            COPY(fw->rollout, v);
        else if (strcmp(k, "firmware_id") == 0)
            COPY(fw->firmware_id, v);
        else if (strcmp(k, "version") == 0)
            COPY(fw->version, v);
        else if (strcmp(k, "target") == 0 && (v[0] == 'a' || v[0] == 'b'))
            fw->target = v[0];
        else if (strcmp(k, "switched_at") == 0)
            fw->switched_at = strtoll(v, NULL, 10);
        else if (strcmp(k, "last_rollout") == 0)
            COPY(fw->last_rollout, v);
        else if (strcmp(k, "last_state") == 0)
            COPY(fw->last_state, v);
        else if (strcmp(k, "last_version") == 0)
            COPY(fw->last_version, v);
        else if (strcmp(k, "last_reason") == 0)
            COPY(fw->last_reason, v);
        else if (strcmp(k, "last_reported") == 0)
            fw->last_reported = atoi(v) != 0;
    }
    fclose(f);
    if (rc != 0)
        hub_error("%s: expected `key = value` lines", path);
    if (fw->phase != HUB_FW_IDLE && (fw->rollout[0] == 0 || fw->target == 0))
        fw->phase = HUB_FW_IDLE;
    return rc;
}

/* A value on one line: control characters become spaces. */
static void clean(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

int hub_fw_state_save(const struct hub_state *st, const struct hub_fw_state *fw_in)
{
    char path[1100];
    hub_buf_t b = HUB_BUF_INIT;
    /* One value per line whatever a notice carried: no line can be injected. */
    struct hub_fw_state copy = *fw_in, *fw = &copy;
    char *fields[] = {fw->installed,    fw->rollout,    fw->firmware_id,  fw->version,
                      fw->last_rollout, fw->last_state, fw->last_version, fw->last_reason};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        clean(fields[i]);
    int rc = hub_buf_printf(&b,
                            "# iothub-device firmware state (written by the agent)\n"
                            "installed = %s\nslot = %c\nphase = %s\nrollout = %s\n"
                            "firmware_id = %s\nversion = %s\ntarget = %c\nswitched_at = %lld\n"
                            "last_rollout = %s\nlast_state = %s\nlast_version = %s\n"
                            "last_reason = %s\nlast_reported = %d\n",
                            fw->installed, fw->slot, phase_names[fw->phase], fw->rollout,
                            fw->firmware_id, fw->version, fw->target ? fw->target : '-',
                            fw->switched_at, fw->last_rollout, fw->last_state, fw->last_version,
                            fw->last_reason, fw->last_reported);
    if (rc == 0)
        rc = hub_state_path(st, "firmware", path, sizeof path);
    if (rc == 0)
        rc = hub_state_file_write(path, b.data, b.len, 0600);
    hub_buf_free(&b);
    return rc;
}
