/* Rows of rollouts and rollout_devices: creation with its device selection (one INSERT ...
 * SELECT however large the target), the REST API's views, the engine's steps (lock a
 * running rollout, settle and advance waves, halt, finish) and the devices' state reports.
 * Blocking calls on a caller-owned connection, from an API thread or the engine's thread.
 * JSON results are built by PostgreSQL; the caller json_decref()s them. */
#ifndef HUB_DB_ROLLOUTS_H
#define HUB_DB_ROLLOUTS_H

#include <jansson.h>
#include <libpq-fe.h>

/* How a rollout picks its devices (always within the image's product, never revoked). */
enum hub_rollout_target {
    HUB_TARGET_PRODUCT, /* every device of the product; value NULL */
    HUB_TARGET_DEVICES, /* value: JSON array of device ids */
    HUB_TARGET_TAG      /* value: the tag */
};

/* The image's product and status ("uploading", "ready"). HUB_ENOTFOUND. */
int hub_db_rollouts_firmware(PGconn *c, const char *firmware_id, long long *product_id,
                             char status[16]);
/* How many devices the target selects into *n. */
int hub_db_rollouts_target_count(PGconn *c, long long product_id, enum hub_rollout_target kind,
                                 const char *value, long long *n);
/* A device of the target already in an active (running/paused) rollout: its id and that
 * rollout's. 0 when found, HUB_ENOTFOUND when none is. */
int hub_db_rollouts_target_busy(PGconn *c, long long product_id, enum hub_rollout_target kind,
                                const char *value, char device_id[37], char rollout_id[37]);
/* Inserts a running rollout; id filled. failure_count / failure_percent: 0 = not set. */
int hub_db_rollouts_insert(PGconn *c, const char *firmware_id, const char *target_json,
                           const char *waves_json, int wave_count, int wave_pause_s,
                           int wave_timeout_s, int failure_count, int failure_percent,
                           const char *created_by, char id[37]);
/* Creates the rollout's device rows in one statement: the target's devices in id order, the
 * first bounds[0] in wave 0, up to bounds[1] in wave 1...; bounds_text is a PostgreSQL int
 * array ("{10,25}") of the cumulative ends of every wave but the last. *n: rows made.
 * HUB_EEXIST when a device joined another active rollout meanwhile. */
int hub_db_rollouts_materialize(PGconn *c, const char *id, long long product_id,
                                enum hub_rollout_target kind, const char *value,
                                const char *bounds_text, long long *n);

/* GET /v1/rollouts: newest first, created before the rollout `before` (NULL: from the
 * newest), at most limit. */
int hub_db_rollouts_list(PGconn *c, const char *before, int limit, json_t **out);
/* One rollout with its device counts per state and per wave. HUB_ENOTFOUND. */
int hub_db_rollouts_get(PGconn *c, const char *id, json_t **out);
/* A page of the rollout's devices ordered by id after `after` (NULL: first), of one state
 * (NULL: any). */
int hub_db_rollouts_devices(PGconn *c, const char *id, const char *after, const char *state,
                            int limit, json_t **out);
/* Locks the rollout row for the transaction and copies its state. HUB_ENOTFOUND. */
int hub_db_rollouts_lock(PGconn *c, const char *id, char state[16]);
/* Sets state (pause, resume: generation + 1 so nodes re-send notices). */
int hub_db_rollouts_set_state(PGconn *c, const char *id, const char *state);
/* Ends the rollout with state (halted, cancelled, completed) and reason (may be NULL): its
 * devices leave it (rows inactive); a cancellation marks pending/notified rows skipped. */
int hub_db_rollouts_finish(PGconn *c, const char *id, const char *state, const char *reason);

/* Engine. Running and paused rollouts: [{rollout_id, state, current_wave, generation}]. */
int hub_db_rollouts_active(PGconn *c, json_t **out);
/* Locks a running rollout for this node's engine (FOR UPDATE SKIP LOCKED, inside a
 * transaction) and reports where it stands: {current_wave, wave_count, failure_count,
 * failure_percent, failures, started, open, settled, timed_out, pause_over}. HUB_ENOTFOUND
 * when it is not running or another node holds it. */
int hub_db_rollouts_progress(PGconn *c, const char *id, json_t **out);
/* The current wave has settled (now). */
int hub_db_rollouts_settle(PGconn *c, const char *id);
/* Starts the next wave. */
int hub_db_rollouts_next_wave(PGconn *c, const char *id);
/* The notice fields of the rollout's image (contract: rollout_id, firmware_id, version,
 * size, sha256, signature, signer, hardware, min_version; no url). HUB_ENOTFOUND. */
int hub_db_rollouts_notice(PGconn *c, const char *id, json_t **out);
/* Device ids of the rollout's rows in waves from_wave..to_wave that wait for a notice
 * (pending, and notified too when with_notified), after `after` (NULL: first), at most
 * limit, ordered: a JSON array. */
int hub_db_rollouts_to_notify(PGconn *c, const char *id, int from_wave, int to_wave,
                              int with_notified, const char *after, int limit, json_t **out);
/* Rows of running rollouts, in started waves, pending or notified, of the devices in
 * ids_json (JSON array): [{rollout_id, device_id}]. */
int hub_db_rollouts_for_devices(PGconn *c, const char *ids_json, json_t **out);
/* Marks pending rows notified: pairs_json is [{rollout_id, device_id}]. */
int hub_db_rollouts_mark_notified(PGconn *c, const char *pairs_json);
/* Applies device reports [{rollout_id, device_id, state, reason, progress}] (one per
 * row): a final state (installed, failed, rolled_back, skipped) is never changed. *n: rows
 * changed. */
int hub_db_rollouts_report(PGconn *c, const char *reports_json, long long *n);
/* Device counts per state of at most limit rollouts (running and paused first, then the
 * newest): [{rollout_id, state, counts: {state: n}}]. */
int hub_db_rollouts_metrics(PGconn *c, int limit, json_t **out);

#endif
