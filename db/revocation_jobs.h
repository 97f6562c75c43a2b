/* Rows of revocation_jobs and revocation_job_items (migration 023): bulk revocation jobs,
 * created by POST /v1/revocations and run by a node's engine (server/revjobs.c). Blocking
 * calls on a caller-owned connection. */
#ifndef HUB_DB_REVOCATION_JOBS_H
#define HUB_DB_REVOCATION_JOBS_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#define HUB_REVJOB_ID 37 /* a job id: a UUID and its NUL */

/* What a job selects (the resolved form of its selector). */
struct hub_db_revjob_sel {
    const char *list_json;     /* device_ids or serials: a JSON array of strings, or NULL */
    int by_serial;             /* list_json holds serials (else device ids) */
    const char *product_id;    /* products.id, or NULL */
    const char *ca_id;         /* cas.id, or NULL */
    const char *issued_after;  /* RFC 3339, or NULL (product or CA only) */
    const char *issued_before; /* RFC 3339, or NULL */
};

/* Entries of list_json (device ids, or serials when by_serial) that name no device, or no
 * device or service certificate: a JSON array (the caller json_decref()s it), empty when
 * every entry exists. */
int hub_db_revjobs_missing(PGconn *c, const char *list_json, int by_serial, json_t **out);
/* The id of a product by its key; HUB_ENOTFOUND. */
int hub_db_revjobs_product(PGconn *c, const char *product_key, char id[24]);
/* The id of an issuing CA (active or retired) by its certificate serial (upper-case hex), or
 * the active one for "issuing"; HUB_ENOTFOUND. */
int hub_db_revjobs_ca(PGconn *c, const char *serial, char id[16]);
/* Inserts a queued job: selector_json as accepted (shown by GET), sel resolved, reason
 * (RFC 5280 code), created_by (the token's name). Writes the new id. */
int hub_db_revjobs_create(PGconn *c, const char *selector_json,
                          const struct hub_db_revjob_sel *sel, int reason,
                          const char *created_by, char id[HUB_REVJOB_ID]);
/* The job as the API shows it (caller json_decref()s); HUB_ENOTFOUND. */
int hub_db_revjobs_get(PGconn *c, const char *id, json_t **out);

/* A job claimed by an engine. */
struct hub_db_revjob {
    char id[HUB_REVJOB_ID];
    int reason;
    int selected;     /* its items are already copied (a job resumed after a node died) */
    int mark_devices; /* a selection of devices or a product: the devices become revoked */
};
/* Claims the oldest queued job, or a running one whose heartbeat is older than stale_s
 * (its node died), and marks it running. HUB_ENOTFOUND when there is none. Autocommit. */
int hub_db_revjobs_claim(PGconn *c, int stale_s, struct hub_db_revjob *job);
/* Copies the valid certificates the job selects into its items and sets total, in one
 * statement. *total gets their number. */
int hub_db_revjobs_select(PGconn *c, const char *id, int *total);
/* Revokes up to limit items of the job in one statement (autocommit: one transaction): the
 * certificates still valid become revoked (job's reason, revoked_at now()), each with NOTIFY
 * iothub_revocation '<serial>'; with mark_devices their devices become revoked with NOTIFY
 * 'device:<id>'; done/skipped and the heartbeat advance. *taken gets the items consumed (0:
 * the job is finished), *revoked the certificates revoked. */
int hub_db_revjobs_chunk(PGconn *c, const struct hub_db_revjob *job, int limit, int *taken,
                         int *revoked);
/* Ends the job: state "done", or "failed" with error (its remaining items counted failed and
 * dropped), with the audit row revocation.complete / revocation.fail. Autocommit. */
int hub_db_revjobs_finish(PGconn *c, const char *id, const char *error);

#endif
