/* POST /v1/devices/{id}/commands: cloud-to-device commands, published by the MQTT side on
 * devices/<id>/commands/<name> at QoS 1. */
#include "api/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/devices.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "db/db.h"
#include "util/error.h"

#define PAYLOAD_MAX (64 * 1024)

/* Command names are one topic level: letters, digits, '-', '_', '.'. */
static int name_valid(const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

int hub_api_commands_parse(struct hub_req *r, json_t *body, const char **name, const char **payload,
                           size_t *len, char **payload_text)
{
    *payload_text = NULL;
    *name = hub_params_string(r, body, "name", 1, 64);
    if (*name == NULL)
        return HUB_REPLIED;
    if (!name_valid(*name)) {
        hub_reply_error(r, 400, "invalid_field",
                        "name may only contain letters, digits, '-', '_' and '.'");
        return HUB_REPLIED;
    }
    /* The payload is sent as is when a string, as JSON text otherwise (objects, numbers). */
    json_t *pv = json_object_get(body, "payload");
    *payload = "";
    if (json_is_string(pv)) {
        *payload = json_string_value(pv);
    } else if (pv != NULL && !json_is_null(pv)) {
        *payload = *payload_text = json_dumps(pv, JSON_COMPACT | JSON_ENCODE_ANY);
        if (*payload_text == NULL) {
            hub_reply_internal(r, HUB_ENOMEM, "command encoding");
            return HUB_REPLIED;
        }
    }
    *len = json_is_string(pv) ? json_string_length(pv) : strlen(*payload);
    if (*len > PAYLOAD_MAX) {
        hub_reply_error(r, 400, "invalid_field", "payload exceeds %d bytes", PAYLOAD_MAX);
        return HUB_REPLIED;
    }
    return 0;
}

void hub_api_commands_create(struct hub_req *r)
{
    const char *id = r->params[0];
    char status[16];
    json_t *body = NULL;
    char *payload_text = NULL;
    const char *name, *payload;
    size_t len;
    if (!hub_params_uuid_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no device %s", id);
        return;
    }
    if ((body = hub_params_json(r)) == NULL)
        return;
    if (hub_api_commands_parse(r, body, &name, &payload, &len, &payload_text) != 0)
        goto out;
    if (hub_api_devices_lock(r, status) == NULL)
        goto out;
    int rc;
    if (strcmp(status, "revoked") == 0) {
        hub_reply_error(r, 409, "device_revoked", "device %s is revoked", id);
        goto out;
    }
    const struct hub_api_mqtt *mq = r->api->mqtt;
    if (mq == NULL) {
        hub_reply_error(r, 503, "mqtt_unavailable", "the MQTT listener is not running");
        goto out;
    }
    int delivered = 0;
    rc = mq->command(mq->ctx, id, name, payload, len, &delivered);
    if (rc != 0) {
        hub_reply_error(r, 503, "mqtt_unavailable", "the command was not taken (or not stored) within 5 s");
        goto out;
    }
    json_t *d = json_pack("{s:s,s:I,s:b}", "name", name, "bytes", (json_int_t)len, "delivered",
                          delivered);
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    rc = hub_api_audit_write(r, id, text);
    free(text);
    if (rc != 0) {
        hub_reply_internal(r, rc, "audit");
        goto out;
    }
    char topic[160];
    snprintf(topic, sizeof topic, "devices/%s/commands/%s", id, name);
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 202, json_pack("{s:s,s:s,s:s,s:b}", "device_id", id, "topic", topic,
                                         "name", name, "delivered", delivered));
out:
    free(payload_text);
    json_decref(body);
}
