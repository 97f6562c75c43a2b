/* iothubd: command dispatch and the serve loop. The main libuv loop owns signals and the
 * periodic CA maintenance; blocking database work runs on libuv's thread pool with a
 * connection used only by that work (one job at a time). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "api/audit_aggregate.h"
#include "api/device_cas.h"
#include "api/http.h"
#include "api/request.h"
#include "api/throttle.h"
#include "ca/authority.h"
#include "ca/ocsp_signers.h"
#include "ca/crlpub.h"
#include "ca/pkcs11.h"
#include "ca/pem.h"
#include "ca/pkcs7.h"
#include <config.h>
#include "db/cas.h"
#include "db/crls.h"
#include "db/db.h"
#include "db/migrate.h"
#include "db/ocsp.h"
#include "server/cluster.h"
#include "server/config.h"
#include "server/config_lb.h"
#include "server/extroot.h"
#include "server/device_ca_crl.h"
#include "server/revjobs.h"
#include "server/crl_publisher.h"
#include "server/init.h"
#include "server/mqtt_server.h"
#include "server/server_certs.h"
#include "server/ticketsync.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define MAINTENANCE_INTERVAL_MS 60000
#define API_DB_CONNECTIONS 8

static const char usage[] =
    "Usage: iothubd [-c FILE] [COMMAND]\n"
    "\n"
    "Commands:\n"
    "  serve                          run the gateway (default)\n"
    "  init [--token-file PATH]       migrate, create the CAs, the server certificate and a\n"
    "                                 bootstrap admin token (default ./admin.token); idempotent\n"
    "  migrate                        apply pending database migrations\n"
    "  ca chain [--format pem|p7b]    print the issuing CA and the root\n"
    "  ca crl [--format der|pem]      print the current CRL of the issuing CA\n"
    "  ca rotate                      replace the issuing CA (the old one stays trusted)\n"
    "  init --external-root [--csr-dir DIR] [--token-file PATH]\n"
    "                                 keep the root outside: make the issuing CA and server\n"
    "                                 keys, write their CSRs to DIR (default .) and stop\n"
    "  ca import [--root root.pem] [--issuing issuing.pem --server server.pem] [--crl root.crl]\n"
    "                                 verify and install what an external root signed\n"
    "  ca rotate --external [--csr-dir DIR]\n"
    "                                 new issuing CA CSRs for an external root\n"
    "  rekey --new-master-key-file PATH\n"
    "                                 re-encrypt the CA and server keys under a new master\n"
    "                                 passphrase (all or nothing)\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE              configuration file (default " HUB_SYSCONFDIR
    "/iothub/iothub.conf if present)\n"
    "  -h, --help                     this text\n"
    "  -V, --version                  print the version\n"
    "\n"
    "Every configuration key can be set with IOTHUB_<KEY>; see docs/configuration.md.\n";

/* State of `serve`, owned by main(). */
struct serve {
    uv_loop_t *loop;
    struct hub_config cfg;
    PGconn *db;              /* used only by maintenance_work, on the pool */
    struct hub_authority authority;
    hub_db_pool_t *pool;     /* REST API connections */
    struct hub_api *api;
    struct hub_mqtt_server *mqtt;
    hub_tickets_t *tickets; /* session-ticket keys of the MQTT listeners, or NULL */
    struct hub_ticketsync *ticketsync;
    struct hub_device_ca_crl *device_ca_crl; /* CRL fetcher of device CAs */
    struct hub_revjobs *revjobs;             /* bulk revocation engine */
    struct hub_crl_publisher *crl_publisher; /* delta CRLs after revocations */
    hub_audit_aggregate_t *audit_aggregate;  /* throttle: refused anonymous calls' rows */
    struct hub_api_mqtt api_mqtt;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t maintenance;
    uv_work_t work;
    int work_busy;
    int stopping;
    /* Behind a load balancer: the trusted proxies (NULL: no PROXY protocol), the drain. */
    struct hub_proxy_trust *proxy_trust;
    uv_timer_t drain;
    int draining;
};

