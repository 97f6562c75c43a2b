/* iothubctl rollouts create|list|show|pause|resume|cancel and devices tag (issue 16): one
 * REST call each (docs/api.md "Rollouts"), shown as fields and tables, or as received with
 * --json. */
#ifndef HUB_CLI_ROLLOUTS_H
#define HUB_CLI_ROLLOUTS_H

#include "cli/commands.h"

int hub_cmd_devices_tag(struct hub_ctl *ctl);
int hub_cmd_rollouts_create(struct hub_ctl *ctl);
int hub_cmd_rollouts_list(struct hub_ctl *ctl);
int hub_cmd_rollouts_show(struct hub_ctl *ctl);
int hub_cmd_rollouts_pause(struct hub_ctl *ctl);
int hub_cmd_rollouts_resume(struct hub_ctl *ctl);
int hub_cmd_rollouts_cancel(struct hub_ctl *ctl);

#endif
