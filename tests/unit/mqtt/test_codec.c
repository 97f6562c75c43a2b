/* Unit tests for mqtt/codec.c: framing, decoding of client packets (valid and every
 * rejected form), encoding of server packets and round trips. */
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"
#include "tests/unit/harness.h"
#include "util/buf.h"
#include "util/error.h"

/* --- helpers building client packets --- */

static void put_u16(hub_buf_t *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    hub_buf_append(b, x, 2);
}

static void put_str(hub_buf_t *b, const char *s, size_t n)
{
    put_u16(b, (unsigned)n);
    hub_buf_append(b, s, n);
}

static void put_cstr(hub_buf_t *b, const char *s)
{
    put_str(b, s, strlen(s));
}

static void put_u8(hub_buf_t *b, uint8_t v)
{
    hub_buf_append(b, &v, 1);
}

/* Wraps body into out: first byte, minimal remaining length, body. Returns the length. */
static size_t wrap(hub_buf_t *out, uint8_t first, const hub_buf_t *body)
{
    size_t v = body->len;
    out->len = 0;
    put_u8(out, first);
    do {
        uint8_t d = v % 128;
        v /= 128;
        put_u8(out, (uint8_t)(d | (v ? 0x80 : 0)));
    } while (v);
    hub_buf_append(out, body->data, body->len);
    return out->len;
}

/* The last packet built by dec(): decoded fields point into it, so it outlives the call. */
static hub_buf_t dec_pk = HUB_BUF_INIT;

/* Decodes body wrapped with first byte; returns the decode result. */
static int dec(uint8_t first, const hub_buf_t *body, int level, hub_mqtt_packet_t *p,
               const char **why)
{
    size_t n = wrap(&dec_pk, first, body);
    return hub_mqtt_decode(dec_pk.data, n, level, p, why);
}

/* Variable header of a CONNECT. */
static void connect_vh(hub_buf_t *b, const char *name, uint8_t level, uint8_t flags,
                       unsigned keepalive)
{
    b->len = 0;
    put_cstr(b, name);
    put_u8(b, level);
    put_u8(b, flags);
    put_u16(b, keepalive);
}

/* --- framing --- */

static void test_frame_basic(void)
{
    const uint8_t ping[] = {0xC0, 0x00, 0xC0};
    size_t n = 99;
    CHECK_EQ(hub_mqtt_frame(ping, 0, 100, &n), 0);
    CHECK_EQ(hub_mqtt_frame(ping, 1, 100, &n), 0);
    CHECK_EQ(hub_mqtt_frame(ping, 3, 100, &n), 1);
    CHECK_EQ(n, 2);
    CHECK_EQ(hub_mqtt_frame(ping, 2, 2, &n), 1);
    CHECK_EQ(hub_mqtt_frame(ping, 2, 1, &n), HUB_ERANGE);
}

