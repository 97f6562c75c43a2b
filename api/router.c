/* The REST API's route table and the router. A route added here is covered by
 * tests/integration/test_routes.sh, which reads the table through tests/tools/route_table. */
#include "api/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api/activation.h"
#include "api/audit.h"
#include "api/certificates.h"
#include "api/chain.h"
#include "api/commands.h"
#include "api/crl.h"
#include "api/device_cas.h"
#include "api/devices.h"
#include "api/est.h"
#include "api/firmware.h"
#include "api/firmware_download.h"
#include "api/firmware_signers.h"
#include "api/firmware_upload.h"
#include "api/health.h"
#include "api/nodes.h"
#include "api/ocsp.h"
#include "api/params.h"
#include "api/products.h"
#include "api/reply.h"
#include "api/revocations.h"
#include "api/rollouts.h"
#include "api/tags.h"
#include "api/services.h"
#include "api/tokens.h"

#define ROLE(min) HUB_AUTH_ROLE, HUB_ROLE_##min

const struct hub_route hub_router_routes[] = {
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
     hub_api_activation_device},
    {"POST", "/v1/devices/{}/renew", HUB_AUTH_DEVICE_CERT, HUB_ROLE_NONE, "device.renew",
     hub_api_activation_device},
    {"POST", "/v1/devices/{}/revoke", ROLE(OPERATOR), "device.revoke", hub_api_devices_revoke},
    {"POST", "/v1/devices/{}/reset", ROLE(OPERATOR), "device.reset", hub_api_devices_reset},
    {"POST", "/v1/devices/{}/commands", ROLE(OPERATOR), "device.command", hub_api_commands_create},
    {"POST", "/v1/certificates/{}/revoke", ROLE(OPERATOR), "certificate.revoke",
     hub_api_certificates_revoke},
    {"GET", "/v1/certificates", ROLE(AUDITOR), NULL, hub_api_certificates_list},
    {"GET", "/v1/certificates/{}", ROLE(AUDITOR), NULL, hub_api_certificates_show},
    {"GET", "/v1/crl", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_crl_show},
    {"GET", "/v1/ca", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_chain_show},
    {"POST", "/v1/services", ROLE(ADMIN), "service.create", hub_api_services_create},
    {"POST", "/v1/services/{}/activate", HUB_AUTH_SERVICE, HUB_ROLE_NONE, "service.activate",
     hub_api_activation_service},
    {"POST", "/v1/services/{}/renew", HUB_AUTH_SERVICE_CERT, HUB_ROLE_NONE, "service.renew",
     hub_api_activation_service},
    {"GET", "/v1/audit", ROLE(AUDITOR), NULL, hub_api_audit_list},
    /* Factory device CAs (issue 15, api/device_cas.c). */
    {"POST", "/v1/device-cas/registration-codes", ROLE(ADMIN), "device_ca.code",
     hub_api_device_cas_code},
    {"POST", "/v1/device-cas", ROLE(ADMIN), "device_ca.register", hub_api_device_cas_create},
    {"GET", "/v1/device-cas", ROLE(AUDITOR), NULL, hub_api_device_cas_list},
    {"GET", "/v1/device-cas/{}", ROLE(AUDITOR), NULL, hub_api_device_cas_show},
    {"PATCH", "/v1/device-cas/{}", ROLE(ADMIN), "device_ca.update", hub_api_device_cas_update},
    {"PUT", "/v1/device-cas/{}/crl", ROLE(ADMIN), "device_ca.crl", hub_api_device_cas_crl},
    {"POST", "/v1/devices/{}/approve", ROLE(OPERATOR), "device.approve",
     hub_api_device_cas_approve},
    /* rollouts (issue 16) */
    {"PATCH", "/v1/devices/{}", ROLE(OPERATOR), "device.tag", hub_api_tags_update},
    {"POST", "/v1/rollouts", ROLE(OPERATOR), "rollout.create", hub_api_rollouts_create},
    {"GET", "/v1/rollouts", ROLE(AUDITOR), NULL, hub_api_rollouts_list},
    {"GET", "/v1/rollouts/{}", ROLE(AUDITOR), NULL, hub_api_rollouts_show},
    {"POST", "/v1/rollouts/{}/pause", ROLE(OPERATOR), "rollout.pause", hub_api_rollouts_pause},
    {"POST", "/v1/rollouts/{}/resume", ROLE(OPERATOR), "rollout.resume", hub_api_rollouts_resume},
    {"POST", "/v1/rollouts/{}/cancel", ROLE(OPERATOR), "rollout.cancel", hub_api_rollouts_cancel},
    /* Firmware (api/firmware*.c). */
    {"POST", "/v1/firmware-signers", ROLE(ADMIN), "firmware_signer.create",
     hub_api_firmware_signers_create},
    {"GET", "/v1/firmware-signers", ROLE(AUDITOR), NULL, hub_api_firmware_signers_list},
    {"GET", "/v1/firmware-signers/{}", ROLE(AUDITOR), NULL, hub_api_firmware_signers_show},
    {"PATCH", "/v1/firmware-signers/{}", ROLE(ADMIN), "firmware_signer.update",
     hub_api_firmware_signers_update},
    {"POST", "/v1/firmware", ROLE(ADMIN), "firmware.upload", hub_api_firmware_upload},
    {"GET", "/v1/firmware", ROLE(AUDITOR), NULL, hub_api_firmware_list},
    {"GET", "/v1/firmware/{}", ROLE(AUDITOR), NULL, hub_api_firmware_show},
    {"DELETE", "/v1/firmware/{}", ROLE(ADMIN), "firmware.delete", hub_api_firmware_delete},
    {"GET", "/v1/devices/{}/firmware/{}", HUB_AUTH_DEVICE_ANY, HUB_ROLE_NONE, NULL,
     hub_api_firmware_download},
    {"GET", "/v1/devices/{}/firmware-signers", HUB_AUTH_DEVICE_ANY, HUB_ROLE_NONE, NULL,
     hub_api_firmware_signers_bundle},
    /* OCSP responder (RFC 6960, api/ocsp.c): {*} is the rest of the path, '/' included. */
    {"POST", "/ocsp", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_ocsp_post},
    {"GET", "/ocsp/{*}", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_ocsp_get},
    /* Bulk revocation (api/revocations.c, run by server/revjobs.c). */
    {"POST", "/v1/revocations", ROLE(OPERATOR), "revocation.create", hub_api_revocations_create},
    {"GET", "/v1/revocations/{}", ROLE(AUDITOR), NULL, hub_api_revocations_show},
    /* EST, RFC 7030 (api/est.c): the device is the one the credentials name. */
    {"GET", "/.well-known/est/cacerts", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_est_cacerts},
    {"POST", "/.well-known/est/simpleenroll", HUB_AUTH_DEVICE, HUB_ROLE_NONE, "device.activate",
     hub_api_est_simpleenroll},
    {"POST", "/.well-known/est/simplereenroll", HUB_AUTH_DEVICE_CERT, HUB_ROLE_NONE,
     "device.renew", hub_api_est_simplereenroll},
    {"GET", "/.well-known/est/csrattrs", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_est_csrattrs},
    /* The node registry (api/nodes.c). */
    {"GET", "/v1/nodes", ROLE(AUDITOR), NULL, hub_api_nodes_list},
    {"GET", "/healthz", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_health_show},
    {"GET", "/metrics", HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, hub_api_health_metrics},
    {NULL, NULL, HUB_AUTH_NONE, HUB_ROLE_NONE, NULL, NULL},
};

