/* State directory. Every file is replaced by rename(2) after an fsync, so a power cut
 * leaves either the old or the new version. Enrollment and renewal write renew.key before
 * asking the server, renew.pem once it answered, and rename both over key.pem and cert.pem;
 * hub_state_recover completes the pair if the process died between the two renames and keeps
 * a renew.key whose answer never arrived, for the next attempt. */
#include "agent/state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "agent/keystore.h"
#include "ca/cert.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/secure.h"

int hub_state_path(const struct hub_state *st, const char *name, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", st->dir, name);
    return n < 0 || (size_t)n >= len ? HUB_ERANGE : 0;
}

int hub_state_exists(const char *dir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/state", dir);
    return access(p, F_OK) == 0;
}

int hub_state_file_write(const char *path, const void *data, size_t len, mode_t mode)
{
    const char *what = "write";
    int rc = hub_file_write_atomic(path, data, len, mode, &what);
    if (rc != 0)
        hub_error("cannot %s %s: %s", what, path, strerror(errno));
    return rc == 0 ? 0 : HUB_EIO;
}

int hub_state_file_read(const char *path, hub_buf_t *out, size_t max)
{
    FILE *f = fopen(path, "rbe");
    if (f == NULL) {
        if (errno == ENOENT)
            return HUB_ENOTFOUND;
        hub_error("cannot open %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > max) {
            hub_error("%s is larger than %zu bytes", path, max);
            rc = HUB_ERANGE;
        } else {
            rc = hub_buf_append(out, chunk, n);
        }
    }
    if (rc == 0 && ferror(f)) {
        hub_error("cannot read %s: %s", path, strerror(errno));
        rc = HUB_EIO;
    }
    if (rc == 0)
        rc = hub_buf_reserve(out, 1);
    if (rc == 0)
        out->data[out->len] = 0;
    hub_wipe(chunk, sizeof chunk);
    fclose(f);
    return rc;
}

/* Splits "key = value" (spaces around '=' optional); returns 0 or -1. */
static int split_line(char *line, char **key, char **value)
{
    line[strcspn(line, "\r\n")] = 0;
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line == 0 || *line == '#')
        return 1;
    char *eq = strchr(line, '=');
    if (eq == NULL)
        return -1;
    char *k_end = eq;
    while (k_end > line && (k_end[-1] == ' ' || k_end[-1] == '\t'))
        k_end--;
    *k_end = 0;
    char *v = eq + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *v_end = v + strlen(v);
    while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
        v_end--;
    *v_end = 0;
    *key = line;
    *value = v;
    return 0;
}

int hub_state_load(const char *dir, struct hub_state *st)
{
    char path[1100], line[1024];
    memset(st, 0, sizeof *st);
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    snprintf(st->key_type, sizeof st->key_type, "ec-p256");
    snprintf(path, sizeof path, "%s/state", dir);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT) {
            hub_error("%s is not enrolled (no %s); run `iothub-device enroll` first", dir, path);
            return HUB_ENOTFOUND;
        }
        hub_error("cannot open %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        char *k, *v;
        lineno++;
        int s = split_line(line, &k, &v);
        if (s > 0)
            continue;
        if (s < 0) {
            hub_error("%s line %d: expected key = value", path, lineno);
            rc = HUB_EINVAL;
        } else if (strcmp(k, "device_id") == 0) {
            snprintf(st->device_id, sizeof st->device_id, "%s", v);
        } else if (strcmp(k, "api_url") == 0) {
            snprintf(st->api_url, sizeof st->api_url, "%s", v);
        } else if (strcmp(k, "mqtt") == 0) {
            char *colon = strrchr(v, ':');
            long port = colon ? strtol(colon + 1, NULL, 10) : 0;
            if (colon == NULL || port < 1 || port > 65535) {
                hub_error("%s line %d: mqtt must be HOST:PORT", path, lineno);
                rc = HUB_EINVAL;
            } else {
                *colon = 0;
                snprintf(st->mqtt_host, sizeof st->mqtt_host, "%s", v);
                st->mqtt_port = (int)port;
            }
        } else if (strcmp(k, "pin_sha256") == 0) {
            snprintf(st->pin, sizeof st->pin, "%s", v);
        } else if (strcmp(k, "key_type") == 0) {
            snprintf(st->key_type, sizeof st->key_type, "%s", v);
        }
    }
    fclose(f);
    if (rc == 0 && (st->device_id[0] == 0 || st->api_url[0] == 0 || st->mqtt_port == 0)) {
        hub_error("%s: device_id, api_url and mqtt are required", path);
        rc = HUB_EINVAL;
    }
    return rc;
}

int hub_state_save(const struct hub_state *st)
{
    char path[1100];
    hub_buf_t b = HUB_BUF_INIT;
    int rc = hub_state_path(st, "state", path, sizeof path);
    if (rc == 0)
        rc = hub_buf_printf(&b,
                            "# iothub-device state: written by `iothub-device enroll`; no "
                            "secret is kept here\n"
                            "device_id = %s\napi_url = %s\nmqtt = %s:%d\npin_sha256 = %s\n"
                            "key_type = %s\n",
                            st->device_id, st->api_url, st->mqtt_host, st->mqtt_port, st->pin,
                            st->key_type);
    if (rc == 0)
        rc = hub_state_file_write(path, b.data, b.len, 0644);
    hub_buf_free(&b);
    return rc;
}

