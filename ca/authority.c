/* The authority glues ca/ (X.509) to db/ (rows): it never formats SQL itself. Keys are
 * unsealed once at load and live only in mbedtls_pk contexts, wiped on free. */
#include "ca/authority.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>

#include "ca/pem.h"
#include "ca/pkcs7.h"
#include "ca/seal.h"
#include "db/cas.h"
#include "db/certificates.h"
#include "db/db.h"
#include "db/sealed.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define YEAR (365L * 24 * 3600)
#define CLOCK_SKEW 300 /* not_before is backdated this many seconds */

static const char *const role_names[] = {"root", "issuing"};
static const char *const role_subjects[] = {"iothub Root CA", "iothub Issuing CA"};
static const char *const seal_labels[] = {"iothub ca:root", HUB_SEAL_LABEL_ISSUING};

/* The seal label of a key from hub_db_sealed_list, or NULL for a row we do not seal. */
static const char *sealed_label(const struct hub_db_sealed *k)
{
    if (strcmp(k->role, "pending-issuing") == 0) /* db/pending: an external root's */
        return HUB_SEAL_LABEL_ISSUING;
    if (k->ca_id == 0)
        return strcmp(k->role, "server") == 0 || strcmp(k->role, "pending-server") == 0
                   ? HUB_SEAL_LABEL_SERVER
                   : NULL;
    for (size_t i = 0; i < 2; i++)
        if (strcmp(k->role, role_names[i]) == 0)
            return seal_labels[i];
    return NULL;
}

int hub_authority_reseal(PGconn *c, const char *old_pass, const char *new_pass, size_t *count)
{
    struct hub_db_sealed *keys;
    size_t n;
    *count = 0;
    int rc = hub_db_sealed_list(c, &keys, &n);
    if (rc != 0)
        return rc;
    hub_buf_t plain = HUB_BUF_INIT, blob = HUB_BUF_INIT;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *label = sealed_label(&keys[i]);
        if (label == NULL) {
            hub_error("sealed key of %s %s has no known label", keys[i].role, keys[i].serial);
            rc = HUB_EINVAL;
            break;
        }
        hub_buf_free(&plain);
        hub_buf_free(&blob);
        rc = hub_unseal(old_pass, label, keys[i].blob.data, keys[i].blob.len, &plain);
        if (rc == HUB_EBADPASS)
            hub_error("the current master passphrase does not open the key of %s %s",
                      keys[i].role, keys[i].serial);
        if (rc == 0)
            rc = hub_seal(new_pass, HUB_SEAL_ITERATIONS, label, plain.data, plain.len, &blob);
        if (rc == 0)
            rc = hub_db_sealed_update(c, &keys[i], &blob);
        if (rc == 0)
            (*count)++;
    }
    hub_buf_free(&plain);
    hub_buf_free(&blob);
    hub_db_sealed_free(keys, n);
    return rc;
}

/* Creates one CA: a new key, a certificate (self-signed for the root, else signed by
 * issuer_signer), sealed and stored; or, with a "pkcs11:" key_store, the key in the token
 * and its URI stored. */
