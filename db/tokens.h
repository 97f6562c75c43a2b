/* Admin API tokens and the audit log. */
#ifndef HUB_DB_TOKENS_H
#define HUB_DB_TOKENS_H

#include <stdint.h>

#include <libpq-fe.h>

/* Records a token (secret_hash is the 32-byte SHA-256 of its secret). HUB_EEXIST when the
 * name or token id is taken. */
int hub_db_token_insert(PGconn *c, const char *token_id, const char *name, const char *role,
                        const uint8_t secret_hash[32]);
/* Counts tokens of a role that are not revoked. */
int hub_db_token_count(PGconn *c, const char *role, int *count);
/* Revokes the token token_id (call inside a transaction). The active admin tokens are
 * row-locked first, so two revocations cannot both remove the last one. Copies its name
 * (size 101) and role (size 16). Returns 0, HUB_ENOTFOUND, HUB_EEXIST (already revoked),
 * HUB_ERANGE (it is the last active admin token) or HUB_EDB. */
int hub_db_token_revoke(PGconn *c, const char *token_id, char *name, char *role);
/* Appends an audit row; details is JSON text or NULL. Call inside the transaction of the
 * change it records. */
int hub_db_audit(PGconn *c, const char *actor, const char *role, const char *action,
                 const char *target, const char *source, const char *result,
                 const char *details);

#endif
