/* TLS session-ticket keys shared by every TLS context and loop thread of a process (and, through
 * server/ticketsync, by every iothubd of a database). A ticket is
 *   key id (4, big endian) | nonce (12) | mbedtls_ssl_session_save() encrypted | tag (16)
 * under AES-256-GCM; the additional data names the purpose (a ticket of the mutual-TLS listener
 * does not open on the password listener). Readers (the ticket callbacks, on any loop thread)
 * take a read lock; hub_tickets_replace swaps the whole key list under the write lock. */
#ifndef HUB_NET_TICKETS_H
#define HUB_NET_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>

#define HUB_TICKET_KEY_LEN 32

typedef struct hub_tickets hub_tickets_t;

struct hub_ticket_key {
    uint32_t id;
    int64_t created; /* Unix time */
    uint8_t key[HUB_TICKET_KEY_LEN];
};

/* An empty key set. lifetime_s: a ticket opens until its session (the full handshake that
 * started it) is this old; rotation_s: a key writes new tickets for this long; lead_s: a key
 * writes only once this old (other nodes have loaded it by then), unless no key is that old.
 * A key older than lead + rotation + lead + lifetime opens nothing (the second lead: margin
 * for a successor made late). NULL when out of memory. */
hub_tickets_t *hub_tickets_new(uint32_t lifetime_s, uint32_t rotation_s, uint32_t lead_s);
/* Frees the set (no context may still use it) and wipes its keys. */
void hub_tickets_free(hub_tickets_t *t);
/* 2 lead + rotation + lifetime: the age after which a key opens nothing. */
uint32_t hub_tickets_max_age(const hub_tickets_t *t);
/* Replaces the keys with keys[0..n) (copied; the caller wipes its own). Any thread. Returns 0
 * or HUB_ENOMEM (the old keys are kept). */
int hub_tickets_replace(hub_tickets_t *t, const struct hub_ticket_key *keys, size_t n);
/* Adds one random key created now, with a random id (tools and tests without a database).
 * Returns 0 or a HUB_E* code. */
int hub_tickets_generate(hub_tickets_t *t);
/* How many keys the set holds. */
size_t hub_tickets_count(hub_tickets_t *t);

/* mbedTLS f_ticket_write: encrypts session with the current key. purpose is any byte that
 * must match at parse time. Returns 0 or an MBEDTLS_ERR_* code (no key: no ticket). */
int hub_tickets_write(hub_tickets_t *t, uint8_t purpose, const mbedtls_ssl_session *session,
                      unsigned char *start, const unsigned char *end, size_t *tlen,
                      uint32_t *lifetime);
/* mbedTLS f_ticket_parse: decrypts buf in place into session. Returns 0,
 * MBEDTLS_ERR_SSL_INVALID_MAC (unknown key id, bad tag, other purpose, malformed) or
 * MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED (session or key too old); mbedTLS then does a full
 * handshake. */
int hub_tickets_parse(hub_tickets_t *t, uint8_t purpose, mbedtls_ssl_session *session,
                      unsigned char *buf, size_t len);

#endif
