/* Device CAs trusted for client certificates (see trust.h). Design:
 *   - the set is an immutable snapshot (one parsed certificate and one CRL serial set per CA)
 *     built by hub_trust_replace and swapped under a write lock; readers (verify callbacks on
 *     worker loops) hold the read lock for one verification (~1 ms of ECDSA);
 *   - a snapshot's EC keys are used once before it is published: mbedTLS 2.28 fills an EC
 *     group's comb table on first use without a lock (see net/tls_ctx.c);
 *   - refusals go to a fixed ring under a mutex: a flood of refused handshakes costs the
 *     daemon at most HUB_TRUST_REFUSALS entries, the rest is only counted. */
#include "net/trust.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crl.h>

#include "net/revset.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

struct entry {
    char id[HUB_TRUST_ID_LEN + 1];
    int enabled;
    mbedtls_x509_crt crt;
    hub_revset_t *crl; /* NULL: no CRL */
};

struct snapshot {
    struct entry *v;
    size_t n, enabled;
};

struct hub_trust {
    pthread_rwlock_t lock;
    struct snapshot *cur;
    pthread_mutex_t ring_lock;
    struct hub_trust_refusal ring[HUB_TRUST_REFUSALS];
    size_t head, count;
    unsigned long long dropped;
};

static void snapshot_free(struct snapshot *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        mbedtls_x509_crt_free(&s->v[i].crt);
        hub_revset_free(s->v[i].crl);
    }
    free(s->v);
    free(s);
}

hub_trust_t *hub_trust_new(void)
{
    hub_trust_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    pthread_rwlock_init(&t->lock, NULL);
    pthread_mutex_init(&t->ring_lock, NULL);
    return t;
}

void hub_trust_free(hub_trust_t *t)
{
    if (t == NULL)
        return;
    snapshot_free(t->cur);
    pthread_rwlock_destroy(&t->lock);
    pthread_mutex_destroy(&t->ring_lock);
    free(t);
}

/* Whether the signature over tbs (sig_md, sig_pk, sig_opts, sig) verifies with pk. */
static int sig_ok(const mbedtls_x509_buf *tbs, mbedtls_md_type_t md_type, mbedtls_pk_type_t pk_type,
                  const void *opts, const mbedtls_x509_buf *sig, const mbedtls_pk_context *pk)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(md_type);
    if (md == NULL || mbedtls_md(md, tbs->p, tbs->len, hash) != 0)
        return 0;
    return mbedtls_pk_verify_ext(pk_type, opts, (mbedtls_pk_context *)pk, md_type, hash,
                                 mbedtls_md_get_size(md), sig->p, sig->len) == 0;
}

static int crt_signed_by(const mbedtls_x509_crt *crt, const mbedtls_x509_crt *ca)
{
    return sig_ok(&crt->tbs, crt->sig_md, crt->sig_pk, crt->sig_opts, &crt->sig, &ca->pk);
}

static int same_name(const mbedtls_x509_buf *a, const mbedtls_x509_buf *b)
{
    return a->len == b->len && a->len > 0 && memcmp(a->p, b->p, a->len) == 0;
}

/* mbedTLS fills the comb table of an EC group on first use: do it before readers see it. */
static void warm_up(mbedtls_pk_context *pk)
{
    if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECDSA))
        return;
    unsigned char hash[32] = {1};
    static const unsigned char bogus[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01};
    (void)mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, sizeof hash, bogus, sizeof bogus);
}

/* Loads the CA's CRL into e->crl; a CRL that is not the CA's is ignored (logged). */
static int load_crl(struct entry *e, const uint8_t *der, size_t len)
{
    mbedtls_x509_crl crl;
    mbedtls_x509_crl_init(&crl);
    int rc = 0, m = mbedtls_x509_crl_parse_der(&crl, der, len);
    if (m != 0) {
        hub_warn("device CA %s: its CRL does not parse (-0x%04x): ignored", e->id, (unsigned)-m);
    } else if (!same_name(&crl.issuer_raw, &e->crt.subject_raw) ||
               !sig_ok(&crl.tbs, crl.sig_md, crl.sig_pk, crl.sig_opts, &crl.sig, &e->crt.pk)) {
        hub_warn("device CA %s: its CRL is not signed by the CA: ignored", e->id);
    } else if ((e->crl = hub_revset_new()) == NULL) {
        rc = HUB_ENOMEM;
    } else {
        for (const mbedtls_x509_crl_entry *x = &crl.entry; x != NULL && rc == 0; x = x->next) {
            if (x->serial.len == 0)
                continue;
            int a = hub_revset_add(e->crl, x->serial.p, x->serial.len);
            rc = a == HUB_ENOMEM ? a : 0; /* a serial over 20 bytes names none of ours */
        }
        if (mbedtls_x509_time_is_past(&crl.next_update))
            hub_warn("device CA %s: its CRL is past its nextUpdate (still enforced)", e->id);
    }
    mbedtls_x509_crl_free(&crl);
    return rc;
}

