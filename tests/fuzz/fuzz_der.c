/* libFuzzer target for the DER writers (ca/der.c through ca/cert.c, ca/crl.c, ca/pkcs7.c),
 * round-tripped through mbedTLS's parsers. The input describes a certificate (kind, names,
 * dates, key and issuer out of three pre-generated keys: P-256, P-384, RSA-2048, alt names,
 * CRL URL), a CRL (number, dates, entries with serials, dates and reasons, valid or not) and
 * a PKCS#7 bundle (a multiset of certificates). What the writers accept must parse back
 * with mbedtls_x509_crt_parse_der / mbedtls_x509_crl_parse_der (the bundle is walked with
 * mbedtls_asn1_get_tag) with every field intact and a signature the issuer key verifies;
 * what they refuse must be a description that is invalid (empty CN, empty validity, a year
 * outside 0..9999, a bad serial or reason). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crl.h>

#include "ca/crl.h"
#include "ca/der.h"
#include "ca/pkcs7.h"
#include "tests/fuzz/fuzz_ca.h"
#include "util/error.h"
#include "util/log.h"

#define NKEYS 3
#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define SET (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET)
#define CTX0 (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0)
#define OID_SIGNED_DATA "\x2A\x86\x48\x86\xF7\x0D\x01\x07\x02" /* 1.2.840.113549.1.7.2 */

static struct fuzz_ca cas[NKEYS];

/* Reads the input front to back; past the end every read is 0. */
struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

/* A NUL-terminated string of up to max bytes (cut at a NUL in the input). */
static void str(struct reader *r, char *out, size_t max)
{
    size_t n = u8(r) % (max + 1), i;
    for (i = 0; i < n; i++) {
        out[i] = (char)u8(r);
        if (out[i] == 0)
            break;
    }
    out[i] = 0;
}

/* A time within about +-8,700 years of 1970, mostly near now. */
static time_t when(struct reader *r)
{
    uint8_t sel = u8(r);
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | u8(r);
    if (sel & 1)
        return (time_t)v - ((time_t)1 << 38);
    return (time_t)1700000000 + (time_t)(v % (200ull * 366 * 86400)) - 100ll * 366 * 86400;
}

static int year_ok(time_t t)
{
    struct tm tm;
    return gmtime_r(&t, &tm) != NULL && tm.tm_year + 1900 >= 0 && tm.tm_year + 1900 <= 9999;
}

static void same_time(const mbedtls_x509_time *x, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    if (x->year != tm.tm_year + 1900 || x->mon != tm.tm_mon + 1 || x->day != tm.tm_mday ||
        x->hour != tm.tm_hour || x->min != tm.tm_min || x->sec != tm.tm_sec)
        abort();
}

/* The signature over tbs verifies with key. */
static void check_sig(const mbedtls_x509_buf *tbs, mbedtls_md_type_t md_type,
                      mbedtls_pk_type_t pk_type, const void *opts, const mbedtls_x509_buf *sig,
                      mbedtls_pk_context *key)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(md_type);
    if (md == NULL || mbedtls_md(md, tbs->p, tbs->len, hash) != 0 ||
        mbedtls_pk_verify_ext(pk_type, opts, key, md_type, hash, mbedtls_md_get_size(md), sig->p,
                              sig->len) != 0)
        abort();
}

/* The value of the attribute oid in a parsed Name, or NULL. */
static const mbedtls_x509_buf *name_attr(const mbedtls_x509_name *n, const char *oid,
                                         size_t oid_len)
{
    for (; n != NULL; n = n->next)
        if (n->oid.len == oid_len && memcmp(n->oid.p, oid, oid_len) == 0)
            return &n->val;
    return NULL;
}

static void same_str(const mbedtls_x509_buf *b, const char *s)
{
    if (s == NULL ? b != NULL : (b == NULL || b->len != strlen(s) || memcmp(b->p, s, b->len)))
        abort();
}

