#include "api/priorities.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

/* TLS 1.2 and 1.3, AEAD suites with forward secrecy over elliptic curves: the default. */
#define MODERN_CIPHERS "+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305"
#define MODERN_KX "+ECDHE-ECDSA:+ECDHE-RSA"

/* GnuTLS keyword of each part of a suite name "TLS-<kx>-WITH-<cipher>-<mac>". Key exchanges
 * are listed forward-secret first: with %SERVER_PRECEDENCE GnuTLS 3.7 orders suites by key
 * exchange first, so ECDHE beats DHE beats static RSA whatever the client prefers. */
static const struct {
    const char *name, *gnutls;
} KX[] = {{"ECDHE-ECDSA", "+ECDHE-ECDSA"},
          {"ECDHE-RSA", "+ECDHE-RSA"},
          {"DHE-RSA", "+DHE-RSA"},
          {"RSA", "+RSA"}},
  CIPHERS[] = {{"AES-128-GCM", "+AES-128-GCM"},
               {"AES-256-GCM", "+AES-256-GCM"},
               {"CHACHA20-POLY1305", "+CHACHA20-POLY1305"},
               {"AES-128-CBC", "+AES-128-CBC"},
               {"AES-256-CBC", "+AES-256-CBC"}},
  MACS[] = {{"SHA", "+SHA1"}, {"SHA256", "+SHA256"}, {"SHA384", "+SHA384"}};
#define N(a) (sizeof a / sizeof a[0])

/* Marks the parts of one normalised name ("TLS-RSA-WITH-AES-128-CBC-SHA"); 0 when GnuTLS
 * cannot offer it. */
static int mark(const char *name, int *kx, int *cipher, int *mac)
{
    const char *with = strstr(name, "-WITH-");
    if (strncmp(name, "TLS-", 4) != 0 || with == NULL)
        return 0;
    size_t kxlen = (size_t)(with - name - 4);
    const char *rest = with + 6;
    int k = -1, c = -1, m = -1;
    for (size_t i = 0; i < N(KX); i++)
        if (strlen(KX[i].name) == kxlen && strncmp(name + 4, KX[i].name, kxlen) == 0)
            k = (int)i;
    for (size_t i = 0; i < N(CIPHERS); i++) {
        size_t cl = strlen(CIPHERS[i].name);
        if (strncmp(rest, CIPHERS[i].name, cl) == 0 && rest[cl] == '-') {
            c = (int)i;
            const char *tail = rest + cl + 1;
            if (strstr(CIPHERS[i].name, "CBC") == NULL) {
                m = -2; /* AEAD: the MAC in the name is the PRF hash */
            } else {
                for (size_t j = 0; j < N(MACS); j++)
                    if (strcmp(tail, MACS[j].name) == 0)
                        m = (int)j;
            }
        }
    }
    if (k < 0 || c < 0 || m == -1)
        return 0;
    kx[k] = cipher[c] = 1;
    if (m >= 0)
        mac[m] = 1;
    return 1;
}

int hub_api_priorities(const char *ciphers, char **out)
{
    int kx[N(KX)] = {1, 1}, cipher[N(CIPHERS)] = {1, 1, 1}, mac[N(MACS)] = {0};
    char name[128];
    for (const char *p = ciphers ? ciphers : ""; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        if (len >= sizeof name)
            return HUB_EINVAL;
        for (size_t i = 0; i < len; i++)
            name[i] = p[i] == '_' ? '-' : p[i];
        name[len] = 0;
        if (!mark(name, kx, cipher, mac))
            hub_warn("tls_ciphers: %s is not offered by the HTTPS API (GnuTLS)", name);
        p += len;
    }
    hub_buf_t b = HUB_BUF_INIT;
    int rc = hub_buf_puts(&b, "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL");
    for (size_t i = 0; rc == 0 && i < N(CIPHERS); i++)
        if (cipher[i])
            rc = hub_buf_printf(&b, ":%s", CIPHERS[i].gnutls);
    if (rc == 0)
        rc = hub_buf_puts(&b, ":-MAC-ALL:+AEAD");
    for (size_t i = 0; rc == 0 && i < N(MACS); i++)
        if (mac[i])
            rc = hub_buf_printf(&b, ":%s", MACS[i].gnutls);
    if (rc == 0)
        rc = hub_buf_puts(&b, ":-KX-ALL");
    for (size_t i = 0; rc == 0 && i < N(KX); i++)
        if (kx[i])
            rc = hub_buf_printf(&b, ":%s", KX[i].gnutls);
    /* Finite-field groups only for DHE_RSA (TLS 1.2), 2048 bits and up. */
    if (rc == 0)
        rc = hub_buf_puts(&b, kx[2] ? ":-GROUP-DH-ALL:+GROUP-FFDHE2048:+GROUP-FFDHE3072"
                                      ":%SERVER_PRECEDENCE"
                                    : ":-GROUP-DH-ALL:%SERVER_PRECEDENCE");
    if (rc == 0)
        rc = hub_buf_append(&b, "", 1);
    if (rc != 0) {
        hub_buf_free(&b);
        return rc;
    }
    *out = (char *)b.data;
    return 0;
}
