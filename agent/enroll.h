/* Enrollment (`iothub-device enroll`) and certificate renewal: the key pair is generated on
 * the device, only a CSR leaves it. */
#ifndef HUB_AGENT_ENROLL_H
#define HUB_AGENT_ENROLL_H

#include "agent/pin.h"
#include "agent/state.h"

/* The enroll command. Returns the process exit status (0, 1 failure, 2 usage). */
int hub_enroll_main(int argc, char **argv);
/* Renews st's certificate through POST /v1/devices/{id}/renew, authenticated by the current
 * certificate: a new key of the same type, a CSR, then key.pem and cert.pem replaced.
 * Returns 0, HUB_EIO (no answer: retry later) or HUB_EINVAL (refused; logged). */
int hub_enroll_renew(const struct hub_state *st, struct hub_pin *pin);

#endif
