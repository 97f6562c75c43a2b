/* Ticket keys from PostgreSQL. Timeline of a key (rotation R, lifetime L, lead D, refresh F):
 * made once the newest key is R old (by the database's clock, checked every F); written with
 * from age D (every node has loaded it by then: D = 5 F, at most R / 2) until the next key is
 * D old; opened until its tickets expire (L after the full handshake that started the session),
 * so it is deleted once it is D + R + L + D old. A node whose database is unreachable keeps
 * using the keys it has. Wrapped key: nonce (12) | key (32) | tag (16), AES-256-GCM under the
 * wrapping key with "iothub ticket key" and the key id (big endian) as additional data. */
#include "server/ticketsync.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/gcm.h>

#include "ca/seal.h"
#include "db/db.h"
#include "db/tickets.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define WRAP_LABEL "iothub tickets:wrap"
#define ADMIN_LOCK 7234002 /* the advisory lock of init and rekey (server/init.c) */
#define NONCE_LEN 12
#define TAG_LEN 16
#define WRAPPED_LEN (NONCE_LEN + HUB_TICKET_KEY_LEN + TAG_LEN)
#define MAX_BAD 16

struct hub_ticketsync {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    hub_tickets_t *set; /* borrowed from the caller once started */
    char *db_url;
    PGconn *db; /* the job's connection (thread pool only) */
    uint8_t wrap[HUB_TICKET_KEY_LEN];
    uint32_t rotation, max_age;
    int busy, stopping, timer_open;
    int job_rc, failing;
    uint32_t bad[MAX_BAD]; /* ids already reported as not unwrapping */
    size_t nbad;
};

static int wrap_gcm(const uint8_t wrap[HUB_TICKET_KEY_LEN], int encrypt, uint32_t id,
                    const uint8_t *nonce, const uint8_t *in, uint8_t *out, uint8_t *tag)
{
    uint8_t ad[] = {'i',
                    'o',
                    't',
                    'h',
                    'u',
                    'b',
                    ' ',
                    't',
                    'i',
                    'c',
                    'k',
                    'e',
                    't',
                    ' ',
                    'k',
                    'e',
                    'y',
                    (uint8_t)(id >> 24),
                    (uint8_t)(id >> 16),
                    (uint8_t)(id >> 8),
                    (uint8_t)id};
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    int rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, wrap, HUB_TICKET_KEY_LEN * 8);
    if (rc == 0 && encrypt)
        rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, HUB_TICKET_KEY_LEN, nonce,
                                       NONCE_LEN, ad, sizeof ad, in, out, TAG_LEN, tag);
    else if (rc == 0)
        rc = mbedtls_gcm_auth_decrypt(&g, HUB_TICKET_KEY_LEN, nonce, NONCE_LEN, ad, sizeof ad, tag,
                                      TAG_LEN, in, out);
    mbedtls_gcm_free(&g);
    return rc;
}

/* A key being made: the random key, kept to add it to the set after the insert. */
struct fresh {
    const uint8_t *wrap;
    uint8_t key[HUB_TICKET_KEY_LEN];
};

static int wrap_new_key(uint32_t id, hub_buf_t *out, void *arg)
{
    struct fresh *f = arg;
    uint8_t blob[WRAPPED_LEN];
    int rc = hub_random(f->key, sizeof f->key);
    if (rc == 0)
        rc = hub_random(blob, NONCE_LEN);
    if (rc != 0)
        return rc;
    if (wrap_gcm(f->wrap, 1, id, blob, f->key, blob + NONCE_LEN,
                 blob + NONCE_LEN + HUB_TICKET_KEY_LEN) != 0)
        return HUB_ECRYPTO;
    return hub_buf_append(out, blob, sizeof blob);
}

static int known_bad(struct hub_ticketsync *s, uint32_t id)
{
    for (size_t i = 0; i < s->nbad; i++)
        if (s->bad[i] == id)
            return 1;
    if (s->nbad < MAX_BAD)
        s->bad[s->nbad++] = id;
    return 0;
}

/* Unwraps the rows into keys[] (those that do not unwrap are skipped, reported once each).
 * Returns how many. */
static size_t unwrap_all(struct hub_ticketsync *s, const struct hub_db_ticket_key *rows, size_t n,
                         struct hub_ticket_key *keys)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const hub_buf_t *b = &rows[i].wrapped;
        struct hub_ticket_key *t = &keys[k];
        if (b->len == WRAPPED_LEN &&
            wrap_gcm(s->wrap, 0, rows[i].id, b->data, b->data + NONCE_LEN, t->key,
                     b->data + NONCE_LEN + HUB_TICKET_KEY_LEN) == 0) {
            t->id = rows[i].id;
            t->created = rows[i].created;
            k++;
        } else if (!known_bad(s, rows[i].id)) {
            hub_warn("session-ticket key %u does not unwrap: ignored", rows[i].id);
        }
    }
    return k;
}

