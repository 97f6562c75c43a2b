#include "server/revfeed.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db/certificates.h"
#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

struct hub_revfeed {
    uv_loop_t *loop;
    struct hub_pgfeed *pg;
    hub_revset_t *set;
    hub_revfeed_cb on_revoked;
    void *ctx;
    hub_revset_t *fresh; /* set loaded by the job */
    int stopping;
    int ready;
    struct hub_revfeed_stats st;
};

/* Thread pool, after LISTEN (server/pgfeed.c): loads the whole set. */
static int load_cb(PGconn *c, void *ctx)
{
    struct hub_revfeed *f = ctx;
    char(*serials)[HUB_SERIAL_HEX] = NULL;
    size_t n = 0;
    int rc = hub_db_certificates_revoked_serials(c, &serials, &n);
    if (rc == 0 && (f->fresh = hub_revset_new()) == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = hub_revset_add_hex(f->fresh, serials[i]);
    free(serials);
    if (rc != 0) {
        hub_revset_free(f->fresh);
        f->fresh = NULL;
    }
    return rc;
}

static void loaded_cb(void *ctx)
{
    struct hub_revfeed *f = ctx;
    if (f->stopping || f->fresh == NULL)
        return;
    hub_revset_replace_all(f->set, f->fresh); /* frees fresh */
    f->fresh = NULL;
    f->st.loads++;
    f->st.last_load_ms = uv_now(f->loop);
    hub_info("revocation feed: listening; %zu revoked serials loaded", hub_revset_count(f->set));
    /* Revocations made while we were away: let the owner re-check live sessions. */
    if (f->on_revoked != NULL) /* connections accepted before this load are checked too */
        f->on_revoked(NULL, f->ctx);
    f->ready = 1;
}

static int notify_cb(const char *payload, void *ctx)
{
    struct hub_revfeed *f = ctx;
    if (f->stopping)
        return 0;
    if (strncmp(payload, "device:", 7) == 0) {
        /* A device revoked or reset: its password sessions go too. */
        if (f->on_revoked != NULL)
            f->on_revoked(payload, f->ctx);
    } else if (hub_revset_add_hex(f->set, payload) == 0) {
        hub_info("revocation of %s received", payload);
        if (f->on_revoked != NULL)
            f->on_revoked(payload, f->ctx);
    } else {
        hub_warn("revocation feed: ignoring malformed serial \"%.64s\"", payload);
    }
    return 0;
}

static void lost_cb(const char *why, void *ctx)
{
    struct hub_revfeed *f = ctx;
    if (!f->stopping)
        hub_warn("revocation feed: %s; keeping the %zu revoked serials known, reconnecting",
                 why, hub_revset_count(f->set));
}

static void release_cb(void *ctx)
{
    struct hub_revfeed *f = ctx;
    hub_revset_free(f->fresh);
    free(f);
}

int hub_revfeed_start(uv_loop_t *loop, struct hub_pgfeed *pg, hub_revset_t *set,
                      hub_revfeed_cb on_revoked, void *ctx, struct hub_revfeed **out)
{
    struct hub_revfeed *f = calloc(1, sizeof *f);
    if (f == NULL)
        return HUB_ENOMEM;
    f->loop = loop;
    f->pg = pg;
    f->set = set;
    f->on_revoked = on_revoked;
    f->ctx = ctx;
    struct hub_pgfeed_listener l = {
        .channel = "iothub_revocation",
        .load = load_cb,
        .loaded = loaded_cb,
        .notify = notify_cb,
        .lost = lost_cb,
        .release = release_cb,
        .ctx = f,
    };
    int rc = hub_pgfeed_add(pg, &l);
    if (rc != 0) {
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void hub_revfeed_stop(struct hub_revfeed *f)
{
    if (f != NULL)
        f->stopping = 1;
}

void hub_revfeed_stats(const struct hub_revfeed *f, struct hub_revfeed_stats *out)
{
    *out = f->st;
    out->attempts = hub_pgfeed_attempts(f->pg);
}

int hub_revfeed_ready(const struct hub_revfeed *f)
{
    return f->ready;
}
