/* Delegated OCSP signers, one per CA the hub holds a key for. Each CA entry has a mutex
 * that guards its current signer pointer and the signers' reference counts: a response
 * takes a reference under it, signs without it (API threads sign in parallel: the key's
 * comb table is filled by a warm-up signature before the signer is published, after which
 * mbedTLS only reads the key), and drops the reference; a replaced signer is freed by
 * whoever drops its last reference. The signer's key never leaves
 * memory: a restart simply issues a new certificate (a few per day per node), which is
 * cheaper and safer than sealing keys that answer for only 48 hours. */
#include "ca/ocsp_signers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/oid.h>

#include "ca/cert.h"
#include "ca/der.h"
#include "ca/key.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define CLOCK_SKEW 300

struct signer {
    mbedtls_pk_context key;
    uint8_t key_hash[20]; /* ResponderID byKey */
    hub_buf_t cert;
    char serial[HUB_SERIAL_HEX];
    time_t not_after, renew_at;
    unsigned refs; /* the entry's (while current) + responses signing with it */
};

struct ocsp_ca {
    int ca_id;
    int is_root;
    const mbedtls_x509_crt *cert; /* borrowed from the authority */
    struct hub_signer ca_signer;  /* the CA's own key (borrowed) */
    uint8_t name_sha1[20], key_sha1[20], name_sha256[32], key_sha256[32];
    pthread_mutex_t lock; /* guards cur */
    struct signer *cur;
};

struct hub_ocsp_signers {
    struct hub_authority *a;
    size_t n;
    struct ocsp_ca cas[];
};

static void signer_free(struct signer *g)
{
    if (g == NULL)
        return;
    mbedtls_pk_free(&g->key);
    hub_buf_free(&g->cert);
    free(g);
}

/* SHA-1 and SHA-256 of the CA's subject DER and of its subjectPublicKey bits (§4.1.1). */
static int hash_ca(struct ocsp_ca *e)
{
    unsigned char buf[4096];
    unsigned char *p = buf + sizeof buf;
    int len = mbedtls_pk_write_pubkey(&p, buf, (mbedtls_pk_context *)&e->cert->pk);
    const mbedtls_md_info_t *sha1 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    const mbedtls_x509_buf *name = &e->cert->subject_raw;
    if (len < 0 || mbedtls_md(sha1, p, (size_t)len, e->key_sha1) != 0 ||
        mbedtls_md(sha256, p, (size_t)len, e->key_sha256) != 0 ||
        mbedtls_md(sha1, name->p, name->len, e->name_sha1) != 0 ||
        mbedtls_md(sha256, name->p, name->len, e->name_sha256) != 0) {
        hub_error("OCSP: cannot hash the name and key of CA %d", e->ca_id);
        return HUB_ECRYPTO;
    }
    return 0;
}

int hub_ocsp_signers_new(struct hub_authority *a, struct hub_ocsp_signers **out)
{
    *out = NULL;
    size_t max = 2 + a->nretired;
    struct hub_ocsp_signers *s = calloc(1, sizeof *s + max * sizeof s->cas[0]);
    if (s == NULL)
        return HUB_ENOMEM;
    s->a = a;
    /* An external root's key is not in the hub: nobody here can sign for it. */
    if (!hub_authority_root_external(a))
        s->cas[s->n++] = (struct ocsp_ca){.ca_id = a->id[HUB_CA_ROOT],
                                          .is_root = 1,
                                          .cert = &a->cert[HUB_CA_ROOT],
                                          .ca_signer = hub_authority_signer(a, HUB_CA_ROOT)};
    s->cas[s->n++] = (struct ocsp_ca){.ca_id = a->id[HUB_CA_ISSUING],
                                      .cert = &a->cert[HUB_CA_ISSUING],
                                      .ca_signer = hub_authority_signer(a, HUB_CA_ISSUING)};
    for (size_t i = 0; i < a->nretired; i++)
        s->cas[s->n++] = (struct ocsp_ca){.ca_id = a->retired[i].id,
                                          .cert = &a->retired[i].cert,
                                          .ca_signer = {&a->retired[i].key, a->retired[i].token}};
    int rc = 0;
    for (size_t i = 0; i < s->n; i++) {
        pthread_mutex_init(&s->cas[i].lock, NULL);
        if (rc == 0)
            rc = hash_ca(&s->cas[i]);
    }
    if (rc != 0) {
        hub_ocsp_signers_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void hub_ocsp_signers_free(struct hub_ocsp_signers *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        signer_free(s->cas[i].cur);
        pthread_mutex_destroy(&s->cas[i].lock);
    }
    free(s);
}

/* Issues a new signer for CA e: a fresh P-256 key, a certificate from the CA. */
static int issue(struct hub_ocsp_signers *s, struct ocsp_ca *e, hub_ocsp_record_cb record,
                 void *ctx, struct signer **out)
{
    struct signer *g = calloc(1, sizeof *g);
    if (g == NULL)
        return HUB_ENOMEM;
    mbedtls_pk_init(&g->key);
    char ca_cn[128], cn[160];
    hub_x509_name_attr(&e->cert->subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN),
                       ca_cn, sizeof ca_cn);
    snprintf(cn, sizeof cn, "%s OCSP Responder", ca_cn[0] ? ca_cn : "iothub CA");
    time_t now = time(NULL), ca_end = hub_x509_time(&e->cert->valid_to);
    struct hub_cert_request req = {
        .kind = HUB_CERT_OCSP_SIGNER,
        .cn = cn,
        .o = "iothub",
        .subject_key = &g->key,
        .issuer = e->cert,
        .issuer_key = e->ca_signer.pk,
        .issuer_signer = &e->ca_signer,
        .not_before = now - CLOCK_SKEW,
        .not_after = now + HUB_OCSP_SIGNER_HOURS * 3600,
    };
    if (req.not_after > ca_end)
        req.not_after = ca_end;
    uint8_t raw[HUB_SERIAL_LEN];
    int rc = hub_key_generate(HUB_KEY_EC_P256, &g->key);
    if (rc == 0)
        rc = hub_der_key_id(&g->key, g->key_hash);
    if (rc == 0 && req.not_after <= now) {
        hub_error("OCSP: CA %d has expired: no signer for it", e->ca_id);
        rc = HUB_EINVAL;
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->a->sign_lock);
        rc = hub_cert_issue(&req, raw, &g->cert);
        pthread_mutex_unlock(&s->a->sign_lock);
    }
    if (rc != 0) {
        signer_free(g);
        return rc;
    }
    hub_hex_upper(raw, sizeof raw, g->serial);
    g->not_after = req.not_after;
    g->renew_at = now + (req.not_after - now) / 2;
    /* One warm-up signature: mbedTLS fills the key's comb table on first use. */
    uint8_t hash[32] = {0}, sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len;
    struct hub_signer mem = HUB_SIGNER_MEM(&g->key);
    if ((rc = hub_signer_sign(&mem, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig, &sig_len,
                              "OCSP signer")) != 0) {
        signer_free(g);
        return rc;
    }
    if (record != NULL && record(ctx, g->serial, e->ca_id, g->cert.data, g->cert.len,
                                 req.not_before, req.not_after) != 0)
        hub_warn("OCSP: signer %s of CA %d not recorded in ocsp_signers; it is used anyway",
                 g->serial, e->ca_id);
    hub_info("OCSP: issued responder certificate %s (%s) valid until %lld", g->serial, cn,
             (long long)g->not_after);
    g->refs = 1;
    *out = g;
    return 0;
}

