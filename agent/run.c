/* The run loop, single-threaded: one poll(2) over the MQTT socket and stdin drives
 * libmosquitto by hand (loop_read / loop_write / loop_misc), so telemetry, commands,
 * reconnects and renewal never race. Children (telemetry command, command handler) run to
 * completion or their time limit inside the loop; keep them short.
 *
 * Reconnects back off exponentially from 1 s to 60 s with jitter (a random delay between
 * half and all of the step). libmosquitto reloads key and certificate files on every
 * connect, so after a renewal a reconnect presents the new certificate. */
#include "agent/run.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mosquitto.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent/conf.h"
#include "agent/enroll.h"
#include "agent/exec.h"
#include "agent/keystore.h"
#include "agent/pin.h"
#include "agent/trust.h"
#include "agent/state.h"
#include "agent/update.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define KEEPALIVE_S 60
#define BACKOFF_MAX_S 60
#define RENEW_CHECK_S (12 * 3600)   /* after a successful check or renewal */
#define LINE_MAX_BYTES (256 * 1024) /* one telemetry line / command output */
#define OUTPUT_CAP 4096             /* command output kept in the ack */
#define MAX_PENDING 100             /* unacknowledged QoS 1 messages before stdin waits */

static volatile sig_atomic_t stop_signal;

struct run {
    struct hub_state st;
    struct hub_pin pin;
    struct hub_agent_conf conf;
    struct hub_update *update; /* the firmware update client */
    struct mosquitto *mosq;
    /* options */
    int interval_s, use_stdin, once, cmd_timeout_s;
    const char *telemetry_cmd, *handler;
    double renew_before_days; /* < 0: a third of the certificate's lifetime */
    /* connection */
    int sock_up, connected, just_connected;
    int notice_mid; /* of the subscription to the firmware notices */
    unsigned attempt;
    long long next_connect_ms;
    char last_err[256];
    char serial[41];
    /* work */
    char topic_tele[128], topic_cmd_prefix[128], topic_ack_prefix[128];
    long long next_telemetry_ms, next_renew_ms;
    unsigned renew_failures;
    int renewed; /* a renewal succeeded in this process */
    int pending, published, stdin_eof, failed;
    hub_buf_t line;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Schedules the next connection attempt and says why. */
static void schedule_reconnect(struct run *r, const char *reason)
{
    unsigned step = r->attempt >= 6 ? BACKOFF_MAX_S : 1u << r->attempt;
    if (step > BACKOFF_MAX_S)
        step = BACKOFF_MAX_S;
    uint32_t rnd = 0;
    hub_random(&rnd, sizeof rnd);
    long long delay = step * 500LL + rnd % (step * 500u + 1); /* [step/2, step] */
    r->attempt++;
    r->next_connect_ms = now_ms() + delay;
    hub_warn("reconnecting in %.1f s because %s", (double)delay / 1000.0, reason);
}

/* Why a connection failed: our verification's reason, else libmosquitto's (OpenSSL's) last
 * error, else the return code. */
static const char *reason_of(struct run *r, int rc, char *buf, size_t len)
{
    if (r->pin.verify_error[0] != 0)
        snprintf(buf, len, "%s", r->pin.verify_error);
    else if (r->last_err[0] != 0)
        snprintf(buf, len, "%s", r->last_err);
    else if (rc == MOSQ_ERR_ERRNO)
        snprintf(buf, len, "%s", strerror(errno));
    else
        snprintf(buf, len, "%s", mosquitto_strerror(rc));
    return buf;
}

static void log_cb(struct mosquitto *m, void *arg, int level, const char *msg)
{
    struct run *r = arg;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
        const char *p = strstr(msg, "OpenSSL Error[0]: ");
        snprintf(r->last_err, sizeof r->last_err, "%s", p ? p + 18 : msg);
    }
    hub_debug("mosquitto: %s", msg);
}

