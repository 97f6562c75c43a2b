/* The backbone's network thread (server/backbone_internal.h): libmosquitto's callbacks,
 * connect / loop / reconnect with back-off, and the client's settings. libmosquitto's own
 * thread (mosquitto_loop_start) is not used: its loop gives up for good after a TLS, DNS or
 * authentication error, and a node must keep trying those too. */
#include "server/backbone_internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mqtt/topic.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

/* ---- network thread: libmosquitto callbacks ------------------------------------------------ */

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    if (rc != 0) {
        hub_warn("backbone: %s:%d refused the connection: %s", bb->url.host, bb->url.port,
                 mosquitto_reason_string(rc));
        return;
    }
    if (bb->ever_connected && !(flags & 1)) {
        /* The backbone lost this node's session (restarted without persistence, session
         * expired): what it took for this node's filters meanwhile is gone for this node. */
        bb_count(&bb->sessions_lost, 1);
        hub_warn("backbone: connected to %s:%d as %s, but the broker did not keep this node's "
                 "session: messages published on the backbone while it was down or before the "
                 "filters are subscribed again do not reach this node (keep sessions on the "
                 "backbone: Mosquitto `persistence true`)",
                 bb->url.host, bb->url.port, bb->client_id);
    } else {
        hub_info("backbone: connected to %s:%d as %s (%s)", bb->url.host, bb->url.port,
                 bb->client_id, flags & 1 ? "session kept" : "new session");
    }
    bb->ever_connected = 1;
    bb->net_connected = 1;
    bb->backoff_ms = BACKOFF_MIN_MS;
    bb->fail_logged_ms = 0;
    atomic_store(&bb->connected, 1);
    bb_count(&bb->connects, 1);
    pthread_mutex_lock(&bb->lock);
    bb->connect_event = 1;
    pthread_mutex_unlock(&bb->lock);
    uv_async_send(&bb->wake);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    bb->net_connected = 0;
    if (atomic_exchange(&bb->connected, 0) && rc != 0)
        hub_warn("backbone: connection to %s:%d lost (%s): reconnecting", bb->url.host,
                 bb->url.port, mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    struct slot *s = &bb->slots[(uint16_t)mid];
    if (s->used) {
        bb->pending--;
        s->used = 0;
        bb_out_done(bb, s->id, s->bytes, s->hold);
    }
    if (reason >= 0x80) {
        bb_count(&bb->refused, 1);
        hub_warn("backbone: the broker refused a forward: %s", mosquitto_reason_string(reason));
    }
}

/* The user properties iothub-id (16 hex digits) and iothub-node of a received message. */
static void read_props(const mosquitto_property *props, uint64_t *id, char *node, size_t n)
{
    int skip = 0;
    for (const mosquitto_property *p = props;;) {
        char *name = NULL, *value = NULL;
        p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, skip);
        if (p == NULL)
            break;
        skip = 1;
        if (strcmp(name, PROP_ID) == 0 && strlen(value) == 16 &&
            strspn(value, "0123456789abcdef") == 16)
            *id = strtoull(value, NULL, 16);
        else if (strcmp(name, PROP_NODE) == 0 && strlen(value) < n)
            memcpy(node, value, strlen(value) + 1);
        free(name);
        free(value);
        p = mosquitto_property_next(p);
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    uint64_t id = 0;
    char origin[HUB_NODE_NAME_MAX + 1] = "";
    read_props(props, &id, origin, sizeof origin);
    size_t tlen = msg->topic ? strlen(msg->topic) : 0, plen = (size_t)msg->payloadlen;
    /* No Local keeps our own forwards away; the name is checked as well, in case. */
    if (strcmp(origin, bb->node) == 0 || !hub_topic_name_valid(msg->topic, tlen) ||
        plen > bb->max_packet || msg->qos < 0 || msg->qos > 2) {
        bb_count(&bb->dropped_inbound, 1);
        return;
    }
    struct rec r = {
        .id = id,
        .tlen = (uint32_t)tlen,
        .plen = (uint32_t)plen,
        .qos = (uint8_t)msg->qos,
        .retain = msg->retain ? 1 : 0,
        .control = (uint8_t)bb_is_control(msg->topic, tlen),
        .olen = (uint8_t)strlen(origin),
    };
    size_t len = sizeof r + r.olen + tlen + plen;
    static const uint8_t pad[8];
    pthread_mutex_lock(&bb->lock);
    while (bb->in.len > 0 && bb->in.len + len > bb->max_inbound && !atomic_load(&bb->stopping))
        pthread_cond_wait(&bb->cond, &bb->lock);
    int rc = atomic_load(&bb->stopping) ? HUB_ERANGE : hub_buf_reserve(&bb->in, len + 8);
    if (rc == 0) {
        hub_buf_append(&bb->in, &r, sizeof r);
        hub_buf_append(&bb->in, origin, r.olen);
        hub_buf_append(&bb->in, msg->topic, tlen);
        hub_buf_append(&bb->in, msg->payload, plen);
        hub_buf_append(&bb->in, pad, (8 - len % 8) % 8);
    }
    pthread_mutex_unlock(&bb->lock);
    if (rc != 0)
        bb_count(&bb->dropped_inbound, 1);
    else
        uv_async_send(&bb->wake);
}

