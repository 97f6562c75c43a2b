/* `iothub-device run`: the MQTT side of the agent (libmosquitto over mutual TLS). */
#ifndef HUB_AGENT_RUN_H
#define HUB_AGENT_RUN_H

/* The run command. Returns the process exit status (0, 1 failure, 2 usage). */
int hub_run_main(int argc, char **argv);

#endif
