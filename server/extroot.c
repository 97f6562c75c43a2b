/* The two steps of an external root. Step one makes the keys the hub will hold and stops:
 * they are sealed like every other key (ca/key + ca/seal), or, with ca_key_store = pkcs11:...,
 * the issuing key is made (or found) in the token and only its URI is kept; pending_keys
 * holds them with their CSRs. Step two verifies what the
 * maker's root signed against those keys and installs root (keyless), issuing CA and
 * server certificate in one transaction, so that `serve` and the devices see a hub like any
 * other. Everything runs under the init advisory lock. */
#include "server/extroot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/x509_csr.h>

#include "ca/authority.h"
#include "ca/crlpub.h"
#include "ca/cert.h"
#include "ca/csr.h"
#include "ca/csrgen.h"
#include "ca/import.h"
#include "ca/key.h"
#include "ca/p11uri.h"
#include "ca/pem.h"
#include "ca/seal.h"
#include "ca/signer.h"
#include "db/audit.h"
#include "db/cas.h"
#include "db/certificates.h"
#include "db/crls.h"
#include "db/db.h"
#include "db/migrate.h"
#include "db/pending.h"
#include "server/init.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/secure.h"

#define FILE_MAX (1024 * 1024) /* a certificate or a root CRL given to `ca import` */
#define ISSUING_CN "iothub Issuing CA"

static const char *const pending_roles[] = {"issuing", "server"};
static const char *const csr_names[] = {"issuing-ca.csr", "server.csr"};
static const char *const ext_names[] = {"issuing-ca.ext", "server.ext"};

/* Makes one pending key: generated and sealed as the CAs' keys are, its CSR with CN cn. */
static int make_pending(PGconn *c, const char *pass, enum hub_key_type t, const char *role,
                        const char *cn)
{
    mbedtls_pk_context key;
    hub_buf_t plain = HUB_BUF_INIT, sealed = HUB_BUF_INIT, csr = HUB_BUF_INIT;
    mbedtls_pk_init(&key);
    int server = strcmp(role, "server") == 0;
    int rc = hub_key_generate(t, &key);
    if (rc == 0)
        rc = hub_csrgen_write_der(&key, cn, &csr);
    if (rc == 0)
        rc = hub_key_write_der(&key, &plain);
    if (rc == 0)
        rc = hub_seal(pass, HUB_SEAL_ITERATIONS,
                      server ? HUB_SEAL_LABEL_SERVER : HUB_SEAL_LABEL_ISSUING, plain.data,
                      plain.len, &sealed);
    if (rc == 0)
        rc = hub_db_pending_put(c, role, hub_key_type_name(t), &sealed, &csr);
    if (rc == 0)
        hub_info("created the pending %s key (%s) for \"%s\"", role, hub_key_type_name(t), cn);
    mbedtls_pk_free(&key);
    hub_buf_free(&plain); /* wipes */
    hub_buf_free(&sealed);
    hub_buf_free(&csr);
    return rc;
}

/* Makes the pending issuing key in the token key_store names (generated there, or the object
 * found there: its type is the token's) and records its URI without PIN, with its CSR. */
static int make_pending_token(PGconn *c, const char *key_store, enum hub_key_type t, const char *cn)
{
    mbedtls_pk_context pub;
    struct hub_p11_key *token = NULL;
    hub_buf_t csr = HUB_BUF_INIT;
    char uri[HUB_P11_URI_MAX];
    int generated = 0;
    mbedtls_pk_init(&pub);
    int rc = hub_p11_uri_redact(key_store, uri, sizeof uri);
    if (rc == 0)
        rc = hub_signer_create_key(key_store, t, &pub, &token, &generated);
    if (rc == 0 && (rc = hub_key_type_of(&pub, &t)) != 0)
        hub_error("the key %s is not EC P-256/P-384 or RSA 2048/3072/4096", uri);
    if (rc == 0)
        rc = hub_csrgen_write_der_by(&(struct hub_signer){&pub, token}, cn, &csr);
    if (rc == 0)
        rc = hub_db_pending_put_token(c, "issuing", hub_key_type_name(t), uri, &csr);
    if (rc == 0)
        hub_info("the pending issuing key (%s) for \"%s\" is in the token (%s there): %s",
                 hub_key_type_name(t), cn, generated ? "generated" : "found", uri);
    hub_p11_key_free(token);
    mbedtls_pk_free(&pub);
    hub_buf_free(&csr);
    return rc;
}

