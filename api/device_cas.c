/* /v1/device-cas and the approval of pending devices. The X.509 checks are ca/device_ca.c's;
 * this file orders them (certificates first, then the code, the cap and the uniqueness in
 * one transaction, so a refused registration leaves its code unused) and maps each refusal
 * to an API error, audited by the router's failure audit (api/audit.c). */
#include "api/device_cas.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/audit.h"
#include "api/devices.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/cert.h"
#include "db/db.h"
#include "db/device_cas.h"
#include "db/devices.h"
#include "db/products.h"
#include "util/error.h"
#include "util/secure.h"

#define PEM_MAX HUB_DEVCA_CERT_MAX
#define URL_MAX 512

static int max_per_product = 10;
static int code_ttl_s = 3600;
static atomic_ullong counters[HUB_DEVCA_M_COUNT];

static const struct {
    const char *name, *help;
} metric_info[HUB_DEVCA_M_COUNT] = {
    {"iothub_device_cas_registered_total", "Device CAs registered."},
    {"iothub_device_cas_refused_total", "Device CA registrations refused."},
    {"iothub_device_cas_limit_refusals_total",
     "Device CA registrations refused by device_ca_max_per_product."},
    {"iothub_device_ca_crls_total", "Device CA CRLs stored (uploaded or fetched)."},
    {"iothub_device_ca_crls_refused_total", "Device CA CRLs refused (uploaded or fetched)."},
    {"iothub_device_ca_crl_fetches_total", "Device CA CRL fetches attempted."},
    {"iothub_device_ca_crl_fetch_failures_total",
     "Device CA CRL fetches that failed (transport, HTTP status, size, refused CRL)."},
};

void hub_api_device_cas_configure(int max_ca, int ttl_s)
{
    max_per_product = max_ca;
    code_ttl_s = ttl_s;
}

void hub_api_device_cas_count(enum hub_devca_metric m)
{
    atomic_fetch_add_explicit(&counters[m], 1, memory_order_relaxed);
}

int hub_api_device_cas_metrics(hub_buf_t *out)
{
    int rc = 0;
    for (int m = 0; rc == 0 && m < HUB_DEVCA_M_COUNT; m++)
        rc = hub_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", metric_info[m].name,
                            metric_info[m].help, metric_info[m].name, metric_info[m].name,
                            atomic_load(&counters[m]));
    return rc;
}

/* The actor as audit rows name it. */
static void actor(const struct hub_req *r, char *out, size_t cap)
{
    snprintf(out, cap, "token:%s", r->who.name[0] ? r->who.name : "-");
}

/* Audits the successful change of this request with details built by json_pack. */
static int audit(struct hub_req *r, const char *target, json_t *details)
{
    char *text = details ? json_dumps(details, JSON_COMPACT) : NULL;
    json_decref(details);
    int rc = hub_api_audit_write(r, target, text);
    free(text);
    return rc;
}

static void refuse(struct hub_req *r, unsigned status, const struct hub_devca_why *why)
{
    hub_reply_error(r, status, why->code, "%s", why->message);
}

void hub_api_device_cas_code(struct hub_req *r)
{
    uint8_t raw[32];
    char code[65], who[200];
    json_t *out = NULL;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return;
    int rc = hub_random(raw, sizeof raw);
    hub_hex_lower(raw, sizeof raw, code);
    actor(r, who, sizeof who);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_device_cas_code_insert(c, code, who, code_ttl_s, &out);
    /* The code is not a secret (it goes into a certificate's subject): audit it. */
    if (rc == 0)
        rc = audit(r, NULL, json_pack("{s:s}", "code", code));
    if (rc != 0) {
        json_decref(out);
        hub_reply_internal(r, rc, "registration code");
        return;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 201, out);
    else
        json_decref(out);
}

/* Fields of POST /v1/device-cas. */
struct create_req {
    const char *product_key, *ca_pem, *verification_pem, *registration, *crl_url;
};

static int parse_create(struct hub_req *r, json_t *body, struct create_req *q)
{
    q->product_key = hub_params_string(r, body, "product_key", 1, 64);
    q->ca_pem = q->product_key ? hub_params_string(r, body, "ca_certificate", 1, PEM_MAX) : NULL;
    q->verification_pem =
        q->ca_pem ? hub_params_string(r, body, "verification_certificate", 1, PEM_MAX) : NULL;
    if (q->verification_pem == NULL)
        return HUB_REPLIED;
    q->registration = hub_params_string(r, body, "registration", 0, 16);
    q->crl_url = r->status == 0 ? hub_params_string(r, body, "crl_url", 0, URL_MAX) : NULL;
    if (r->status != 0)
        return HUB_REPLIED;
    if (q->registration == NULL)
        q->registration = "auto";
    if (strcmp(q->registration, "auto") != 0 && strcmp(q->registration, "approve") != 0) {
        hub_reply_error(r, 400, "invalid_field", "registration must be \"auto\" or \"approve\"");
        return HUB_REPLIED;
    }
    if (q->crl_url != NULL && strncmp(q->crl_url, "http://", 7) != 0 &&
        strncmp(q->crl_url, "https://", 8) != 0) {
        hub_reply_error(r, 400, "invalid_field", "crl_url must be an http:// or https:// URL");
        return HUB_REPLIED;
    }
    return 0;
}

