/* iothubctl: the admin CLI of iothub (SPEC §4), modelled on fioctl. `iothubctl GROUP COMMAND
 * [OPERANDS] [OPTIONS]`; options may come anywhere. This file holds the command table, help
 * and dispatch; cli/commands.c and cli/activate.c do the work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <config.h>
#include <curl/curl.h>
#include <jansson.h>

#include "cli/args.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/device_cas.h"
#include "cli/rollouts.h"
#include "cli/nodes.h"
#include "cli/revoke.h"
#include "cli/firmware.h"
#include "cli/settings.h"

#define B(o) OPT_BIT(OPT_##o)

struct command {
    const char *group, *name; /* name is NULL for one-word commands (audit, health) */
    int min_words, max_words; /* operands after the command words */
    uint64_t options;         /* accepted besides the global ones */
    const char *usage, *summary, *details;
    int (*run)(struct hub_ctl *ctl);
};

static const struct command commands[] = {
    {"products", "create", 1, 1, 0, "products create NAME",
     "create a product; prints its key and its secret (shown once)", NULL, hub_cmd_products_create},
    {"products", "list", 0, 0, 0, "products list", "list the products", NULL,
     hub_cmd_products_list},
    {"devices", "provision", 0, 0,
     B(PRODUCT) | B(SERIAL) | B(PRODUCT_SECRET) | B(PRODUCT_SECRET_FILE),
     "devices provision --product KEY --serial SN [--product-secret S | --product-secret-file F]",
     "provision a device; prints its id and its secret (shown once)",
     "With the admin token (role provisioner or above), or without one as a factory line does:\n"
     "--product-secret-file F (or --product-secret S) authenticates with the product's key\n"
     "and secret (product claim).\n",
     hub_cmd_devices_provision},
    {"devices", "list", 0, 0, B(LIMIT) | B(AFTER) | B(ALL) | B(PENDING),
     "devices list [--limit N] [--after ID] [--all] [--pending]", "list devices, one page or --all",
     "--limit N: page size, 1..1000 (server default 100); --after ID: the page after device ID;\n"
     "--all: follow the pages to the end; --pending: only devices awaiting approval (registered\n"
     "by a device CA with policy approve).\n",
     hub_cmd_devices_list},
    {"devices", "show", 1, 1, 0, "devices show ID", "show a device with its certificates", NULL,
     hub_cmd_devices_show},
    {"devices", "revoke", 1, 1, B(REASON), "devices revoke ID [--reason R]",
     "revoke every certificate of a device and close its sessions",
     "R: an RFC 5280 reason name (unspecified, keyCompromise, cACompromise,\n"
     "affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise);\n"
     "default unspecified.\n",
     hub_cmd_devices_revoke},
    {"devices", "reset", 1, 1, 0, "devices reset ID",
     "revoke a device's certificates and give it a new secret (shown once)", NULL,
     hub_cmd_devices_reset},
    {"certs", "list", 0, 0, B(DEVICE) | B(LIMIT), "certs list [--device ID] [--limit N]",
     "list certificates, newest first (of one device with --device)", NULL, hub_cmd_certs_list},
    {"certs", "show", 1, 1, B(PEM), "certs show SERIAL [--pem]",
     "show a certificate; --pem prints only its PEM", NULL, hub_cmd_certs_show},
    {"certs", "revoke", 1, 1, B(REASON), "certs revoke SERIAL --reason R", "revoke one certificate",
     "R: an RFC 5280 reason name, e.g. keyCompromise, superseded, cessationOfOperation.\n",
     hub_cmd_certs_revoke},
    {"crl", "get", 0, 0, B(FORMAT) | B(OUTPUT), "crl get [--format der|pem] [-o FILE]",
     "download the current CRL (DER by default)",
     "DER is written to a terminal only with -o FILE. No token needed.\n", hub_cmd_crl_get},
    {"ca", "get", 0, 0, B(FORMAT) | B(OUTPUT), "ca get [--format pem|p7b] [-o FILE]",
     "download the issuing CA and the root (PEM by default)",
     "p7b (PKCS#7 certs-only DER) is written to a terminal only with -o FILE. No token needed.\n"
     "Fetching the trust anchor over a connection it does not yet protect proves nothing: get\n"
     "it out of band (`iothubd ca chain`) for --cacert.\n",
     hub_cmd_ca_get},
    {"tokens", "create", 1, 1, B(ROLE), "tokens create NAME --role ROLE",
     "create an API token; prints it (shown once)",
     "ROLE: admin, operator (devices, revocation, commands), provisioner (create devices) or\n"
     "auditor (read only).\n",
     hub_cmd_tokens_create},
    {"tokens", "list", 0, 0, 0, "tokens list",
     "list the API tokens (ids, names, roles; no secrets)", NULL, hub_cmd_tokens_list},
    {"tokens", "revoke", 1, 1, 0, "tokens revoke TOKEN_ID",
     "revoke an API token at once (TOKEN_ID: the 16 hex digits after iothub_)",
     "To rotate a token, create its replacement first; the last active admin token cannot be\n"
     "revoked.\n",
     hub_cmd_tokens_revoke},
    {"services", "create", 1, 1, B(PUBLISH) | B(SUBSCRIBE),
     "services create NAME --publish PATTERN... --subscribe PATTERN...",
     "create a backend service with MQTT topic patterns; prints its id and secret (once)",
     "Each option takes one or more patterns (the words up to the next option) and may be\n"
     "repeated; NAME comes first. \"+\" and \"#\" are MQTT wildcards, a leading \"!\" denies.\n",
     hub_cmd_services_create},
    {"services", "activate", 1, 1, B(SECRET) | B(SECRET_FILE) | B(OUT_DIR),
     "services activate ID (--secret-file F | --secret S) --out-dir DIR",
     "make the service's key and certificate for MQTT (key.pem, cert.pem, ca.pem in DIR)",
     "Generates an EC P-256 key locally (DIR/key.pem, mode 0600), sends a CSR with HTTP Basic\n"
     "ID:secret and writes the certificate (DIR/cert.pem) and the CA chain (DIR/ca.pem), ready\n"
     "for mosquitto_sub --cafile DIR/ca.pem --cert DIR/cert.pem --key DIR/key.pem. No token\n"
     "needed. A new activation supersedes (revokes) the service's previous certificate.\n",
     hub_cmd_services_activate},
    {"commands", "send", 2, 3, B(PAYLOAD_FILE),
     "commands send DEVICE_ID NAME [PAYLOAD | --payload-file F]",
     "publish a command to devices/DEVICE_ID/commands/NAME (QoS 1)",
     "The payload (at most 64 KiB of UTF-8 text) reaches the device byte for byte.\n",
     hub_cmd_commands_send},
    /* Factory device CAs (issue 15, cli/device_cas.c). */
    {"device-cas", "code", 0, 0, 0, "device-cas code",
     "get a one-time registration code (CN of the verification certificate, 1 h)", NULL,
     hub_cmd_device_cas_code},
    {"device-cas", "register", 2, 4, B(PRODUCT),
     "device-cas register --product KEY CA_PEM VERIFICATION_PEM [auto|approve [CRL_URL]]",
     "register a factory device CA with its proof of possession",
     "CA_PEM: the device CA's certificate (cA=TRUE, keyUsage keyCertSign); VERIFICATION_PEM:\n"
     "a certificate with CN=<code from `device-cas code`> signed by the CA's key. auto: its\n"
     "devices are registered active on first connection; approve: held pending until\n"
     "`devices approve`. CRL_URL: where the hub fetches the CA's CRL (http or https).\n",
     hub_cmd_device_cas_register},
    {"device-cas", "list", 0, 0, 0, "device-cas list",
     "list the device CAs (what the hub trusts for devices)", NULL, hub_cmd_device_cas_list},
    {"device-cas", "show", 1, 1, B(PEM), "device-cas show ID [--pem]",
     "show a device CA; --pem prints only its certificate", NULL, hub_cmd_device_cas_show},
    {"device-cas", "enable", 1, 1, 0, "device-cas enable ID", "trust a device CA's devices again",
     NULL, hub_cmd_device_cas_enable},
    {"device-cas", "disable", 1, 1, 0, "device-cas disable ID",
     "refuse every device of a device CA and close their sessions", NULL,
     hub_cmd_device_cas_disable},
    {"device-cas", "registration", 2, 2, 0, "device-cas registration ID auto|approve",
     "set a device CA's policy for devices it has not registered yet",
     "auto: registered active on their first connection; approve: held pending (refused at\n"
     "CONNECT, listed by GET /v1/devices?status=pending) until `devices approve`.\n",
     hub_cmd_device_cas_registration},
    {"device-cas", "crl", 3, 3, 0, "device-cas crl upload ID FILE",
     "upload a CRL of the device CA (DER or PEM; signed by it, cRLNumber increasing)", NULL,
     hub_cmd_device_cas_crl},
    {"devices", "approve", 1, 1, 0, "devices approve ID",
     "approve a pending device (registered by a device CA with policy approve)", NULL,
     hub_cmd_devices_approve},
    /* rollouts (issue 16) */
    {"devices", "tag", 1, 33, 0, "devices tag ID [TAG...]",
     "replace a device's tags (none: remove them all)",
     "A tag is 1 to 64 letters, digits and -_.: ; a device has at most 32. Rollouts target\n"
     "devices by tag.\n",
     hub_cmd_devices_tag},
    {"rollouts", "create", 0, 0,
     B(FIRMWARE) | B(PRODUCT) | B(TAG) | B(DEVICES) | B(WAVES) | B(WAVE_PAUSE) |
         B(FAILURE_THRESHOLD),
     "rollouts create --firmware ID (--product KEY | --tag TAG | --devices ID,ID...) "
     "[--waves 10,50%,100%] [--wave-pause S] [--failure-threshold N|N%]",
     "roll a firmware image out to devices in waves",
     "--waves: the cumulative size reached by each wave, a device count or a percentage of\n"
     "the target (default 100%); --wave-pause S: seconds between a wave's end and the next;\n"
     "--failure-threshold: failed + rolled back devices that halt the rollout (default 10%).\n",
     hub_cmd_rollouts_create},
    {"rollouts", "list", 0, 0, B(LIMIT) | B(BEFORE), "rollouts list [--limit N] [--before ID]",
     "list rollouts, newest first", NULL, hub_cmd_rollouts_list},
    {"rollouts", "show", 1, 1, B(LIMIT) | B(AFTER) | B(STATE),
     "rollouts show ID [--state S] [--limit N] [--after DEVICE_ID]",
     "show a rollout, its device counts and a page of its devices", NULL,
     hub_cmd_rollouts_show},
    {"rollouts", "pause", 1, 1, 0, "rollouts pause ID", "pause a running rollout", NULL,
     hub_cmd_rollouts_pause},
    {"rollouts", "resume", 1, 1, 0, "rollouts resume ID", "resume a paused rollout", NULL,
     hub_cmd_rollouts_resume},
    {"rollouts", "cancel", 1, 1, 0, "rollouts cancel ID",
     "cancel a rollout (its pending devices are skipped)", NULL, hub_cmd_rollouts_cancel},
    /* firmware (cli/firmware.c) */
    {"firmware-signers", "add", 2, 2, 0, "firmware-signers add NAME CERT.pem",
     "register a firmware signing certificate (admin)",
     "CERT.pem: one PEM certificate with keyUsage digitalSignature, an EC P-256/P-384 or\n"
     "RSA >= 2048 key, within its validity. Only the certificate is sent; the key stays with\n"
     "you. See docs/firmware.md.\n",
     hub_cmd_fw_signers_add},
    {"firmware-signers", "list", 0, 0, 0, "firmware-signers list", "list the firmware signers",
     NULL, hub_cmd_fw_signers_list},
    {"firmware-signers", "show", 1, 1, 0, "firmware-signers show ID",
     "show a firmware signer with its certificate", NULL, hub_cmd_fw_signers_show},
    {"firmware-signers", "disable", 1, 1, 0, "firmware-signers disable ID",
     "disable a signer: no new upload may name it, devices stop trusting it", NULL,
     hub_cmd_fw_signers_disable},
    {"firmware-signers", "enable", 1, 1, 0, "firmware-signers enable ID",
     "enable a disabled signer again", NULL, hub_cmd_fw_signers_enable},
    {"firmware", "upload", 1, 1,
     B(PRODUCT) | B(FIRMWARE_VERSION) | B(SIGNATURE) | B(SIGNER) | B(HARDWARE) | B(MIN_VERSION) |
         B(NOTES),
     "firmware upload FILE --product KEY --firmware-version V --signature FILE.sig --signer ID "
     "[--hardware A,B] [--min-version V] [--notes TEXT]",
     "upload a signed firmware image (streamed from FILE; admin)",
     "FILE.sig: what `openssl dgst -sha256 -sign key.pem -out FILE.sig FILE` writes. --signer:\n"
     "the signer's id or SHA-256 fingerprint. The version must be newer than every image of\n"
     "the product (dotted numbers). --firmware-version, because --version prints iothubctl's.\n",
     hub_cmd_firmware_upload},
    {"firmware", "list", 0, 0, B(PRODUCT), "firmware list [--product KEY]",
     "list the firmware images, newest version first", NULL, hub_cmd_firmware_list},
    {"firmware", "show", 1, 1, 0, "firmware show ID", "show an image's manifest", NULL,
     hub_cmd_firmware_show},
    {"firmware", "delete", 1, 1, 0, "firmware delete ID",
     "delete an image (refused while a rollout uses it)", NULL, hub_cmd_firmware_delete},
    {"audit", NULL, 0, 0, B(LIMIT) | B(BEFORE), "audit [--limit N] [--before ID]",
     "show the audit log, newest first", NULL, hub_cmd_audit},
    /* bulk revocation (cli/revoke.c) */
    {"revoke", NULL, 0, 1,
     B(PRODUCT) | B(CA) | B(ISSUED_BETWEEN) | B(DEVICES) | B(DEVICES_FILE) | B(SERIALS_FILE) |
         B(REASON) | B(NO_WAIT),
     "revoke (--product KEY | --ca SERIAL) [--issued-between T1 T2] | --devices ID,ID... | "
     "--devices-file F | --serials-file F [--reason R] [--no-wait]",
     "revoke many certificates as one background job, printing its progress",
     "--product KEY: every valid certificate of the product's devices (the devices become\n"
     "revoked); --ca SERIAL (or \"issuing\"): every valid certificate that issuing CA signed;\n"
     "--issued-between T1 T2 (RFC 3339 UTC, 2026-12-07T10:00:00Z): only those issued in\n"
     "[T1, T2); --devices, --devices-file F, --serials-file F (one per line or comma-separated,\n"
     "'-' reads standard input): lists, sent as jobs of 1,000. --reason R: an RFC 5280 reason\n"
     "(default unspecified). Waits until every job is done (exit 0) or failed (exit 1), unless\n"
     "--no-wait.\n",
     hub_cmd_revoke},
    /* the node registry (cli/nodes.c) */
    {"nodes", NULL, 0, 0, 0, "nodes",
     "list the nodes of the cluster: alive, version, MQTT connections and sessions", NULL,
     hub_cmd_nodes},
    {"health", NULL, 0, 0, 0, "health", "check the hub's health (exit 1 when unavailable)",
     "No token needed.\n", hub_cmd_health},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char global_help[] =
    "Options (every command):\n"
    "  --url URL            the hub's API, https://HOST:PORT          (env IOTHUB_URL)\n"
    "  --token-file FILE    read the API token from FILE              (env IOTHUB_TOKEN)\n"
    "  --token TOKEN        the API token (visible to `ps`: prefer a file or the env)\n"
    "  --cacert FILE        trust anchor: the hub's CA chain (PEM)    (env IOTHUB_CACERT)\n"
    "  --config FILE        config file (default $XDG_CONFIG_HOME/iothub/iothubctl.conf or\n"
    "                       ~/.config/iothub/iothubctl.conf): `key = value` lines with url,\n"
    "                       token, token_file, cacert. Flags beat env beat file.\n"
    "  --insecure           do not verify the server's certificate (warns; tests only)\n"
    "  --json               print the server's JSON as received\n"
    "  -h, --help           help (also after a command)\n"
    "  -V, --version        print the version\n"
    "\n"
    "Exit codes: 0 ok, 1 the server refused (4xx/5xx), 2 usage or configuration error,\n"
    "3 cannot reach the server, 4 TLS failure (e.g. untrusted certificate: use --cacert).\n";

static void print_overview(FILE *f, const char *group)
{
    fprintf(f, "Usage: iothubctl [OPTIONS] COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        if (group != NULL && strcmp(group, c->group) != 0)
            continue;
        fprintf(f, "  %s\n      %s\n", c->usage, c->summary);
    }
    fprintf(f, "\n%s", global_help);
}

static void print_command_help(const struct command *c)
{
    printf("Usage: iothubctl %s\n\n%s.\n", c->usage, c->summary);
    if (c->details != NULL)
        printf("\n%s", c->details);
    printf("\n%s", global_help);
}

/* Finds the command named by the first words; *group_known tells whether pos[0] names a
 * group at all. */
static const struct command *find(const struct hub_args *a, int *group_known)
{
    *group_known = 0;
    for (size_t i = 0; a->npos > 0 && i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        if (strcmp(c->group, a->pos[0]) != 0)
            continue;
        *group_known = 1;
        if (c->name == NULL || (a->npos > 1 && strcmp(c->name, a->pos[1]) == 0))
            return c;
    }
    return NULL;
}

static int run(const struct command *c, const struct hub_args *a)
{
    struct hub_settings settings;
    struct hub_client client;
    int words = c->name ? 2 : 1;
    struct hub_ctl ctl = {
        .a = a,
        .client = &client,
        .words = a->pos + words,
        .nwords = a->npos - words,
        .usage = c->usage,
        .json = a->val[OPT_JSON] != NULL,
    };
    uint64_t extra = a->given & ~(c->options | OPT_GLOBAL);
    for (int o = 0; extra != 0 && o < OPT_COUNT; o++)
        if (extra & OPT_BIT(o))
            return hub_ctl_usage_error(&ctl, "%s does not apply to this command", hub_args_name(o));
    if (ctl.nwords < c->min_words)
        return hub_ctl_usage_error(&ctl, "missing argument");
    if (ctl.nwords > c->max_words)
        return hub_ctl_usage_error(&ctl, "unexpected argument \"%s\"", ctl.words[c->max_words]);
    int rc = hub_settings_load(a, &settings);
    if (rc != 0)
        return rc;
    rc = hub_client_init(&client, &settings);
    if (rc == 0)
        rc = c->run(&ctl);
    hub_client_free(&client);
    hub_settings_free(&settings);
    if (fflush(stdout) != 0 && rc == 0) {
        perror("error: writing the output");
        rc = HUB_EXIT_USAGE;
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct hub_args a;
    int group_known;
    if (hub_args_parse(argc, argv, &a) != 0)
        return HUB_EXIT_USAGE;
    if (a.val[OPT_VERSION] != NULL) {
        printf("iothubctl %s (libcurl %s, jansson %s)\n", PACKAGE_VERSION,
               curl_version_info(CURLVERSION_NOW)->version, JANSSON_VERSION);
        return 0;
    }
    int help = a.val[OPT_HELP] != NULL;
    if (a.npos > 0 && strcmp(a.pos[0], "help") == 0) {
        help = 1;
        memmove(a.pos, a.pos + 1, sizeof a.pos[0] * (size_t)--a.npos);
    }
    const struct command *c = find(&a, &group_known);
    if (c != NULL && help) {
        print_command_help(c);
        return 0;
    }
    if (c == NULL && help) {
        print_overview(stdout, group_known ? a.pos[0] : NULL);
        return 0;
    }
    if (c == NULL) {
        if (a.npos == 0)
            fprintf(stderr, "error: no command given\n");
        else if (!group_known)
            fprintf(stderr, "error: unknown command \"%s\"\n", a.pos[0]);
        else
            fprintf(stderr, "error: %s needs one of the commands below\n", a.pos[0]);
        print_overview(stderr, group_known ? a.pos[0] : NULL);
        return HUB_EXIT_USAGE;
    }
    return run(c, &a);
}
