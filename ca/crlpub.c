/* CRL publication (see crlpub.h for when and what).
 *
 * Why a delta is complete. A base records a watermark: a time before which every revocation
 * had committed when the base's revocations were read (db/crls.c explains how it is taken).
 * A revocation missing from the base thus has revoked_at >= watermark, and a delta lists
 * every revocation of the CA with revoked_at >= watermark. It may repeat a few entries of
 * its base (those of the last second before it), which RFC 5280 allows and verifiers ignore.
 * That list only grows (a revocation is final and the delta keeps expired entries), so "the
 * newest delta holds as many entries as there are now" means nothing changed. */
#include "ca/crlpub.h"

#include <stdlib.h>
#include <time.h>

#include "ca/crl.h"
#include "db/certificates.h"
#include "db/crls.h"
#include "db/db.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define PRUNE_BATCH 500
#define PRUNE_ROUNDS 4 /* per publication: a backlog shrinks by 2,000 rows each time */
#define DEFAULT_BASE_HOURS 12

static double elapsed_ms(const struct timespec *since)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - since->tv_sec) * 1e3 + (double)(t.tv_nsec - since->tv_nsec) / 1e6;
}

/* Builds, signs and records row (number, times, base_number, watermark set by the caller)
 * from the revoked certificates rows; started: when the caller began reading them (logged
 * with the size). */
static int record(struct hub_authority *a, PGconn *c, const struct hub_authority_ca *ca,
                  struct hub_db_crl *row, const struct hub_db_revoked *rows, size_t n,
                  const struct timespec *started)
{
    struct hub_crl_entry *entries = NULL;
    hub_buf_t der = HUB_BUF_INIT;
    int rc = 0;
    if (n > 0 && (entries = calloc(n, sizeof *entries)) == NULL)
        return HUB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int len = hub_hex_decode(rows[i].serial, entries[i].serial, sizeof entries[i].serial);
        if (len <= 0) {
            hub_error("certificate serial \"%s\" in the database is not hex", rows[i].serial);
            rc = HUB_EINVAL;
            goto out;
        }
        entries[i].serial_len = (size_t)len;
        entries[i].revoked_at = rows[i].revoked_at;
        entries[i].reason = rows[i].reason;
    }
    row->entries = n;
    /* Signing is serialised with the API's (a->sign_lock); building the DER is not. */
    struct hub_crl_info info = {row->number,
                                row->this_update,
                                row->next_update,
                                row->base_number,
                                row->base_number ? NULL : ca->delta_url,
                                &a->sign_lock};
    double read_ms = elapsed_ms(started);
    rc = hub_crl_build_info(ca->cert, &ca->signer, &info, entries, n, &der);
    double built_ms = elapsed_ms(started);
    if (rc == 0)
        rc = hub_db_crls_record(c, ca->id, row, &der);
    if (rc == 0 && row->base_number == 0)
        hub_info("published %s CA CRL #%llu with %zu entries (%zu bytes in %.1f ms: read %.1f, "
                 "built and signed %.1f, stored %.1f)",
                 ca->name, (unsigned long long)row->number, n, der.len, elapsed_ms(started),
                 read_ms, built_ms - read_ms, elapsed_ms(started) - built_ms);
    else if (rc == 0)
        hub_debug("published %s CA delta CRL #%llu (base #%llu) with %zu entries (%zu bytes in "
                  "%.1f ms)",
                  ca->name, (unsigned long long)row->number, (unsigned long long)row->base_number,
                  n, der.len, elapsed_ms(started));
out:
    free(entries);
    hub_buf_free(&der);
    return rc;
}

/* The next delta of base: every revocation since its watermark (rows, n). */
static int publish_delta(struct hub_authority *a, PGconn *c, const struct hub_authority_ca *ca,
                         const struct hub_db_crl *base, const struct hub_db_revoked *rows, size_t n,
                         const struct timespec *started, struct hub_db_crl *delta)
{
    time_t now = time(NULL);
    *delta = (struct hub_db_crl){
        0, now, now + (time_t)a->crl_validity_hours * 3600, 0, base->number, 0, 0};
    int rc = hub_db_crls_next_number(c, ca->id, &delta->number); /* locks the cas row */
    return rc != 0 ? rc : record(a, c, ca, delta, rows, n, started);
}