/* The signature AlgorithmIdentifier an ECDSA key writes has no parameters (RFC 5758). */
static void check_sigalg_strict(const uint8_t *der, size_t len, mbedtls_pk_context *key)
{
    static const uint8_t p256[] = {0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48,
                                   0xCE, 0x3D, 0x04, 0x03, 0x02, 0x03};
    static const uint8_t p384[] = {0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48,
                                   0xCE, 0x3D, 0x04, 0x03, 0x03, 0x03};
    if (mbedtls_pk_get_type(key) != MBEDTLS_PK_ECKEY)
        return;
    const uint8_t *want = mbedtls_pk_get_bitlen(key) == 256 ? p256 : p384;
    /* Outer SEQUENCE { tbs, alg, BIT STRING }: alg is followed by the BIT STRING tag. */
    unsigned char *p = (unsigned char *)der, *end = p + len;
    size_t l;
    if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0 || mbedtls_asn1_get_tag(&p, end, &l, SEQ))
        abort();
    p += l;
    if ((size_t)(end - p) < sizeof p256 || memcmp(p, want, sizeof p256) != 0)
        abort();
}

static void issue(struct reader *r, hub_buf_t *out)
{
    char cn[80], o[80], alt[4][40], url[80];
    const char *alts[5] = {NULL};
    uint8_t serial[HUB_SERIAL_LEN];
    uint8_t sel = u8(r);
    enum hub_cert_kind kind = (enum hub_cert_kind)(sel & 3);
    struct fuzz_ca *subject = &cas[(sel >> 2) % NKEYS], *issuer = &cas[(sel >> 4) % NKEYS];
    mbedtls_pk_context *subject_key = &subject->key;
    int with_o = (sel >> 6) & 1, with_url = sel >> 7;
    str(r, cn, 64);
    str(r, o, 64);
    struct hub_cert_request req = {
        .kind = kind,
        .cn = cn,
        .o = with_o ? o : NULL,
        .subject_key = subject_key,
        .issuer = kind == HUB_CERT_ROOT_CA ? NULL : &issuer->crt,
        .issuer_key = kind == HUB_CERT_ROOT_CA ? subject_key : &issuer->key,
        .crl_url = NULL,
    };
    req.not_before = when(r);
    req.not_after = when(r);
    size_t nalt = u8(r) % 5;
    int alts_ok = 1;
    for (size_t i = 0; i < nalt; i++) {
        str(r, alt[i], 32);
        alts[i] = alt[i];
        if (alt[i][0] == 0)
            alts_ok = 0;
        for (const char *s = alt[i]; *s; s++)
            if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
                alts_ok = 0;
    }
    /* Only as far as the first empty one: the list is NULL-terminated. */
    req.alt_names = nalt > 0 ? alts : NULL;
    str(r, url, 64);
    if (with_url && url[0] != 0)
        req.crl_url = url;

    int valid = cn[0] != 0 && req.not_after > req.not_before && year_ok(req.not_before) &&
                year_ok(req.not_after) && alts_ok;
    size_t before = out->len;
    int rc = hub_cert_issue(&req, serial, out);
    if ((rc == 0) != valid)
        abort();
    if (rc != 0)
        return;

    const uint8_t *der = out->data + before;
    size_t len = out->len - before;
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_der(&crt, der, len) != 0 || crt.raw.len != len)
        abort();
    mbedtls_pk_context *signer = req.issuer_key;
    check_sig(&crt.tbs, crt.sig_md, crt.sig_pk, crt.sig_opts, &crt.sig, signer);
    check_sigalg_strict(der, len, signer);
    if (crt.version != 3 || crt.serial.len != HUB_SERIAL_LEN ||
        memcmp(crt.serial.p, serial, HUB_SERIAL_LEN) != 0 || (serial[0] & 0x80))
        abort();
    same_str(name_attr(&crt.subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN)), cn);
    same_str(name_attr(&crt.subject, MBEDTLS_OID_AT_ORGANIZATION,
                       MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION)),
             req.o);
    const mbedtls_x509_buf *want_issuer = req.issuer ? &req.issuer->subject_raw : &crt.subject_raw;
    if (crt.issuer_raw.len != want_issuer->len ||
        memcmp(crt.issuer_raw.p, want_issuer->p, want_issuer->len) != 0)
        abort();
    same_time(&crt.valid_from, req.not_before);
    same_time(&crt.valid_to, req.not_after);
    int ca = kind == HUB_CERT_ROOT_CA || kind == HUB_CERT_ISSUING_CA;
    if (crt.ca_istrue != ca || (kind == HUB_CERT_ISSUING_CA && crt.max_pathlen != 1))
        abort();
    if (!(crt.ext_types & MBEDTLS_X509_EXT_KEY_USAGE) ||
        !(crt.ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS))
        abort();
    if ((kind == HUB_CERT_SERVER || kind == HUB_CERT_CLIENT) !=
        !!(crt.ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE))
        abort();
    /* subjectAltName: servers only, one GeneralName per name up to the list's end. */
    size_t want_alts = 0;
    while (kind == HUB_CERT_SERVER && want_alts < nalt && alts[want_alts] != NULL)
        want_alts++;
    const mbedtls_x509_sequence *san = &crt.subject_alt_names;
    if (want_alts == 0 && (crt.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME))
        abort();
    for (size_t i = 0; i < want_alts; i++, san = san->next) {
        unsigned char ip[16];
        if (san == NULL || san->buf.p == NULL)
            abort();
        if (inet_pton(AF_INET, alts[i], ip) == 1) {
            if (san->buf.len != 4 || memcmp(san->buf.p, ip, 4) != 0)
                abort();
        } else if (inet_pton(AF_INET6, alts[i], ip) == 1) {
            if (san->buf.len != 16 || memcmp(san->buf.p, ip, 16) != 0)
                abort();
        } else if (san->buf.len != strlen(alts[i]) || memcmp(san->buf.p, alts[i], san->buf.len)) {
            abort();
        }
    }
    if (want_alts > 0 && san != NULL)
        abort();
    unsigned char a[2048], b[2048];
    int la = mbedtls_pk_write_pubkey_der(subject_key, a, sizeof a);
    int lb = mbedtls_pk_write_pubkey_der(&crt.pk, b, sizeof b);
    if (la <= 0 || la != lb || memcmp(a + sizeof a - la, b + sizeof b - lb, (size_t)la) != 0)
        abort();
    mbedtls_x509_crt_free(&crt);
}

