/* libFuzzer target for server/config.c: the input is an iothub.conf (cut at the first NUL,
 * as the loader refuses files with one) parsed over the defaults by hub_config_parse_text,
 * the from-memory half of hub_config_load. Checks: a failure names "fuzz.conf:<line>", a
 * success leaves valid listeners and host names; the input is also tried as a listen
 * address. Everything is freed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"
#include "util/error.h"

static void check_listen(const struct hub_listen *l, int optional)
{
    size_t n = strnlen(l->host, sizeof l->host);
    if (n == sizeof l->host || l->port < 0 || l->port > 65535)
        abort();
    if (l->port == 0 ? (!optional || n != 0) : n == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_config cfg;
    struct hub_listen l;
    char err[512];
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;

    if (hub_listen_parse(text, &l) == 0)
        check_listen(&l, 1);
    err[0] = 0;
    if (hub_config_load(&cfg, NULL, err, sizeof err) != 0) { /* defaults (and environment) */
        hub_config_free(&cfg);
        free(text);
        return 0;
    }
    int rc = hub_config_parse_text(&cfg, "fuzz.conf", text, err, sizeof err);
    if (rc != 0) {
        if (rc != HUB_ECONFIG || strncmp(err, "fuzz.conf:", 10) != 0)
            abort();
    } else {
        check_listen(&cfg.api_listen, 0);
        check_listen(&cfg.mqtt_mtls_listen, 1);
        check_listen(&cfg.mqtt_tls_listen, 1);
        check_listen(&cfg.mqtt_plain_listen, 1);
        if (cfg.db_url == NULL || cfg.db_url[0] == 0 || cfg.hostname == NULL ||
            cfg.device_cert_days < 1 || cfg.crl_validity_hours < 1 || cfg.workers < 0)
            abort();
        char **names = hub_config_hostnames(&cfg);
        if (names == NULL || names[0] == NULL)
            abort();
        for (size_t i = 0; names[i] != NULL; i++)
            if (names[i][0] == 0 || strpbrk(names[i], ", \t\r\n") != NULL)
                abort(); /* an empty or untrimmed name would go into the server certificate */
        free(names);
    }
    hub_config_free(&cfg);
    free(text);
    return 0;
}
