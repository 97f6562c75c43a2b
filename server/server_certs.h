/* The server certificates the TLS listeners present side by side, one per key type of
 * server_key_types (an EC one for modern devices, an RSA one for legacy RSA-only suites):
 * finding them by key type among the rows of db/server_certs, and unsealing them for
 * `serve`. Blocking calls on a caller-owned connection, never from an event loop. */
#ifndef HUB_SERVER_SERVER_CERTS_H
#define HUB_SERVER_SERVER_CERTS_H

#include <time.h>

#include <libpq-fe.h>
#include <mbedtls/pk.h>

#include "ca/authority.h"
#include "ca/key.h"
#include "server/config.h"
#include "util/buf.h"

/* One server identity as the listeners take it: the certificate followed by the issuing CA,
 * and the private key, both PEM and NUL-terminated. Owned by the holder; free with
 * hub_server_certs_free (wipes the key). */
struct hub_server_identity {
    enum hub_key_type type;
    char serial[HUB_SERIAL_HEX];
    hub_buf_t cert_pem;
    hub_buf_t key_pem;
};

/* The key type of a public or private key; HUB_EKEYPOLICY for any other curve or size. */
int hub_server_certs_key_type(const mbedtls_pk_context *pk, enum hub_key_type *t);
/* 1 when a valid server certificate of key type t expires after min_not_after, 0 when none
 * does, or a HUB_E* code. */
int hub_server_certs_have(PGconn *c, enum hub_key_type t, time_t min_not_after);
/* HUB_ENOTFOUND (logged, naming the type: run `iothubd init`) when one of the n types has
 * no valid server certificate; 0 when all have one. Nothing is unsealed: `serve` calls it
 * before the slow unsealing. */
int hub_server_certs_check_present(PGconn *c, const enum hub_key_type *types, int n);
/* Loads the newest valid server certificate of each of the n types into ids[0..n-1] (in
 * that order) with its key unsealed. HUB_ENOTFOUND (logged, naming the type: run
 * `iothubd init`) when one type has none. Free ids with hub_server_certs_free either way. */
int hub_server_certs_load(struct hub_authority *a, PGconn *c, const char *pass,
                          const enum hub_key_type *types, int n, struct hub_server_identity *ids);
void hub_server_certs_free(struct hub_server_identity *ids, int n);
/* Refuses (HUB_ECONFIG, logged) a tls_ciphers list that no key type of server_key_types can
 * serve, before anything is unsealed (net/tls_ctx checks the loaded keys again). */
int hub_server_certs_check_ciphers(const struct hub_config *cfg);

#endif
