/* iothub-device: the reference device agent. `enroll` turns a device id + secret into a key
 * pair made here and a certificate; `run` connects over mutual-TLS MQTT, publishes
 * telemetry, runs commands and renews the certificate; `status` shows the state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <config.h>
#include <curl/curl.h>

#include "agent/enroll.h"
#include "agent/keycmd.h"
#include "agent/run.h"
#include "agent/status.h"
#include "util/log.h"

static const char usage[] =
    "usage: iothub-device COMMAND [OPTIONS]\n"
    "\n"
    "  enroll   generate a key, send a CSR with the device id and secret, store the\n"
    "           certificate (--url, --cacert, --device-id, --secret-file | env\n"
    "           IOTHUB_DEVICE_SECRET, --dir, --key-type, --mqtt, --pin-sha256, --force)\n"
    "  run      connect over MQTT with the certificate: telemetry, commands, renewal\n"
    "           (--dir, --telemetry-command CMD --interval SEC | --stdin,\n"
    "           --command-handler PROG, --command-timeout SEC, --renew-before DAYS, --once,\n"
    "           --config FILE), firmware updates\n"
    "  status   the enrolled identity and certificate (--dir, --json)\n"
    "  key      status | migrate: the private key's encryption at rest (--dir, --config)\n"
    "\n"
    "The state directory defaults to " HUB_STATE_DEFAULT_DIR "; see docs/device.md.\n"
    "Environment: IOTHUB_LOG_LEVEL=debug|info|warn|error.\n";

int main(int argc, char **argv)
{
    enum hub_log_level level = HUB_LOG_INFO;
    const char *env = getenv("IOTHUB_LOG_LEVEL");
    if (env != NULL && hub_log_level_parse(env, &level) != 0) {
        fprintf(stderr, "iothub-device: IOTHUB_LOG_LEVEL must be debug, info, warn or error\n");
        return 2;
    }
    hub_log_setup(level, HUB_LOG_TEXT);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("iothub-device %s\n", PACKAGE_VERSION);
        return 0;
    }
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(argv[1], "enroll") == 0) {
        rc = hub_enroll_main(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "run") == 0) {
        rc = hub_run_main(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "status") == 0) {
        rc = hub_status_main(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "key") == 0) {
        rc = hub_keycmd_main(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "iothub-device: unknown command \"%s\"\n\n%s", argv[1], usage);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
