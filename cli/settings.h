/* Where iothubctl finds the server URL, the admin token and the trust anchor: flags beat
 * the environment (IOTHUB_URL, IOTHUB_TOKEN, IOTHUB_CACERT), which beats the config file
 * (`key = value` lines: url, token, token_file, cacert). */
#ifndef HUB_CLI_SETTINGS_H
#define HUB_CLI_SETTINGS_H

#include "cli/args.h"

/* Resolved settings; every string is owned by the struct (hub_settings_free; the token is
 * wiped). Any of them may be NULL when no source gave it. */
struct hub_settings {
    char *url; /* without a trailing "/" or "/v1" */
    char *token;
    char *cacert;
    int insecure;
};

/* Resolves the settings from the parsed flags, the environment and the config file (--config,
 * else $XDG_CONFIG_HOME/iothub/iothubctl.conf or ~/.config/iothub/iothubctl.conf if it
 * exists). Returns 0, or 2 after printing why (unreadable or malformed file, a token in a
 * world-readable file, an unreadable token file, a URL that is not https://). */
int hub_settings_load(const struct hub_args *a, struct hub_settings *s);
/* Reads the first line of a secret file (token, service or product secret) into a new string
 * (*out, caller frees). what names it in errors. Returns 0, or 2 after printing why. */
int hub_settings_read_secret(const char *path, const char *what, char **out);
void hub_settings_free(struct hub_settings *s);

#endif