/* Sleeps ms unless stop is called meanwhile. Returns 1 when stopping. */
static int backoff_sleep(struct hub_backbone *bb, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&bb->lock);
    while (!atomic_load(&bb->stopping) &&
           pthread_cond_timedwait(&bb->cond, &bb->lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&bb->lock);
    return atomic_load(&bb->stopping);
}

static int stopping(struct hub_backbone *bb)
{
    return atomic_load(&bb->stopping);
}

/* One turn of the connection: waits (at most 1 s) for the socket or the loop (eventfd),
 * reads, gives libmosquitto the forwards it may take, writes, keeps alive, and hands the
 * acknowledgements to the loop. libmosquitto's own loop (mosquitto_loop) is not used: it
 * sleeps on a socket pair only libmosquitto's calls write to. A libmosquitto code. */
static int turn(struct hub_backbone *bb)
{
    int sock = mosquitto_socket(bb->mosq);
    if (sock < 0)
        return MOSQ_ERR_NO_CONN;
    struct pollfd p[2] = {
        {.fd = sock, .events = POLLIN | (mosquitto_want_write(bb->mosq) ? POLLOUT : 0)},
        {.fd = bb->efd, .events = POLLIN},
    };
    if (poll(p, 2, 1000) < 0 && errno != EINTR)
        return MOSQ_ERR_ERRNO;
    int rc = MOSQ_ERR_SUCCESS;
    if (p[1].revents & POLLIN) {
        uint64_t n;
        if (read(bb->efd, &n, sizeof n) < 0) { /* EAGAIN: nothing */
        }
    }
    /* Every packet that arrived, not one per poll: mosquitto_loop_read stops after a packet
     * whenever errno holds EAGAIN from any earlier call (its own socket pair's writes). */
    for (int i = 0; i < 1024 && (p[0].revents & (POLLIN | POLLERR | POLLHUP)); i++) {
        errno = 0;
        rc = mosquitto_loop_read(bb->mosq, 1);
        int avail = 0;
        if (rc != MOSQ_ERR_SUCCESS || (sock = mosquitto_socket(bb->mosq)) < 0 ||
            ioctl(sock, FIONREAD, &avail) != 0 || avail == 0)
            break;
    }
    if (rc == MOSQ_ERR_SUCCESS && !stopping(bb))
        bb_out_publish(bb);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(bb->mosq) >= 0 &&
        mosquitto_want_write(bb->mosq))
        rc = mosquitto_loop_write(bb->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_misc(bb->mosq);
    bb_out_hand_acks(bb);
    return rc;
}

static void clear_old_session(struct hub_backbone *bb);

void *hub_backbone_thread(void *arg)
{
    struct hub_backbone *bb = arg;
    mosquitto_property *props = NULL;
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, bb->expiry_s);
    bb->backoff_ms = BACKOFF_MIN_MS;
    clear_old_session(bb);
    int rc = mosquitto_connect_bind_v5(bb->mosq, bb->url.host, bb->url.port, KEEPALIVE_S, NULL,
                                       props);
    mosquitto_property_free_all(&props);
    while (!stopping(bb)) {
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = turn(bb);
            continue;
        }
        bb->net_connected = 0;
        uint64_t now = bb_now_ms();
        if (bb->fail_logged_ms == 0 || now - bb->fail_logged_ms >= 30000) {
            hub_warn("backbone: no connection to %s:%d (%s%s%s): retrying", bb->url.host,
                     bb->url.port, mosquitto_strerror(rc), rc == MOSQ_ERR_ERRNO ? ": " : "",
                     rc == MOSQ_ERR_ERRNO ? strerror(errno) : "");
            bb->fail_logged_ms = now;
        }
        if (backoff_sleep(bb, bb->backoff_ms))
            break;
        bb->backoff_ms = bb->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : bb->backoff_ms * 2;
        rc = mosquitto_reconnect(bb->mosq);
    }
    if (mosquitto_socket(bb->mosq) >= 0) /* the DISCONNECT stop queued */
        mosquitto_loop_write(bb->mosq, 1);
    bb_out_hand_acks(bb);
    return NULL;
}

