/* Rows of firmware (the manifests) and firmware_chunks (the image bytes, 262144 per row):
 * one upload is one transaction on a caller-owned connection; downloads read one slice of
 * one chunk per call, so no image is ever whole in memory. Blocking, from API threads. */
#ifndef HUB_DB_FIRMWARE_H
#define HUB_DB_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "util/buf.h"

#define HUB_DB_FIRMWARE_CHUNK 262144

/* A product's id by its key; HUB_ENOTFOUND. */
int hub_db_firmware_product(PGconn *c, const char *product_key, long long *id);
/* Copies the newest version of the product into newest (cap bytes; "" when it has none).
 * With exclude_id (an upload's own row, ignored) it first locks the product's row until the
 * transaction ends: uploads of one product finish one at a time, so versions stay monotonic. */
int hub_db_firmware_newest(PGconn *c, long long product_id, const char *exclude_id, char *newest,
                           size_t cap);
/* What hub_db_firmware_insert stores; version_key is a PostgreSQL integer[] literal and
 * hardware a text[] literal of checked names. */
struct hub_db_firmware_row {
    long long product_id;
    const char *version, *version_key, *signer_id, *hardware, *min_version, *release_notes,
        *created_by;
    const uint8_t *signature;
    size_t signature_len;
};
/* Inserts the manifest with status 'uploading' (placeholder size and digest); id_out (37
 * bytes) gets its id. HUB_EEXIST when the product has that version already. */
int hub_db_firmware_insert(PGconn *c, const struct hub_db_firmware_row *row, char *id_out);
/* Stores chunk seq of image id (1..262144 bytes, sent as binary). */
int hub_db_firmware_chunk(PGconn *c, const char *id, int seq, const uint8_t *data, size_t len);
/* Sets the real size and digest and marks the image ready. */
int hub_db_firmware_ready(PGconn *c, const char *id, long long size, const uint8_t sha256[32]);
/* Ready images (of product_key when not NULL) as a JSON array of manifests, newest first. */
int hub_db_firmware_list(PGconn *c, const char *product_key, json_t **out);
/* One image's manifest (any status); HUB_ENOTFOUND. */
int hub_db_firmware_get(PGconn *c, const char *id, json_t **out);
/* Deletes an image and its chunks. HUB_ENOTFOUND, or HUB_EEXIST when a row of another table
 * (a rollout) still references it. */
int hub_db_firmware_delete(PGconn *c, const char *id);

/* What a device's download needs to know, in one query. */
struct hub_db_firmware_dl {
    long long size;
    char sha256[65];     /* lower-case hex */
    int same_product;    /* the image is for the device's product */
    int device_ok;       /* the device exists and is not revoked */
    int cert_ok;         /* cert_serial is a valid certificate of the device (1 if none given) */
};
/* Looks up ready image firmware_id for device_id (cert_serial: the client certificate's
 * serial, or "" for Basic credentials). HUB_ENOTFOUND when the image is unknown or not
 * ready. */
int hub_db_firmware_for_device(PGconn *c, const char *firmware_id, const char *device_id,
                               const char *cert_serial, struct hub_db_firmware_dl *out);
/* Copies bytes [off, off + len) of chunk seq of image id into buf (len <= chunk size);
 * *got receives how many were there. */
int hub_db_firmware_slice(PGconn *c, const char *id, int seq, size_t off, size_t len,
                          uint8_t *buf, size_t *got);

#endif