static void connect_cb(struct mosquitto *m, void *arg, int rc)
{
    struct run *r = arg;
    if (rc != 0) {
        snprintf(r->last_err, sizeof r->last_err, "the server refused the connection: %s",
                 mosquitto_connack_string(rc));
        return; /* libmosquitto closes the socket; disconnect_cb follows */
    }
    char filter[160];
    r->connected = 1;
    r->attempt = 0;
    r->last_err[0] = 0;
    hub_info("connected to %s:%d as device %s (certificate %s)", r->st.mqtt_host, r->st.mqtt_port,
             r->st.device_id, r->serial);
    snprintf(filter, sizeof filter, "%s#", r->topic_cmd_prefix);
    int src = mosquitto_subscribe(m, NULL, filter, 1);
    if (src != MOSQ_ERR_SUCCESS)
        hub_error("subscribe to %s failed: %s", filter, mosquitto_strerror(src));
    src = mosquitto_subscribe(m, &r->notice_mid, hub_update_topic(r->update), 1);
    if (src != MOSQ_ERR_SUCCESS)
        hub_error("subscribe to %s failed: %s", hub_update_topic(r->update),
                  mosquitto_strerror(src));
    r->just_connected = 1; /* the update client runs from the loop, not from this callback */
}

static void disconnect_cb(struct mosquitto *m, void *arg, int rc)
{
    struct run *r = arg;
    char why[300];
    int was = r->connected;
    r->connected = 0;
    r->sock_up = 0;
    r->pending = 0; /* clean session: nothing in flight survives */
    if (stop_signal || (r->once && r->published))
        return;
    if (rc == 0) {
        r->next_connect_ms = now_ms(); /* our own disconnect (renewal): reconnect now */
        return;
    }
    reason_of(r, rc, why, sizeof why);
    if (was)
        hub_warn("connection lost: %s", why);
    if (r->once) {
        if (!was)
            hub_error("cannot connect to %s:%d: %s", r->st.mqtt_host, r->st.mqtt_port, why);
        r->failed = 1;
        return;
    }
    schedule_reconnect(r, why);
    r->last_err[0] = 0;
}

static void subscribe_cb(struct mosquitto *m, void *arg, int mid, int n, const int *granted)
{
    struct run *r = arg;
    int fw = mid == r->notice_mid;
    const char *topic = fw ? hub_update_topic(r->update) : r->topic_cmd_prefix;
    if (n >= 1 && granted[0] <= 2)
        hub_info("subscribed to %s%s (QoS %d)", topic, fw ? "" : "#", granted[0]);
    else
        hub_error("the server refused the subscription to %s%s: %s will not arrive", topic,
                  fw ? "" : "#", fw ? "firmware notices" : "commands");
}

static void publish_cb(struct mosquitto *m, void *arg, int mid)
{
    struct run *r = arg;
    if (r->pending > 0)
        r->pending--;
}

