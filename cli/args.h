/* iothubctl's command line: one pass over argv that separates options (anywhere, before or
 * after the command words) from positional words. `--` ends the options. */
#ifndef HUB_CLI_ARGS_H
#define HUB_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

enum hub_opt {
    /* global options, accepted by every command */
    OPT_URL,
    OPT_TOKEN,
    OPT_TOKEN_FILE,
    OPT_CACERT,
    OPT_CONFIG,
    OPT_JSON,
    OPT_INSECURE,
    OPT_HELP,
    OPT_VERSION,
    /* command options */
    OPT_PRODUCT,
    OPT_SERIAL,
    OPT_PRODUCT_SECRET,
    OPT_PRODUCT_SECRET_FILE,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_ALL,
    OPT_REASON,
    OPT_DEVICE,
    OPT_FORMAT,
    OPT_OUTPUT,
    OPT_ROLE,
    OPT_PUBLISH,
    OPT_SUBSCRIBE,
    OPT_SECRET,
    OPT_SECRET_FILE,
    OPT_OUT_DIR,
    OPT_PAYLOAD_FILE,
    OPT_PEM,
    OPT_BEFORE,
    /* rollouts (cli/rollouts.c) */
    OPT_FIRMWARE,
    OPT_TAG,
    OPT_DEVICES,
    OPT_WAVES,
    OPT_WAVE_PAUSE,
    OPT_FAILURE_THRESHOLD,
    OPT_STATE,
    /* firmware (cli/firmware.c) */
    OPT_FIRMWARE_VERSION,
    OPT_SIGNATURE,
    OPT_SIGNER,
    OPT_HARDWARE,
    OPT_MIN_VERSION,
    OPT_NOTES,
    OPT_PENDING, /* devices list --pending (factory devices awaiting approval) */
    /* bulk revocation (cli/revoke.c) */
    OPT_CA,
    OPT_ISSUED_BETWEEN,
    OPT_DEVICES_FILE,
    OPT_SERIALS_FILE,
    OPT_NO_WAIT,
    OPT_COUNT
};

#define OPT_BIT(o) (UINT64_C(1) << (o))
#define OPT_GLOBAL                                                                                 \
    (OPT_BIT(OPT_URL) | OPT_BIT(OPT_TOKEN) | OPT_BIT(OPT_TOKEN_FILE) | OPT_BIT(OPT_CACERT) |       \
     OPT_BIT(OPT_CONFIG) | OPT_BIT(OPT_JSON) | OPT_BIT(OPT_INSECURE) | OPT_BIT(OPT_HELP) |         \
     OPT_BIT(OPT_VERSION))

#define HUB_ARGS_MAX_POS 16
#define HUB_ARGS_MAX_LIST 64

/* The parsed command line. Strings point into argv (owned by the caller of main). */
struct hub_args {
    const char *val[OPT_COUNT]; /* an option's last value ("" for flags); NULL if absent */
    uint64_t given;             /* OPT_BIT of every option seen */
    const char *pos[HUB_ARGS_MAX_POS];
    int npos;
    const char *publish[HUB_ARGS_MAX_LIST], *subscribe[HUB_ARGS_MAX_LIST];
    size_t npublish, nsubscribe;
};

/* Parses argv[1..argc-1]. --publish and --subscribe take every following word that does not
 * start with '-' (and may be repeated). Returns 0, or 2 after printing a usage error. */
int hub_args_parse(int argc, char **argv, struct hub_args *a);
/* The long name of an option ("--limit"). */
const char *hub_args_name(enum hub_opt o);

#endif
