#include "agent/fwverify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "agent/state.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define SIGNERS_MAX (1024 * 1024)

/* Loads the bundle and points *found at the certificate with SHA-256 fp_hex (or NULL). */
static int find_signer(const char *path, const char *fp_hex, mbedtls_x509_crt *chain,
                       const mbedtls_x509_crt **found)
{
    hub_buf_t b = HUB_BUF_INIT;
    *found = NULL;
    int rc = hub_state_file_read(path, &b, SIGNERS_MAX);
    if (rc == 0 && b.len > 0)
        (void)mbedtls_x509_crt_parse(chain, b.data, b.len + 1); /* the parsable ones */
    hub_buf_free(&b);
    for (const mbedtls_x509_crt *c = chain; c != NULL && c->raw.len > 0; c = c->next) {
        uint8_t md[32];
        char hex[65];
        mbedtls_sha256_ret(c->raw.p, c->raw.len, md, 0);
        hub_hex_lower(md, sizeof md, hex);
        if (strcasecmp(hex, fp_hex) == 0) {
            *found = c;
            break;
        }
    }
    return rc;
}

int hub_fw_signer_trusted(const char *signers_path, const char *fp_hex)
{
    mbedtls_x509_crt chain;
    const mbedtls_x509_crt *c;
    mbedtls_x509_crt_init(&chain);
    find_signer(signers_path, fp_hex, &chain, &c);
    int ok = c != NULL;
    mbedtls_x509_crt_free(&chain);
    return ok;
}

/* SHA-256 of a file and its size. */
static int hash_file(const char *path, uint8_t md[32], long long *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return HUB_EIO;
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts_ret(&ctx, 0);
    unsigned char buf[65536];
    ssize_t n;
    *size = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        mbedtls_sha256_update_ret(&ctx, buf, (size_t)n);
        *size += n;
    }
    mbedtls_sha256_finish_ret(&ctx, md);
    mbedtls_sha256_free(&ctx);
    close(fd);
    return n < 0 ? HUB_EIO : 0;
}

int hub_fw_verify(const char *image_path, long long size, const char *sha256_hex,
                  const uint8_t *sig, size_t sig_len, const char *signers_path, const char *fp_hex,
                  char *why, size_t why_len)
{
    uint8_t md[32], want[32];
    char hex[65];
    long long have = 0;
    if (hash_file(image_path, md, &have) != 0) {
        snprintf(why, why_len, "cannot read the image %s: %s", image_path, strerror(errno));
        return HUB_EIO;
    }
    if (have != size) {
        snprintf(why, why_len, "size mismatch: %lld bytes received, %lld announced", have, size);
        return HUB_EINVAL;
    }
    hub_hex_lower(md, sizeof md, hex);
    if (hub_hex_decode(sha256_hex, want, sizeof want) != 32 || !hub_ct_equal(md, want, 32)) {
        snprintf(why, why_len, "sha256 mismatch: the image hashes to %s, the notice says %.64s",
                 hex, sha256_hex);
        return HUB_EINVAL;
    }
    mbedtls_x509_crt chain;
    const mbedtls_x509_crt *signer;
    mbedtls_x509_crt_init(&chain);
    find_signer(signers_path, fp_hex, &chain, &signer);
    int rc = HUB_EINVAL;
    if (signer == NULL) {
        snprintf(why, why_len, "signer %.64s is not a trusted firmware signer", fp_hex);
    } else if (mbedtls_x509_crt_check_key_usage(signer, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0) {
        snprintf(why, why_len, "signer %.64s lacks keyUsage digitalSignature", fp_hex);
    } else {
        int ret = mbedtls_pk_verify((mbedtls_pk_context *)&signer->pk, MBEDTLS_MD_SHA256, md,
                                    sizeof md, sig, sig_len);
        if (ret == 0)
            rc = 0;
        else
            snprintf(why, why_len, "signature does not verify with signer %.64s (-0x%04X)", fp_hex,
                     (unsigned)-ret);
    }
    mbedtls_x509_crt_free(&chain);
    return rc;
}