/* Publishes at QoS 1; returns 0 or -1 (logged). */
static int publish(struct run *r, const char *topic, const void *data, size_t len)
{
    int mid = 0;
    int rc = mosquitto_publish(r->mosq, &mid, topic, (int)len, data, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        hub_error("publish to %s failed: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    r->pending++;
    r->published++;
    return 0;
}

/* A JSON string of bytes that may not be UTF-8 (invalid bytes become '?'). */
static json_t *json_bytes(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j != NULL)
        return j;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return json_string("");
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 && s[i] != 0 ? s[i] : '?';
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

/* A command name the handler may get as its argument: [A-Za-z0-9_.-]{1,64}, not starting
 * with '-' (an option) or '.' ("..", hidden names). */
static int valid_command_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || s[0] == '-' || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static void message_cb(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    struct run *r = arg;
    size_t plen = strlen(r->topic_cmd_prefix);
    if (strcmp(msg->topic, hub_update_topic(r->update)) == 0) {
        hub_update_notice(r->update, msg->payload, (size_t)msg->payloadlen);
        return;
    }
    if (strncmp(msg->topic, r->topic_cmd_prefix, plen) != 0 || msg->topic[plen] == 0) {
        hub_warn("message on unexpected topic %s ignored", msg->topic);
        return;
    }
    const char *name = msg->topic + plen;
    hub_buf_t out = HUB_BUF_INIT;
    int exit_code = 0, truncated = 0;
    const char *status = "unsupported";
    json_t *code = json_null();
    int valid = valid_command_name(name);
    if (!valid) {
        status = "rejected";
        hub_buf_puts(&out, "invalid command name: [A-Za-z0-9_.-]{1,64}, not starting with "
                           "'-' or '.'");
    } else if (r->handler != NULL) {
        const char *argv[] = {r->handler, name, NULL};
        struct hub_exec e = {
            argv, msg->payload, (size_t)msg->payloadlen, r->cmd_timeout_s, OUTPUT_CAP, 0};
        if (hub_exec_run(&e, &out, &exit_code, &truncated) == 0) {
            status = exit_code == 0 ? "ok" : "failed";
            json_decref(code);
            code = exit_code >= 0 ? json_integer(exit_code) : json_null();
            if (exit_code < 0)
                hub_warn("command %s: %s did not finish within %d s; killed", name, r->handler,
                         r->cmd_timeout_s);
        } else {
            status = "failed";
        }
    }
    json_t *ack = json_pack("{s:o,s:s,s:o,s:o}", "command", json_bytes(name, strlen(name)),
                            "status", status, "exit_code", code, "output",
                            json_bytes(out.data ? (const char *)out.data : "", out.len));
    if (truncated)
        json_object_set_new(ack, "output_truncated", json_true());
    char *text = ack ? json_dumps(ack, JSON_COMPACT) : NULL;
    char topic[300];
    snprintf(topic, sizeof topic, "%s%s", r->topic_ack_prefix, name);
    if (text != NULL && publish(r, topic, text, strlen(text)) == 0) {
        if (!valid)
            hub_warn("command with an invalid name (%zu bytes) rejected, nothing run; ack "
                     "published",
                     strlen(name));
        else if (r->handler != NULL)
            hub_info("command %s (%d bytes): ran %s, status %s, exit %d; ack published on %s", name,
                     msg->payloadlen, r->handler, status, exit_code, topic);
        else
            hub_info("command %s (%d bytes): no --command-handler, acknowledged as "
                     "unsupported on %s",
                     name, msg->payloadlen, topic);
    }
    free(text);
    json_decref(ack);
    hub_buf_free(&out);
}

/* Reads the certificate's serial for the log; returns its lifetime and time left. */
static int cert_times(struct run *r, double *lifetime_s, double *left_s)
{
    char path[1100];
    struct hub_cert_info info;
    hub_state_path(&r->st, "cert.pem", path, sizeof path);
    if (hub_state_cert_info(path, &info) != 0)
        return -1;
    snprintf(r->serial, sizeof r->serial, "%s", info.serial);
    *lifetime_s = difftime(info.not_after, info.not_before);
    *left_s = difftime(info.not_after, time(NULL));
    return 0;
}

static void renew_check(struct run *r)
{
    double lifetime, left;
    long long now = now_ms();
    r->next_renew_ms = now + RENEW_CHECK_S * 1000LL;
    if (cert_times(r, &lifetime, &left) != 0)
        return;
    double before = r->renew_before_days >= 0 ? r->renew_before_days * 86400.0 : lifetime / 3;
    /* Once renewed here, a --renew-before at or above the lifetime must not renew again at
     * every check: the new certificate waits for half its lifetime. */
    if (r->renewed && before > lifetime / 2)
        before = lifetime / 2;
    if (left >= before) {
        hub_debug("certificate %s: %.1f days left; renewal at %.1f days", r->serial, left / 86400,
                  before / 86400);
        return;
    }
    hub_info("certificate %s has %.1f days left (renewal below %.1f days): renewing", r->serial,
             left / 86400, before / 86400);
    int rc = hub_enroll_renew(&r->st, &r->pin);
    if (rc != 0) {
        unsigned s = 60u << (r->renew_failures < 6 ? r->renew_failures : 6);
        if (s > 3600)
            s = 3600;
        r->renew_failures++;
        r->next_renew_ms = now + s * 1000LL;
        hub_warn("renewal failed; next attempt in %u s", s);
        return;
    }
    r->renew_failures = 0;
    r->renewed = 1;
    cert_times(r, &lifetime, &left);
    if (r->sock_up) {
        hub_info("reconnecting with the renewed certificate %s", r->serial);
        mosquitto_disconnect(r->mosq);
        mosquitto_loop_write(r->mosq, 1);
        r->sock_up = r->connected = 0;
        r->pending = 0;
        r->next_connect_ms = now_ms();
    }
}

/* The OpenSSL context of one connection attempt: TLS 1.2+, the server verified against the
 * stored chain and for the MQTT host name or address, the pin check, the device key and
 * certificate as the files are now (so a renewed pair is used by the next attempt).
 * libmosquitto's own defaults are not used: with a caller's context, 2.0.11 never
 * allocates the SSL ex-data index its host name callback needs and refuses every server. */
static SSL_CTX *make_ssl_ctx(struct run *r)
{
    char chain[1100], cert[1100], key[1100], err[160];
    unsigned char ip[16];
    hub_state_path(&r->st, "chain.pem", chain, sizeof chain);
    hub_state_path(&r->st, "cert.pem", cert, sizeof cert);
    hub_state_path(&r->st, "key.pem", key, sizeof key);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *what = "SSL_CTX_new";
    if (ctx == NULL)
        goto fail;
    what = "TLS 1.2 minimum";
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail;
    what = chain;
    if (SSL_CTX_load_verify_file(ctx, chain) != 1)
        goto fail;
    what = cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        goto fail;
    what = key;
    /* OpenSSL's default callback passes the userdata as the key file's passphrase. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)hub_keystore_passphrase());
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    int is_ip = inet_pton(AF_INET, r->st.mqtt_host, ip) == 1 ||
                inet_pton(AF_INET6, r->st.mqtt_host, ip) == 1;
    what = "host name check";
    if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, r->st.mqtt_host)
               : X509_VERIFY_PARAM_set1_host(param, r->st.mqtt_host, 0)) != 1)
        goto fail;
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    hub_pin_install(ctx, &r->pin);
    return ctx;
fail:
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    ERR_error_string_n(ERR_get_error(), err, sizeof err);
    hub_error("TLS setup of the MQTT client failed at %s: %s", what, err);
    SSL_CTX_free(ctx);
    return NULL;
}

/* A new libmosquitto client for one connection attempt (the previous one is destroyed). */
static int make_client(struct run *r)
{
    if (r->mosq != NULL)
        mosquitto_destroy(r->mosq);
    r->mosq = mosquitto_new(r->st.device_id, true, r);
    if (r->mosq == NULL) {
        hub_error("mosquitto_new failed");
        return -1;
    }
    SSL_CTX *ctx = make_ssl_ctx(r);
    if (ctx == NULL)
        return -1;
    int rc = mosquitto_int_option(r->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_void_option(r->mosq, MOSQ_OPT_SSL_CTX, ctx);
    SSL_CTX_free(ctx); /* libmosquitto holds its own reference */
    if (rc != MOSQ_ERR_SUCCESS) {
        hub_error("MOSQ_OPT_SSL_CTX: %s", mosquitto_strerror(rc));
        return -1;
    }
    mosquitto_log_callback_set(r->mosq, log_cb);
    mosquitto_connect_callback_set(r->mosq, connect_cb);
    mosquitto_disconnect_callback_set(r->mosq, disconnect_cb);
    mosquitto_publish_callback_set(r->mosq, publish_cb);
    mosquitto_subscribe_callback_set(r->mosq, subscribe_cb);
    mosquitto_message_callback_set(r->mosq, message_cb);
    return 0;
}

static void try_connect(struct run *r)
{
    char why[300];
    double lifetime, left;
    hub_trust_on_connect(&r->st, &r->pin); /* agent/trust.c: chain.pem from GET /v1/ca */
    r->last_err[0] = 0;
    r->pin.verify_error[0] = 0;
    cert_times(r, &lifetime, &left);
    if (make_client(r) != 0) {
        r->failed = 1;
        return;
    }
    int rc = mosquitto_connect(r->mosq, r->st.mqtt_host, r->st.mqtt_port, KEEPALIVE_S);
    if (rc == MOSQ_ERR_SUCCESS) {
        r->sock_up = 1;
        return;
    }
    reason_of(r, rc, why, sizeof why);
    if (r->once) {
        hub_error("cannot connect to %s:%d: %s", r->st.mqtt_host, r->st.mqtt_port, why);
        r->failed = 1;
        return;
    }
    schedule_reconnect(r, why);
}

static void telemetry_tick(struct run *r)
{
    const char *argv[] = {"/bin/sh", "-c", r->telemetry_cmd, NULL};
    hub_buf_t out = HUB_BUF_INIT;
    int code, truncated;
    r->next_telemetry_ms += (long long)r->interval_s * 1000;
    if (r->next_telemetry_ms < now_ms())
        r->next_telemetry_ms = now_ms() + (long long)r->interval_s * 1000;
    struct hub_exec e = {argv, NULL, 0, r->interval_s < 30 ? 30 : r->interval_s, LINE_MAX_BYTES, 0};
    if (hub_exec_run(&e, &out, &code, &truncated) != 0)
        goto out;
    if (code != 0) {
        hub_warn("telemetry command exited with %d; nothing published", code);
        goto out;
    }
    while (out.len > 0 && (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == '\r'))
        out.len--;
    if (truncated)
        hub_warn("telemetry command output cut at %d bytes", LINE_MAX_BYTES);
    if (publish(r, r->topic_tele, out.data ? out.data : (uint8_t *)"", out.len) == 0)
        hub_info("published %zu bytes to %s", out.len, r->topic_tele);
out:
    hub_buf_free(&out);
}

/* Reads what stdin has and publishes every complete line. */
static void stdin_read(struct run *r)
{
    char buf[8192];
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        r->stdin_eof = 1;
        if (r->line.len > 0) /* a last line without newline */
            n = 0;
        else
            return;
    }
    if (n > 0)
        hub_buf_append(&r->line, buf, (size_t)n);
    size_t start = 0;
    for (size_t i = 0; i < r->line.len; i++) {
        if (r->line.data[i] != '\n' && !(r->stdin_eof && i == r->line.len - 1))
            continue;
        size_t end = r->line.data[i] == '\n' ? i : i + 1;
        size_t len = end - start;
        if (len > 0 && r->line.data[start + len - 1] == '\r')
            len--;
        if (len > 0 && publish(r, r->topic_tele, r->line.data + start, len) == 0)
            hub_info("published %zu bytes to %s", len, r->topic_tele);
        start = i + 1;
        if (r->once && r->published > 0) {
            r->stdin_eof = 1;
            break;
        }
    }
    memmove(r->line.data, r->line.data + start, r->line.len - start);
    r->line.len -= start;
    if (r->line.len > LINE_MAX_BYTES) {
        hub_warn("stdin line longer than %d bytes dropped", LINE_MAX_BYTES);
        r->line.len = 0;
    }
}

/* The update client's publish: only on a live connection. */
static int update_publish(void *arg, const char *topic, const char *text)
{
    struct run *r = arg;
    if (!r->connected)
        return -1;
    return publish(r, topic, text, strlen(text));
}

/* Reads and writes what the MQTT socket has, without waiting (during downloads). */
static void update_service(void *arg)
{
    struct run *r = arg;
    int sock = r->sock_up ? mosquitto_socket(r->mosq) : -1;
    if (sock < 0)
        return;
    struct pollfd pf = {sock, POLLIN | (mosquitto_want_write(r->mosq) ? POLLOUT : 0), 0};
    if (poll(&pf, 1, 0) > 0) {
        if (pf.revents & (POLLIN | POLLHUP | POLLERR))
            mosquitto_loop_read(r->mosq, 1);
        if (r->sock_up && (pf.revents & POLLOUT))
            mosquitto_loop_write(r->mosq, 1);
    }
    if (r->sock_up) {
        mosquitto_loop_misc(r->mosq);
        if (mosquitto_socket(r->mosq) < 0 && r->sock_up)
            disconnect_cb(r->mosq, r, MOSQ_ERR_CONN_LOST);
    }
}

/* Before a re-exec or a reboot: wait briefly for the PUBACKs of the reports, disconnect. */
static void update_shutdown(void *arg)
{
    struct run *r = arg;
    long long until = now_ms() + 2000;
    while (r->sock_up && r->pending > 0 && now_ms() < until) {
        update_service(r);
        usleep(10000);
    }
    if (r->sock_up) {
        mosquitto_disconnect(r->mosq);
        mosquitto_loop_write(r->mosq, 1);
        r->sock_up = r->connected = 0;
    }
}

static const char run_usage[] =
    "usage: iothub-device run [--dir STATE] (--telemetry-command CMD [--interval SEC] | --stdin)\n"
    "                         [--command-handler PROG] [--command-timeout SEC]\n"
    "                         [--renew-before DAYS] [--once] [--config FILE]\n";

static int parse_options(struct run *r, int argc, char **argv, const char **dir, const char **conf)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"interval", required_argument, NULL, 'i'},
        {"telemetry-command", required_argument, NULL, 't'},
        {"stdin", no_argument, NULL, 's'},
        {"command-handler", required_argument, NULL, 'c'},
        {"command-timeout", required_argument, NULL, 'T'},
        {"renew-before", required_argument, NULL, 'r'},
        {"once", no_argument, NULL, 'o'},
        {"config", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    char *end;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': *dir = optarg; break;
        case 'i':
            r->interval_s = (int)strtol(optarg, &end, 10);
            if (*end != 0 || r->interval_s < 1 || r->interval_s > 86400) {
                fprintf(stderr, "iothub-device run: --interval must be 1..86400 seconds\n");
                return 2;
            }
            break;
        case 't': r->telemetry_cmd = optarg; break;
        case 's': r->use_stdin = 1; break;
        case 'c': r->handler = optarg; break;
        case 'T':
            r->cmd_timeout_s = (int)strtol(optarg, &end, 10);
            if (*end != 0 || r->cmd_timeout_s < 1 || r->cmd_timeout_s > 3600) {
                fprintf(stderr, "iothub-device run: --command-timeout must be 1..3600 s\n");
                return 2;
            }
            break;
        case 'r':
            r->renew_before_days = strtod(optarg, &end);
            if (*end != 0 || !(r->renew_before_days >= 0) || r->renew_before_days > 36500) {
                fprintf(stderr, "iothub-device run: --renew-before must be a number of days\n");
                return 2;
            }
            break;
        case 'o': r->once = 1; break;
        case 'C': *conf = optarg; break;
        case 'h': fputs(run_usage, stdout); return 1;
        default: fputs(run_usage, stderr); return 2;
        }
    }
    if (optind < argc || (r->telemetry_cmd != NULL) == r->use_stdin) {
        fprintf(stderr,
                "iothub-device run: give exactly one of --telemetry-command and "
                "--stdin\n%s",
                run_usage);
        return 2;
    }
    return 0;
}

