/* Published messages (one refcounted block: header, topic, payload) and the retained
 * message store. */
#ifndef HUB_MQTT_MSG_H
#define HUB_MQTT_MSG_H

#include <stddef.h>
#include <stdint.h>

struct hub_msg {
    unsigned refs;
    uint8_t qos;
    uint8_t retain;
    size_t topic_len;
    size_t payload_len;
    char *topic;      /* NUL-terminated, inside the block */
    uint8_t *payload; /* inside the block */
};

/* Allocates a message with one reference. NULL on ENOMEM. */
struct hub_msg *hub_msg_new(const char *topic, size_t topic_len, const void *payload,
                            size_t payload_len, uint8_t qos, uint8_t retain);
struct hub_msg *hub_msg_ref(struct hub_msg *m);
/* Drops a reference; frees the block with the last one. */
void hub_msg_unref(struct hub_msg *m);

/* Retained messages by topic (open hashing). */
struct hub_retained {
    struct hub_msg **slots;
    size_t cap, count;
};

/* Stores m as the retained message of its topic (holding a reference), replacing the one
 * before; an empty payload deletes it (MQTT 3.1.1 §3.3.1.3). */
int hub_retained_set(struct hub_retained *r, struct hub_msg *m);
/* Calls cb for each retained message. */
void hub_retained_each(const struct hub_retained *r,
                       void (*cb)(const struct hub_msg *m, void *ctx), void *ctx);
void hub_retained_free(struct hub_retained *r);

#endif
