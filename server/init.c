/* Init runs in one transaction under an advisory lock, so two concurrent `iothubd init`
 * cannot create two CAs; the token file is written to a temporary name and renamed only
 * after the commit, so a file on disk always holds a token the database knows. */
#include "server/init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/token.h"
#include "ca/crlpub.h"
#include "ca/seal.h"
#include "db/audit.h"
#include "db/cas.h"
#include "db/certificates.h"
#include "db/db.h"
#include "db/migrate.h"
#include "db/pending.h"
#include "db/tokens.h"
#include "server/server_certs.h"
#include "server/ticketsync.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define INIT_LOCK HUB_INIT_LOCK
#define SERVER_CERT_DAYS 365
#define SERVER_RENEW_DAYS 30

void hub_init_authority_settings(const struct hub_config *cfg, struct hub_authority *a)
{
    char **names = hub_config_hostnames(cfg);
    const char *host = names && names[0] ? names[0] : "localhost";
    int v6 = strchr(host, ':') != NULL;
    snprintf(a->crl_url, sizeof a->crl_url, "https://%s%s%s:%d/v1/crl", v6 ? "[" : "", host,
             v6 ? "]" : "", cfg->api_listen.port);
    snprintf(a->ocsp_url, sizeof a->ocsp_url, "https://%s%s%s:%d/ocsp", v6 ? "[" : "", host,
             v6 ? "]" : "", cfg->api_listen.port);
    a->crl_validity_hours = cfg->crl_validity_hours;
    a->crl_base_hours = cfg->crl_base_hours;
    a->crl_history = cfg->crl_history;
    a->crl_rebuild_max_entries = cfg->crl_rebuild_max_entries;
    free(names);
}

/* Says when ca_key_store names a token but the issuing CA was made before with a sealed key:
 * init never moves a key, so that CA keeps signing from PostgreSQL. */
static void check_key_store(const struct hub_config *cfg, const struct hub_authority *a)
{
    if (hub_signer_store_is_token(cfg->ca_key_store) && a->token[HUB_CA_ISSUING] == NULL)
        hub_warn("ca_key_store names a PKCS#11 token, but the issuing CA was created earlier "
                 "with a key sealed in the database: that key keeps signing (a key is never "
                 "moved into a token; see docs/ca.md)");
}

/* Issues the HTTPS/MQTT server certificate of key type t unless (and even if, with force) a
 * valid one of that type lasts 30 more days. */
static int ensure_server_cert(const struct hub_config *cfg, struct hub_authority *a,
                              PGconn *c, const char *pass, enum hub_key_type t, int force,
                              int *created)
{
    hub_buf_t der = HUB_BUF_INIT, sealed = HUB_BUF_INIT, plain = HUB_BUF_INIT;
    struct hub_issued issued = HUB_ISSUED_INIT;
    mbedtls_pk_context key;
    char **names = NULL;
    mbedtls_pk_init(&key);
    int rc = force ? 0 : hub_server_certs_have(c, t, time(NULL) + SERVER_RENEW_DAYS * 24 * 3600);
    if (rc != 0) /* 1: there is one; < 0: an error */
        goto out;
    names = hub_config_hostnames(cfg);
    if (names == NULL) {
        rc = HUB_ENOMEM;
        goto out;
    }
    rc = hub_key_generate(t, &key);
    if (rc == 0)
        rc = hub_key_write_der(&key, &plain);
    if (rc == 0)
        rc = hub_seal(pass, HUB_SEAL_ITERATIONS, HUB_SEAL_LABEL_SERVER, plain.data, plain.len,
                      &sealed);
    if (rc != 0)
        goto out;
    struct hub_issue req = {
        .kind = HUB_CERT_SERVER,
        .cn = names[0],
        .o = "iothub",
        .key = &key,
        .days = SERVER_CERT_DAYS,
        .alt_names = (const char *const *)names,
        .key_sealed = &sealed,
    };
    rc = hub_authority_issue(a, c, &req, &issued);
    if (rc == 0) {
        hub_info("issued %s server certificate %s for %s", hub_key_type_name(t), issued.serial,
                 cfg->hostname);
        (*created)++;
    }
out:
    mbedtls_pk_free(&key);
    free(names);
    hub_buf_free(&der);
    hub_authority_issued_free(&issued);
    hub_buf_free(&sealed);
    hub_buf_free(&plain);
    return rc < 0 ? rc : 0;
}

/* ensure_server_cert for every key type of server_key_types (SPEC §2). */
static int ensure_server_certs(const struct hub_config *cfg, struct hub_authority *a, PGconn *c,
                               const char *pass, int force, int *created)
{
    enum hub_key_type types[HUB_SERVER_KEY_TYPES_MAX];
    int n = hub_config_server_key_types(cfg, types), rc = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = ensure_server_cert(cfg, a, c, pass, types[i], force, created);
    return rc;
}

/* HUB_EEXIST (logged) when there is no root yet and an external root's pending keys
 * (server/extroot.c) wait for their certificates: a plain init must not make an internal
 * root meanwhile. */
