/* libFuzzer target for the REST API's request bodies: the first byte picks a route (and
 * whether the caller is a product claim), the rest is the body. It goes through the same
 * code as the handlers: hub_params_json_body (jansson, duplicate keys refused, an object
 * required), then the route's body check (api/devices.c, commands.c, services.c, params.c,
 * activation.c: provisioning, commands, services, revocation reasons, activation CSRs) or
 * hub_params_string, which the token and product handlers use. No database is involved: the
 * checks run before a handler takes its connection. Route 6 is the bearer token of the
 * Authorization header (api/token.c hub_token_parse).
 * Checks: a refusal is one 400 reply with an error code (never a 500: error messages quote
 * the request); what is accepted satisfies the documented rules, and service topic patterns
 * accepted by the API are valid for the MQTT ACL code that will enforce them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api/activation.h"
#include "api/commands.h"
#include "api/devices.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/services.h"
#include "api/token.h"
#include "ca/crl.h"
#include "mqtt/acl.h"
#include "mqtt/topic.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hub_log_setup(HUB_LOG_DEBUG, HUB_LOG_TEXT);
    return 0;
}

static void check_label(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        abort();
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s)))
            abort();
}

static void check_patterns(json_t *a)
{
    size_t i;
    json_t *v;
    if (!json_is_array(a))
        abort();
    json_array_foreach(a, i, v)
    {
        if (!hub_acl_pattern_valid(json_string_value(v)))
            abort(); /* the API stored a pattern the broker will not use as written */
    }
}

/* Runs the route's body check; returns its result (0 accepted, HUB_REPLIED refused). */
static int route(struct hub_req *r, json_t *body, unsigned which)
{
    switch (which) {
    case 0: {
        const char *serial, *product_key;
        int rc = hub_api_devices_create_parse(r, body, &serial, &product_key);
        if (rc == 0) {
            check_label(serial, 128, "-_.:/");
            if (product_key == NULL && r->who.kind != HUB_WHO_PRODUCT)
                abort();
        }
        return rc;
    }
    case 1: {
        const char *name, *payload;
        char *text;
        size_t len;
        int rc = hub_api_commands_parse(r, body, &name, &payload, &len, &text);
        if (rc == 0) {
            check_label(name, 64, "-_.");
            if (payload == NULL || len > 64 * 1024)
                abort();
            /* The topic the MQTT side builds from it must be a valid topic name. */
            char topic[160];
            int n = snprintf(topic, sizeof topic,
                             "devices/0b8e3b8a-1111-4c1e-8a6e-00000000000a"
                             "/commands/%s",
                             name);
            if (n < 0 || (size_t)n >= sizeof topic || !hub_topic_name_valid(topic, (size_t)n))
                abort();
        }
        free(text);
        return rc;
    }
    case 2: {
        const char *name;
        json_t *pub, *sub;
        int rc = hub_api_services_parse(r, body, &name, &pub, &sub);
        if (rc == 0) {
            check_patterns(pub);
            check_patterns(sub);
        }
        json_decref(pub);
        json_decref(sub);
        return rc;
    }
    case 3: {
        int reason;
        int rc = hub_params_reason_parse(r, body, HUB_REASON_UNSPECIFIED, &reason);
        if (rc == 0 &&
            (hub_crl_reason_name(reason) == NULL || reason == HUB_REASON_CERTIFICATE_HOLD))
            abort();
        return rc;
    }
    case 4: {
        mbedtls_x509_csr csr;
        mbedtls_x509_csr_init(&csr);
        int rc = hub_api_activation_parse(r, body, &csr);
        mbedtls_x509_csr_free(&csr);
        return rc;
    }
    default: {
        /* Tokens {name, role} and products {name}: hub_params_string's rules. */
        const char *name = hub_params_string(r, body, "name", 1, 100);
        const char *role = hub_params_string(r, body, "role", 0, 16);
        if (name != NULL) {
            if (strlen(name) == 0 || strlen(name) > 100)
                abort();
            for (const char *s = name; *s; s++)
                if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\r')
                    abort();
        }
        (void)role;
        return name == NULL || r->status != 0 ? HUB_REPLIED : 0;
    }
    }
}

/* A token is accepted only in its documented shape; its id is the 16 lower-case hex digits. */
static void token(const uint8_t *data, size_t size)
{
    char text[128], id[HUB_TOKEN_ID_LEN + 1];
    uint8_t hash[32];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    if (hub_token_parse(text, id, hash) != 0)
        return;
    if (strlen(text) != HUB_TOKEN_LEN || strncmp(text, "iothub_", 7) != 0 ||
        strlen(id) != HUB_TOKEN_ID_LEN || strncmp(text + 7, id, HUB_TOKEN_ID_LEN) != 0 ||
        strspn(id, "0123456789abcdef") != HUB_TOKEN_ID_LEN || text[7 + HUB_TOKEN_ID_LEN] != '_')
        abort(); /* the secret's 43 characters are only hashed and compared */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_req r;
    if (size < 1)
        return 0;
    if ((data[0] & 0x7f) % 7 == 6) {
        token(data + 1, size - 1);
        return 0;
    }
    memset(&r, 0, sizeof r);
    r.method = "POST";
    strcpy(r.path, "/v1/fuzz");
    r.body.data = (uint8_t *)data + 1;
    r.body.len = size - 1;
    r.who.kind = data[0] & 0x80 ? HUB_WHO_PRODUCT : HUB_WHO_TOKEN;
    json_t *body = hub_params_json_body(&r);
    int rc = body == NULL ? HUB_REPLIED : route(&r, body, (data[0] & 0x7f) % 7);
    if (rc == 0 ? r.status != 0 || r.response != NULL
                : r.status != 400 || r.response == NULL || r.error_code == NULL)
        abort(); /* accepted with a reply, or refused without exactly a 400 */
    if (r.response != NULL)
        MHD_destroy_response(r.response);
    json_decref(body);
    return 0;
}
