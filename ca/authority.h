/* The embedded certificate authority as the daemon runs it: the root and issuing CA loaded
 * from PostgreSQL with their keys unsealed, and the operations that sign and record
 * (issue, publish a CRL). Every call takes a blocking connection and is made from a
 * command or a worker thread, never from an event loop. */
#ifndef HUB_CA_AUTHORITY_H
#define HUB_CA_AUTHORITY_H

#include <pthread.h>
#include <time.h>

#include <libpq-fe.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "ca/cert.h"
#include "ca/key.h"
#include "ca/signer.h"
#include "db/db.h"
#include "util/buf.h"

enum hub_ca_role { HUB_CA_ROOT, HUB_CA_ISSUING };

/* AAD label binding a sealed server key to its use. */
#define HUB_SEAL_LABEL_SERVER "iothub server-key"
/* AAD label of the sealed issuing CA key (an external root's pending key is sealed with it). */
#define HUB_SEAL_LABEL_ISSUING "iothub ca:issuing"


/* An issuing CA replaced by a rotation whose certificates may still be in use: still
 * trusted, and it still signs its own CRLs. */
struct hub_retired_ca {
    int id;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    hub_buf_t der;
    struct hub_p11_key *token; /* its key is in a PKCS#11 token: key is only the public key */
};

struct hub_authority {
    int id[2];                 /* cas.id by enum hub_ca_role */
    mbedtls_x509_crt cert[2];  /* parsed certificates */
    mbedtls_pk_context key[2]; /* unsealed private keys */
    hub_buf_t der[2];          /* certificate DER */
    /* A CA whose key is in a PKCS#11 token (cas.key_uri): key[] then holds its public key
     * only and this signs (C_Sign). NULL for a sealed key. */
    struct hub_p11_key *token[2];
    struct hub_retired_ca *retired; /* unexpired retired issuing CAs, oldest first */
    size_t nretired;
    int crl_validity_hours;
    int crl_base_hours;        /* a new complete CRL at least this often (0: 12) */
    int crl_history;           /* CRL rows kept per CA besides the current base and delta */
    int crl_rebuild_max_entries; /* a base instead of a delta while it would hold this few */
    char crl_url[320];         /* cRLDistributionPoint put in client certificates */
    char ocsp_url[320];        /* AIA id-ad-ocsp URI put in client certificates ("": none) */
    /* Delegated OCSP signers (ca/ocsp_signers.h): made and freed by `serve`, NULL elsewhere. */
    struct hub_ocsp_signers *ocsp;
    /* Serialises signing: mbedTLS 2.28 caches the EC comb table in the key's group on first
     * use without a lock, so concurrent first signatures race. */
    pthread_mutex_t sign_lock;
};

/* A certificate to issue from the issuing CA. */
struct hub_issue {
    enum hub_cert_kind kind;        /* HUB_CERT_SERVER or HUB_CERT_CLIENT */
    const char *cn;
    const char *o;                  /* or NULL */
    mbedtls_pk_context *key;        /* subject public key */
    int days;                       /* validity from now */
    const char *const *alt_names;   /* servers only */
    const char *device_id;          /* recorded owner (or NULL) */
    const char *service_id;
    const hub_buf_t *key_sealed;    /* servers: their sealed private key */
};

/* Creates the root and issuing CA in PostgreSQL when absent, with keys of type t sealed
 * under pass. *created counts what was made (0 when both existed). Run in a transaction. */
int hub_authority_bootstrap(PGconn *c, const char *pass, enum hub_key_type t, int *created);
/* Same, with the issuing CA key kept where key_store says: NULL or "sealed" (sealed in
 * PostgreSQL, as above), or a "pkcs11:" URI: the token key it names is used, or generated in
 * the token when absent; cas.key_uri records the URI without its PIN. Call
 * hub_p11_configure first for the module and PIN defaults. */
int hub_authority_bootstrap_store(PGconn *c, const char *pass, enum hub_key_type t,
                                  const char *key_store, int *created);
/* Loads both CAs and unseals their keys (or opens a token key named by cas.key_uri: a
 * missing module, absent token, refused PIN or missing object is logged naming the key).
 * Returns 0, HUB_ENOTFOUND (run `iothubd init`), HUB_EBADPASS or another HUB_E* code. Free with hub_authority_free in every case. */
int hub_authority_load(PGconn *c, const char *pass, struct hub_authority *a);
void hub_authority_free(struct hub_authority *a);
/* What hub_authority_issue made: everything an answer about the new certificate names,
 * so the caller need not read back the row just written. */
