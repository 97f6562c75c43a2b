/* PATCH /v1/devices/{id} {"tags": [...]}: a device's tags, which rollouts target. */
#ifndef HUB_API_TAGS_H
#define HUB_API_TAGS_H

#include "api/request.h"

#define HUB_TAG_MAX_LEN 64 /* characters of one tag */
#define HUB_TAGS_MAX 32    /* tags of one device */

/* 1 when s is a tag: 1 to HUB_TAG_MAX_LEN letters, digits and -_.: */
int hub_api_tags_valid(const char *s);
/* PATCH /v1/devices/{id} {"tags": [..]}: replaces the device's tags (audited with the
 * previous ones); 200 with the device; 400 for a bad list, 404 unknown device. */
void hub_api_tags_update(struct hub_req *r);

#endif