static void test_frame_remlen_edges(void)
{
    static const struct {
        size_t rl;
        uint8_t enc[4];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {127, {0x7F}, 1},
        {128, {0x80, 0x01}, 2},
        {16383, {0xFF, 0x7F}, 2},
        {16384, {0x80, 0x80, 0x01}, 3},
        {2097151, {0xFF, 0xFF, 0x7F}, 3},
        {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
        {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t hdr[5] = {0x30};
        size_t rl = cases[i].rl, total = 1 + cases[i].n + rl, n = 0;
        memcpy(hdr + 1, cases[i].enc, cases[i].n);
        /* Header alone: complete only for rl 0; too big as soon as the header is read. */
        CHECK_EQ(hub_mqtt_frame(hdr, 1 + cases[i].n, SIZE_MAX, &n), rl == 0 ? 1 : 0);
        if (rl > 0)
            CHECK_EQ(hub_mqtt_frame(hdr, 1 + cases[i].n, total - 1, &n), HUB_ERANGE);
        /* The encoder writes the same bytes: a QoS 0 PUBLISH to "t" with rl - 3 bytes. */
        if (rl >= 3) {
            uint8_t out[16];
            size_t h = hub_mqtt_publish_header(out, "t", 1, 0, 0, 0, 0, rl - 3);
            CHECK_EQ(h, 1 + cases[i].n + 3);
            CHECK(memcmp(out + 1, cases[i].enc, cases[i].n) == 0);
        }
        /* Whole packets up to 2 MiB: frame, then decode as a PUBLISH. */
        if (rl >= 3 && rl <= 2097152) {
            hub_buf_t b = HUB_BUF_INIT;
            hub_mqtt_packet_t p;
            uint8_t *payload = calloc(1, rl - 3 + 1);
            CHECK_EQ(hub_mqtt_publish_append(&b, "t", 1, 0, 0, 0, 0, payload, rl - 3), 0);
            CHECK_EQ(b.len, total);
            CHECK_EQ(hub_mqtt_frame(b.data, b.len - 1, SIZE_MAX, &n), 0);
            CHECK_EQ(hub_mqtt_frame(b.data, b.len, total, &n), 1);
            CHECK_EQ(n, total);
            CHECK_EQ(hub_mqtt_decode(b.data, b.len, 4, &p, NULL), 0);
            CHECK_EQ(p.u.publish.payload_len, rl - 3);
            free(payload);
            hub_buf_free(&b);
        }
    }
    /* Largest value encodable: the encoder refuses one byte more. */
    {
        uint8_t out[16];
        CHECK_EQ(hub_mqtt_publish_header(out, "t", 1, 0, 0, 0, 0, 268435455 - 3), 8);
        CHECK_EQ(hub_mqtt_publish_header(out, "t", 1, 0, 0, 0, 0, 268435455 - 2), 0);
    }
}

static void test_frame_malformed_and_nonminimal(void)
{
    const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    const uint8_t nonmin[] = {0xC0, 0x80, 0x80, 0x00};
    hub_mqtt_packet_t p;
    size_t n = 0;
    CHECK_EQ(hub_mqtt_frame(five, 4, SIZE_MAX, &n), 0);
    CHECK_EQ(hub_mqtt_frame(five, 5, SIZE_MAX, &n), HUB_EINVAL);
    CHECK_EQ(hub_mqtt_frame(five, 6, SIZE_MAX, &n), HUB_EINVAL);
    CHECK_EQ(hub_mqtt_decode(five, 6, 4, &p, NULL), HUB_EINVAL);
    /* 3.1.1 does not require the minimal encoding (MQTT 5 does): accepted. */
    CHECK_EQ(hub_mqtt_frame(nonmin, sizeof nonmin, 100, &n), 1);
    CHECK_EQ(n, 4);
    CHECK_EQ(hub_mqtt_decode(nonmin, n, 4, &p, NULL), 0);
    CHECK_EQ(p.type, HUB_MQTT_PINGREQ);
}

static void test_frame_oversized_early(void)
{
    /* PUBLISH announcing 1000 bytes: refused from the 3 header bytes. */
    const uint8_t hdr[] = {0x30, 0xE8, 0x07};
    size_t n = 0;
    CHECK_EQ(hub_mqtt_frame(hdr, 2, 100, &n), 0);
    CHECK_EQ(hub_mqtt_frame(hdr, 3, 100, &n), HUB_ERANGE);
    CHECK_EQ(hub_mqtt_frame(hdr, 3, 1003, &n), 0);
    CHECK_EQ(hub_mqtt_frame(hdr, 3, 1002, &n), HUB_ERANGE);
}

static void test_frame_fragmentation(void)
{
    hub_buf_t stream = HUB_BUF_INIT, body = HUB_BUF_INIT, pk = HUB_BUF_INIT;
    uint8_t payload[300], acc[1024];
    const int want[] = {HUB_MQTT_CONNECT, HUB_MQTT_PUBLISH, HUB_MQTT_SUBSCRIBE,
                        HUB_MQTT_PINGREQ, HUB_MQTT_PUBREL,  HUB_MQTT_DISCONNECT};
    size_t have = 0, got = 0;

    memset(payload, 'x', sizeof payload);
    connect_vh(&body, "MQTT", 4, 0x02, 60);
    put_cstr(&body, "dev-1");
    wrap(&pk, 0x10, &body);
    hub_buf_append(&stream, pk.data, pk.len);
    hub_mqtt_publish_append(&stream, "devices/d/telemetry", 19, 1, 0, 0, 7, payload,
                            sizeof payload);
    body.len = 0;
    put_u16(&body, 9);
    put_cstr(&body, "devices/d/commands/#");
    put_u8(&body, 1);
    wrap(&pk, 0x82, &body);
    hub_buf_append(&stream, pk.data, pk.len);
    hub_buf_append(&stream, "\xC0\x00", 2);
    hub_buf_append(&stream, "\x62\x02\x00\x07", 4);
    hub_buf_append(&stream, "\xE0\x00", 2);

    for (size_t i = 0; i < stream.len; i++) {
        size_t n;
        int rc;
        acc[have++] = stream.data[i];
        while ((rc = hub_mqtt_frame(acc, have, sizeof acc, &n)) == 1) {
            hub_mqtt_packet_t p;
            CHECK_EQ(hub_mqtt_decode(acc, n, 4, &p, NULL), 0);
            CHECK(got < 6);
            if (got < 6)
                CHECK_EQ(p.type, want[got]);
            got++;
            memmove(acc, acc + n, have - n);
            have -= n;
        }
        CHECK_EQ(rc, 0);
    }
    CHECK_EQ(got, 6);
    CHECK_EQ(have, 0);
    hub_buf_free(&stream);
    hub_buf_free(&body);
    hub_buf_free(&pk);
}

/* --- CONNECT --- */

static void test_connect_311_full(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    const char *why = "x";
    const hub_mqtt_connect_t *c = &p.u.connect;
    /* The spec's example flags 0xCE: user name, password, will QoS 1, will, clean. */
    connect_vh(&b, "MQTT", 4, 0xCE, 10);
    put_cstr(&b, "client-1");
    put_cstr(&b, "devices/c/status");
    put_str(&b, "gone\0!", 6);
    put_cstr(&b, "user");
    put_str(&b, "\x00\xFFpw", 4);
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    CHECK(why == NULL);
    CHECK_EQ(p.type, HUB_MQTT_CONNECT);
    CHECK_EQ(c->level, 4);
    CHECK_EQ(c->clean, 1);
    CHECK_EQ(c->will, 1);
    CHECK_EQ(c->will_qos, 1);
    CHECK_EQ(c->will_retain, 0);
    CHECK_EQ(c->has_username, 1);
    CHECK_EQ(c->has_password, 1);
    CHECK_EQ(c->keepalive, 10);
    CHECK_EQ(c->refuse, 0);
    CHECK(c->client_id.len == 8 && memcmp(c->client_id.ptr, "client-1", 8) == 0);
    CHECK(c->will_topic.len == 16 && memcmp(c->will_topic.ptr, "devices/c/status", 16) == 0);
    CHECK(c->will_payload.len == 6 && memcmp(c->will_payload.ptr, "gone\0!", 6) == 0);
    CHECK(c->username.len == 4 && memcmp(c->username.ptr, "user", 4) == 0);
    CHECK(c->password.len == 4 && memcmp(c->password.ptr, "\x00\xFFpw", 4) == 0);

    /* Minimal: empty client id with clean session, will retain QoS 2. */
    connect_vh(&b, "MQTT", 4, 0x02 | 0x04 | 0x10 | 0x20, 0);
    put_cstr(&b, "");
    put_cstr(&b, "w");
    put_cstr(&b, "");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    CHECK_EQ(c->client_id.len, 0);
    CHECK_EQ(c->will_qos, 2);
    CHECK_EQ(c->will_retain, 1);
    CHECK_EQ(c->will_payload.len, 0);
    hub_buf_free(&b);
}

static void test_connect_31(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    const char *why;
    /* 3.1 limits client ids to 23 characters; longer ones are accepted. */
    connect_vh(&b, "MQIsdp", 3, 0x00, 30);
    put_cstr(&b, "a-client-id-longer-than-23-characters");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    CHECK_EQ(p.u.connect.level, 3);
    CHECK_EQ(p.u.connect.client_id.len, 37);
    /* Empty client id: identifier rejected, even with clean session. */
    connect_vh(&b, "MQIsdp", 3, 0x02, 30);
    put_cstr(&b, "");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_EQ(p.u.connect.refuse, HUB_MQTT_CONNACK_BAD_CLIENT_ID);
    /* Password without user name: allowed in 3.1, malformed in 3.1.1. */
    connect_vh(&b, "MQIsdp", 3, 0x42, 0);
    put_cstr(&b, "c");
    put_cstr(&b, "secret");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    CHECK_EQ(p.u.connect.has_password, 1);
    CHECK_EQ(p.u.connect.password.len, 6);
    b.data[8] = 'T'; /* "MQIsdp" -> "MQTTdp" is no name at all */
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    connect_vh(&b, "MQTT", 4, 0x42, 0);
    put_cstr(&b, "c");
    put_cstr(&b, "secret");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "CONNECT: password without user name");
    /* 3.1: user name/password flags without their fields at the end are tolerated. */
    connect_vh(&b, "MQIsdp", 3, 0xC0, 0);
    put_cstr(&b, "c");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    CHECK_EQ(p.u.connect.has_username, 0);
    CHECK_EQ(p.u.connect.has_password, 0);
    connect_vh(&b, "MQIsdp", 3, 0xC0, 0);
    put_cstr(&b, "c");
    put_cstr(&b, "u");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    CHECK_EQ(p.u.connect.has_username, 1);
    CHECK_EQ(p.u.connect.has_password, 0);
    connect_vh(&b, "MQTT", 4, 0xC0, 0);
    put_cstr(&b, "c");
    put_cstr(&b, "u");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    hub_buf_free(&b);
}

static void test_connect_refusals(void)
{
    static const struct {
        const char *name;
        uint8_t level;
    } bad[] = {{"MQTT", 3}, {"MQTT", 5}, {"MQTT", 0x84}, {"MQIsdp", 4}, {"MQIsdp", 0}};
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    const char *why;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        connect_vh(&b, bad[i].name, bad[i].level, 0x02, 0);
        put_cstr(&b, "c");
        CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
        CHECK_EQ(p.u.connect.refuse, HUB_MQTT_CONNACK_BAD_VERSION);
        CHECK_STR(why, "CONNECT: unsupported protocol level");
    }
    /* Unknown protocol name: just close. */
    connect_vh(&b, "HTTP", 4, 0x02, 0);
    put_cstr(&b, "c");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_EQ(p.u.connect.refuse, 0);
    /* 3.1.1: empty client id needs clean session, else identifier rejected. */
    connect_vh(&b, "MQTT", 4, 0x00, 0);
    put_cstr(&b, "");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_EQ(p.u.connect.refuse, HUB_MQTT_CONNACK_BAD_CLIENT_ID);
    hub_buf_free(&b);
}