/* Writes dir/name atomically. */
static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    const char *what = "write";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = hub_file_write_atomic(path, data, len, 0644, &what);
    if (rc != 0)
        hub_error("cannot %s %s: %s", what, path, strerror(errno));
    return rc;
}

/* Writes the openssl extensions file of each CSR: what the maker's root must put in. */
static int write_ext_files(const struct hub_config *cfg, const char *dir)
{
    char **names = hub_config_hostnames(cfg);
    if (names == NULL)
        return HUB_ENOMEM;
    hub_buf_t san = HUB_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; rc == 0 && names[i] != NULL; i++) {
        int ip = strspn(names[i], "0123456789.") == strlen(names[i]) || strchr(names[i], ':');
        char one[300];
        snprintf(one, sizeof one, "%s%s:%s", i ? ", " : "", ip ? "IP" : "DNS", names[i]);
        rc = hub_buf_puts(&san, one);
    }
    free(names);
    char text[2048];
    const char *rsa = cfg->ca_key_type >= HUB_KEY_RSA_2048 ? ", keyEncipherment" : "";
    int n = snprintf(text, sizeof text,
                     "# iothub issuing CA (made by `iothubd init --external-root`)\n"
                     "basicConstraints = critical, CA:TRUE, pathlen:0\n"
                     "keyUsage = critical, keyCertSign, cRLSign\n"
                     "subjectKeyIdentifier = hash\n"
                     "authorityKeyIdentifier = keyid:always\n");
    if (rc == 0)
        rc = write_file(dir, ext_names[0], text, (size_t)n);
    n = snprintf(text, sizeof text,
                 "# iothub server certificate (made by `iothubd init --external-root`)\n"
                 "basicConstraints = critical, CA:FALSE\n"
                 "keyUsage = critical, digitalSignature%s\n"
                 "extendedKeyUsage = serverAuth\n"
                 "subjectAltName = %.*s\n"
                 "subjectKeyIdentifier = hash\n"
                 "authorityKeyIdentifier = keyid:always\n",
                 rsa, (int)san.len, san.data ? (char *)san.data : "");
    if (rc == 0)
        rc = write_file(dir, ext_names[1], text, (size_t)n);
    hub_buf_free(&san);
    return rc;
}

/* Writes the CSRs of the pending keys and the extension files into dir; prints the
 * maker's commands. */
static int write_csrs(const struct hub_config *cfg, PGconn *c, const char *dir)
{
    int rc = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        hub_error("cannot create --csr-dir %s: %s", dir, strerror(errno));
        return HUB_EIO;
    }
    for (int i = 0; rc == 0 && i < 2; i++) {
        struct hub_db_pending p;
        hub_buf_t pem = HUB_BUF_INIT;
        rc = hub_db_pending_get(c, pending_roles[i], &p);
        if (rc == 0)
            rc = hub_pem_encode("CERTIFICATE REQUEST", p.csr_der.data, p.csr_der.len, &pem);
        if (rc == 0)
            rc = write_file(dir, csr_names[i], pem.data, pem.len);
        hub_buf_free(&pem);
        hub_db_pending_free(&p);
    }
    if (rc == 0)
        rc = write_ext_files(cfg, dir);
    if (rc != 0)
        return rc;
    printf("Wrote %s/issuing-ca.csr and %s/server.csr (PKCS#10) with their openssl extensions "
           "files %s/issuing-ca.ext and %s/server.ext.\n"
           "On the machine that holds your root (root.pem, root.key), sign them:\n\n"
           "  openssl x509 -req -in issuing-ca.csr -CA root.pem -CAkey root.key "
           "-CAcreateserial -sha256 -days 3650 -extfile issuing-ca.ext -out issuing.pem\n"
           "  openssl x509 -req -in server.csr -CA root.pem -CAkey root.key "
           "-CAcreateserial -sha256 -days 365 -extfile server.ext -out server.pem\n\n"
           "then bring root.pem, issuing.pem and server.pem (and your root's CRL, if you "
           "publish one) back here and run:\n\n"
           "  iothubd ca import --root root.pem --issuing issuing.pem --server server.pem "
           "[--crl root.crl]\n",
           dir, dir, dir, dir);
    return 0;
}