/* One maintenance pass on c: in one transaction under the ticket lock, list the live keys,
 * make one if the newest usable key is due (or there is none), delete dead ones; then put the
 * usable keys into the set. */
static int maintain(struct hub_ticketsync *s, PGconn *c)
{
    struct hub_db_ticket_key *rows = NULL;
    struct hub_ticket_key *keys = NULL;
    struct fresh f = {.wrap = s->wrap};
    size_t n = 0, k = 0;
    int64_t now = 0, created = 0;
    uint32_t new_id = 0;
    int deleted = 0;
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_xact_lock(c, HUB_DB_TICKET_LOCK);
    if (rc == 0)
        rc = hub_db_tickets_list_keys(c, s->max_age, &rows, &n, &now);
    if (rc == 0 && (keys = calloc(n + 1, sizeof *keys)) == NULL)
        rc = HUB_ENOMEM;
    if (rc == 0)
        k = unwrap_all(s, rows, n, keys);
    if (rc == 0 && (k == 0 || now - keys[k - 1].created >= (int64_t)s->rotation))
        rc = hub_db_tickets_insert_key(c, wrap_new_key, &f, &new_id, &created);
    if (rc == 0)
        rc = hub_db_tickets_prune_keys(c, s->max_age, &deleted);
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc != 0) {
        hub_db_rollback(c);
        goto out;
    }
    if (new_id != 0) {
        hub_info("session-ticket key %u created", new_id);
        keys[k].id = new_id;
        keys[k].created = created;
        memcpy(keys[k].key, f.key, sizeof f.key);
        k++;
    }
    if (deleted > 0)
        hub_info("%d expired session-ticket key(s) deleted", deleted);
    rc = hub_tickets_replace(s->set, keys, k);
out:
    if (keys != NULL) {
        hub_wipe(keys, (n + 1) * sizeof *keys);
        free(keys);
    }
    hub_wipe(f.key, sizeof f.key);
    hub_db_tickets_free_keys(rows, n);
    return rc;
}

/* Makes the wrapping key if the database has none (under the init/rekey lock, so a rekey in
 * progress cannot miss it), then unseals it into s->wrap. */
static int load_wrap(struct hub_ticketsync *s, PGconn *c, const char *pass)
{
    hub_buf_t sealed = HUB_BUF_INIT, plain = HUB_BUF_INIT;
    uint8_t key[HUB_TICKET_KEY_LEN];
    int rc = hub_db_tickets_get_wrap(c, 0, &sealed);
    if (rc == HUB_ENOTFOUND) {
        rc = hub_db_begin(c);
        if (rc == 0)
            rc = hub_db_xact_lock(c, ADMIN_LOCK);
        if (rc == 0 && (rc = hub_db_tickets_get_wrap(c, 1, &sealed)) == HUB_ENOTFOUND) {
            rc = hub_random(key, sizeof key);
            if (rc == 0)
                rc = hub_seal(pass, HUB_SEAL_ITERATIONS, WRAP_LABEL, key, sizeof key, &sealed);
            if (rc == 0)
                rc = hub_db_tickets_put_wrap(c, sealed.data, sealed.len, 0);
            if (rc == 0)
                hub_info("session-ticket wrapping key created");
        }
        if (rc == 0)
            rc = hub_db_commit(c);
        if (rc != 0)
            hub_db_rollback(c);
    }
    if (rc == 0)
        rc = hub_unseal(pass, WRAP_LABEL, sealed.data, sealed.len, &plain);
    if (rc == 0 && plain.len != sizeof s->wrap)
        rc = HUB_EINVAL;
    if (rc == 0)
        memcpy(s->wrap, plain.data, sizeof s->wrap);
    else if (rc == HUB_EBADPASS)
        hub_error("the master passphrase does not open the session-ticket wrapping key "
                  "(ticket_wrap_key): check master_key_file / IOTHUB_MASTER_KEY");
    else
        hub_error("session-ticket keys: cannot load the wrapping key: %s", hub_strerror(rc));
    hub_wipe(key, sizeof key);
    hub_buf_free(&plain);
    hub_buf_free(&sealed);
    return rc;
}