static int create_ca(PGconn *c, const char *pass, enum hub_key_type t, enum hub_ca_role role,
                     const char *cn, const mbedtls_x509_crt *issuer,
                     const struct hub_signer *issuer_signer, const char *key_store)
{
    mbedtls_pk_context key;
    struct hub_p11_key *token = NULL;
    hub_buf_t der = HUB_BUF_INIT, plain = HUB_BUF_INIT, sealed = HUB_BUF_INIT;
    uint8_t serial[HUB_SERIAL_LEN];
    char serial_hex[HUB_SERIAL_HEX], subject[128], uri[HUB_P11_URI_MAX];
    time_t now = time(NULL);
    int generated;
    mbedtls_pk_init(&key);

    int rc = hub_signer_create_key(key_store, t, &key, &token, &generated);
    if (rc == 0 && token != NULL && (rc = hub_key_type_of(&key, &t)) != 0)
        hub_error("the CA key in the token is not EC P-256/P-384 or RSA 2048/3072/4096");
    if (rc != 0)
        goto out;
    struct hub_signer own = {&key, token};
    struct hub_cert_request req = {
        .kind = role == HUB_CA_ROOT ? HUB_CERT_ROOT_CA : HUB_CERT_ISSUING_CA,
        .cn = cn,
        .o = "iothub",
        .subject_key = &key,
        .issuer = issuer,
        .issuer_key = issuer_signer ? issuer_signer->pk : &key,
        .not_before = now - CLOCK_SKEW,
        .not_after = now + (role == HUB_CA_ROOT ? 20 : 10) * YEAR,
        .issuer_signer = issuer_signer ? issuer_signer : &own,
    };
    rc = hub_cert_issue(&req, serial, &der);
    if (rc != 0)
        goto out;
    hub_hex_upper(serial, sizeof serial, serial_hex);
    snprintf(subject, sizeof subject, "CN=%s, O=iothub", cn);
    if (token != NULL) {
        int id;
        rc = hub_p11_uri_redact(key_store, uri, sizeof uri);
        if (rc == 0)
            rc = hub_db_cas_insert_token(c, role_names[role], subject, hub_key_type_name(t),
                                         serial_hex, &der, uri, req.not_before, req.not_after,
                                         &id);
        if (rc == 0)
            hub_info("created %s CA %s (%s key %s in the token: %s, serial %s)",
                     role_names[role], subject, hub_key_type_name(t),
                     generated ? "generated" : "found", uri, serial_hex);
        goto out;
    }
    if (rc == 0)
        rc = hub_key_write_der(&key, &plain);
    if (rc == 0)
        rc = hub_seal(pass, HUB_SEAL_ITERATIONS, seal_labels[role], plain.data, plain.len,
                      &sealed);
    if (rc != 0)
        goto out;
    int id;
    rc = hub_db_cas_insert(c, role_names[role], subject, hub_key_type_name(t), serial_hex, &der,
                          &sealed, req.not_before, req.not_after, &id);
    if (rc == 0)
        hub_info("created %s CA %s (%s, serial %s)", role_names[role], subject,
                 hub_key_type_name(t), serial_hex);
out:
    hub_p11_key_free(token);
    mbedtls_pk_free(&key);
    hub_buf_free(&der);
    hub_buf_free(&plain);
    hub_buf_free(&sealed);
    return rc;
}

/* Parses a CA row's certificate into cert (and its DER into der) and unseals its key, or
 * opens its token key into *token (key then gets the certificate's public key). */
static int open_ca(const char *pass, enum hub_ca_role role, const struct hub_db_ca *row,
                   mbedtls_x509_crt *cert, mbedtls_pk_context *key, hub_buf_t *der,
                   struct hub_p11_key **token)
{
    hub_buf_t plain = HUB_BUF_INIT;
    int rc = 0, mrc = mbedtls_x509_crt_parse_der(cert, row->cert_der.data, row->cert_der.len);
    if (mrc != 0) {
        char msg[128];
        mbedtls_strerror(mrc, msg, sizeof msg);
        hub_error("stored %s CA certificate %s does not parse: mbedtls_x509_crt_parse_der: %s",
                  role_names[role], row->serial, msg);
        return HUB_ECRYPTO;
    }
    rc = hub_buf_append(der, row->cert_der.data, row->cert_der.len);
    if (rc == 0 && row->key_uri[0] != 0) {
        if (mbedtls_pk_parse_public_key(key, cert->pk_raw.p, cert->pk_raw.len) != 0)
            return HUB_ECRYPTO;
        rc = hub_p11_key_open(row->key_uri, key, token);
        if (rc == HUB_ENOTFOUND)
            hub_error("the %s CA key %s is not in the token (no such private key object)",
                      role_names[role], row->key_uri);
        if (rc != 0)
            hub_error("cannot use the %s CA key %s (CA serial %s): %s", role_names[role],
                      row->key_uri, row->serial, hub_strerror(rc));
        return rc;
    }
    if (rc == 0 && role == HUB_CA_ROOT && row->key_sealed.len == 0)
        return 0; /* an external root: the maker keeps its key */
    if (rc == 0)
        rc = hub_unseal(pass, seal_labels[role], row->key_sealed.data, row->key_sealed.len,
                        &plain);
    if (rc == 0)
        rc = hub_key_parse_der(plain.data, plain.len, key);
    hub_buf_free(&plain);
    return rc;
}