int hub_trust_replace(hub_trust_t *t, const struct hub_trust_ca *cas, size_t n)
{
    struct snapshot *s = calloc(1, sizeof *s);
    if (s == NULL || (n > 0 && (s->v = calloc(n, sizeof *s->v)) == NULL)) {
        free(s);
        return HUB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &s->v[s->n];
        mbedtls_x509_crt_init(&e->crt);
        int m = mbedtls_x509_crt_parse_der(&e->crt, cas[i].der, cas[i].der_len);
        int usable = m == 0 && e->crt.ca_istrue &&
                     mbedtls_x509_crt_check_key_usage(&e->crt, MBEDTLS_X509_KU_KEY_CERT_SIGN) == 0;
        if (!usable || strlen(cas[i].id) != HUB_TRUST_ID_LEN) {
            hub_warn("device CA %.36s: not a usable CA certificate: not trusted", cas[i].id);
            mbedtls_x509_crt_free(&e->crt);
            continue;
        }
        memcpy(e->id, cas[i].id, HUB_TRUST_ID_LEN + 1);
        e->enabled = cas[i].enabled;
        s->n++;
        s->enabled += e->enabled != 0;
        warm_up(&e->crt.pk);
        if (cas[i].crl_der != NULL && load_crl(e, cas[i].crl_der, cas[i].crl_len) != 0) {
            snapshot_free(s);
            return HUB_ENOMEM;
        }
    }
    pthread_rwlock_wrlock(&t->lock);
    struct snapshot *old = t->cur;
    t->cur = s;
    pthread_rwlock_unlock(&t->lock);
    snapshot_free(old);
    return (int)s->enabled;
}

size_t hub_trust_enabled(hub_trust_t *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->cur ? t->cur->enabled : 0;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

size_t hub_trust_known(hub_trust_t *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->cur ? t->cur->n : 0;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

static int crl_lists(const struct entry *e, const uint8_t *serial, size_t len)
{
    return e->crl != NULL && hub_revset_contains(e->crl, serial, len);
}

int hub_trust_verify(hub_trust_t *t, mbedtls_x509_crt *crt, uint32_t *flags,
                     char id[HUB_TRUST_ID_LEN + 1])
{
    int found = 0;
    pthread_rwlock_rdlock(&t->lock);
    const struct snapshot *s = t->cur;
    for (size_t i = 0; s != NULL && i < s->n && !found; i++) {
        struct entry *e = &s->v[i];
        if (!e->enabled || !same_name(&crt->issuer_raw, &e->crt.subject_raw))
            continue;
        uint32_t vf = 0;
        /* The client's chain after crt (crt->next) serves as intermediates. */
        (void)mbedtls_x509_crt_verify(crt, &e->crt, NULL, NULL, &vf, NULL, NULL);
        if (vf & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
            continue; /* another CA with the same name, or not signed by it */
        if (crl_lists(e, crt->serial.p, crt->serial.len))
            vf |= MBEDTLS_X509_BADCERT_REVOKED;
        *flags = vf;
        memcpy(id, e->id, HUB_TRUST_ID_LEN + 1);
        found = 1;
    }
    pthread_rwlock_unlock(&t->lock);
    return found;
}

enum hub_trust_class hub_trust_classify(hub_trust_t *t, const mbedtls_x509_crt *crt,
                                        const mbedtls_x509_crt *ours, char id[HUB_TRUST_ID_LEN + 1])
{
    int named_ours = 0;
    for (const mbedtls_x509_crt *c = ours; c != NULL && c->raw.p != NULL; c = c->next)
        named_ours |= same_name(&crt->issuer_raw, &c->subject_raw);
    enum hub_trust_class r = named_ours ? HUB_TRUST_OURS : HUB_TRUST_UNKNOWN;
    pthread_rwlock_rdlock(&t->lock);
    const struct snapshot *s = t->cur;
    size_t candidates = 0;
    for (size_t i = 0; s != NULL && i < s->n; i++)
        candidates += same_name(&crt->issuer_raw, &s->v[i].crt.subject_raw);
    for (size_t i = 0; s != NULL && i < s->n && candidates > 0; i++) {
        const struct entry *e = &s->v[i];
        if (!same_name(&crt->issuer_raw, &e->crt.subject_raw))
            continue;
        /* A name is enough when it is the only one (the chain was verified by the handshake
         * that made this session); a clash is settled by the signature. */
        if ((named_ours || candidates > 1) && !crt_signed_by(crt, &e->crt))
            continue;
        memcpy(id, e->id, HUB_TRUST_ID_LEN + 1);
        r = !e->enabled                                    ? HUB_TRUST_DISABLED
            : crl_lists(e, crt->serial.p, crt->serial.len) ? HUB_TRUST_REVOKED
                                                           : HUB_TRUST_DEVICE;
        break;
    }
    pthread_rwlock_unlock(&t->lock);
    return r;
}

int hub_trust_still_trusted(hub_trust_t *t, const char *id, const uint8_t *serial, size_t len)
{
    int ok = 0;
    pthread_rwlock_rdlock(&t->lock);
    const struct snapshot *s = t->cur;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        const struct entry *e = &s->v[i];
        if (strcmp(e->id, id) == 0) {
            ok = e->enabled && !crl_lists(e, serial, len);
            break;
        }
    }
    pthread_rwlock_unlock(&t->lock);
    return ok;
}

/* The device CA (any status) named as crt's issuer, into id ("" when none). */
static void issuer_ca(hub_trust_t *t, const mbedtls_x509_crt *crt, char *id)
{
    id[0] = 0;
    pthread_rwlock_rdlock(&t->lock);
    const struct snapshot *s = t->cur;
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (same_name(&crt->issuer_raw, &s->v[i].crt.subject_raw)) {
            memcpy(id, s->v[i].id, HUB_TRUST_ID_LEN + 1);
            break;
        }
    }
    pthread_rwlock_unlock(&t->lock);
}

/* Copies a DN attribute value (CN) without control characters. */
static void cn_of(const mbedtls_x509_crt *crt, char *out, size_t cap)
{
    out[0] = 0;
    for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
        if (n->oid.p == NULL || n->oid.len != MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN) ||
            memcmp(n->oid.p, MBEDTLS_OID_AT_CN, n->oid.len) != 0)
            continue;
        size_t k = 0;
        for (size_t i = 0; i < n->val.len && k + 1 < cap; i++)
            out[k++] = n->val.p[i] < 0x20 || n->val.p[i] == 0x7f ? '?' : (char)n->val.p[i];
        out[k] = 0;
        return;
    }
}