static int refuse_pending(PGconn *c)
{
    struct hub_db_pending p;
    struct hub_db_ca root;
    int rc = hub_db_cas_get(c, "root", &root);
    hub_db_cas_free(&root);
    if (rc != HUB_ENOTFOUND)
        return rc; /* a root exists (pending keys then belong to a rotation) or a failure */
    rc = hub_db_pending_get(c, "issuing", &p);
    hub_db_pending_free(&p);
    if (rc == HUB_ENOTFOUND)
        return 0;
    if (rc == 0) {
        hub_error("keys wait for certificates from your external root: run `iothubd ca "
                  "import --root ... --issuing ... --server ...` (docs/ca.md)");
        return HUB_EEXIST;
    }
    return rc;
}

/* Opens PATH.tmp for the token with mode 0600 and writes it. */
static int write_token_tmp(const char *tmp, const char *token)
{
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        hub_error("cannot create token file %s: %s", tmp, strerror(errno));
        return HUB_EIO;
    }
    size_t len = strlen(token);
    int ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int err = errno;
    close(fd);
    if (!ok) {
        hub_error("cannot write token file %s: %s", tmp, strerror(err));
        unlink(tmp);
        return HUB_EIO;
    }
    return 0;
}

int hub_init_admin_token(PGconn *c, const char *tmp, int *tmp_written)
{
    int count;
    *tmp_written = 0;
    int rc = hub_db_tokens_count(c, "admin", &count);
    if (rc != 0 || count > 0)
        return rc;
    char token[HUB_TOKEN_LEN + 1], name[64];
    snprintf(name, sizeof name, "bootstrap-admin");
    rc = hub_token_create(c, name, "admin", token, sizeof token);
    if (rc == HUB_EEXIST) { /* an earlier bootstrap token was revoked: keep names unique */
        snprintf(name, sizeof name, "bootstrap-admin-%lld", (long long)time(NULL));
        rc = hub_token_create(c, name, "admin", token, sizeof token);
    }
    if (rc == 0)
        rc = write_token_tmp(tmp, token);
    hub_wipe(token, sizeof token);
    *tmp_written = rc == 0;
    return rc;
}

int hub_init_run(const struct hub_config *cfg, const char *token_path)
{
    char err[512], tmp[4096];
    PGconn *c = NULL;
    struct hub_authority a;
    int created = 0, token_written = 0, migrations = 0, crls = 0, rc;
    memset(&a, 0, sizeof a);

    char *pass = hub_config_master_key(cfg, err, sizeof err);
    if (pass == NULL) {
        hub_error("%s", err);
        return HUB_ECONFIG;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", token_path);
    rc = hub_db_connect(cfg->db_url, &c);
    if (rc == 0)
        rc = hub_db_migrate_apply(c, &migrations);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, INIT_LOCK);
    if (rc == 0) /* an external root's keys wait for `iothubd ca import` (server/extroot.c) */
        rc = refuse_pending(c);
    if (rc == 0)
        rc = hub_authority_bootstrap_store(c, pass, cfg->ca_key_type, cfg->ca_key_store,
                                           &created);
    if (rc == 0) {
        rc = hub_authority_load(c, pass, &a);
        hub_init_authority_settings(cfg, &a);
    }
    if (rc == 0)
        check_key_store(cfg, &a);
    if (rc == 0)
        rc = ensure_server_certs(cfg, &a, c, pass, 0, &created);
    if (rc == 0)
        rc = hub_init_admin_token(c, tmp, &token_written);
    if (rc == 0 && (created > 0 || token_written))
        rc = hub_db_audit_insert(c, "iothubd init", "system", "init", NULL, "local",
                          "ok", NULL);
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc != 0) {
        if (c != NULL)
            hub_db_rollback(c);
        if (token_written)
            unlink(tmp);
        goto out;
    }
    if (token_written && rename(tmp, token_path) != 0) {
        hub_error("cannot rename %s to %s: %s (the token in %s is valid)", tmp, token_path,
                  strerror(errno), tmp);
        rc = HUB_EIO;
        goto out;
    }
    rc = hub_crlpub_refresh(&a, c, 1, &crls);
    if (rc != 0)
        goto out;

    if (created == 0 && !token_written && migrations == 0 && crls == 0) {
        printf("iothub is already initialised: nothing changed");
        if (access(token_path, F_OK) == 0)
            printf(" (admin token file %s kept)", token_path);
        printf("\n");
    } else {
        /* `migrate` may have applied them already (deploy/entrypoint.sh runs it to wait
         * for the database): "0 migration(s) applied" after its "4" would read as a loss. */
        printf("iothub initialised: ");
        if (migrations > 0)
            printf("%d migration(s) applied, ", migrations);
        printf("%d CA/server certificate(s) created, %d CRL(s) published\n", created, crls);
        if (token_written)
            printf("bootstrap admin token written to %s (mode 0600)\n", token_path);
        else
            printf("an admin token already exists: no new token written\n");
    }