static int done(struct run *r)
{
    if (stop_signal || r->failed || hub_update_exit_requested(r->update))
        return 1;
    if (r->use_stdin && r->stdin_eof && r->line.len == 0 && r->pending == 0 && r->connected)
        return 1;
    return r->once && r->published > 0 && r->pending == 0;
}

static void loop(struct run *r)
{
    while (!done(r)) {
        long long now = now_ms();
        /* The first check waits for the first connection attempt to end, so a renewal
         * at start is also seen by the server on a live connection. */
        if (now >= r->next_renew_ms && (r->connected || r->attempt > 0))
            renew_check(r);
        if (!r->sock_up && now_ms() >= r->next_connect_ms) {
            try_connect(r);
            if (r->failed)
                break;
        }
        if (r->connected && r->just_connected) {
            r->just_connected = 0;
            hub_update_connected(r->update);
        }
        long long update_wait = hub_update_tick(r->update, r->connected);
        if (done(r))
            break;
        if (r->connected && r->telemetry_cmd != NULL && now_ms() >= r->next_telemetry_ms &&
            !(r->once && r->published > 0))
            telemetry_tick(r);

        struct pollfd pf[2];
        int n = 0, sock = r->sock_up ? mosquitto_socket(r->mosq) : -1, in_idx = -1;
        if (sock >= 0) {
            pf[n] =
                (struct pollfd){sock, POLLIN | (mosquitto_want_write(r->mosq) ? POLLOUT : 0), 0};
            n++;
        }
        if (r->use_stdin && r->connected && !r->stdin_eof && r->pending < MAX_PENDING) {
            in_idx = n;
            pf[n++] = (struct pollfd){0, POLLIN, 0};
        }
        long long wait = update_wait < 1000 ? update_wait : 1000;
        if (!r->sock_up && r->next_connect_ms - now_ms() < wait)
            wait = r->next_connect_ms - now_ms();
        if (r->connected && r->telemetry_cmd && r->next_telemetry_ms - now_ms() < wait)
            wait = r->next_telemetry_ms - now_ms();
        if (wait < 0)
            wait = 0;
        int pr = poll(pf, (nfds_t)n, (int)wait);
        if (pr < 0 && errno != EINTR) {
            hub_error("poll failed: %s", strerror(errno));
            r->failed = 1;
            break;
        }
        if (sock >= 0 && pr > 0) {
            if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
                mosquitto_loop_read(r->mosq, 1);
            if (r->sock_up && (pf[0].revents & POLLOUT))
                mosquitto_loop_write(r->mosq, 1);
        }
        if (r->sock_up) {
            mosquitto_loop_misc(r->mosq);
            if (mosquitto_socket(r->mosq) < 0 && r->sock_up) {
                /* closed without a disconnect callback (e.g. keepalive timeout) */
                disconnect_cb(r->mosq, r, MOSQ_ERR_CONN_LOST);
            }
        }
        if (in_idx >= 0 && pr > 0 && (pf[in_idx].revents & (POLLIN | POLLHUP | POLLERR)))
            stdin_read(r);
        if (r->use_stdin && r->stdin_eof && r->line.len > 0 && r->connected)
            stdin_read(r);
    }
}

