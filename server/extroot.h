/* A root the hub never holds (issue 15): `iothubd init --external-root` and `iothubd ca
 * rotate --external` create the issuing CA and server keys, keep them sealed as pending
 * keys and write their CSRs with the openssl commands the maker runs with its root;
 * `iothubd ca import` checks what the maker signed (ca/import) and installs it, and later
 * imports the root's CRLs. */
#ifndef HUB_SERVER_EXTROOT_H
#define HUB_SERVER_EXTROOT_H

#include <libpq-fe.h>

#include "server/config.h"

/* What `iothubd ca import` was given (NULL: not given). */
struct hub_extroot_files {
    const char *root, *issuing, *server, *crl;
};

/* `iothubd init --external-root [--csr-dir DIR]`: migrations, pending keys and CSRs in
 * csr_dir, the bootstrap admin token. Idempotent: a second run rewrites the same CSRs.
 * Prints what to do next. Returns 0 or a HUB_E* code (already logged). */
int hub_extroot_init(const struct hub_config *cfg, const char *token_path, const char *csr_dir);
/* `iothubd ca rotate --external [--csr-dir DIR]`: new pending keys and CSRs for the
 * successor of the issuing CA under an external root; the import retires the old one. */
int hub_extroot_rotate(const struct hub_config *cfg, const char *csr_dir);
/* `iothubd ca import`: checks and installs the files in one transaction (all or nothing).
 * Returns 0, HUB_EINVAL (refused: the reason printed on stderr) or another HUB_E* code. */
int hub_extroot_import(const struct hub_config *cfg, const struct hub_extroot_files *f);
#endif
