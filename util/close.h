/* Why a connection closed: one list for the transport (net/), the broker (mqtt/), the worker
 * records and the MQTT metrics, so a reason is never translated from one enum to another. */
#ifndef HUB_UTIL_CLOSE_H
#define HUB_UTIL_CLOSE_H

/* The values HUB_CLOSE_NORMAL..HUB_CLOSE_ERROR are the reason labels of
 * iothub_mqtt_connections_closed_total, in the order they are rendered. HUB_CLOSE_NONE
 * ("not decided yet", "the broker did not close it") and HUB_CLOSE_LOCAL (the transport's
 * "its owner closed it"; the owner knows why) are never rendered. */
enum hub_close_reason {
    HUB_CLOSE_NONE,
    HUB_CLOSE_NORMAL,   /* the client sent DISCONNECT */
    HUB_CLOSE_PEER,     /* the peer closed without DISCONNECT (EOF or close_notify) */
    HUB_CLOSE_REVOKED,  /* certificate, device or service revoked */
    HUB_CLOSE_TIMEOUT,  /* no CONNECT in time, keepalive expired */
    HUB_CLOSE_PROTOCOL, /* malformed or unexpected packet */
    HUB_CLOSE_TAKEOVER, /* a new connection took the session over */
    HUB_CLOSE_REFUSED,  /* CONNECT refused: credentials, identity, client id */
    HUB_CLOSE_LIMIT,    /* packet or buffered input over the limits */
    HUB_CLOSE_SHUTDOWN, /* the server (or the listener) is stopping */
    HUB_CLOSE_ERROR,    /* socket or TLS error, write failure, out of memory */
    HUB_CLOSE_LOCAL,    /* transport only: hub_tls_conn_close was called */
    HUB_CLOSE_COUNT
};

/* The reason's metric label and log word ("normal", "peer_closed", "server_shutdown", ...;
 * "" for HUB_CLOSE_NONE, "local" for HUB_CLOSE_LOCAL). A static string; any thread. */
const char *hub_close_reason_name(enum hub_close_reason reason);

#endif
