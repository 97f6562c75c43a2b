/* What the OCSP responder reads and records: a certificate's status by serial, and the
 * delegated OCSP signing certificates it issued (table ocsp_signers, migration 022).
 * Blocking calls on a caller-owned connection, from an API or worker thread. */
#ifndef HUB_DB_OCSP_H
#define HUB_DB_OCSP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

/* A certificate's revocation state as the responder answers it. */
struct hub_db_ocsp_status {
    int ca_id;   /* the CA that issued it */
    int revoked; /* 1: revoked_at and reason are set */
    time_t revoked_at;
    int reason; /* RFC 5280 CRLReason */
};

/* Looks a certificate up by serial (upper-case hex). Returns 0, HUB_ENOTFOUND, or
 * HUB_EDB / HUB_EDBDOWN. */
int hub_db_ocsp_status(PGconn *c, const char *serial, struct hub_db_ocsp_status *out);
/* Records a delegated OCSP signing certificate issued by CA ca_id. */
int hub_db_ocsp_signer_insert(PGconn *c, const char *serial, int ca_id, const uint8_t *der,
                              size_t der_len, time_t not_before, time_t not_after);

#endif