/* Loads the active CA of a role. */
static int load_ca(PGconn *c, const char *pass, enum hub_ca_role role, struct hub_authority *a)
{
    struct hub_db_ca row;
    int rc = hub_db_cas_get(c, role_names[role], &row);
    if (rc != 0)
        return rc;
    a->id[role] = row.id;
    rc = open_ca(pass, role, &row, &a->cert[role], &a->key[role], &a->der[role],
                 &a->token[role]);
    hub_db_cas_free(&row);
    return rc;
}

/* Loads the retired issuing CAs that have not expired. */
static int load_retired(PGconn *c, const char *pass, struct hub_authority *a)
{
    struct hub_db_ca *rows;
    size_t n;
    int rc = hub_db_cas_list_retired(c, &rows, &n);
    if (rc != 0)
        return rc;
    if (n > 0 && (a->retired = calloc(n, sizeof *a->retired)) == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct hub_retired_ca *r = &a->retired[i];
        mbedtls_x509_crt_init(&r->cert);
        mbedtls_pk_init(&r->key);
        a->nretired++;
        r->id = rows[i].id;
        rc = open_ca(pass, HUB_CA_ISSUING, &rows[i], &r->cert, &r->key, &r->der, &r->token);
    }
    for (size_t i = 0; i < n; i++)
        hub_db_cas_free(&rows[i]);
    free(rows);
    return rc;
}

int hub_authority_bootstrap(PGconn *c, const char *pass, enum hub_key_type t, int *created)
{
    return hub_authority_bootstrap_store(c, pass, t, NULL, created);
}

int hub_authority_bootstrap_store(PGconn *c, const char *pass, enum hub_key_type t,
                                  const char *key_store, int *created)
{
    struct hub_authority a;
    *created = 0;
    memset(&a, 0, sizeof a);
    for (int r = 0; r < 2; r++) {
        mbedtls_x509_crt_init(&a.cert[r]);
        mbedtls_pk_init(&a.key[r]);
    }
    int rc = load_ca(c, pass, HUB_CA_ROOT, &a);
    if (rc == HUB_ENOTFOUND) {
        rc = create_ca(c, pass, t, HUB_CA_ROOT, role_subjects[HUB_CA_ROOT], NULL, NULL, NULL);
        if (rc == 0) {
            (*created)++;
            rc = load_ca(c, pass, HUB_CA_ROOT, &a);
        }
    }
    if (rc == 0) {
        struct hub_db_ca row;
        rc = hub_db_cas_get(c, "issuing", &row);
        if (rc == 0)
            hub_db_cas_free(&row);
        else if (rc == HUB_ENOTFOUND) {
            struct hub_signer root = hub_authority_signer(&a, HUB_CA_ROOT);
            rc = create_ca(c, pass, t, HUB_CA_ISSUING, role_subjects[HUB_CA_ISSUING],
                           &a.cert[HUB_CA_ROOT], &root, key_store);
            *created += rc == 0;
        }
    }
    hub_authority_free(&a);
    return rc;
}

int hub_authority_load(PGconn *c, const char *pass, struct hub_authority *a)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->sign_lock, NULL);
    for (int r = 0; r < 2; r++) {
        mbedtls_x509_crt_init(&a->cert[r]);
        mbedtls_pk_init(&a->key[r]);
    }
    a->crl_validity_hours = 24;
    int rc = load_ca(c, pass, HUB_CA_ISSUING, a);
    if (rc == 0)
        rc = load_ca(c, pass, HUB_CA_ROOT, a);
    if (rc == 0)
        rc = load_retired(c, pass, a);
    return rc;
}