/* Records a new OCSP responder certificate (hub_ocsp_record_cb) on the connection ctx. */
static int record_ocsp_signer(void *ctx, const char *serial, int ca_id, const uint8_t *der,
                              size_t der_len, time_t not_before, time_t not_after)
{
    return hub_db_ocsp_signer_insert(ctx, serial, ca_id, der, der_len, not_before, not_after);
}

static void maintenance_work(uv_work_t *req)
{
    struct serve *s = req->data;
    /* OCSP responder certificates past half their validity (ca/ocsp_signers.h): renewed even
     * while the database is down (recording them in ocsp_signers is then only logged). */
    int signers;
    if (hub_ocsp_signers_refresh(s->authority.ocsp, record_ocsp_signer, s->db, &signers) != 0)
        hub_warn("OCSP signer renewal failed; retrying in %d s", MAINTENANCE_INTERVAL_MS / 1000);
    if (PQstatus(s->db) != CONNECTION_OK && hub_db_reset(s->db) != 0) {
        hub_warn("database still unreachable; CRL maintenance retries in %d s",
                 MAINTENANCE_INTERVAL_MS / 1000);
        return;
    }
    int published;
    int rc = hub_crlpub_refresh(&s->authority, s->db, 0, &published);
    if (rc != 0)
        hub_warn("CRL refresh failed (%s); retrying in %d s", hub_strerror(rc),
                 MAINTENANCE_INTERVAL_MS / 1000);
}

static void maintenance_done(uv_work_t *req, int status)
{
    struct serve *s = req->data;
    s->work_busy = 0;
}

static void maintenance_cb(uv_timer_t *t)
{
    struct serve *s = t->data;
    if (s->work_busy || s->stopping)
        return;
    s->work_busy = 1;
    s->work.data = s;
    uv_queue_work(s->loop, &s->work, maintenance_work, maintenance_done);
}

static void stop_now(struct serve *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->drain, NULL);
    /* The API first: its threads may be waiting on the MQTT loop for a command. */
    hub_api_stop(s->api);
    s->api = NULL;
    hub_mqtt_server_stop(s->mqtt); /* closes sessions; the loop runs its close callbacks */
    s->mqtt = NULL;
    hub_ticketsync_stop(s->ticketsync);
    s->ticketsync = NULL;
    uv_timer_stop(&s->maintenance);
    uv_close((uv_handle_t *)&s->maintenance, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    /* uv_run returns once the in-flight maintenance job (if any) has finished. */
}

static void drain_cb(uv_timer_t *t)
{
    stop_now(t->data);
}

/* SIGTERM/SIGINT: with shutdown_drain_s, /healthz answers 503 that long first (a load
 * balancer takes the node out, new connections go elsewhere); a second signal stops now. */
static void stop_cb(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    if (s->stopping)
        return;
    hub_info("received %s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (s->cfg.shutdown_drain_s > 0 && !s->draining) {
        s->draining = 1;
        hub_info("draining: /healthz answers 503 for %d s (shutdown_drain_s), then stopping",
                 s->cfg.shutdown_drain_s);
        hub_api_drain(s->api);
        uv_timer_start(&s->drain, drain_cb, (uint64_t)s->cfg.shutdown_drain_s * 1000, 0);
        return;
    }
    stop_now(s);
}

static void reload_cb(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    struct hub_config fresh;
    char err[512];
    if (hub_config_load(&fresh, s->cfg.path, err, sizeof err) != 0) {
        hub_error("SIGHUP: configuration not reloaded: %s", err);
        hub_config_free(&fresh);
        return;
    }
    hub_log_setup(fresh.log_level, fresh.log_format);
    s->cfg.log_level = fresh.log_level;
    s->cfg.log_format = fresh.log_format;
    hub_config_free(&fresh);
    hub_info("SIGHUP: configuration reloaded (log level and format applied)");
}

/* The REST API's view of the MQTT side (set once MQTT runs; API threads read it). */
static int api_command(void *ctx, const char *device_id, const char *name, const void *payload,
                       size_t len, int *delivered)
{
    struct serve *s = ctx;
    struct hub_mqtt_server *m = __atomic_load_n(&s->mqtt, __ATOMIC_ACQUIRE);
    if (m == NULL)
        return HUB_ERANGE;
    return hub_mqtt_server_command(m, device_id, name, payload, len, delivered);
}

