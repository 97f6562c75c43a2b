/* key status reads and reports; key migrate takes the state directory's lock (no agent may
 * run), encrypts key.pem and a pending renew.key with the configured passphrase, replaces
 * each atomically (temporary file, fsync, rename, fsync of the directory), then overwrites
 * the old plaintext through a descriptor kept open on it before the rename. */
#include "agent/keycmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>

#include "agent/conf.h"
#include "agent/keystore.h"
#include "agent/state.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

static const char key_usage[] = "usage: iothub-device key status  [--dir STATE] [--config FILE]\n"
                                "       iothub-device key migrate [--dir STATE] [--config FILE]\n";

/* One line about a key file: its protection, and whether the passphrase opens it. */
static int describe(const char *path)
{
    hub_buf_t b = HUB_BUF_INIT;
    int rc = hub_state_file_read(path, &b, 32768);
    if (rc == HUB_ENOTFOUND) {
        printf("%-14s absent\n", strrchr(path, '/') + 1);
        return 0;
    }
    if (rc != 0)
        return 1;
    const char *text = (const char *)b.data;
    const char *form = strstr(text, "BEGIN ENCRYPTED PRIVATE KEY") ? "encrypted (PKCS#8 PBES2)"
                       : strstr(text, "Proc-Type: 4,ENCRYPTED")    ? "encrypted (legacy PEM)"
                                                                   : "plaintext";
    int encrypted = hub_keystore_is_encrypted(text);
    mbedtls_platform_zeroize(b.data, b.len);
    hub_buf_free(&b);
    const char *opens = "";
    if (encrypted && hub_keystore_passphrase() != NULL) {
        mbedtls_pk_context pk;
        mbedtls_pk_init(&pk);
        opens = hub_keystore_load(path, &pk) == 0 ? ", the passphrase opens it"
                                                  : ", the passphrase does NOT open it";
        mbedtls_pk_free(&pk);
    } else if (encrypted) {
        opens = ", no passphrase configured";
    }
    printf("%-14s %s%s\n", strrchr(path, '/') + 1, form, opens);
    return !encrypted && hub_keystore_enforced() ? 1 : 0;
}

/* Encrypts one plaintext key file in place. Returns 0 (also: absent or already encrypted). */
static int migrate_one(const char *path)
{
    hub_buf_t b = HUB_BUF_INIT, pem = HUB_BUF_INIT, tmp = HUB_BUF_INIT;
    mbedtls_pk_context pk, check;
    const char *what = "write";
    int fd = -1, rc = hub_state_file_read(path, &b, 32768);
    mbedtls_pk_init(&pk);
    mbedtls_pk_init(&check);
    if (rc == HUB_ENOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc != 0)
        goto out;
    if (hub_keystore_is_encrypted((const char *)b.data)) {
        rc = hub_keystore_load(path, &check);
        if (rc == 0)
            printf("%s: already encrypted\n", path);
        goto out;
    }
    if (mbedtls_pk_parse_key(&pk, b.data, b.len + 1, NULL, 0) != 0) {
        hub_error("%s does not parse as a plaintext private key", path);
        rc = HUB_EINVAL;
        goto out;
    }
    rc = hub_keystore_write_pem(&pk, &pem);
    if (rc != 0)
        goto out;
    fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    rc = hub_file_stage(path, pem.data, pem.len, 0600, &tmp, &what);
    if (rc == 0) {
        /* The staged file must open with the passphrase and be the same key. */
        rc = hub_keystore_load((const char *)tmp.data, &check);
        if (rc == 0 && mbedtls_pk_check_pair(&check, &pk) != 0)
            rc = HUB_ECRYPTO;
        if (rc != 0)
            hub_file_discard(&tmp);
    }
    if (rc == 0)
        rc = hub_file_commit(&tmp, path, &what);
    if (rc != 0) {
        hub_error("cannot %s %s: %s; the plaintext key is unchanged", what, path, strerror(errno));
        goto out;
    }
    /* The old inode, now unlinked: overwrite what it held before it is released. */
    if (fd >= 0) {
        for (size_t off = 0; off < b.len;) {
            static const char zeros[512];
            size_t n = b.len - off < sizeof zeros ? b.len - off : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, n, (off_t)off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        fsync(fd);
    }
    printf("%s: encrypted (PKCS#8 PBES2, PBKDF2-HMAC-SHA256 %u iterations, AES-256-CBC)\n", path,
           HUB_KEYSTORE_ITERATIONS);
out:
    if (fd >= 0)
        close(fd);
    if (b.data != NULL)
        mbedtls_platform_zeroize(b.data, b.len);
    if (pem.data != NULL)
        mbedtls_platform_zeroize(pem.data, pem.len);
    hub_buf_free(&b);
    hub_buf_free(&pem);
    mbedtls_pk_free(&pk);
    mbedtls_pk_free(&check);
    return rc;
}

int hub_keycmd_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = HUB_STATE_DEFAULT_DIR, *conf_path = NULL;
    int opt;
    if (argc < 2 || (strcmp(argv[1], "status") != 0 && strcmp(argv[1], "migrate") != 0)) {
        fputs(key_usage, argc < 2 ? stderr : stdout);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    const char *sub = argv[1];
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 'c': conf_path = optarg; break;
        case 'h': fputs(key_usage, stdout); return 0;
        default: fputs(key_usage, stderr); return 2;
        }
    }
    if (optind < argc - 1) {
        fputs(key_usage, stderr);
        return 2;
    }
    struct hub_agent_conf conf;
    struct hub_state st;
    char key[1100], nkey[1100];
    if (hub_agent_conf_load(conf_path, dir, &conf) != 0)
        return 1;
    memset(&st, 0, sizeof st);
    snprintf(st.dir, sizeof st.dir, "%s", dir);
    hub_state_path(&st, "key.pem", key, sizeof key);
    hub_state_path(&st, "renew.key", nkey, sizeof nkey);
    int rc = hub_keystore_open(&conf, dir);
    if (strcmp(sub, "status") == 0) {
        if (rc != 0 && rc != HUB_EKEYPOLICY) {
            hub_keystore_close();
            return 1;
        }
        printf("key_store:     %s\n", hub_keystore_enforced()
                                          ? "enforced (recorded in STATE/key_store)"
                                          : "auto (plaintext keys accepted)");
        printf("passphrase:    %s\n", conf.passphrase_file[0]      ? "key_passphrase_file"
                                      : conf.passphrase_command[0] ? "key_passphrase_command"
                                                                   : "none configured");
        int bad = describe(key) | describe(nkey);
        hub_keystore_close();
        return bad || rc != 0 ? 1 : 0;
    }
    int lock_fd = -1;
    if (rc == 0 && hub_keystore_passphrase() == NULL) {
        hub_error("key migrate needs a passphrase: set key_passphrase_file or "
                  "key_passphrase_command in the agent configuration");
        rc = HUB_EBADPASS;
    }
    if (rc == 0)
        rc = hub_state_lock(dir, &lock_fd);
    if (rc == 0)
        rc = migrate_one(key);
    if (rc == 0)
        rc = migrate_one(nkey);
    if (lock_fd >= 0)
        close(lock_fd);
    hub_keystore_close();
    return rc == 0 ? 0 : 1;
}
