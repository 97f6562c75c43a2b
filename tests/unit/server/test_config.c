/* Unit tests for server/config.c: defaults, file syntax, validation, env overrides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static int parse(struct hub_config *cfg, const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/iothub-config-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -100;
    ssize_t w = write(fd, text, strlen(text));
    close(fd);
    int rc = w == (ssize_t)strlen(text) ? hub_config_load(cfg, path, err, errlen) : -100;
    unlink(path);
    return rc;
}

static void test_defaults(void)
{
    struct hub_config cfg;
    char err[256];
    CHECK_EQ(hub_config_load(&cfg, NULL, err, sizeof err), 0);
    CHECK_STR(cfg.db_url, "postgresql:///iothub");
    CHECK_STR(cfg.api_listen.host, "0.0.0.0");
    CHECK_EQ(cfg.api_listen.port, 8443);
    CHECK_EQ(cfg.mqtt_mtls_listen.port, 8883);
    CHECK_EQ(cfg.mqtt_tls_listen.port, 0);
    CHECK_EQ(cfg.mqtt_plain_listen.port, 0);
    CHECK_STR(cfg.hostname, "localhost");
    CHECK(cfg.master_key_file == NULL);
    CHECK_EQ(cfg.ca_key_type, HUB_KEY_EC_P256);
    CHECK_EQ(cfg.device_cert_days, 365);
    CHECK_EQ(cfg.crl_validity_hours, 24);
    CHECK(cfg.tls_ciphers == NULL);
    CHECK_EQ(cfg.workers, 0);
    CHECK_EQ(cfg.log_level, HUB_LOG_INFO);
    CHECK_EQ(cfg.log_format, HUB_LOG_TEXT);
    CHECK_EQ(cfg.mqtt_handshake_timeout_ms, 10000);
    CHECK_EQ(cfg.mqtt_max_handshakes, 512);
    CHECK_EQ(cfg.mqtt_max_handshakes_per_ip, 32);
    CHECK_EQ(cfg.mqtt_max_unauthenticated, 2048);
    CHECK_EQ(cfg.mqtt_max_connections, 0);
    CHECK_EQ(cfg.mqtt_connect_timeout_s, 10);
    CHECK_EQ(cfg.mqtt_max_packet, 262144);
    CHECK_EQ(cfg.mqtt_max_registrations, 64);
    CHECK_EQ(cfg.mqtt_session_expiry, 0);
    CHECK_EQ(cfg.mqtt_store_max_pending, 64 << 20);
    CHECK_EQ(cfg.mqtt_max_queued, 1000);
    CHECK_EQ(cfg.api_max_connections, 512);
    CHECK_EQ(cfg.api_max_connections_per_ip, 64);
    CHECK_EQ(cfg.api_idle_timeout_s, 30);
    CHECK_EQ(cfg.api_header_timeout_s, 20);
    CHECK_EQ(cfg.api_max_body, 65536);
    hub_config_free(&cfg);
}

static void test_limits(void)
{
    struct hub_config cfg;
    char err[256] = "";
    const char *text = "mqtt_handshake_timeout_ms = 2000\n"
                       "mqtt_max_handshakes = 100\n"
                       "mqtt_max_handshakes_per_ip = 4\n"
                       "mqtt_max_unauthenticated = 300\n"
                       "mqtt_max_connections = 50000\n"
                       "mqtt_connect_timeout_s = 3\n"
                       "mqtt_max_packet = 1024\n"
                       "api_max_connections = 100\n"
                       "api_max_connections_per_ip = 10\n"
                       "api_idle_timeout_s = 5\n"
                       "api_header_timeout_s = 2\n"
                       "api_max_body = 1048576\n";
    CHECK_EQ(parse(&cfg, text, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK_EQ(cfg.mqtt_handshake_timeout_ms, 2000);
    CHECK_EQ(cfg.mqtt_max_handshakes, 100);
    CHECK_EQ(cfg.mqtt_max_handshakes_per_ip, 4);
    CHECK_EQ(cfg.mqtt_max_unauthenticated, 300);
    CHECK_EQ(cfg.mqtt_max_connections, 50000);
    CHECK_EQ(cfg.mqtt_connect_timeout_s, 3);
    CHECK_EQ(cfg.mqtt_max_packet, 1024);
    CHECK_EQ(cfg.api_max_connections, 100);
    CHECK_EQ(cfg.api_max_connections_per_ip, 10);
    CHECK_EQ(cfg.api_idle_timeout_s, 5);
    CHECK_EQ(cfg.api_header_timeout_s, 2);
    CHECK_EQ(cfg.api_max_body, 1048576);
    hub_config_free(&cfg);
}

static void test_file_values(void)
{
    struct hub_config cfg;
    char err[256] = "";
    const char *text = "# comment\n"
                       "\n"
                       "  db_url = postgresql://u@h/db?sslmode=require  \n"
                       "api_listen = [::1]:9443\n"
                       "mqtt_mtls_listen = off\n"
                       "mqtt_plain_listen = 127.0.0.1:1883\n"
                       "hostname = gw.example.com, 10.0.0.1\n"
                       "ca_key_type = rsa-3072\n"
                       "device_cert_days = 30\n"
                       "crl_validity_hours = 6\n"
                       "tls_ciphers = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,"
                       "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384\n"
                       "workers = 4\n"
                       "log_level = debug\n"
                       "log_format = \"json\"\n";
    CHECK_EQ(parse(&cfg, text, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.db_url, "postgresql://u@h/db?sslmode=require");
    CHECK_STR(cfg.api_listen.host, "::1");
    CHECK_EQ(cfg.api_listen.port, 9443);
    CHECK_EQ(cfg.mqtt_mtls_listen.port, 0);
    CHECK_EQ(cfg.mqtt_plain_listen.port, 1883);
    CHECK_EQ(cfg.ca_key_type, HUB_KEY_RSA_3072);
    CHECK_EQ(cfg.device_cert_days, 30);
    CHECK_EQ(cfg.crl_validity_hours, 6);
    CHECK_EQ(cfg.workers, 4);
    CHECK_EQ(cfg.log_level, HUB_LOG_DEBUG);
    CHECK_EQ(cfg.log_format, HUB_LOG_JSON);
    char **names = hub_config_hostnames(&cfg);
    CHECK(names != NULL);
    if (names) {
        CHECK_STR(names[0], "gw.example.com");
        CHECK_STR(names[1], "10.0.0.1");
        CHECK(names[2] == NULL);
    }
    free(names);
    hub_config_free(&cfg);
}

/* Each bad file must fail with a message naming the line and the key. */
static void test_errors_name_key_and_line(void)
{
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"workers = 2\nbogus = 1\n", ":2: unknown key \"bogus\""},
        {"\n\nworkers = many\n", ":3: bad value for workers: expected an integer"},
        {"workers = -1\n", ":1: bad value for workers"},
        {"device_cert_days = 0\n", ":1: bad value for device_cert_days"},
        {"api_listen = 8443\n", ":1: bad value for api_listen"},
        {"api_listen = off\n", ":1: bad value for api_listen"},
        {"mqtt_tls_listen = 1.2.3.4:99999\n", ":1: bad value for mqtt_tls_listen"},
        {"mqtt_tls_listen = ::1:8883\n", ":1: bad value for mqtt_tls_listen"},
        {"ca_key_type = dsa\n", ":1: bad value for ca_key_type: expected ec-p256"},
        {"log_level = loud\n", ":1: bad value for log_level"},
        {"log_format = xml\n", ":1: bad value for log_format"},
        {"tls_ciphers = TLS_RSA_WITH_NOTHING\n", ":1: bad value for tls_ciphers: unknown TLS"},
        {"tls_ciphers = , \n", ":1: bad value for tls_ciphers: expected at least one"},
        {"hostname = a..b\n", ":1: bad value for hostname"},
        {"hostname = ok,\n", ":1: bad value for hostname"},
        {"db_url =\n", ":1: bad value for db_url"},
        {"just words\n", ":1: expected \"key = value\""},
        {"workers = 1\nworkers = 2\n", ":2: key \"workers\" already set on line 1"},
        {"mqtt_handshake_timeout_ms = 50\n",
         ":1: bad value for mqtt_handshake_timeout_ms: expected an integer from 100 to 600000"},
        {"mqtt_max_handshakes = 0\n", ":1: bad value for mqtt_max_handshakes"},
        {"mqtt_max_handshakes_per_ip = x\n", ":1: bad value for mqtt_max_handshakes_per_ip"},
        {"mqtt_max_unauthenticated = 0\n", ":1: bad value for mqtt_max_unauthenticated"},
        {"mqtt_max_connections = -1\n", ":1: bad value for mqtt_max_connections"},
        {"mqtt_connect_timeout_s = 0\n", ":1: bad value for mqtt_connect_timeout_s"},
        {"mqtt_max_packet = 268435456\n", ":1: bad value for mqtt_max_packet"},
        {"mqtt_max_registrations = 0\n", ":1: bad value for mqtt_max_registrations"},
        {"mqtt_session_expiry = -1\n", ":1: bad value for mqtt_session_expiry"},
        {"mqtt_store_max_pending = 1000\n", ":1: bad value for mqtt_store_max_pending"},
        {"mqtt_max_queued = 0\n", ":1: bad value for mqtt_max_queued"},
        {"api_max_connections = 10001\n", ":1: bad value for api_max_connections"},
        {"api_max_connections_per_ip = 0\n", ":1: bad value for api_max_connections_per_ip"},
        {"api_idle_timeout_s = 1s\n", ":1: bad value for api_idle_timeout_s"},
        {"api_header_timeout_s = 0\n", ":1: bad value for api_header_timeout_s"},
        {"api_max_body = 100\n", ":1: bad value for api_max_body: expected an integer from 1024"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hub_config cfg;
        char err[256] = "";
        CHECK_EQ(parse(&cfg, cases[i].text, err, sizeof err), HUB_ECONFIG);
        if (strstr(err, cases[i].expect) == NULL) {
            fprintf(stderr, "  case %zu: \"%s\" lacks \"%s\"\n", i, err, cases[i].expect);
            CHECK(0);
        }
        hub_config_free(&cfg);
    }
}

