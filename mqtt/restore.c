/* Restoring state kept elsewhere (PostgreSQL, another node): sessions, subscriptions,
 * deliveries, QoS 2 ids, retained messages; a parked CONNECT's end; a session released to
 * another node. */
#include "mqtt/broker_internal.h"

int hub_broker_restore_session(struct hub_broker *b, const char *key, uint32_t expiry_s)
{
    (void)b, (void)key, (void)expiry_s;
    return HUB_EINVAL;
}

int hub_broker_restore_sub(struct hub_broker *b, const char *key, const char *filter, uint8_t qos)
{
    (void)b, (void)key, (void)filter, (void)qos;
    return HUB_EINVAL;
}

int hub_broker_restore_delivery(struct hub_broker *b, const char *key, const char *topic,
                                size_t tlen, const uint8_t *payload, size_t len, uint8_t qos,
                                uint64_t id, int state, uint16_t pid)
{
    (void)b, (void)key, (void)topic, (void)tlen, (void)payload, (void)len, (void)qos, (void)id;
    (void)state, (void)pid;
    return HUB_EINVAL;
}

int hub_broker_restore_incoming(struct hub_broker *b, const char *key, uint16_t pid)
{
    (void)b, (void)key, (void)pid;
    return HUB_EINVAL;
}

int hub_broker_restore_retained(struct hub_broker *b, const char *topic, size_t tlen,
                                const uint8_t *payload, size_t len, uint8_t qos, uint64_t id)
{
    (void)b, (void)topic, (void)tlen, (void)payload, (void)len, (void)qos, (void)id;
    return HUB_EINVAL;
}

void hub_broker_claim_done(struct hub_broker *b, const char *key, int ok)
{
    (void)b, (void)key, (void)ok;
}

int hub_broker_release_session(struct hub_broker *b, const char *key)
{
    (void)b, (void)key;
    return 0;
}
