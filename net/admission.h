/* Admission of TCP connections: the listener-wide caps (concurrent handshakes,
 * unauthenticated connections, connections) and the per-address handshake cap, counted for
 * one listener or, through a hub_admission_shared_t, for the listeners of one port on
 * several loops. A connection over a cap is refused at accept, before any TLS state exists. */
#ifndef HUB_NET_ADMISSION_H
#define HUB_NET_ADMISSION_H

#include <stdint.h>

struct sockaddr;

/* What the listeners of one port on several loops (net/workers) count together, so that the
 * caps hold for the port as a whole. Any thread; the counts are atomics, the per-address
 * table has its own mutex. */
typedef struct hub_admission_shared hub_admission_shared_t;

/* The caps (0: unlimited, except max_handshakes: 0 means 512). */
struct hub_admission_caps {
    unsigned max_handshakes;
    unsigned max_handshakes_per_ip;
    unsigned max_unauthenticated;
    unsigned max_connections;
};

struct hub_admission_ips;

/* One listener's counts (embedded in the listener; its loop thread only, apart from the
 * shared part). Written by net/admission.c only; the listener reads conns, handshakes and
 * unauth for its stats and logs. */
struct hub_admission {
    struct hub_admission_caps caps;
    int tls;                            /* handshake caps apply to TLS listeners only */
    unsigned conns, handshakes, unauth; /* this listener's */
    hub_admission_shared_t *shared;     /* borrowed; NULL: the caps count this listener only */
    struct hub_admission_ips *ips;      /* NULL without a per-address cap; shared's or own_ips */
    struct hub_admission_ips *own_ips;
};

/* Creates the shared counts of one port for the given caps (a per-address table when
 * max_handshakes_per_ip != 0). Must outlive every listener using it. NULL: out of memory. */
hub_admission_shared_t *hub_admission_shared_new(unsigned max_handshakes,
                                                 unsigned max_handshakes_per_ip);
void hub_admission_shared_free(hub_admission_shared_t *s);

/* Sets a listener's counts up (tls: 1 for a TLS listener; shared borrowed, may be NULL).
 * Returns 0 or HUB_ENOMEM. Freed with hub_admission_fini. */
int hub_admission_init(struct hub_admission *a, const struct hub_admission_caps *caps, int tls,
                       hub_admission_shared_t *shared);
void hub_admission_fini(struct hub_admission *a);

/* 1 when a new connection must be refused at once (a listener-wide cap is reached). */
int hub_admission_full(const struct hub_admission *a);
/* A connection was accepted (counted as unauthenticated) / freed (unauth: still counted as
 * unauthenticated). */
void hub_admission_conn_add(struct hub_admission *a);
void hub_admission_conn_remove(struct hub_admission *a, int unauth);
/* The connection stopped counting against max_unauthenticated (call once per connection). */
void hub_admission_authenticated(struct hub_admission *a);

/* Counts one more handshake from the address key addr unless it is at the per-address cap:
 * returns 1 if counted (always 1 without a per-address cap or on a plain listener), 0 if
 * refused. Each 1 is matched by one hub_admission_addr_release. */
int hub_admission_addr_acquire(struct hub_admission *a, const uint8_t addr[16]);
void hub_admission_addr_release(struct hub_admission *a, const uint8_t addr[16]);
/* 1 when addresses are counted (per-address cap set and TLS listener). */
int hub_admission_addr_counted(const struct hub_admission *a);
/* A handshake began / ended (for max_handshakes). */
void hub_admission_handshake_begin(struct hub_admission *a);
void hub_admission_handshake_end(struct hub_admission *a);

/* The 16 bytes that the per-address cap counts by: an IPv4 address mapped into IPv6, or an
 * IPv6 address's /64 (one host usually holds a whole /64, so counting /128s would let it open
 * as many handshakes as it likes). Anything else: 16 zero bytes. */
void hub_admission_addr_key(const struct sockaddr *sa, uint8_t key[16]);

#endif
