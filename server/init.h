/* `iothubd init`: migrations, CAs, server certificate, first CRLs, bootstrap admin token. */
#ifndef HUB_SERVER_INIT_H
#define HUB_SERVER_INIT_H

#include "ca/authority.h"
#include "server/config.h"

/* Brings the database to a ready state, creating only what is absent, and writes a new
 * bootstrap admin token to token_path (mode 0600) if no admin token exists. Prints what it
 * did on stdout. Returns 0 or a HUB_E* code (already logged). */
int hub_init_run(const struct hub_config *cfg, const char *token_path);
/* `iothubd rekey`: re-encrypts every sealed key from the configured master passphrase to the
 * one in new_key_file, in one transaction (all or nothing). Prints what it did. Returns 0 or
 * a HUB_E* code (already logged). */
int hub_init_rekey(const struct hub_config *cfg, const char *new_key_file);
/* `iothubd ca rotate`: retires the issuing CA, creates its successor under the root and a
 * server certificate from it, in one transaction, then publishes the new CA's first CRL.
 * Returns 0 or a HUB_E* code (already logged). */
int hub_init_rotate_issuing(const struct hub_config *cfg);
/* The advisory lock key that serialises init, rekey, rotation and import. */
#define HUB_INIT_LOCK 7234002
/* Creates the bootstrap admin token when no admin token exists, in the caller's
 * transaction; *tmp_written is set when the token went to the file tmp (rename it to its
 * place after the commit). */
int hub_init_admin_token(PGconn *c, const char *tmp, int *tmp_written);
/* Sets the CRL distribution point and validity of a loaded authority from cfg. */
void hub_init_authority_settings(const struct hub_config *cfg, struct hub_authority *a);

#endif