struct hub_issued {
    char serial[HUB_SERIAL_HEX];  /* upper-case hex */
    time_t not_before, not_after; /* as signed and recorded (not_after capped at the CA's) */
    hub_buf_t der;                /* the certificate */
    hub_buf_t pem;                /* the same as PEM, as GET /v1/certificates/{serial} shows it */
};
#define HUB_ISSUED_INIT                                                                            \
    {                                                                                              \
        "", 0, 0, HUB_BUF_INIT, HUB_BUF_INIT                                                       \
    }

/* Signs a certificate with the issuing CA and records it in the caller's transaction;
 * fills *out (initialised with HUB_ISSUED_INIT, owned by the caller: free it with
 * hub_authority_issued_free whatever the result). Returns 0 or a HUB_E* code. */
int hub_authority_issue(struct hub_authority *a, PGconn *c, const struct hub_issue *req,
                        struct hub_issued *out);
/* Frees the buffers of out (not out itself); out can be issued into again. */
void hub_authority_issued_free(struct hub_issued *out);
/* Retires the active issuing CA and creates its successor "iothub Issuing CA G<n>" signed
 * by the root, in the caller's transaction; *generation gets n. The loaded authority is
 * unchanged: load it again to use the new CA. */
int hub_authority_rotate(struct hub_authority *a, PGconn *c, const char *pass,
                         enum hub_key_type t, int *generation);
/* Same, the successor's key kept where key_store says (see hub_authority_bootstrap_store):
 * a token URI must name another object than the active CA's key (HUB_EEXIST otherwise). */
int hub_authority_rotate_store(struct hub_authority *a, PGconn *c, const char *pass,
                               enum hub_key_type t, const char *key_store, int *generation);
/* cas.id of the active or retired CA (or the root) whose serial is the upper-case hex
 * serial, or 0. */
int hub_authority_ca_by_serial(const struct hub_authority *a, const char *serial);
/* Appends the CAs a client certificate may chain to as PEM: the chain, then every retired
 * issuing CA. */
int hub_authority_trust_pem(const struct hub_authority *a, hub_buf_t *out);
/* A CA that signs CRLs (root, issuing or retired issuing), as ca/crlpub publishes them. */
struct hub_authority_ca {
    int id;                          /* cas.id */
    const mbedtls_x509_crt *cert;    /* owned by the authority */
    struct hub_signer signer;
    const char *name;                /* "root", "issuing", "retired issuing" */
    char delta_url[400];             /* where its delta CRLs are served (freshestCRL) */
};
/* Fills *out for the CA with cas.id ca_id. HUB_ENOTFOUND when this authority does not hold
 * it (a CA that expired, and its certificates with it). */
int hub_authority_ca_of(struct hub_authority *a, int ca_id, struct hub_authority_ca *out);
/* Writes the cas.id of every CA whose CRLs the hub publishes (the root unless external, the
 * issuing CA, the retired ones) into ids (max entries); returns how many. */
size_t hub_authority_ca_ids(const struct hub_authority *a, int *ids, size_t max);
/* Loads the newest valid server certificate: appends it and the issuing CA as PEM to
 * cert_pem, and its unsealed private key as PEM to key_pem (the caller wipes it).
 * HUB_ENOTFOUND when none is valid (run `iothubd init`). */
int hub_authority_server_identity(struct hub_authority *a, PGconn *c, const char *pass,
                                  hub_buf_t *cert_pem, hub_buf_t *key_pem);
/* Re-encrypts every sealed key (CAs, server certificates) from old_pass to new_pass, in the
 * caller's transaction; *count gets how many. HUB_EBADPASS (nothing changed) when old_pass
 * does not open one of them. Running daemons keep their unsealed keys until restarted. */
int hub_authority_reseal(PGconn *c, const char *old_pass, const char *new_pass, size_t *count);
/* The signer of the CA of role (its key in memory, or its token key). */
struct hub_signer hub_authority_signer(struct hub_authority *a, enum hub_ca_role role);
/* 1 when the root's key is not in the hub (an external root, `iothubd init --external-root`):
 * the root's CRLs are imported, not published, and a rotation needs the maker's root. */
int hub_authority_root_external(const struct hub_authority *a);
/* Appends the issuing CA then the root as PEM. */
int hub_authority_chain_pem(const struct hub_authority *a, hub_buf_t *out);
/* Appends the issuing CA and the root as a PKCS#7 certs-only bundle (DER). */
int hub_authority_chain_p7b(const struct hub_authority *a, hub_buf_t *out);

#endif
