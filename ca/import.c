/* Checks of an external root's certificates. mbedtls_x509_crt_verify does the chain work
 * (signatures, CA bits, pathLen, validity); the explicit checks before it exist to name the
 * one thing that is wrong, in the words of the maker's openssl extensions file. */
#include "ca/import.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crl.h>

#include "ca/cert.h"
#include "ca/der.h"
#include "util/error.h"

#define PUBKEY_MAX 2600 /* SubjectPublicKeyInfo of RSA-8192 */

__attribute__((format(printf, 3, 4))) static int refuse(char *err, size_t errlen, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return HUB_EINVAL;
}

static void fmt_time(const mbedtls_x509_time *t, char out[32])
{
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year, t->mon, t->day, t->hour, t->min,
             t->sec);
}

/* Copies data with a NUL after it: mbedTLS parses PEM only from NUL-terminated input. */
static uint8_t *with_nul(const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len + 1);
    if (p != NULL) {
        memcpy(p, data, len);
        p[len] = 0;
    }
    return p;
}

static int is_pem(const uint8_t *data, size_t len)
{
    return len > 11 && memmem(data, len, "-----BEGIN ", 11) != NULL;
}

int hub_import_parse_cert(const uint8_t *data, size_t len, const char *name, mbedtls_x509_crt *crt,
                          char *err, size_t errlen)
{
    uint8_t *copy = with_nul(data, len);
    if (copy == NULL)
        return HUB_ENOMEM;
    int pem = is_pem(data, len);
    int ret = pem ? mbedtls_x509_crt_parse(crt, copy, len + 1)
                  : mbedtls_x509_crt_parse_der(crt, copy, len);
    free(copy);
    if (ret != 0) {
        char msg[128];
        mbedtls_strerror(ret, msg, sizeof msg);
        return refuse(err, errlen, "%s: not a certificate (%s)", name,
                      ret > 0 ? "some PEM blocks do not parse" : msg);
    }
    if (crt->next != NULL && crt->next->raw.len > 0)
        return refuse(err, errlen, "%s holds several certificates: give one per file", name);
    return 0;
}

int hub_import_same_key(mbedtls_pk_context *a, mbedtls_pk_context *b)
{
    unsigned char ba[PUBKEY_MAX], bb[PUBKEY_MAX];
    int la = mbedtls_pk_write_pubkey_der(a, ba, sizeof ba);
    int lb = mbedtls_pk_write_pubkey_der(b, bb, sizeof bb);
    return la > 0 && la == lb && memcmp(ba + sizeof ba - la, bb + sizeof bb - lb, (size_t)la) == 0;
}

/* Validity now, then CA:TRUE and keyCertSign. */
static int check_ca(const mbedtls_x509_crt *c, const char *name, char *err, size_t errlen)
{
    char t[32];
    if (mbedtls_x509_time_is_future(&c->valid_from)) {
        fmt_time(&c->valid_from, t);
        return refuse(err, errlen, "%s is not valid yet (notBefore %s)", name, t);
    }
    if (mbedtls_x509_time_is_past(&c->valid_to)) {
        fmt_time(&c->valid_to, t);
        return refuse(err, errlen, "%s has expired (notAfter %s)", name, t);
    }
    if (!(c->ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS) || !c->ca_istrue)
        return refuse(err, errlen,
                      "%s is not a CA certificate: it needs basicConstraints critical, CA:TRUE",
                      name);
    if (!(c->ext_types & MBEDTLS_X509_EXT_KEY_USAGE) ||
        !(c->key_usage & MBEDTLS_X509_KU_KEY_CERT_SIGN))
        return refuse(err, errlen,
                      "%s lacks keyUsage keyCertSign (keyUsage critical, "
                      "keyCertSign, cRLSign)",
                      name);
    return 0;
}

/* Verifies crt (with the certificates chained after it) up to trust; names the failure. */
static int verify(mbedtls_x509_crt *crt, mbedtls_x509_crt *trust, const char *name, const char *by,
                  char *err, size_t errlen)
{
    uint32_t flags = 0;
    if (mbedtls_x509_crt_verify(crt, trust, NULL, NULL, &flags, NULL, NULL) == 0)
        return 0;
    char info[512];
    mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
    for (char *p = info; *p; p++)
        if (*p == '\n')
            *p = *(p + 1) ? ';' : 0;
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return refuse(err, errlen, "%s is not signed by %s (%s)", name, by, info);
    return refuse(err, errlen, "%s does not verify against %s: %s", name, by, info);
}

