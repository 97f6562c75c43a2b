/* Test clients of mqtt/broker over an in-memory transport (peer.h). */
#include "tests/unit/mqtt/peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"

static int t_write(void *tconn, const void *data, size_t len)
{
    struct peer *p = tconn;
    size_t n;
    p->writes++;
    hub_buf_append(&p->in, data, len);
    while (hub_mqtt_frame(p->in.data, p->in.len, SIZE_MAX, &n) == 1) {
        const uint8_t *d = p->in.data;
        size_t h = 1;
        while (d[h++] & 0x80)
            ;
        if (p->npkts < MAXPKT) {
            p->type[p->npkts] = d[0] >> 4;
            p->flags[p->npkts] = d[0] & 15;
            p->pid[p->npkts] = 0;
            if (d[0] >> 4 == HUB_MQTT_PUBLISH && (d[0] & 6)) {
                size_t tl = (size_t)d[h] << 8 | d[h + 1];
                p->pid[p->npkts] = (uint16_t)(d[h + 2 + tl] << 8 | d[h + 3 + tl]);
            } else if (n == 4) {
                p->pid[p->npkts] = (uint16_t)(d[2] << 8 | d[3]);
            }
        }
        p->npkts++;
        p->last.len = 0;
        hub_buf_append(&p->last, d, n);
        memmove(p->in.data, p->in.data + n, p->in.len - n);
        p->in.len -= n;
    }
    return 0;
}

static void t_close(void *tconn)
{
    ((struct peer *)tconn)->closed = 1;
}

static void t_pause(void *tconn, int paused)
{
    ((struct peer *)tconn)->paused = paused;
}

const struct hub_mqtt_transport transport = {.write = t_write, .close = t_close, .pause = t_pause};
const char *const svc_sub[] = {"devices/+/telemetry", NULL};
static const char *const svc_pub[] = {NULL};
uint64_t now = 1000;
uint8_t keepalive_s; /* the keepalive open_peer's CONNECT asks for */

void feed(struct peer *p, const void *d, size_t n)
{
    hub_mqtt_conn_data(p->c, d, n, now);
}

void put_str(hub_buf_t *b, const char *s)
{
    uint8_t n[2] = {(uint8_t)(strlen(s) >> 8), (uint8_t)strlen(s)};
    hub_buf_append(b, n, 2);
    hub_buf_append(b, s, strlen(s));
}

void send_packet(struct peer *p, uint8_t t, const hub_buf_t *body)
{
    uint8_t h[2] = {t, (uint8_t)body->len}; /* bodies here are under 128 bytes */
    hub_buf_t b = {0};
    hub_buf_append(&b, h, 2);
    hub_buf_append(&b, body->data, body->len);
    feed(p, b.data, b.len);
    hub_buf_free(&b);
}

void open_peer(struct hub_broker *br, struct peer *p, int service, const char *id,
               const char *client_id, int clean)
{
    hub_buf_t body = {0};
    memset(p, 0, sizeof *p);
    p->who.kind = service ? HUB_MQTT_SERVICE : HUB_MQTT_DEVICE;
    snprintf(p->who.id, sizeof p->who.id, "%s", id);
    if (service) {
        p->who.subscribe = svc_sub;
        p->who.publish = svc_pub;
    }
    p->c = hub_mqtt_conn_open(br, &transport, p, &p->who, now);
    put_str(&body, "MQTT");
    uint8_t v[4] = {4, clean ? 0x02 : 0x00, 0, keepalive_s};
    hub_buf_append(&body, v, 4);
    put_str(&body, client_id);
    send_packet(p, 0x10, &body);
    hub_buf_free(&body);
}

void close_peer(struct peer *p)
{
    hub_mqtt_conn_closed(p->c, 0);
    hub_buf_free(&p->in);
    hub_buf_free(&p->last);
    p->c = NULL;
}

void subscribe(struct peer *p, const char *filter, uint8_t qos)
{
    hub_buf_t body = {0};
    uint8_t pid[2] = {0, 1};
    hub_buf_append(&body, pid, 2);
    put_str(&body, filter);
    hub_buf_append(&body, &qos, 1);
    send_packet(p, 0x82, &body);
    hub_buf_free(&body);
}

void publish(struct peer *p, const char *topic, int qos, int retain, uint16_t pid,
             const char *payload)
{
    hub_buf_t b = {0};
    hub_mqtt_publish_append(&b, topic, strlen(topic), qos, retain, 0, pid, (const uint8_t *)payload,
                            strlen(payload));
    feed(p, b.data, b.len);
    hub_buf_free(&b);
}

void puback(struct peer *p, uint16_t pid)
{
    uint8_t a[4];
    feed(p, a, hub_mqtt_ack(a, HUB_MQTT_PUBACK, pid));
}

/* Acknowledges the next QoS 1 delivery p has not acknowledged yet (*acked so far).
 * Returns 0, or -1 when there is none. */
int ack_next(struct peer *p, size_t *acked)
{
    size_t k = 0;
    for (size_t i = 0; i < p->npkts && i < MAXPKT; i++) {
        if (p->type[i] == HUB_MQTT_PUBLISH && p->flags[i] == 2 && k++ == *acked) {
            (*acked)++;
            puback(p, p->pid[i]);
            return 0;
        }
    }
    return -1;
}

/* Number of packets of type t received by p from index from on. */
size_t count(const struct peer *p, int t, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < p->npkts && i < MAXPKT; i++)
        n += p->type[i] == t;
    return n;
}

struct hub_broker *broker(size_t max_queued, unsigned max_inflight)
{
    struct hub_broker_options o = {
        .max_packet = 65536,
        .max_queued = max_queued,
        .max_inflight = max_inflight,
        .connect_timeout = 10,
    };
    return hub_broker_new(&o);
}
