#include "server/trustfeed.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "db/registrations.h"
#include "util/error.h"
#include "util/log.h"

struct hub_trustfeed {
    hub_trust_t *trust;
    void (*changed)(const char *, void *);
    void *ctx;
    struct hub_db_device_ca *cas; /* loaded by the job */
    size_t ncas;
    int stopping;
};

static void drop_loaded(struct hub_trustfeed *f)
{
    hub_db_registrations_free_cas(f->cas, f->ncas);
    f->cas = NULL;
    f->ncas = 0;
}

/* Thread pool, after LISTEN or a NOTIFY (server/pgfeed.c): loads every device CA. */
static int load_cb(PGconn *c, void *ctx)
{
    struct hub_trustfeed *f = ctx;
    drop_loaded(f);
    return hub_db_registrations_device_cas(c, &f->cas, &f->ncas);
}

static void loaded_cb(void *ctx)
{
    struct hub_trustfeed *f = ctx;
    if (f->stopping)
        return;
    struct hub_trust_ca *v = calloc(f->ncas + 1, sizeof *v);
    for (size_t i = 0; v != NULL && i < f->ncas; i++) {
        v[i] = (struct hub_trust_ca){.id = f->cas[i].id,
                                     .enabled = f->cas[i].enabled,
                                     .der = f->cas[i].der.data,
                                     .der_len = f->cas[i].der.len,
                                     .crl_der = f->cas[i].crl.len ? f->cas[i].crl.data : NULL,
                                     .crl_len = f->cas[i].crl.len};
    }
    int n = v != NULL ? hub_trust_replace(f->trust, v, f->ncas) : HUB_ENOMEM;
    free(v);
    drop_loaded(f);
    if (n < 0) {
        /* The set loaded last stays; the next change (or reconnect) loads again. */
        hub_warn("device CA feed: out of memory loading the device CAs; keeping the %zu known",
                 hub_trust_known(f->trust));
        return;
    }
    hub_info("device CAs: %d enabled of %zu trusted for client certificates", n,
             hub_trust_known(f->trust));
    if (f->changed != NULL)
        f->changed(NULL, f->ctx);
}

static int notify_cb(const char *payload, void *ctx)
{
    struct hub_trustfeed *f = ctx;
    if (f->stopping)
        return 0;
    hub_info("device CA %.36s changed: reloading the device CAs", payload);
    return 1;
}

static void lost_cb(const char *why, void *ctx)
{
    struct hub_trustfeed *f = ctx;
    if (!f->stopping)
        hub_warn("device CA feed: %s; keeping the %zu device CAs known, reconnecting", why,
                 hub_trust_known(f->trust));
}

static void release_cb(void *ctx)
{
    struct hub_trustfeed *f = ctx;
    drop_loaded(f);
    free(f);
}

int hub_trustfeed_start(struct hub_pgfeed *pg, hub_trust_t *trust,
                        void (*changed)(const char *, void *), void *ctx,
                        struct hub_trustfeed **out)
{
    struct hub_trustfeed *f = calloc(1, sizeof *f);
    if (f == NULL)
        return HUB_ENOMEM;
    f->trust = trust;
    f->changed = changed;
    f->ctx = ctx;
    struct hub_pgfeed_listener l = {
        .channel = "iothub_device_cas",
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

void hub_trustfeed_stop(struct hub_trustfeed *f)
{
    if (f != NULL)
        f->stopping = 1;
}