int hub_import_check_root(const mbedtls_x509_crt *root, char *err, size_t errlen)
{
    int rc = check_ca(root, "the root certificate", err, errlen);
    if (rc != 0)
        return rc;
    if (root->issuer_raw.len != root->subject_raw.len ||
        memcmp(root->issuer_raw.p, root->subject_raw.p, root->subject_raw.len) != 0)
        return refuse(err, errlen,
                      "the root certificate is not self-signed (its issuer is "
                      "not its subject): give the top of your chain");
    return 0;
}

int hub_import_check_issuing(mbedtls_x509_crt *issuing, mbedtls_x509_crt *root,
                             mbedtls_pk_context *pending_key, char *err, size_t errlen)
{
    if (!hub_import_same_key(&issuing->pk, pending_key))
        return refuse(err, errlen,
                      "the issuing CA certificate does not certify the key of "
                      "issuing-ca.csr (a certificate for another key?)");
    int rc = check_ca(issuing, "the issuing CA certificate", err, errlen);
    if (rc != 0)
        return rc;
    return verify(issuing, root, "the issuing CA certificate", "the root", err, errlen);
}

/* 1 when the subjectAltName of crt names host (dNSName, case-insensitive, or iPAddress). */
static int names(const mbedtls_x509_crt *crt, const char *host)
{
    unsigned char ip[16];
    size_t iplen = inet_pton(AF_INET, host, ip) == 1    ? 4
                   : inet_pton(AF_INET6, host, ip) == 1 ? 16
                                                        : 0;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next) {
        const mbedtls_x509_buf *b = &s->buf;
        if (b->p == NULL)
            continue;
        if (iplen == 0 && b->tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) && b->len == strlen(host) &&
            strncasecmp((const char *)b->p, host, b->len) == 0)
            return 1;
        if (iplen > 0 && b->tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && b->len == iplen &&
            memcmp(b->p, ip, iplen) == 0)
            return 1;
    }
    return 0;
}

int hub_import_check_server(mbedtls_x509_crt *server, mbedtls_x509_crt *issuing,
                            mbedtls_x509_crt *root, mbedtls_pk_context *pending_key,
                            const char *const *hostnames, int *by_root, char *err, size_t errlen)
{
    char t[32];
    if (!hub_import_same_key(&server->pk, pending_key))
        return refuse(err, errlen,
                      "the server certificate does not certify the key of "
                      "server.csr (a certificate for another key?)");
    if (mbedtls_x509_time_is_future(&server->valid_from)) {
        fmt_time(&server->valid_from, t);
        return refuse(err, errlen, "the server certificate is not valid yet (notBefore %s)", t);
    }
    if (mbedtls_x509_time_is_past(&server->valid_to)) {
        fmt_time(&server->valid_to, t);
        return refuse(err, errlen, "the server certificate has expired (notAfter %s)", t);
    }
    if (server->ca_istrue)
        return refuse(err, errlen,
                      "the server certificate is a CA (basicConstraints CA:TRUE): "
                      "sign server.csr as an end entity");
    if (!(server->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) ||
        mbedtls_x509_crt_check_extended_key_usage(server, MBEDTLS_OID_SERVER_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0)
        return refuse(err, errlen, "the server certificate lacks extendedKeyUsage serverAuth");
    for (size_t i = 0; hostnames != NULL && hostnames[i] != NULL; i++)
        if (!names(server, hostnames[i]))
            return refuse(err, errlen,
                          "the server certificate does not name \"%s\" in its "
                          "subjectAltName (every name of `hostname` must be there)",
                          hostnames[i]);
    *by_root = server->issuer_raw.len == root->subject_raw.len &&
               memcmp(server->issuer_raw.p, root->subject_raw.p, root->subject_raw.len) == 0;
    if (*by_root)
        return verify(server, root, "the server certificate", "the root", err, errlen);
    /* server, then the issuing CA as the untrusted intermediate, up to the root. */
    mbedtls_x509_crt chain;
    mbedtls_x509_crt_init(&chain);
    int rc = HUB_ECRYPTO;
    if (mbedtls_x509_crt_parse_der(&chain, server->raw.p, server->raw.len) == 0 &&
        mbedtls_x509_crt_parse_der(&chain, issuing->raw.p, issuing->raw.len) == 0)
        rc = verify(&chain, root, "the server certificate", "the issuing CA or the root", err,
                    errlen);
    mbedtls_x509_crt_free(&chain);
    return rc;
}

/* Reads the cRLNumber out of the crlExtensions of a parsed CRL (mbedTLS 2.28 keeps them
 * raw: crl_ext.p is the SEQUENCE OF Extension). */
static int crl_number(const mbedtls_x509_crl *crl, uint64_t *out)
{
    unsigned char *p = crl->crl_ext.p, *end;
    size_t len;
    if (p == NULL || crl->crl_ext.len == 0)
        return HUB_ENOTFOUND;
    end = p + crl->crl_ext.len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
        return HUB_EINVAL;
    end = p + len;
    while (p < end) {
        unsigned char *ext_end;
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
            return HUB_EINVAL;
        ext_end = p + len;
        mbedtls_asn1_buf oid = {0};
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID))
            return HUB_EINVAL;
        oid.p = p;
        p += oid.len;
        int critical = 0;
        if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN &&
            mbedtls_asn1_get_bool(&p, ext_end, &critical))
            return HUB_EINVAL;
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING))
            return HUB_EINVAL;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_CRL_NUMBER, &oid) == 0) {
            unsigned char *q = p;
            size_t ilen;
            if (mbedtls_asn1_get_tag(&q, p + len, &ilen, MBEDTLS_ASN1_INTEGER) || ilen == 0 ||
                (q[0] & 0x80))
                return HUB_EINVAL;
            while (ilen > 1 && q[0] == 0) {
                q++;
                ilen--;
            }
            if (ilen > 8)
                return HUB_ERANGE;
            uint64_t v = 0;
            for (size_t i = 0; i < ilen; i++)
                v = v << 8 | q[i];
            *out = v;
            return 0;
        }
        p = ext_end;
    }
    return HUB_ENOTFOUND;
}

