/* iothubctl firmware-signers … and firmware … (docs/cli.md, docs/firmware.md). Uploads stream
 * the image from its file through libcurl's read callback: it is never read whole. */
#ifndef HUB_CLI_FIRMWARE_H
#define HUB_CLI_FIRMWARE_H

#include "cli/commands.h"

int hub_cmd_fw_signers_add(struct hub_ctl *ctl);
int hub_cmd_fw_signers_list(struct hub_ctl *ctl);
int hub_cmd_fw_signers_show(struct hub_ctl *ctl);
int hub_cmd_fw_signers_disable(struct hub_ctl *ctl);
int hub_cmd_fw_signers_enable(struct hub_ctl *ctl);
int hub_cmd_firmware_upload(struct hub_ctl *ctl);
int hub_cmd_firmware_list(struct hub_ctl *ctl);
int hub_cmd_firmware_show(struct hub_ctl *ctl);
int hub_cmd_firmware_delete(struct hub_ctl *ctl);

#endif