/* 1 when the private key file matches the certificate file's public key and the certificate
 * is for device_id (a staged pair of a --force enrollment as another device is not). */
static int pair_matches(const char *key_path, const char *cert_path, const char *device_id)
{
    struct hub_cert_info info;
    if (hub_state_cert_info(cert_path, &info) != 0 || strcasecmp(info.cn, device_id) != 0)
        return 0;
    mbedtls_pk_context key;
    mbedtls_x509_crt crt;
    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&crt);
    int ok = hub_keystore_load(key_path, &key) == 0 &&
             mbedtls_x509_crt_parse_file(&crt, cert_path) == 0 &&
             mbedtls_pk_check_pair(&crt.pk, &key) == 0;
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&crt);
    return ok;
}

void hub_state_recover(const struct hub_state *st)
{
    char nkey[1100], ncert[1100], key[1100], cert[1100];
    hub_state_path(st, "renew.key", nkey, sizeof nkey);
    hub_state_path(st, "renew.pem", ncert, sizeof ncert);
    hub_state_path(st, "key.pem", key, sizeof key);
    hub_state_path(st, "cert.pem", cert, sizeof cert);
    int has_nkey = access(nkey, F_OK) == 0, has_ncert = access(ncert, F_OK) == 0;
    if (has_nkey && has_ncert && pair_matches(nkey, ncert, st->device_id)) {
        hub_warn("completing an interrupted renewal: installing renew.key and renew.pem");
        if (rename(nkey, key) != 0 || rename(ncert, cert) != 0)
            hub_error("cannot complete the renewal: %s", strerror(errno));
        hub_file_sync_dir(key);
    } else if (!has_nkey && has_ncert && pair_matches(key, ncert, st->device_id)) {
        hub_warn("completing an interrupted renewal: installing renew.pem");
        if (rename(ncert, cert) != 0)
            hub_error("cannot complete the renewal: %s", strerror(errno));
        hub_file_sync_dir(cert);
    } else if (has_ncert) {
        (void)unlink(ncert);
    }
    /* A renew.key alone is a renewal whose answer may have been lost: the next attempt
     * sends a CSR for the same key, and the server returns the certificate it issued. */
    if (has_nkey && access(nkey, F_OK) == 0)
        hub_info("a renewal is pending with the key in %s", nkey);
}

int hub_state_lock(const char *dir, int *fd_out)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        hub_error("cannot open %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        if (busy)
            hub_error("another iothub-device uses %s", dir);
        else
            hub_error("cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return busy ? HUB_EEXIST : HUB_EIO;
    }
    *fd_out = fd;
    return 0;
}

static time_t x509_time(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return timegm(&tm);
}

int hub_state_cert_info_mem(const char *pem, size_t len, struct hub_cert_info *out)
{
    mbedtls_x509_crt crt;
    uint8_t md[32];
    mbedtls_x509_crt_init(&crt);
    memset(out, 0, sizeof *out);
    /* mbedtls wants the NUL counted for PEM. */
    int ret = mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, len + 1);
    if (ret < 0 || crt.raw.len == 0) {
        mbedtls_x509_crt_free(&crt);
        hub_error("the certificate does not parse (-0x%04X)", (unsigned)-ret);
        return HUB_EINVAL;
    }
    if (hub_x509_serial_hex(&crt.serial, out->serial, sizeof out->serial) != 0) {
        mbedtls_x509_crt_free(&crt);
        hub_error("the certificate's serial is empty or longer than 20 bytes");
        return HUB_EINVAL;
    }
    hub_x509_name_attr(&crt.subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN),
                       out->cn, sizeof out->cn);
    hub_x509_name_attr(&crt.subject, MBEDTLS_OID_AT_ORGANIZATION,
                       MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), out->o, sizeof out->o);
    out->not_before = x509_time(&crt.valid_from);
    out->not_after = x509_time(&crt.valid_to);
    mbedtls_sha256_ret(crt.raw.p, crt.raw.len, md, 0);
    for (int i = 0; i < 32; i++)
        snprintf(out->fingerprint + 3 * i, 4, "%02X%s", md[i], i < 31 ? ":" : "");
    mbedtls_x509_crt_free(&crt);
    return 0;
}

int hub_state_cert_info(const char *pem_path, struct hub_cert_info *out)
{
    hub_buf_t b = HUB_BUF_INIT;
    int rc = hub_state_file_read(pem_path, &b, 64 * 1024);
    if (rc == HUB_ENOTFOUND)
        hub_error("no certificate at %s", pem_path);
    if (rc == 0)
        rc = hub_state_cert_info_mem((const char *)b.data, b.len, out);
    hub_buf_free(&b);
    return rc;
}
