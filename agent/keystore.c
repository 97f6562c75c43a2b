/* PKCS#8 EncryptedPrivateKeyInfo with PBES2 (RFC 8018), written with mbedtls_asn1_write_*
 * (backwards, strict DER) and parsed by hand: mbedTLS 2.28's PBES2 knows only DES ciphers.
 *
 *   EncryptedPrivateKeyInfo ::= SEQUENCE {
 *     SEQUENCE { OID pbes2, SEQUENCE {
 *         SEQUENCE { OID pbkdf2, SEQUENCE { salt OCTET STRING, iterations INTEGER,
 *                                           [keyLength INTEGER], prf SEQUENCE {
 *                                               OID hmacWithSHA256, NULL } } },
 *         SEQUENCE { OID aes256-CBC, iv OCTET STRING } } },
 *     encryptedData OCTET STRING }   -- AES-256-CBC(PrivateKeyInfo), PKCS#7 padding
 *
 * The PrivateKeyInfo inside is built here too (mbedTLS 2.28 writes only SEC1/PKCS#1). Every
 * buffer that held key material is wiped with mbedtls_platform_zeroize. */
#include "agent/keystore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/aes.h>
#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>

#include "agent/exec.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/secure.h"

#define PASS_MAX 1024
#define KEY_FILE_MAX 32768
#define DER_MAX 8192
#define SALT_LEN 16
#define ITER_MAX 100000000u

static const char OID_PBES2[] = MBEDTLS_OID_PKCS5_PBES2;
static const char OID_PBKDF2[] = MBEDTLS_OID_PKCS5_PBKDF2;
static const char OID_HMAC_SHA256[] = MBEDTLS_OID_HMAC_SHA256;
static const char OID_AES256_CBC[] = MBEDTLS_OID_AES "\x2a";
static const char PEM_BEGIN[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n";
static const char PEM_END[] = "-----END ENCRYPTED PRIVATE KEY-----\n";

static struct {
    char pass[PASS_MAX];
    size_t len;
    int set, enforced;
} ks;

#define OIDLEN(o) (sizeof(o) - 1)

const char *hub_keystore_passphrase(void)
{
    return ks.set ? ks.pass : NULL;
}

int hub_keystore_enforced(void)
{
    return ks.enforced;
}

void hub_keystore_close(void)
{
    mbedtls_platform_zeroize(&ks, sizeof ks);
}

/* Keeps the first line of text (len bytes) as the passphrase. */
static int take_pass(const uint8_t *text, size_t len, const char *from)
{
    size_t n = 0;
    while (n < len && text[n] != '\n' && text[n] != '\r')
        n++;
    if (n == 0 || n >= PASS_MAX || memchr(text, 0, n) != NULL) {
        hub_error("%s gave no usable passphrase (empty, longer than %d bytes or binary)", from,
                  PASS_MAX - 1);
        return HUB_EBADPASS;
    }
    memcpy(ks.pass, text, n);
    ks.pass[n] = 0;
    ks.len = n;
    ks.set = 1;
    return 0;
}

/* Reads at most max bytes of path into b (NUL-terminated). */
static int read_file(const char *path, hub_buf_t *b, size_t max)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL)
        return errno == ENOENT ? HUB_ENOTFOUND : HUB_EIO;
    int rc = hub_buf_reserve(b, max + 1);
    size_t n = rc == 0 ? fread(b->data, 1, max + 1, f) : 0;
    if (rc == 0 && ferror(f))
        rc = HUB_EIO;
    else if (rc == 0 && n > max)
        rc = HUB_ERANGE;
    fclose(f);
    if (rc == 0) {
        b->len = n;
        b->data[n] = 0;
    }
    return rc;
}

static void wipe_free(hub_buf_t *b)
{
    if (b->data != NULL)
        mbedtls_platform_zeroize(b->data, b->cap);
    hub_buf_free(b);
}