static int api_connected(void *ctx, const char *device_id)
{
    struct serve *s = ctx;
    struct hub_mqtt_server *m = __atomic_load_n(&s->mqtt, __ATOMIC_ACQUIRE);
    return m != NULL && hub_mqtt_server_connected(m, device_id);
}

static int api_metrics(void *ctx, hub_buf_t *out)
{
    struct serve *s = ctx;
    struct hub_mqtt_server *m = __atomic_load_n(&s->mqtt, __ATOMIC_ACQUIRE);
    return m != NULL ? hub_mqtt_server_metrics(m, out) : 0;
}

static int serve(struct hub_config *cfg)
{
    struct serve s;
    char err[512];
    memset(&s, 0, sizeof s);
    s.cfg = *cfg;
    s.api_mqtt = (struct hub_api_mqtt){
        .command = api_command, .connected = api_connected, .metrics = api_metrics, .ctx = &s};
    hub_cluster_node_name(cfg, s.api_mqtt.node_name);
    int missing, rc;

    if (hub_server_certs_check_ciphers(cfg) != 0) /* tls_ciphers vs server_key_types */
        return 1;
    if (hub_config_proxy_trust(cfg, &s.proxy_trust, err, sizeof err) != 0) {
        hub_error("%s", err);
        return 1;
    }
    char *pass = hub_config_master_key(cfg, err, sizeof err);
    if (pass == NULL) {
        hub_proxy_trust_free(s.proxy_trust);
        hub_error("%s", err);
        return 1;
    }
    rc = hub_db_connect(cfg->db_url, &s.db);
    if (rc == 0 && (rc = hub_db_migrate_check(s.db, &missing)) == HUB_ENOTFOUND)
        hub_error("the database lacks %d migration(s): run `iothubd migrate` (or `iothubd "
                  "init` on a new installation)",
                  missing);
    enum hub_key_type types[HUB_SERVER_KEY_TYPES_MAX];
    int nids = hub_config_server_key_types(cfg, types);
    if (rc == 0) { /* before the slow unsealing: a server_key_types entry init has not issued */
        struct hub_db_ca issuing;
        int r = hub_db_cas_get(s.db, "issuing", &issuing);
        if (r == 0) {
            hub_db_cas_free(&issuing);
            rc = hub_server_certs_check_present(s.db, types, nids); /* logs the type */
        } else if (r != HUB_ENOTFOUND) { /* no CA at all: hub_authority_load says so */
            rc = r;
        }
    }
    if (rc == 0) {
        rc = hub_authority_load(s.db, pass, &s.authority);
        if (rc == HUB_ENOTFOUND)
            hub_error("no certificate authority in the database: run `iothubd init` first");
        else if (rc == HUB_EBADPASS)
            hub_error("the master passphrase does not open the stored CA keys: check "
                      "master_key_file / IOTHUB_MASTER_KEY");
    }
    /* One server certificate per server_key_types entry: ids[0] first, the others beside. */
    struct hub_server_identity ids[HUB_SERVER_KEY_TYPES_MAX];
    struct hub_tls_ctx_cert more[HUB_SERVER_KEY_TYPES_MAX];
    struct hub_api_cert api_more[HUB_SERVER_KEY_TYPES_MAX];
    memset(ids, 0, sizeof ids);
    if (rc == 0) { /* OCSP: one delegated signer per CA before the API answers */
        int made;
        rc = hub_ocsp_signers_new(&s.authority, &s.authority.ocsp);
        if (rc == 0 && hub_ocsp_signers_refresh(s.authority.ocsp, record_ocsp_signer, s.db,
                                                   &made) != 0)
            hub_warn("OCSP: some CA has no responder certificate; retrying every minute");
    }
    if (rc == 0) {
        hub_init_authority_settings(cfg, &s.authority);
        rc = hub_server_certs_load(&s.authority, s.db, pass, types, nids, ids);
    }
    for (int i = 1; rc == 0 && i < nids; i++) {
        more[i - 1] = (struct hub_tls_ctx_cert){(char *)ids[i].cert_pem.data,
                                                (char *)ids[i].key_pem.data};
        api_more[i - 1] = (struct hub_api_cert){(char *)ids[i].cert_pem.data,
                                                (char *)ids[i].key_pem.data};
    }
    if (rc == 0 && cfg->tls_ticket_lifetime_s > 0)
        rc = hub_ticketsync_start(uv_default_loop(), s.db, pass, cfg->db_url,
                                  (uint32_t)cfg->tls_ticket_lifetime_s,
                                  (uint32_t)cfg->tls_ticket_rotation_s, &s.tickets, &s.ticketsync);
    hub_wipe(pass, strlen(pass));
    free(pass);
    if (rc == 0 && (s.pool = hub_db_pool_new(cfg->db_url, API_DB_CONNECTIONS)) == NULL)
        rc = HUB_ENOMEM;
    if (rc == 0) {
        struct hub_api_options o = {
            .host = cfg->api_listen.host,
            .port = cfg->api_listen.port,
            .cert_pem = (char *)ids[0].cert_pem.data,
            .key_pem = (char *)ids[0].key_pem.data,
            .more_certs = api_more,
            .n_more_certs = (size_t)(nids - 1),
            .ciphers = cfg->tls_ciphers,
            .authority = &s.authority,
            .pool = s.pool,
            .device_cert_days = cfg->device_cert_days,
            .body_limit = (size_t)cfg->api_max_body,
            .max_connections = (unsigned)cfg->api_max_connections,
            .max_per_ip = (unsigned)cfg->api_max_connections_per_ip,
            .timeout_s = (unsigned)cfg->api_idle_timeout_s,
            .header_timeout_s = (unsigned)cfg->api_header_timeout_s,
            .mqtt = &s.api_mqtt,
            .metrics_token = cfg->metrics_access == HUB_METRICS_TOKEN,
            .firmware_max_size = (unsigned long long)cfg->firmware_max_size,
            .firmware_max_downloads = (unsigned)cfg->firmware_max_downloads,
            .firmware_cache_size = (size_t)cfg->firmware_cache_size,
            .proxy_trust = cfg->api_proxy_protocol ? s.proxy_trust : NULL,
            .proxy_timeout_ms = (unsigned)cfg->proxy_header_timeout_ms,
        };
        hub_api_device_cas_configure(cfg->device_ca_max_per_product, cfg->device_ca_code_ttl_s);
        /* throttle: before the REST API and the MQTT password listeners answer */
        struct hub_throttle_limits tl = {cfg->auth_fail_free, cfg->auth_fail_window_s,
                                         cfg->auth_fail_max_delay_s, cfg->auth_throttle_sources};
        rc = hub_throttle_configure(&tl);
        if (rc == 0 && (s.audit_aggregate = hub_audit_aggregate_start(s.pool)) == NULL)
            rc = HUB_ENOMEM;
        if (rc == 0)
            rc = hub_api_start(&o, &s.api);
        if (rc == 0 && (s.device_ca_crl = hub_device_ca_crl_start(cfg->db_url,
                                                                  cfg->device_ca_crl_refresh)) == NULL)
            rc = HUB_ENOMEM;
        if (rc == 0 && (s.revjobs = hub_revjobs_start(cfg->db_url)) == NULL)
            rc = HUB_ENOMEM;
        if (rc == 0 && (s.crl_publisher = hub_crl_publisher_start(cfg->db_url, &s.authority)) == NULL)
            rc = HUB_ENOMEM;
    }
    s.loop = uv_default_loop();
    hub_buf_t ca_pem = HUB_BUF_INIT;
    if (rc == 0)
        rc = hub_authority_trust_pem(&s.authority, &ca_pem);
    if (rc == 0) {
        struct hub_mqtt_server_options mo = {
            .loop = s.loop,
            .cfg = cfg,
            .cert_chain_pem = (char *)ids[0].cert_pem.data,
            .key_pem = (char *)ids[0].key_pem.data,
            .ca_pem = (char *)ca_pem.data,
            .tickets = s.tickets,
            .more_certs = more,
            .n_more_certs = (size_t)(nids - 1),
            .proxy_trust = s.proxy_trust,
        };
        struct hub_mqtt_server *m;
        rc = hub_mqtt_server_start(&mo, &m);
        if (rc == 0) {
            __atomic_store_n(&s.mqtt, m, __ATOMIC_RELEASE);
            hub_api_mqtt_ready(s.api); /* /healthz: 200 from now on */
        }
    }
    hub_buf_free(&ca_pem);
    hub_server_certs_free(ids, nids); /* wipes the keys */
    if (rc != 0)
        goto out;

    uv_signal_init(s.loop, &s.sig_term);
    uv_signal_init(s.loop, &s.sig_int);
    uv_signal_init(s.loop, &s.sig_hup);
    s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
    uv_signal_start(&s.sig_term, stop_cb, SIGTERM);
    uv_signal_start(&s.sig_int, stop_cb, SIGINT);
    uv_signal_start(&s.sig_hup, reload_cb, SIGHUP);
    uv_timer_init(s.loop, &s.drain);
    s.drain.data = &s;
    uv_timer_init(s.loop, &s.maintenance);
    s.maintenance.data = &s;
    /* First run at once: publishes any CRL that is missing or past half its validity. */
    uv_timer_start(&s.maintenance, maintenance_cb, 0, MAINTENANCE_INTERVAL_MS);

    hub_info("iothubd %s serving (database %s, CA loaded)", PACKAGE_VERSION,
             PQdb(s.db));
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    hub_info("iothubd stopped");
out:
    if (s.ticketsync != NULL) { /* a start that failed after it: let its timer close */
        hub_ticketsync_stop(s.ticketsync);
        uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    }
    hub_device_ca_crl_stop(s.device_ca_crl);
    hub_revjobs_stop(s.revjobs);
    hub_crl_publisher_stop(s.crl_publisher);
    hub_tickets_free(s.tickets);
    hub_api_stop(s.api);
    hub_audit_aggregate_stop(s.audit_aggregate); /* throttle: writes the last counts */
    hub_throttle_free();
    hub_db_pool_free(s.pool);
    hub_ocsp_signers_free(s.authority.ocsp);
    hub_authority_free(&s.authority);
    PQfinish(s.db);
    hub_proxy_trust_free(s.proxy_trust);
    return rc == 0 ? 0 : 1;
}

