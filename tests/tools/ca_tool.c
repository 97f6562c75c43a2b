/* Test driver for the embedded CA until the REST API exists: issues a device certificate
 * from a CSR and revokes a serial, through the same ca/ and db/ code the daemon uses.
 *   ca_tool CONF issue DEVICE_ID PRODUCT_KEY CSR_FILE [DAYS]   (certificate PEM on stdout;
 *                                                  DAYS 0 makes one that has just expired)
 *   ca_tool CONF revoke SERIAL REASON                    (publishes the next CRL) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/authority.h"
#include "ca/crlpub.h"
#include "ca/crl.h"
#include "ca/csr.h"
#include "ca/pem.h"
#include "db/certificates.h"
#include "db/db.h"
#include "server/config.h"
#include "server/init.h"
#include "util/error.h"
#include "util/secure.h"

static int issue(struct hub_authority *a, PGconn *c, int days, char **argv)
{
    FILE *f = fopen(argv[2], "rb");
    if (f == NULL) {
        perror(argv[2]);
        return 1;
    }
    static uint8_t data[70000];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    mbedtls_x509_csr csr;
    char err[256];
    struct hub_issued issued = HUB_ISSUED_INIT;
    mbedtls_x509_csr_init(&csr);
    int rc = hub_csr_load(data, n, &csr, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "csr refused: %s: %s\n", hub_strerror(rc), err);
        mbedtls_x509_csr_free(&csr);
        return 3;
    }
    struct hub_issue req = {
        .kind = HUB_CERT_CLIENT, .cn = argv[0], .o = argv[1], .key = &csr.pk, .days = days,
        .device_id = argv[0],
    };
    rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_authority_issue(a, c, &req, &issued);
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc == 0) {
        fwrite(issued.pem.data, 1, issued.pem.len, stdout);
        fprintf(stderr, "serial %s\n", issued.serial);
    } else {
        hub_db_rollback(c);
    }
    mbedtls_x509_csr_free(&csr);
    hub_authority_issued_free(&issued);
    return rc == 0 ? 0 : 1;
}

static int revoke(struct hub_authority *a, PGconn *c, char **argv)
{
    int reason;
    if (hub_crl_reason_parse(argv[1], &reason) != 0) {
        fprintf(stderr, "unknown reason %s\n", argv[1]);
        return 2;
    }
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_certificates_revoke(c, argv[0], reason, NULL);
    if (rc == 0)
        rc = hub_crlpub_base(a, c, a->id[HUB_CA_ISSUING]);
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc != 0) {
        hub_db_rollback(c);
        fprintf(stderr, "revoke failed: %s\n", hub_strerror(rc));
    }
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ca_tool CONF issue DEVICE_ID PRODUCT_KEY CSR | revoke SERIAL REASON\n");
        return 2;
    }
    struct hub_config cfg;
    struct hub_authority a;
    char err[512];
    PGconn *c = NULL;
    int status = 1;
    memset(&a, 0, sizeof a);
    if (hub_config_load(&cfg, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    char *pass = hub_config_master_key(&cfg, err, sizeof err);
    if (pass == NULL) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    int rc = hub_db_connect(cfg.db_url, &c);
    if (rc == 0)
        rc = hub_authority_load(c, pass, &a);
    hub_wipe(pass, strlen(pass));
    free(pass);
    if (rc != 0)
        goto out;
    hub_init_authority_settings(&cfg, &a);
    if (strcmp(argv[2], "issue") == 0 && (argc == 6 || argc == 7))
        status = issue(&a, c, argc == 7 ? atoi(argv[6]) : cfg.device_cert_days, argv + 3);
    else if (strcmp(argv[2], "revoke") == 0 && argc == 5)
        status = revoke(&a, c, argv + 3);
    else
        status = 2;
out:
    hub_authority_free(&a);
    PQfinish(c);
    hub_config_free(&cfg);
    return status;
}
