/* The agent's state directory: what enrollment stored (no secret), files written
 * atomically, and the certificate in use. Layout: state (key = value lines), key.pem (0600),
 * cert.pem (the device certificate), chain.pem (issuing CA + root: the server's trust). */
#ifndef HUB_AGENT_STATE_H
#define HUB_AGENT_STATE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "util/buf.h"

#define HUB_STATE_DEFAULT_DIR "/var/lib/iothub-device"

struct hub_state {
    char dir[1024];
    char device_id[64];
    char api_url[512]; /* https://HOST:PORT */
    char mqtt_host[256];
    int mqtt_port;
    char pin[65];      /* SHA-256 of the server certificate, lower-case hex, or "" */
    char key_type[16]; /* ec-p256, ec-p384, rsa-2048 */
};

/* What the loaded certificate says. */
struct hub_cert_info {
    char serial[41]; /* upper-case hex */
    char cn[80], o[80];
    time_t not_before, not_after;
    char fingerprint[96]; /* SHA-256 of the DER, "AA:BB:..." as openssl prints it */
};

/* path of a file of the state directory into out. Returns 0 or HUB_ERANGE. */
int hub_state_path(const struct hub_state *st, const char *name, char *out, size_t len);
/* 1 when dir holds an enrolled state (its "state" file exists). */
int hub_state_exists(const char *dir);
/* Reads dir/state into st. Returns 0, HUB_ENOTFOUND (not enrolled) or HUB_EINVAL (the
 * message logged). */
int hub_state_load(const char *dir, struct hub_state *st);
/* Writes st to its state file atomically. */
int hub_state_save(const struct hub_state *st);
/* Finishes a renewal interrupted between its two renames (renew.key/renew.pem); keeps a
 * renew.key without renew.pem (a pending renewal: its key is reused by the next attempt). */
void hub_state_recover(const struct hub_state *st);
/* Takes the exclusive, non-blocking flock of dir/.lock for the life of the process (*fd_out,
 * close-on-exec). Returns 0, HUB_EEXIST ("another iothub-device uses DIR", logged) or HUB_EIO. */
int hub_state_lock(const char *dir, int *fd_out);

/* Writes path atomically (hub_file_write_atomic: a temporary file with mode, fsync, rename,
 * fsync of the directory). Returns 0 or HUB_EIO (logged). */
int hub_state_file_write(const char *path, const void *data, size_t len, mode_t mode);
/* Reads at most max bytes of path into out (NUL kept past len). HUB_ENOTFOUND, HUB_EIO,
 * HUB_ERANGE (larger than max). */
int hub_state_file_read(const char *path, hub_buf_t *out, size_t max);
/* Parses the first certificate of a PEM file. Returns 0 or a HUB_E* code (logged). */
int hub_state_cert_info(const char *pem_path, struct hub_cert_info *out);
/* Parses the first certificate of PEM text. */
int hub_state_cert_info_mem(const char *pem, size_t len, struct hub_cert_info *out);

#endif
