/* The REST API's route table (SPEC §4) and helpers the resource handlers share. */
#include "api/routes.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/certificates.h"
#include "db/db.h"
#include "db/devices.h"
#include "util/error.h"
#include "util/log.h"

#define ROLE(min) HUB_AUTH_ROLE, HUB_ROLE_##min

const struct hub_route hub_routes[] = {
    {"POST", "/v1/tokens", ROLE(ADMIN), "token.create", hub_api_tokens_create},
    {"GET", "/v1/tokens", ROLE(ADMIN), NULL, hub_api_tokens_list},
    {"POST", "/v1/tokens/{}/revoke", ROLE(ADMIN), "token.revoke", hub_api_tokens_revoke},
    {"POST", "/v1/products", ROLE(ADMIN), "product.create", hub_api_products_create},
    {"GET", "/v1/products", ROLE(AUDITOR), NULL, hub_api_products_list},
    {"POST", "/v1/devices", HUB_AUTH_PROVISION, HUB_ROLE_PROVISIONER, "device.provision",
     hub_api_devices_create},
    {"GET", "/v1/devices", ROLE(AUDITOR), NULL, hub_api_devices_list},
    {"GET", "/v1/devices/{}", ROLE(AUDITOR), NULL, hub_api_devices_show},
    {"POST", "/v1/devices/{}/activate", HUB_AUTH_DEVICE, HUB_ROLE_NONE, "device.activate",
     hub_api_devices_activate},
    {"POST", "/v1/devices/{}/renew", HUB_AUTH_DEVICE_CERT, HUB_ROLE_NONE, "device.renew",
     hub_api_devices_renew},
    {"POST", "/v1/devices/{}/revoke", ROLE(OPERATOR), "device.revoke", hub_api_devices_revoke},
    {"POST", "/v1/devices/{}/reset", ROLE(OPERATOR), "device.reset", hub_api_devices_reset},
    {"POST", "/v1/devices/{}/commands", ROLE(OPERATOR), "device.command",
     hub_api_devices_command},
    {"POST", "/v1/certificates/{}/revoke", ROLE(OPERATOR), "certificate.revoke",
     hub_api_certs_revoke},
    {"GET", "/v1/certificates", ROLE(AUDITOR), NULL, hub_api_certs_list},
    {"GET", "/v1/certificates/{}", ROLE(AUDITOR), NULL, hub_api_certs_show},
    {"GET", "/v1/crl", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_crl},
    {"GET", "/v1/ca", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_ca},
    {"POST", "/v1/services", ROLE(ADMIN), "service.create", hub_api_services_create},
    {"POST", "/v1/services/{}/activate", HUB_AUTH_SERVICE, HUB_ROLE_NONE, "service.activate",
     hub_api_services_activate},
    {"POST", "/v1/services/{}/renew", HUB_AUTH_SERVICE_CERT, HUB_ROLE_NONE, "service.renew",
     hub_api_services_renew},
    {"GET", "/v1/audit", ROLE(AUDITOR), NULL, hub_api_audit_list},
    {"GET", "/healthz", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_healthz},
    {"GET", "/metrics", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_metrics},
    {NULL, NULL, HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, NULL},
};

int hub_uuid_valid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (strlen(s) != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

json_t *hub_page_next(json_t *list, int limit, const char *field)
{
    size_t n = json_array_size(list);
    if (n == 0 || n != (size_t)limit)
        return NULL;
    return json_incref(json_object_get(json_array_get(list, n - 1), field));
}

int hub_req_limit(struct hub_req *r, int def, int max)
{
    const char *s = hub_req_query(r, "limit");
    if (s == NULL)
        return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 1 || v > max) {
        hub_reply_error(r, 400, "invalid_parameter", "limit must be an integer from 1 to %d",
                        max);
        return -1;
    }
    return (int)v;
}

int hub_api_revoke_serials(struct hub_req *r, char (*serials)[HUB_SERIAL_HEX], size_t n,
                           int reason)
{
    /* The CAs whose CRL must change: the issuing CA, plus any retired one that issued one
     * of the certificates. */
    int *cas = calloc(n + 1, sizeof *cas);
    size_t ncas = 1;
    int rc = cas == NULL ? HUB_ENOMEM : 0;
    if (rc != 0) {
        hub_reply_internal(r, rc, "revocation");
        return rc;
    }
    cas[0] = r->api->authority->id[HUB_CA_ISSUING];
    for (size_t i = 0; i < n; i++) {
        int ca_id = cas[0];
        rc = hub_db_certificates_revoke(r->db, serials[i], reason, &ca_id);
        if (rc == HUB_ENOTFOUND) {
            hub_reply_error(r, 404, "not_found", "no certificate %s", serials[i]);
            goto out;
        }
        if (rc == HUB_EEXIST) {
            hub_reply_error(r, 409, "already_revoked", "certificate %s is already revoked",
                            serials[i]);
            goto out;
        }
        if (rc == 0)
            rc = hub_db_notify(r->db, "iothub_revocation", serials[i]);
        if (rc != 0) {
            hub_reply_internal(r, rc, "revocation");
            goto out;
        }
        size_t k = 0;
        while (k < ncas && cas[k] != ca_id)
            k++;
        if (k == ncas)
            cas[ncas++] = ca_id;
    }
    for (size_t k = 0; k < ncas; k++) {
        /* A CA the authority does not hold has expired, and so have its certificates. */
        rc = hub_authority_publish_crl_of(r->api->authority, r->db, cas[k]);
        if (rc == HUB_ENOTFOUND)
            rc = 0;
        if (rc != 0) {
            hub_reply_internal(r, rc, "CRL publication");
            goto out;
        }
    }
    r->revoked += (unsigned)n;
    r->crls += (unsigned)ncas;
out:
    free(cas);
    return rc;
}

PGconn *hub_req_lock_device(struct hub_req *r, char status[16])
{
    const char *id = r->params[0];
    if (!hub_uuid_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no device %s", id);
        return NULL;
    }
    PGconn *c = hub_req_db(r);
    if (c == NULL)
        return NULL;
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_devices_lock(c, id, status);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no device %s", id);
        return NULL;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "device lookup");
        return NULL;
    }
    return c;
}