/* A new base (every unexpired revocation, and its watermark), then its first delta. */
static int publish_base(struct hub_authority *a, PGconn *c, const struct hub_authority_ca *ca,
                        struct hub_db_crl *base, struct hub_db_crl *delta)
{
    struct hub_db_revoked *rows = NULL;
    size_t n = 0;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    time_t now = time(NULL);
    *base = (struct hub_db_crl){0, now, now + (time_t)a->crl_validity_hours * 3600, 0, 0, 0, 0};
    /* The number first: the cas row lock makes concurrent publishers queue, so the one that
     * takes the higher number also reads the later state. The watermark before the list. */
    int rc = hub_db_crls_next_number(c, ca->id, &base->number);
    if (rc == 0)
        rc = hub_db_crls_watermark(c, &base->watermark);
    if (rc == 0)
        rc = hub_db_certificates_revoked_list(c, ca->id, &rows, &n);
    if (rc == 0)
        rc = record(a, c, ca, base, rows, n, &started);
    free(rows);
    rows = NULL;
    clock_gettime(CLOCK_MONOTONIC, &started);
    if (rc == 0)
        rc = hub_db_certificates_revoked_since(c, ca->id, base->watermark, &rows, &n);
    if (rc == 0)
        rc = publish_delta(a, c, ca, base, rows, n, &started, delta);
    free(rows);
    return rc;
}

/* Deletes the CA's CRLs other than base, delta and the crl_history newest others. */
static int prune(struct hub_authority *a, PGconn *c, int ca_id, uint64_t base, uint64_t delta)
{
    int deleted = PRUNE_BATCH, rc = 0;
    for (int i = 0; rc == 0 && deleted == PRUNE_BATCH && i < PRUNE_ROUNDS; i++)
        rc = hub_db_crls_prune(c, ca_id, base, delta, a->crl_history, PRUNE_BATCH, &deleted);
    return rc;
}

int hub_crlpub_base(struct hub_authority *a, PGconn *c, int ca_id)
{
    struct hub_authority_ca ca;
    struct hub_db_crl base, delta;
    int rc = hub_authority_ca_of(a, ca_id, &ca);
    if (rc == 0 && ca.signer.token == NULL &&
        mbedtls_pk_get_type(ca.signer.pk) == MBEDTLS_PK_NONE) {
        hub_error("the %s CA's key is not in the hub: its CRLs are imported (iothubd ca import "
                  "--crl)",
                  ca.name);
        rc = HUB_EINVAL;
    }
    if (rc == 0)
        rc = publish_base(a, c, &ca, &base, &delta);
    if (rc == 0)
        rc = prune(a, c, ca_id, base.number, delta.number);
    return rc;
}

