/* iothubctl revoke: a bulk revocation job (POST /v1/revocations) and its progress. */
#ifndef HUB_CLI_REVOKE_H
#define HUB_CLI_REVOKE_H

#include "cli/commands.h"

/* revoke (--product KEY | --ca SERIAL) [--issued-between T1 T2] | --devices ID,ID... |
 * --devices-file F | --serials-file F, [--reason R] [--no-wait]: creates the job (a list of
 * more than 1,000 entries becomes several jobs), then polls each until it ends, printing
 * its progress. Exit 0 when every job is done, 1 when one failed or was refused. */
int hub_cmd_revoke(struct hub_ctl *ctl);

#endif
