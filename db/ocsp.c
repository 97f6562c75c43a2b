#include "db/ocsp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/buf.h"

int hub_db_ocsp_status(PGconn *c, const char *serial, struct hub_db_ocsp_status *out)
{
    const char *p[] = {serial};
    PGresult *r;
    /* The primary key: one index probe whatever the number of certificates. */
    int rc = hub_db_exec_row(c, &r,
                             "SELECT ca_id, status = 'revoked',"
                             " coalesce(floor(extract(epoch FROM revoked_at))::bigint, 0),"
                             " coalesce(revocation_reason, 0)"
                             " FROM certificates WHERE serial = $1",
                             1, p);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->ca_id = atoi(PQgetvalue(r, 0, 0));
    out->revoked = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    out->revoked_at = (time_t)strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    out->reason = atoi(PQgetvalue(r, 0, 3));
    PQclear(r);
    return 0;
}

int hub_db_ocsp_signer_insert(PGconn *c, const char *serial, int ca_id, const uint8_t *der,
                              size_t der_len, time_t not_before, time_t not_after)
{
    hub_buf_t hex = HUB_BUF_INIT;
    char ca[16], nb[24], na[24];
    snprintf(ca, sizeof ca, "%d", ca_id);
    snprintf(nb, sizeof nb, "%lld", (long long)not_before);
    snprintf(na, sizeof na, "%lld", (long long)not_after);
    int rc = hub_db_bytea_param(der, der_len, &hex);
    if (rc == 0) {
        const char *p[] = {serial, ca, (char *)hex.data, nb, na};
        rc = hub_db_exec(c, NULL,
                         "INSERT INTO ocsp_signers (serial, ca_id, der, not_before, not_after)"
                         " VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5))",
                         5, p);
    }
    hub_buf_free(&hex);
    return rc;
}