/* An INTEGER's content as the writer means it: minimal, and 0 for no bytes at all. */
static void same_uint(const mbedtls_x509_buf *got, const uint8_t *be, size_t n)
{
    const uint8_t *g = got->p;
    size_t gl = got->len;
    while (n > 1 && be[0] == 0)
        be++, n--;
    if (gl > 1 && g[0] == 0 && (g[1] & 0x80)) /* the sign byte of a positive number */
        g++, gl--;
    if (gl != n || memcmp(g, be, n) != 0 || (got->p[0] & 0x80))
        abort();
}

/* Reads the extensions of a parsed CRL's TBSCertList: the cRLNumber must be number and the
 * AKI the issuer's key identifier. */
static void check_crl_exts(const mbedtls_x509_crl *crl, uint64_t number,
                           const mbedtls_x509_crt *issuer)
{
    unsigned char *p = crl->tbs.p, *end = p + crl->tbs.len;
    size_t l;
    int seen_number = 0, seen_aki = 0;
    if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0)
        abort();
    /* Skip version .. revokedCertificates: every field before the [0] extensions. */
    while (p < end && *p != CTX0) {
        p++;
        if (mbedtls_asn1_get_len(&p, end, &l) != 0)
            abort();
        p += l;
    }
    if (mbedtls_asn1_get_tag(&p, end, &l, CTX0) != 0 || mbedtls_asn1_get_tag(&p, end, &l, SEQ))
        abort();
    end = p + l;
    while (p < end) {
        unsigned char *ext_end;
        mbedtls_x509_buf oid;
        if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0)
            abort();
        ext_end = p + l;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0)
            abort();
        oid.p = p;
        p += oid.len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &l, MBEDTLS_ASN1_OCTET_STRING) != 0)
            abort();
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_CRL_NUMBER, &oid) == 0) {
            mbedtls_x509_buf v;
            uint8_t be[8];
            if (mbedtls_asn1_get_tag(&p, ext_end, &v.len, MBEDTLS_ASN1_INTEGER) != 0)
                abort();
            v.p = p;
            for (int i = 0; i < 8; i++)
                be[i] = (uint8_t)(number >> (56 - 8 * i));
            same_uint(&v, be, 8);
            seen_number = 1;
        } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER, &oid) == 0) {
            uint8_t id[HUB_KEY_ID_MAX];
            size_t idlen;
            if (mbedtls_asn1_get_tag(&p, ext_end, &l, SEQ) != 0 ||
                mbedtls_asn1_get_tag(&p, ext_end, &l, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0) != 0 ||
                hub_der_issuer_key_id(issuer, id, &idlen) != 0 || l != idlen ||
                memcmp(p, id, l) != 0)
                abort();
            seen_aki = 1;
        } else {
            abort();
        }
        p = ext_end;
    }
    if (!seen_number || !seen_aki)
        abort();
}

