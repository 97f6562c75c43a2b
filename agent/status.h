/* `iothub-device status`: what the state directory holds, read locally (no network). */
#ifndef HUB_AGENT_STATUS_H
#define HUB_AGENT_STATUS_H

/* The status command. Returns the process exit status. */
int hub_status_main(int argc, char **argv);

#endif
