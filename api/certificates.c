/* /v1/certificates: revocation by serial, listing and lookup; and the revocation of a set
 * of serials that devices and activation share (nodes notified; CRLs follow). */
#include "api/certificates.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/crl.h"
#include "db/certificates.h"
#include "db/db.h"
#include "util/error.h"

int hub_api_certificates_revoke_serials(struct hub_req *r, char (*serials)[HUB_SERIAL_HEX],
                                        size_t n, int reason)
{
    /* No CRL here: the NOTIFY reaches every node's revocation feed (sessions closed) and CRL
     * publisher (server/crl_publisher.c: a delta CRL within a second), so the cost of a
     * revocation does not depend on how many certificates are already revoked. */
    for (size_t i = 0; i < n; i++) {
        int rc = hub_db_certificates_revoke(r->db, serials[i], reason, NULL);
        if (rc == HUB_ENOTFOUND) {
            hub_reply_error(r, 404, "not_found", "no certificate %s", serials[i]);
            return HUB_REPLIED;
        }
        if (rc == HUB_EEXIST) {
            hub_reply_error(r, 409, "already_revoked", "certificate %s is already revoked",
                            serials[i]);
            return HUB_REPLIED;
        }
        if (rc == 0)
            rc = hub_db_notify(r->db, "iothub_revocation", serials[i]);
        if (rc != 0) {
            hub_reply_internal(r, rc, "revocation");
            return HUB_REPLIED;
        }
    }
    r->revoked += (unsigned)n;
    return 0;
}

/* Upper-cases a serial from the path; returns 0 if it is 1..40 hex digits. */
static int normalise_serial(const char *in, char out[HUB_SERIAL_HEX])
{
    size_t n = strlen(in);
    if (n == 0 || n >= HUB_SERIAL_HEX)
        return -1;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !isxdigit((unsigned char)in[i]))
            return -1;
        out[i] = (char)toupper((unsigned char)in[i]);
    }
    return 0;
}

void hub_api_certificates_revoke(struct hub_req *r)
{
    char serial[1][HUB_SERIAL_HEX];
    if (normalise_serial(r->params[0], serial[0]) != 0) {
        hub_reply_error(r, 404, "not_found", "no certificate %s", r->params[0]);
        return;
    }
    int reason;
    if (hub_params_reason(r, HUB_REASON_UNSPECIFIED, &reason) != 0 || hub_transaction_db(r) == NULL)
        return;
    json_t *cert;
    int rc = hub_db_certificates_get(r->db, serial[0], &cert);
    if (rc == 0) {
        const char *kind = json_string_value(json_object_get(cert, "kind"));
        int server = kind != NULL && strcmp(kind, "server") == 0;
        json_decref(cert);
        if (server) {
            hub_reply_error(r, 409, "server_certificate",
                            "certificate %s is the gateway's own TLS certificate; it is "
                            "replaced by `iothubd init`, not revoked through the API",
                            serial[0]);
            return;
        }
    }
    rc = hub_db_begin(r->db);
    if (rc != 0) {
        hub_reply_internal(r, rc, "revocation");
        return;
    }
    if (hub_api_certificates_revoke_serials(r, serial, 1, reason) != 0)
        return;
    json_t *d = json_pack("{s:s}", "reason", hub_crl_reason_name(reason));
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    rc = hub_api_audit_write(r, serial[0], text);
    free(text);
    if (rc != 0) {
        hub_reply_internal(r, rc, "revocation");
        return;
    }
    if (hub_transaction_commit(r) != 0)
        return;
    hub_reply_json(r, 200,
                   json_pack("{s:s,s:s,s:s}", "serial", serial[0], "status", "revoked", "reason",
                             hub_crl_reason_name(reason)));
}

void hub_api_certificates_list(struct hub_req *r)
{
    int limit;
    if (hub_params_limit(r, 100, 1000, &limit) != 0)
        return;
    const char *device = hub_request_query(r, "device_id");
    if (device != NULL && !hub_params_uuid_valid(device)) {
        hub_reply_error(r, 400, "invalid_parameter", "device_id must be a device id");
        return;
    }
    json_t *list;
    if (hub_transaction_db(r) == NULL)
        return;
    int rc = hub_db_certificates_list(r->db, device, limit, &list);
    if (rc != 0)
        hub_reply_internal(r, rc, "certificate listing");
    else
        hub_reply_json(r, 200, json_pack("{s:o}", "certificates", list));
}

void hub_api_certificates_show(struct hub_req *r)
{
    char serial[HUB_SERIAL_HEX];
    json_t *cert;
    if (normalise_serial(r->params[0], serial) != 0) {
        hub_reply_error(r, 404, "not_found", "no certificate %s", r->params[0]);
        return;
    }
    if (hub_transaction_db(r) == NULL)
        return;
    int rc = hub_db_certificates_get(r->db, serial, &cert);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no certificate %s", serial);
    else if (rc != 0)
        hub_reply_internal(r, rc, "certificate lookup");
    else
        hub_reply_json(r, 200, cert);
}
