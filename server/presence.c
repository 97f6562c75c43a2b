/* A mutex-protected table of connected device ids (count per id, for takeovers that overlap
 * briefly) and a list of ids whose last_seen must be written; the writer thread wakes every
 * second and updates them in one statement; while the database is unreachable they are
 * kept (up to REQUEUE_MAX bytes) and written once it is back. */
#include "server/presence.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "db/devices.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define ID_LEN 37
#define FLUSH_MS 1000
#define REQUEUE_MAX (4u << 20) /* bytes of ids kept while the database is unreachable */

struct entry {
    char id[ID_LEN];
    int count;
    struct entry *next;
};

struct hub_presence {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stop;
    char *db_url;
    int node; /* nodes.id of this node (server/cluster.c), 0 until registered */
    struct entry *buckets[4096];
    hub_buf_t dirty; /* JSON array text of ids to touch: "[\"id\",\"id\"" (open) */
};

static size_t slot(const char *id)
{
    size_t h = 1469598103934665603ull;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ull;
    return h & 4095;
}

/* Puts a failed batch ("[ids]") back in front of the ids queued since; under p->lock. */
static void requeue(struct hub_presence *p, hub_buf_t *batch)
{
    if (batch->len + p->dirty.len > REQUEUE_MAX) {
        hub_warn("presence: database unreachable; dropping %zu bytes of last_seen updates",
                 batch->len);
        return;
    }
    batch->len--; /* the closing ']' */
    if (p->dirty.len > 0) {
        hub_buf_puts(batch, ",");
        hub_buf_append(batch, p->dirty.data + 1, p->dirty.len - 1);
    }
    p->dirty.len = 0;
    hub_buf_append(&p->dirty, batch->data, batch->len);
}

static int connected_locked(struct hub_presence *p, const char *device_id)
{
    struct entry *e = p->buckets[slot(device_id)];
    while (e != NULL && strcmp(e->id, device_id) != 0)
        e = e->next;
    return e != NULL;
}

/* Splits a batch ("[ids]") by each id's state now: on gets the connected ones, off the others
 * (JSON arrays). Under p->lock. */
static void split(struct hub_presence *p, const hub_buf_t *batch, hub_buf_t *on, hub_buf_t *off)
{
    on->len = off->len = 0;
    hub_buf_puts(on, "[");
    hub_buf_puts(off, "[");
    const char *s = (const char *)batch->data, *end = s + batch->len;
    while (s < end && (s = memchr(s, '"', (size_t)(end - s))) != NULL) {
        const char *q = memchr(s + 1, '"', (size_t)(end - s - 1));
        if (q == NULL || q - s - 1 >= ID_LEN)
            break;
        char id[ID_LEN];
        memcpy(id, s + 1, (size_t)(q - s - 1));
        id[q - s - 1] = 0;
        hub_buf_t *to = connected_locked(p, id) ? on : off;
        hub_buf_printf(to, "%s\"%s\"", to->len > 1 ? "," : "", id);
        s = q + 1;
    }
    hub_buf_puts(on, "]");
    hub_buf_puts(off, "]");
}

static void *writer(void *arg)
{
    struct hub_presence *p = arg;
    PGconn *c = NULL;
    hub_buf_t batch = HUB_BUF_INIT, on = HUB_BUF_INIT, off = HUB_BUF_INIT;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FLUSH_MS / 1000;
        if (!p->stop)
            pthread_cond_timedwait(&p->wake, &p->lock, &until);
        int stopping = p->stop;
        batch.len = 0;
        if (p->dirty.len > 0) {
            hub_buf_append(&batch, p->dirty.data, p->dirty.len);
            hub_buf_puts(&batch, "]");
            p->dirty.len = 0;
            split(p, &batch, &on, &off);
        }
        int node = p->node;
        pthread_mutex_unlock(&p->lock);
        int rc = 0;
        if (batch.len > 0) {
            if (c == NULL || PQstatus(c) != CONNECTION_OK) {
                PQfinish(c);
                c = NULL;
                rc = hub_db_connect(p->db_url, &c);
            }
            if (c != NULL)
                rc = hub_db_devices_mark_presence(c, node, (const char *)on.data,
                                                  (const char *)off.data);
        }
        pthread_mutex_lock(&p->lock);
        /* Database unreachable: the ids wait for the next round (up to a cap). */
        if (rc == HUB_EDBDOWN && !stopping)
            requeue(p, &batch);
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&p->lock);
    PQfinish(c);
    hub_buf_free(&batch);
    hub_buf_free(&on);
    hub_buf_free(&off);
    return NULL;
}

struct hub_presence *hub_presence_new(const char *db_url)
{
    struct hub_presence *p = calloc(1, sizeof *p);
    if (p == NULL || (p->db_url = strdup(db_url)) == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (pthread_create(&p->thread, NULL, writer, p) != 0) {
        hub_error("presence: cannot start the writer thread");
        free(p->db_url);
        free(p);
        return NULL;
    }
    return p;
}

void hub_presence_free(struct hub_presence *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < 4096; i++) {
        struct entry *e = p->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    hub_buf_free(&p->dirty);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->db_url);
    free(p);
}

void hub_presence_set(struct hub_presence *p, const char *device_id, int connected)
{
    if (strlen(device_id) >= ID_LEN)
        return;
    pthread_mutex_lock(&p->lock);
    struct entry **pp = &p->buckets[slot(device_id)];
    while (*pp != NULL && strcmp((*pp)->id, device_id) != 0)
        pp = &(*pp)->next;
    if (connected) {
        if (*pp == NULL && (*pp = calloc(1, sizeof **pp)) != NULL)
            strcpy((*pp)->id, device_id);
        if (*pp != NULL)
            (*pp)->count++;
    } else if (*pp != NULL && --(*pp)->count <= 0) {
        struct entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    /* Device ids are UUIDs (checked by the TLS layer's CN rules and the broker): safe in
     * JSON without escaping; anything else is skipped. */
    if (strspn(device_id, "0123456789abcdefABCDEF-") == strlen(device_id))
        hub_buf_printf(&p->dirty, "%s\"%s\"", p->dirty.len ? "," : "[", device_id);
    pthread_mutex_unlock(&p->lock);
}

int hub_presence_connected(struct hub_presence *p, const char *device_id)
{
    pthread_mutex_lock(&p->lock);
    int on = connected_locked(p, device_id);
    pthread_mutex_unlock(&p->lock);
    return on;
}

void hub_presence_set_node(struct hub_presence *p, int node)
{
    pthread_mutex_lock(&p->lock);
    p->node = node;
    /* Every connected device is written again under this node (a peer may have cleared
     * them while this node could not reach the database). */
    for (size_t i = 0; i < 4096; i++)
        for (struct entry *e = p->buckets[i]; e != NULL; e = e->next)
            if (strspn(e->id, "0123456789abcdefABCDEF-") == strlen(e->id))
                hub_buf_printf(&p->dirty, "%s\"%s\"", p->dirty.len ? "," : "[", e->id);
    pthread_mutex_unlock(&p->lock);
}
