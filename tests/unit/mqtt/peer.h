/* Test clients of mqtt/broker over an in-memory transport, shared by the broker and flow
 * control tests: every packet the broker writes to a peer is framed and recorded. */
#ifndef HUB_TESTS_UNIT_MQTT_PEER_H
#define HUB_TESTS_UNIT_MQTT_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt/broker.h"
#include "util/buf.h"

#define MAXPKT 4096

/* A client as the transport sees it: every packet written to it, whole. */
struct peer {
    struct hub_mqtt_conn *c;
    struct hub_mqtt_identity who;
    int closed;      /* the broker asked to close */
    int paused;      /* the broker asked to stop reading */
    unsigned writes; /* write calls */
    size_t npkts;    /* packets received */
    uint8_t type[MAXPKT], flags[MAXPKT];
    uint16_t pid[MAXPKT];
    hub_buf_t last; /* the last packet, whole */
    hub_buf_t in;   /* bytes not yet framed */
};

extern const struct hub_mqtt_transport transport; /* records writes, close, pause */
extern const char *const svc_sub[];               /* what a service peer may subscribe to */
extern uint64_t now;                              /* the time given to the broker */
extern uint8_t keepalive_s;                       /* the keepalive open_peer's CONNECT asks for */

/* Bytes from the client to the broker. */
void feed(struct peer *p, const void *d, size_t n);
/* Appends an MQTT string (length, bytes). */
void put_str(hub_buf_t *b, const char *s);
/* Sends a packet of type byte t with body (under 128 bytes). */
void send_packet(struct peer *p, uint8_t t, const hub_buf_t *body);
/* Opens a connection of a device (service 0) or service with id and sends its CONNECT. */
void open_peer(struct hub_broker *br, struct peer *p, int service, const char *id,
               const char *client_id, int clean);
/* The transport closes p (hub_mqtt_conn_closed) and frees its buffers. */
void close_peer(struct peer *p);
/* SUBSCRIBE (packet id 1) to filter at qos. */
void subscribe(struct peer *p, const char *filter, uint8_t qos);
/* PUBLISH from p. */
void publish(struct peer *p, const char *topic, int qos, int retain, uint16_t pid,
             const char *payload);
/* PUBACK from p. */
void puback(struct peer *p, uint16_t pid);
/* Acknowledges the next QoS 1 delivery p has not acknowledged yet (*acked so far).
 * Returns 0, or -1 when there is none. */
int ack_next(struct peer *p, size_t *acked);
/* Number of packets of type t received by p from index from on. */
size_t count(const struct peer *p, int t, size_t from);
/* A broker with these limits (max_packet 65536, connect_timeout 10 s). */
struct hub_broker *broker(size_t max_queued, unsigned max_inflight);

#define DEV_A "0b8e3b8a-1111-4c1e-8a6e-00000000000a"
#define DEV_B "0b8e3b8a-2222-4c1e-8a6e-00000000000b"
#define SVC "5e7c0000-3333-4c1e-8a6e-000000000005"
#define TOPIC_A "devices/" DEV_A "/telemetry"

#endif