static void test_connect_malformed(void)
{
    static const struct {
        uint8_t flags;
        const char *why;
    } bad_flags[] = {
        {0x03, "CONNECT: reserved connect flag set"},
        {0x1E, "CONNECT: will QoS 3"},
        {0x0A, "CONNECT: will QoS/retain without will flag"},
        {0x22, "CONNECT: will QoS/retain without will flag"},
        {0x42, "CONNECT: password without user name"},
    };
    hub_buf_t b = HUB_BUF_INIT, pk = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    const char *why;
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        connect_vh(&b, "MQTT", 4, bad_flags[i].flags, 0);
        put_cstr(&b, "c");
        put_cstr(&b, "t");
        put_cstr(&b, "m");
        CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
        CHECK_STR(why, bad_flags[i].why);
        CHECK_EQ(p.u.connect.refuse, 0);
    }
    /* Header flags must be 0. */
    connect_vh(&b, "MQTT", 4, 0x02, 0);
    put_cstr(&b, "c");
    CHECK_EQ(dec(0x12, &b, 0, &p, &why), HUB_EINVAL);
    /* Trailing byte. */
    put_u8(&b, 0);
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "CONNECT: trailing bytes");
    /* Every truncation of a full CONNECT is malformed. */
    connect_vh(&b, "MQTT", 4, 0xEE, 10);
    put_cstr(&b, "client");
    put_cstr(&b, "will/topic");
    put_cstr(&b, "msg");
    put_cstr(&b, "user");
    put_cstr(&b, "pass");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), 0);
    {
        size_t full = b.len;
        for (size_t cut = 0; cut < full; cut++) {
            b.len = cut;
            CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
            CHECK(why != NULL);
        }
    }
    /* Invalid UTF-8 client id, will topic with a wildcard or empty, bad user name. */
    connect_vh(&b, "MQTT", 4, 0x02, 0);
    put_str(&b, "a\xC0\x80", 3);
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "CONNECT: client id is not valid UTF-8");
    connect_vh(&b, "MQTT", 4, 0x06, 0);
    put_cstr(&b, "c");
    put_cstr(&b, "a/+");
    put_cstr(&b, "m");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "CONNECT: invalid will topic");
    connect_vh(&b, "MQTT", 4, 0x06, 0);
    put_cstr(&b, "c");
    put_cstr(&b, "");
    put_cstr(&b, "m");
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    connect_vh(&b, "MQTT", 4, 0x82, 0);
    put_cstr(&b, "c");
    put_str(&b, "\xED\xA0\x80", 3);
    CHECK_EQ(dec(0x10, &b, 0, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "CONNECT: user name is not valid UTF-8");
    /* Remaining length disagreeing with the buffer handed to decode. */
    connect_vh(&b, "MQTT", 4, 0x02, 0);
    put_cstr(&b, "c");
    wrap(&pk, 0x10, &b);
    CHECK_EQ(hub_mqtt_decode(pk.data, pk.len - 1, 4, &p, &why), HUB_EINVAL);
    CHECK_EQ(hub_mqtt_decode(pk.data, pk.len, 4, &p, &why), 0);
    hub_buf_free(&pk);
    hub_buf_free(&b);
}

