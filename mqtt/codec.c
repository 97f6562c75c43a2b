/* MQTT 3.1/3.1.1 server-side codec. Decoding reads through a bounds-checked cursor: every
 * length is compared with what is left before it is used, and the packet must be consumed
 * exactly. Deliberate leniencies, for interoperability with older clients:
 *  - both versions: the remaining length need not be minimally encoded (3.1.1 does not
 *    require it; MQTT 5 does);
 *  - 3.1 only: client ids longer than 23 characters are accepted (3.1 says 1..23); a
 *    password without a user name is accepted; user name/password flags whose field is
 *    missing at the very end of the packet mean "absent"; DUP is ignored on QoS 0 PUBLISH
 *    and on PUBREL/SUBSCRIBE/UNSUBSCRIBE (which 3.1 allowed to carry it). */
#include "mqtt/codec.h"

#include <string.h>

#include "mqtt/topic.h"
#include "mqtt/utf8.h"
#include "util/error.h"

struct cursor {
    const uint8_t *p;
    size_t len;
    size_t off;
};

static size_t left(const struct cursor *c)
{
    return c->len - c->off;
}

static int get_u8(struct cursor *c, uint8_t *v)
{
    if (left(c) < 1)
        return 0;
    *v = c->p[c->off++];
    return 1;
}

static int get_u16(struct cursor *c, uint16_t *v)
{
    if (left(c) < 2)
        return 0;
    *v = (uint16_t)((c->p[c->off] << 8) | c->p[c->off + 1]);
    c->off += 2;
    return 1;
}

/* A two-byte length followed by that many bytes. */
static int get_bytes(struct cursor *c, hub_mqtt_str_t *s)
{
    uint16_t n;
    if (!get_u16(c, &n))
        return 0;
    if (left(c) < n) {
        c->off -= 2;
        return 0;
    }
    s->ptr = (const char *)c->p + c->off;
    s->len = n;
    c->off += n;
    return 1;
}

static int str_eq(const hub_mqtt_str_t *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

static int utf8_str(const hub_mqtt_str_t *s)
{
    return hub_utf8_valid((const uint8_t *)s->ptr, s->len);
}

/* Parses the remaining length at buf[1..]. Returns 1 with *hdr (bytes of fixed header) and
 * *rl, 0 when more bytes are needed, HUB_EINVAL after 4 continuation bytes. */
static int parse_remlen(const uint8_t *buf, size_t len, size_t *hdr, size_t *rl)
{
    size_t value = 0, mult = 1;
    for (size_t i = 1; i <= 4; i++) {
        if (i >= len)
            return 0;
        value += (size_t)(buf[i] & 0x7F) * mult;
        if (!(buf[i] & 0x80)) {
            *hdr = i + 1;
            *rl = value;
            return 1;
        }
        mult *= 128;
    }
    return HUB_EINVAL;
}

int hub_mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *packet_len)
{
    size_t hdr, rl;
    int rc = parse_remlen(buf, len, &hdr, &rl);
    if (rc <= 0)
        return rc;
    if (hdr + rl > max_packet)
        return HUB_ERANGE;
    if (len < hdr + rl)
        return 0;
    *packet_len = hdr + rl;
    return 1;
}

#define FAIL(msg)                                                                                  \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return HUB_EINVAL;                                                                         \
    } while (0)

/* Reads an optional trailing field of a 3.1 CONNECT: absent if the packet ends first. */
static int lenient_field(struct cursor *c, int level, hub_mqtt_str_t *s, uint8_t *flag)
{
    if (level == HUB_MQTT_V31 && left(c) == 0) {
        *flag = 0;
        return 1;
    }
    return get_bytes(c, s);
}