/* Creates the pending keys that are missing. */
static int ensure_pending(const struct hub_config *cfg, PGconn *c, const char *pass,
                          const char *issuing_cn, int replace, int *created)
{
    char **names = hub_config_hostnames(cfg);
    if (names == NULL)
        return HUB_ENOMEM;
    int rc = 0;
    for (int i = 0; rc == 0 && i < 2; i++) {
        struct hub_db_pending p;
        rc = replace ? HUB_ENOTFOUND : hub_db_pending_get(c, pending_roles[i], &p);
        if (rc == 0 && i == 0 &&
            (p.key_uri[0] != 0) != hub_signer_store_is_token(cfg->ca_key_store))
            hub_warn("the pending issuing key was made %s; it stays there (ca_key_store changed "
                     "since `init --external-root`)",
                     p.key_uri[0] != 0 ? "in a token" : "sealed in the database");
        if (rc == 0)
            hub_db_pending_free(&p);
        if (rc == HUB_ENOTFOUND) {
            if (i == 0 && hub_signer_store_is_token(cfg->ca_key_store))
                rc = make_pending_token(c, cfg->ca_key_store, cfg->ca_key_type, issuing_cn);
            else
                rc = make_pending(c, pass, cfg->ca_key_type, pending_roles[i],
                                  i == 0 ? issuing_cn : names[0]);
            *created += rc == 0;
        }
    }
    free(names);
    return rc;
}

