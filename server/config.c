/* Configuration loader. A table maps each key to a setter that validates the value; the
 * same setters serve the file and the IOTHUB_* environment so both report errors alike. */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ssl_ciphersuites.h>

#include "ca/p11uri.h"
#include "server/config_internal.h"
#include "server/backbone_conf.h"
#include "util/error.h"
#include "util/secure.h"

#define MAX_CONFIG_SIZE (1 << 20)

/* A setter validates value and stores it; on error it writes the reason (no location). */
typedef int (*setter_fn)(struct hub_config *cfg, const char *value, char *why, size_t whylen);

static int set_string(char **slot, const char *value, char *why, size_t whylen)
{
    char *s = strdup(value);
    if (s == NULL) {
        snprintf(why, whylen, "out of memory");
        return HUB_ENOMEM;
    }
    free(*slot);
    *slot = s;
    return 0;
}

static int set_int(int *slot, const char *value, int min, int max, char *why, size_t whylen)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != 0 || v < min || v > max) {
        snprintf(why, whylen, "expected an integer from %d to %d", min, max);
        return HUB_EINVAL;
    }
    *slot = (int)v;
    return 0;
}

static int set_listen(struct hub_listen *slot, const char *value, int optional, char *why,
                      size_t whylen)
{
    struct hub_listen l;
    if (hub_listen_parse(value, &l) != 0 || (l.port == 0 && !optional)) {
        snprintf(why, whylen, "expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535%s",
                 optional ? ", or \"off\"" : "");
        return HUB_EINVAL;
    }
    *slot = l;
    return 0;
}

static int set_db_url(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (*v == 0) {
        snprintf(why, n, "must not be empty");
        return HUB_EINVAL;
    }
    return set_string(&c->db_url, v, why, n);
}

static int set_api_listen(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_listen(&c->api_listen, v, 0, why, n);
}

static int set_mqtt_mtls_listen(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_listen(&c->mqtt_mtls_listen, v, 1, why, n);
}

static int set_mqtt_tls_listen(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_listen(&c->mqtt_tls_listen, v, 1, why, n);
}

static int set_mqtt_plain_listen(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_listen(&c->mqtt_plain_listen, v, 1, why, n);
}

/* A DNS name or IP literal: letters, digits, '-', '.', ':' (IPv6), no empty labels. */
static int valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!isalnum((unsigned char)ch) && ch != '-' && ch != '.' && ch != ':' && ch != '*')
            return 0;
        if (ch == '.' && (i == 0 || s[i - 1] == '.'))
            return 0;
    }
    return 1;
}

static int set_hostname(struct hub_config *c, const char *v, char *why, size_t n)
{
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (!valid_hostname(p, len)) {
            snprintf(why, n, "expected comma-separated DNS names or IP addresses");
            return HUB_EINVAL;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return set_string(&c->hostname, v, why, n);
}

static int set_master_key_file(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (*v == 0) {
        free(c->master_key_file);
        c->master_key_file = NULL;
        return 0;
    }
    return set_string(&c->master_key_file, v, why, n);
}

static int set_ca_key_type(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (hub_key_type_parse(v, &c->ca_key_type) != 0) {
        snprintf(why, n, "expected ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096");
        return HUB_EINVAL;
    }
    return 0;
}

static int set_ca_key_store(struct hub_config *c, const char *v, char *why, size_t n)
{
    struct hub_p11_uri u;
    char err[256];
    free(c->ca_key_store);
    c->ca_key_store = NULL;
    if (*v == 0 || strcmp(v, "sealed") == 0)
        return 0;
    int rc = hub_p11_uri_parse(v, &u, err, sizeof err);
    hub_wipe(&u, sizeof u);
    if (rc != 0) {
        snprintf(why, n, "expected \"sealed\" or a PKCS#11 URI (pkcs11:token=...;object=...): %s",
                 err);
        return HUB_EINVAL;
    }
    return set_string(&c->ca_key_store, v, why, n);
}

static int set_pkcs11_module(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_string(&c->pkcs11_module, v, why, n);
}

static int set_pkcs11_pin_file(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_string(&c->pkcs11_pin_file, v, why, n);
}

static int set_device_cert_days(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_int(&c->device_cert_days, v, 1, 36500, why, n);
}

static int set_crl_validity_hours(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_int(&c->crl_validity_hours, v, 1, 24 * 366, why, n);
}

static int set_crl_base_hours(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_int(&c->crl_base_hours, v, 1, 24 * 366, why, n);
}

static int set_crl_history(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_int(&c->crl_history, v, 0, 100000, why, n);
}

static int set_crl_rebuild_max_entries(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_int(&c->crl_rebuild_max_entries, v, 0, 1000000, why, n);
}

/* Accepts IANA names (TLS_ECDHE_..._SHA256) and mbedTLS names (TLS-ECDHE-...-SHA256). */
static int set_tls_ciphers(struct hub_config *c, const char *v, char *why, size_t n)
{
    char name[128];
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        if (len >= sizeof name) {
            snprintf(why, n, "cipher suite name too long");
            return HUB_EINVAL;
        }
        for (size_t i = 0; i < len; i++)
            name[i] = p[i] == '_' ? '-' : p[i];
        name[len] = 0;
        if (mbedtls_ssl_ciphersuite_from_string(name) == NULL) {
            snprintf(why, n, "unknown TLS cipher suite \"%.*s\"", (int)len, p);
            return HUB_EINVAL;
        }
        p += len;
    }
    if (p == v || strspn(v, ", ") == strlen(v)) {
        snprintf(why, n, "expected at least one cipher suite name");
        return HUB_EINVAL;
    }
    return set_string(&c->tls_ciphers, v, why, n);
}

