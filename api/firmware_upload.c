#include "api/firmware_upload.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha256.h>
#include <microhttpd.h>

#include "api/audit.h"
#include "api/auth.h"
#include "api/firmware_metrics.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/fwsig.h"
#include "db/db.h"
#include "db/firmware.h"
#include "db/firmware_signers.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"
#include "util/version.h"

#define SIG_MAX 1024 /* an RSA-8192 signature; ECDSA P-384 is at most 104 bytes */
#define NOTES_MAX 4096
#define HARDWARE_MAX 32
#define HARDWARE_NAME_MAX 64
/* After a refusal the body is read and dropped, up to this much beyond the size limit. */
#define DRAIN_SLACK (1024 * 1024)

struct hub_fw_upload {
    char id[37];
    char signer_id[37];
    long long product_id;
    struct hub_version version;
    hub_buf_t signer_der;
    uint8_t sig[SIG_MAX];
    size_t sig_len;
    uint8_t *chunk; /* HUB_DB_FIRMWARE_CHUNK bytes, reused for every chunk */
    size_t fill;
    int seq;
    unsigned long long total, dropped;
    long long expected; /* ?size=, or -1 */
    mbedtls_sha256_context sha;
    int slot; /* holds one of the HUB_FW_MAX_UPLOADS slots */
};

static _Atomic int uploads_running;

int hub_api_firmware_upload_wanted(const struct hub_req *r)
{
    return strcmp(r->method, "POST") == 0 && strcmp(r->path, "/v1/firmware") == 0;
}

/* Sets the error reply and counts the refusal. */
#define REFUSE(r, status, code, ...)                                                               \
    do {                                                                                           \
        hub_reply_error(r, status, code, __VA_ARGS__);                                             \
        hub_fw_metrics_upload(code);                                                               \
    } while (0)

