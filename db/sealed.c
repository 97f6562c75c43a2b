#include "db/sealed.h"

#include <stdlib.h>
#include <string.h>

#include "db/cas.h"
#include "db/certificates.h"
#include "db/pending.h"

int hub_db_sealed_list(PGconn *c, struct hub_db_sealed **list, size_t *n)
{
    *list = NULL;
    *n = 0;
    int rc = hub_db_cas_list_sealed(c, list, n);
    if (rc == 0)
        rc = hub_db_certificates_list_sealed(c, list, n);
    if (rc == 0) /* an external root's keys waiting for `iothubd ca import` */
        rc = hub_db_pending_list_sealed(c, list, n);
    if (rc != 0) {
        hub_db_sealed_free(*list, *n);
        *list = NULL;
        *n = 0;
    }
    return rc;
}

void hub_db_sealed_free(struct hub_db_sealed *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hub_buf_free(&list[i].blob);
    free(list);
}

int hub_db_sealed_update(PGconn *c, const struct hub_db_sealed *key, const hub_buf_t *blob)
{
    if (strncmp(key->role, "pending-", 8) == 0)
        return hub_db_pending_set_sealed(c, key->serial, blob);
    return key->ca_id ? hub_db_cas_set_sealed(c, key->ca_id, blob)
                      : hub_db_certificates_set_sealed(c, key->serial, blob);
}