int hub_extroot_init(const struct hub_config *cfg, const char *token_path, const char *csr_dir)
{
    char err[512], tmp[4096];
    PGconn *c = NULL;
    int migrations = 0, created = 0, token_written = 0, done = 0;
    char *pass = hub_config_master_key(cfg, err, sizeof err);
    if (pass == NULL) {
        hub_error("%s", err);
        return HUB_ECONFIG;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", token_path);
    int rc = hub_db_connect(cfg->db_url, &c);
    if (rc == 0)
        rc = hub_db_migrate_apply(c, &migrations);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, HUB_INIT_LOCK);
    struct hub_db_ca root;
    memset(&root, 0, sizeof root);
    if (rc == 0) {
        rc = hub_db_cas_get(c, "root", &root);
        if (rc == 0 && root.key_sealed.len > 0) {
            hub_error("this hub already has its own root CA (made by `iothubd init`): "
                      "--external-root is for a new installation");
            rc = HUB_EEXIST;
        } else if (rc == 0) {
            done = 1; /* imported already */
        } else if (rc == HUB_ENOTFOUND) {
            rc = ensure_pending(cfg, c, pass, ISSUING_CN, 0, &created);
        }
    }
    hub_db_cas_free(&root);
    if (rc == 0)
        rc = hub_init_admin_token(c, tmp, &token_written);
    if (rc == 0 && (created > 0 || token_written))
        rc = hub_db_audit_insert(c, "iothubd init", "system", "init.external_root", NULL, "local",
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
    if (migrations > 0)
        printf("%d migration(s) applied\n", migrations);
    if (token_written)
        printf("bootstrap admin token written to %s (mode 0600)\n", token_path);
    if (done) {
        printf("iothub is already initialised with an external root: nothing changed\n");
        goto out;
    }
    if (hub_signer_store_is_token(cfg->ca_key_store))
        printf("%s: the issuing CA key is in the token (ca_key_store), the server key in the hub "
               "(sealed); the root's key stays with you.\n",
               created > 0 ? "created the pending keys" : "the pending keys exist already");
    else
        printf("%s: the issuing CA key and the server key are in the hub (sealed); the root's "
               "key stays with you.\n",
               created > 0 ? "created the pending keys" : "the pending keys exist already");
    rc = write_csrs(cfg, c, csr_dir);
out:
    PQfinish(c);
    hub_wipe(pass, strlen(pass));
    free(pass);
    return rc;
}

/* A successor's key must be a new token object: ca_key_store may not name the active one. */
static int refuse_active_token_key(const struct hub_config *cfg, PGconn *c)
{
    char uri[HUB_P11_URI_MAX];
    struct hub_db_ca active;
    if (!hub_signer_store_is_token(cfg->ca_key_store))
        return 0;
    int rc = hub_p11_uri_redact(cfg->ca_key_store, uri, sizeof uri);
    if (rc == 0 && (rc = hub_db_cas_get(c, "issuing", &active)) == 0) {
        if (strcmp(active.key_uri, uri) == 0) {
            hub_error("ca_key_store %s names the key of the active issuing CA: name a new "
                      "object (object=/id=) for its successor",
                      uri);
            rc = HUB_EEXIST;
        }
        hub_db_cas_free(&active);
    }
    return rc == HUB_ENOTFOUND ? 0 : rc;
}

int hub_extroot_rotate(const struct hub_config *cfg, const char *csr_dir)
{
    char err[512], cn[96];
    PGconn *c = NULL;
    int created = 0;
    char *pass = hub_config_master_key(cfg, err, sizeof err);
    if (pass == NULL) {
        hub_error("%s", err);
        return HUB_ECONFIG;
    }
    time_t now = time(NULL);
    struct tm tm;
    strftime(cn, sizeof cn, ISSUING_CN " %Y-%m-%dT%H:%MZ", gmtime_r(&now, &tm));
    struct hub_db_ca root;
    memset(&root, 0, sizeof root);
    int rc = hub_db_connect(cfg->db_url, &c);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, HUB_INIT_LOCK);
    if (rc == 0)
        rc = hub_db_cas_get(c, "root", &root);
    if (rc == HUB_ENOTFOUND)
        hub_error("no root CA yet: run `iothubd init --external-root` first");
    if (rc == 0 && root.key_sealed.len > 0) {
        hub_error("the root is the hub's own: rotate with `iothubd ca rotate`");
        rc = HUB_EINVAL;
    }
    if (rc == 0)
        rc = refuse_active_token_key(cfg, c);
    if (rc == 0)
        rc = ensure_pending(cfg, c, pass, cn, 1, &created);
    if (rc == 0)
        rc = hub_db_audit_insert(c, "iothubd ca rotate", "system", "ca.rotate.external", NULL,
                                 "local", "ok", NULL);
    if (rc == 0)
        rc = hub_db_commit(c);
    else if (c != NULL)
        hub_db_rollback(c);
    if (rc == 0) {
        printf("new pending keys for \"%s\" and the server; the current issuing CA keeps "
               "signing until the import.\n",
               cn);
        rc = write_csrs(cfg, c, csr_dir);
    }
    hub_db_cas_free(&root);
    PQfinish(c);
    hub_wipe(pass, strlen(pass));
    free(pass);
    return rc;
}

/* Reads a file given to `ca import` (at most FILE_MAX bytes) into out. */
static int read_input(const char *path, hub_buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        hub_error("cannot read %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    uint8_t chunk[8192];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        rc = out->len + n > FILE_MAX ? HUB_ERANGE : hub_buf_append(out, chunk, n);
        if (rc == HUB_ERANGE)
            hub_error("%s is larger than %d bytes", path, FILE_MAX);
    }
    if (rc == 0 && ferror(f)) {
        hub_error("cannot read %s: %s", path, strerror(errno));
        rc = HUB_EIO;
    }
    fclose(f);
    return rc;
}

/* The configuration name of a certificate's key type, or "external". */
static const char *key_type_of(mbedtls_pk_context *pk)
{
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY) {
        mbedtls_ecp_group_id g = mbedtls_pk_ec(*pk)->grp.id;
        return g == MBEDTLS_ECP_DP_SECP256R1   ? "ec-p256"
               : g == MBEDTLS_ECP_DP_SECP384R1 ? "ec-p384"
                                               : "external";
    }
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA) {
        size_t bits = mbedtls_pk_get_bitlen(pk);
        return bits == 2048   ? "rsa-2048"
               : bits == 3072 ? "rsa-3072"
               : bits == 4096 ? "rsa-4096"
                              : "external";
    }
    return "external";
}

/* Records a CA certificate in cas (key_sealed NULL for the root; key_uri, when not empty,
 * names the issuing key in a token). */