/* The checks that need the database, in the request's transaction; on success *out holds
 * the new row. Returns 0 or HUB_REPLIED. */
static int register_ca(struct hub_req *r, const struct create_req *q, const mbedtls_x509_crt *ca,
                       const char *code, json_t **out)
{
    struct hub_db_secret product;
    char subject[256], serial[HUB_SERIAL_HEX], fp[65], who[200];
    long long n = 0;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return HUB_REPLIED;
    int rc = hub_db_products_secret(c, q->product_key, &product);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "product_not_found", "no product with key \"%s\"", q->product_key);
        return HUB_REPLIED;
    }
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0 && (rc = hub_db_device_cas_code_take(c, code)) != 0 && rc != HUB_EDB &&
        rc != HUB_EDBDOWN) {
        if (rc == HUB_EEXIST)
            hub_reply_error(r, 422, "verification_code_used",
                            "the registration code was already used");
        else if (rc == HUB_ERANGE)
            hub_reply_error(r, 422, "verification_code_expired",
                            "the registration code has expired; get a new one");
        else
            hub_reply_error(r, 422, "verification_code_unknown",
                            "the verification certificate's CN is not a registration code");
        return HUB_REPLIED;
    }
    if (rc == 0)
        rc = hub_db_device_cas_count(c, product.id, &n);
    if (rc == 0 && n >= max_per_product) {
        hub_api_device_cas_count(HUB_DEVCA_M_LIMIT);
        hub_reply_error(r, 409, "device_ca_limit",
                        "product %s already has %lld enabled device CAs (device_ca_max_per_"
                        "product = %d)",
                        q->product_key, n, max_per_product);
        return HUB_REPLIED;
    }
    hub_devca_subject(ca, subject, sizeof subject);
    if (rc == 0 && hub_x509_serial_hex(&ca->serial, serial, sizeof serial) != 0) {
        hub_reply_error(r, 422, "ca_certificate_malformed", "the CA's serial is too long");
        return HUB_REPLIED;
    }
    if (rc == 0)
        rc = hub_devca_fingerprint(ca, fp);
    actor(r, who, sizeof who);
    struct hub_db_device_ca row = {
        .product_id = product.id,
        .subject = subject,
        .serial = serial,
        .fingerprint = fp,
        .registration = q->registration,
        .crl_url = q->crl_url,
        .created_by = who,
        .der = ca->raw.p,
        .der_len = ca->raw.len,
        .not_before = hub_devca_time(&ca->valid_from),
        .not_after = hub_devca_time(&ca->valid_to),
    };
    if (rc == 0 && (rc = hub_db_device_cas_insert(c, &row, out)) == HUB_EEXIST) {
        hub_reply_error(r, 409, "device_ca_exists",
                        "a device CA with fingerprint %s is already registered", fp);
        return HUB_REPLIED;
    }
    const char *id = rc == 0 ? json_string_value(json_object_get(*out, "id")) : NULL;
    if (rc == 0 && id == NULL)
        rc = HUB_EDB;
    if (rc == 0)
        rc = hub_db_notify(c, HUB_DB_DEVICE_CAS_CHANNEL, id);
    if (rc == 0)
        rc = audit(r, id,
                   json_pack("{s:s,s:s,s:s,s:s,s:s}", "product_key", q->product_key, "subject",
                             subject, "fingerprint", fp, "registration", q->registration, "code",
                             code));
    if (rc != 0) {
        hub_reply_internal(r, rc, "device CA registration");
        return HUB_REPLIED;
    }
    return hub_transaction_commit(r);
}