/* "ec-p256,rsa-2048": distinct server key types; RSA-4096 is not offered (handshake cost). */
static int set_server_key_types(struct hub_config *c, const char *v, char *why, size_t n)
{
    enum hub_key_type types[HUB_SERVER_KEY_TYPES_MAX] = {HUB_KEY_EC_P256};
    int count = 0;
    char name[32];
    for (const char *p = v;;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        enum hub_key_type t;
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
        if (len >= sizeof name || hub_key_type_parse(name, &t) != 0 || t == HUB_KEY_RSA_4096) {
            snprintf(why, n,
                     "unknown server key type \"%.*s\" (expected ec-p256, ec-p384, "
                     "rsa-2048 or rsa-3072)",
                     (int)(len > 32 ? 32 : len), p);
            return HUB_EINVAL;
        }
        for (int i = 0; i < count; i++) {
            if (types[i] == t) {
                snprintf(why, n, "\"%s\" listed twice", name);
                return HUB_EINVAL;
            }
        }
        types[count++] = t; /* at most 4 distinct types exist: no overflow */
        p += len;
    }
    if (count == 0) {
        snprintf(why, n, "expected at least one key type (ec-p256, ec-p384, rsa-2048, rsa-3072)");
        return HUB_EINVAL;
    }
    memcpy(c->server_key_types, types, sizeof types);
    c->n_server_key_types = count;
    return 0;
}

int hub_config_server_key_types(const struct hub_config *cfg, enum hub_key_type *types)
{
    if (cfg->n_server_key_types == 0) {
        types[0] = cfg->ca_key_type;
        return 1;
    }
    memcpy(types, cfg->server_key_types, sizeof cfg->server_key_types);
    return cfg->n_server_key_types;
}

static int set_workers(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_int(&c->workers, v, 0, 256, why, n);
}

/* Limits: integer keys with their ranges. */
#define INT_KEY(name, min, max)                                                                    \
    static int set_##name(struct hub_config *c, const char *v, char *why, size_t n)                \
    {                                                                                              \
        return set_int(&c->name, v, min, max, why, n);                                             \
    }
INT_KEY(tls_ticket_lifetime_s, 0, 7 * 86400)
INT_KEY(tls_ticket_rotation_s, 2, 7 * 86400)
INT_KEY(mqtt_handshake_timeout_ms, 100, 600000)
INT_KEY(mqtt_max_handshakes, 1, 100000)
INT_KEY(mqtt_max_handshakes_per_ip, 1, 100000)
INT_KEY(mqtt_max_unauthenticated, 1, 1000000)
INT_KEY(mqtt_max_connections, 0, 10000000)
INT_KEY(mqtt_connect_timeout_s, 1, 3600)
INT_KEY(mqtt_max_packet, 1024, 268435455)
INT_KEY(mqtt_max_registrations, 1, 100000)
INT_KEY(mqtt_session_expiry, 0, 10 * 366 * 86400)
INT_KEY(mqtt_store_max_pending, 1 << 20, 2047 << 20)
INT_KEY(mqtt_max_queued, 1, 10000000)
INT_KEY(api_max_connections, 1, 10000)
INT_KEY(api_max_connections_per_ip, 1, 10000)
INT_KEY(api_idle_timeout_s, 1, 3600)
INT_KEY(api_header_timeout_s, 1, 3600)
INT_KEY(api_max_body, 1024, 64 << 20)
INT_KEY(firmware_max_size, 1, 2047 << 20)
INT_KEY(firmware_max_downloads, 1, 10000)
INT_KEY(firmware_cache_size, 0, 2047 << 20)
#undef INT_KEY