static int decode_connect(struct cursor *c, uint8_t flags, hub_mqtt_connect_t *m, const char **why)
{
    hub_mqtt_str_t name;
    uint8_t level, cf;
    if (flags != 0)
        FAIL("CONNECT: reserved header flags set");
    if (!get_bytes(c, &name) || !get_u8(c, &level))
        FAIL("CONNECT: truncated protocol name");
    if (str_eq(&name, "MQTT"))
        m->level = HUB_MQTT_V311;
    else if (str_eq(&name, "MQIsdp"))
        m->level = HUB_MQTT_V31;
    else
        FAIL("CONNECT: unknown protocol name");
    if (level != m->level) {
        m->refuse = HUB_MQTT_CONNACK_BAD_VERSION;
        FAIL("CONNECT: unsupported protocol level");
    }
    if (!get_u8(c, &cf) || !get_u16(c, &m->keepalive))
        FAIL("CONNECT: truncated variable header");
    if (cf & 0x01)
        FAIL("CONNECT: reserved connect flag set");
    m->clean = (cf >> 1) & 1;
    m->will = (cf >> 2) & 1;
    m->will_qos = (cf >> 3) & 3;
    m->will_retain = (cf >> 5) & 1;
    m->has_password = (cf >> 6) & 1;
    m->has_username = (cf >> 7) & 1;
    if (m->will_qos == 3)
        FAIL("CONNECT: will QoS 3");
    if (!m->will && (m->will_qos || m->will_retain))
        FAIL("CONNECT: will QoS/retain without will flag");
    if (m->level == HUB_MQTT_V311 && m->has_password && !m->has_username)
        FAIL("CONNECT: password without user name");

    if (!get_bytes(c, &m->client_id))
        FAIL("CONNECT: truncated client id");
    if (!utf8_str(&m->client_id))
        FAIL("CONNECT: client id is not valid UTF-8");
    if (m->will) {
        if (!get_bytes(c, &m->will_topic) || !get_bytes(c, &m->will_payload))
            FAIL("CONNECT: truncated will");
        if (!hub_topic_name_valid(m->will_topic.ptr, m->will_topic.len))
            FAIL("CONNECT: invalid will topic");
    }
    if (m->has_username) {
        if (!lenient_field(c, m->level, &m->username, &m->has_username))
            FAIL("CONNECT: truncated user name");
        if (!utf8_str(&m->username))
            FAIL("CONNECT: user name is not valid UTF-8");
    }
    if (m->has_password && !lenient_field(c, m->level, &m->password, &m->has_password))
        FAIL("CONNECT: truncated password");
    if (left(c) != 0)
        FAIL("CONNECT: trailing bytes");
    if (m->client_id.len == 0 && (m->level == HUB_MQTT_V31 || !m->clean)) {
        m->refuse = HUB_MQTT_CONNACK_BAD_CLIENT_ID;
        FAIL("CONNECT: empty client id without clean session");
    }
    return 0;
}

static int decode_publish(struct cursor *c, int level, uint8_t flags, hub_mqtt_publish_t *m,
                          const char **why)
{
    m->retain = flags & 1;
    m->qos = (flags >> 1) & 3;
    m->dup = (flags >> 3) & 1;
    if (m->qos == 3)
        FAIL("PUBLISH: QoS 3");
    if (m->qos == 0 && m->dup) {
        if (level != HUB_MQTT_V31)
            FAIL("PUBLISH: DUP set on QoS 0");
        m->dup = 0;
    }
    if (!get_bytes(c, &m->topic))
        FAIL("PUBLISH: truncated topic");
    if (!hub_topic_name_valid(m->topic.ptr, m->topic.len))
        FAIL("PUBLISH: invalid topic name");
    if (m->qos > 0) {
        if (!get_u16(c, &m->packet_id))
            FAIL("PUBLISH: truncated packet id");
        if (m->packet_id == 0)
            FAIL("PUBLISH: packet id 0");
    }
    m->payload = c->p + c->off;
    m->payload_len = left(c);
    return 0;
}

