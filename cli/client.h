/* iothubctl's HTTPS client (libcurl): one request at a time on a kept-alive connection,
 * verified TLS unless --insecure, and the mapping of every failure to an exit code. */
#ifndef HUB_CLI_CLIENT_H
#define HUB_CLI_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>

#include "cli/settings.h"
#include "util/buf.h"

/* Exit codes of iothubctl (docs/cli.md). */
enum hub_exit {
    HUB_EXIT_OK = 0,
    HUB_EXIT_REFUSED = 1,     /* the server answered 4xx/5xx */
    HUB_EXIT_USAGE = 2,       /* bad command line or configuration */
    HUB_EXIT_UNREACHABLE = 3, /* connection refused, DNS, timeout */
    HUB_EXIT_TLS = 4,         /* TLS failure, e.g. an untrusted server certificate */
};

enum hub_client_auth {
    HUB_CLIENT_ANONYMOUS, /* no credentials (CRL, CA, health) */
    HUB_CLIENT_BEARER,    /* the admin token of the settings */
    HUB_CLIENT_BASIC,     /* user:password set in the client (product claim, service) */
};

/* One client per process; settings are borrowed and must outlive it. */
struct hub_client {
    const struct hub_settings *settings;
    CURL *curl;
    const char *user, *password; /* for HUB_CLIENT_BASIC, borrowed */
};

/* An answer; body is owned (hub_client_response_free), json is the parsed body when it is a
 * JSON document, else NULL. */
struct hub_response {
    long status;
    hub_buf_t body;
    json_t *json;
};

/* Returns 0, or an exit code after printing why (no URL configured, libcurl failure). */
int hub_client_init(struct hub_client *c, const struct hub_settings *s);
void hub_client_free(struct hub_client *c);
/* Sends method path (with query) and an optional JSON body; fills resp whatever the status.
 * Returns 0 when the server answered, else 2 (no token for a bearer call), 3 or 4 after
 * printing the reason. */
int hub_client_send(struct hub_client *c, const char *method, const char *path, json_t *body,
                    enum hub_client_auth auth, struct hub_response *resp);
/* hub_client_send, then a status >= 300 becomes exit code 1 after printing
 * "error: <code>: <message> (HTTP nnn)" from the server's JSON error. */
int hub_client_call(struct hub_client *c, const char *method, const char *path, json_t *body,
                    enum hub_client_auth auth, struct hub_response *resp);
/* Prints the server's error for a status >= 300 and returns 1; returns 0 otherwise. */
int hub_client_check(const struct hub_response *resp);
/* Appends s to out percent-encoded for a path segment or query value. Returns 0 or HUB_E*. */
int hub_client_escape(hub_buf_t *out, const char *s);
void hub_client_response_free(struct hub_response *resp);

#endif
