#include "mqtt/msg.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* Encodes n as an MQTT remaining length into out[4]; returns the bytes used. */
static uint8_t remlen(uint8_t out[4], size_t n)
{
    uint8_t k = 0;
    do {
        out[k] = (uint8_t)(n & 0x7f);
        n >>= 7;
        if (n)
            out[k] |= 0x80;
        k++;
    } while (n && k < 4);
    return k;
}

static void msg_release(struct hub_rcbuf *rc)
{
    free((struct hub_msg *)((char *)rc - offsetof(struct hub_msg, rc)));
}

struct hub_msg *hub_msg_new(const char *topic, size_t topic_len, const void *payload,
                            size_t payload_len, uint8_t qos, uint8_t retain)
{
    size_t pid = qos > 0 ? 2 : 0;
    struct hub_msg *m = malloc(sizeof *m + HUB_MSG_HEADROOM + 2 + topic_len + pid + payload_len);
    if (m == NULL)
        return NULL;
    hub_rcbuf_init(&m->rc, msg_release);
    m->refs = 1;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = topic_len;
    m->payload_len = payload_len;
    m->packet0 = NULL;
    m->id = 0;
    m->quota_owner = 0;
    m->wire = (uint8_t *)(m + 1) + HUB_MSG_HEADROOM;
    m->wire_len = 2 + topic_len + pid + payload_len;
    m->remlen_n = remlen(m->remlen, m->wire_len);
    m->wire[0] = (uint8_t)(topic_len >> 8);
    m->wire[1] = (uint8_t)topic_len;
    memcpy(m->wire + 2, topic, topic_len);
    m->topic = (const char *)m->wire + 2;
    m->payload = m->wire + 2 + topic_len + pid;
    if (payload_len > 0)
        memcpy(m->wire + 2 + topic_len + pid, payload, payload_len);
    return m;
}

int hub_msg_borrowable(const uint8_t *pkt, size_t len)
{
    size_t h = 1;
    if (len < 4 || pkt[0] != 0x30)
        return 0;
    while (h < 5 && h < len && (pkt[h] & 0x80))
        h++;
    /* Minimal: the last length byte is not 0 unless it is the only one. */
    return h < len && (h == 1 || pkt[h] != 0);
}

void hub_msg_borrow(struct hub_msg *m, const uint8_t *pkt, size_t len)
{
    size_t h = 1;
    while (pkt[h] & 0x80)
        h++;
    h++;
    memset(m, 0, sizeof *m);
    m->topic_len = (size_t)pkt[h] << 8 | pkt[h + 1];
    m->topic = (const char *)pkt + h + 2;
    m->payload = pkt + h + 2 + m->topic_len;
    m->payload_len = len - h - 2 - m->topic_len;
    m->wire_len = len - h;
    m->remlen_n = remlen(m->remlen, m->wire_len);
    m->packet0 = pkt;
}

struct hub_msg *hub_msg_ref(struct hub_msg *m)
{
    m->refs++;
    return m;
}

void hub_msg_unref(struct hub_msg *m)
{
    if (m != NULL && m->refs > 0 && --m->refs == 0)
        hub_rcbuf_unref(&m->rc);
}

size_t hub_msg_packet(const struct hub_msg *m, int qos, int retain, int dup, uint16_t pid,
                      const uint8_t **pkt)
{
    size_t n = m->remlen_n;
    if (m->packet0 != NULL && qos == 0 && !retain) {
        *pkt = m->packet0;
        return 1 + n + m->wire_len;
    }
    if (m->wire == NULL || (qos > 0) != (m->qos > 0) || qos > 2 || m->wire_len > 268435455u)
        return 0;
    uint8_t *h = m->wire - n - 1;
    h[0] = (uint8_t)(0x30 | (dup && qos ? 0x08 : 0) | qos << 1 | (retain ? 1 : 0));
    memcpy(h + 1, m->remlen, n);
    if (qos > 0) {
        m->wire[2 + m->topic_len] = (uint8_t)(pid >> 8);
        m->wire[3 + m->topic_len] = (uint8_t)pid;
    }
    *pkt = h;
    return n + 1 + m->wire_len;
}

size_t hub_msg_pieces(struct hub_msg *m, int qos, int retain, int dup, uint16_t pid,
                      uint8_t head[7], struct hub_rcbuf_piece v[HUB_MSG_PIECES])
{
    if (m->refs == 0 || m->wire == NULL || (qos > 0) != (m->qos > 0) || qos > 2 ||
        m->wire_len > 268435455u)
        return 0;
    size_t n = m->remlen_n;
    head[0] = (uint8_t)(0x30 | (dup && qos ? 0x08 : 0) | qos << 1 | (retain ? 1 : 0));
    memcpy(head + 1, m->remlen, n);
    v[0] = (struct hub_rcbuf_piece){head, n + 1, 0};
    if (qos == 0) {
        v[1] = (struct hub_rcbuf_piece){m->wire, m->wire_len, 1};
        return 2;
    }
    size_t topic_end = 2 + m->topic_len;
    head[n + 1] = (uint8_t)(pid >> 8);
    head[n + 2] = (uint8_t)pid;
    v[1] = (struct hub_rcbuf_piece){m->wire, topic_end, 1};
    v[2] = (struct hub_rcbuf_piece){head + n + 1, 2, 0};
    v[3] = (struct hub_rcbuf_piece){m->wire + topic_end + 2, m->wire_len - topic_end - 2, 1};
    return v[3].len > 0 ? 4 : 3;
}
