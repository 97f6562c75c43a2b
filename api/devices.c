/* /v1/devices: provisioning (admin token or product claim), listing, revocation, reset;
 * the "connected" flag of device answers. Activation is in api/activation.c, commands in
 * api/commands.c. */
#include "api/devices.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/certificates.h"
#include "api/metrics.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/crl.h"
#include "db/certificates.h"
#include "db/db.h"
#include "db/device_cas.h"
#include "db/devices.h"
#include "db/products.h"
#include "util/error.h"
#include "util/passhash.h"
#include "util/secure.h"

/* Serial numbers as printed on labels: letters, digits and -_.:/ only. */
static int serial_number_valid(const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              strchr("-_.:/", ch)))
            return 0;
    }
    return 1;
}

int hub_api_devices_create_parse(struct hub_req *r, json_t *body, const char **serial,
                                 const char **product_key)
{
    *serial = hub_params_string(r, body, "serial_number", 1, 128);
    *product_key =
        *serial ? hub_params_string(r, body, "product_key", r->who.kind != HUB_WHO_PRODUCT, 64)
                : NULL;
    if (*serial == NULL || r->status != 0)
        return HUB_REPLIED;
    if (!serial_number_valid(*serial)) {
        hub_reply_error(r, 400, "invalid_field",
                        "serial_number may only contain letters, digits and -_.:/");
        return HUB_REPLIED;
    }
    return 0;
}

void hub_api_devices_create(struct hub_req *r)
{
    const char *serial, *product_key;
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    if (hub_api_devices_create_parse(r, body, &serial, &product_key) != 0)
        goto out;
    long long product_id;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        goto out;
    if (r->who.kind == HUB_WHO_PRODUCT) {
        if (product_key != NULL && strcmp(product_key, r->who.name) != 0) {
            hub_reply_error(r, 403, "forbidden",
                            "product credentials can only provision their own product");
            goto out;
        }
        product_key = r->who.name;
        product_id = r->who.product_id;
    } else {
        struct hub_db_secret p;
        int rc = hub_db_products_secret(c, product_key, &p);
        if (rc == HUB_ENOTFOUND) {
            hub_reply_error(r, 404, "product_not_found", "no product with key \"%s\"",
                            product_key);
            goto out;
        }
        if (rc != 0) {
            hub_reply_internal(r, rc, "product lookup");
            goto out;
        }
        product_id = p.id;
    }

    char secret[25], hash[HUB_PASSHASH_MAX], device_id[37];
    int rc = hub_secret_generate(secret);
    if (rc == 0)
        rc = hub_passhash_make(secret, hash);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_devices_insert(c, product_id, serial, hash, device_id);
    if (rc == HUB_EEXIST) {
        hub_db_rollback(c);
        hub_reply_error(r, 409, "duplicate_serial",
                        "product %s already has a device with serial number \"%s\"",
                        product_key, serial);
        goto out;
    }
    if (rc == 0) {
        json_t *d = json_pack("{s:s,s:s}", "product_key", product_key, "serial_number", serial);
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        rc = hub_api_audit_write(r, device_id, text);
        free(text);
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "device provisioning");
        goto out;
    }
    if (hub_transaction_commit(r) == 0) {
        hub_metrics_inc(HUB_M_PROVISIONED);
        hub_reply_json(r, 201,
                       json_pack("{s:s,s:s,s:s,s:s,s:s}", "device_id", device_id,
                                 "device_secret", secret, "status", "provisioned",
                                 "product_key", product_key, "serial_number", serial));
    }
    hub_wipe(secret, sizeof secret);
out:
    json_decref(body);
}

static void mark_one(const struct hub_api_mqtt *mq, json_t *d)
{
    const char *id = json_string_value(json_object_get(d, "device_id"));
    const char *node = json_string_value(json_object_get(d, "node"));
    int elsewhere = node != NULL && strcmp(node, mq->node_name) != 0;
    if (id != NULL)
        json_object_set_new(d, "connected", json_boolean(elsewhere || mq->connected(mq->ctx, id)));
}
void hub_api_devices_mark_connected(struct hub_req *r, json_t *devices)
{
    const struct hub_api_mqtt *mq = r->api->mqtt;
    if (mq == NULL)
        return;
    if (json_is_array(devices)) {
        size_t i;
        json_t *d;
        json_array_foreach(devices, i, d)
        {
            mark_one(mq, d);
        }
    } else {
        mark_one(mq, devices);
    }
}

PGconn *hub_api_devices_lock(struct hub_req *r, char status[16])
{
    const char *id = r->params[0];
    if (!hub_params_uuid_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no device %s", id);
        return NULL;
    }
    PGconn *c = hub_transaction_db(r);
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

void hub_api_devices_list(struct hub_req *r)
{
    int limit;
    if (hub_params_limit(r, 100, 1000, &limit) != 0)
        return;
    const char *after = hub_request_query(r, "after");
    if (after != NULL && !hub_params_uuid_valid(after)) {
        hub_reply_error(r, 400, "invalid_parameter", "after must be a device id");
        return;
    }
    /* ?status=pending: devices a device CA registered for approval (issue 15). */
    const char *status = hub_request_query(r, "status");
    if (status != NULL && strcmp(status, "pending") != 0) {
        hub_reply_error(r, 400, "invalid_parameter", "status can only be \"pending\"");
        return;
    }
    PGconn *c = hub_transaction_db(r);
    json_t *list;
    if (c == NULL)
        return;
    int rc = status != NULL ? hub_db_device_cas_pending(c, after, limit, &list)
                            : hub_db_devices_list(c, after, limit, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "device listing");
        return;
    }
    hub_api_devices_mark_connected(r, list);
    json_t *next = hub_reply_next_cursor(list, limit, "device_id");
    hub_reply_json(r, 200, json_pack("{s:o,s:o?}", "devices", list, "next_after", next));
}