int hub_run_main(int argc, char **argv)
{
    struct run r;
    const char *dir = HUB_STATE_DEFAULT_DIR, *conf_path = NULL;
    memset(&r, 0, sizeof r);
    r.interval_s = 60;
    r.cmd_timeout_s = 30;
    r.renew_before_days = -1;
    int prc = parse_options(&r, argc, argv, &dir, &conf_path);
    if (prc != 0)
        return prc == 1 ? 0 : prc;
    if (hub_state_load(dir, &r.st) != 0)
        return 1;
    if (hub_pin_parse(r.st.pin, &r.pin) != 0) {
        hub_error("%s/state: pin_sha256 is not 64 hex digits", dir);
        return 1;
    }
    if (hub_agent_conf_load(conf_path, dir, &r.conf) != 0 || hub_keystore_open(&r.conf, dir) != 0)
        return 1;
    int lock_fd = -1;
    if (hub_state_lock(dir, &lock_fd) != 0) {
        hub_keystore_close();
        return 1;
    }
    hub_state_recover(&r.st);
    char key_path[1100];
    hub_state_path(&r.st, "key.pem", key_path, sizeof key_path);
    struct hub_update_io io = {&r, update_publish, update_service, update_shutdown};
    if (hub_keystore_check(key_path) != 0 ||
        (r.update = hub_update_new(&r.st, &r.conf, &r.pin, &io, argc, argv)) == NULL) {
        hub_keystore_close();
        close(lock_fd);
        return 1;
    }
    snprintf(r.topic_tele, sizeof r.topic_tele, "devices/%s/telemetry", r.st.device_id);
    snprintf(r.topic_cmd_prefix, sizeof r.topic_cmd_prefix, "devices/%s/commands/", r.st.device_id);
    snprintf(r.topic_ack_prefix, sizeof r.topic_ack_prefix, "devices/%s/acks/", r.st.device_id);
    /* IPv6 literals are stored in brackets, as in URLs. */
    size_t hl = strlen(r.st.mqtt_host);
    if (hl > 2 && r.st.mqtt_host[0] == '[' && r.st.mqtt_host[hl - 1] == ']') {
        memmove(r.st.mqtt_host, r.st.mqtt_host + 1, hl - 2);
        r.st.mqtt_host[hl - 2] = 0;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mosquitto_lib_init();
    int rc = 0;
    {
        r.next_connect_ms = r.next_telemetry_ms = r.next_renew_ms = now_ms();
        hub_info("device %s: MQTT %s:%d, API %s%s", r.st.device_id, r.st.mqtt_host, r.st.mqtt_port,
                 r.st.api_url, r.pin.set ? ", server certificate pinned" : "");
        loop(&r);
        if (r.sock_up) {
            mosquitto_disconnect(r.mosq);
            mosquitto_loop_write(r.mosq, 1);
            hub_info("disconnected%s", stop_signal ? " (signal)" : "");
        }
        rc = r.failed ? 1 : 0;
    }
    if (r.mosq != NULL)
        mosquitto_destroy(r.mosq);
    mosquitto_lib_cleanup();
    hub_update_free(r.update);
    hub_keystore_close();
    hub_buf_free(&r.line);
    close(lock_fd);
    return rc == 0 ? 0 : 1;
}
