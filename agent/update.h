/* The firmware update client of the agent (firmware-contract.md): a notice on
 * devices/<id>/firmware/notice is checked (hardware, min_version, anti-rollback, trusted
 * signer), the image downloaded with resume and verified (size, SHA-256, signature), handed
 * to the install hook for the inactive slot, then the device switches to it (reboot hook, or
 * the agent re-executes itself) and reports installed only once the new version checks in
 * healthy; otherwise it rolls back to the previous slot. Progress goes to
 * devices/<id>/firmware/state. State survives restarts in STATE/firmware (fwstate.h).
 *
 * Runs inside the agent's single loop: every call below may block for a download or a hook,
 * keeping the MQTT connection alive through io->service. One update at a time. */
#ifndef HUB_AGENT_UPDATE_H
#define HUB_AGENT_UPDATE_H

#include <stddef.h>

#include "agent/conf.h"
#include "agent/pin.h"
#include "agent/state.h"

/* What the update client needs from the run loop. */
struct hub_update_io {
    void *arg;
    /* Publishes text at QoS 1 on topic; 0, or -1 when not connected (logged). */
    int (*publish)(void *arg, const char *topic, const char *text);
    /* Services the MQTT connection without waiting (reads, writes, keepalive). */
    void (*service)(void *arg);
    /* Disconnects cleanly before the agent re-executes itself or the device reboots. */
    void (*shutdown)(void *arg);
};

struct hub_update;

/* Loads the firmware state; st, conf, pin, io and argv (the run command's, argv[0] = "run")
 * are borrowed for the life of the client. Returns NULL on failure (logged). */
struct hub_update *hub_update_new(const struct hub_state *st, const struct hub_agent_conf *conf,
                                  struct hub_pin *pin, const struct hub_update_io *io, int argc,
                                  char **argv);
void hub_update_free(struct hub_update *u);
/* The notice topic to subscribe to (QoS 1). */
const char *hub_update_topic(const struct hub_update *u);
/* After each CONNACK: refreshes the signers, settles a pending switch (health check →
 * installed or rolled_back), publishes "running" and any unreported final state. */
void hub_update_connected(struct hub_update *u);
/* A message on the notice topic. */
void hub_update_notice(struct hub_update *u, const void *payload, size_t len);
/* Does the due work (download attempts, the health deadline); returns the milliseconds
 * until it wants to be called again (at most 1000). */
long long hub_update_tick(struct hub_update *u, int connected);
/* 1 once the reboot hook ran: the agent should exit and let the device restart it. */
int hub_update_exit_requested(const struct hub_update *u);

/* Fetches the trusted signer certificates into STATE/signers.pem (enrollment and each
 * connection). Returns 0 or a HUB_E* code (logged; the stored bundle is kept). */
int hub_update_fetch_signers(const struct hub_state *st, const struct hub_agent_conf *conf,
                             struct hub_pin *pin);

#endif
