/* Rows of ticket_wrap_key and ticket_keys (migration 004): the sealed key-wrapping key and the
 * wrapped session-ticket keys. Blocking calls on a connection owned by the caller; no crypto
 * here (server/ticketsync seals and wraps). */
#ifndef HUB_DB_TICKETS_H
#define HUB_DB_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "util/buf.h"

/* Advisory lock key of ticket-key maintenance (one node at a time creates and prunes keys). */
#define HUB_DB_TICKET_LOCK 7234003

/* A ticket key row; wrapped is owned (release with hub_db_tickets_free_keys). */
struct hub_db_ticket_key {
    uint32_t id;
    int64_t created; /* Unix time */
    hub_buf_t wrapped;
};

/* Appends the sealed wrapping key to out (FOR UPDATE when lock). HUB_ENOTFOUND when none. */
int hub_db_tickets_get_wrap(PGconn *c, int lock, hub_buf_t *out);
/* Stores the sealed wrapping key: inserted when absent (an existing one is kept: read it
 * again), or replaced when replace is set (rekey). */
int hub_db_tickets_put_wrap(PGconn *c, const uint8_t *sealed, size_t len, int replace);
/* The keys created less than max_age_s ago by the database's clock, oldest first; *now gets
 * the database's time. Free with hub_db_tickets_free_keys. */
int hub_db_tickets_list_keys(PGconn *c, uint32_t max_age_s, struct hub_db_ticket_key **out,
                             size_t *n, int64_t *now);
/* Frees a list from hub_db_tickets_list_keys (NULL allowed). */
void hub_db_tickets_free_keys(struct hub_db_ticket_key *k, size_t n);
/* Inserts a wrapped key made for the id the database hands out: the caller passes a function
 * that wraps its key under that id. *id and *created get the new row's values. */
int hub_db_tickets_insert_key(PGconn *c, int (*wrap)(uint32_t id, hub_buf_t *out, void *arg),
                              void *arg, uint32_t *id, int64_t *created);
/* Deletes the keys created max_age_s ago or earlier; *deleted gets how many (may be NULL). */
int hub_db_tickets_prune_keys(PGconn *c, uint32_t max_age_s, int *deleted);

#endif