static int insert_ca(PGconn *c, const char *role, mbedtls_x509_crt *crt,
                     const hub_buf_t *key_sealed, const char *key_uri, int *id)
{
    char serial[HUB_SERIAL_HEX], subject[400];
    if (hub_x509_serial_hex(&crt->serial, serial, sizeof serial) != 0) {
        hub_error("the %s certificate's serial is longer than 20 bytes", role);
        return HUB_EINVAL;
    }
    if (mbedtls_x509_dn_gets(subject, sizeof subject, &crt->subject) < 0)
        snprintf(subject, sizeof subject, "?");
    hub_buf_t der = {.data = crt->raw.p, .len = crt->raw.len};
    if (key_uri != NULL && key_uri[0] != 0)
        return hub_db_cas_insert_token(c, role, subject, key_type_of(&crt->pk), serial, &der,
                                       key_uri, hub_x509_time(&crt->valid_from),
                                       hub_x509_time(&crt->valid_to), id);
    return hub_db_cas_insert(c, role, subject, key_type_of(&crt->pk), serial, &der, key_sealed,
                             hub_x509_time(&crt->valid_from), hub_x509_time(&crt->valid_to), id);
}

/* State of one import, freed at one place. */
struct import {
    mbedtls_x509_crt root, issuing, server;
    mbedtls_x509_csr csr[2];
    struct hub_db_pending pend[2];
    hub_buf_t in[4]; /* root, issuing, server, crl as read */
    struct hub_db_ca stored_root, stored_issuing;
    char **names;
};

static void import_free(struct import *im)
{
    mbedtls_x509_crt_free(&im->root);
    mbedtls_x509_crt_free(&im->issuing);
    mbedtls_x509_crt_free(&im->server);
    for (int i = 0; i < 2; i++) {
        mbedtls_x509_csr_free(&im->csr[i]);
        hub_db_pending_free(&im->pend[i]);
    }
    for (int i = 0; i < 4; i++)
        hub_buf_free(&im->in[i]);
    hub_db_cas_free(&im->stored_root);
    hub_db_cas_free(&im->stored_issuing);
    free(im->names);
}

/* Loads the root: the stored one (a given root.pem must be that one) or the given one. */
static int import_root(PGconn *c, const struct hub_extroot_files *f, struct import *im,
                       int *root_new, char *err, size_t errlen)
{
    int rc = hub_db_cas_get(c, "root", &im->stored_root);
    if (rc == 0 && im->stored_root.key_sealed.len > 0) {
        snprintf(err, errlen,
                 "this hub's root CA is its own (made by `iothubd init`): "
                 "`ca import` is for a hub initialised with --external-root");
        return HUB_EINVAL;
    }
    if (rc == 0) {
        if (f->root != NULL &&
            (im->in[0].len == 0 ||
             hub_import_parse_cert(im->in[0].data, im->in[0].len, f->root, &im->root, err,
                                   errlen) != 0 ||
             im->root.raw.len != im->stored_root.cert_der.len ||
             memcmp(im->root.raw.p, im->stored_root.cert_der.data, im->root.raw.len) != 0)) {
            if (err[0] == 0)
                snprintf(err, errlen,
                         "%s is not the root installed in this hub (serial %s): "
                         "a hub keeps the root it was imported with",
                         f->root, im->stored_root.serial);
            return HUB_EINVAL;
        }
        mbedtls_x509_crt_free(&im->root);
        mbedtls_x509_crt_init(&im->root);
        if (mbedtls_x509_crt_parse_der(&im->root, im->stored_root.cert_der.data,
                                       im->stored_root.cert_der.len) != 0)
            return HUB_ECRYPTO;
        return 0;
    }
    if (rc != HUB_ENOTFOUND)
        return rc;
    if (f->root == NULL) {
        snprintf(err, errlen, "no root is installed yet: give --root root.pem");
        return HUB_EINVAL;
    }
    *root_new = 1;
    rc = hub_import_parse_cert(im->in[0].data, im->in[0].len, f->root, &im->root, err, errlen);
    return rc != 0 ? rc : hub_import_check_root(&im->root, err, errlen);
}

