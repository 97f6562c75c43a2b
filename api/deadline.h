/* Request-header deadlines for the HTTPS API, against slowloris. libmicrohttpd's own
 * timeout restarts with every byte received, so a client sending one header byte a second
 * would keep its connection (and its thread) for ever. Here a watchdog thread shuts down the
 * socket of a connection whose TLS handshake, request line, headers and body have not all
 * arrived within timeout_s of its accept, or of the previous answer on a kept-alive
 * connection.
 * Every function may be called from any thread. */
#ifndef HUB_API_DEADLINE_H
#define HUB_API_DEADLINE_H

typedef struct hub_deadlines hub_deadlines_t;
typedef struct hub_deadline hub_deadline_t;

/* Starts the watchdog (timeout_s >= 1). Returns NULL on failure (logged). */
hub_deadlines_t *hub_deadlines_new(unsigned timeout_s);
/* Stops the watchdog and frees d; every entry must have been removed. NULL is ignored. */
void hub_deadlines_free(hub_deadlines_t *d);
/* A connection was accepted on socket fd: its first request is due in timeout_s. Returns
 * the entry, owned by d until hub_deadlines_remove, or NULL (out of memory: no deadline). */
hub_deadline_t *hub_deadlines_add(hub_deadlines_t *d, int fd);
/* The current request is complete: no deadline until hub_deadlines_rearm. */
void hub_deadlines_met(hub_deadlines_t *d, hub_deadline_t *e);
/* The answer is done: the next request on the connection is due in timeout_s. */
void hub_deadlines_rearm(hub_deadlines_t *d, hub_deadline_t *e);
/* The connection is closing and its socket not yet closed: forgets and frees e. */
void hub_deadlines_remove(hub_deadlines_t *d, hub_deadline_t *e);

#endif