/* Validates the entries of a SUBSCRIBE (with_qos) or UNSUBSCRIBE. */
static int decode_subscribe(struct cursor *c, int with_qos, hub_mqtt_subscribe_t *m,
                            const char **why)
{
    if (!get_u16(c, &m->packet_id))
        FAIL("SUBSCRIBE: truncated packet id");
    if (m->packet_id == 0)
        FAIL("SUBSCRIBE: packet id 0");
    m->with_qos = (uint8_t)with_qos;
    m->entries = c->p + c->off;
    m->entries_len = left(c);
    while (left(c) > 0) {
        hub_mqtt_str_t f;
        uint8_t qos;
        if (!get_bytes(c, &f))
            FAIL("SUBSCRIBE: truncated topic filter");
        if (!hub_topic_filter_valid(f.ptr, f.len))
            FAIL("SUBSCRIBE: invalid topic filter");
        if (with_qos) {
            if (!get_u8(c, &qos))
                FAIL("SUBSCRIBE: missing requested QoS");
            if (qos > 2)
                FAIL("SUBSCRIBE: invalid requested QoS");
        }
        m->count++;
    }
    if (m->count == 0)
        FAIL("SUBSCRIBE: no topic filter");
    return 0;
}

int hub_mqtt_sub_next(const hub_mqtt_subscribe_t *s, size_t *off, hub_mqtt_str_t *filter,
                      uint8_t *qos)
{
    struct cursor c = {s->entries, s->entries_len, *off};
    uint8_t q = 0;
    if (*off >= s->entries_len || !get_bytes(&c, filter))
        return 0;
    if (s->with_qos && !get_u8(&c, &q))
        return 0;
    if (qos)
        *qos = q;
    *off = c.off;
    return 1;
}

int hub_mqtt_decode(const uint8_t *pkt, size_t len, int level, hub_mqtt_packet_t *out,
                    const char **why)
{
    const char *ignored;
    size_t hdr, rl;
    struct cursor c;
    uint8_t type, flags, want;

    if (!why)
        why = &ignored;
    *why = NULL;
    memset(out, 0, sizeof *out);
    if (level != HUB_MQTT_V31)
        level = HUB_MQTT_V311;
    if (parse_remlen(pkt, len, &hdr, &rl) != 1 || hdr + rl != len)
        FAIL("remaining length does not match the packet");
    c.p = pkt;
    c.len = len;
    c.off = hdr;
    type = pkt[0] >> 4;
    flags = pkt[0] & 0x0F;
    out->type = type;
    out->flags = flags;

    switch (type) {
    case HUB_MQTT_CONNECT: return decode_connect(&c, flags, &out->u.connect, why);
    case HUB_MQTT_PUBLISH: return decode_publish(&c, level, flags, &out->u.publish, why);
    case HUB_MQTT_PUBACK:
    case HUB_MQTT_PUBREC:
    case HUB_MQTT_PUBREL:
    case HUB_MQTT_PUBCOMP:
        want = type == HUB_MQTT_PUBREL ? 0x02 : 0x00;
        if (level == HUB_MQTT_V31 && type == HUB_MQTT_PUBREL)
            flags &= 0x07;
        if (flags != want)
            FAIL("acknowledgement: invalid header flags");
        if (rl != 2)
            FAIL("acknowledgement: remaining length is not 2");
        get_u16(&c, &out->u.packet_id);
        if (out->u.packet_id == 0)
            FAIL("acknowledgement: packet id 0");
        return 0;
    case HUB_MQTT_SUBSCRIBE:
    case HUB_MQTT_UNSUBSCRIBE:
        if (level == HUB_MQTT_V31)
            flags &= 0x07;
        if (flags != 0x02)
            FAIL("SUBSCRIBE/UNSUBSCRIBE: header flags are not 0010");
        return decode_subscribe(&c, type == HUB_MQTT_SUBSCRIBE, &out->u.subscribe, why);
    case HUB_MQTT_PINGREQ:
    case HUB_MQTT_DISCONNECT:
        if (flags != 0)
            FAIL("PINGREQ/DISCONNECT: reserved header flags set");
        if (rl != 0)
            FAIL("PINGREQ/DISCONNECT: non-empty body");
        return 0;
    default: FAIL("packet type not accepted from a client");
    }
}

/* Encodes v (<= HUB_MQTT_MAX_REMAINING) at out; returns the bytes written (1..4). */
static size_t put_remlen(uint8_t *out, size_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        if (v > 0)
            b |= 0x80;
        out[n++] = b;
    } while (v > 0);
    return n;
}