static int hardware_literal(struct hub_req *r, const char *list, hub_buf_t *out)
{
    int n = 0, rc = hub_buf_puts(out, "{");
    const char *p = list != NULL ? list : "";
    while (rc == 0 && *p) {
        size_t len = strcspn(p, ",");
        int ok = len > 0 && len <= HARDWARE_NAME_MAX && ++n <= HARDWARE_MAX;
        for (size_t i = 0; ok && i < len; i++)
            ok = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                 (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_' || p[i] == '.';
        if (!ok) {
            REFUSE(r, 400, "invalid_parameter",
                   "hardware must be a comma-separated list of at most %d names of 1 to %d "
                   "letters, digits, '-', '_' or '.'",
                   HARDWARE_MAX, HARDWARE_NAME_MAX);
            return HUB_REPLIED;
        }
        rc = hub_buf_printf(out, "%s%.*s", n > 1 ? "," : "", (int)len, p);
        p += len;
        if (*p == ',' && *++p == 0) {
            REFUSE(r, 400, "invalid_parameter", "hardware ends with a comma");
            return HUB_REPLIED;
        }
    }
    if (rc == 0)
        rc = hub_buf_append(out, "}", 2);
    return rc;
}

static int notes_valid(const char *s)
{
    if (strlen(s) > NOTES_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
            return 0;
    return 1;
}

/* Checks the query and headers into u; replies and returns HUB_REPLIED when they are wrong. */
static int read_manifest(struct hub_req *r, struct hub_fw_upload *u, hub_buf_t *hardware)
{
    const char *ct = hub_request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || strncmp(ct, "application/octet-stream", 24) != 0) {
        REFUSE(r, 415, "unsupported_media_type",
               "the body is the image: Content-Type: application/octet-stream");
        return HUB_REPLIED;
    }
    const char *version = hub_request_query(r, "version");
    const char *min = hub_request_query(r, "min_version");
    const char *sig = hub_request_query(r, "signer") ? hub_request_header(r, "X-Firmware-Signature")
                                                     : NULL;
    const char *notes = hub_request_query(r, "release_notes");
    const char *size = hub_request_query(r, "size");
    struct hub_version minv;
    if (hub_request_query(r, "product_key") == NULL || hub_request_query(r, "signer") == NULL ||
        version == NULL) {
        REFUSE(r, 400, "invalid_parameter", "product_key, version and signer are required");
        return HUB_REPLIED;
    }
    if (hub_version_parse(version, &u->version) != 0 ||
        (min != NULL && hub_version_parse(min, &minv) != 0)) {
        REFUSE(r, 400, "invalid_parameter",
               "versions are dotted numbers (MAJOR.MINOR.PATCH, 1 to 4 parts, no leading zeros)");
        return HUB_REPLIED;
    }
    if (min != NULL && hub_version_cmp(&minv, &u->version) >= 0) {
        REFUSE(r, 400, "invalid_parameter", "min_version must be older than version");
        return HUB_REPLIED;
    }
    if (notes != NULL && !notes_valid(notes)) {
        REFUSE(r, 400, "invalid_parameter",
               "release_notes: at most %d bytes, no control characters but newline and tab",
               NOTES_MAX);
        return HUB_REPLIED;
    }
    size_t n = 0;
    if (sig == NULL || strlen(sig) > 2 * SIG_MAX ||
        mbedtls_base64_decode(u->sig, sizeof u->sig, &n, (const unsigned char *)sig,
                              strlen(sig)) != 0 ||
        n == 0) {
        REFUSE(r, 400, "invalid_parameter",
               "X-Firmware-Signature must hold the base64 of the detached signature (at most "
               "%d bytes)",
               SIG_MAX);
        return HUB_REPLIED;
    }
    u->sig_len = n;
    u->expected = -1;
    if (size != NULL) {
        char *end;
        u->expected = strtoll(size, &end, 10);
        if (*size == 0 || *end != 0 || u->expected < 1) {
            REFUSE(r, 400, "invalid_parameter", "size must be a positive number of bytes");
            return HUB_REPLIED;
        }
    }
    unsigned long long max = r->api->firmware_max_size;
    const char *cl = hub_request_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if ((cl != NULL && strtoull(cl, NULL, 10) > max) ||
        (u->expected > 0 && (unsigned long long)u->expected > max)) {
        REFUSE(r, 413, "payload_too_large", "firmware images are limited to %llu bytes",
               max);
        return HUB_REPLIED;
    }
    return hardware_literal(r, hub_request_query(r, "hardware"), hardware);
}

/* Looks the product and the signer up, checks the version against the newest, opens the
 * transaction and inserts the manifest. */
static int start_transaction(struct hub_req *r, struct hub_fw_upload *u, const char *hardware)
{
    PGconn *c = hub_transaction_db(r);
    const char *product = hub_request_query(r, "product_key");
    const char *signer = hub_request_query(r, "signer");
    const char *version = hub_request_query(r, "version");
    char newest[HUB_VERSION_MAX + 16], key[64];
    struct hub_version nv;
    if (c == NULL)
        return HUB_REPLIED;
    int rc = hub_db_firmware_product(c, product, &u->product_id);
    if (rc == HUB_ENOTFOUND) {
        REFUSE(r, 422, "product_unknown", "no product %.64s", product);
        return HUB_REPLIED;
    }
    if (rc == 0)
        rc = strlen(signer) == 36 || strlen(signer) == 64
                 ? hub_db_firmware_signers_lookup(c, signer, u->signer_id, &u->signer_der)
                 : HUB_ENOTFOUND;
    if (rc == HUB_ENOTFOUND) {
        REFUSE(r, 422, "signer_unknown",
               "no active firmware signer %.64s within its validity (give its id or its SHA-256 "
               "fingerprint)",
               signer);
        return HUB_REPLIED;
    }
    if (rc == 0)
        rc = hub_db_firmware_newest(c, u->product_id, NULL, newest, sizeof newest);
    if (rc == 0 && newest[0] && hub_version_parse(newest, &nv) == 0 &&
        hub_version_cmp(&u->version, &nv) <= 0) {
        REFUSE(r, 422, "version_not_newer",
               "version %s is not newer than %s, the newest image of product %s", version, newest,
               product);
        return HUB_REPLIED;
    }
    hub_version_pg_array(&u->version, key, sizeof key);
    struct hub_db_firmware_row row = {.product_id = u->product_id,
                                      .version = version,
                                      .version_key = key,
                                      .signer_id = u->signer_id,
                                      .hardware = hardware,
                                      .min_version = hub_request_query(r, "min_version"),
                                      .release_notes = hub_request_query(r, "release_notes"),
                                      .created_by = r->who.name,
                                      .signature = u->sig,
                                      .signature_len = u->sig_len};
    if (row.release_notes == NULL)
        row.release_notes = "";
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_firmware_insert(c, &row, u->id);
    if (rc == HUB_EEXIST) {
        REFUSE(r, 422, "version_not_newer", "product %s has version %s already", product, version);
        return HUB_REPLIED;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware upload");
        hub_fw_metrics_upload("other");
        return HUB_REPLIED;
    }
    return 0;
}

void hub_api_firmware_upload_begin(struct hub_req *r)
{
    hub_buf_t hardware = HUB_BUF_INIT;
    r->action = "firmware.upload";
    r->mutating = 1;
    if (hub_auth_check(r, HUB_AUTH_ROLE, HUB_ROLE_ADMIN) != 0) {
        hub_fw_metrics_upload(r->error_code);
        return;
    }
    struct hub_fw_upload *u = calloc(1, sizeof *u);
    if (u == NULL) {
        hub_reply_internal(r, HUB_ENOMEM, "firmware upload");
        return;
    }
    r->fw_upload = u;
    mbedtls_sha256_init(&u->sha);
    if (atomic_fetch_add(&uploads_running, 1) >= HUB_FW_MAX_UPLOADS) {
        atomic_fetch_sub(&uploads_running, 1);
        REFUSE(r, 503, "busy", "%d firmware uploads are running; retry later",
               HUB_FW_MAX_UPLOADS);
        hub_reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "30");
        return;
    }
    u->slot = 1;
    if (read_manifest(r, u, &hardware) != 0 ||
        start_transaction(r, u, (const char *)hardware.data) != 0)
        goto out;
    if ((u->chunk = malloc(HUB_DB_FIRMWARE_CHUNK)) == NULL ||
        mbedtls_sha256_starts_ret(&u->sha, 0) != 0) {
        hub_reply_internal(r, HUB_ENOMEM, "firmware upload");
        goto out;
    }
out:
    hub_buf_free(&hardware);
}

