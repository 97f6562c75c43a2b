/* libFuzzer target for mqtt/codec.c: frames every packet in the input and decodes it as a
 * first packet (level 0), as 3.1 and as 3.1.1. Decoded PUBLISH packets are re-encoded and decoded
 * again (round trip); SUBSCRIBE filters go through the topic and subscription-tree code
 * against the PUBLISH topics of the same input. Must not crash, leak or trip a sanitizer.
 * Built and run by `./deploy/dev.sh fuzz` (docs/fuzzing.md). */
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"
#include "mqtt/subtree.h"
#include "mqtt/topic.h"
#include "util/buf.h"

#define MAX_PACKET (1u << 20)

static void count_cb(void *sub, uint8_t qos, void *ctx)
{
    if (qos > 2)
        abort();
    (*(size_t *)ctx)++;
}

static void check_publish(const hub_mqtt_publish_t *m, int level)
{
    hub_buf_t b = HUB_BUF_INIT;
    hub_mqtt_packet_t again;
    size_t n;
    if (hub_mqtt_publish_append(&b, m->topic.ptr, m->topic.len, m->qos, m->retain, m->dup,
                                m->packet_id, m->payload, m->payload_len) != 0)
        abort();
    if (hub_mqtt_frame(b.data, b.len, SIZE_MAX, &n) != 1 || n != b.len)
        abort();
    if (hub_mqtt_decode(b.data, b.len, level, &again, NULL) != 0)
        abort();
    if (again.u.publish.qos != m->qos || again.u.publish.retain != m->retain ||
        again.u.publish.dup != m->dup || again.u.publish.packet_id != m->packet_id ||
        again.u.publish.topic.len != m->topic.len ||
        memcmp(again.u.publish.topic.ptr, m->topic.ptr, m->topic.len) != 0 ||
        again.u.publish.payload_len != m->payload_len ||
        (m->payload_len && memcmp(again.u.publish.payload, m->payload, m->payload_len) != 0))
        abort();
    hub_buf_free(&b);
}

static void check_subscribe(const hub_mqtt_subscribe_t *s, hub_subtree_t *tree, int *subs,
                            const hub_mqtt_str_t *topic)
{
    hub_mqtt_str_t f;
    uint8_t qos = 0;
    size_t off = 0, count = 0;
    while (hub_mqtt_sub_next(s, &off, &f, &qos)) {
        if (!hub_topic_filter_valid(f.ptr, f.len) || qos > 2)
            abort();
        /* Insert may only fail with HUB_ERANGE (too many levels); ENOMEM is not fuzzed. */
        if (s->with_qos)
            (void)hub_subtree_insert(tree, f.ptr, f.len, &subs[count % 8], qos);
        else
            (void)hub_subtree_remove(tree, f.ptr, f.len, &subs[count % 8]);
        if (topic->len) {
            /* A topic name is a filter matching only itself: all three must agree. */
            int m = hub_topic_match(f.ptr, f.len, topic->ptr, topic->len);
            if (hub_topic_covers(f.ptr, f.len, topic->ptr, topic->len) != m ||
                hub_topic_overlap(f.ptr, f.len, topic->ptr, topic->len) != m ||
                hub_topic_overlap(topic->ptr, topic->len, f.ptr, f.len) != m)
                abort();
        }
        count++;
    }
    if (count != s->count)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 0: before CONNECT, as the broker and the password listeners decode the first packet. */
    static const int levels[] = {0, HUB_MQTT_V31, HUB_MQTT_V311};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        int level = levels[li];
        hub_subtree_t *tree = hub_subtree_new();
        hub_mqtt_str_t topic = {NULL, 0};
        int subs[8];
        size_t off = 0, n, calls = 0;
        if (!tree)
            return 0;
        while (off < size) {
            hub_mqtt_packet_t p;
            const char *why = NULL;
            int rc = hub_mqtt_frame(data + off, size - off, MAX_PACKET, &n);
            if (rc != 1)
                break;
            rc = hub_mqtt_decode(data + off, n, level, &p, &why);
            if (rc != 0 && why == NULL)
                abort();
            if (rc == 0 && p.type == HUB_MQTT_PUBLISH) {
                check_publish(&p.u.publish, level);
                topic = p.u.publish.topic;
                hub_subtree_match(tree, topic.ptr, topic.len, count_cb, &calls);
            } else if (rc == 0 &&
                       (p.type == HUB_MQTT_SUBSCRIBE || p.type == HUB_MQTT_UNSUBSCRIBE)) {
                check_subscribe(&p.u.subscribe, tree, subs, &topic);
            } else if (rc == 0 && p.type == HUB_MQTT_CONNECT) {
                const hub_mqtt_connect_t *c = &p.u.connect;
                if (c->level != level && c->level != 3 && c->level != 4)
                    abort();
                if (c->will && !hub_topic_name_valid(c->will_topic.ptr, c->will_topic.len))
                    abort();
            }
            off += n;
        }
        hub_subtree_free(tree);
    }
    return 0;
}
