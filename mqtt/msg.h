/* Published messages (the retained-message store is in retained.h). A message is one refcounted
 * block holding the PUBLISH as it goes on the wire (topic length, topic, a packet id slot when qos
 * > 0, payload) behind room for the fixed header: a delivery writes the header and the packet id in
 * place and goes out in one write, without a copy. */
#ifndef HUB_MQTT_MSG_H
#define HUB_MQTT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "util/rcbuf.h"

/* Room for a PUBLISH fixed header: type byte and up to 4 remaining-length bytes. */
#define HUB_MSG_HEADROOM 5

struct hub_msg {
    /* Holders on the broker's loop count in refs (plainly); together they hold one reference
     * to rc, and every transport thread sharing the message (hub_msg_pieces) holds another:
     * the block is freed with the last of them, on whichever thread drops it. */
    struct hub_rcbuf rc;
    unsigned refs; /* 0: borrowed (hub_msg_borrow), never freed */
    uint64_t id;   /* fleet-unique message id given by the broker (0: none) */
    uint32_t quota_owner; /* retained: its principal's entry + 1 in the quota table (quota.c) */
    uint8_t qos;
    uint8_t retain;
    uint8_t remlen_n;  /* bytes of remlen used */
    uint8_t remlen[4]; /* the remaining length (wire_len) as encoded on the wire */
    size_t topic_len;
    size_t payload_len;
    const char *topic;      /* inside the message, not NUL-terminated */
    const uint8_t *payload; /* inside the message */
    uint8_t *wire;          /* the PUBLISH after its fixed header, HUB_MSG_HEADROOM bytes of room
                               before it; NULL when borrowed */
    size_t wire_len;
    const uint8_t *packet0; /* borrowed: the whole QoS 0 PUBLISH as received; else NULL */
};

/* Allocates a message with one reference, laid out for qos. NULL on ENOMEM. */
struct hub_msg *hub_msg_new(const char *topic, size_t topic_len, const void *payload,
                            size_t payload_len, uint8_t qos, uint8_t retain);
/* Fills m to stand for a received QoS 0 PUBLISH of len bytes at pkt, whose first byte is
 * 0x30 (no DUP, no RETAIN) and whose remaining length is minimally encoded (see
 * hub_msg_borrowable): it goes out as it came. m is borrowed: valid while pkt is, never
 * referenced. */
void hub_msg_borrow(struct hub_msg *m, const uint8_t *pkt, size_t len);
/* 1 when the received QoS 0 PUBLISH at pkt can be sent on as it is (hub_msg_borrow). */
int hub_msg_borrowable(const uint8_t *pkt, size_t len);
struct hub_msg *hub_msg_ref(struct hub_msg *m);
/* Drops a reference; frees the block with the last one. */
void hub_msg_unref(struct hub_msg *m);
/* Makes the whole PUBLISH of m at qos (0 < qos when m->qos > 0, else 0) in place and points
 * *pkt at it; valid until the next call on m. Returns its length, or 0 when m's layout does
 * not fit (a QoS 0 copy of a QoS 1/2 message, a borrowed message with flags set: encode it
 * with hub_mqtt_publish_append). */
size_t hub_msg_packet(const struct hub_msg *m, int qos, int retain, int dup, uint16_t pid,
                      const uint8_t **pkt);

/* Up to this many pieces make one PUBLISH (hub_msg_pieces). */
#define HUB_MSG_PIECES 4
/* Describes the PUBLISH of m at qos, as hub_msg_packet makes it, without writing into m: the
 * per-delivery bytes (fixed header; packet id when qos > 0) go into head[7], which v points
 * into, and the topic and payload are pieces shared in m->rc. Does not take a reference.
 * Returns the number of pieces in v (at most HUB_MSG_PIECES), or 0 when m is borrowed or its
 * layout does not fit qos (use hub_msg_packet's fallbacks). Loop thread. */
size_t hub_msg_pieces(struct hub_msg *m, int qos, int retain, int dup, uint16_t pid,
                      uint8_t head[7], struct hub_rcbuf_piece v[HUB_MSG_PIECES]);

#endif
