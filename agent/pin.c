/* The pin is checked in a certificate verification callback, which runs OpenSSL's own chain
 * verification first (including the callbacks libcurl and libmosquitto install for host name
 * checks), so a pin adds to the chain check and never replaces it. */
#include "agent/pin.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

int hub_pin_parse(const char *hex, struct hub_pin *pin)
{
    char clean[65];
    size_t n = 0;
    memset(pin, 0, sizeof *pin);
    if (hex == NULL || hex[0] == 0)
        return 0;
    for (const char *p = hex; *p; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p) || n == 64)
            return HUB_EINVAL;
        clean[n++] = *p;
    }
    clean[n] = 0;
    if (n != 64 || hub_hex_decode(clean, pin->sha256, sizeof pin->sha256) != 32)
        return HUB_EINVAL;
    pin->set = 1;
    return 0;
}

void hub_pin_hex(const struct hub_pin *pin, char out[65])
{
    if (pin->set)
        hub_hex_lower(pin->sha256, 32, out);
    else
        out[0] = 0;
}

static int verify_cb(X509_STORE_CTX *x, void *arg)
{
    struct hub_pin *pin = arg;
    pin->verify_error[0] = 0;
    int ok = X509_verify_cert(x);
    if (ok <= 0) {
        snprintf(pin->verify_error, sizeof pin->verify_error,
                 "server certificate verification failed: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
        return ok;
    }
    if (!pin->set)
        return ok;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    if (leaf == NULL || X509_digest(leaf, EVP_sha256(), md, &len) != 1 || len != 32) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (hub_ct_equal(md, pin->sha256, 32)) {
        pin->mismatch = 0;
        return 1;
    }
    pin->mismatch = 1;
    for (unsigned i = 0; i < 32; i++)
        snprintf(pin->seen + 3 * i, 4, "%02X%s", md[i], i < 31 ? ":" : "");
    char want[65];
    hub_pin_hex(pin, want);
    hub_error("server certificate SHA-256 %s does not match the pinned %s: refusing to "
              "connect",
              pin->seen, want);
    snprintf(pin->verify_error, sizeof pin->verify_error,
             "the server certificate %s does not match the pin", pin->seen);
    X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

void hub_pin_install(void *ssl_ctx, struct hub_pin *pin)
{
    SSL_CTX_set_cert_verify_callback((SSL_CTX *)ssl_ctx, verify_cb, pin);
}