static int cmd_migrate(const struct hub_config *cfg)
{
    PGconn *c;
    int applied;
    if (hub_db_connect(cfg->db_url, &c) != 0)
        return 1;
    int rc = hub_db_migrate_apply(c, &applied);
    PQfinish(c);
    if (rc != 0)
        return 1;
    printf(applied ? "%d migration(s) applied\n" : "database schema is up to date\n", applied);
    return 0;
}

/* Writes the buffer to stdout; refuses binary output to a terminal. */
static int emit(const hub_buf_t *b, int binary)
{
    if (binary && isatty(STDOUT_FILENO)) {
        hub_error("refusing to write binary DER to a terminal: redirect it or use --format pem");
        return 1;
    }
    return fwrite(b->data, 1, b->len, stdout) == b->len && fflush(stdout) == 0 ? 0 : 1;
}

/* `ca import` and `ca rotate --external` (server/extroot.c). Returns the exit status, or -1
 * when argv is neither. */
static int cmd_ca_external(const struct hub_config *cfg, int argc, char **argv)
{
    const char *what = argc > 0 ? argv[0] : "";
    int import = strcmp(what, "import") == 0, rotate = strcmp(what, "rotate") == 0;
    int external = 0;
    for (int i = 1; rotate && i < argc; i++)
        external |= strcmp(argv[i], "--external") == 0;
    if (!import && !(rotate && external))
        return -1;
    struct hub_extroot_files f = {0};
    const char *csr_dir = ".";
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (import && strcmp(argv[i], "--root") == 0)
            slot = &f.root;
        else if (import && strcmp(argv[i], "--issuing") == 0)
            slot = &f.issuing;
        else if (import && strcmp(argv[i], "--server") == 0)
            slot = &f.server;
        else if (import && strcmp(argv[i], "--crl") == 0)
            slot = &f.crl;
        else if (rotate && strcmp(argv[i], "--csr-dir") == 0)
            slot = &csr_dir;
        else if (rotate && strcmp(argv[i], "--external") == 0)
            continue;
        if (slot == NULL || i + 1 >= argc) {
            fprintf(stderr, "iothubd ca %s: unexpected argument \"%s\"\n%s", what, argv[i], usage);
            return 2;
        }
        *slot = argv[++i];
    }
    if (rotate)
        return hub_extroot_rotate(cfg, csr_dir) == 0 ? 0 : 1;
    if ((f.issuing == NULL) != (f.server == NULL) ||
        (f.root == NULL && f.issuing == NULL && f.crl == NULL)) {
        fprintf(stderr, "iothubd ca import: give --issuing and --server together, with --root "
                        "the first time, and/or --crl\n%s", usage);
        return 2;
    }
    return hub_extroot_import(cfg, &f) == 0 ? 0 : 1;
}

