/* Server certificate pinning for the agent's two OpenSSL clients (libcurl and libmosquitto):
 * after the usual chain and host name checks, the server certificate's SHA-256 must equal
 * the pinned one. */
#ifndef HUB_AGENT_PIN_H
#define HUB_AGENT_PIN_H

#include <stdint.h>

struct hub_pin {
    int set; /* 0: no pin, only the chain is checked */
    uint8_t sha256[32];
    int mismatch;           /* set by the last handshake that failed on the pin */
    char seen[96];          /* the fingerprint that was presented, "AA:BB:..." */
    char verify_error[160]; /* why the last chain verification failed, or "" */
};

/* Parses 64 hex digits (colons allowed, any case) into pin; "" or NULL means no pin.
 * Returns 0 or HUB_EINVAL. */
int hub_pin_parse(const char *hex, struct hub_pin *pin);
/* Lower-case hex of a set pin into out[65]. */
void hub_pin_hex(const struct hub_pin *pin, char out[65]);
/* Installs the check on an OpenSSL SSL_CTX (passed as void * so callers need no OpenSSL
 * header). pin is borrowed and must outlive the context. */
void hub_pin_install(void *ssl_ctx, struct hub_pin *pin);

#endif
