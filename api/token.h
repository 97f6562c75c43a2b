/* Admin bearer tokens: "iothub_<16 hex id>_<43 base64url secret>". The id is public and
 * indexes the row; the 256-bit secret is stored as SHA-256 and compared in constant time. */
#ifndef HUB_API_TOKEN_H
#define HUB_API_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define HUB_TOKEN_ID_LEN 16
#define HUB_TOKEN_LEN (7 + HUB_TOKEN_ID_LEN + 1 + 43) /* without the NUL */

/* Checks a role name: admin, operator, provisioner, auditor. Returns 1 if valid. */
int hub_token_role_valid(const char *role);
/* Creates a token named name with role and records it (caller's transaction). Writes the
 * token text, shown once, into out (size > HUB_TOKEN_LEN). Returns 0 or a HUB_E* code. */
int hub_token_create(PGconn *c, const char *name, const char *role, char *out, size_t outlen);
/* Splits a token into its id and the SHA-256 of its secret. Returns 0 or HUB_EINVAL. */
int hub_token_parse(const char *token, char id[HUB_TOKEN_ID_LEN + 1], uint8_t hash[32]);

#endif