void hub_authority_free(struct hub_authority *a)
{
    for (int r = 0; r < 2; r++) {
        mbedtls_x509_crt_free(&a->cert[r]);
        mbedtls_pk_free(&a->key[r]);
        hub_buf_free(&a->der[r]);
        hub_p11_key_free(a->token[r]);
        a->token[r] = NULL;
    }
    for (size_t i = 0; i < a->nretired; i++) {
        mbedtls_x509_crt_free(&a->retired[i].cert);
        mbedtls_pk_free(&a->retired[i].key);
        hub_buf_free(&a->retired[i].der);
        hub_p11_key_free(a->retired[i].token);
    }
    free(a->retired);
    a->retired = NULL;
    a->nretired = 0;
}

int hub_authority_rotate(struct hub_authority *a, PGconn *c, const char *pass,
                         enum hub_key_type t, int *generation)
{
    return hub_authority_rotate_store(a, c, pass, t, NULL, generation);
}

int hub_authority_rotate_store(struct hub_authority *a, PGconn *c, const char *pass,
                               enum hub_key_type t, const char *key_store, int *generation)
{
    char cn[64], uri[HUB_P11_URI_MAX];
    if (hub_signer_store_is_token(key_store) && a->token[HUB_CA_ISSUING] != NULL &&
        hub_p11_uri_redact(key_store, uri, sizeof uri) == 0 &&
        strcmp(uri, hub_p11_key_uri(a->token[HUB_CA_ISSUING])) == 0) {
        hub_error("ca_key_store %s names the key of the active issuing CA: name a new object "
                  "(object=/id=) for its successor",
                  uri);
        return HUB_EEXIST;
    }
    if (hub_authority_root_external(a)) {
        hub_error("the root is external (its key is not in the hub): run `iothubd ca rotate "
                  "--external --csr-dir DIR`, have your root sign the two CSRs, then "
                  "`iothubd ca import --issuing ... --server ...` (docs/ca.md)");
        return HUB_EINVAL;
    }
    int rc = hub_db_cas_retire_issuing(c, generation);
    if (rc != 0)
        return rc;
    snprintf(cn, sizeof cn, "%s G%d", role_subjects[HUB_CA_ISSUING], *generation);
    struct hub_signer root = hub_authority_signer(a, HUB_CA_ROOT);
    return create_ca(c, pass, t, HUB_CA_ISSUING, cn, &a->cert[HUB_CA_ROOT], &root, key_store);
}

int hub_authority_issue(struct hub_authority *a, PGconn *c, const struct hub_issue *req,
                        struct hub_issued *out)
{
    time_t now = time(NULL);
    uint8_t raw[HUB_SERIAL_LEN];
    struct hub_signer signer = hub_authority_signer(a, HUB_CA_ISSUING);
    char uri[96] = "";
    const char *owner = req->device_id ? req->device_id : req->service_id;
    if (req->kind == HUB_CERT_CLIENT && owner != NULL)
        snprintf(uri, sizeof uri, "urn:uuid:%s", owner);
    struct hub_cert_request cr = {
        .kind = req->kind,
        .cn = req->cn,
        .o = req->o,
        .subject_key = req->key,
        .issuer = &a->cert[HUB_CA_ISSUING],
        .issuer_key = &a->key[HUB_CA_ISSUING],
        .not_before = now - CLOCK_SKEW,
        .not_after = now + (time_t)req->days * 24 * 3600,
        .alt_names = req->alt_names,
        .crl_url = req->kind == HUB_CERT_CLIENT && a->crl_url[0] ? a->crl_url : NULL,
        .ocsp_url = req->kind == HUB_CERT_CLIENT && a->ocsp_url[0] ? a->ocsp_url : NULL,
        .issuer_signer = &signer,
        .san_uri = uri[0] ? uri : NULL,
    };
    /* A certificate may not outlive its issuer. */
    const mbedtls_x509_time *t = &a->cert[HUB_CA_ISSUING].valid_to;
    struct tm tm = {.tm_year = t->year - 1900, .tm_mon = t->mon - 1, .tm_mday = t->day,
                    .tm_hour = t->hour, .tm_min = t->min, .tm_sec = t->sec};
    time_t issuer_end = timegm(&tm);
    if (cr.not_after > issuer_end)
        cr.not_after = issuer_end;