static int set_log_level(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (hub_log_level_parse(v, &c->log_level) != 0) {
        snprintf(why, n, "expected debug, info, warn or error");
        return HUB_EINVAL;
    }
    return 0;
}

static int set_log_format(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (hub_log_format_parse(v, &c->log_format) != 0) {
        snprintf(why, n, "expected text or json");
        return HUB_EINVAL;
    }
    return 0;
}

static int set_metrics_access(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (strcmp(v, "public") == 0) {
        c->metrics_access = HUB_METRICS_PUBLIC;
    } else if (strcmp(v, "token") == 0) {
        c->metrics_access = HUB_METRICS_TOKEN;
    } else {
        snprintf(why, n, "expected public or token");
        return HUB_EINVAL;
    }
    return 0;
}

/* Several nodes: the message backbone and this node's name (docs/configuration.md#several-nodes).
 */
static int set_backbone(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (*v != 0 && hub_backbone_url_parse(v, NULL, why, n) != 0)
        return HUB_EINVAL;
    return set_string(&c->backbone, v, why, n);
}

static int set_node_name(struct hub_config *c, const char *v, char *why, size_t n)
{
    if (*v != 0 && !hub_node_name_valid(v)) {
        snprintf(why, n, "expected 1 to %d letters, digits, '.', '-' or '_'", HUB_NODE_NAME_MAX);
        return HUB_EINVAL;
    }
    return set_string(&c->node_name, v, why, n);
}

#define BACKBONE_STR(name)                                                                         \
    static int set_##name(struct hub_config *c, const char *v, char *why, size_t n)                \
    {                                                                                              \
        return set_string(&c->name, v, why, n);                                                    \
    }
#define INT_KEY(name, min, max)                                                               \
    static int set_##name(struct hub_config *c, const char *v, char *why, size_t n)                \
    {                                                                                              \
        return set_int(&c->name, v, min, max, why, n);                                             \
    }
BACKBONE_STR(backbone_cafile)
BACKBONE_STR(backbone_certfile)
BACKBONE_STR(backbone_keyfile)
BACKBONE_STR(backbone_username)
BACKBONE_STR(backbone_password_file)
INT_KEY(backbone_max_queued, 65536, 2047 << 20)
INT_KEY(backbone_max_inbound, 65536, 2047 << 20)
INT_KEY(backbone_session_expiry_s, 0, 7 * 86400)
INT_KEY(device_ca_max_per_product, 1, 10000)
INT_KEY(device_ca_code_ttl_s, 60, 7 * 86400)
INT_KEY(device_ca_crl_refresh, 1, 7 * 86400)
#undef BACKBONE_STR
#undef INT_KEY

