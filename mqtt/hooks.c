/* Durability and several nodes: the hooks the server sets (store, backbone, cluster), the
 * message ids, the holds on publishers' acknowledgements, and messages injected from other
 * nodes. */
#include "mqtt/broker_internal.h"

void hub_broker_set_hooks(struct hub_broker *b, const struct hub_broker_hooks *h)
{
    if (h != NULL)
        b->h = *h;
    else
        memset(&b->h, 0, sizeof b->h);
}

void hub_broker_release(struct hub_broker *b, uint64_t msg_id)
{
    (void)b;
    (void)msg_id;
}

int hub_broker_inject(struct hub_broker *b, const char *topic, size_t tlen, const uint8_t *payload,
                      size_t len, uint8_t qos, int retain, uint64_t id)
{
    (void)b, (void)topic, (void)tlen, (void)payload, (void)len, (void)qos, (void)retain, (void)id;
    return HUB_EINVAL;
}
