/* The agent configuration file: a fixed table of keys, each with its parser. */
#include "agent/conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/version.h"
#include "util/error.h"
#include "util/log.h"

#define STR(field)                                                                                 \
    offsetof(struct hub_agent_conf, field), sizeof(((struct hub_agent_conf *)0)->field)

enum kind { K_STR, K_INT, K_SIZE, K_STORE, K_VERSION };

static const struct key {
    const char *name;
    enum kind kind;
    size_t off, size;
    long long min, max;
} keys[] = {
    {"hardware", K_STR, STR(hardware), 0, 0},
    {"firmware_version", K_VERSION, STR(firmware_version), 0, 0},
    {"firmware_install_hook", K_STR, STR(install_hook), 0, 0},
    {"firmware_reboot_hook", K_STR, STR(reboot_hook), 0, 0},
    {"firmware_health_hook", K_STR, STR(health_hook), 0, 0},
    {"firmware_rollback_hook", K_STR, STR(rollback_hook), 0, 0},
    {"firmware_slot_dir", K_STR, STR(slot_dir), 0, 0},
    {"firmware_cacert", K_STR, STR(firmware_cacert), 0, 0},
    {"firmware_signers_url", K_STR, STR(signers_url), 0, 0},
    {"firmware_max_size", K_SIZE, STR(max_size), 1, 1LL << 40},
    {"firmware_hook_timeout", K_INT, STR(hook_timeout_s), 1, 86400},
    {"firmware_health_timeout", K_INT, STR(health_timeout_s), 1, 86400},
    {"firmware_download_attempts", K_INT, STR(download_attempts), 1, 100},
    {"key_store", K_STORE, STR(key_enforced), 0, 0},
    {"key_passphrase_file", K_STR, STR(passphrase_file), 0, 0},
    {"key_passphrase_command", K_STR, STR(passphrase_command), 0, 0},
};

/* Trims spaces around a "key = value" line in place; 1 for a blank or comment line. */
static int split(char *line, char **k, char **v)
{
    line[strcspn(line, "\r\n")] = 0;
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line == 0 || *line == '#')
        return 1;
    char *eq = strchr(line, '=');
    if (eq == NULL)
        return -1;
    char *ke = eq;
    while (ke > line && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    *ke = 0;
    char *val = eq + 1;
    while (*val == ' ' || *val == '\t')
        val++;
    char *ve = val + strlen(val);
    while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    *ve = 0;
    *k = line;
    *v = val;
    return 0;
}

static int set(struct hub_agent_conf *c, const struct key *key, const char *v)
{
    char *p = (char *)c + key->off, *end;
    long long n;
    switch (key->kind) {
    case K_STR:
        if (strlen(v) >= key->size)
            return -1;
        memcpy(p, v, strlen(v) + 1);
        return 0;
    case K_VERSION:
        if (hub_version_parse(v, NULL) != 0 || strlen(v) >= key->size)
            return -1;
        memcpy(p, v, strlen(v) + 1);
        return 0;
    case K_STORE:
        if (strcmp(v, "enforced") != 0 && strcmp(v, "auto") != 0)
            return -1;
        *(int *)(void *)p = strcmp(v, "enforced") == 0;
        return 0;
    case K_INT:
    case K_SIZE:
        errno = 0;
        n = strtoll(v, &end, 10);
        if (key->kind == K_SIZE && (*end == 'k' || *end == 'K'))
            n <<= 10, end++;
        else if (key->kind == K_SIZE && (*end == 'M' || *end == 'm'))
            n <<= 20, end++;
        else if (key->kind == K_SIZE && (*end == 'G' || *end == 'g'))
            n <<= 30, end++;
        if (errno != 0 || end == v || *end != 0 || n < key->min || n > key->max)
            return -1;
        if (key->kind == K_INT)
            *(int *)(void *)p = (int)n;
        else
            *(long long *)(void *)p = n;
        return 0;
    }
    return -1;
}

int hub_agent_conf_load(const char *path, const char *dir, struct hub_agent_conf *c)
{
    char def[HUB_CONF_PATH_MAX + 16], line[2048];
    memset(c, 0, sizeof *c);
    snprintf(c->firmware_version, sizeof c->firmware_version, "0.0.0");
    c->max_size = 256LL << 20;
    c->hook_timeout_s = 300;
    c->health_timeout_s = 300;
    c->download_attempts = 5;
    if (path == NULL) {
        snprintf(def, sizeof def, "%s/agent.conf", dir);
        if (access(def, F_OK) != 0)
            return 0;
        path = def;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        hub_error("cannot open the agent configuration %s: %s", path, strerror(errno));
        return errno == ENOENT ? HUB_ENOTFOUND : HUB_EIO;
    }
    snprintf(c->path, sizeof c->path, "%.*s", (int)sizeof c->path - 1, path);
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        char *k, *v;
        lineno++;
        int s = split(line, &k, &v);
        if (s > 0)
            continue;
        const struct key *key = NULL;
        for (size_t i = 0; s == 0 && i < sizeof keys / sizeof keys[0]; i++)
            if (strcmp(keys[i].name, k) == 0)
                key = &keys[i];
        if (s < 0) {
            hub_error("%s line %d: expected key = value", path, lineno);
            rc = HUB_EINVAL;
        } else if (key == NULL) {
            hub_error("%s line %d: unknown key \"%s\"", path, lineno, k);
            rc = HUB_EINVAL;
        } else if (set(c, key, v) != 0) {
            hub_error("%s line %d: bad value for %s", path, lineno, k);
            rc = HUB_EINVAL;
        }
    }
    fclose(f);
    if (rc == 0 && c->passphrase_file[0] && c->passphrase_command[0]) {
        hub_error("%s: key_passphrase_file and key_passphrase_command exclude each other", path);
        rc = HUB_EINVAL;
    }
    return rc;
}
