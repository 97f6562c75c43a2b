/* The agent's configuration file (`--config FILE`, else STATE/agent.conf when it exists):
 * `key = value` lines, '#' comments. It holds what the device maker decides (hardware
 * revision, firmware hooks, key store policy), not what enrollment learned (that is
 * STATE/state). Every key is optional; see docs/device.md. */
#ifndef HUB_AGENT_CONF_H
#define HUB_AGENT_CONF_H

#include <stddef.h>

#define HUB_CONF_PATH_MAX 1024

struct hub_agent_conf {
    char path[HUB_CONF_PATH_MAX]; /* the file read, or "" (none: defaults) */
    /* firmware updates */
    char hardware[64];                       /* e.g. rev-b; "" matches only notices for any */
    char firmware_version[32];               /* factory version until one is installed */
    char install_hook[HUB_CONF_PATH_MAX];    /* "" : the image is copied to slot_dir/SLOT.img */
    char reboot_hook[HUB_CONF_PATH_MAX];     /* "" : the agent re-executes itself */
    char health_hook[HUB_CONF_PATH_MAX];     /* "" : healthy = connected */
    char rollback_hook[HUB_CONF_PATH_MAX];   /* "" : nothing to run */
    char slot_dir[HUB_CONF_PATH_MAX];        /* "" : STATE/slots */
    char firmware_cacert[HUB_CONF_PATH_MAX]; /* "" : STATE/chain.pem (+ the pin) */
    char signers_url[HUB_CONF_PATH_MAX];     /* "" : API/v1/devices/ID/firmware-signers */
    long long max_size;                      /* bytes, default 256 MiB */
    int hook_timeout_s;                      /* default 300 */
    int health_timeout_s;                    /* default 300: to connect after the switch */
    int download_attempts;                   /* default 5 */
    /* key store */
    int key_enforced;                           /* key_store = enforced */
    char passphrase_file[HUB_CONF_PATH_MAX];    /* or "" */
    char passphrase_command[HUB_CONF_PATH_MAX]; /* or "" */
};

/* Fills c with the defaults, then reads path (NULL: dir/agent.conf if present). Unknown keys
 * and bad values are errors. Returns 0, HUB_ENOTFOUND (an explicit path is missing) or
 * HUB_EINVAL (logged with the line). */
int hub_agent_conf_load(const char *path, const char *dir, struct hub_agent_conf *c);

#endif
