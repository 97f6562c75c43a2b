/* Status: the state file and the loaded certificate, as text or one JSON object. */
#include "agent/status.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/pk.h>

#include "agent/fwstate.h"
#include "agent/keystore.h"
#include "agent/state.h"
#include "util/log.h"
#include "util/secure.h"

static void rfc3339(time_t t, char out[32])
{
    struct tm tm;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

/* The key's type as enrollment names it, read from key.pem. */
static void key_type(const struct hub_state *st, char *out, size_t len)
{
    char path[1100];
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    hub_state_path(st, "key.pem", path, sizeof path);
    hub_buf_t pem = HUB_BUF_INIT;
    int encrypted = hub_state_file_read(path, &pem, 32768) == 0 &&
                    hub_keystore_is_encrypted((const char *)pem.data);
    hub_wipe(pem.data, pem.len);
    hub_buf_free(&pem);
    if (encrypted) /* no passphrase here: the type enrollment recorded */
        snprintf(out, len, "%s (encrypted)", st->key_type);
    else if (mbedtls_pk_parse_keyfile(&pk, path, NULL) != 0)
        snprintf(out, len, "unreadable");
    else if (mbedtls_pk_get_type(&pk) == MBEDTLS_PK_RSA)
        snprintf(out, len, "rsa-%zu", mbedtls_pk_get_bitlen(&pk));
    else
        snprintf(out, len, "ec-p%zu", mbedtls_pk_get_bitlen(&pk));
    mbedtls_pk_free(&pk);
}

int hub_status_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = HUB_STATE_DEFAULT_DIR;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 'j': json = 1; break;
        case 'h': puts("usage: iothub-device status [--dir STATE] [--json]"); return 0;
        default: fputs("usage: iothub-device status [--dir STATE] [--json]\n", stderr); return 2;
        }
    }
    struct hub_state st;
    struct hub_cert_info ci;
    char path[1100], nb[32], na[32], kt[32], mqtt[300];
    if (hub_state_load(dir, &st) != 0)
        return 1;
    /* Read-only: no lock, no recovery (`run` does both); a pending renewal is reported. */
    hub_state_path(&st, "renew.key", path, sizeof path);
    int pending = access(path, F_OK) == 0;
    hub_state_path(&st, "cert.pem", path, sizeof path);
    if (hub_state_cert_info(path, &ci) != 0)
        return 1;
    key_type(&st, kt, sizeof kt);
    rfc3339(ci.not_before, nb);
    rfc3339(ci.not_after, na);
    snprintf(mqtt, sizeof mqtt, "%s:%d", st.mqtt_host, st.mqtt_port);
    double days = floor(difftime(ci.not_after, time(NULL)) / 86400.0 * 10) / 10;
    /* The firmware state as the update client left it ("" before any update: the factory
     * version is in the agent configuration). */
    struct hub_fw_state fw;
    if (hub_fw_state_load(&st, "", &fw) != 0)
        return 1;
    char slot[2] = {fw.slot, 0};
    if (json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:s,s:s,s:s,s:b,s:s*,s:s,s:b}",
                              "device_id", st.device_id, "product_key", ci.o, "serial", ci.serial,
                              "fingerprint_sha256", ci.fingerprint, "not_before", nb, "not_after",
                              na, "days_left", days, "key_type", kt, "api_url", st.api_url, "mqtt",
                              mqtt, "pinned", st.pin[0] != 0, "pin_sha256",
                              st.pin[0] ? st.pin : NULL, "dir", st.dir, "renewal_pending", pending);
        json_object_set_new(o, "firmware_version",
                            fw.installed[0] ? json_string(fw.installed) : json_null());
        json_object_set_new(o, "firmware_slot", json_string(slot));
        if (fw.phase != HUB_FW_IDLE)
            json_object_set_new(
                o, "firmware_update",
                json_pack("{s:s,s:s}", "rollout_id", fw.rollout, "version", fw.version));
        char *text = json_dumps(o, JSON_INDENT(2));
        puts(text ? text : "{}");
        free(text);
        json_decref(o);
        return 0;
    }
    printf("device_id:    %s\n", st.device_id);
    printf("product_key:  %s\n", ci.o);
    printf("serial:       %s\n", ci.serial);
    printf("fingerprint:  SHA256:%s\n", ci.fingerprint);
    printf("not_before:   %s\n", nb);
    printf("not_after:    %s\n", na);
    printf("days_left:    %.1f%s\n", days, days < 0 ? " (expired)" : "");
    printf("key_type:     %s\n", kt);
    printf("api_url:      %s\n", st.api_url);
    printf("mqtt:         %s\n", mqtt);
    printf("pinned:       %s\n", st.pin[0] ? st.pin : "no");
    printf("dir:          %s\n", st.dir);
    printf("firmware:     %s, slot %s\n", fw.installed[0] ? fw.installed : "factory", slot);
    if (fw.phase != HUB_FW_IDLE)
        printf("update:       %s (rollout %s) in progress\n", fw.version, fw.rollout);
    if (pending)
        printf("renewal:      pending (renew.key waits for its certificate; the next `run` "
               "retries with the same key)\n");
    return 0;
}