static const struct {
    const char *key;
    setter_fn set;
} keys[] = {
    {"db_url", set_db_url},
    {"api_listen", set_api_listen},
    {"mqtt_mtls_listen", set_mqtt_mtls_listen},
    {"mqtt_tls_listen", set_mqtt_tls_listen},
    {"mqtt_plain_listen", set_mqtt_plain_listen},
    {"hostname", set_hostname},
    {"master_key_file", set_master_key_file},
    {"ca_key_type", set_ca_key_type},
    {"device_cert_days", set_device_cert_days},
    {"crl_validity_hours", set_crl_validity_hours},
    {"crl_base_hours", set_crl_base_hours},
    {"crl_history", set_crl_history},
    {"crl_rebuild_max_entries", set_crl_rebuild_max_entries},
    {"tls_ciphers", set_tls_ciphers},
    {"tls_ticket_lifetime_s", set_tls_ticket_lifetime_s},
    {"tls_ticket_rotation_s", set_tls_ticket_rotation_s},
    {"workers", set_workers},
    {"mqtt_handshake_timeout_ms", set_mqtt_handshake_timeout_ms},
    {"mqtt_max_handshakes", set_mqtt_max_handshakes},
    {"mqtt_max_handshakes_per_ip", set_mqtt_max_handshakes_per_ip},
    {"mqtt_max_unauthenticated", set_mqtt_max_unauthenticated},
    {"mqtt_max_registrations", set_mqtt_max_registrations},
    {"mqtt_session_expiry", set_mqtt_session_expiry},
    {"mqtt_store_max_pending", set_mqtt_store_max_pending},
    {"mqtt_max_queued", set_mqtt_max_queued},
    {"mqtt_max_connections", set_mqtt_max_connections},
    {"mqtt_connect_timeout_s", set_mqtt_connect_timeout_s},
    {"mqtt_max_packet", set_mqtt_max_packet},
    {"api_max_connections", set_api_max_connections},
    {"api_max_connections_per_ip", set_api_max_connections_per_ip},
    {"api_idle_timeout_s", set_api_idle_timeout_s},
    {"api_header_timeout_s", set_api_header_timeout_s},
    {"api_max_body", set_api_max_body},
    {"firmware_max_size", set_firmware_max_size},
    {"firmware_max_downloads", set_firmware_max_downloads},
    {"firmware_cache_size", set_firmware_cache_size},
    {"log_level", set_log_level},
    {"log_format", set_log_format},
    {"metrics_access", set_metrics_access},
    {"server_key_types", set_server_key_types},
    {"ca_key_store", set_ca_key_store},
    {"pkcs11_module", set_pkcs11_module},
    {"pkcs11_pin_file", set_pkcs11_pin_file},
    {"device_ca_max_per_product", set_device_ca_max_per_product},
    {"device_ca_code_ttl_s", set_device_ca_code_ttl_s},
    {"device_ca_crl_refresh", set_device_ca_crl_refresh},
    /* Behind a load balancer (server/config_lb.c). */
    {"mqtt_mtls_proxy_protocol", hub_config_set_mqtt_mtls_proxy_protocol},
    {"mqtt_tls_proxy_protocol", hub_config_set_mqtt_tls_proxy_protocol},
    {"mqtt_plain_proxy_protocol", hub_config_set_mqtt_plain_proxy_protocol},
    {"api_proxy_protocol", hub_config_set_api_proxy_protocol},
    {"proxy_trusted", hub_config_set_proxy_trusted},
    {"proxy_header_timeout_ms", hub_config_set_proxy_header_timeout_ms},
    {"shutdown_drain_s", hub_config_set_shutdown_drain_s},
    {"backbone", set_backbone},
    {"backbone_cafile", set_backbone_cafile},
    {"backbone_certfile", set_backbone_certfile},
    {"backbone_keyfile", set_backbone_keyfile},
    {"backbone_username", set_backbone_username},
    {"backbone_password_file", set_backbone_password_file},
    {"backbone_max_queued", set_backbone_max_queued},
    {"backbone_max_inbound", set_backbone_max_inbound},
    {"backbone_session_expiry_s", set_backbone_session_expiry_s},
    {"node_name", set_node_name},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Key i of keys[] then of hub_config_limits[] (server/config_limits.h). */
static size_t key_count(void)
{
    return NKEYS + hub_config_nlimits;
}
static const char *key_name(size_t i)
{
    return i < NKEYS ? keys[i].key : hub_config_limits[i - NKEYS].key;
}
static int key_set(struct hub_config *c, size_t i, const char *v, char *why, size_t n)
{
    return i < NKEYS ? keys[i].set(c, v, why, n) : hub_config_limit_set(c, i - NKEYS, v, why, n);
}

static int find_key(const char *key, size_t len)
{
    for (size_t i = 0; i < key_count(); i++)
        if (strlen(key_name(i)) == len && strncmp(key_name(i), key, len) == 0)
            return (int)i;
    return -1;
}

int hub_listen_parse(const char *s, struct hub_listen *out)
{
    memset(out, 0, sizeof *out);
    if (*s == 0 || strcmp(s, "off") == 0)
        return 0;
    const char *colon;
    size_t hostlen;
    const char *host = s;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return HUB_EINVAL;
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return HUB_EINVAL;
        hostlen = (size_t)(colon - s);
        if (memchr(s, ':', hostlen) != NULL) /* bare IPv6 without brackets */
            return HUB_EINVAL;
    }
    if (hostlen == 0 || hostlen >= sizeof out->host || !valid_hostname(host, hostlen))
        return HUB_EINVAL;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != 0 || port < 1 || port > 65535)
        return HUB_EINVAL;
    memcpy(out->host, host, hostlen);
    out->host[hostlen] = 0;
    out->port = (int)port;
    return 0;
}

