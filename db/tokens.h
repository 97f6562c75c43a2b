/* Rows of api_tokens: the admin API's bearer tokens (only a SHA-256 of each secret is
 * stored). Blocking calls on a caller-owned connection, from a worker thread or a command. */
#ifndef HUB_DB_TOKENS_H
#define HUB_DB_TOKENS_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

/* Looks up a token that is not revoked by its public id and stamps its last use: *role and
 * *name copied, hash[32] filled. HUB_ENOTFOUND for unknown or revoked tokens. */
int hub_db_tokens_lookup(PGconn *c, const char *token_id, char role[16], char name[128],
                         uint8_t hash[32]);
/* Lists the API tokens (never their secrets), oldest first, as a JSON array (the caller
 * json_decref()s it). */
int hub_db_tokens_list(PGconn *c, json_t **out);
/* Records a token (secret_hash is the 32-byte SHA-256 of its secret). HUB_EEXIST when the
 * name or token id is taken. */
int hub_db_tokens_insert(PGconn *c, const char *token_id, const char *name, const char *role,
                         const uint8_t secret_hash[32]);
/* Counts tokens of a role that are not revoked. */
int hub_db_tokens_count(PGconn *c, const char *role, int *count);
/* Revokes the token token_id (call inside a transaction). The active admin tokens are
 * row-locked first, so two revocations cannot both remove the last one. Copies its name
 * (size 101) and role (size 16). Returns 0, HUB_ENOTFOUND, HUB_EEXIST (already revoked),
 * HUB_ERANGE (it is the last active admin token) or HUB_EDB. */
int hub_db_tokens_revoke(PGconn *c, const char *token_id, char *name, char *role);

#endif
