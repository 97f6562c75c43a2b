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
/* Loads the newest complete CRL of a CA (der may be NULL to skip it; else appended to).
 * HUB_ENOTFOUND if none. */
int hub_db_crls_latest(PGconn *c, int ca_id, hub_buf_t *der, uint64_t *number, time_t *this_update,
                       time_t *next_update);

/* Key class of the per-CA advisory lock held by whoever publishes that CA's CRLs (the CA's
 * cas.id is the second key). */
#define HUB_DB_CRL_LOCK_CLASS "1768121170"

/* A row of crls as the publisher writes and reads it (the DER apart). */
struct hub_db_crl {
    uint64_t number;                /* cRLNumber */
    time_t this_update, next_update;
    size_t entries;
    uint64_t base_number;           /* 0: a complete CRL; else the base this delta completes */
    time_t watermark;               /* complete CRLs: see hub_db_crls_watermark; 0: unknown */
    long long age_ms;               /* read only: ms since it was recorded (database clock) */
};
/* Records a complete or delta CRL. */
int hub_db_crls_record(PGconn *c, int ca_id, const struct hub_db_crl *row, const hub_buf_t *der);
/* The newest complete (delta = 0) or delta (delta = 1) CRL of a CA; der appended to unless
 * NULL. HUB_ENOTFOUND if none. */
int hub_db_crls_newest(PGconn *c, int ca_id, int delta, hub_buf_t *der, struct hub_db_crl *out);
/* Tries the CA's publisher lock for the rest of the transaction: *got = 1 when taken, 0 when
 * another session (another node) holds it. */
int hub_db_crls_try_lock(PGconn *c, int ca_id, int *got);
/* A time before which every revocation has committed (seconds, rounded down): the oldest
 * start of a transaction open in this database, or now. Call it before listing the
 * revocations a complete CRL will hold. */
int hub_db_crls_watermark(PGconn *c, time_t *out);
/* Deletes at most limit CRLs of a CA, keeping the CRLs numbered base and delta and the
 * history newest others; *deleted gets the count (limit: call again). */
int hub_db_crls_prune(PGconn *c, int ca_id, uint64_t base, uint64_t delta, int history,
                      int limit, int *deleted);

#endif