/* Reads the password file (one line; a trailing newline is not part of it) into a malloc'ed
 * string, or NULL (logged). */
static char *read_password(const char *path)
{
    FILE *f = fopen(path, "rb");
    char buf[1024];
    size_t n = 0;
    if (f != NULL) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    if (f == NULL || n == sizeof buf - 1) {
        hub_error("backbone_password_file %s: %s", path,
                  f == NULL ? strerror(errno) : "longer than 1022 bytes");
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = 0;
    char *s = strdup(buf);
    hub_wipe(buf, sizeof buf);
    return s;
}

static int client_setup(struct hub_backbone *bb, struct mosquitto *mosq)
{
    int rc = MOSQ_ERR_SUCCESS;
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (bb->url.tls) {
        if (bb->cafile == NULL)
            mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (bb->cafile != NULL || bb->certfile != NULL)
            rc = mosquitto_tls_set(mosq, bb->cafile, bb->cafile ? NULL : "/etc/ssl/certs",
                                   bb->certfile, bb->keyfile, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            hub_error("backbone_cafile / backbone_certfile / backbone_keyfile: %s",
                      mosquitto_strerror(rc));
            return HUB_ECONFIG;
        }
    }
    if (bb->username != NULL &&
        (rc = mosquitto_username_pw_set(mosq, bb->username, bb->password)) != MOSQ_ERR_SUCCESS) {
        hub_error("backbone_username: %s", mosquitto_strerror(rc));
        return HUB_ECONFIG;
    }
    return 0;
}

static void on_clean_connect(struct mosquitto *mosq, void *obj, int rc)
{
    *(int *)obj = rc == 0 ? 1 : -1;
}

/* A node starts afresh: the session the backbone may keep from this node's previous run
 * holds that run's filters, which nothing would unsubscribe. A CONNECT with clean start
 * and no session expiry ends it. Best effort (the backbone may be down): network thread. */
static void clear_old_session(struct hub_backbone *bb)
{
    int state = 0;
    struct mosquitto *c = mosquitto_new(bb->client_id, true, &state);
    if (c == NULL || client_setup(bb, c) != 0) {
        mosquitto_destroy(c);
        return;
    }
    mosquitto_connect_callback_set(c, on_clean_connect);
    if (mosquitto_connect(c, bb->url.host, bb->url.port, KEEPALIVE_S) == MOSQ_ERR_SUCCESS) {
        uint64_t until = bb_now_ms() + 3000;
        while (state == 0 && bb_now_ms() < until && !stopping(bb) &&
               mosquitto_loop(c, 100, 1) == MOSQ_ERR_SUCCESS) {
        }
        mosquitto_disconnect(c);
        mosquitto_loop(c, 100, 1);
    }
    mosquitto_destroy(c);
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != 0 ? strdup(s) : NULL;
}

/* Copies what the client needs from the configuration, the password read from its file. 0,
 * HUB_ENOMEM or HUB_ECONFIG (logged). */
static int copy_settings(struct hub_backbone *bb, const struct hub_config *cfg)
{
    bb->cafile = dup_or_null(cfg->backbone_cafile);
    bb->certfile = dup_or_null(cfg->backbone_certfile);
    bb->keyfile = dup_or_null(cfg->backbone_keyfile);
    bb->username = dup_or_null(cfg->backbone_username);
    if (cfg->backbone_password_file != NULL && *cfg->backbone_password_file != 0 &&
        (bb->password = read_password(cfg->backbone_password_file)) == NULL)
        return HUB_ECONFIG;
    if (!bb->url.tls && (bb->cafile != NULL || bb->certfile != NULL))
        hub_warn("backbone: backbone_cafile/certfile/keyfile are ignored with mqtt:// "
                 "(mqtts:// for TLS)");
    return 0;
}

int hub_backbone_client_setup(struct hub_backbone *bb, const struct hub_config *cfg)
{
    int rc = copy_settings(bb, cfg);
    if (rc == 0)
        rc = client_setup(bb, bb->mosq);
    if (rc != 0)
        return rc;
    mosquitto_int_option(bb->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 100);
    mosquitto_threaded_set(bb->mosq, true);
    mosquitto_connect_v5_callback_set(bb->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(bb->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(bb->mosq, on_publish);
    mosquitto_message_v5_callback_set(bb->mosq, on_message);
    return 0;
}