static int set_defaults(struct hub_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->db_url = strdup("postgresql:///iothub");
    cfg->hostname = strdup("localhost");
    if (cfg->db_url == NULL || cfg->hostname == NULL)
        return HUB_ENOMEM;
    hub_listen_parse("0.0.0.0:8443", &cfg->api_listen);
    hub_listen_parse("0.0.0.0:8883", &cfg->mqtt_mtls_listen);
    cfg->ca_key_type = HUB_KEY_EC_P256;
    cfg->device_cert_days = 365;
    cfg->crl_validity_hours = 24;
    cfg->crl_base_hours = 12;
    cfg->crl_history = 16;
    cfg->crl_rebuild_max_entries = 10000;
    cfg->tls_ticket_lifetime_s = 86400;
    cfg->tls_ticket_rotation_s = 43200;
    cfg->mqtt_handshake_timeout_ms = 10000;
    cfg->mqtt_max_handshakes = 512;
    cfg->mqtt_max_handshakes_per_ip = 32;
    cfg->mqtt_max_unauthenticated = 2048;
    cfg->mqtt_connect_timeout_s = 10;
    cfg->mqtt_max_packet = 256 * 1024;
    cfg->mqtt_max_registrations = 64;
    cfg->mqtt_session_expiry = 0;
    cfg->mqtt_store_max_pending = 64 << 20;
    cfg->mqtt_max_queued = 1000;
    cfg->api_max_connections = 512;
    cfg->api_max_connections_per_ip = 64;
    cfg->api_idle_timeout_s = 30;
    cfg->api_header_timeout_s = 20;
    cfg->api_max_body = 64 * 1024;
    cfg->firmware_max_size = 256 << 20;
    cfg->firmware_max_downloads = 256;
    cfg->firmware_cache_size = 64 << 20;
    cfg->log_level = HUB_LOG_INFO;
    cfg->log_format = HUB_LOG_TEXT;
    cfg->metrics_access = HUB_METRICS_PUBLIC;
    cfg->device_ca_max_per_product = 10;
    cfg->device_ca_code_ttl_s = 3600;
    cfg->device_ca_crl_refresh = 3600;
    cfg->proxy_header_timeout_ms = 5000;
    cfg->backbone_max_queued = 64 << 20;
    cfg->backbone_max_inbound = 16 << 20;
    cfg->backbone_session_expiry_s = 600;
    hub_config_limits_defaults(cfg);
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

static int parse_lines(struct hub_config *cfg, const char *name, const char *text, int *seen_line,
                       char *err, size_t errlen);

int hub_config_parse_text(struct hub_config *cfg, const char *name, const char *text, char *err,
                          size_t errlen)
{
    int *seen_line = calloc(key_count(), sizeof *seen_line);
    if (seen_line == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return HUB_ECONFIG;
    }
    int rc = parse_lines(cfg, name, text, seen_line, err, errlen);
    free(seen_line);
    return rc;
}

static int parse_lines(struct hub_config *cfg, const char *name, const char *text, int *seen_line,
                       char *err, size_t errlen)
{
    char why[256];
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        size_t len = strcspn(p, "\n");
        char line[4096];
        if (len >= sizeof line) {
            snprintf(err, errlen, "%s:%d: line too long", name, lineno);
            return HUB_ECONFIG;
        }
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (p[len] == '\n');

        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected \"key = value\"", name, lineno);
            return HUB_ECONFIG;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = 0;
            value++;
        }
        int k = find_key(key, strlen(key));
        if (k < 0) {
            snprintf(err, errlen, "%s:%d: unknown key \"%.64s\"", name, lineno, key);
            return HUB_ECONFIG;
        }
        if (seen_line[k]) {
            snprintf(err, errlen, "%s:%d: key \"%s\" already set on line %d", name, lineno, key,
                     seen_line[k]);
            return HUB_ECONFIG;
        }
        seen_line[k] = lineno;
        if (key_set(cfg, (size_t)k, value, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s:%d: bad value for %s: %s", name, lineno, key, why);
            return HUB_ECONFIG;
        }
    }
    return 0;
}