static void test_env_overrides(void)
{
    struct hub_config cfg;
    char err[256] = "";
    setenv("IOTHUB_WORKERS", "3", 1);
    setenv("IOTHUB_LOG_LEVEL", "warn", 1);
    setenv("IOTHUB_MQTT_TLS_LISTEN", "0.0.0.0:8884", 1);
    CHECK_EQ(parse(&cfg, "workers = 1\n", err, sizeof err), 0);
    CHECK_EQ(cfg.workers, 3);
    CHECK_EQ(cfg.log_level, HUB_LOG_WARN);
    CHECK_EQ(cfg.mqtt_tls_listen.port, 8884);
    hub_config_free(&cfg);

    setenv("IOTHUB_WORKERS", "lots", 1);
    CHECK_EQ(hub_config_load(&cfg, NULL, err, sizeof err), HUB_ECONFIG);
    CHECK(strstr(err, "IOTHUB_WORKERS") != NULL);
    CHECK(strstr(err, "workers") != NULL);
    hub_config_free(&cfg);
    unsetenv("IOTHUB_WORKERS");
    unsetenv("IOTHUB_LOG_LEVEL");
    unsetenv("IOTHUB_MQTT_TLS_LISTEN");
}

static void test_missing_file(void)
{
    struct hub_config cfg;
    char err[256] = "";
    CHECK_EQ(hub_config_load(&cfg, "/nonexistent/iothub.conf", err, sizeof err), HUB_ECONFIG);
    CHECK(strstr(err, "/nonexistent/iothub.conf") != NULL);
    hub_config_free(&cfg);
}

