/* GET /v1/crl: the latest complete CRL of the issuing CA (or ?ca= another of ours), or with
 * ?delta=1 its latest delta CRL, DER or PEM, with ETag and Last-Modified/Expires from its
 * thisUpdate/nextUpdate. */
#include "api/crl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/pem.h"
#include "db/crls.h"
#include "db/db.h"
#include "util/error.h"

void hub_api_crl_show(struct hub_req *r)
{
    int pem;
    if (hub_params_format(r, "der", "pem", &pem) != 0)
        return;
    const char *d = hub_request_query(r, "delta");
    if (d != NULL && strcmp(d, "0") != 0 && strcmp(d, "1") != 0) {
        hub_reply_error(r, 400, "invalid_parameter", "delta must be 0 or 1");
        return;
    }
    int delta = d != NULL && strcmp(d, "1") == 0;
    /* ?ca=SERIAL: the CRL of another of our CAs (a retired issuing CA, or the root);
     * ?ca=root: the root's, published here or imported from an external root. */
    const char *ca = hub_request_query(r, "ca");
    int ca_id = ca == NULL                ? r->api->authority->id[HUB_CA_ISSUING]
                : strcmp(ca, "root") == 0 ? r->api->authority->id[HUB_CA_ROOT] /* or imported */
                                          : hub_authority_ca_by_serial(r->api->authority, ca);
    if (ca_id == 0) {
        hub_reply_error(r, 404, "not_found", "no CA with serial %.64s", ca);
        return;
    }
    if (hub_transaction_db(r) == NULL)
        return;
    hub_buf_t der = HUB_BUF_INIT, out = HUB_BUF_INIT;
    struct hub_db_crl row;
    int rc = hub_db_crls_newest(r->db, ca_id, delta, &der, &row);
    if (rc == HUB_ENOTFOUND && delta) { /* an imported root CRL, or none published yet */
        hub_reply_error(r, 404, "not_found", "no delta CRL for this CA");
        goto out;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "CRL lookup");
        goto out;
    }
    uint64_t number = row.number;
    time_t this_update = row.this_update, next_update = row.next_update;
    char etag[64], modified[64], expires[64];
    snprintf(etag, sizeof etag, "\"crl-%llu%s\"", (unsigned long long)number, pem ? "-pem" : "");
    struct tm tm;
    strftime(modified, sizeof modified, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&this_update, &tm));
    strftime(expires, sizeof expires, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&next_update, &tm));
    const char *inm = hub_request_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm != NULL && strstr(inm, etag) != NULL) {
        hub_reply_raw(r, 304, "application/pkix-crl", "", 0);
    } else if (pem) {
        rc = hub_pem_encode("X509 CRL", der.data, der.len, &out);
        if (rc != 0) {
            hub_reply_internal(r, rc, "PEM encoding");
            goto out;
        }
        hub_reply_raw(r, 200, "application/x-pem-file", out.data, out.len);
    } else {
        hub_reply_raw(r, 200, "application/pkix-crl", der.data, der.len);
    }
    hub_reply_header(r, MHD_HTTP_HEADER_ETAG, etag);
    hub_reply_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, modified);
    hub_reply_header(r, MHD_HTTP_HEADER_EXPIRES, expires);
    hub_reply_header(r, "Cache-Control", "no-cache");
out:
    hub_buf_free(&der);
    hub_buf_free(&out);
}