static void release(struct hub_ticketsync *s)
{
    if (s->busy || s->timer_open)
        return;
    PQfinish(s->db);
    hub_wipe(s->wrap, sizeof s->wrap);
    free(s->db_url);
    free(s);
}

static void work_cb(uv_work_t *w)
{
    struct hub_ticketsync *s = w->data;
    int rc = 0;
    if (s->db != NULL && PQstatus(s->db) != CONNECTION_OK && hub_db_reset(s->db) != 0) {
        PQfinish(s->db);
        s->db = NULL;
    }
    if (s->db == NULL)
        rc = hub_db_connect(s->db_url, &s->db);
    if (rc == 0)
        rc = maintain(s, s->db);
    s->job_rc = rc;
}

static void after_cb(uv_work_t *w, int status)
{
    struct hub_ticketsync *s = w->data;
    s->busy = 0;
    if (status == 0 && s->job_rc != 0 && !s->failing)
        hub_warn("session-ticket keys not refreshed (%s): the keys loaded are kept, retrying",
                 hub_strerror(s->job_rc));
    else if (status == 0 && s->job_rc == 0 && s->failing)
        hub_info("session-ticket keys refreshed again");
    if (status == 0)
        s->failing = s->job_rc != 0;
    if (s->stopping)
        release(s);
}

static void timer_cb(uv_timer_t *t)
{
    struct hub_ticketsync *s = t->data;
    if (s->busy || s->stopping)
        return;
    s->work.data = s;
    if (uv_queue_work(s->loop, &s->work, work_cb, after_cb) == 0)
        s->busy = 1;
}

int hub_ticketsync_start(uv_loop_t *loop, PGconn *c, const char *pass, const char *db_url,
                         uint32_t lifetime_s, uint32_t rotation_s, hub_tickets_t **tickets,
                         struct hub_ticketsync **out)
{
    *tickets = NULL;
    *out = NULL;
    struct hub_ticketsync *s = calloc(1, sizeof *s);
    if (s == NULL || (s->db_url = strdup(db_url)) == NULL) {
        free(s);
        return HUB_ENOMEM;
    }
    uint32_t refresh = rotation_s / 16;
    refresh = refresh < 1 ? 1 : refresh > 60 ? 60 : refresh;
    uint32_t lead = 5 * refresh < rotation_s / 2 ? 5 * refresh : rotation_s / 2;
    s->loop = loop;
    s->rotation = rotation_s;
    s->set = hub_tickets_new(lifetime_s, rotation_s, lead);
    int rc = s->set == NULL ? HUB_ENOMEM : load_wrap(s, c, pass);
    if (rc == 0) {
        s->max_age = hub_tickets_max_age(s->set);
        rc = maintain(s, c);
        if (rc != 0)
            hub_error("session-ticket keys: cannot load them: %s", hub_strerror(rc));
    }
    if (rc != 0) {
        hub_tickets_free(s->set);
        release(s);
        return rc;
    }
    hub_info("session-ticket keys: %zu loaded (rotated every %u s, tickets valid %u s)",
             hub_tickets_count(s->set), rotation_s, lifetime_s);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_open = 1;
    uv_timer_start(&s->timer, timer_cb, refresh * 1000ull, refresh * 1000ull);
    *tickets = s->set;
    *out = s;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    struct hub_ticketsync *s = h->data;
    s->timer_open = 0;
    release(s);
}

void hub_ticketsync_stop(struct hub_ticketsync *s)
{
    if (s == NULL || s->stopping)
        return;
    s->stopping = 1;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

int hub_ticketsync_reseal(PGconn *c, const char *old_pass, const char *new_pass, size_t *count)
{
    hub_buf_t sealed = HUB_BUF_INIT, plain = HUB_BUF_INIT, blob = HUB_BUF_INIT;
    int rc = hub_db_tickets_get_wrap(c, 1, &sealed);
    if (rc == HUB_ENOTFOUND)
        return 0;
    if (rc == 0)
        rc = hub_unseal(old_pass, WRAP_LABEL, sealed.data, sealed.len, &plain);
    if (rc == HUB_EBADPASS)
        hub_error("the current master passphrase does not open the session-ticket wrapping key");
    if (rc == 0)
        rc = hub_seal(new_pass, HUB_SEAL_ITERATIONS, WRAP_LABEL, plain.data, plain.len, &blob);
    if (rc == 0)
        rc = hub_db_tickets_put_wrap(c, blob.data, blob.len, 1);
    if (rc == 0)
        (*count)++;
    hub_buf_free(&plain);
    hub_buf_free(&blob);
    hub_buf_free(&sealed);
    return rc;
}
