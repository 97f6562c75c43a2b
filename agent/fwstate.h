/* The firmware state of the device, kept in STATE/firmware (`key = value` lines, replaced
 * atomically): the installed version and active slot, the update in progress (its notice is
 * in STATE/firmware-notice.json, its bytes in STATE/firmware.partial) and the last finished
 * one, whose final state is re-reported until it has been published. */
#ifndef HUB_AGENT_FWSTATE_H
#define HUB_AGENT_FWSTATE_H

#include "agent/state.h"

/* Phases of the update in progress. */
enum hub_fw_phase {
    HUB_FW_IDLE,
    HUB_FW_DOWNLOADING, /* notice accepted; downloading or verifying */
    HUB_FW_INSTALLING,  /* the install hook writes the inactive slot */
    HUB_FW_SWITCHED,    /* booted (or about to boot) the new slot: health decides */
};

struct hub_fw_state {
    char installed[32]; /* running version ("" until the first load sets the factory one) */
    char slot;          /* active slot: 'a' or 'b' */
    enum hub_fw_phase phase;
    char rollout[40], firmware_id[40], version[32]; /* the update in progress */
    char target;                                    /* slot it goes to */
    long long switched_at;                          /* wall-clock seconds of the switch */
    char last_rollout[40], last_state[16], last_version[32], last_reason[256];
    int last_reported; /* the final state was published */
};

/* Reads STATE/firmware; a missing file gives slot a, installed = factory. Returns 0 or
 * HUB_EINVAL (logged). */
int hub_fw_state_load(const struct hub_state *st, const char *factory, struct hub_fw_state *fw);
/* Writes STATE/firmware atomically (write, fsync, rename, fsync of the directory). */
int hub_fw_state_save(const struct hub_state *st, const struct hub_fw_state *fw);
/* The slot that is not active. */
char hub_fw_other_slot(char slot);

#endif