/* The pending issuing key in the token: present, and the key the issuing certificate
 * certifies (a test signature checked with the certificate's public key). */
static int check_token_key(const char *uri, mbedtls_x509_crt *issuing, char *err, size_t errlen)
{
    mbedtls_pk_context pub;
    struct hub_p11_key *token = NULL;
    mbedtls_pk_init(&pub);
    int rc = mbedtls_pk_parse_public_key(&pub, issuing->pk_raw.p, issuing->pk_raw.len) == 0
                 ? hub_p11_key_open(uri, &pub, &token)
                 : HUB_ECRYPTO;
    if (rc == HUB_ENOTFOUND)
        snprintf(err, errlen, "the pending issuing key %s is not in the token", uri);
    else if (rc != 0)
        snprintf(err, errlen,
                 "the pending issuing key %s cannot sign for the issuing "
                 "certificate (%s)",
                 uri, hub_strerror(rc));
    hub_p11_key_free(token);
    mbedtls_pk_free(&pub);
    return rc != 0 ? HUB_EINVAL : 0;
}

/* Checks the issuing CA and server certificates against the pending keys. */
static int import_check_pair(PGconn *c, const char *pass, const struct hub_extroot_files *f,
                             struct import *im, int *server_by_root, char *err, size_t errlen)
{
    for (int i = 0; i < 2; i++) {
        int rc = hub_db_pending_get(c, pending_roles[i], &im->pend[i]);
        if (rc == HUB_ENOTFOUND)
            snprintf(err, errlen,
                     "no keys wait for certificates: run `iothubd init "
                     "--external-root` (or `iothubd ca rotate --external`) first");
        if (rc != 0)
            return rc == HUB_ENOTFOUND ? HUB_EINVAL : rc;
        char why[256];
        rc = hub_csr_load(im->pend[i].csr_der.data, im->pend[i].csr_der.len, &im->csr[i], why,
                          sizeof why);
        if (rc != 0) {
            hub_error("stored CSR of the pending %s key: %s", pending_roles[i], why);
            return rc;
        }
    }
    int rc =
        hub_import_parse_cert(im->in[1].data, im->in[1].len, f->issuing, &im->issuing, err, errlen);
    if (rc == 0)
        rc = hub_import_check_issuing(&im->issuing, &im->root, &im->csr[0].pk, err, errlen);
    if (rc == 0)
        rc = hub_import_parse_cert(im->in[2].data, im->in[2].len, f->server, &im->server, err,
                                   errlen);
    if (rc == 0)
        rc = hub_import_check_server(&im->server, &im->issuing, &im->root, &im->csr[1].pk,
                                     (const char *const *)im->names, server_by_root, err, errlen);
    /* Last (PBKDF2 is slow): the passphrase must still open the keys the certificates go
     * with, or `serve` could not use them. */
    for (int i = 0; rc == 0 && i < 2; i++) {
        if (im->pend[i].key_uri[0] != 0) {
            rc = check_token_key(im->pend[i].key_uri, &im->issuing, err, errlen);
            continue;
        }
        hub_buf_t plain = HUB_BUF_INIT;
        rc = hub_unseal(pass, i == 0 ? HUB_SEAL_LABEL_ISSUING : HUB_SEAL_LABEL_SERVER,
                        im->pend[i].key_sealed.data, im->pend[i].key_sealed.len, &plain);
        hub_buf_free(&plain);
        if (rc == HUB_EBADPASS)
            hub_error("the master passphrase does not open the pending %s key", pending_roles[i]);
    }
    return rc;
}