/* --- PUBLISH --- */

static void test_publish_decode(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    const hub_mqtt_publish_t *m = &p.u.publish;
    const char *why;
    /* QoS 1, retain, DUP, packet id 10, payload "hi". */
    put_cstr(&b, "a/b");
    put_u16(&b, 10);
    hub_buf_append(&b, "hi", 2);
    CHECK_EQ(dec(0x3B, &b, 4, &p, &why), 0);
    CHECK_EQ(m->qos, 1);
    CHECK_EQ(m->retain, 1);
    CHECK_EQ(m->dup, 1);
    CHECK_EQ(m->packet_id, 10);
    CHECK(m->topic.len == 3 && memcmp(m->topic.ptr, "a/b", 3) == 0);
    CHECK(m->payload_len == 2 && memcmp(m->payload, "hi", 2) == 0);
    CHECK_EQ(dec(0x36, &b, 4, &p, &why), HUB_EINVAL); /* QoS 3 */
    CHECK_STR(why, "PUBLISH: QoS 3");
    /* QoS 0: no packet id, empty payload is fine. */
    b.len = 0;
    put_cstr(&b, "$SYS/x");
    CHECK_EQ(dec(0x30, &b, 4, &p, &why), 0);
    CHECK_EQ(m->payload_len, 0);
    CHECK_EQ(m->packet_id, 0);
    /* DUP on QoS 0: malformed in 3.1.1, ignored in 3.1. */
    CHECK_EQ(dec(0x38, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "PUBLISH: DUP set on QoS 0");
    CHECK_EQ(dec(0x38, &b, 3, &p, &why), 0);
    CHECK_EQ(m->dup, 0);
    /* Packet id 0 and missing packet id for QoS > 0. */
    b.len = 0;
    put_cstr(&b, "a");
    CHECK_EQ(dec(0x32, &b, 4, &p, &why), HUB_EINVAL);
    put_u16(&b, 0);
    CHECK_EQ(dec(0x34, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "PUBLISH: packet id 0");
    /* Topics: wildcards, empty, NUL, bad UTF-8, truncated. */
    {
        static const struct {
            const char *s;
            size_t n;
        } bad[] = {{"a/+", 3}, {"#", 1}, {"a/#", 3}, {"", 0}, {"a\0b", 3}, {"\xFF", 1}};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            b.len = 0;
            put_str(&b, bad[i].s, bad[i].n);
            CHECK_EQ(dec(0x30, &b, 4, &p, &why), HUB_EINVAL);
            CHECK_STR(why, "PUBLISH: invalid topic name");
        }
    }
    b.len = 0;
    put_u16(&b, 5);
    hub_buf_append(&b, "abc", 3);
    CHECK_EQ(dec(0x30, &b, 4, &p, &why), HUB_EINVAL);
    b.len = 1;
    CHECK_EQ(dec(0x30, &b, 4, &p, &why), HUB_EINVAL);
    hub_buf_free(&b);
}

static void test_publish_roundtrip(void)
{
    static const char topic[] = "devices/d1/telemetry";
    const uint8_t payload[] = {0, 1, 2, 0xFF};
    for (int qos = 0; qos <= 2; qos++) {
        for (int flags = 0; flags < 4; flags++) {
            hub_buf_t b = HUB_BUF_INIT;
            hub_mqtt_packet_t p;
            int retain = flags & 1, dup = qos > 0 && (flags & 2);
            uint16_t id = qos ? 0xBEEF : 0;
            size_t n;
            CHECK_EQ(hub_mqtt_publish_append(&b, topic, 20, qos, retain, dup, id, payload, 4), 0);
            CHECK_EQ(hub_mqtt_frame(b.data, b.len, 1000, &n), 1);
            CHECK_EQ(n, b.len);
            CHECK_EQ(hub_mqtt_decode(b.data, b.len, 4, &p, NULL), 0);
            CHECK_EQ(p.type, HUB_MQTT_PUBLISH);
            CHECK_EQ(p.u.publish.qos, qos);
            CHECK_EQ(p.u.publish.retain, retain);
            CHECK_EQ(p.u.publish.dup, dup);
            CHECK_EQ(p.u.publish.packet_id, id);
            CHECK(p.u.publish.topic.len == 20 && memcmp(p.u.publish.topic.ptr, topic, 20) == 0);
            CHECK(p.u.publish.payload_len == 4 && memcmp(p.u.publish.payload, payload, 4) == 0);
            hub_buf_free(&b);
        }
    }
    {
        uint8_t *out = malloc(HUB_MQTT_PUBLISH_HEADER_MAX);
        char *big = malloc(65536);
        memset(big, 'a', 65536);
        CHECK_EQ(hub_mqtt_publish_header(out, big, 65535, 2, 0, 0, 1, 0), 1 + 3 + 65539);
        CHECK_EQ(hub_mqtt_publish_header(out, big, 65535, 2, 0, 0, 1, 3000000),
                 HUB_MQTT_PUBLISH_HEADER_MAX);
        CHECK_EQ(hub_mqtt_publish_header(out, big, 65536, 0, 0, 0, 0, 0), 0);
        CHECK_EQ(hub_mqtt_publish_header(out, "t", 1, 3, 0, 0, 1, 0), 0);
        CHECK_EQ(hub_mqtt_publish_header(out, "t", 1, 1, 0, 0, 0, 0), 0);
        /* Spec-shaped bytes: QoS 1 retain to "a/b" id 10, payload 2. */
        CHECK_EQ(hub_mqtt_publish_header(out, "a/b", 3, 1, 1, 0, 10, 2), 9);
        CHECK(memcmp(out,
                     "\x33\x09\x00\x03"
                     "a/b\x00\x0A",
                     9) == 0);
        free(out);
        free(big);
    }
}

/* --- acknowledgements, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT --- */

static void test_acks(void)
{
    const int types[] = {HUB_MQTT_PUBACK, HUB_MQTT_PUBREC, HUB_MQTT_PUBREL, HUB_MQTT_PUBCOMP};
    hub_mqtt_packet_t p;
    const char *why;
    for (size_t i = 0; i < 4; i++) {
        uint8_t out[4], bad[5];
        int t = types[i];
        CHECK_EQ(hub_mqtt_ack(out, t, 0x1234), 4);
        CHECK_EQ(out[0], (t << 4) | (t == HUB_MQTT_PUBREL ? 2 : 0));
        CHECK(out[1] == 2 && out[2] == 0x12 && out[3] == 0x34);
        CHECK_EQ(hub_mqtt_decode(out, 4, 4, &p, &why), 0);
        CHECK_EQ(p.type, t);
        CHECK_EQ(p.u.packet_id, 0x1234);
        memcpy(bad, out, 4);
        bad[0] ^= 0x02; /* wrong flags (0010 for PUBREL, 0000 for others) */
        CHECK_EQ(hub_mqtt_decode(bad, 4, 4, &p, &why), HUB_EINVAL);
        CHECK_EQ(hub_mqtt_decode(bad, 4, 3, &p, &why), HUB_EINVAL);
        memcpy(bad, out, 4);
        bad[2] = bad[3] = 0; /* packet id 0 */
        CHECK_EQ(hub_mqtt_decode(bad, 4, 4, &p, &why), HUB_EINVAL);
        memcpy(bad, out, 4);
        bad[1] = 3;
        bad[4] = 0;
        CHECK_EQ(hub_mqtt_decode(bad, 5, 4, &p, &why), HUB_EINVAL);
        bad[1] = 1;
        CHECK_EQ(hub_mqtt_decode(bad, 3, 4, &p, &why), HUB_EINVAL);
    }
    /* A 3.1 PUBREL may carry DUP; 3.1.1 may not. */
    {
        const uint8_t dup_rel[] = {0x6A, 0x02, 0x00, 0x01};
        CHECK_EQ(hub_mqtt_decode(dup_rel, 4, 3, &p, &why), 0);
        CHECK_EQ(hub_mqtt_decode(dup_rel, 4, 4, &p, &why), HUB_EINVAL);
    }
}

static void test_subscribe(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    hub_mqtt_str_t f;
    const char *why;
    uint8_t qos;
    size_t off = 0;
    put_u16(&b, 10);
    put_cstr(&b, "a/+/c");
    put_u8(&b, 2);
    put_cstr(&b, "#");
    put_u8(&b, 0);
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), 0);
    CHECK_EQ(p.u.subscribe.packet_id, 10);
    CHECK_EQ(p.u.subscribe.count, 2);
    CHECK_EQ(hub_mqtt_sub_next(&p.u.subscribe, &off, &f, &qos), 1);
    CHECK(f.len == 5 && memcmp(f.ptr, "a/+/c", 5) == 0 && qos == 2);
    CHECK_EQ(hub_mqtt_sub_next(&p.u.subscribe, &off, &f, &qos), 1);
    CHECK(f.len == 1 && f.ptr[0] == '#' && qos == 0);
    CHECK_EQ(hub_mqtt_sub_next(&p.u.subscribe, &off, &f, &qos), 0);
    /* Header flags must be 0010 (3.1 may add DUP). */
    CHECK_EQ(dec(0x80, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_EQ(dec(0x83, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_EQ(dec(0x8A, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_EQ(dec(0x8A, &b, 3, &p, &why), 0);
    /* Missing QoS byte, QoS 3, reserved QoS bits. */
    b.len--;
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "SUBSCRIBE: missing requested QoS");
    put_u8(&b, 3);
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
    b.len--;
    put_u8(&b, 0x41);
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "SUBSCRIBE: invalid requested QoS");
    /* No filter at all; packet id 0; truncated packet id. */
    b.len = 0;
    put_u16(&b, 1);
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
    CHECK_STR(why, "SUBSCRIBE: no topic filter");
    b.len = 0;
    put_u16(&b, 0);
    put_cstr(&b, "a");
    put_u8(&b, 0);
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
    b.len = 1;
    CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
    /* Invalid filters. */
    {
        static const char *const bad[] = {"a/#/b", "a+", "#a", "", "a/b#", "+a/b"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            b.len = 0;
            put_u16(&b, 1);
            put_cstr(&b, bad[i]);
            put_u8(&b, 0);
            CHECK_EQ(dec(0x82, &b, 4, &p, &why), HUB_EINVAL);
            CHECK_STR(why, "SUBSCRIBE: invalid topic filter");
        }
    }
    hub_buf_free(&b);
}

static void test_unsubscribe(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t p;
    hub_mqtt_str_t f;
    const char *why;
    size_t off = 0;
    put_u16(&b, 7);
    put_cstr(&b, "a/#");
    put_cstr(&b, "b");
    CHECK_EQ(dec(0xA2, &b, 4, &p, &why), 0);
    CHECK_EQ(p.type, HUB_MQTT_UNSUBSCRIBE);
    CHECK_EQ(p.u.subscribe.count, 2);
    CHECK_EQ(hub_mqtt_sub_next(&p.u.subscribe, &off, &f, NULL), 1);
    CHECK(f.len == 3 && memcmp(f.ptr, "a/#", 3) == 0);
    CHECK_EQ(hub_mqtt_sub_next(&p.u.subscribe, &off, &f, NULL), 1);
    CHECK(f.len == 1 && f.ptr[0] == 'b');
    CHECK_EQ(hub_mqtt_sub_next(&p.u.subscribe, &off, &f, NULL), 0);
    CHECK_EQ(dec(0xA0, &b, 4, &p, &why), HUB_EINVAL);
    b.len--; /* truncated string */
    CHECK_EQ(dec(0xA2, &b, 4, &p, &why), HUB_EINVAL);
    b.len = 2;
    CHECK_EQ(dec(0xA2, &b, 4, &p, &why), HUB_EINVAL);
    put_cstr(&b, "a/#/b");
    CHECK_EQ(dec(0xA2, &b, 4, &p, &why), HUB_EINVAL);
    hub_buf_free(&b);
}

static void test_ping_disconnect_unexpected(void)
{
    static const uint8_t bad[][4] = {
        {0xC1, 0x00},
        {0xE2, 0x00},
        {0xC0, 0x01, 0x00},
        {0xE0, 0x01, 0x00},
        /* Server->client or reserved types from a client. */
        {0x20, 0x02, 0x00, 0x00},
        {0x90, 0x02, 0x00, 0x01},
        {0xB0, 0x02, 0x00, 0x01},
        {0xD0, 0x00},
        {0x00, 0x00},
        {0xF0, 0x00},
    };
    static const size_t bad_len[] = {2, 2, 3, 3, 4, 4, 4, 2, 2, 2};
    hub_mqtt_packet_t p;
    const char *why;
    CHECK_EQ(hub_mqtt_decode((const uint8_t *)"\xC0\x00", 2, 4, &p, &why), 0);
    CHECK_EQ(p.type, HUB_MQTT_PINGREQ);
    CHECK_EQ(hub_mqtt_decode((const uint8_t *)"\xE0\x00", 2, 3, &p, &why), 0);
    CHECK_EQ(p.type, HUB_MQTT_DISCONNECT);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        CHECK_EQ(hub_mqtt_decode(bad[i], bad_len[i], 4, &p, &why), HUB_EINVAL);
        CHECK(why != NULL);
    }
    CHECK_EQ(hub_mqtt_decode((const uint8_t *)"\xC0", 1, 4, &p, &why), HUB_EINVAL);
    CHECK_EQ(hub_mqtt_decode((const uint8_t *)"", 0, 4, &p, &why), HUB_EINVAL);
}

/* --- encoders and helpers --- */

static void test_encoders(void)
{
    uint8_t out[4];
    hub_buf_t b = HUB_BUF_INIT;
    const uint8_t codes[] = {0, 1, 2, 0x80};
    CHECK_EQ(hub_mqtt_connack(out, 1, 0), 4);
    CHECK(memcmp(out, "\x20\x02\x01\x00", 4) == 0);
    CHECK_EQ(hub_mqtt_connack(out, 1, HUB_MQTT_CONNACK_BAD_VERSION), 4);
    CHECK(memcmp(out, "\x20\x02\x00\x01", 4) == 0);
    CHECK_EQ(hub_mqtt_connack(out, 0, HUB_MQTT_CONNACK_NOT_AUTHORIZED), 4);
    CHECK(memcmp(out, "\x20\x02\x00\x05", 4) == 0);
    CHECK_EQ(hub_mqtt_ack(out, HUB_MQTT_UNSUBACK, 0x0102), 4);
    CHECK(memcmp(out, "\xB0\x02\x01\x02", 4) == 0);
    CHECK_EQ(hub_mqtt_ack(out, HUB_MQTT_CONNACK, 1), 0);
    CHECK_EQ(hub_mqtt_ack(out, HUB_MQTT_PUBLISH, 1), 0);
    CHECK_EQ(hub_mqtt_pingresp(out), 2);
    CHECK(out[0] == 0xD0 && out[1] == 0x00);
    CHECK_EQ(hub_mqtt_suback(&b, 0x000A, codes, 4), 0);
    CHECK_EQ(b.len, 8);
    CHECK(memcmp(b.data, "\x90\x06\x00\x0A\x00\x01\x02\x80", 8) == 0);
    CHECK_EQ(hub_mqtt_suback(&b, 1, codes, 0), HUB_EINVAL);
    CHECK_EQ(hub_mqtt_suback(&b, 1, (const uint8_t *)"\x03", 1), HUB_EINVAL);
    CHECK_EQ(b.len, 8);
    hub_buf_free(&b);
    /* A SUBACK with 200 codes needs a 2-byte remaining length. */
    {
        uint8_t many[200];
        size_t n;
        memset(many, 1, sizeof many);
        CHECK_EQ(hub_mqtt_suback(&b, 2, many, sizeof many), 0);
        CHECK_EQ(b.len, 1 + 2 + 2 + 200);
        CHECK_EQ(hub_mqtt_frame(b.data, b.len, 1000, &n), 1);
        CHECK_EQ(n, b.len);
        hub_buf_free(&b);
    }
    CHECK_STR(hub_mqtt_type_name(HUB_MQTT_SUBSCRIBE), "SUBSCRIBE");
    CHECK_STR(hub_mqtt_type_name(HUB_MQTT_DISCONNECT), "DISCONNECT");
    CHECK_STR(hub_mqtt_type_name(0), "?");
    CHECK_STR(hub_mqtt_type_name(99), "?");
}

int main(void)
{
    RUN(test_frame_basic);
    RUN(test_frame_remlen_edges);
    RUN(test_frame_malformed_and_nonminimal);
    RUN(test_frame_oversized_early);
    RUN(test_frame_fragmentation);
    RUN(test_connect_311_full);
    RUN(test_connect_31);
    RUN(test_connect_refusals);
    RUN(test_connect_malformed);
    RUN(test_publish_decode);
    RUN(test_publish_roundtrip);
    RUN(test_acks);
    RUN(test_subscribe);
    RUN(test_unsubscribe);
    RUN(test_ping_disconnect_unexpected);
    RUN(test_encoders);
    hub_buf_free(&dec_pk);
    HARNESS_EXIT();
}