/* The certificate the verify callback of this thread refused last. */
static _Thread_local struct hub_trust_refusal captured;
static _Thread_local int has_captured;

static void describe(hub_trust_t *t, const mbedtls_x509_crt *crt, struct hub_trust_refusal *r)
{
    cn_of(crt, r->subject, sizeof r->subject);
    if (mbedtls_x509_dn_gets(r->issuer, sizeof r->issuer, &crt->issuer) < 0)
        r->issuer[0] = 0;
    for (size_t i = 0; r->issuer[i] != 0; i++)
        if ((unsigned char)r->issuer[i] < 0x20)
            r->issuer[i] = '?';
    const uint8_t *p = crt->serial.p;
    size_t len = crt->serial.len;
    while (len > 1 && p[0] == 0) {
        p++;
        len--;
    }
    if (len <= 20)
        hub_hex_upper(p, len, r->serial);
    issuer_ca(t, crt, r->device_ca);
}

void hub_trust_capture(hub_trust_t *t, const mbedtls_x509_crt *crt)
{
    memset(&captured, 0, sizeof captured);
    describe(t, crt, &captured);
    has_captured = 1;
}

void hub_trust_note_refusal(hub_trust_t *t, const char *reason, const char *peer,
                            const mbedtls_x509_crt *crt)
{
    struct hub_trust_refusal r;
    memset(&r, 0, sizeof r);
    if (crt == NULL && has_captured)
        r = captured;
    has_captured = 0;
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    snprintf(r.peer, sizeof r.peer, "%s", peer ? peer : "");
    if (crt != NULL && crt->raw.p != NULL)
        describe(t, crt, &r);
    pthread_mutex_lock(&t->ring_lock);
    if (t->count == HUB_TRUST_REFUSALS) {
        t->dropped++;
    } else {
        t->ring[(t->head + t->count) % HUB_TRUST_REFUSALS] = r;
        t->count++;
    }
    pthread_mutex_unlock(&t->ring_lock);
}

size_t hub_trust_take_refusals(hub_trust_t *t, struct hub_trust_refusal *out, size_t max,
                               unsigned long long *dropped)
{
    size_t k = 0;
    pthread_mutex_lock(&t->ring_lock);
    while (k < max && t->count > 0) {
        out[k++] = t->ring[t->head];
        t->head = (t->head + 1) % HUB_TRUST_REFUSALS;
        t->count--;
    }
    *dropped = t->dropped;
    t->dropped = 0;
    pthread_mutex_unlock(&t->ring_lock);
    return k;
}