/* Installs root (when new), issuing CA (retiring the active one) and server certificate. */
static int import_install(PGconn *c, struct import *im, int root_new, int server_by_root,
                          int *root_id, int *retired)
{
    int issuing_id = 0, rc = 0, generation;
    if (root_new)
        rc = insert_ca(c, "root", &im->root, NULL, NULL, root_id);
    if (rc == 0 && im->stored_issuing.id != 0) {
        rc = hub_db_cas_retire_issuing(c, &generation);
        *retired = rc == 0;
    }
    if (rc == 0)
        rc = insert_ca(c, "issuing", &im->issuing, &im->pend[0].key_sealed, im->pend[0].key_uri,
                       &issuing_id);
    char serial[HUB_SERIAL_HEX], subject[400];
    if (rc == 0 && hub_x509_serial_hex(&im->server.serial, serial, sizeof serial) != 0) {
        hub_error("the server certificate's serial is longer than 20 bytes");
        rc = HUB_EINVAL;
    }
    if (rc == 0) {
        if (mbedtls_x509_dn_gets(subject, sizeof subject, &im->server.subject) < 0)
            snprintf(subject, sizeof subject, "?");
        struct hub_db_cert row = {
            .serial = serial,
            .ca_id = server_by_root ? *root_id : issuing_id,
            .kind = "server",
            .subject = subject,
            .der = im->server.raw.p,
            .der_len = im->server.raw.len,
            .key_sealed = im->pend[1].key_sealed.data,
            .key_sealed_len = im->pend[1].key_sealed.len,
            .not_before = hub_x509_time(&im->server.valid_from),
            .not_after = hub_x509_time(&im->server.valid_to),
        };
        rc = hub_db_certificates_insert(c, &row);
    }
    for (int i = 0; rc == 0 && i < 2; i++)
        rc = hub_db_pending_delete(c, pending_roles[i]);
    return rc;
}

/* Checks and records a root CRL; its cRLNumber must exceed the last one imported. */
static int import_crl(PGconn *c, const struct hub_extroot_files *f, struct import *im, int root_id,
                      struct hub_import_crl *info, int *listed, char *err, size_t errlen)
{
    hub_buf_t der = HUB_BUF_INIT;
    const mbedtls_x509_crt *watched = im->issuing.raw.len > 0 ? &im->issuing : NULL;
    mbedtls_x509_crt active;
    mbedtls_x509_crt_init(&active);
    if (watched == NULL && im->stored_issuing.id != 0 &&
        mbedtls_x509_crt_parse_der(&active, im->stored_issuing.cert_der.data,
                                   im->stored_issuing.cert_der.len) == 0)
        watched = &active;
    int rc = hub_import_check_crl(im->in[3].data, im->in[3].len, f->crl, &im->root, watched, info,
                                  listed, &der, err, errlen);
    uint64_t last;
    time_t tu, nu;
    int have = rc == 0 ? hub_db_crls_latest(c, root_id, NULL, &last, &tu, &nu) : HUB_ENOTFOUND;
    if (rc == 0 && have == 0 && info->number <= last) {
        snprintf(err, errlen,
                 "%s has cRLNumber %llu, not above the last one imported (%llu): "
                 "give a newer CRL",
                 f->crl, (unsigned long long)info->number, (unsigned long long)last);
        rc = HUB_EINVAL;
    } else if (rc == 0 && have != 0 && have != HUB_ENOTFOUND) {
        rc = have;
    }
    if (rc == 0)
        rc = hub_db_crls_insert(c, root_id, info->number, info->this_update, info->next_update,
                                info->entries, &der);
    hub_buf_free(&der);
    mbedtls_x509_crt_free(&active);
    return rc;
}

