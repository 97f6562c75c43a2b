/* MQTT UTF-8 strings (MQTT 3.1.1 §1.5.3): a word-at-a-time pass over ASCII without U+0000,
 * then a byte-by-byte check of the multi-byte forms with the allowed range of each
 * second byte (no overlongs, no surrogates, nothing above U+10FFFF). */
#include "mqtt/utf8.h"

#include <string.h>

int hub_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    /* Fast path: 8 bytes at a time while they are ASCII without U+0000. */
    for (uint64_t w; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        if ((w & 0x8080808080808080ull) != 0 ||
            ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0)
            break;
    }
    while (i < len) {
        uint8_t c = p[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xC2) {
            return 0; /* stray continuation byte or overlong 2-byte form */
        } else if (c < 0xE0) {
            need = 1;
        } else if (c < 0xF0) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* U+D800..U+DFFF surrogates */
        } else if (c < 0xF5) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return 0;
        }
        if (len - i - 1 < need)
            return 0;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}