int hub_import_check_crl(const uint8_t *data, size_t len, const char *name, mbedtls_x509_crt *root,
                         const mbedtls_x509_crt *watched, struct hub_import_crl *out, int *listed,
                         hub_buf_t *der, char *err, size_t errlen)
{
    mbedtls_x509_crl crl;
    mbedtls_x509_crl_init(&crl);
    *listed = 0;
    uint8_t *copy = with_nul(data, len);
    if (copy == NULL)
        return HUB_ENOMEM;
    int rc = 0, ret = is_pem(data, len) ? mbedtls_x509_crl_parse(&crl, copy, len + 1)
                                        : mbedtls_x509_crl_parse_der(&crl, copy, len);
    free(copy);
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crl.sig_md);
    char t[32];
    if (ret != 0) {
        char msg[128];
        mbedtls_strerror(ret, msg, sizeof msg);
        rc = refuse(err, errlen, "%s: not a CRL (%s)", name, msg);
    } else if (crl.next != NULL && crl.next->raw.len > 0) {
        rc = refuse(err, errlen, "%s holds several CRLs: give one", name);
    } else if (crl.issuer_raw.len != root->subject_raw.len ||
               memcmp(crl.issuer_raw.p, root->subject_raw.p, root->subject_raw.len) != 0) {
        rc = refuse(err, errlen,
                    "%s was not issued by the root (its issuer is not the root's "
                    "subject)",
                    name);
    } else if (md == NULL || mbedtls_md(md, crl.tbs.p, crl.tbs.len, hash) != 0 ||
               mbedtls_pk_verify_ext(crl.sig_pk, crl.sig_opts, &root->pk, crl.sig_md, hash,
                                     mbedtls_md_get_size(md), crl.sig.p, crl.sig.len) != 0) {
        rc = refuse(err, errlen, "%s: its signature does not verify with the root's key", name);
    } else if (crl.next_update.year == 0) {
        rc = refuse(err, errlen, "%s has no nextUpdate", name);
    } else if (mbedtls_x509_time_is_past(&crl.next_update)) {
        fmt_time(&crl.next_update, t);
        rc = refuse(err, errlen, "%s has expired (nextUpdate %s): sign a new one", name, t);
    } else if ((ret = crl_number(&crl, &out->number)) != 0) {
        rc = refuse(err, errlen, "%s: %s", name,
                    ret == HUB_ENOTFOUND ? "no cRLNumber extension (openssl ca -gencrl with "
                                           "a crlnumber file writes one)"
                                         : "malformed cRLNumber");
    }
    if (rc == 0) {
        out->this_update = hub_x509_time(&crl.this_update);
        out->next_update = hub_x509_time(&crl.next_update);
        out->entries = 0;
        for (const mbedtls_x509_crl_entry *e = &crl.entry; e != NULL; e = e->next) {
            if (e->raw.len == 0)
                continue;
            out->entries++;
            if (watched != NULL && e->serial.len == watched->serial.len &&
                memcmp(e->serial.p, watched->serial.p, e->serial.len) == 0)
                *listed = 1;
        }
        rc = hub_buf_append(der, crl.raw.p, crl.raw.len);
    }
    mbedtls_x509_crl_free(&crl);
    return rc;
}
