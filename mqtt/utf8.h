/* MQTT UTF-8 checks, shared by the codec (client ids, user names) and topic validation. */
#ifndef HUB_MQTT_UTF8_H
#define HUB_MQTT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Checks that p[0..len) is a well-formed MQTT UTF-8 string: valid UTF-8, no U+0000, no
 * surrogates, no overlongs, nothing above U+10FFFF. Returns 1 if so, else 0. Pure, any
 * thread. */
int hub_utf8_valid(const uint8_t *p, size_t len);

#endif