/* Hashes and stores the buffered chunk. */
static int flush(struct hub_req *r, struct hub_fw_upload *u)
{
    if (u->fill == 0)
        return 0;
    int rc = mbedtls_sha256_update_ret(&u->sha, u->chunk, u->fill) != 0 ? HUB_ECRYPTO : 0;
    if (rc == 0)
        rc = hub_db_firmware_chunk(r->db, u->id, u->seq, u->chunk, u->fill);
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware chunk");
        hub_fw_metrics_upload("other");
        return HUB_REPLIED;
    }
    u->seq++;
    u->fill = 0;
    return 0;
}

int hub_api_firmware_upload_data(struct hub_req *r, const char *data, size_t len)
{
    struct hub_fw_upload *u = r->fw_upload;
    unsigned long long max = r->api->firmware_max_size;
    if (r->response != NULL || u == NULL || u->chunk == NULL) {
        if (u != NULL)
            u->dropped += len;
        return u != NULL && u->dropped > max + DRAIN_SLACK ? -1 : 0;
    }
    u->total += len;
    if (u->total > max) {
        REFUSE(r, 413, "payload_too_large", "firmware images are limited to %llu bytes", max);
        hub_api_audit_failure(r); /* rolls the upload back first */
        return 0;
    }
    while (len > 0) {
        size_t n = HUB_DB_FIRMWARE_CHUNK - u->fill;
        if (n > len)
            n = len;
        memcpy(u->chunk + u->fill, data, n);
        u->fill += n;
        data += n;
        len -= n;
        if (u->fill == HUB_DB_FIRMWARE_CHUNK && flush(r, u) != 0) {
            hub_api_audit_failure(r);
            return 0;
        }
    }
    return 0;
}