int hub_keystore_open(const struct hub_agent_conf *c, const char *dir)
{
    char marker[1100];
    hub_buf_t b = HUB_BUF_INIT;
    int rc = 0;
    hub_keystore_close();
    if (c->passphrase_file[0]) {
        struct stat sb;
        if (stat(c->passphrase_file, &sb) == 0 && (sb.st_mode & 077) != 0)
            hub_warn("key_passphrase_file %s is readable by others (mode %03o): chmod 600 it",
                     c->passphrase_file, (unsigned)(sb.st_mode & 0777));
        rc = read_file(c->passphrase_file, &b, PASS_MAX);
        if (rc != 0)
            hub_error("cannot read key_passphrase_file %s: %s", c->passphrase_file,
                      rc == HUB_ERANGE ? "too large" : strerror(errno));
        else
            rc = take_pass(b.data, b.len, "key_passphrase_file");
        rc = rc == 0 ? 0 : HUB_EBADPASS;
    } else if (c->passphrase_command[0]) {
        const char *argv[] = {"/bin/sh", "-c", c->passphrase_command, NULL};
        int code = -1, truncated = 0;
        struct hub_exec e = {argv, NULL, 0, 30, PASS_MAX, 0};
        if (hub_exec_run(&e, &b, &code, &truncated) != 0 || code != 0) {
            hub_error("key_passphrase_command failed (exit %d); its output is not shown", code);
            rc = HUB_EBADPASS;
        } else {
            rc = take_pass(b.data, b.len, "key_passphrase_command");
        }
    }
    wipe_free(&b);
    if (rc != 0)
        return rc;
    snprintf(marker, sizeof marker, "%s/key_store", dir);
    ks.enforced = access(marker, F_OK) == 0;
    if (c->key_enforced && !ks.enforced) {
        struct stat sb;
        const char *what = "write";
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            if (hub_file_write_atomic(marker, "enforced\n", 9, 0600, &what) != 0) {
                hub_error("cannot %s %s: %s", what, marker, strerror(errno));
                return HUB_EIO;
            }
            hub_info("key store enforced from now on (recorded in %s)", marker);
        }
        ks.enforced = 1;
    } else if (ks.enforced && !c->key_enforced) {
        hub_info("key store enforced by %s (the configuration does not turn it off)", marker);
    }
    if (ks.enforced && !ks.set) {
        hub_error("the key store is enforced but no key_passphrase_file or "
                  "key_passphrase_command is configured%s%s",
                  c->path[0] ? " in " : "", c->path);
        return HUB_EKEYPOLICY;
    }
    return 0;
}

/* Writes PrivateKeyInfo { 0, AlgorithmIdentifier, OCTET STRING SEC1/PKCS#1 } backwards
 * ending at *p; returns its length or a negative mbedTLS code. */
static int write_pkcs8(mbedtls_pk_context *pk, unsigned char **p, unsigned char *start)
{
    int ret;
    size_t len = 0, par = 0;
    const char *oid;
    size_t oid_len;
    ret = mbedtls_pk_write_key_der(pk, start, (size_t)(*p - start));
    if (ret < 0)
        return ret;
    *p -= ret; /* the key DER already sits at the end of [start, *p) */
    len += (size_t)ret;
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, (size_t)ret));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_OCTET_STRING));
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY) {
        const char *curve;
        size_t curve_len;
        if (mbedtls_oid_get_oid_by_ec_grp(mbedtls_pk_ec(*pk)->grp.id, &curve, &curve_len) != 0)
            return MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE;
        MBEDTLS_ASN1_CHK_ADD(par, mbedtls_asn1_write_oid(p, start, curve, curve_len));
    } else if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA) {
        return MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE;
    }
    if (mbedtls_oid_get_oid_by_pk_alg(mbedtls_pk_get_type(pk), &oid, &oid_len) != 0)
        return MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE;
    /* par == 0 writes the NULL parameter RSA needs */
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_algorithm_identifier(p, start, oid, oid_len, par));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(p, start, 0));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

static int derive(const char *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                  unsigned iterations, uint8_t key[32])
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int ret = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (ret == 0)
        ret = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)pass, pass_len, salt, salt_len,
                                        iterations, 32, key);
    mbedtls_md_free(&md);
    return ret;
}

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)

