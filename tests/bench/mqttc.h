/* The client side of the few MQTT 3.1.1 packets iothub-bench needs: CONNECT, SUBSCRIBE,
 * PINGREQ written here; PUBLISH and PUBACK headers and framing come from mqtt/codec.h.
 * Encoders write into caller buffers and never allocate. */
#ifndef BENCH_MQTTC_H
#define BENCH_MQTTC_H

#include <stddef.h>
#include <stdint.h>

/* Writes a CONNECT (level 4, clean session, no will, no credentials) with client_id and
 * keepalive seconds into out (cap bytes). Returns its length, or 0 if it does not fit. */
size_t bench_mqtt_connect(uint8_t *out, size_t cap, const char *client_id, uint16_t keepalive,
                          int clean);

/* Writes a SUBSCRIBE of one filter at qos with packet_id into out (cap bytes). Returns its
 * length, or 0 if it does not fit. */
size_t bench_mqtt_subscribe(uint8_t *out, size_t cap, uint16_t packet_id, const char *filter,
                            int qos);

/* Writes a PINGREQ into out[2]. Returns 2. */
size_t bench_mqtt_pingreq(uint8_t out[2]);

/* A PUBLISH from the server, pointing into the packet. */
typedef struct bench_mqtt_pub {
    int qos;
    uint16_t packet_id;
    const uint8_t *payload;
    size_t payload_len;
} bench_mqtt_pub_t;

/* Decodes a complete PUBLISH packet (header included). Returns 0, or -1 when malformed. */
int bench_mqtt_publish_decode(const uint8_t *pkt, size_t len, bench_mqtt_pub_t *out);

#endif