/* Decides and publishes inside the open transaction, the lock held. */
static int publish_due(struct hub_authority *a, PGconn *c, const struct hub_authority_ca *ca,
                       enum hub_crlpub_mode mode, struct hub_crlpub_result *res)
{
    struct hub_db_crl base = {0}, delta = {0}, new_base = {0}, new_delta = {0};
    struct hub_db_revoked *rows = NULL;
    size_t n = 0;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    int rc = hub_db_crls_newest(c, ca->id, 0, NULL, &base);
    int have_base = rc == 0;
    if (rc == 0 || rc == HUB_ENOTFOUND)
        rc = hub_db_crls_newest(c, ca->id, 1, NULL, &delta);
    int have_delta = rc == 0;
    if (rc != 0 && rc != HUB_ENOTFOUND)
        return rc;
    rc = 0;
    time_t now = time(NULL);
    int base_hours = a->crl_base_hours > 0 ? a->crl_base_hours : DEFAULT_BASE_HOURS;
    int need_base = !have_base || base.watermark == 0 || /* none, or one from before deltas */
                    now >= base.this_update + (time_t)base_hours * 3600 ||
                    now >= base.this_update + (base.next_update - base.this_update) / 2;
    if (mode == HUB_CRLPUB_MISSING && have_base)
        return 0;
    if (!need_base) {
        rc = hub_db_certificates_revoked_since(c, ca->id, base.watermark, &rows, &n);
        if (rc != 0)
            return rc;
        int current = have_delta && delta.base_number == base.number;
        if (current && n == delta.entries &&
            now < delta.this_update + (delta.next_update - delta.this_update) / 2)
            goto out; /* nothing new */
        if (n > HUB_CRLPUB_DELTA_MIN_REBASE && n > base.entries / 8)
            need_base = 1;
        /* A small CRL is rebuilt whole: clients that ignore deltas stay within a second. */
        if (base.entries + n <= (size_t)a->crl_rebuild_max_entries)
            need_base = 1;
    }
    /* At most one publication a second, whichever node made the last one. */
    long long age = have_base ? base.age_ms : -1;
    if (have_delta && (age < 0 || delta.age_ms < age))
        age = delta.age_ms;
    if (mode != HUB_CRLPUB_MISSING && age >= 0 && age < HUB_CRLPUB_INTERVAL_MS) {
        res->retry_ms = (int)(HUB_CRLPUB_INTERVAL_MS - age);
        goto out;
    }
    if (need_base) {
        rc = publish_base(a, c, ca, &new_base, &new_delta);
        res->published = rc == 0 ? 2 : 0;
        res->base_entries = new_base.entries;
    } else {
        new_base = base;
        rc = publish_delta(a, c, ca, &base, rows, n, &started, &new_delta);
        res->published = rc == 0 ? 1 : 0;
    }
    res->delta_entries = new_delta.entries;
    if (rc == 0)
        rc = prune(a, c, ca->id, new_base.number, new_delta.number);
out:
    free(rows);
    return rc;
}

int hub_crlpub_ca(struct hub_authority *a, PGconn *c, int ca_id, enum hub_crlpub_mode mode,
                  struct hub_crlpub_result *res)
{
    struct hub_authority_ca ca;
    *res = (struct hub_crlpub_result){0};
    int rc = hub_authority_ca_of(a, ca_id, &ca);
    if (rc != 0)
        return rc;
    int got = 0;
    rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_crls_try_lock(c, ca_id, &got);
    if (rc == 0 && got)
        rc = publish_due(a, c, &ca, mode, res);
    res->busy = rc == 0 && !got;
    if (rc == 0 && res->published > 0) {
        if ((rc = hub_db_commit(c)) != 0)
            hub_db_rollback(c);
    } else {
        hub_db_rollback(c); /* nothing written, or a failure: also releases the lock */
    }
    if (rc != 0)
        res->published = 0;
    return rc;
}

int hub_crlpub_all(struct hub_authority *a, PGconn *c, enum hub_crlpub_mode mode, int *published,
                   int *retry_ms, int *busy)
{
    int ids[64];
    size_t n = hub_authority_ca_ids(a, ids, sizeof ids / sizeof ids[0]);
    int first = 0; /* a CA that fails does not hold the others back */
    *published = *retry_ms = *busy = 0;
    for (size_t i = 0; i < n; i++) {
        struct hub_crlpub_result res;
        int rc = hub_crlpub_ca(a, c, ids[i], mode, &res);
        if (rc != 0) {
            first = first ? first : rc;
            if (PQstatus(c) != CONNECTION_OK)
                break;
            continue;
        }
        *published += res.published;
        *busy += res.busy;
        if (res.retry_ms > 0 && (*retry_ms == 0 || res.retry_ms < *retry_ms))
            *retry_ms = res.retry_ms;
    }
    return first;
}

int hub_crlpub_refresh(struct hub_authority *a, PGconn *c, int only_missing, int *published)
{
    int retry_ms, busy;
    return hub_crlpub_all(a, c, only_missing ? HUB_CRLPUB_MISSING : HUB_CRLPUB_DUE, published,
                          &retry_ms, &busy);
}