out:
    if (rc == HUB_EBADPASS)
        hub_error("the master passphrase does not open the stored CA keys: check "
                  "master_key_file / IOTHUB_MASTER_KEY");
    else if (rc != 0)
        hub_error("init failed: %s", hub_strerror(rc));
    hub_authority_free(&a);
    PQfinish(c);
    hub_wipe(pass, strlen(pass));
    free(pass);
    return rc;
}

int hub_init_rekey(const struct hub_config *cfg, const char *new_key_file)
{
    char err[512];
    PGconn *c = NULL;
    size_t count = 0;
    struct hub_config next = *cfg; /* only the passphrase source differs */
    next.master_key_file = (char *)new_key_file;
    char *old_pass = hub_config_master_key(cfg, err, sizeof err);
    if (old_pass == NULL) {
        hub_error("%s", err);
        return HUB_ECONFIG;
    }
    char *new_pass = hub_config_master_key(&next, err, sizeof err);
    int rc = HUB_ECONFIG;
    if (new_pass == NULL) {
        hub_error("--new-master-key-file: %s", err);
        goto out;
    }
    if (strcmp(old_pass, new_pass) == 0) {
        hub_error("the new master passphrase is the current one: nothing to do");
        rc = HUB_EINVAL;
        goto out;
    }
    rc = hub_db_connect(cfg->db_url, &c);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, INIT_LOCK);
    if (rc == 0)
        rc = hub_authority_reseal(c, old_pass, new_pass, &count);
    if (rc == 0) /* the session-ticket wrapping key; the ticket keys it wraps stay as they are */
        rc = hub_ticketsync_reseal(c, old_pass, new_pass, &count);
    if (rc == 0)
        rc = hub_db_audit_insert(c, "iothubd rekey", "system", "master_key.rotate", NULL, "local",
                                 "ok", NULL);
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc != 0 && c != NULL)
        hub_db_rollback(c);
    if (rc == 0)
        printf("%zu sealed key(s) re-encrypted under the new master passphrase: point "
               "master_key_file at %s and restart every iothubd\n",
               count, new_key_file);
    else
        hub_error("master passphrase rotation failed (%s): nothing changed", hub_strerror(rc));
out:
    if (new_pass != NULL) {
        hub_wipe(new_pass, strlen(new_pass));
        free(new_pass);
    }
    hub_wipe(old_pass, strlen(old_pass));
    free(old_pass);
    PQfinish(c);
    return rc;
}

int hub_init_rotate_issuing(const struct hub_config *cfg)
{
    char err[512];
    PGconn *c = NULL;
    struct hub_authority a, b; /* before and after */
    int generation = 0, created = 0, crls = 0, committed = 0;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    char *pass = hub_config_master_key(cfg, err, sizeof err);
    if (pass == NULL) {
        hub_error("%s", err);
        return HUB_ECONFIG;
    }
    int rc = hub_db_connect(cfg->db_url, &c);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, INIT_LOCK);
    if (rc == 0)
        rc = hub_authority_load(c, pass, &a);
    if (rc == 0)
        rc = hub_authority_rotate_store(&a, c, pass, cfg->ca_key_type, cfg->ca_key_store,
                                        &generation);
    /* The server certificate must chain to the new issuing CA that serve will present. */
    if (rc == 0) {
        rc = hub_authority_load(c, pass, &b);
        hub_init_authority_settings(cfg, &b);
    }
    if (rc == 0)
        rc = ensure_server_certs(cfg, &b, c, pass, 1, &created);
    if (rc == 0)
        rc = hub_db_audit_insert(c, "iothubd ca rotate", "system", "ca.rotate", NULL, "local", "ok",
                          NULL);
    if (rc == 0)
        rc = hub_db_commit(c);
    committed = rc == 0;
    if (rc != 0 && c != NULL)
        hub_db_rollback(c);
    if (committed && hub_crlpub_refresh(&b, c, 1, &crls) != 0)
        hub_warn("the new issuing CA has no CRL yet: `iothubd serve` publishes it at start");
    /* The retired CA's base named the active CA's deltas (GET /v1/crl?delta=1): a new one
     * names its own (?ca=<serial>&delta=1). */
    if (committed && (hub_db_begin(c) != 0 || hub_crlpub_base(&b, c, a.id[HUB_CA_ISSUING]) != 0 ||
                      hub_db_commit(c) != 0)) {
        hub_db_rollback(c);
        hub_warn("the retired issuing CA's CRL still names the active CA's delta CRLs until its "
                 "next base (within crl_base_hours)");
    }
    if (committed)
        printf("issuing CA rotated: \"iothub Issuing CA G%d\" signs from now on; the previous "
               "one is retired (still trusted, its CRL still published) until it expires. "
               "Restart every iothubd to use it.\n",
               generation);
    else if (rc == HUB_EBADPASS)
        hub_error("the master passphrase does not open the stored CA keys: check "
                  "master_key_file / IOTHUB_MASTER_KEY");
    else
        hub_error("issuing CA rotation failed (%s): nothing changed", hub_strerror(rc));
    hub_authority_free(&a);
    hub_authority_free(&b);
    hub_wipe(pass, strlen(pass));
    free(pass);
    PQfinish(c);
    return rc;
}