size_t hub_mqtt_connack(uint8_t out[4], int session_present, uint8_t rc)
{
    out[0] = HUB_MQTT_CONNACK << 4;
    out[1] = 2;
    out[2] = (rc == 0 && session_present) ? 1 : 0;
    out[3] = rc;
    return 4;
}

size_t hub_mqtt_ack(uint8_t out[4], int type, uint16_t packet_id)
{
    if (type != HUB_MQTT_PUBACK && type != HUB_MQTT_PUBREC && type != HUB_MQTT_PUBREL &&
        type != HUB_MQTT_PUBCOMP && type != HUB_MQTT_UNSUBACK)
        return 0;
    out[0] = (uint8_t)((type << 4) | (type == HUB_MQTT_PUBREL ? 0x02 : 0));
    out[1] = 2;
    out[2] = packet_id >> 8;
    out[3] = packet_id & 0xFF;
    return 4;
}

size_t hub_mqtt_pingresp(uint8_t out[2])
{
    out[0] = HUB_MQTT_PINGRESP << 4;
    out[1] = 0;
    return 2;
}

int hub_mqtt_suback(hub_buf_t *b, uint16_t packet_id, const uint8_t *codes, size_t n)
{
    uint8_t hdr[7];
    size_t h;
    int rc;
    if (n == 0 || n > HUB_MQTT_MAX_REMAINING - 2)
        return HUB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (codes[i] > 2 && codes[i] != HUB_MQTT_SUBACK_FAILURE)
            return HUB_EINVAL;
    hdr[0] = HUB_MQTT_SUBACK << 4;
    h = 1 + put_remlen(hdr + 1, 2 + n);
    hdr[h++] = packet_id >> 8;
    hdr[h++] = packet_id & 0xFF;
    if ((rc = hub_buf_reserve(b, h + n)) < 0)
        return rc;
    hub_buf_append(b, hdr, h);
    hub_buf_append(b, codes, n);
    return 0;
}

size_t hub_mqtt_publish_header(uint8_t *out, const char *topic, size_t topic_len, int qos,
                               int retain, int dup, uint16_t packet_id, size_t payload_len)
{
    size_t vh, n;
    if (qos < 0 || qos > 2 || topic_len > 65535 || (qos > 0 && packet_id == 0))
        return 0;
    vh = 2 + topic_len + (qos > 0 ? 2 : 0);
    if (payload_len > HUB_MQTT_MAX_REMAINING - vh)
        return 0;
    out[0] = (uint8_t)((HUB_MQTT_PUBLISH << 4) | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0));
    n = 1 + put_remlen(out + 1, vh + payload_len);
    out[n++] = (uint8_t)(topic_len >> 8);
    out[n++] = topic_len & 0xFF;
    if (topic_len)
        memcpy(out + n, topic, topic_len);
    n += topic_len;
    if (qos > 0) {
        out[n++] = packet_id >> 8;
        out[n++] = packet_id & 0xFF;
    }
    return n;
}

int hub_mqtt_publish_append(hub_buf_t *b, const char *topic, size_t topic_len, int qos, int retain,
                            int dup, uint16_t packet_id, const uint8_t *payload, size_t payload_len)
{
    size_t h;
    int rc;
    if (topic_len > 65535 || payload_len > HUB_MQTT_MAX_REMAINING)
        return HUB_EINVAL;
    /* The header is at most 9 + topic_len bytes: write it in place, then the payload. */
    if ((rc = hub_buf_reserve(b, 9 + topic_len + payload_len)) < 0)
        return rc;
    h = hub_mqtt_publish_header(b->data + b->len, topic, topic_len, qos, retain, dup, packet_id,
                                payload_len);
    if (h == 0)
        return HUB_EINVAL;
    b->len += h;
    if (payload_len)
        memcpy(b->data + b->len, payload, payload_len);
    b->len += payload_len;
    b->data[b->len] = 0;
    return 0;
}

const char *hub_mqtt_type_name(int type)
{
    static const char *const names[] = {"?",         "CONNECT",  "CONNACK",     "PUBLISH",
                                        "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                        "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                        "PINGREQ",   "PINGRESP", "DISCONNECT",  "?"};
    if (type < 0 || type > 15)
        return "?";
    return names[type];
}