void hub_router_auth(const struct hub_route *rt, int metrics_token, enum hub_auth *kind,
                     enum hub_role *min_role)
{
    *kind = rt->auth;
    *min_role = rt->min_role;
    if (rt->handler == hub_api_health_metrics && metrics_token) { /* metrics_access */
        *kind = HUB_AUTH_ROLE;
        *min_role = HUB_ROLE_AUDITOR;
    }
}

/* Matches path against pattern, storing {} segments (decoded) in r->params; a final {*}
 * takes the rest of the path, slashes included (a base64 OCSP request). */
static int match(struct hub_req *r, const char *pattern)
{
    const char *p = pattern, *s = r->path;
    int n = 0;
    while (*p && *s) {
        if (strcmp(p, "{*}") == 0) {
            if (n >= HUB_REQ_PARAMS)
                return 0;
            r->params[n] = strdup(s);
            return r->params[n] != NULL;
        }
        if (p[0] == '{' && p[1] == '}') {
            size_t len = strcspn(s, "/");
            if (len == 0 || n >= HUB_REQ_PARAMS)
                return 0;
            r->params[n] = strndup(s, len);
            n++;
            s += len;
            p += 2;
        } else if (*p++ != *s++) {
            return 0;
        }
    }
    if (*p == 0 && *s == 0)
        return 1;
    return 0;
}

void hub_router_release(struct hub_req *r)
{
    for (int i = 0; i < HUB_REQ_PARAMS; i++) {
        free(r->params[i]);
        r->params[i] = NULL;
    }
}

/* Whether route rt answers method (HEAD is served by GET routes; MHD drops the body). */
static int method_matches(const struct hub_route *rt, const char *method)
{
    return strcmp(rt->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
}

void hub_router_dispatch(struct hub_req *r)
{
    const struct hub_route *found = NULL;
    char allow[64] = "";
    for (const struct hub_route *rt = hub_router_routes; rt->pattern; rt++) {
        hub_router_release(r);
        if (!match(r, rt->pattern))
            continue;
        if (method_matches(rt, r->method)) {
            found = rt;
            break;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s%s", used ? ", " : "", rt->method,
                 strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
    }
    if (found == NULL) {
        hub_router_release(r);
        if (allow[0]) {
            hub_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method,
                            r->path);
            hub_reply_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        } else {
            hub_reply_error(r, 404, "not_found", "no such endpoint: %s", r->path);
        }
        return;
    }
    /* Ids are stored, audited and put in certificate subjects in their canonical
     * lower-case form, whatever case the client used. */
    for (int i = 0; i < HUB_REQ_PARAMS && r->params[i] != NULL; i++)
        if (hub_params_uuid_valid(r->params[i]))
            hub_params_lower(r->params[i]);
    r->action = found->action;
    r->mutating = found->action != NULL;
    if (r->body_too_large) {
        hub_reply_error(r, 413, "payload_too_large", "the request body exceeds %zu bytes",
                        r->api->body_limit);
        return;
    }
    enum hub_auth kind;
    enum hub_role min_role;
    hub_router_auth(found, r->api->metrics_token, &kind, &min_role);
    if (hub_auth_check(r, kind, min_role) != 0)
        return;
    found->handler(r);
    if (r->response == NULL)
        hub_reply_error(r, 500, "internal_error", "no response");
}
