/* Header deadlines. Armed entries sit in one list in the order they were armed; with one
 * constant timeout that is also the order of their deadlines, so the watchdog only ever
 * looks at the head. Shutting the socket down (never closing it: libmicrohttpd owns the
 * descriptor) makes the connection's thread see EOF and close the connection itself. An
 * entry is removed before libmicrohttpd closes the descriptor, so a reused descriptor
 * number is never shut down by mistake. */
#include "api/deadline.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "util/log.h"

#define WATCH_PERIOD_MS 200

struct hub_deadline {
    int fd;
    int armed; /* in the list */
    uint64_t due_ms;
    struct hub_deadline *prev, *next;
};

struct hub_deadlines {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    uint64_t timeout_ms;
    struct hub_deadline *head, *tail;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Both with d->lock held. */
static void unlink_entry(hub_deadlines_t *d, hub_deadline_t *e)
{
    if (!e->armed)
        return;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        d->tail = e->prev;
    e->prev = e->next = NULL;
    e->armed = 0;
}

static void arm(hub_deadlines_t *d, hub_deadline_t *e)
{
    unlink_entry(d, e);
    e->due_ms = now_ms() + d->timeout_ms;
    e->prev = d->tail;
    if (d->tail != NULL)
        d->tail->next = e;
    else
        d->head = e;
    d->tail = e;
    e->armed = 1;
}

static void *watchdog(void *arg)
{
    hub_deadlines_t *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        uint64_t now = now_ms();
        unsigned n = 0;
        while (d->head != NULL && d->head->due_ms <= now) {
            hub_deadline_t *e = d->head;
            unlink_entry(d, e);
            shutdown(e->fd, SHUT_RDWR);
            n++;
        }
        if (n > 0)
            hub_info("api: closed %u connection(s) whose request was not complete "
                     "within %llu s",
                     n, (unsigned long long)(d->timeout_ms / 1000));
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

hub_deadlines_t *hub_deadlines_new(unsigned timeout_s)
{
    hub_deadlines_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->timeout_ms = (uint64_t)timeout_s * 1000;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&d->lock, NULL);
    if (pthread_create(&d->thread, NULL, watchdog, d) != 0) {
        hub_error("api: cannot start the request deadline thread");
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    return d;
}

void hub_deadlines_free(hub_deadlines_t *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = 1;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

hub_deadline_t *hub_deadlines_add(hub_deadlines_t *d, int fd)
{
    hub_deadline_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->fd = fd;
    pthread_mutex_lock(&d->lock);
    arm(d, e);
    pthread_mutex_unlock(&d->lock);
    return e;
}

void hub_deadlines_met(hub_deadlines_t *d, hub_deadline_t *e)
{
    pthread_mutex_lock(&d->lock);
    unlink_entry(d, e);
    pthread_mutex_unlock(&d->lock);
}

void hub_deadlines_rearm(hub_deadlines_t *d, hub_deadline_t *e)
{
    pthread_mutex_lock(&d->lock);
    arm(d, e);
    pthread_mutex_unlock(&d->lock);
}

void hub_deadlines_remove(hub_deadlines_t *d, hub_deadline_t *e)
{
    pthread_mutex_lock(&d->lock);
    unlink_entry(d, e);
    pthread_mutex_unlock(&d->lock);
    free(e);
}
