/* What this node needs from the backbone: the topic filters its sessions subscribed to,
 * counted per session (a session subscribing twice to one filter counts once, at its last
 * QoS), and for each filter the highest QoS any session asked for. server/backbone.c turns
 * the changes into SUBSCRIBE / UNSUBSCRIBE on the backbone. Loop thread only; no MQTT, no
 * sockets: the table alone. */
#ifndef HUB_SERVER_BACKBONE_SUBS_H
#define HUB_SERVER_BACKBONE_SUBS_H

#include <stddef.h>
#include <stdint.h>

struct hub_bsubs;

#define HUB_BSUBS_SAME (-100) /* the filter's backbone QoS did not change */
#define HUB_BSUBS_GONE (-101) /* no session needs the filter any more */

/* An empty table; NULL on ENOMEM. */
struct hub_bsubs *hub_bsubs_new(void);
/* Frees the table and its strings. */
void hub_bsubs_free(struct hub_bsubs *t);
/* Session key subscribed to filter (flen bytes) at qos (0..2). Returns the filter's new
 * backbone QoS when it changed (a new filter, a higher or lower QoS), HUB_BSUBS_SAME, or
 * HUB_ENOMEM. */
int hub_bsubs_add(struct hub_bsubs *t, const char *key, const char *filter, size_t flen,
                  uint8_t qos);
/* Session key unsubscribed from filter (unknown pairs are ignored: HUB_BSUBS_SAME). Returns
 * the filter's new backbone QoS when it dropped, HUB_BSUBS_GONE when no session needs it any
 * more (forgotten then), or HUB_BSUBS_SAME. */
int hub_bsubs_remove(struct hub_bsubs *t, const char *key, const char *filter, size_t flen);
/* The backbone QoS of filter, or HUB_BSUBS_GONE when no session needs it. */
int hub_bsubs_qos(const struct hub_bsubs *t, const char *filter, size_t flen);
/* Calls fn for every needed filter (NUL-terminated, valid during the call) with its QoS,
 * in no particular order; the table must not change meanwhile. */
void hub_bsubs_each(const struct hub_bsubs *t,
                    void (*fn)(void *ctx, const char *filter, uint8_t qos), void *ctx);
/* Needed filters, and (session, filter) pairs. */
size_t hub_bsubs_filters(const struct hub_bsubs *t);
size_t hub_bsubs_pairs(const struct hub_bsubs *t);

#endif