static void test_master_key(void)
{
    struct hub_config cfg;
    char err[256] = "";
    hub_config_load(&cfg, NULL, err, sizeof err);
    unsetenv("IOTHUB_MASTER_KEY");
    CHECK(hub_config_master_key(&cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "IOTHUB_MASTER_KEY") != NULL);
    setenv("IOTHUB_MASTER_KEY", "short", 1);
    CHECK(hub_config_master_key(&cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "too short") != NULL);
    setenv("IOTHUB_MASTER_KEY", "correct horse battery staple", 1);
    char *k = hub_config_master_key(&cfg, err, sizeof err);
    CHECK_STR(k, "correct horse battery staple");
    free(k);
    unsetenv("IOTHUB_MASTER_KEY");

    char path[] = "/tmp/iothub-key-XXXXXX";
    int fd = mkstemp(path);
    CHECK(write(fd, "from a file, sixteen+\n", 22) == 22);
    close(fd);
    cfg.master_key_file = strdup(path);
    k = hub_config_master_key(&cfg, err, sizeof err);
    CHECK_STR(k, "from a file, sixteen+");
    free(k);
    unlink(path);
    k = hub_config_master_key(&cfg, err, sizeof err);
    CHECK(k == NULL);
    CHECK(strstr(err, "master_key_file") != NULL);
    hub_config_free(&cfg);
}

