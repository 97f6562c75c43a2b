/* Test server for net/tls_listener: listens on 127.0.0.1:PORT and echoes what it receives
 * prefixed with "<client CN>: ". Revoked serials (hex, one a line) come from a file re-read
 * on SIGHUP, after which live connections with a revoked certificate are closed.
 *   tls_echo [-t HANDSHAKE_MS] [-m MAX_HANDSHAKES] [-c CIPHERS] [-n] [-p] [-q]
 *            CHAIN.pem KEY.pem CA.pem PORT [REVOKED.txt]
 * -n: no client certificate; -p: plain TCP; -q: log at info level, no per-connection lines.
 * Prints "listening PORT" once ready. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "net/revset.h"
#include "net/tls_listener.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

static hub_tls_listener_t *listener;
static hub_revset_t *revset;
static const char *revoked_path;
static uv_signal_t sig_hup, sig_term, sig_int;
static int quiet;

static int read_file(const char *path, hub_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "tls_echo: cannot open %s\n", path);
        return HUB_EIO;
    }
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = hub_buf_append(b, chunk, n);
    fclose(f);
    if (rc == 0)
        rc = hub_buf_reserve(b, 1); /* NUL terminator */
    if (rc == 0)
        b->data[b->len] = 0;
    return rc;
}

/* Loads the revoked serials file into a fresh set (a missing file means none). */
static hub_revset_t *load_revoked(void)
{
    hub_revset_t *s = hub_revset_new();
    if (s == NULL || revoked_path == NULL || access(revoked_path, F_OK) != 0)
        return s;
    FILE *f = fopen(revoked_path, "r");
    if (f == NULL)
        return s;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, " \t\r\n#")] = 0;
        if (line[0] != 0 && hub_revset_add_hex(s, line) != 0)
            fprintf(stderr, "tls_echo: bad serial \"%s\"\n", line);
    }
    fclose(f);
    return s;
}

static void *on_open(hub_tls_conn_t *c, const struct hub_tls_identity *id, void *user)
{
    if (quiet)
        return NULL;
    printf("open %s cn=%s serial=%s resumed=%d\n", hub_tls_conn_peer(c), id ? id->cn : "-",
           id ? id->serial_hex : "-", id ? id->resumed : 0);
    fflush(stdout);
    return NULL;
}

static void on_data(hub_tls_conn_t *c, const uint8_t *plain, size_t len)
{
    const char *cn = hub_tls_conn_cn(c);
    char prefix[80];
    int n = snprintf(prefix, sizeof prefix, "%s: ", cn[0] ? cn : "anonymous");
    if (hub_tls_conn_write(c, prefix, (size_t)n) == 0)
        hub_tls_conn_write(c, plain, len);
}

static void on_close(hub_tls_conn_t *c, enum hub_close_reason reason)
{
    if (quiet)
        return;
    printf("close %s reason=%s\n", hub_tls_conn_peer(c), hub_close_reason_name(reason));
    fflush(stdout);
}

static void hup_cb(uv_signal_t *s, int signum)
{
    hub_revset_t *fresh = load_revoked();
    if (fresh == NULL)
        return;
    hub_revset_replace_all(revset, fresh);
    int n = hub_tls_listener_recheck(listener);
    printf("reloaded %zu revoked serial(s), closed %d connection(s)\n", hub_revset_count(revset),
           n);
    fflush(stdout);
}

static void stop_cb(uv_signal_t *s, int signum)
{
    hub_tls_listener_close(listener, NULL, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void usage(void)
{
    fprintf(stderr, "usage: tls_echo [-t HANDSHAKE_MS] [-m MAX_HANDSHAKES] [-c CIPHERS] [-n] "
                    "[-p] [-q] CHAIN.pem KEY.pem CA.pem PORT [REVOKED.txt]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct hub_tls_limits lim = {0};
    const char *ciphers = NULL;
    int opt, plain = 0, no_client_cert = 0;
    while ((opt = getopt(argc, argv, "t:m:c:npq")) != -1) {
        switch (opt) {
        case 't': lim.handshake_timeout_ms = (unsigned)atoi(optarg); break;
        case 'm': lim.max_handshakes = (unsigned)atoi(optarg); break;
        case 'c': ciphers = optarg; break;
        case 'n': no_client_cert = 1; break;
        case 'p': plain = 1; break;
        case 'q': quiet = 1; break;
        default: usage();
        }
    }
    if (argc - optind < 4 || argc - optind > 5)
        usage();
    hub_log_setup(quiet ? HUB_LOG_INFO : HUB_LOG_DEBUG, HUB_LOG_TEXT);
    signal(SIGPIPE, SIG_IGN);
    revoked_path = argc - optind == 5 ? argv[optind + 4] : NULL;
    int port = atoi(argv[optind + 3]), rc = 1;

    hub_buf_t chain = HUB_BUF_INIT, key = HUB_BUF_INIT, ca = HUB_BUF_INIT;
    hub_tls_ctx_t *ctx = NULL;
    hub_tickets_t *tickets = hub_tickets_new(86400, 43200, 0); /* in memory, one random key */
    revset = load_revoked();
    if (revset == NULL || read_file(argv[optind], &chain) != 0 ||
        read_file(argv[optind + 1], &key) != 0 || read_file(argv[optind + 2], &ca) != 0)
        goto out;
    if (!plain) {
        if (tickets == NULL || hub_tickets_generate(tickets) != 0)
            goto out;
        struct hub_tls_ctx_options o = {
            .cert_chain_pem = (const char *)chain.data,
            .key_pem = (const char *)key.data,
            .ca_pem = (const char *)ca.data,
            .client_auth = no_client_cert ? HUB_TLS_CLIENT_NONE : HUB_TLS_CLIENT_REQUIRED,
            .ciphers = ciphers,
            .revset = revset,
            .tickets = tickets,
        };
        if (hub_tls_ctx_new(&o, &ctx) != 0)
            goto out;
    }
    uv_loop_t *loop = uv_default_loop();
    struct hub_tls_callbacks cb = {on_open, on_data, on_close};
    if (hub_tls_listener_open(loop, "127.0.0.1", port, ctx, &cb, NULL, &lim, &listener) != 0) {
        uv_run(loop, UV_RUN_DEFAULT); /* lets the failed listener free itself */
        goto out;
    }
    uv_signal_init(loop, &sig_hup);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_hup, hup_cb, SIGHUP);
    uv_signal_start(&sig_term, stop_cb, SIGTERM);
    uv_signal_start(&sig_int, stop_cb, SIGINT);
    printf("listening %d\n", hub_tls_listener_port(listener));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    rc = 0;
out:
    hub_tls_ctx_free(ctx);
    hub_tickets_free(tickets);
    hub_revset_free(revset);
    hub_buf_free(&chain);
    hub_buf_free(&key);
    hub_buf_free(&ca);
    return rc;
}
