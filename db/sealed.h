/* Every sealed private key at rest, of CAs (db/cas), server certificates
 * (db/certificates) and pending keys of an external root (db/pending), as a seal-key rotation (iothubd rekey) lists and rewrites them in one
 * transaction. No SQL of its own: it composes the two table modules. */
#ifndef HUB_DB_SEALED_H
#define HUB_DB_SEALED_H

#include <stddef.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "util/buf.h"

/* Loads and row-locks every sealed key, CAs first (call inside a transaction). *list is
 * malloc'ed with its blobs: release with hub_db_sealed_free. */
int hub_db_sealed_list(PGconn *c, struct hub_db_sealed **list, size_t *n);
/* Frees a list from hub_db_sealed_list (NULL allowed). */
void hub_db_sealed_free(struct hub_db_sealed *list, size_t n);
/* Replaces the blob of one sealed key from hub_db_sealed_list, in its own table. */
int hub_db_sealed_update(PGconn *c, const struct hub_db_sealed *key, const hub_buf_t *blob);

#endif
