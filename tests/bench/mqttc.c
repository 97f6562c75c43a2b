/* Client-side MQTT 3.1.1 packet encoders and the PUBLISH decoder of iothub-bench. */
#include <string.h>

#include "tests/bench/mqttc.h"

/* Writes the fixed header (type byte and remaining length); returns its length. */
static size_t fixed_header(uint8_t *out, uint8_t first, size_t remaining)
{
    size_t n = 0;
    out[n++] = first;
    do {
        uint8_t b = remaining & 0x7f;
        remaining >>= 7;
        out[n++] = remaining ? (uint8_t)(b | 0x80) : b;
    } while (remaining);
    return n;
}

static size_t put_str(uint8_t *out, const char *s, size_t len)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    memcpy(out + 2, s, len);
    return 2 + len;
}

size_t bench_mqtt_connect(uint8_t *out, size_t cap, const char *client_id, uint16_t keepalive,
                          int clean)
{
    size_t id_len = strlen(client_id);
    size_t remaining = 10 + 2 + id_len;
    if (id_len > 65535 || remaining + 5 > cap)
        return 0;
    size_t n = fixed_header(out, 0x10, remaining);
    n += put_str(out + n, "MQTT", 4);
    out[n++] = 4;    /* level: 3.1.1 */
    out[n++] = clean ? 0x02 : 0; /* clean session */
    out[n++] = (uint8_t)(keepalive >> 8);
    out[n++] = (uint8_t)keepalive;
    n += put_str(out + n, client_id, id_len);
    return n;
}

size_t bench_mqtt_subscribe(uint8_t *out, size_t cap, uint16_t packet_id, const char *filter,
                            int qos)
{
    size_t flen = strlen(filter);
    size_t remaining = 2 + 2 + flen + 1;
    if (flen > 65535 || remaining + 5 > cap)
        return 0;
    size_t n = fixed_header(out, 0x82, remaining);
    out[n++] = (uint8_t)(packet_id >> 8);
    out[n++] = (uint8_t)packet_id;
    n += put_str(out + n, filter, flen);
    out[n++] = (uint8_t)qos;
    return n;
}

size_t bench_mqtt_pingreq(uint8_t out[2])
{
    out[0] = 0xc0;
    out[1] = 0;
    return 2;
}

int bench_mqtt_publish_decode(const uint8_t *pkt, size_t len, bench_mqtt_pub_t *out)
{
    size_t i = 1, mult = 0;
    while (i < len && i < 5 && (pkt[i] & 0x80))
        i++, mult++;
    if (i >= len || mult >= 4)
        return -1;
    i++; /* past the last remaining-length byte */
    out->qos = (pkt[0] >> 1) & 3;
    if (out->qos == 3 || i + 2 > len)
        return -1;
    size_t tlen = (size_t)pkt[i] << 8 | pkt[i + 1];
    i += 2 + tlen;
    if (i > len)
        return -1;
    out->packet_id = 0;
    if (out->qos > 0) {
        if (i + 2 > len)
            return -1;
        out->packet_id = (uint16_t)(pkt[i] << 8 | pkt[i + 1]);
        i += 2;
    }
    out->payload = pkt + i;
    out->payload_len = len - i;
    return 0;
}
