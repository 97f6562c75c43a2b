/* iothub-server-identity: writes the server certificate iothubd presents on its MQTT listeners
 * (followed by the issuing CA) and its unsealed private key, so that a peer broker in a
 * benchmark (Mosquitto) can present exactly the same identity.
 *   iothub-server-identity CONF CERT_OUT KEY_OUT      (KEY_OUT is written with mode 0600)
 * Needs the master passphrase as iothubd does (master_key_file or IOTHUB_MASTER_KEY). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/authority.h"
#include "db/db.h"
#include "server/config.h"
#include "server/init.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/secure.h"

static int write_file(const char *path, const hub_buf_t *b, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || fchmod(fd, mode) != 0 || write(fd, b->data, b->len) != (ssize_t)b->len) {
        fprintf(stderr, "iothub-server-identity: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: iothub-server-identity CONF CERT_OUT KEY_OUT\n");
        return 2;
    }
    struct hub_config cfg;
    struct hub_authority a;
    hub_buf_t cert = HUB_BUF_INIT, key = HUB_BUF_INIT;
    char err[512], *pass = NULL;
    PGconn *c = NULL;
    int status = 1, rc;
    memset(&a, 0, sizeof a);
    if (hub_config_load(&cfg, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if ((pass = hub_config_master_key(&cfg, err, sizeof err)) == NULL) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    rc = hub_db_connect(cfg.db_url, &c);
    if (rc == 0)
        rc = hub_authority_load(c, pass, &a);
    if (rc == 0) {
        hub_init_authority_settings(&cfg, &a);
        rc = hub_authority_server_identity(&a, c, pass, &cert, &key);
    }
    if (rc != 0) {
        fprintf(stderr, "iothub-server-identity: %s\n", hub_strerror(rc));
        goto out;
    }
    if (write_file(argv[2], &cert, 0644) == 0 && write_file(argv[3], &key, 0600) == 0)
        status = 0;
out:
    if (pass != NULL) {
        hub_wipe(pass, strlen(pass));
        free(pass);
    }
    hub_buf_free(&key);
    hub_buf_free(&cert);
    hub_authority_free(&a);
    PQfinish(c);
    hub_config_free(&cfg);
    return status;
}