void hub_api_device_cas_create(struct hub_req *r)
{
    struct create_req q;
    struct hub_devca_why why;
    mbedtls_x509_crt ca, v;
    char code[65];
    json_t *out = NULL;
    time_t now = time(NULL);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&v);
    json_t *body = hub_params_json(r);
    if (body == NULL || parse_create(r, body, &q) != 0)
        goto out;
    if (hub_devca_cert_load((const uint8_t *)q.ca_pem, strlen(q.ca_pem), "ca_certificate_malformed",
                            &ca, &why) != 0 ||
        hub_devca_check_ca(&ca, now, &why) != 0 ||
        hub_devca_cert_load((const uint8_t *)q.verification_pem, strlen(q.verification_pem),
                            "verification_certificate_malformed", &v, &why) != 0 ||
        hub_devca_check_verification(&ca, &v, now, code, &why) != 0) {
        refuse(r, 422, &why);
        goto out;
    }
    if (register_ca(r, &q, &ca, code, &out) == 0) {
        hub_api_device_cas_count(HUB_DEVCA_M_REGISTERED);
        json_t *o = json_pack(
            "{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "id", json_object_get(out, "id"), "product_key",
            json_object_get(out, "product_key"), "subject", json_object_get(out, "subject"),
            "fingerprint", json_object_get(out, "fingerprint"), "not_after",
            json_object_get(out, "not_after"), "status", json_object_get(out, "status"),
            "registration", json_object_get(out, "registration"));
        hub_reply_json(r, 201, o);
    }
out:
    if (r->status >= 400 && r->status < 500)
        hub_api_device_cas_count(HUB_DEVCA_M_REFUSED);
    json_decref(out);
    json_decref(body);
    mbedtls_x509_crt_free(&v);
    mbedtls_x509_crt_free(&ca);
}

void hub_api_device_cas_list(struct hub_req *r)
{
    json_t *list;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return;
    int rc = hub_db_device_cas_list(c, 1, &list);
    if (rc != 0)
        hub_reply_internal(r, rc, "device CA listing");
    else
        hub_reply_json(r, 200, json_pack("{s:o}", "device_cas", list));
}

/* 404 unless the path's id is a UUID. */
static int id_valid(struct hub_req *r)
{
    if (hub_params_uuid_valid(r->params[0]))
        return 1;
    hub_reply_error(r, 404, "not_found", "no device CA %s", r->params[0]);
    return 0;
}

void hub_api_device_cas_show(struct hub_req *r)
{
    json_t *d;
    PGconn *c = id_valid(r) ? hub_transaction_db(r) : NULL;
    if (c == NULL)
        return;
    int rc = hub_db_device_cas_get(c, r->params[0], &d);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no device CA %s", r->params[0]);
    else if (rc != 0)
        hub_reply_internal(r, rc, "device CA lookup");
    else
        hub_reply_json(r, 200, d);
}

void hub_api_device_cas_update(struct hub_req *r)
{
    char status[16];
    long long product_id, n = 0;
    json_t *out = NULL;
    if (!id_valid(r))
        return;
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    const char *st = hub_params_string(r, body, "status", 0, 16);
    const char *reg = r->status == 0 ? hub_params_string(r, body, "registration", 0, 16) : NULL;
    if (r->status != 0)
        goto out;
    if ((st == NULL && reg == NULL) ||
        (st != NULL && strcmp(st, "enabled") != 0 && strcmp(st, "disabled") != 0) ||
        (reg != NULL && strcmp(reg, "auto") != 0 && strcmp(reg, "approve") != 0)) {
        hub_reply_error(r, 400, "invalid_field",
                        "expected status \"enabled\"|\"disabled\" and/or registration "
                        "\"auto\"|\"approve\"");
        goto out;
    }
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        goto out;
    int rc = hub_db_begin(c);
    if (rc == 0 &&
        (rc = hub_db_device_cas_lock(c, r->params[0], &product_id, status)) == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no device CA %s", r->params[0]);
        goto out;
    }
    if (rc == 0 && st != NULL && strcmp(st, "enabled") == 0 && strcmp(status, "disabled") == 0 &&
        (rc = hub_db_device_cas_count(c, product_id, &n)) == 0 && n >= max_per_product) {
        hub_api_device_cas_count(HUB_DEVCA_M_LIMIT);
        hub_reply_error(r, 409, "device_ca_limit",
                        "the product already has %lld enabled device CAs "
                        "(device_ca_max_per_product = %d)",
                        n, max_per_product);
        goto out;
    }
    if (rc == 0)
        rc = hub_db_device_cas_update(c, r->params[0], st, reg, &out);
    if (rc == 0)
        rc = hub_db_notify(c, HUB_DB_DEVICE_CAS_CHANNEL, r->params[0]);
    if (rc == 0)
        rc = audit(r, r->params[0],
                   json_pack("{s:s,s:s?,s:s?}", "previous_status", status, "status", st,
                             "registration", reg));
    if (rc != 0) {
        hub_reply_internal(r, rc, "device CA update");
        goto out;
    }
    if (hub_transaction_commit(r) == 0) {
        hub_reply_json(r, 200, out);
        out = NULL;
    }
out:
    json_decref(out);
    json_decref(body);
}