static void test_listen_parse(void)
{
    struct hub_listen l;
    CHECK_EQ(hub_listen_parse("0.0.0.0:8883", &l), 0);
    CHECK_STR(l.host, "0.0.0.0");
    CHECK_EQ(l.port, 8883);
    CHECK_EQ(hub_listen_parse("[::]:1", &l), 0);
    CHECK_STR(l.host, "::");
    CHECK_EQ(hub_listen_parse("localhost:65535", &l), 0);
    CHECK_EQ(hub_listen_parse("off", &l), 0);
    CHECK_EQ(l.port, 0);
    CHECK_EQ(hub_listen_parse(":80", &l), HUB_EINVAL);
    CHECK_EQ(hub_listen_parse("host:", &l), HUB_EINVAL);
    CHECK_EQ(hub_listen_parse("host:0", &l), HUB_EINVAL);
    CHECK_EQ(hub_listen_parse("host:80x", &l), HUB_EINVAL);
    CHECK_EQ(hub_listen_parse("[::1:80", &l), HUB_EINVAL);
}

/* server_key_types: distinct types in order; unset means the ca_key_type alone. */
static void test_server_key_types(void)
{
    struct hub_config cfg;
    enum hub_key_type t[HUB_SERVER_KEY_TYPES_MAX];
    char err[256] = "";
    CHECK_EQ(parse(&cfg, "ca_key_type = rsa-3072\n", err, sizeof err), 0);
    CHECK_EQ(hub_config_server_key_types(&cfg, t), 1);
    CHECK_EQ(t[0], HUB_KEY_RSA_3072);
    hub_config_free(&cfg);
    CHECK_EQ(parse(&cfg, "server_key_types = ec-p256, rsa-2048\n", err, sizeof err), 0);
    CHECK_EQ(hub_config_server_key_types(&cfg, t), 2);
    CHECK_EQ(t[0], HUB_KEY_EC_P256);
    CHECK_EQ(t[1], HUB_KEY_RSA_2048);
    hub_config_free(&cfg);
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"server_key_types = rsa-4096\n", ":1: bad value for server_key_types: unknown server"},
        {"server_key_types = ec-p256,ec-p256\n", "\"ec-p256\" listed twice"},
        {"server_key_types = ,\n", "expected at least one key type"},
        {"server_key_types = ec-p256x\n", "unknown server key type \"ec-p256x\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK(parse(&cfg, bad[i].text, err, sizeof err) != 0);
        CHECK(strstr(err, bad[i].expect) != NULL);
        hub_config_free(&cfg);
    }
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_file_values);
    RUN(test_limits);
    RUN(test_errors_name_key_and_line);
    RUN(test_env_overrides);
    RUN(test_missing_file);
    RUN(test_master_key);
    RUN(test_listen_parse);
    RUN(test_server_key_types);
    HARNESS_EXIT();
}
