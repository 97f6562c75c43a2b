/* Commands from the REST API threads and the rollout engine's notices, handed to the loop:
 * queued under a mutex and published on the loop through a uv_async_t. An API caller waits
 * on a condition variable for the broker's answer; a notice is not waited for. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/broker.h"
#include "mqtt/topic.h"
#include "server/cluster.h"
#include "server/mqtt_server.h"
#include "server/mqtt_server_internal.h"
#include "server/rollouts.h"
#include "util/error.h"

#define COMMAND_WAIT_S 5

static void release(struct command *c)
{
    if (--c->refs == 0) {
        free(c->payload);
        free(c);
    }
}

/* Answers c (lock held): its caller wakes up, the loop drops its reference. */
static void answer(struct hub_mqtt_server *m, struct command *c)
{
    c->done = 1;
    release(c);
    pthread_cond_broadcast(&m->done);
}

void hub_mqtt_commands_wakeup(uv_async_t *a)
{
    struct hub_mqtt_server *m = a->data;
    pthread_mutex_lock(&m->lock);
    struct command *list = m->queue;
    m->queue = NULL;
    pthread_mutex_unlock(&m->lock);
    while (list != NULL) {
        struct command *c = list;
        list = c->next;
        /* A command the store queued for a persistent session (or the backbone forwards) is
         * answered once it is stored and forwarded, so that a 202 is never lost (see
         * hub_broker_publish_durable); a notice is not waited for. */
        uint64_t id = 0;
        int rc = hub_broker_publish_durable(m->broker, c->topic, c->payload, c->len, 1, 0,
                                            c->device_id, c->async ? NULL : &id);
        pthread_mutex_lock(&m->lock);
        c->delivered = rc > 0;
        m->async_queued -= (size_t)c->async;
        if (id != 0) {
            c->id = id; /* the loop's reference goes with it */
            c->next = m->durable_wait;
            m->durable_wait = c;
        } else {
            answer(m, c);
        }
        pthread_mutex_unlock(&m->lock);
    }
}

void hub_mqtt_commands_durable(void *arg, uint64_t msg_id)
{
    struct hub_mqtt_server *m = arg;
    pthread_mutex_lock(&m->lock);
    for (struct command **pp = &m->durable_wait; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == msg_id) {
            struct command *c = *pp;
            *pp = c->next;
            answer(m, c);
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

void hub_mqtt_commands_stop(struct hub_mqtt_server *m)
{
    pthread_mutex_lock(&m->lock);
    while (m->durable_wait != NULL) {
        struct command *c = m->durable_wait;
        m->durable_wait = c->next;
        answer(m, c);
    }
    pthread_mutex_unlock(&m->lock);
}

int hub_mqtt_server_command(struct hub_mqtt_server *m, const char *device_id, const char *name,
                            const void *payload, size_t len, int *delivered)
{
    struct command *c = calloc(1, sizeof *c);
    if (c == NULL)
        return HUB_ENOMEM;
    int n = snprintf(c->topic, sizeof c->topic, "devices/%s/commands/%s", device_id, name);
    if (n < 0 || (size_t)n >= sizeof c->topic || strpbrk(name, "/+#") != NULL ||
        !hub_topic_name_valid(c->topic, (size_t)n)) {
        free(c);
        return HUB_EINVAL;
    }
    snprintf(c->device_id, sizeof c->device_id, "%s", device_id);
    if (len > 0 && (c->payload = malloc(len)) == NULL) {
        free(c);
        return HUB_ENOMEM;
    }
    if (len > 0)
        memcpy(c->payload, payload, len);
    c->len = len;
    c->refs = 2; /* the loop and this caller */

    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += COMMAND_WAIT_S;
    pthread_mutex_lock(&m->lock);
    c->next = m->queue;
    m->queue = c;
    uv_async_send(&m->wakeup);
    int rc = 0;
    while (!c->done && rc == 0)
        rc = pthread_cond_timedwait(&m->done, &m->lock, &until);
    int ok = c->done;
    *delivered = c->delivered;
    release(c);
    pthread_mutex_unlock(&m->lock);
    /* Several nodes: the backbone carries it to the node holding the device. */
    if (ok && !*delivered && m->cluster != NULL)
        *delivered = hub_cluster_held_elsewhere(m->cluster, device_id);
    return ok ? 0 : HUB_ERANGE;
}

/* The rollout engine's notices: queued to the loop, nobody waits (server/rollouts.h). */
int hub_mqtt_commands_publish_async(void *ctx, const char *device_id, const char *topic,
                                    const void *payload, size_t len)
{
    struct hub_mqtt_server *m = ctx;
    struct command *c = calloc(1, sizeof *c);
    if (c == NULL || (c->payload = malloc(len + 1)) == NULL) {
        free(c);
        return HUB_ENOMEM;
    }
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    snprintf(c->device_id, sizeof c->device_id, "%s", device_id);
    memcpy(c->payload, payload, c->len = len);
    c->refs = c->async = 1;
    pthread_mutex_lock(&m->lock);
    int full = m->async_queued >= HUB_ROLLOUTS_NOTICES_QUEUED;
    if (!full) {
        m->async_queued++;
        c->next = m->queue;
        m->queue = c;
        uv_async_send(&m->wakeup);
    } else {
        release(c);
    }
    pthread_mutex_unlock(&m->lock);
    return full ? HUB_ERANGE : 0;
}