int hub_pkcs8_encrypt(mbedtls_pk_context *pk, const char *pass, size_t pass_len,
                      unsigned iterations, hub_buf_t *der)
{
    uint8_t *plain = calloc(1, DER_MAX), *out = calloc(1, 2 * DER_MAX), salt[SALT_LEN], iv[16],
            iv2[16], key[32];
    mbedtls_aes_context aes;
    int rc = HUB_ECRYPTO, ret;
    mbedtls_aes_init(&aes);
    if (plain == NULL || out == NULL) {
        rc = HUB_ENOMEM;
        goto out;
    }
    /* PrivateKeyInfo at the end of plain, then PKCS#7 padded in place at the start. */
    unsigned char *p = plain + DER_MAX - 16;
    ret = write_pkcs8(pk, &p, plain);
    if (ret < 0)
        goto out;
    size_t plen = (size_t)ret, pad = 16 - plen % 16;
    memmove(plain, p, plen);
    memset(plain + plen, (int)pad, pad);
    plen += pad;
    if (hub_random(salt, sizeof salt) != 0 || hub_random(iv, sizeof iv) != 0)
        goto out;
    memcpy(iv2, iv, sizeof iv);
    if (derive(pass, pass_len, salt, sizeof salt, iterations, key) != 0 ||
        mbedtls_aes_setkey_enc(&aes, key, 256) != 0)
        goto out;
    /* The ciphertext goes where the ASN.1 writer expects the OCTET STRING's content. */
    unsigned char *end = out + 2 * DER_MAX, *q = end - plen;
    if (mbedtls_aes_crypt_cbc(&aes, MBEDTLS_AES_ENCRYPT, plen, iv2, plain, q) != 0)
        goto out;
    size_t len = plen, l2 = 0, kdf = 0, enc = 0;
    ret = 0;
#define W(acc, call)                                                                               \
    do {                                                                                           \
        if ((ret = (call)) < 0)                                                                    \
            goto out;                                                                              \
        acc += (size_t)ret;                                                                        \
    } while (0)
    W(len, mbedtls_asn1_write_len(&q, out, plen));
    W(len, mbedtls_asn1_write_tag(&q, out, MBEDTLS_ASN1_OCTET_STRING));
    /* encryptionScheme: AES-256-CBC with its IV */
    W(enc, mbedtls_asn1_write_octet_string(&q, out, iv, sizeof iv));
    W(enc, mbedtls_asn1_write_oid(&q, out, OID_AES256_CBC, OIDLEN(OID_AES256_CBC)));
    W(enc, mbedtls_asn1_write_len(&q, out, enc));
    W(enc, mbedtls_asn1_write_tag(&q, out, SEQ));
    /* keyDerivationFunc: PBKDF2 { salt, iterations, prf hmacWithSHA256 } */
    size_t prf = 0;
    W(prf, mbedtls_asn1_write_algorithm_identifier(&q, out, OID_HMAC_SHA256,
                                                   OIDLEN(OID_HMAC_SHA256), 0));
    kdf += prf;
    W(kdf, mbedtls_asn1_write_int(&q, out, (int)iterations));
    W(kdf, mbedtls_asn1_write_octet_string(&q, out, salt, sizeof salt));
    W(kdf, mbedtls_asn1_write_len(&q, out, kdf));
    W(kdf, mbedtls_asn1_write_tag(&q, out, SEQ));
    W(kdf, mbedtls_asn1_write_oid(&q, out, OID_PBKDF2, OIDLEN(OID_PBKDF2)));
    W(kdf, mbedtls_asn1_write_len(&q, out, kdf));
    W(kdf, mbedtls_asn1_write_tag(&q, out, SEQ));
    l2 = kdf + enc;
    W(l2, mbedtls_asn1_write_len(&q, out, l2));
    W(l2, mbedtls_asn1_write_tag(&q, out, SEQ));
    W(l2, mbedtls_asn1_write_oid(&q, out, OID_PBES2, OIDLEN(OID_PBES2)));
    W(l2, mbedtls_asn1_write_len(&q, out, l2));
    W(l2, mbedtls_asn1_write_tag(&q, out, SEQ));
    len += l2;
    W(len, mbedtls_asn1_write_len(&q, out, len));
    W(len, mbedtls_asn1_write_tag(&q, out, SEQ));
#undef W
    rc = hub_buf_append(der, q, len);
out:
    if (ret < 0 && rc == HUB_ECRYPTO)
        hub_error("cannot encrypt the private key (mbedTLS -0x%04X)", (unsigned)-ret);
    mbedtls_aes_free(&aes);
    mbedtls_platform_zeroize(key, sizeof key);
    if (plain != NULL)
        mbedtls_platform_zeroize(plain, DER_MAX);
    free(plain);
    free(out);
    return rc;
}

/* Reads one SEQUENCE header and sets *end to its end. */
static int seq(unsigned char **p, const unsigned char *lim, unsigned char **end)
{
    size_t len;
    if (mbedtls_asn1_get_tag(p, lim, &len, SEQ) != 0)
        return -1;
    *end = *p + len;
    return 0;
}

/* Reads an OID and compares it. */
static int oid_is(unsigned char **p, const unsigned char *lim, const char *oid, size_t oid_len)
{
    size_t len;
    if (mbedtls_asn1_get_tag(p, lim, &len, MBEDTLS_ASN1_OID) != 0 || len != oid_len ||
        memcmp(*p, oid, len) != 0)
        return -1;
    *p += len;
    return 0;
}