/* Reads a whole small file into a NUL-terminated malloc'ed string. */
static char *read_file(const char *path, size_t max, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = buf == NULL || ferror(f) || n > max;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path,
                 buf == NULL ? "out of memory"
                 : n > max   ? "file too large"
                             : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (memchr(buf, 0, n) != NULL) {
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int hub_config_load(struct hub_config *cfg, const char *path, char *err, size_t errlen)
{
    if (set_defaults(cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return HUB_ECONFIG;
    }
    if (path != NULL) {
        char *text = read_file(path, MAX_CONFIG_SIZE, err, errlen);
        if (text == NULL)
            return HUB_ECONFIG;
        cfg->path = strdup(path);
        int rc = hub_config_parse_text(cfg, path, text, err, errlen);
        free(text);
        if (rc != 0)
            return rc;
    }
    char why[256], var[64];
    for (size_t i = 0; i < key_count(); i++) {
        const char *key = key_name(i);
        snprintf(var, sizeof var, "IOTHUB_");
        for (size_t j = 0; key[j]; j++)
            var[7 + j] = (char)toupper((unsigned char)key[j]);
        var[7 + strlen(key)] = 0;
        const char *v = getenv(var);
        if (v == NULL)
            continue;
        if (key_set(cfg, i, v, why, sizeof why) != 0) {
            snprintf(err, errlen, "environment %s: bad value for %s: %s", var, key, why);
            return HUB_ECONFIG;
        }
    }
    return 0;
}

void hub_config_free(struct hub_config *cfg)
{
    free(cfg->db_url);
    free(cfg->hostname);
    free(cfg->master_key_file);
    free(cfg->tls_ciphers);
    free(cfg->path);
    if (cfg->ca_key_store != NULL)
        hub_wipe(cfg->ca_key_store, strlen(cfg->ca_key_store)); /* may hold pin-value */
    free(cfg->ca_key_store);
    free(cfg->pkcs11_module);
    free(cfg->pkcs11_pin_file);
    free(cfg->proxy_trusted);
    free(cfg->backbone);
    free(cfg->backbone_cafile);
    free(cfg->backbone_certfile);
    free(cfg->backbone_keyfile);
    free(cfg->backbone_username);
    free(cfg->backbone_password_file);
    free(cfg->node_name);
    memset(cfg, 0, sizeof *cfg);
}

char *hub_config_master_key(const struct hub_config *cfg, char *err, size_t errlen)
{
    char *key;
    if (cfg->master_key_file != NULL) {
        struct stat st;
        if (stat(cfg->master_key_file, &st) == 0 && (st.st_mode & 077) != 0)
            hub_warn("master_key_file %s is readable by group or others (mode %04o): chmod 600 it",
                     cfg->master_key_file, (unsigned)(st.st_mode & 07777));
        char why[512];
        key = read_file(cfg->master_key_file, 4096, why, sizeof why);
        if (key == NULL) {
            snprintf(err, errlen, "master_key_file: cannot read %s", why);
            return NULL;
        }
        /* A trailing newline is not part of the passphrase. */
        size_t n = strlen(key);
        while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
            key[--n] = 0;
    } else {
        const char *env = getenv("IOTHUB_MASTER_KEY");
        if (env == NULL || *env == 0) {
            snprintf(err, errlen,
                     "no master passphrase: set master_key_file (or IOTHUB_MASTER_KEY_FILE) "
                     "or IOTHUB_MASTER_KEY");
            return NULL;
        }
        key = strdup(env);
        if (key == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    if (strlen(key) < 16) {
        snprintf(err, errlen, "master passphrase is too short (%zu characters; at least 16)",
                 strlen(key));
        hub_wipe(key, strlen(key));
        free(key);
        return NULL;
    }
    return key;
}

char **hub_config_hostnames(const struct hub_config *cfg)
{
    size_t count = 1, len = strlen(cfg->hostname);
    for (const char *p = cfg->hostname; *p; p++)
        count += *p == ',';
    /* One block: the pointer array followed by a copy of the string. */
    char **names = malloc((count + 1) * sizeof *names + len + 1);
    if (names == NULL)
        return NULL;
    char *copy = (char *)(names + count + 1);
    memcpy(copy, cfg->hostname, len + 1);
    size_t i = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        names[i++] = trim(tok);
    names[i] = NULL;
    return names;
}