int hub_api_device_cas_store_crl(PGconn *c, const char *id, const uint8_t *data, size_t len,
                                 struct hub_devca_crl *info, struct hub_devca_why *why)
{
    hub_buf_t cert = HUB_BUF_INIT, der = HUB_BUF_INIT;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt_init(&ca);
    int rc = hub_db_device_cas_lock_cert(c, id, &cert);
    if (rc == 0 && mbedtls_x509_crt_parse_der(&ca, cert.data, cert.len) != 0)
        rc = HUB_ECRYPTO; /* it parsed when it was registered: not the client's fault */
    if (rc == 0)
        rc = hub_devca_crl_check(&ca, data, len, time(NULL), info, &der, why);
    if (rc == 0) {
        rc = hub_db_device_cas_set_crl(c, id, &der, info->number, info->this_update,
                                       info->next_update);
        if (rc == HUB_ERANGE) {
            why->code = "crl_not_newer";
            snprintf(why->message, sizeof why->message,
                     "the CRL's cRLNumber %s is not greater than the stored one", info->number);
            rc = HUB_EINVAL;
        }
    }
    if (rc == 0)
        rc = hub_db_notify(c, HUB_DB_DEVICE_CAS_CHANNEL, id);
    if (rc == 0)
        hub_api_device_cas_count(HUB_DEVCA_M_CRLS);
    hub_buf_free(&der);
    hub_buf_free(&cert);
    mbedtls_x509_crt_free(&ca);
    return rc;
}

void hub_api_device_cas_crl(struct hub_req *r)
{
    struct hub_devca_crl crl;
    struct hub_devca_why why;
    if (!id_valid(r))
        return;
    /* The body is the CRL (DER or PEM), or {"crl": "<PEM>"} as iothubctl sends it. */
    const uint8_t *data = r->body.data;
    size_t len = r->body.len;
    json_t *body = NULL;
    const char *ct = hub_request_header(r, "Content-Type");
    if (ct != NULL && strncasecmp(ct, "application/json", 16) == 0) {
        const char *pem = (body = hub_params_json(r))
                              ? hub_params_string(r, body, "crl", 1, HUB_DEVCA_CRL_MAX)
                              : NULL;
        if (pem == NULL) {
            json_decref(body);
            return;
        }
        data = (const uint8_t *)pem;
        len = strlen(pem);
    }
    PGconn *c = hub_transaction_db(r);
    int rc = c != NULL ? hub_db_begin(c) : HUB_REPLIED;
    if (rc == 0)
        rc = hub_api_device_cas_store_crl(c, r->params[0], data, len, &crl, &why);
    json_decref(body);
    if (rc == HUB_REPLIED)
        return;
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no device CA %s", r->params[0]);
        return;
    }
    if (rc == HUB_EINVAL) {
        hub_api_device_cas_count(HUB_DEVCA_M_CRL_REFUSED);
        refuse(r, strcmp(why.code, "crl_not_newer") == 0 ? 409 : 422, &why);
        return;
    }
    if (rc == 0)
        rc = audit(
            r, r->params[0],
            json_pack("{s:s,s:I}", "crl_number", crl.number, "entries", (json_int_t)crl.entries));
    if (rc != 0) {
        hub_reply_internal(r, rc, "device CA CRL");
        return;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 200,
                       json_pack("{s:s,s:s,s:I,s:I,s:I}", "id", r->params[0], "crl_number",
                                 crl.number, "this_update", (json_int_t)crl.this_update,
                                 "next_update", (json_int_t)crl.next_update, "entries",
                                 (json_int_t)crl.entries));
}

void hub_api_device_cas_approve(struct hub_req *r)
{
    char status[16];
    PGconn *c = hub_api_devices_lock(r, status);
    if (c == NULL)
        return;
    if (strcmp(status, "pending") != 0) {
        hub_reply_error(r, 409, "device_not_pending", "device %s is %s, not pending", r->params[0],
                        status);
        return;
    }
    int rc = hub_db_devices_set_status(c, r->params[0], "active");
    if (rc == 0)
        rc = hub_db_notify(c, HUB_DB_DEVICE_APPROVED_CHANNEL, r->params[0]);
    if (rc == 0)
        rc = audit(r, r->params[0], json_pack("{s:s}", "previous_status", status));
    if (rc != 0) {
        hub_reply_internal(r, rc, "device approval");
        return;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 200,
                       json_pack("{s:s,s:s}", "device_id", r->params[0], "status", "active"));
}
