/* CRL publication: complete ("base") CRLs on a long period and delta CRLs (RFC 5280 §5.2.4)
 * after revocations, per CA, recorded in crls and pruned. A revocation itself only marks the
 * certificate and NOTIFYs; these calls turn revocations into CRLs. Blocking calls on a
 * caller-owned connection, from a command or a worker thread (never an event loop).
 *
 * Who publishes: whoever takes the CA's advisory lock (one node at a time; the others
 * skip). What: a base when there is none, when it is crl_base_hours old or past half its
 * validity, when the revocations since it outgrow the delta limit, or when it would hold at
 * most crl_rebuild_max_entries (a small CRL is simply rebuilt); otherwise a delta when
 * the revocations since the base are not all in the newest delta (or it is past half its
 * validity). When: at most once a second per CA, counted from the newest CRL's row. */
#ifndef HUB_CA_CRLPUB_H
#define HUB_CA_CRLPUB_H

#include <libpq-fe.h>

#include "ca/authority.h"

/* A delta listing more than this, and more than an eighth of its base, is replaced by a
 * new base: a delta stays small next to the base clients already hold. */
#define HUB_CRLPUB_DELTA_MIN_REBASE 1024
/* Minimum time between two publications of one CA. */
#define HUB_CRLPUB_INTERVAL_MS 1000

enum hub_crlpub_mode {
    HUB_CRLPUB_MISSING, /* only a CA that has no base CRL yet (init) */
    HUB_CRLPUB_DUE,     /* everything due: base, delta, refresh at half validity */
};

/* What one call did. */
struct hub_crlpub_result {
    int published; /* CRLs recorded (a new base comes with its first delta: 2) */
    int busy;      /* another session holds the CA's publisher lock: nothing done */
    int retry_ms;  /* > 0: something is due but the CA published less than a second ago */
    size_t base_entries, delta_entries; /* of what was published */
};

/* Publishes what is due for CA ca_id in its own transaction (the connection must be idle).
 * Returns 0 (see *res) or a HUB_E* code (rolled back); HUB_ENOTFOUND for a CA the
 * authority does not hold. */
int hub_crlpub_ca(struct hub_authority *a, PGconn *c, int ca_id, enum hub_crlpub_mode mode,
                  struct hub_crlpub_result *res);
/* hub_crlpub_ca for every CA of the authority (one failing does not stop the others);
 * *published counts the CRLs, *retry_ms the soonest retry asked (0: none), *busy the CAs
 * another session was publishing. Returns 0 or the first failure. */
int hub_crlpub_all(struct hub_authority *a, PGconn *c, enum hub_crlpub_mode mode, int *published,
                   int *retry_ms, int *busy);
/* hub_crlpub_all, only_missing choosing HUB_CRLPUB_MISSING (init) or HUB_CRLPUB_DUE (the
 * periodic refresh); a CA another node is publishing, or published less than a second ago,
 * is left to the next call. */
int hub_crlpub_refresh(struct hub_authority *a, PGconn *c, int only_missing, int *published);
/* Builds and records a new base CRL of CA ca_id, and its (empty) delta, in the caller's
 * transaction, whatever is due (a tool that wants a CRL now). */
int hub_crlpub_base(struct hub_authority *a, PGconn *c, int ca_id);

#endif
