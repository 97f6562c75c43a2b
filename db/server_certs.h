/* Rows of the server certificates (certificates.kind = 'server'): the TLS listeners present
 * one per configured key type (server_key_types). Blocking calls on a caller-owned
 * connection, from a command or from `serve` before it listens. */
#ifndef HUB_DB_SERVER_CERTS_H
#define HUB_DB_SERVER_CERTS_H

#include <stddef.h>
#include <time.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "util/buf.h"

/* One valid server certificate with its sealed private key. */
struct hub_db_server_cert {
    char serial[HUB_SERIAL_HEX];
    hub_buf_t der;
    hub_buf_t key_sealed;
};

/* Lists the valid server certificates that expire after min_not_after, newest not_after
 * first (a handful of rows: one per key type and rotation). *out is malloc'ed; free it with
 * hub_db_server_certs_free. Returns 0 (maybe with *n = 0) or a HUB_E* code. */
int hub_db_server_certs_list(PGconn *c, time_t min_not_after, struct hub_db_server_cert **out,
                             size_t *n);
void hub_db_server_certs_free(struct hub_db_server_cert *rows, size_t n);

#endif