void hub_api_devices_show(struct hub_req *r)
{
    const char *id = r->params[0];
    PGconn *c;
    json_t *d;
    if (!hub_params_uuid_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no device %s", id);
        return;
    }
    if ((c = hub_transaction_db(r)) == NULL)
        return;
    int rc = hub_db_devices_get(c, id, &d);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no device %s", id);
    else if (rc != 0)
        hub_reply_internal(r, rc, "device lookup");
    else {
        hub_api_devices_mark_connected(r, d);
        hub_reply_json(r, 200, d);
    }
}

/* Tells every node that the device of the path lost its credentials (at commit). */
static int notify_device(struct hub_req *r)
{
    char payload[64];
    snprintf(payload, sizeof payload, "device:%s", r->params[0]);
    for (char *p = payload + 7; *p; p++) /* ids are compared in canonical lower case */
        *p = (char)tolower((unsigned char)*p);
    return hub_db_notify(r->db, "iothub_revocation", payload);
}

/* Revokes every valid certificate of the device; fills the JSON array of serials. Returns
 * 0, or HUB_REPLIED after replying. */
static int revoke_all(struct hub_req *r, int reason, json_t *serials_out)
{
    char(*serials)[HUB_SERIAL_HEX];
    size_t n;
    int rc = hub_db_certificates_valid_serials(r->db, "device_id", r->params[0], &serials, &n);
    if (rc != 0) {
        hub_reply_internal(r, rc, "certificate lookup");
        return HUB_REPLIED;
    }
    rc = hub_api_certificates_revoke_serials(r, serials, n, reason);
    for (size_t i = 0; rc == 0 && i < n; i++)
        json_array_append_new(serials_out, json_string(serials[i]));
    free(serials);
    return rc;
}

void hub_api_devices_revoke(struct hub_req *r)
{
    char status[16];
    int reason;
    if (hub_params_reason(r, HUB_REASON_UNSPECIFIED, &reason) != 0)
        return;
    PGconn *c = hub_api_devices_lock(r, status);
    if (c == NULL)
        return;
    if (strcmp(status, "revoked") == 0) {
        hub_reply_error(r, 409, "already_revoked", "device %s is already revoked",
                        r->params[0]);
        return;
    }
    json_t *revoked = json_array();
    int rc = revoke_all(r, reason, revoked);
    if (rc == 0 && (rc = hub_db_devices_set_status(c, r->params[0], "revoked")) != 0)
        hub_reply_internal(r, rc, "device update");
    if (rc == 0 && (rc = notify_device(r)) != 0)
        hub_reply_internal(r, rc, "notification");
    if (rc == 0) {
        json_t *d = json_pack("{s:s,s:O}", "reason", hub_crl_reason_name(reason), "serials",
                              revoked);
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        if ((rc = hub_api_audit_write(r, r->params[0], text)) != 0)
            hub_reply_internal(r, rc, "audit");
        free(text);
    }
    if (rc == 0 && hub_transaction_commit(r) == 0) {
        hub_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:O}", "device_id", r->params[0],
                                         "status", "revoked", "reason",
                                         hub_crl_reason_name(reason), "revoked", revoked));
    }
    json_decref(revoked);
}

void hub_api_devices_reset(struct hub_req *r)
{
    char status[16], secret[25], hash[HUB_PASSHASH_MAX];
    PGconn *c = hub_api_devices_lock(r, status);
    if (c == NULL)
        return;
    json_t *revoked = json_array();
    int rc = revoke_all(r, HUB_REASON_CESSATION_OF_OPERATION, revoked);
    if (rc == 0) {
        rc = hub_secret_generate(secret);
        if (rc == 0)
            rc = hub_passhash_make(secret, hash);
        if (rc == 0)
            rc = hub_db_devices_set_secret(c, r->params[0], hash);
        if (rc == 0)
            rc = notify_device(r);
        if (rc == 0) {
            json_t *d = json_pack("{s:s,s:O}", "previous_status", status, "serials", revoked);
            char *text = json_dumps(d, JSON_COMPACT);
            json_decref(d);
            rc = hub_api_audit_write(r, r->params[0], text);
            free(text);
        }
        if (rc != 0)
            hub_reply_internal(r, rc, "device reset");
    }
    if (rc == 0 && hub_transaction_commit(r) == 0)
        hub_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:O}", "device_id", r->params[0],
                                         "device_secret", secret, "status", "provisioned",
                                         "revoked", revoked));
    hub_wipe(secret, sizeof secret);
    json_decref(revoked);
}
