/* Firmware versions as the firmware contract defines them: dotted numeric "MAJOR.MINOR.PATCH",
 * 1 to 4 parts of 0..2^31-1, compared part by part numerically (missing parts are 0). */
#ifndef HUB_UTIL_VERSION_H
#define HUB_UTIL_VERSION_H

#define HUB_VERSION_PARTS 4
#define HUB_VERSION_MAX 48 /* longest accepted version text, NUL included */

struct hub_version {
    long parts[HUB_VERSION_PARTS];
    int n; /* parts written in the text (1..4) */
};

/* Parses s strictly (digits and dots only, no empty part, no leading zero except "0", no
 * sign or space). Returns 0 or HUB_EINVAL. */
int hub_version_parse(const char *s, struct hub_version *out);
/* <0, 0, >0 as a is older than, equal to or newer than b (missing parts count as 0). */
int hub_version_cmp(const struct hub_version *a, const struct hub_version *b);
/* Writes the parts as a PostgreSQL integer[] literal ("{1,4,2,0}", always 4 parts so that
 * arrays compare like versions) into out (cap >= 64). */
void hub_version_pg_array(const struct hub_version *v, char *out, unsigned long cap);

#endif