    out->der.len = out->pem.len = 0;
    pthread_mutex_lock(&a->sign_lock);
    int rc = hub_cert_issue(&cr, raw, &out->der);
    pthread_mutex_unlock(&a->sign_lock);
    if (rc != 0)
        return rc;
    hub_hex_upper(raw, sizeof raw, out->serial);
    out->not_before = cr.not_before;
    out->not_after = cr.not_after;
    char subject[400];
    if (req->o != NULL)
        snprintf(subject, sizeof subject, "CN=%s, O=%s", req->cn, req->o);
    else
        snprintf(subject, sizeof subject, "CN=%s", req->cn);
    struct hub_db_cert row = {
        .serial = out->serial,
        .ca_id = a->id[HUB_CA_ISSUING],
        .kind = req->kind == HUB_CERT_SERVER ? "server"
                : req->service_id            ? "service"
                                             : "device",
        .device_id = req->device_id,
        .service_id = req->service_id,
        .subject = subject,
        .der = out->der.data,
        .der_len = out->der.len,
        .key_sealed = req->key_sealed ? req->key_sealed->data : NULL,
        .key_sealed_len = req->key_sealed ? req->key_sealed->len : 0,
        .not_before = cr.not_before,
        .not_after = cr.not_after,
    };
    rc = hub_db_certificates_insert(c, &row);
    if (rc == 0)
        rc = hub_pem_encode("CERTIFICATE", out->der.data, out->der.len, &out->pem);
    return rc;
}

void hub_authority_issued_free(struct hub_issued *out)
{
    hub_buf_free(&out->der);
    hub_buf_free(&out->pem);
}

int hub_authority_ca_of(struct hub_authority *a, int ca_id, struct hub_authority_ca *out)
{
    const char *base = a->crl_url, *sep = strchr(base, '?') ? "&" : "?";
    for (int role = HUB_CA_ROOT; role <= HUB_CA_ISSUING; role++)
        if (a->id[role] == ca_id) {
            *out = (struct hub_authority_ca){ca_id, &a->cert[role],
                                              hub_authority_signer(a, (enum hub_ca_role)role),
                                              role_names[role], ""};
            snprintf(out->delta_url, sizeof out->delta_url, "%s%s%sdelta=1", base, sep,
                     role == HUB_CA_ROOT ? "ca=root&" : "");
            return 0;
        }
    for (size_t i = 0; i < a->nretired; i++)
        if (a->retired[i].id == ca_id) {
            const mbedtls_x509_buf *sn = &a->retired[i].cert.serial;
            char hex[HUB_SERIAL_HEX] = "";
            if (sn->len * 2 < sizeof hex)
                hub_hex_upper(sn->p, sn->len, hex);
            *out = (struct hub_authority_ca){ca_id, &a->retired[i].cert,
                                              {&a->retired[i].key, a->retired[i].token},
                                              "retired issuing", ""};
            snprintf(out->delta_url, sizeof out->delta_url, "%s%sca=%s&delta=1", base, sep, hex);
            return 0;
        }
    return HUB_ENOTFOUND;
}

size_t hub_authority_ca_ids(const struct hub_authority *a, int *ids, size_t max)
{
    size_t n = 0;
    if (n < max && !hub_authority_root_external(a)) /* the maker publishes an external root's */
        ids[n++] = a->id[HUB_CA_ROOT];
    if (n < max)
        ids[n++] = a->id[HUB_CA_ISSUING];
    for (size_t i = 0; i < a->nretired && n < max; i++)
        ids[n++] = a->retired[i].id;
    return n;
}

int hub_authority_ca_by_serial(const struct hub_authority *a, const char *serial)
{
    char hex[HUB_SERIAL_HEX];
    for (size_t i = 0; i < 2 + a->nretired; i++) {
        const mbedtls_x509_buf *s = i < 2 ? &a->cert[i].serial : &a->retired[i - 2].cert.serial;
        if (s->len * 2 >= sizeof hex)
            continue;
        hub_hex_upper(s->p, s->len, hex);
        if (strcmp(hex, serial) == 0)
            return i < 2 ? a->id[i] : a->retired[i - 2].id;
    }
    return 0;
}