static int cmd_ca(const struct hub_config *cfg, int argc, char **argv)
{
    const char *what = argc > 0 ? argv[0] : "";
    const char *format = NULL;
    int ext = cmd_ca_external(cfg, argc, argv);
    if (ext >= 0)
        return ext;
    if (strcmp(what, "rotate") == 0) {
        if (argc > 1) {
            fprintf(stderr, "iothubd ca rotate: unexpected argument \"%s\"\n%s", argv[1], usage);
            return 2;
        }
        return hub_init_rotate_issuing(cfg) == 0 ? 0 : 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
            format = argv[++i];
        else if (strncmp(argv[i], "--format=", 9) == 0)
            format = argv[i] + 9;
        else {
            fprintf(stderr, "iothubd ca: unexpected argument \"%s\"\n%s", argv[i], usage);
            return 2;
        }
    }
    int chain = strcmp(what, "chain") == 0, crl = strcmp(what, "crl") == 0;
    if (!chain && !crl) {
        fprintf(stderr, "iothubd ca: expected \"chain\", \"crl\" or \"rotate\"\n%s", usage);
        return 2;
    }
    if (format == NULL)
        format = chain ? "pem" : "der";
    if ((chain && strcmp(format, "pem") && strcmp(format, "p7b")) ||
        (crl && strcmp(format, "pem") && strcmp(format, "der"))) {
        fprintf(stderr, "iothubd ca %s: unknown --format \"%s\" (expected %s)\n", what, format,
                chain ? "pem or p7b" : "der or pem");
        return 2;
    }

    PGconn *c;
    struct hub_db_ca ca[2];
    hub_buf_t out = HUB_BUF_INIT, der = HUB_BUF_INIT;
    memset(ca, 0, sizeof ca);
    if (hub_db_connect(cfg->db_url, &c) != 0)
        return 1;
    int rc = hub_db_cas_get(c, "issuing", &ca[0]);
    if (rc == 0 && chain)
        rc = hub_db_cas_get(c, "root", &ca[1]);
    if (rc == 0 && chain && strcmp(format, "pem") == 0) {
        rc = hub_pem_encode("CERTIFICATE", ca[0].cert_der.data, ca[0].cert_der.len, &out);
        if (rc == 0)
            rc = hub_pem_encode("CERTIFICATE", ca[1].cert_der.data, ca[1].cert_der.len, &out);
    } else if (rc == 0 && chain) {
        const uint8_t *ders[] = {ca[0].cert_der.data, ca[1].cert_der.data};
        const size_t lens[] = {ca[0].cert_der.len, ca[1].cert_der.len};
        rc = hub_pkcs7_certs_only(ders, lens, 2, &out);
    } else if (rc == 0) {
        uint64_t number;
        time_t tu, nu;
        rc = hub_db_crls_latest(c, ca[0].id, &der, &number, &tu, &nu);
        if (rc == 0 && strcmp(format, "pem") == 0)
            rc = hub_pem_encode("X509 CRL", der.data, der.len, &out);
        else if (rc == 0)
            rc = hub_buf_append(&out, der.data, der.len);
    }
    if (rc == HUB_ENOTFOUND)
        hub_error("no %s in the database: run `iothubd init` first",
                  chain ? "certificate authority" : "CRL");
    int status = rc == 0 ? emit(&out, strcmp(format, "pem") != 0) : 1;
    hub_db_cas_free(&ca[0]);
    hub_db_cas_free(&ca[1]);
    hub_buf_free(&out);
    hub_buf_free(&der);
    PQfinish(c);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int opt;
    /* "+": stop at the first command so its own options are not taken as ours. */
    while ((opt = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("iothubd %s\n", PACKAGE_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    const char *cmd = optind < argc ? argv[optind++] : "serve";
    if (config_path == NULL && getenv("IOTHUB_CONFIG") != NULL)
        config_path = getenv("IOTHUB_CONFIG");
    if (config_path == NULL && access(HUB_SYSCONFDIR "/iothub/iothub.conf", R_OK) == 0)
        config_path = HUB_SYSCONFDIR "/iothub/iothub.conf";

    struct hub_config cfg;
    char err[512];
    if (hub_config_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "iothubd: configuration error: %s\n", err);
        hub_config_free(&cfg);
        return 1;
    }
    hub_log_setup(cfg.log_level, cfg.log_format);
    /* Module and PIN of CA keys kept in a PKCS#11 token (ca_key_store). */
    if (hub_p11_configure(cfg.ca_key_store, cfg.pkcs11_module, cfg.pkcs11_pin_file) != 0) {
        hub_config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    int status;
    if (strcmp(cmd, "serve") == 0 && optind == argc) {
        status = serve(&cfg);
    } else if (strcmp(cmd, "init") == 0) {
        const char *token_file = "admin.token", *csr_dir = NULL;
        int external_root = 0;
        for (int i = optind; i < argc; i++) {
            if (strcmp(argv[i], "--external-root") == 0)
                external_root = 1;
            else if (strcmp(argv[i], "--csr-dir") == 0 && i + 1 < argc)
                csr_dir = argv[++i];
            else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc)
                token_file = argv[++i];
            else if (strncmp(argv[i], "--token-file=", 13) == 0)
                token_file = argv[i] + 13;
            else {
                fprintf(stderr, "iothubd init: unexpected argument \"%s\"\n%s", argv[i], usage);
                hub_config_free(&cfg);
                return 2;
            }
        }
        if (csr_dir != NULL && !external_root) {
            fprintf(stderr, "iothubd init: --csr-dir goes with --external-root\n%s", usage);
            hub_config_free(&cfg);
            return 2;
        }
        if (external_root)
            status = hub_extroot_init(&cfg, token_file, csr_dir ? csr_dir : ".") == 0 ? 0 : 1;
        else
            status = hub_init_run(&cfg, token_file) == 0 ? 0 : 1;
    } else if (strcmp(cmd, "migrate") == 0 && optind == argc) {
        status = cmd_migrate(&cfg);
    } else if (strcmp(cmd, "rekey") == 0) {
        const char *key_file = NULL;
        if (optind + 2 == argc && strcmp(argv[optind], "--new-master-key-file") == 0)
            key_file = argv[optind + 1];
        else if (optind + 1 == argc && strncmp(argv[optind], "--new-master-key-file=", 22) == 0)
            key_file = argv[optind] + 22;
        if (key_file == NULL || *key_file == 0) {
            fprintf(stderr, "iothubd rekey: expected --new-master-key-file PATH\n%s", usage);
            status = 2;
        } else {
            status = hub_init_rekey(&cfg, key_file) == 0 ? 0 : 1;
        }
    } else if (strcmp(cmd, "ca") == 0) {
        status = cmd_ca(&cfg, argc - optind, argv + optind);
    } else if (optind < argc) {
        fprintf(stderr, "iothubd %s: unexpected argument \"%s\"\n%s", cmd, argv[optind],
                usage);
        status = 2;
    } else {
        fprintf(stderr, "iothubd: unknown command \"%s\"\n%s", cmd, usage);
        status = 2;
    }
    hub_config_free(&cfg);
    return status;
}