static void crl(struct reader *r)
{
    static const int reasons[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -1, 0x7fffffff};
    struct hub_crl_entry e[8];
    struct fuzz_ca *ca = &cas[u8(r) % NKEYS];
    uint64_t number = 0;
    for (int i = 0; i < 8; i++)
        number = number << 8 | u8(r);
    time_t this_update = when(r), next_update = when(r);
    size_t n = u8(r) % 9;
    int valid = next_update > this_update && year_ok(this_update) && year_ok(next_update);
    for (size_t i = 0; i < n; i++) {
        e[i].serial_len = u8(r) % (sizeof e[i].serial + 2);
        for (size_t k = 0; k < sizeof e[i].serial; k++)
            e[i].serial[k] = k < e[i].serial_len ? u8(r) : 0;
        e[i].revoked_at = when(r);
        e[i].reason = reasons[u8(r) % (sizeof reasons / sizeof reasons[0])];
        if (e[i].serial_len == 0 || e[i].serial_len > sizeof e[i].serial ||
            hub_crl_reason_name(e[i].reason) == NULL || !year_ok(e[i].revoked_at))
            valid = 0;
    }
    hub_buf_t der = HUB_BUF_INIT;
    int rc = hub_crl_build(&ca->crt, &ca->key, number, this_update, next_update, e, n, &der);
    if ((rc == 0) != valid)
        abort();
    if (rc != 0) {
        hub_buf_free(&der);
        return;
    }
    mbedtls_x509_crl c;
    mbedtls_x509_crl_init(&c);
    if (mbedtls_x509_crl_parse_der(&c, der.data, der.len) != 0 || c.raw.len != der.len)
        abort();
    check_sig(&c.tbs, c.sig_md, c.sig_pk, c.sig_opts, &c.sig, &ca->key);
    check_sigalg_strict(der.data, der.len, &ca->key);
    if (c.version != 2 || c.issuer_raw.len != ca->crt.subject_raw.len ||
        memcmp(c.issuer_raw.p, ca->crt.subject_raw.p, c.issuer_raw.len) != 0)
        abort();
    same_time(&c.this_update, this_update);
    same_time(&c.next_update, next_update);
    check_crl_exts(&c, number, &ca->crt);
    const mbedtls_x509_crl_entry *ent = &c.entry;
    for (size_t i = 0; i < n; i++, ent = ent->next) {
        /* The entry's content ends with its reasonCode extension when it has one. */
        static const uint8_t tail[] = {0x30, 0x0C, 0x30, 0x0A, 0x06, 0x03, 0x55,
                                       0x1D, 0x15, 0x04, 0x03, 0x0A, 0x01};
        if (ent == NULL || ent->serial.p == NULL)
            abort();
        same_uint(&ent->serial, e[i].serial, e[i].serial_len);
        same_time(&ent->revocation_date, e[i].revoked_at);
        const uint8_t *end = ent->raw.p + ent->raw.len;
        int has =
            ent->raw.len > sizeof tail && memcmp(end - sizeof tail - 1, tail, sizeof tail) == 0;
        if (has != (e[i].reason != HUB_REASON_UNSPECIFIED) || (has && end[-1] != e[i].reason))
            abort();
    }
    if (n == 0 ? c.entry.raw.p != NULL : ent != NULL)
        abort();
    mbedtls_x509_crl_free(&c);
    hub_buf_free(&der);
}

static int cmp_der(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c != 0 ? c : (al > bl) - (al < bl);
}

/* A bundle of up to 6 certificates picked among the CA certificates and issued (which
 * holds the DER certificates written by issue()). */