int hub_authority_trust_pem(const struct hub_authority *a, hub_buf_t *out)
{
    int rc = hub_authority_chain_pem(a, out);
    for (size_t i = 0; rc == 0 && i < a->nretired; i++)
        rc = hub_pem_encode("CERTIFICATE", a->retired[i].der.data, a->retired[i].der.len, out);
    return rc;
}

int hub_authority_server_identity(struct hub_authority *a, PGconn *c, const char *pass,
                                  hub_buf_t *cert_pem, hub_buf_t *key_pem)
{
    char serial[HUB_SERIAL_HEX];
    hub_buf_t der = HUB_BUF_INIT, sealed = HUB_BUF_INIT, plain = HUB_BUF_INIT;
    mbedtls_pk_context key;
    mbedtls_pk_init(&key);
    int rc = hub_db_certificates_get_server(c, time(NULL), serial, &der, &sealed);
    if (rc == 0)
        rc = hub_unseal(pass, HUB_SEAL_LABEL_SERVER, sealed.data, sealed.len, &plain);
    if (rc == 0)
        rc = hub_key_parse_der(plain.data, plain.len, &key);
    if (rc == 0)
        rc = hub_pem_encode("CERTIFICATE", der.data, der.len, cert_pem);
    /* The issuing CA follows unless the server certificate comes straight from the root (an
     * external root may sign it): clients hold the root. */
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    const mbedtls_x509_buf *subj = &a->cert[HUB_CA_ISSUING].subject_raw;
    int by_issuing = rc != 0 || mbedtls_x509_crt_parse_der(&crt, der.data, der.len) != 0 ||
                     (crt.issuer_raw.len == subj->len &&
                      memcmp(crt.issuer_raw.p, subj->p, subj->len) == 0);
    mbedtls_x509_crt_free(&crt);
    if (rc == 0 && by_issuing)
        rc = hub_pem_encode("CERTIFICATE", a->der[HUB_CA_ISSUING].data,
                            a->der[HUB_CA_ISSUING].len, cert_pem);
    if (rc == 0) {
        /* mbedtls_pk_write_key_pem needs the whole output buffer up front. */
        rc = hub_buf_reserve(key_pem, 16384);
        if (rc == 0 && mbedtls_pk_write_key_pem(&key, key_pem->data + key_pem->len,
                                                16384) != 0) {
            hub_error("server key: mbedtls_pk_write_key_pem failed");
            rc = HUB_ECRYPTO;
        }
        if (rc == 0)
            key_pem->len += strlen((char *)key_pem->data + key_pem->len);
    }
    mbedtls_pk_free(&key);
    hub_buf_free(&der);
    hub_buf_free(&sealed);
    hub_buf_free(&plain);
    return rc;
}

struct hub_signer hub_authority_signer(struct hub_authority *a, enum hub_ca_role role)
{
    return (struct hub_signer){&a->key[role], a->token[role]};
}

int hub_authority_root_external(const struct hub_authority *a)
{
    return mbedtls_pk_get_type(&a->key[HUB_CA_ROOT]) == MBEDTLS_PK_NONE;
}

int hub_authority_chain_pem(const struct hub_authority *a, hub_buf_t *out)
{
    int rc = hub_pem_encode("CERTIFICATE", a->der[HUB_CA_ISSUING].data,
                            a->der[HUB_CA_ISSUING].len, out);
    if (rc == 0)
        rc = hub_pem_encode("CERTIFICATE", a->der[HUB_CA_ROOT].data, a->der[HUB_CA_ROOT].len,
                            out);
    return rc;
}

int hub_authority_chain_p7b(const struct hub_authority *a, hub_buf_t *out)
{
    const uint8_t *ders[] = {a->der[HUB_CA_ISSUING].data, a->der[HUB_CA_ROOT].data};
    const size_t lens[] = {a->der[HUB_CA_ISSUING].len, a->der[HUB_CA_ROOT].len};
    return hub_pkcs7_certs_only(ders, lens, 2, out);
}
