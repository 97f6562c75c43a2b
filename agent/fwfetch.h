/* HTTPS transfers of the firmware update client, authenticated by the device certificate:
 * the image, resumable (Range + If-Range on the ETag), and the bundle of trusted signer
 * certificates. Both block the caller (the agent's loop keeps its MQTT connection alive
 * through the progress callback). */
#ifndef HUB_AGENT_FWFETCH_H
#define HUB_AGENT_FWFETCH_H

#include "agent/pin.h"

/* The TLS side of a transfer; every pointer borrowed. */
struct hub_fw_tls {
    const char *cacert;     /* the server must chain to this PEM file */
    struct hub_pin *pin;    /* or NULL */
    const char *cert, *key; /* the device's client certificate and key files */
    const char *key_passwd; /* passphrase of an encrypted key file, or NULL */
};

/* One download attempt. */
struct hub_fw_download {
    const char *url;
    const char *path; /* the partial file: appended to, restarted on a 200 */
    const char *etag; /* the expected ETag ("\"<sha256 hex>\""), sent as If-Range */
    long long size;   /* the image's size: more bytes abort the transfer */
    struct hub_fw_tls tls;
    void (*progress)(void *arg, long long have); /* bytes in the partial file so far */
    void *arg;
    char error[300]; /* why the attempt failed */
};

/* Downloads the rest of d->url into d->path, resuming from its size. Returns 0 when the file
 * holds d->size bytes, HUB_EIO for a failure worth retrying (connection lost, 5xx, stall),
 * HUB_EINVAL for a permanent one (4xx, a larger image); d->error says why. */
int hub_fw_download(struct hub_fw_download *d);

/* GETs the PEM bundle of trusted signer certificates from url and stores it in path
 * atomically when every certificate in it parses. Returns 0, HUB_ENOTFOUND (404: the stored
 * bundle is kept), HUB_EIO or HUB_EINVAL (logged). */
int hub_fw_fetch_signers(const char *url, const struct hub_fw_tls *tls, const char *path);

#endif
