/* Rows of crls (every CRL a CA published) and the cRLNumber counter of each CA. Blocking
 * calls on a caller-owned connection, from a command or a worker thread. */
#ifndef HUB_DB_CRLS_H
#define HUB_DB_CRLS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

#include "util/buf.h"

/* Takes the next cRLNumber of a CA (its cas row is locked until the transaction ends). */
int hub_db_crls_next_number(PGconn *c, int ca_id, uint64_t *number);
/* Records a published CRL. */
int hub_db_crls_insert(PGconn *c, int ca_id, uint64_t number, time_t this_update,
                       time_t next_update, size_t entries, const hub_buf_t *der);
/* Loads the newest CRL of a CA (der may be NULL to skip it; else appended to). HUB_ENOTFOUND
 * if none. */
int hub_db_crls_latest(PGconn *c, int ca_id, hub_buf_t *der, uint64_t *number, time_t *this_update,
                       time_t *next_update);

#endif
