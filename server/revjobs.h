/* The bulk revocation engine of one iothubd node (POST /v1/revocations, docs/api.md): a
 * thread of its own with its own PostgreSQL connection, so neither the REST API nor the MQTT
 * loop waits for it. Every second it claims a queued job (or a running one whose node stopped
 * beating for HUB_REVJOBS_STALE_S; FOR UPDATE SKIP LOCKED: one node per job), copies the
 * certificates it selects, then revokes them HUB_REVJOBS_CHUNK per transaction: each chunk
 * commits the statuses, the job's progress and one NOTIFY iothub_revocation per certificate
 * (and 'device:<id>' per device it revokes), so every node's revocation feed closes the
 * affected live sessions as the job advances, and the CRL publisher (server/crl_publisher.c)
 * issues the delta CRLs within a second of each chunk. */
#ifndef HUB_SERVER_REVJOBS_H
#define HUB_SERVER_REVJOBS_H

#define HUB_REVJOBS_CHUNK 1000  /* certificates per transaction */
#define HUB_REVJOBS_STALE_S 60  /* a running job without a heartbeat this long is resumed */

struct hub_revjobs;

/* Starts the engine thread on db_url. NULL on failure (logged). */
struct hub_revjobs *hub_revjobs_start(const char *db_url);
/* Stops the thread (it finishes its current chunk; the job stays running and is resumed by
 * the next node or start) and frees e. NULL is ignored. */
void hub_revjobs_stop(struct hub_revjobs *e);

#endif
