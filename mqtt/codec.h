/* MQTT 3.1 ("MQIsdp", level 3) and 3.1.1 ("MQTT", level 4) server-side codec: framing,
 * decoding of client->server packets and encoding of server->client packets. Pure: no I/O,
 * no allocation when decoding (decoded fields point into the caller's packet buffer). */
#ifndef HUB_MQTT_CODEC_H
#define HUB_MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum hub_mqtt_type {
    HUB_MQTT_CONNECT = 1,
    HUB_MQTT_CONNACK = 2,
    HUB_MQTT_PUBLISH = 3,
    HUB_MQTT_PUBACK = 4,
    HUB_MQTT_PUBREC = 5,
    HUB_MQTT_PUBREL = 6,
    HUB_MQTT_PUBCOMP = 7,
    HUB_MQTT_SUBSCRIBE = 8,
    HUB_MQTT_SUBACK = 9,
    HUB_MQTT_UNSUBSCRIBE = 10,
    HUB_MQTT_UNSUBACK = 11,
    HUB_MQTT_PINGREQ = 12,
    HUB_MQTT_PINGRESP = 13,
    HUB_MQTT_DISCONNECT = 14,
};

enum hub_mqtt_level { HUB_MQTT_V31 = 3, HUB_MQTT_V311 = 4 };

/* CONNACK return codes (3.1 and 3.1.1 share them). */
enum hub_mqtt_connack_rc {
    HUB_MQTT_CONNACK_ACCEPTED = 0x00,
    HUB_MQTT_CONNACK_BAD_VERSION = 0x01,
    HUB_MQTT_CONNACK_BAD_CLIENT_ID = 0x02,
    HUB_MQTT_CONNACK_UNAVAILABLE = 0x03,
    HUB_MQTT_CONNACK_BAD_CREDENTIALS = 0x04,
    HUB_MQTT_CONNACK_NOT_AUTHORIZED = 0x05,
};

#define HUB_MQTT_SUBACK_FAILURE 0x80
/* Largest remaining length the 4-byte encoding can carry. */
#define HUB_MQTT_MAX_REMAINING 268435455u
/* Longest client id the broker accepts (MQTT 3.1.1 requires 23; longer ones get CONNACK 2). */
#define HUB_MQTT_MAX_CLIENT_ID 256
/* Largest PUBLISH header: type byte, 4 length bytes, 2+65535 topic bytes, packet id. */
#define HUB_MQTT_PUBLISH_HEADER_MAX (1 + 4 + 2 + 65535 + 2)

/* A length-delimited string or byte run pointing into the packet; not NUL-terminated. */
typedef struct hub_mqtt_str {
    const char *ptr;
    size_t len;
} hub_mqtt_str_t;

typedef struct hub_mqtt_connect {
    uint8_t level; /* 3 or 4 */
    uint8_t clean; /* clean session flag */
    uint8_t will;  /* will flag: the will_* fields are set */
    uint8_t will_qos;
    uint8_t will_retain;
    uint8_t has_username;
    uint8_t has_password;
    uint16_t keepalive;       /* seconds, 0 = disabled */
    hub_mqtt_str_t client_id; /* may be empty (3.1.1 with clean session) */
    hub_mqtt_str_t will_topic;
    hub_mqtt_str_t will_payload; /* binary */
    hub_mqtt_str_t username;
    hub_mqtt_str_t password; /* binary */
    /* Set when decoding fails but the spec wants a CONNACK with this code before closing
     * (0x01 unacceptable protocol version, 0x02 identifier rejected); 0 otherwise. */
    uint8_t refuse;
} hub_mqtt_connect_t;

typedef struct hub_mqtt_publish {
    uint8_t qos;
    uint8_t retain;
    uint8_t dup;
    uint16_t packet_id; /* 0 for QoS 0 */
    hub_mqtt_str_t topic;
    const uint8_t *payload;
    size_t payload_len;
} hub_mqtt_publish_t;