int hub_ocsp_signers_refresh(struct hub_ocsp_signers *s, hub_ocsp_record_cb record, void *ctx,
                             int *made)
{
    int first = 0;
    *made = 0;
    time_t now = time(NULL);
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        struct ocsp_ca *e = &s->cas[i];
        pthread_mutex_lock(&e->lock);
        int due = e->cur == NULL || now >= e->cur->renew_at;
        pthread_mutex_unlock(&e->lock);
        if (!due)
            continue;
        struct signer *g = NULL;
        int rc = issue(s, e, record, ctx, &g);
        if (rc != 0) {
            hub_warn("OCSP: no new responder certificate for CA %d (%s)", e->ca_id,
                     hub_strerror(rc));
            if (first == 0)
                first = rc;
            continue;
        }
        pthread_mutex_lock(&e->lock);
        struct signer *old = e->cur;
        e->cur = g;
        int last = old != NULL && --old->refs == 0;
        pthread_mutex_unlock(&e->lock);
        if (last)
            signer_free(old);
        (*made)++;
    }
    return first;
}

int hub_ocsp_signers_find(const struct hub_ocsp_signers *s, const struct hub_ocsp_certid *id,
                          int *ca_id, int *is_root)
{
    size_t want = id->md == MBEDTLS_MD_SHA1 ? 20 : id->md == MBEDTLS_MD_SHA256 ? 32 : 0;
    if (s == NULL || want == 0 || id->name_hash_len != want || id->key_hash_len != want)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        const struct ocsp_ca *e = &s->cas[i];
        const uint8_t *nh = want == 20 ? e->name_sha1 : e->name_sha256;
        const uint8_t *kh = want == 20 ? e->key_sha1 : e->key_sha256;
        if (hub_ct_equal(nh, id->name_hash, want) & hub_ct_equal(kh, id->key_hash, want)) {
            *ca_id = e->ca_id;
            *is_root = e->is_root;
            return (int)i;
        }
    }
    return -1;
}

int hub_ocsp_signers_sign(struct hub_ocsp_signers *s, int ca, struct hub_ocsp_basic *b,
                          hub_buf_t *out)
{
    if (s == NULL || ca < 0 || (size_t)ca >= s->n)
        return HUB_ENOTFOUND;
    struct ocsp_ca *e = &s->cas[ca];
    pthread_mutex_lock(&e->lock);
    struct signer *g = e->cur;
    if (g != NULL && time(NULL) < g->not_after)
        g->refs++;
    else
        g = NULL;
    pthread_mutex_unlock(&e->lock);
    if (g == NULL)
        return HUB_ENOTFOUND;
    b->key = &g->key;
    b->key_hash = g->key_hash;
    b->cert = g->cert.data;
    b->cert_len = g->cert.len;
    int rc = hub_ocsp_response_build(b, out);
    b->key = NULL;
    b->key_hash = NULL;
    b->cert = NULL;
    pthread_mutex_lock(&e->lock);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&e->lock);
    if (last)
        signer_free(g);
    return rc;
}

void hub_ocsp_signers_current(struct hub_ocsp_signers *s, int ca, char *serial, size_t cap,
                              time_t *not_after)
{
    serial[0] = 0;
    *not_after = 0;
    if (s == NULL || ca < 0 || (size_t)ca >= s->n)
        return;
    pthread_mutex_lock(&s->cas[ca].lock);
    if (s->cas[ca].cur != NULL) {
        snprintf(serial, cap, "%s", s->cas[ca].cur->serial);
        *not_after = s->cas[ca].cur->not_after;
    }
    pthread_mutex_unlock(&s->cas[ca].lock);
}
