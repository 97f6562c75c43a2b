/* Firmware versions: dotted numeric "MAJOR.MINOR.PATCH", 1 to 4 parts of 0..2^31-1, compared
 * part by part, missing parts 0 (firmware-contract.md). */
#ifndef HUB_AGENT_VERSION_H
#define HUB_AGENT_VERSION_H

#include <stdint.h>

struct hub_version {
    uint32_t part[4];
};

/* Parses s into v (may be NULL: validation only). Returns 0 or HUB_EINVAL. */
int hub_version_parse(const char *s, struct hub_version *v);
/* <0, 0 or >0 as a is older than, equal to or newer than b; both must parse (an invalid
 * one compares as 0.0.0). */
int hub_version_cmp(const char *a, const char *b);

#endif
