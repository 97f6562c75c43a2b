/* Just-in-time registration of devices whose certificate a maker's device CA signed: the
 * device CAs the MQTT listeners trust, the lookup of such a certificate's device, and the
 * registration of a new one (device row, certificate row, audit, in one transaction).
 * Blocking calls on a caller-owned connection, from a worker thread. */
#ifndef HUB_DB_REGISTRATIONS_H
#define HUB_DB_REGISTRATIONS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

#include "util/buf.h"

#define HUB_DB_UUID_LEN 36

/* One row of device_cas as the listeners need it. */
struct hub_db_device_ca {
    char id[HUB_DB_UUID_LEN + 1];
    int enabled;
    hub_buf_t der;
    hub_buf_t crl; /* empty: no CRL */
};

/* Every device CA (enabled and disabled), as a malloc'ed array (free it with
 * hub_db_registrations_free_cas). */
int hub_db_registrations_device_cas(PGconn *c, struct hub_db_device_ca **out, size_t *n);
void hub_db_registrations_free_cas(struct hub_db_device_ca *v, size_t n);
/* Starts listening for device CA changes (channel iothub_device_cas, payload = its id). */
int hub_db_registrations_listen(PGconn *c);

/* The device of a device-CA certificate, as recorded. */
struct hub_db_registered {
    char device_id[HUB_DB_UUID_LEN + 1];
    char device_status[16]; /* "active", "pending", "revoked", ... */
    char cert_status[16];   /* "valid" or "revoked" */
    int same;               /* 1: the row is this certificate of this device CA */
};
/* Looks the certificate serial up. HUB_ENOTFOUND when no certificate has that serial. */
int hub_db_registrations_lookup(PGconn *c, const char *serial, const char *device_ca_id,
                                const uint8_t *der, size_t der_len, struct hub_db_registered *out);

/* A device to register on first contact. */
struct hub_db_registration {
    const char *device_ca_id;
    const char *device_id;     /* uuid5 of the CA fingerprint and the CN (server/registration) */
    const char *serial_number; /* the certificate's CN */
    const char *secret_hash;   /* unmatchable: such devices have no password */
    const char *cert_serial;   /* upper-case hex */
    const char *subject;
    const uint8_t *der;
    size_t der_len;
    time_t not_before, not_after;
    const char *peer; /* audit source */
};
/* The CA's registration data: product, policy ("auto"/"approve"), fingerprint (lower hex),
 * status. HUB_ENOTFOUND when there is no such device CA. */
struct hub_db_device_ca_policy {
    char product_id[24];
    char registration[16];
    char fingerprint[65];
    char status[16];
};
int hub_db_registrations_policy(PGconn *c, const char *device_ca_id,
                                struct hub_db_device_ca_policy *out);
/* In one transaction: the device (status per the CA's policy, as given in status), its
 * certificate (ca_id NULL, device_ca_id set) and the audit row "device.registered_jit".
 * HUB_EEXIST when the device id, its (product, serial number) or the certificate serial is
 * already taken (nothing written). */
int hub_db_registrations_register(PGconn *c, const struct hub_db_registration *r,
                                  const char *product_id, const char *status);
/* Appends audit rows for handshake refusals (actor "mqtt", action "mqtt.handshake_refused");
 * each of the n details is JSON text, targets/sources may hold "". One transaction. */
int hub_db_registrations_audit_refusals(PGconn *c, const char *const *targets,
                                        const char *const *sources, const char *const *details,
                                        size_t n);

#endif