void hub_api_firmware_upload(struct hub_req *r)
{
    struct hub_fw_upload *u = r->fw_upload;
    uint8_t digest[32];
    char newest[HUB_VERSION_MAX + 16], hex[65], details[256];
    struct hub_version nv;
    json_t *m = NULL;
    if (u == NULL || u->chunk == NULL) {
        hub_reply_internal(r, HUB_EINVAL, "firmware upload state");
        return;
    }
    if (flush(r, u) != 0)
        return;
    if (u->total == 0) {
        REFUSE(r, 400, "empty_image", "the request body (the image) is empty");
        return;
    }
    if (u->expected > 0 && (unsigned long long)u->expected != u->total) {
        REFUSE(r, 400, "size_mismatch", "size says %lld bytes but the body has %llu", u->expected,
               u->total);
        return;
    }
    if (mbedtls_sha256_finish_ret(&u->sha, digest) != 0) {
        hub_reply_internal(r, HUB_ECRYPTO, "firmware digest");
        return;
    }
    hub_hex_lower(digest, sizeof digest, hex);
    int rc = hub_fwsig_verify(u->signer_der.data, u->signer_der.len, digest, u->sig, u->sig_len);
    if (rc != 0) {
        REFUSE(r, 422, "signature_invalid",
               "the signature does not verify over the image's SHA-256 (%s) with signer %s", hex,
               u->signer_id);
        return;
    }
    /* Under the product's row lock: another upload of the product may have committed a
     * newer version since this one began. */
    rc = hub_db_firmware_newest(r->db, u->product_id, u->id, newest, sizeof newest);
    if (rc == 0 && hub_version_parse(newest, &nv) == 0 && hub_version_cmp(&u->version, &nv) <= 0) {
        REFUSE(r, 422, "version_not_newer", "version %s is not newer than %s",
               hub_request_query(r, "version"), newest);
        return;
    }
    if (rc == 0)
        rc = hub_db_firmware_ready(r->db, u->id, (long long)u->total, digest);
    snprintf(details, sizeof details, "{\"version\": \"%s\", \"size\": %llu, \"sha256\": \"%s\"}",
             hub_request_query(r, "version"), u->total, hex);
    if (rc == 0)
        rc = hub_api_audit_write(r, u->id, details);
    if (rc == 0)
        rc = hub_db_firmware_get(r->db, u->id, &m);
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware upload");
        hub_fw_metrics_upload("other");
        return;
    }
    if (hub_transaction_commit(r) != 0) {
        json_decref(m);
        return;
    }
    hub_fw_metrics_upload(NULL);
    hub_info("firmware %s: version %s of product %s, %llu bytes, sha256 %s, by %s", u->id,
             hub_request_query(r, "version"), hub_request_query(r, "product_key"), u->total, hex,
             r->who.name);
    hub_reply_json(r, 201, m);
}

void hub_api_firmware_upload_free(struct hub_req *r)
{
    struct hub_fw_upload *u = r->fw_upload;
    if (u == NULL)
        return;
    if (u->slot)
        atomic_fetch_sub(&uploads_running, 1);
    mbedtls_sha256_free(&u->sha);
    hub_buf_free(&u->signer_der);
    free(u->chunk);
    free(u);
    r->fw_upload = NULL;
}
