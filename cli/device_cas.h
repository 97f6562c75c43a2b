/* iothubctl device-cas ... and devices approve: factory device CAs (issue 15, docs/cli.md). */
#ifndef HUB_CLI_DEVICE_CAS_H
#define HUB_CLI_DEVICE_CAS_H

#include "cli/commands.h"

/* device-cas code: a registration code (CN of the verification certificate). */
int hub_cmd_device_cas_code(struct hub_ctl *ctl);
/* device-cas register --product KEY CA_PEM VERIFICATION_PEM [auto|approve [CRL_URL]]. */
int hub_cmd_device_cas_register(struct hub_ctl *ctl);
int hub_cmd_device_cas_list(struct hub_ctl *ctl);
/* device-cas show ID [--pem]: --pem prints only the CA certificate. */
int hub_cmd_device_cas_show(struct hub_ctl *ctl);
int hub_cmd_device_cas_enable(struct hub_ctl *ctl);
int hub_cmd_device_cas_disable(struct hub_ctl *ctl);
/* device-cas registration ID auto|approve: the CA's policy for devices not seen yet. */
int hub_cmd_device_cas_registration(struct hub_ctl *ctl);
/* device-cas crl upload ID FILE (DER or PEM). */
int hub_cmd_device_cas_crl(struct hub_ctl *ctl);
/* devices approve ID: a pending device becomes active. */
int hub_cmd_devices_approve(struct hub_ctl *ctl);

#endif