/* SUBSCRIBE or UNSUBSCRIBE: the entries were all validated; walk them with
 * hub_mqtt_sub_next. */
typedef struct hub_mqtt_subscribe {
    uint16_t packet_id;
    size_t count;           /* number of filters, >= 1 */
    const uint8_t *entries; /* raw payload */
    size_t entries_len;
    uint8_t with_qos; /* 1 for SUBSCRIBE (each filter is followed by a QoS byte) */
} hub_mqtt_subscribe_t;

typedef struct hub_mqtt_packet {
    uint8_t type;  /* enum hub_mqtt_type */
    uint8_t flags; /* low nibble of the first byte */
    union {
        hub_mqtt_connect_t connect;
        hub_mqtt_publish_t publish;
        hub_mqtt_subscribe_t subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        uint16_t packet_id;             /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    } u;
} hub_mqtt_packet_t;

/* Looks for one complete packet at buf. Returns 1 and sets *packet_len (header included)
 * when it is all there, 0 when more bytes are needed, HUB_EINVAL for a remaining length
 * longer than 4 bytes, HUB_ERANGE as soon as the header announces more than max_packet. */
int hub_mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *packet_len);

/* Decodes one complete packet (as delimited by hub_mqtt_frame) sent by a client speaking
 * `level` (ignored for CONNECT, which announces its own). Fields point into pkt. Returns 0,
 * or HUB_EINVAL with a static reason in *why (why may be NULL); see connect.refuse. */
int hub_mqtt_decode(const uint8_t *pkt, size_t len, int level, hub_mqtt_packet_t *out,
                    const char **why);

/* Walks the filters of a decoded SUBSCRIBE/UNSUBSCRIBE; *off starts at 0. Sets *filter and,
 * for SUBSCRIBE, *qos (qos may be NULL). Returns 1 per entry, 0 after the last one. */
int hub_mqtt_sub_next(const hub_mqtt_subscribe_t *s, size_t *off, hub_mqtt_str_t *filter,
                      uint8_t *qos);

/* Writes a CONNACK into out[4]; session_present is forced to 0 when rc != 0 (and must be 0
 * for 3.1 clients). Returns 4. */
size_t hub_mqtt_connack(uint8_t out[4], int session_present, uint8_t rc);

/* Writes a PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK (type from enum hub_mqtt_type) with
 * its packet id into out[4]. Returns 4, or 0 for another type. */
size_t hub_mqtt_ack(uint8_t out[4], int type, uint16_t packet_id);

/* Writes a PINGRESP into out[2]. Returns 2. */
size_t hub_mqtt_pingresp(uint8_t out[2]);

/* Appends a SUBACK with n return codes (0..2 or 0x80) to b. Returns 0, HUB_ENOMEM, or
 * HUB_EINVAL when n is 0 or too large. */
int hub_mqtt_suback(hub_buf_t *b, uint16_t packet_id, const uint8_t *codes, size_t n);

/* Writes a PUBLISH fixed header, topic and (QoS > 0) packet id into out, which must hold
 * HUB_MQTT_PUBLISH_HEADER_MAX bytes (or 9 + topic_len); the payload_len payload bytes
 * follow on the wire. Returns the header length, or 0 when the arguments cannot be encoded
 * (qos > 2, topic_len > 65535, packet_id 0 with QoS > 0, packet too large). */
size_t hub_mqtt_publish_header(uint8_t *out, const char *topic, size_t topic_len, int qos,
                               int retain, int dup, uint16_t packet_id, size_t payload_len);

/* Appends a whole PUBLISH (header and payload) to b. Returns 0, HUB_ENOMEM, or HUB_EINVAL
 * under the same conditions as hub_mqtt_publish_header. */
int hub_mqtt_publish_append(hub_buf_t *b, const char *topic, size_t topic_len, int qos, int retain,
                            int dup, uint16_t packet_id, const uint8_t *payload,
                            size_t payload_len);

/* Static name of a packet type ("CONNECT", ...), "?" when unknown; for logs. */
const char *hub_mqtt_type_name(int type);

#endif