/* PBES2 has no integrity check: a changed ciphertext block can decrypt to another valid
 * scalar. The private and public halves must agree (d·G = Q; RSA's p, q, d, e). */
static int consistent(mbedtls_pk_context *pk)
{
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY)
        return mbedtls_ecp_check_pub_priv(mbedtls_pk_ec(*pk), mbedtls_pk_ec(*pk)) == 0;
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA)
        return mbedtls_rsa_check_privkey(mbedtls_pk_rsa(*pk)) == 0;
    return 0;
}

int hub_pkcs8_decrypt(const uint8_t *der, size_t der_len, const char *pass, size_t pass_len,
                      mbedtls_pk_context *pk, unsigned *iterations)
{
    unsigned char *p = (unsigned char *)der, *lim = p + der_len, *e_all, *e_alg, *e_par, *e_kdf,
                  *e_kdfp, *e_enc, *salt, *iv, *ct;
    size_t salt_len, iv_len, ct_len, len;
    int iter = 0, keylen = 32;
    uint8_t key[32], ivc[16], *plain = NULL;
    mbedtls_aes_context aes;
    int rc = HUB_EINVAL;
    mbedtls_aes_init(&aes);
    if (seq(&p, lim, &e_all) != 0 || e_all != lim || seq(&p, e_all, &e_alg) != 0 ||
        oid_is(&p, e_alg, OID_PBES2, OIDLEN(OID_PBES2)) != 0 || seq(&p, e_alg, &e_par) != 0 ||
        e_par != e_alg || seq(&p, e_par, &e_kdf) != 0 ||
        oid_is(&p, e_kdf, OID_PBKDF2, OIDLEN(OID_PBKDF2)) != 0 || seq(&p, e_kdf, &e_kdfp) != 0 ||
        e_kdfp != e_kdf ||
        mbedtls_asn1_get_tag(&p, e_kdfp, &salt_len, MBEDTLS_ASN1_OCTET_STRING) != 0)
        goto out;
    salt = p;
    p += salt_len;
    if (mbedtls_asn1_get_int(&p, e_kdfp, &iter) != 0 || iter < 1 || (unsigned)iter > ITER_MAX)
        goto out;
    if (p < e_kdfp && *p == MBEDTLS_ASN1_INTEGER &&
        (mbedtls_asn1_get_int(&p, e_kdfp, &keylen) != 0 || keylen != 32))
        goto out;
    /* prf: absent means hmacWithSHA1, which is not accepted */
    unsigned char *e_prf;
    if (seq(&p, e_kdfp, &e_prf) != 0 ||
        oid_is(&p, e_prf, OID_HMAC_SHA256, OIDLEN(OID_HMAC_SHA256)) != 0)
        goto out;
    if (p < e_prf && (mbedtls_asn1_get_tag(&p, e_prf, &len, MBEDTLS_ASN1_NULL) != 0 || len != 0))
        goto out;
    if (p != e_prf || e_prf != e_kdfp || seq(&p, e_par, &e_enc) != 0 || e_enc != e_par ||
        oid_is(&p, e_enc, OID_AES256_CBC, OIDLEN(OID_AES256_CBC)) != 0 ||
        mbedtls_asn1_get_tag(&p, e_enc, &iv_len, MBEDTLS_ASN1_OCTET_STRING) != 0 || iv_len != 16)
        goto out;
    iv = p;
    p += iv_len;
    if (p != e_enc || mbedtls_asn1_get_tag(&p, lim, &ct_len, MBEDTLS_ASN1_OCTET_STRING) != 0 ||
        p + ct_len != lim || ct_len == 0 || ct_len % 16 != 0 || ct_len > DER_MAX)
        goto out;
    ct = p;
    *iterations = (unsigned)iter;
    plain = malloc(ct_len);
    if (plain == NULL) {
        rc = HUB_ENOMEM;
        goto out;
    }
    memcpy(ivc, iv, 16);
    rc = HUB_ECRYPTO;
    if (derive(pass, pass_len, salt, salt_len, (unsigned)iter, key) != 0 ||
        mbedtls_aes_setkey_dec(&aes, key, 256) != 0 ||
        mbedtls_aes_crypt_cbc(&aes, MBEDTLS_AES_DECRYPT, ct_len, ivc, ct, plain) != 0)
        goto out;
    /* A wrong passphrase shows as bad padding or a key that does not parse. */
    rc = HUB_EBADPASS;
    unsigned pad = plain[ct_len - 1];
    if (pad < 1 || pad > 16)
        goto out;
    for (size_t i = ct_len - pad; i < ct_len; i++)
        if (plain[i] != pad)
            goto out;
    if (mbedtls_pk_parse_key(pk, plain, ct_len - pad, NULL, 0) != 0 || !consistent(pk))
        goto out;
    rc = 0;
out:
    mbedtls_aes_free(&aes);
    mbedtls_platform_zeroize(key, sizeof key);
    if (plain != NULL)
        mbedtls_platform_zeroize(plain, ct_len);
    free(plain);
    return rc;
}