static void bundle(struct reader *r, const hub_buf_t *issued, size_t nissued, const size_t *offs)
{
    const uint8_t *ders[6];
    size_t lens[6], n = u8(r) % 7;
    for (size_t i = 0; i < n; i++) {
        size_t k = u8(r) % (NKEYS + nissued);
        if (k < NKEYS) {
            ders[i] = cas[k].der.data;
            lens[i] = cas[k].der.len;
        } else {
            k -= NKEYS;
            ders[i] = issued->data + offs[k];
            lens[i] = offs[k + 1] - offs[k];
        }
    }
    hub_buf_t out = HUB_BUF_INIT;
    if (hub_pkcs7_certs_only(ders, lens, n, &out) != 0)
        abort();
    /* ContentInfo { signedData, [0] SignedData { 1, {}, {data}, [0] certs, {} } } */
    unsigned char *p = out.data, *end = p + out.len;
    size_t l;
    if (mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0 || p + l != end ||
        mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_OID) != 0 ||
        l != MBEDTLS_OID_SIZE(OID_SIGNED_DATA) || memcmp(p, OID_SIGNED_DATA, l) != 0)
        abort();
    p += l;
    int version;
    if (mbedtls_asn1_get_tag(&p, end, &l, CTX0) != 0 || p + l != end ||
        mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0 || p + l != end ||
        mbedtls_asn1_get_int(&p, end, &version) != 0 || version != 1 ||
        mbedtls_asn1_get_tag(&p, end, &l, SET) != 0 || l != 0 ||
        mbedtls_asn1_get_tag(&p, end, &l, SEQ) != 0)
        abort();
    p += l;
    const uint8_t *prev = NULL;
    size_t prev_len = 0, seen = 0;
    if (n > 0) {
        unsigned char *certs_end;
        if (mbedtls_asn1_get_tag(&p, end, &l, CTX0) != 0)
            abort();
        certs_end = p + l;
        while (p < certs_end) {
            mbedtls_x509_crt crt;
            unsigned char *start = p;
            if (mbedtls_asn1_get_tag(&p, certs_end, &l, SEQ) != 0)
                abort();
            p += l;
            mbedtls_x509_crt_init(&crt);
            if (mbedtls_x509_crt_parse_der(&crt, start, (size_t)(p - start)) != 0)
                abort();
            mbedtls_x509_crt_free(&crt);
            /* DER SET OF: sorted by encoding; each one of the inputs. */
            if (prev != NULL && cmp_der(prev, prev_len, start, (size_t)(p - start)) > 0)
                abort();
            size_t same_in = 0;
            for (size_t i = 0; i < n; i++)
                same_in += cmp_der(ders[i], lens[i], start, (size_t)(p - start)) == 0;
            if (same_in == 0)
                abort();
            prev = start;
            prev_len = (size_t)(p - start);
            seen++;
        }
    }
    if (seen != n || mbedtls_asn1_get_tag(&p, end, &l, SET) != 0 || l != 0 || p != end)
        abort();
    hub_buf_free(&out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hub_log_setup(HUB_LOG_DEBUG, HUB_LOG_TEXT);
    fuzz_ca_make(&cas[0], HUB_KEY_EC_P256, "fuzz CA P-256");
    fuzz_ca_make(&cas[1], HUB_KEY_EC_P384, "fuzz CA P-384");
    fuzz_ca_make(&cas[2], HUB_KEY_RSA_2048, "fuzz CA RSA-2048");
    return 0;
}

/* Input: a sequence of commands, first byte % 3: certificate, CRL, bundle. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = {data, size};
    hub_buf_t issued = HUB_BUF_INIT;
    size_t offs[5] = {0}, nissued = 0;
    for (int rounds = 0; r.n > 0 && rounds < 4; rounds++) {
        switch (u8(&r) % 3) {
        case 0: {
            size_t before = issued.len;
            issue(&r, &issued);
            if (issued.len > before)
                offs[++nissued] = issued.len;
            break;
        }
        case 1: crl(&r); break;
        default: bundle(&r, &issued, nissued, offs); break;
        }
    }
    hub_buf_free(&issued);
    return 0;
}