int hub_extroot_import(const struct hub_config *cfg, const struct hub_extroot_files *f)
{
    char err[512] = "", msg[512];
    PGconn *c = NULL;
    struct import im;
    memset(&im, 0, sizeof im);
    mbedtls_x509_crt_init(&im.root);
    mbedtls_x509_crt_init(&im.issuing);
    mbedtls_x509_crt_init(&im.server);
    mbedtls_x509_csr_init(&im.csr[0]);
    mbedtls_x509_csr_init(&im.csr[1]);
    int root_new = 0, by_root = 0, root_id = 0, retired = 0, listed = 0, rc = 0;
    struct hub_import_crl crl_info = {0};
    char *pass = hub_config_master_key(cfg, msg, sizeof msg);
    if (pass == NULL) {
        hub_error("%s", msg);
        return HUB_ECONFIG;
    }
    const char *paths[4] = {f->root, f->issuing, f->server, f->crl};
    for (int i = 0; rc == 0 && i < 4; i++)
        if (paths[i] != NULL)
            rc = read_input(paths[i], &im.in[i]);
    if (rc == 0 && (im.names = hub_config_hostnames(cfg)) == NULL)
        rc = HUB_ENOMEM;
    if (rc == 0)
        rc = hub_db_connect(cfg->db_url, &c);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, HUB_INIT_LOCK);
    if (rc == 0)
        rc = import_root(c, f, &im, &root_new, err, sizeof err);
    root_id = im.stored_root.id;
    if (rc == 0) {
        rc = hub_db_cas_get(c, "issuing", &im.stored_issuing);
        if (rc == HUB_ENOTFOUND)
            rc = 0;
    }
    if (rc == 0 && f->issuing == NULL && im.stored_issuing.id == 0) {
        snprintf(err, sizeof err, "no issuing CA is installed yet: give --issuing and --server");
        rc = HUB_EINVAL;
    }
    if (rc == 0 && f->issuing != NULL)
        rc = import_check_pair(c, pass, f, &im, &by_root, err, sizeof err);
    if (rc == 0 && f->issuing != NULL)
        rc = import_install(c, &im, root_new, by_root, &root_id, &retired);
    if (rc == 0 && f->crl != NULL)
        rc = import_crl(c, f, &im, root_id, &crl_info, &listed, err, sizeof err);
    if (rc == 0) {
        char details[256], issuing[HUB_SERIAL_HEX] = "", crl[32] = "null";
        if (f->issuing != NULL && hub_x509_serial_hex(&im.issuing.serial, issuing, sizeof issuing))
            issuing[0] = 0;
        if (f->crl != NULL)
            snprintf(crl, sizeof crl, "%llu", (unsigned long long)crl_info.number);
        snprintf(details, sizeof details,
                 "{\"root_installed\": %s, \"issuing_serial\": %s%s%s, \"root_crl_number\": %s}",
                 root_new ? "true" : "false", issuing[0] ? "\"" : "", issuing[0] ? issuing : "null",
                 issuing[0] ? "\"" : "", crl);
        rc = hub_db_audit_insert(c, "iothubd ca import", "system", "ca.import", NULL, "local", "ok",
                                 details);
    }
    if (rc == 0)
        rc = hub_db_commit(c);
    else if (c != NULL)
        hub_db_rollback(c);
    if (rc != 0) {
        if (err[0] != 0)
            hub_error("ca import refused: %s; nothing changed", err);
        else
            hub_error("ca import failed (%s): nothing changed", hub_strerror(rc));
        goto out;
    }
    if (root_new)
        printf("installed the root CA (its key stays with you)\n");
    if (f->issuing != NULL) {
        printf("installed the issuing CA and the server certificate%s\n",
               by_root ? " (signed by the root)" : "");
        if (retired)
            printf("the previous issuing CA is retired (still trusted, its CRL still "
                   "published) until it expires; restart every iothubd to use the new one\n");
        struct hub_authority a;
        int crls = 0;
        int lrc = hub_authority_load(c, pass, &a);
        if (lrc == 0) {
            hub_init_authority_settings(cfg, &a);
            lrc = hub_crlpub_refresh(&a, c, 1, &crls);
        }
        /* A retired CA's base named the active CA's deltas (?delta=1): one naming its own. */
        for (size_t i = 0; lrc == 0 && retired && i < a.nretired; i++) {
            int brc = hub_db_begin(c);
            if (brc == 0 && (brc = hub_crlpub_base(&a, c, a.retired[i].id)) == 0)
                brc = hub_db_commit(c);
            if (brc != 0) {
                hub_db_rollback(c);
                hub_warn("a retired issuing CA's CRL names the active CA's delta CRLs until "
                         "its next base (within crl_base_hours)");
            }
        }
        hub_authority_free(&a);
        if (lrc != 0)
            hub_warn("the issuing CA has no CRL yet: `iothubd serve` publishes it at start");
    }
    if (f->crl != NULL) {
        printf("imported the root CRL #%llu (%zu entries), served at GET /v1/crl?ca=root\n",
               (unsigned long long)crl_info.number, crl_info.entries);
        if (listed)
            hub_warn("the root CRL revokes this hub's issuing CA: devices that check it will "
                     "refuse the hub; rotate with `iothubd ca rotate --external`");
    }
out:
    import_free(&im);
    PQfinish(c);
    hub_wipe(pass, strlen(pass));
    free(pass);
    return rc;
}