int hub_keystore_is_encrypted(const char *pem)
{
    return strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL ||
           strstr(pem, "Proc-Type: 4,ENCRYPTED") != NULL;
}

int hub_keystore_write_pem(mbedtls_pk_context *pk, hub_buf_t *out)
{
    hub_buf_t der = HUB_BUF_INIT;
    size_t olen = 0;
    int rc;
    if (!ks.set) {
        if (ks.enforced) {
            hub_error("the key store is enforced: refusing to write a plaintext key");
            return HUB_EKEYPOLICY;
        }
        rc = hub_buf_reserve(out, 16000);
        if (rc == 0 && mbedtls_pk_write_key_pem(pk, out->data, 16000) != 0)
            rc = HUB_ECRYPTO;
        if (rc == 0)
            out->len = strlen((char *)out->data);
        return rc;
    }
    rc = hub_pkcs8_encrypt(pk, ks.pass, ks.len, HUB_KEYSTORE_ITERATIONS, &der);
    if (rc == 0)
        rc = hub_buf_reserve(out, der.len * 2 + 200);
    if (rc == 0 && mbedtls_pem_write_buffer(PEM_BEGIN, PEM_END, der.data, der.len, out->data,
                                            out->cap, &olen) != 0)
        rc = HUB_ECRYPTO;
    if (rc == 0)
        out->len = olen - 1; /* olen counts the NUL */
    hub_buf_free(&der);
    return rc;
}

int hub_keystore_load(const char *path, mbedtls_pk_context *pk)
{
    hub_buf_t b = HUB_BUF_INIT;
    int rc = read_file(path, &b, KEY_FILE_MAX);
    if (rc != 0) {
        if (rc == HUB_ENOTFOUND)
            hub_error("no private key at %s", path);
        else
            hub_error("cannot read %s: %s", path, rc == HUB_ERANGE ? "too large" : strerror(errno));
        goto out;
    }
    const char *text = (const char *)b.data;
    if (strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL) {
        mbedtls_pem_context pem;
        size_t used;
        unsigned iter = 0;
        mbedtls_pem_init(&pem);
        if (!ks.set) {
            hub_error("%s is encrypted: configure key_passphrase_file or key_passphrase_command",
                      path);
            rc = HUB_EBADPASS;
        } else if (mbedtls_pem_read_buffer(&pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                                           "-----END ENCRYPTED PRIVATE KEY-----", b.data, NULL, 0,
                                           &used) != 0) {
            hub_error("%s: the encrypted key's PEM does not decode", path);
            rc = HUB_EINVAL;
        } else {
            rc = hub_pkcs8_decrypt(pem.buf, pem.buflen, ks.pass, ks.len, pk, &iter);
            if (rc == HUB_EBADPASS)
                hub_error("%s does not decrypt with the configured passphrase", path);
            else if (rc != 0)
                hub_error("%s is not PKCS#8 PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC", path);
        }
        mbedtls_pem_free(&pem);
    } else if (strstr(text, "Proc-Type: 4,ENCRYPTED") != NULL) {
        rc = ks.set ? mbedtls_pk_parse_key(pk, b.data, b.len + 1, (const unsigned char *)ks.pass,
                                           ks.len)
                    : -1;
        if (rc != 0) {
            hub_error("%s (legacy encrypted PEM) does not decrypt with the configured passphrase",
                      path);
            rc = HUB_EBADPASS;
        }
    } else if (ks.enforced) {
        hub_error("%s is a plaintext private key and the key store is enforced: refusing it "
                  "(encrypt it with `iothub-device key migrate`)",
                  path);
        rc = HUB_EKEYPOLICY;
    } else if (mbedtls_pk_parse_key(pk, b.data, b.len + 1, NULL, 0) != 0) {
        hub_error("%s does not parse as a private key", path);
        rc = HUB_EINVAL;
    }
out:
    wipe_free(&b);
    return rc;
}

int hub_keystore_check(const char *path)
{
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    int rc = hub_keystore_load(path, &pk);
    mbedtls_pk_free(&pk);
    return rc;
}
